"""The authorization matrix: every route of the app (API and web pages), and what an
admin, the owning member, another member, a viewer and an anonymous client get.

The routes are read from the app's router, so a route without an entry in RULES fails
`test_every_route_has_a_rule`: no route ships without a rule. Each entry is checked
over HTTP on SQLite and PostgreSQL, with fresh resources owned by the owning member
for each actor on each route (so an earlier success never turns into a later 404).
The web pages are reached with the session cookie and the CSRF token a browser sends.
Each route is its own test item (so pytest-xdist spreads them over its workers), and the
actors' users, tokens and signed-in sessions are made once per database for the module.

An expectation is an exact status code, or "2xx" (any success), or "refused" (a 200
whose per-item results all failed: the bulk actions answer per enrollment).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cadenza.domain.errors import CadenzaError
from cadenza.domain.secrets import hash_password
from cadenza.services.accounts import mailboxes, users
from cadenza.services.automation import rules as automation_rules
from cadenza.services.crm import lists, records
from cadenza.services.enrollment import list_jobs as list_enrollment
from cadenza.services.enrollment import tasks
from cadenza.services.enrollment.enroll import EnrollOptions
from cadenza.services.events_out import webhooks
from cadenza.store.models import Message, User
from cadenza.web.app import create_app
from tests.conftest import World, enroll_ids

ACTORS = ("admin", "owner", "other", "viewer", "anon")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "matrix-pass"

# (admin, owner, other, viewer, anon) per "METHOD path".
API_READ = ("2xx", "2xx", "2xx", "2xx", 401)
API_WRITE = ("2xx", "2xx", "2xx", 403, 401)  # any member may (shared resources)
API_OWNED_WRITE = ("2xx", "2xx", 403, 403, 401)  # owner or admin; others told no
API_HIDDEN_READ = ("2xx", "2xx", 404, 404, 401)  # others cannot even see it
API_HIDDEN_WRITE = ("2xx", "2xx", 404, 403, 401)
API_ADMIN = ("2xx", 403, 403, 403, 401)
PUBLIC = ("same",) * 5  # no sign-in: everyone gets the same answer
PAGE = (200, 200, 200, 200, 303)
PAGE_WRITE = ("2xx|303", "2xx|303", "2xx|303", 403, 303)
PAGE_OWNED_WRITE = ("2xx|303", "2xx|303", 403, 403, 303)
PAGE_HIDDEN = (200, 200, 404, 404, 303)
PAGE_HIDDEN_WRITE = ("2xx|303", "2xx|303", 404, 403, 303)
PAGE_ADMIN = ("2xx|303", 403, 403, 403, 303)

RULES: dict[str, tuple] = {
    # -- outside the API and the pages
    "GET /openapi.json": PUBLIC,
    "GET /docs": PUBLIC,
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    # Off unless CADENZA_METRICS_TOKEN is set, then for its holder only; no user's
    # token or session opens it (tests/api/test_metrics_access.py).
    "GET /metrics": (404,) * 5,
    "GET /u/{token}": PUBLIC,  # signed links: the token is the credential
    "POST /u/{token}": PUBLIC,
    "GET /o/{token}.gif": PUBLIC,
    "GET /c/{token}": PUBLIC,
    # -- contacts: the team's address book
    "POST /api/v1/contacts": API_WRITE,
    "GET /api/v1/contacts": API_READ,
    "GET /api/v1/contacts/{contact_id}": API_READ,
    "PATCH /api/v1/contacts/{contact_id}": API_WRITE,
    "DELETE /api/v1/contacts/{contact_id}": API_WRITE,
    "POST /api/v1/contacts/import": API_WRITE,
    # a contact's data: whoever reads the contact exports what of it they may read
    "GET /api/v1/contacts/{contact_id}/export": API_READ,
    "POST /api/v1/suppressions/lift": API_ADMIN,  # an erased address may come back
    # -- mailboxes: their owner's; invisible to others
    "POST /api/v1/mailboxes": API_WRITE,
    "GET /api/v1/mailboxes": API_READ,
    "GET /api/v1/mailboxes/{mailbox_id}": API_HIDDEN_READ,
    "PATCH /api/v1/mailboxes/{mailbox_id}": API_HIDDEN_WRITE,
    # OAuth: no provider configured here (409); a made-up state is refused (422)
    "POST /api/v1/mailboxes/oauth/{provider}/start": (409, 409, 409, 403, 401),
    "POST /api/v1/mailboxes/oauth/finish": (422, 422, 422, 403, 401),
    "DELETE /api/v1/mailboxes/{mailbox_id}": API_HIDDEN_WRITE,
    "GET /api/v1/mailboxes/{mailbox_id}/health": API_HIDDEN_READ,
    "POST /api/v1/mailboxes/{mailbox_id}/test": API_HIDDEN_WRITE,
    # The scene's mailbox reads no inbox: 422 for whoever may test it at all.
    "POST /api/v1/mailboxes/{mailbox_id}/test-inbox": (422, 422, 404, 403, 401),
    "POST /api/v1/mailboxes/{mailbox_id}/reconnect": API_HIDDEN_WRITE,
    # -- sequences: shared reading, changed by their owner or an admin
    "POST /api/v1/sequences": API_WRITE,
    "GET /api/v1/sequences": API_READ,
    "GET /api/v1/sequences/{sequence_id}": API_READ,
    "PUT /api/v1/sequences/{sequence_id}": API_OWNED_WRITE,
    "DELETE /api/v1/sequences/{sequence_id}": API_OWNED_WRITE,
    "POST /api/v1/sequences/{sequence_id}/unarchive": API_OWNED_WRITE,
    "GET /api/v1/sequences/{sequence_id}/stats": API_READ,
    "GET /api/v1/sequences/{sequence_id}/analytics": API_READ,
    "POST /api/v1/sequences/{sequence_id}/enrollments": API_WRITE,  # from one's own mailbox
    # sharing: the scene's sequences are team_use (the default), so others see them
    "PATCH /api/v1/sequences/{sequence_id}": API_OWNED_WRITE,  # sharing: owner and admins
    "POST /api/v1/sequences/{sequence_id}/clone": API_WRITE,  # whoever sees it
    "GET /api/v1/sequence-folders": API_READ,
    "PATCH /api/v1/sequence-folders/{folder}": API_OWNED_WRITE,  # who may edit every one
    # -- enrollments: their enroller's and mailbox owner's; viewers read all
    "GET /api/v1/enrollments": API_READ,
    "GET /api/v1/enrollments/{enrollment_id}": ("2xx", "2xx", 404, "2xx", 401),
    "GET /api/v1/enrollments/{enrollment_id}/events": ("2xx", "2xx", 404, "2xx", 401),
    "POST /api/v1/enrollments/pause": ("2xx", "2xx", "refused", 403, 401),
    "POST /api/v1/enrollments/resume": ("2xx", "2xx", "refused", 403, 401),
    "POST /api/v1/enrollments/unenroll": ("2xx", "2xx", "refused", 403, 401),
    "POST /api/v1/enrollments/{enrollment_id}/pause": API_HIDDEN_WRITE,
    "POST /api/v1/enrollments/{enrollment_id}/resume": (409, 409, 404, 403, 401),  # active
    "POST /api/v1/enrollments/{enrollment_id}/unenroll": API_HIDDEN_WRITE,
    # -- tasks: their assignee's
    "GET /api/v1/tasks": API_READ,
    "POST /api/v1/tasks/{task_id}/complete": API_HIDDEN_WRITE,
    "POST /api/v1/tasks/{task_id}/skip": API_HIDDEN_WRITE,
    "POST /api/v1/tasks/{task_id}/reschedule": API_HIDDEN_WRITE,
    # -- task outcomes: the team's, read by all, managed by admins
    "GET /api/v1/task-outcomes": API_READ,
    "POST /api/v1/task-outcomes": API_ADMIN,
    "PATCH /api/v1/task-outcomes/{key}": API_ADMIN,
    "DELETE /api/v1/task-outcomes/{key}": API_ADMIN,
    # -- messages (the outbox): their mailbox owner's
    "GET /api/v1/messages": API_READ,
    "GET /api/v1/messages/{message_id}": API_HIDDEN_READ,
    "POST /api/v1/messages/{message_id}/review": (409, 409, 404, 403, 401),  # sent: no review
    # Per-message results: another member's message comes back not_found inside a 200.
    "POST /api/v1/messages/retry": ("2xx", "2xx", "refused", 403, 401),
    # -- events
    "POST /api/v1/events": API_OWNED_WRITE,  # about one's own enrolled contacts
    "POST /api/v1/events/postmark": API_ADMIN,  # acts on any contact: an admin's authority
    "GET /api/v1/events": API_ADMIN,  # review of what signals did
    "POST /api/v1/events/{event_id}/revoke": API_ADMIN,
    "POST /api/v1/integration-tokens": API_ADMIN,
    "GET /api/v1/integration-tokens": API_ADMIN,
    "DELETE /api/v1/integration-tokens/{token_id}": API_ADMIN,
    # booking webhooks: no token, the provider's signature is the credential (none sent: 401)
    "POST /api/v1/integrations/calcom": PUBLIC,
    "POST /api/v1/integrations/calendly": PUBLIC,
    "GET /api/v1/integrations/booking-secrets": API_ADMIN,
    "PUT /api/v1/integrations/booking-secrets/{provider}": API_ADMIN,
    "DELETE /api/v1/integrations/booking-secrets/{provider}": API_ADMIN,
    # one's own signature and meeting link (viewers too); an admin sets anyone's
    "GET /api/v1/me/profile": ("2xx", "2xx", "2xx", "2xx", 401),
    "PATCH /api/v1/me/profile": ("2xx", "2xx", "2xx", "2xx", 401),
    "PATCH /api/v1/users/{user_id}/profile": API_ADMIN,
    # -- webhooks and automation: admins
    "POST /api/v1/webhooks": API_ADMIN,
    "GET /api/v1/webhooks": API_ADMIN,
    "GET /api/v1/webhooks/{webhook_id}": API_ADMIN,
    "PATCH /api/v1/webhooks/{webhook_id}": API_ADMIN,
    "DELETE /api/v1/webhooks/{webhook_id}": API_ADMIN,
    "POST /api/v1/webhooks/{webhook_id}/test": API_ADMIN,
    "GET /api/v1/webhooks/{webhook_id}/deliveries": API_ADMIN,
    "POST /api/v1/automation/rules": API_ADMIN,
    "GET /api/v1/automation/rules": API_READ,
    "GET /api/v1/automation/rules/{rule_id}": API_READ,
    "PATCH /api/v1/automation/rules/{rule_id}": API_ADMIN,
    "DELETE /api/v1/automation/rules/{rule_id}": API_ADMIN,
    "GET /api/v1/automation/rules/{rule_id}/runs": API_READ,
    # -- object types: admins shape them, everyone reads
    "GET /api/v1/object-types": API_READ,
    "POST /api/v1/object-types": API_ADMIN,
    "GET /api/v1/object-types/{type_name}": API_READ,
    "PATCH /api/v1/object-types/{type_name}": API_ADMIN,
    "DELETE /api/v1/object-types/{type_name}": API_ADMIN,
    # -- records: shared reading, changed by their owner or an admin
    **{
        f"{method} /api/v1/{plural}{tail}": rule
        for plural in ("companies", "deals", "tickets", "objects/{type_name}")
        for method, tail, rule in (
            ("GET", "", API_READ),
            ("POST", "", API_WRITE),
            ("GET", "/{record_id}", API_READ),
            ("PATCH", "/{record_id}", API_OWNED_WRITE),
            ("DELETE", "/{record_id}", API_OWNED_WRITE),
        )
    },
    "GET /api/v1/associations": API_READ,
    "POST /api/v1/associations": API_OWNED_WRITE,
    "DELETE /api/v1/associations": API_OWNED_WRITE,
    # -- lists: shared reading, changed by their owner or an admin
    "POST /api/v1/lists": API_WRITE,
    "GET /api/v1/lists": API_READ,
    "GET /api/v1/lists/{list_id}": API_READ,
    "PATCH /api/v1/lists/{list_id}": API_OWNED_WRITE,
    "DELETE /api/v1/lists/{list_id}": API_OWNED_WRITE,
    "GET /api/v1/lists/{list_id}/members": API_READ,
    "POST /api/v1/lists/{list_id}/members": API_OWNED_WRITE,
    "POST /api/v1/lists/{list_id}/members/remove": API_OWNED_WRITE,
    "POST /api/v1/lists/{list_id}/enrollments": API_WRITE,  # as oneself, from one's mailbox
    "GET /api/v1/list-enrollments/{job_id}": ("2xx", "2xx", 404, "2xx", 401),
    # -- templates and snippets: their owner's; a private one is hidden from others
    "POST /api/v1/templates": API_WRITE,
    "GET /api/v1/templates": API_READ,
    "GET /api/v1/templates/{template_id}": API_HIDDEN_READ,
    "PATCH /api/v1/templates/{template_id}": API_HIDDEN_WRITE,
    "DELETE /api/v1/templates/{template_id}": API_HIDDEN_WRITE,
    "POST /api/v1/templates/{template_id}/unarchive": API_HIDDEN_WRITE,
    "POST /api/v1/templates/{template_id}/preview": API_HIDDEN_READ,
    "GET /api/v1/templates/{template_id}/figures": API_HIDDEN_READ,
    "POST /api/v1/snippets": API_WRITE,
    "GET /api/v1/snippets": API_READ,
    "GET /api/v1/snippets/{snippet_id}": API_HIDDEN_READ,
    "PATCH /api/v1/snippets/{snippet_id}": API_HIDDEN_WRITE,
    "DELETE /api/v1/snippets/{snippet_id}": API_HIDDEN_WRITE,
    # -- reports: everyone reads; a member's figures and rows are their own work only
    "GET /api/v1/reports/{by}": API_READ,
    "GET /api/v1/reports/{by}/csv": API_READ,
    "GET /api/v1/reports/{by}/daily": API_READ,
    "GET /api/v1/reports/rows/{rows}": API_READ,
    # -- the web pages
    "GET /": (303, 303, 303, 303, 303),
    "GET /login": PUBLIC,
    "POST /login": PUBLIC,
    "POST /logout": (303, 303, 303, 303, 303),
    "GET /contacts": PAGE,
    "GET /contacts/{contact_id}": PAGE,
    "GET /contacts/ids": PAGE,  # the index's "select all N matching"
    "GET /contacts/{contact_id}/edit": (200, 200, 200, 403, 303),
    "GET /contacts/{contact_id}/export": PAGE,  # "Download data"
    "POST /contacts/{contact_id}/edit": PAGE_WRITE,
    "GET /enroll": (200, 200, 200, 403, 303),
    "POST /enroll/check": (200, 200, 200, 403, 303),
    "POST /enroll": (200, 200, 200, 403, 303),
    "GET /enrollments": PAGE,
    "GET /enrollments/{enrollment_id}": (200, 200, 404, 200, 303),
    "POST /enrollments/{enrollment_id}/{action}": PAGE_HIDDEN_WRITE,
    "POST /enrollments": PAGE_WRITE,  # bulk: per item, someone else's is "not found"
    "GET /outbox": PAGE,
    "GET /outbox/{message_id}": PAGE_HIDDEN,
    "POST /outbox/{message_id}/review": (409, 409, 404, 403, 303),
    "POST /outbox/retry": PAGE_WRITE,  # another member's message: refused on the page
    "GET /outbox/{message_id}/body": PAGE_HIDDEN,
    "GET /sequences": PAGE,
    "POST /sequences": PAGE_WRITE,
    "POST /sequences/{sequence_id}/archive": PAGE_OWNED_WRITE,
    "POST /sequences/{sequence_id}/unarchive": PAGE_OWNED_WRITE,
    "GET /sequences/{sequence_id}/enroll": (200, 200, 200, 403, 303),
    "POST /sequences/{sequence_id}/enroll/emails": (200, 200, 200, 403, 303),
    "GET /sequences/{sequence_id}": PAGE,
    "GET /sequences/{sequence_id}/edit": (200, 200, 403, 403, 303),
    "POST /sequences/{sequence_id}/edit": PAGE_OWNED_WRITE,
    "POST /sequences/{sequence_id}/preview": PAGE_OWNED_WRITE,
    "POST /sequences/{sequence_id}/sharing": PAGE_OWNED_WRITE,
    "POST /sequences/{sequence_id}/folder": PAGE_OWNED_WRITE,
    "POST /sequences/{sequence_id}/clone": PAGE_WRITE,
    "POST /sequence-folders/rename": PAGE_OWNED_WRITE,
    "GET /tasks": PAGE,
    "GET /tasks/{task_id}": PAGE_HIDDEN,
    "POST /tasks/{task_id}/complete": PAGE_HIDDEN_WRITE,
    "POST /tasks/{task_id}/skip": PAGE_HIDDEN_WRITE,
    "POST /tasks/{task_id}/reschedule": PAGE_HIDDEN_WRITE,
    "GET /tasks/start": (303,) * 5,  # to one's own first task (or back to the list)
    "GET /tasks/outcomes": PAGE,
    "POST /tasks/outcomes": PAGE_ADMIN,
    "POST /tasks/outcomes/{key}/delete": PAGE_ADMIN,
    "GET /settings": PAGE,
    "POST /settings/mailboxes": PAGE_WRITE,
    "GET /settings/mailboxes/{mailbox_id}": PAGE_HIDDEN,
    "POST /settings/mailboxes/{mailbox_id}": PAGE_HIDDEN_WRITE,
    "POST /settings/mailboxes/{mailbox_id}/test": PAGE_HIDDEN_WRITE,
    "POST /settings/mailboxes/{mailbox_id}/test-inbox": (422, 422, 404, 403, 303),
    "POST /settings/mailboxes/{mailbox_id}/reconnect": PAGE_HIDDEN_WRITE,
    # OAuth: no provider is configured here (409 names the settings); viewers add none
    "GET /settings/mailboxes/oauth/{provider}/start": (409, 409, 409, 403, 303),
    "GET /oauth/callback": (422, 422, 422, 403, 303),  # no state: refused before anything
    "POST /settings/users": PAGE_ADMIN,
    "POST /settings/users/{user_id}": PAGE_ADMIN,
    "POST /settings/users/{user_id}/active": PAGE_ADMIN,
    "POST /settings/users/{user_id}/revoke-tokens": PAGE_ADMIN,
    "POST /settings/password": (403, 403, 403, 403, 303),  # one's own; wrong current: refused
    "POST /settings/tokens": PAGE,  # one's own tokens, viewers too
    "POST /settings/tokens/{token_id}/revoke": (404, 200, 404, 404, 303),  # only one's own
    "POST /settings/profile": PAGE,  # one's own signature and meeting link, viewers too
    "POST /settings/booking-webhooks/{provider}": PAGE_ADMIN,
    "GET /records/{type_name}": PAGE,
    "GET /records/{type_name}/enroll": (303, 303, 303, 403, 303),  # on to the enroll dialog
    "GET /records/{type_name}/{record_id}": PAGE,
    "GET /lists": PAGE,
    "POST /lists": PAGE_WRITE,
    "POST /lists/members": PAGE_OWNED_WRITE,
    "GET /lists/jobs/{job_id}": (200, 200, 404, 200, 303),
    "GET /lists/{list_id}": PAGE,
    "POST /lists/{list_id}/enroll": PAGE_WRITE,
    "GET /automation": (200, 403, 403, 403, 303),
    "POST /automation/rules": PAGE_ADMIN,
    "POST /automation/rules/{rule_id}/enabled": PAGE_ADMIN,
    "GET /automation/rules/{rule_id}": (200, 403, 403, 403, 303),
    # -- one's own task reminder and digest preferences, viewers too
    "GET /api/v1/me/preferences": API_READ,
    "PATCH /api/v1/me/preferences": API_READ,
    "POST /settings/preferences": PAGE,
    "GET /templates": PAGE,
    "GET /templates/new": (200, 200, 200, 403, 303),
    "POST /templates": PAGE_WRITE,
    "GET /templates/{template_id}": PAGE_HIDDEN,
    "POST /templates/{template_id}": PAGE_HIDDEN_WRITE,
    "POST /templates/{template_id}/archive": PAGE_HIDDEN_WRITE,
    "POST /templates/{template_id}/preview": PAGE_HIDDEN,
    "GET /snippets": PAGE,
    "POST /snippets": PAGE_WRITE,
    "POST /snippets/{snippet_id}": PAGE_HIDDEN_WRITE,
    "POST /snippets/{snippet_id}/delete": PAGE_HIDDEN_WRITE,
    "GET /reports": PAGE,
    "GET /reports/csv": PAGE,
    "GET /reports/rows/{rows}": PAGE,
}


def app_routes(app) -> list[str]:
    """Every "METHOD path" the app answers, from its router (mounts excluded)."""
    found = []
    for route in app.routes:
        inner = (
            route.effective_route_contexts()
            if hasattr(route, "effective_route_contexts")
            else [route]
        )
        for leaf in inner:
            for method in sorted((getattr(leaf, "methods", None) or set()) - {"HEAD"}):
                found.append(f"{method} {leaf.path}")
    return found


def test_every_route_has_a_rule():
    routes = app_routes(create_app(None))
    assert len(routes) > 100  # the walk really reached the included routers
    missing = sorted(set(routes) - set(RULES))
    assert not missing, f"routes without an authorization rule: {missing}"
    stale = sorted(set(RULES) - set(routes))
    assert not stale, f"rules for routes that no longer exist: {stale}"


# --- the resources a route's path and body point at -------------------------------------


@dataclass
class Scene:
    """Fresh resources owned by the owning member (the world's rep), made on demand."""

    ctx: Any
    world: Any
    team: dict[str, User]
    made: dict[str, Any] = field(default_factory=dict)
    serial: int = 0

    def fresh(self, prefix: str) -> str:
        Scene.serial_all = getattr(Scene, "serial_all", 0) + 1
        return f"{prefix}{Scene.serial_all}"

    @property
    def owner(self) -> User:
        return self.world.user

    def tidy(self, keep: set[int]) -> None:
        """An extra mailbox would leave its owner with several, and the pages that send
        from "your mailbox" would then ask which: remove those nothing sent from."""
        for mailbox in mailboxes.list_mailboxes(self.ctx):
            if mailbox.id not in keep:
                with contextlib.suppress(CadenzaError):
                    mailboxes.delete_mailbox(self.ctx, mailbox.id)

    def get(self, key: str) -> Any:
        if key not in self.made:
            self.made[key] = getattr(self, f"_{key}")()
        return self.made[key]

    def _sequence_id(self):
        return self.world.make_sequence(name=self.fresh("seq ")).id

    def _folder(self):
        """A folder holding one sequence of the owner's."""
        from cadenza.services.sequences import playbooks

        name = self.fresh("folder")
        playbooks.update_placement(self.ctx, self.get("sequence_id"), actor_id=None, folder=name)
        return name

    def _mailbox_id(self):
        return mailboxes.create_mailbox(
            self.ctx, self.owner.id, self.fresh("box") + "@example.com"
        ).id

    def _contact_id(self):
        return self.world.contact(self.fresh("c") + "@corp.example").id

    def _enrollment_id(self):
        contact = self.world.contact(self.fresh("e") + "@corp.example")
        return enroll_ids(self.world, [contact], mailbox_id=self.world.mailbox.id)[0]

    def _task_id(self):
        sequence = self.world.make_sequence(
            steps=[{"type": "task", "task_type": "call", "task_title": "Call"}],
            name=self.fresh("task seq "),
        )
        contact = self.world.contact(self.fresh("t") + "@corp.example")
        enroll_ids(self.world, [contact], sequence, mailbox_id=self.world.mailbox.id)
        tasks.create_due_tasks(self.ctx)
        [task] = [t for t in tasks.list_tasks(self.ctx, contact_id=contact.id)]
        return task.id

    def _key(self):
        """A team outcome (made by an admin): what the outcome routes change."""
        from cadenza.services.enrollment import task_outcomes

        key = self.fresh("oc")
        task_outcomes.add_outcome(self.ctx, key, "Custom", "call")
        return key

    def _message_id(self):
        from cadenza.engine.worker import Worker, WorkerOptions

        contact = self.world.contact(self.fresh("m") + "@corp.example")
        [enrollment_id] = enroll_ids(self.world, [contact], mailbox_id=self.world.mailbox.id)
        worker = Worker(self.ctx, WorkerOptions(batch_size=100), worker_id="matrix")
        try:
            worker.run_until(self.ctx.clock.now() + timedelta(hours=1))
        finally:
            worker.close()
        with self.ctx.db.read() as session:
            return session.query(Message.id).filter_by(enrollment_id=enrollment_id).scalar()

    def _list_id(self):
        made = lists.create_list(self.ctx, self.owner.id, self.fresh("list "), "static")
        lists.change_members(
            self.ctx, self.owner.id, made.contact_list.id, add=[self.get("contact_id")]
        )
        return made.contact_list.id

    def _record_id(self):
        view = records.create_record(
            self.ctx, self.owner.id, self.get("type_name"), name=self.fresh("Acme ")
        )
        return view.record.id

    def _type_name(self):
        return self.made.get("type_name") or "company"

    def _custom_type(self):
        name = self.fresh("kind")
        records.create_type(self.ctx, None, name=name, plural=name + "s")
        return name

    def _job_id(self):
        return list_enrollment.start(
            self.ctx,
            self.owner.id,
            self.get("list_id"),
            self.get("sequence_id"),
            EnrollOptions(mailbox_id=self.world.mailbox.id),
        ).id

    def _webhook_id(self):
        hook, _secret = webhooks.create_webhook(
            self.ctx, self.team["admin"].id, "https://hooks.example.com/in", ["enrolled"]
        )
        return hook.id

    def _rule_id(self):
        return automation_rules.create_rule(
            self.ctx,
            None,
            name=self.fresh("rule "),
            sequence_id=self.get("sequence_id"),
            trigger={"type": "contact_created"},
            action={"type": "unenroll", "scope": "this"},
        ).id

    def _enrolled_email(self):
        """A contact enrolled from the owner's mailbox: what a member may post events about."""
        contact = self.world.contact(self.fresh("ev") + "@corp.example")
        enroll_ids(self.world, [contact], mailbox_id=self.world.mailbox.id)
        return contact.email

    def _erased_email(self):
        """The address of a contact just erased: suppressed, so an admin may lift it."""
        from cadenza.services.crm import contacts

        contact = self.world.contact(self.fresh("gone") + "@corp.example")
        contacts.delete_contact(self.ctx, contact.id)
        return contact.email

    def _integration_token_id(self):
        admin = self.team["admin"]
        return users.create_token(self.ctx, admin.id, self.fresh("crm "), scopes=["events"]).id

    def _event_id(self):
        from cadenza.domain.enums import EventKind
        from cadenza.services.signals import events

        contact = self.world.contact(self.fresh("un") + "@corp.example")
        mistake = events.ExternalEvent(
            EventKind.UNSUBSCRIBE, self.fresh("oops"), contact_email=contact.email
        )
        return events.receive(self.ctx, mistake).event_id

    def _user_id(self):
        return users.create_user(self.ctx, self.fresh("u") + "@example.com").id

    def _template_id(self):
        from cadenza.services.sequences import templates_library

        return templates_library.create_template(
            self.ctx, self.owner.id, name=self.fresh("tpl "), subject="Hi", body="<p>Hello</p>"
        ).id

    def _snippet_id(self):
        from cadenza.services.sequences import snippets

        return snippets.create_snippet(self.ctx, self.owner.id, name=self.fresh("s"), body="Hi").id

    def _token_id(self):
        users.create_token(self.ctx, self.owner.id, self.fresh("tok "))
        return users.list_tokens(self.ctx, self.owner.id)[0].id


RECORD_TYPES = {"companies": "company", "deals": "deal", "tickets": "ticket"}


def _path(route: str, scene: Scene) -> str:
    path = route.split(" ", 1)[1]
    for plural, name in RECORD_TYPES.items():
        if path.startswith(f"/api/v1/{plural}"):
            scene.made["type_name"] = name
    if path.startswith("/api/v1/integration-tokens/"):
        scene.made["token_id"] = scene.get("integration_token_id")
    if "/object-types/{type_name}" in path and not route.startswith("GET"):
        scene.made["type_name"] = scene.get("custom_type")
    provider = "calendly" if "/booking-" in path else "google"  # a scheduler, or OAuth's
    fixed = {"token": "not-a-signed-token", "action": "pause", "provider": provider}
    fixed |= {"by": "sequence", "rows": "messages"}  # reports
    values = {
        key: fixed[key] if key in fixed else scene.get(key) for key in re.findall(r"{(\w+)}", path)
    }
    return re.sub(r"{(\w+)}", lambda m: str(values[m.group(1)]), path)


def _body(route: str, scene: Scene, own_mailbox: int | None) -> dict[str, Any]:
    """What the request sends: a valid body, so only the policy can refuse it."""
    s = scene.get
    steps = [{"type": "email", "subject": "Hi", "body": "<p>Hello</p>"}]
    bodies = {
        "POST /api/v1/contacts": lambda: {"json": {"email": scene.fresh("n") + "@corp.example"}},
        "PATCH /api/v1/contacts/{contact_id}": lambda: {"json": {"firstname": "Zed"}},
        "POST /api/v1/suppressions/lift": lambda: {"json": {"email": s("erased_email")}},
        "POST /api/v1/contacts/import": lambda: {
            "files": {"file": ("c.csv", f"email\n{scene.fresh('i')}@corp.example\n", "text/csv")}
        },
        "POST /api/v1/mailboxes": lambda: {
            "json": {"from_email": scene.fresh("nb") + "@example.com"}
        },
        "PATCH /api/v1/mailboxes/{mailbox_id}": lambda: {"json": {"from_name": "Z"}},
        "POST /api/v1/mailboxes/oauth/{provider}/start": lambda: {"json": {}},
        "POST /api/v1/mailboxes/oauth/finish": lambda: {"json": {"state": "x", "code": "y"}},
        "POST /api/v1/sequences": lambda: {"json": {"name": "New", "steps": steps}},
        "PUT /api/v1/sequences/{sequence_id}": lambda: {"json": {"name": "Re", "steps": steps}},
        "PATCH /api/v1/sequences/{sequence_id}": lambda: {"json": {"sharing": "team_edit"}},
        "POST /api/v1/sequences/{sequence_id}/clone": lambda: {"json": {}},
        "PATCH /api/v1/sequence-folders/{folder}": lambda: {"json": {"name": scene.fresh("f")}},
        "POST /sequences/{sequence_id}/sharing": lambda: {"data": {"sharing": "team_edit"}},
        "POST /sequences/{sequence_id}/folder": lambda: {"data": {"folder": "Moved"}},
        "POST /sequences/{sequence_id}/clone": lambda: {"data": {"name": "Cloned"}},
        "POST /sequence-folders/rename": lambda: {
            "data": {"folder": s("folder"), "name": scene.fresh("f")}
        },
        "POST /api/v1/sequences/{sequence_id}/enrollments": lambda: {
            "json": {"contacts": [{"contact_id": s("contact_id")}], "mailbox_id": own_mailbox}
        },
        "POST /api/v1/enrollments/pause": lambda: {
            "json": {"enrollment_ids": [s("enrollment_id")]}
        },
        "POST /api/v1/enrollments/resume": lambda: {
            "json": {"enrollment_ids": [s("enrollment_id")]}
        },
        "POST /api/v1/enrollments/unenroll": lambda: {
            "json": {"enrollment_ids": [s("enrollment_id")]}
        },
        "POST /api/v1/messages/{message_id}/review": lambda: {"json": {"delivered": True}},
        "POST /api/v1/tasks/{task_id}/reschedule": lambda: {
            "json": {"due_at": (scene.ctx.clock.now() + timedelta(days=1)).isoformat()}
        },
        "POST /api/v1/task-outcomes": lambda: {
            "json": {"key": scene.fresh("oc"), "label": "New", "task_type": "call"}
        },
        "PATCH /api/v1/task-outcomes/{key}": lambda: {"json": {"label": "Renamed"}},
        "POST /tasks/outcomes": lambda: {
            "data": {"key": scene.fresh("oc"), "label": "New", "task_type": "linkedin"}
        },
        "POST /tasks/{task_id}/reschedule": lambda: {"data": {"by": "day"}},
        "POST /api/v1/messages/retry": lambda: {
            "json": {"message_ids": [s("message_id")], "reason": "matrix"}
        },
        "POST /api/v1/events": lambda: {
            "json": {
                "type": "meeting_booked",
                "event_id": scene.fresh("ev"),
                "contact_email": s("enrolled_email"),
            }
        },
        "POST /api/v1/events/postmark": lambda: {"json": {"RecordType": "Delivery"}},
        "POST /api/v1/events/{event_id}/revoke": lambda: {"json": {"reason": "posted by mistake"}},
        "POST /api/v1/integration-tokens": lambda: {"json": {"name": "crm", "scopes": ["events"]}},
        "PUT /api/v1/integrations/booking-secrets/{provider}": lambda: {
            "json": {"secret": "matrix-signing-secret-01"}
        },
        "PATCH /api/v1/me/profile": lambda: {"json": {"meeting_link": "https://cal.example/m"}},
        "PATCH /api/v1/users/{user_id}/profile": lambda: {
            "json": {"meeting_link": "https://cal.example/m"}
        },
        "POST /settings/profile": lambda: {"data": {"meeting_link": "https://cal.example/m"}},
        "POST /settings/booking-webhooks/{provider}": lambda: {
            "data": {"secret": "matrix-signing-secret-01"}
        },
        "POST /settings/users/{user_id}/active": lambda: {"data": {"active": "no"}},
        "POST /settings/password": lambda: {
            "data": {
                "current_password": "wrong",
                "new_password": "n3w-pass-word",
                "confirm_password": "n3w-pass-word",
            }
        },
        "POST /api/v1/webhooks": lambda: {
            "json": {"url": "https://hooks.example.com/new", "events": ["enrolled"]}
        },
        "PATCH /api/v1/webhooks/{webhook_id}": lambda: {"json": {"description": "d"}},
        "POST /api/v1/automation/rules": lambda: {
            "json": {
                "name": "r",
                "sequence_id": s("sequence_id"),
                "trigger": {"type": "contact_created"},
                "action": {"type": "unenroll", "scope": "this"},
            }
        },
        "PATCH /api/v1/automation/rules/{rule_id}": lambda: {"json": {"name": "renamed"}},
        "POST /api/v1/object-types": lambda: {
            "json": {"name": scene.fresh("t"), "plural": scene.fresh("ts")}
        },
        "PATCH /api/v1/object-types/{type_name}": lambda: {"json": {"label": "L"}},
        "POST /api/v1/associations": lambda: {
            "json": {"record_id": s("record_id"), "contact_id": s("contact_id")}
        },
        "DELETE /api/v1/associations": lambda: _dissociate(scene),
        **{
            f"{method} /api/v1/{plural}{tail}": lambda: {"json": {"name": "Acme"}}
            for plural in ("companies", "deals", "tickets", "objects/{type_name}")
            for method, tail in (("POST", ""), ("PATCH", "/{record_id}"))
        },
        "GET /api/v1/associations": lambda: {"params": {"record_id": s("record_id")}},
        "GET /records/{type_name}/enroll": lambda: {"params": {"record": s("record_id")}},
        "POST /api/v1/lists": lambda: {"json": {"name": "L", "kind": "static"}},
        "PATCH /api/v1/lists/{list_id}": lambda: {"json": {"name": "renamed"}},
        "POST /api/v1/lists/{list_id}/members": lambda: {
            "json": {"contact_ids": [scene.world.contact(scene.fresh("lm") + "@x.example").id]}
        },
        "POST /api/v1/lists/{list_id}/members/remove": lambda: {
            "json": {"contact_ids": [s("contact_id")]}
        },
        "POST /api/v1/lists/{list_id}/enrollments": lambda: {
            "json": {"sequence_id": s("sequence_id"), "mailbox_id": own_mailbox}
        },
        "POST /login": lambda: {"data": {"email": "nobody@example.com", "password": "x"}},
        "POST /enroll/check": lambda: {
            "data": {
                "sequence_id": s("sequence_id"),
                "contact_ids": s("contact_id"),
                "mailbox_id": own_mailbox,
            }
        },
        "POST /enroll": lambda: {
            "data": {
                "sequence_id": s("sequence_id"),
                "contact_ids": s("contact_id"),
                "mailbox_id": own_mailbox,
            }
        },
        "POST /enrollments": lambda: {
            "data": {"action": "pause", "enrollment": s("enrollment_id")}
        },
        "POST /outbox/{message_id}/review": lambda: {"data": {"delivered": "yes"}},
        "POST /outbox/retry": lambda: {"data": {"message": s("message_id"), "reason": "matrix"}},
        "POST /sequences": lambda: {"data": {"name": "From page"}},
        "POST /sequences/{sequence_id}/edit": lambda: {"data": _editor_form()},
        "POST /sequences/{sequence_id}/preview": lambda: {"data": _editor_form()},
        "POST /settings/mailboxes": lambda: {
            "data": {"from_email": scene.fresh("pb") + "@example.com", **_limits()}
        },
        "POST /settings/mailboxes/{mailbox_id}": lambda: {"data": _limits()},
        "POST /settings/users": lambda: {"data": {"email": scene.fresh("pu") + "@example.com"}},
        "POST /settings/users/{user_id}": lambda: {"data": {"role": "member"}},
        "POST /settings/tokens": lambda: {"data": {"name": "t"}},
        "POST /lists": lambda: {"data": {"name": "P", "kind": "static"}},
        "POST /lists/members": lambda: {"data": {"list": s("list_id"), "contact": s("contact_id")}},
        "POST /lists/{list_id}/enroll": lambda: {
            "data": {"sequence": s("sequence_id"), "mailbox": own_mailbox}
        },
        "POST /automation/rules": lambda: {
            "data": {
                "name": "r",
                "sequence": s("sequence_id"),
                "trigger": '{"type": "contact_created"}',
                "action": '{"type": "unenroll", "scope": "this"}',
            }
        },
        "POST /automation/rules/{rule_id}/enabled": lambda: {"data": {"enabled": "off"}},
        "PATCH /api/v1/me/preferences": lambda: {"json": {"digest": True}},
        "POST /settings/preferences": lambda: {"data": {"timing": "at_due", "digest_hour": "8"}},
        "POST /api/v1/templates": lambda: {"json": _template()},
        "PATCH /api/v1/templates/{template_id}": lambda: {"json": {"subject": "Changed"}},
        "POST /api/v1/templates/{template_id}/preview": lambda: {
            "json": {"contact_id": s("contact_id")}
        },
        "POST /api/v1/snippets": lambda: {"json": {"name": scene.fresh("s"), "body": "Hi"}},
        "PATCH /api/v1/snippets/{snippet_id}": lambda: {"json": {"body": "Changed"}},
        "POST /templates": lambda: {"data": _template()},
        "POST /templates/{template_id}": lambda: {"data": _template()},
        "POST /templates/{template_id}/preview": lambda: {
            "data": {"preview_contact": s("contact_id")}
        },
        "POST /snippets": lambda: {"data": {"name": scene.fresh("s"), "body": "Hi"}},
        "POST /snippets/{snippet_id}": lambda: {"data": {"body": "Changed"}},
    }
    make = bodies.get(route)
    return make() if make else {}


def _dissociate(scene: Scene) -> dict[str, Any]:
    records.associate(scene.ctx, None, scene.get("record_id"), scene.get("contact_id"))
    return {"params": {"record_id": scene.get("record_id"), "contact_id": scene.get("contact_id")}}


def _editor_form() -> dict[str, str]:
    return {
        "name": "Rewritten",
        "step-1-type": "email",
        "step-1-subject": "Rewritten",
        "step-1-body": "<p>Rewritten</p>",
        "follow_up_days": "every_day",
        "op": "save",
    }


def _template() -> dict[str, str]:
    return {"name": "Tpl", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}


def _limits() -> dict[str, str]:
    return {"transport": "capture", "per_minute_limit": "10", "daily_limit": "100"}


# --- the clients -------------------------------------------------------------------------


class Team:
    """An API token and a signed-in browser session for each actor."""

    def __init__(self, ctx, world) -> None:
        self.ctx, self.world = ctx, world
        self.users = {
            "admin": users.create_user(ctx, "boss@example.com", role="admin", password=PASSWORD),
            "owner": world.user,
            "other": users.create_user(ctx, "olive@example.com", password=PASSWORD),
            "viewer": users.create_user(ctx, "vic@example.com", role="viewer", password=PASSWORD),
        }
        with ctx.db.transaction() as session:
            cost = ctx.settings.password_hash_cost  # the fixtures' cheap cost, as for the others
            session.get(User, world.user.id).password_hash = hash_password(PASSWORD, cost)
        self.mailboxes = {
            "owner": world.mailbox.id,
            "admin": mailboxes.create_mailbox(ctx, self.users["admin"].id, "boss@example.com").id,
            "other": mailboxes.create_mailbox(ctx, self.users["other"].id, "olive@example.com").id,
        }
        self.tokens = {
            name: users.create_token(ctx, user.id, "matrix").token
            for name, user in self.users.items()
        }
        app = self.app = create_app(ctx)
        self.clients: dict[str, TestClient] = {}
        self.csrf: dict[str, str] = {}
        for actor in ACTORS:
            client = TestClient(app, raise_server_exceptions=False)
            self.csrf[actor] = CSRF.search(client.get("/login").text).group(1)
            if actor != "anon":
                login = client.post(
                    "/login",
                    data={"email": self.users[actor].email, "password": PASSWORD,
                          "next": "/", "csrf_token": self.csrf[actor]},
                    follow_redirects=False,
                )  # fmt: skip
                assert login.status_code == 303, login.text
                self.csrf[actor] = CSRF.search(client.get("/settings").text).group(1)
            self.clients[actor] = client

    def request(self, actor: str, route: str, path: str, body: dict[str, Any]):
        method = route.split(" ", 1)[0]
        client = self.clients[actor]
        headers = {}
        if path.startswith("/api/"):
            if actor != "anon":  # no token at all: the guessing brake counts only wrong ones
                headers["Authorization"] = f"Bearer {self.tokens[actor]}"
        elif method != "GET":
            headers["X-CSRF-Token"] = self.csrf[actor]
            if "data" in body:
                body = {**body, "data": {**body["data"], "csrf_token": self.csrf[actor]}}
        return client.request(method, path, headers=headers, follow_redirects=False, **body)


def _text(response) -> str:
    """The end of the answer, without markup: enough to see why it was refused."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.text).split())[-300:]


def _matches(expected, response, first) -> bool:
    code = response.status_code
    if expected == "same":
        return code == first.status_code
    if expected == "refused":
        results = response.json().get("results", []) if code == 200 else []
        return bool(results) and not any(r["ok"] for r in results)
    if isinstance(expected, int):
        return code == expected
    return any(
        (option == "2xx" and 200 <= code < 300) or (option == "303" and code == 303)
        for option in expected.split("|")
    )


@pytest.fixture
def team(ctx, world):
    return Team(ctx, world)


@pytest.fixture(scope="module")
def matrix_team(module_ctx):
    """One team per database for every route's item: signing five actors in costs more
    than checking a route, and each route makes fresh resources of its own anyway."""
    return Team(module_ctx, World(module_ctx))


# Every route but logging out, which ends the session the other items sign in with
# (checked by test_logging_out_ends_the_session, on a team of its own).
CHECKED_ROUTES = [route for route in app_routes(create_app(None)) if route != "POST /logout"]


@pytest.mark.parametrize("route", CHECKED_ROUTES)
def test_route_answers_each_actor_as_its_rule_says(matrix_team, route):
    """Fresh resources for each actor, so one's success is not another's 404."""
    team, rule = matrix_team, RULES[route]
    wrong = []
    first = None
    for actor, expected in zip(ACTORS[::-1], rule[::-1], strict=True):
        scene = Scene(team.ctx, team.world, team.users)
        path = _path(route, scene)
        body = _body(route, scene, team.mailboxes.get(actor))
        response = team.request(actor, route, path, body)
        first = first or response
        if not _matches(expected, response, first):
            wrong.append(
                f"{route} as {actor}: {response.status_code}, expected {expected}"
                f" ({_text(response)!r})"
            )
        scene.tidy(set(team.mailboxes.values()))
    assert not wrong, "\n".join(wrong)


def test_logging_out_ends_the_session(team):
    for actor in ACTORS:
        answer = team.request(actor, "POST /logout", "/logout", {"data": {}})
        assert answer.status_code == 303
        assert team.clients[actor].get("/contacts", follow_redirects=False).status_code == 303
