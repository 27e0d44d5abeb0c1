"""A realistic data set so a newcomer sees Cadenza work without any setup.

Deterministic (seeded), so the README's walkthrough shows the same contacts to everyone.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

from sqlalchemy import func, select

from cadenza.domain.enums import ListKind, UserRole
from cadenza.services.accounts.mailboxes import create_mailbox
from cadenza.services.accounts.users import create_token, create_user
from cadenza.services.context import Context
from cadenza.services.crm import lists, records
from cadenza.services.sequences.catalog import create_sequence
from cadenza.store.models import Contact, User

DEMO_EMAIL = "rep@example.com"
DEMO_PASSWORD = "cadenza-demo"
CONTACT_COUNT = 200

FIRST_NAMES = [
    "Ana", "Ben", "Chloé", "Dmitri", "Elif", "Farah", "Gustavo", "Hana", "Ines", "Jonas",
    "Kwame", "Lena", "Mateo", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Søren", "Tariq",
    "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoë",
]  # fmt: skip
LAST_NAMES = [
    "Almeida", "Becker", "Chen", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ito",
    "Jansen", "Kowalski", "López", "Müller", "Nakamura", "O'Brien", "Patel", "Rossi", "Schmidt",
    "Tanaka", "Usman", "Varga", "Weber", "Yilmaz", "Zhang",
]  # fmt: skip
COMPANIES = [
    ("Northwind Traders", "northwind.example"), ("Globex", "globex.example"),
    ("Initech", "initech.example"), ("Umbrella Analytics", "umbrella.example"),
    ("Hooli", "hooli.example"), ("Stark Logistics", "stark.example"),
    ("Wayne Foods", "waynefoods.example"), ("Acme Robotics", "acme.example"),
    ("Tyrell Bio", "tyrell.example"), ("Soylent Energy", "soylent.example"),
]  # fmt: skip
TIMEZONES = [
    "America/New_York", "America/Chicago", "America/Los_Angeles", "America/Sao_Paulo",
    "Europe/London", "Europe/Berlin", "Europe/Istanbul", "Asia/Kolkata", "Asia/Kathmandu",
    "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland",
]  # fmt: skip
INDUSTRIES = ["logistics", "retail", "fintech", "healthcare", "manufacturing", "energy"]
TITLES = ["VP Sales", "Head of Operations", "CTO", "Procurement Lead", "Founder", "COO"]

SEQUENCES = [
    {
        "name": "Inbound lead follow-up",
        "settings": {
            "follow_up_days": "weekdays",
            "send_window": {"start": "08:00", "end": "18:00"},
        },
        "steps": [
            {
                "type": "email",
                "subject": "Your {{ contact.company | default('team') }} trial of Cadenza",
                "body": "<p>Hi {{ contact.firstname }},</p><p>Thanks for signing up. "
                "What would make this trial a success for "
                "{{ contact.company | default('you') }}?</p>"
                "<p>{{ sender.firstname }}</p>",
            },
            {
                "type": "email",
                "delay_days": 3,
                "thread_with_step": 1,
                "body": "<p>Hi {{ contact.firstname }}, just bumping this up: happy to set up "
                "a 20-minute walkthrough.</p><p>{{ sender.firstname }}</p>",
            },
            {
                "type": "email",
                "delay_days": 4,
                "subject": "Closing the loop, {{ contact.firstname }}",
                "body": "<p>Hi {{ contact.firstname }},</p><p>I'll stop writing for now. "
                "If timing changes, just reply.</p><p>{{ sender.firstname }}</p>",
            },
        ],
    },
    {
        "name": "Outbound: VP Sales",
        "settings": {"follow_up_days": "business_days", "holiday_country": "US"},
        "steps": [
            {
                "type": "email",
                "subject": "{{ contact.company }} + Cadenza",
                "body": "<p>Hi {{ contact.firstname }},</p><p>Teams in "
                "{{ contact.industry | default('your industry') }} use Cadenza to run "
                "sequences from their own mailboxes. Worth a chat?</p><p>{{ sender.fullname }}</p>",
            },
            {
                "type": "task",
                "delay_days": 2,
                "task_type": "call",
                "task_title": "Call {{ contact.firstname }} at {{ contact.company }}",
                "task_priority": "high",
            },
            {
                "type": "task",
                "delay_days": 1,
                "task_type": "linkedin",
                "task_title": "Connect with {{ contact.firstname }} on LinkedIn",
                "continue_without_completing": True,
            },
            {
                "type": "manual_email",
                "delay_days": 4,
                "thread_with_step": 1,
                "body": "<p>{{ contact.firstname }}, tried you by phone: is next week better?</p>",
            },
        ],
    },
    {
        "name": "Webinar invite",
        "settings": {"follow_up_days": "every_day"},
        "steps": [
            {
                "type": "email",
                "subject": "Invitation: scaling outbound in {{ contact.industry }}",
                "body": "<p>Hi {{ contact.firstname | default('there') }},</p>"
                "<p>Join our 30-minute session on outbound in {{ contact.industry }}.</p>",
            },
            {
                "type": "email",
                "delay_days": 2,
                "delay_hours": 4,
                "thread_with_step": 1,
                "body": "<p>Starts tomorrow: a seat is saved for you.</p>",
            },
        ],
    },
]


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str
    api_token: str


def is_empty(ctx: Context) -> bool:
    with ctx.db.transaction() as session:
        return not session.scalar(select(func.count()).select_from(User))


def load_demo(ctx: Context) -> DemoLogin:
    user = create_user(
        ctx,
        DEMO_EMAIL,
        firstname="Riley",
        lastname="Rep",
        role=UserRole.ADMIN,
        timezone="America/New_York",
        password=DEMO_PASSWORD,
    )
    create_mailbox(ctx, user.id, DEMO_EMAIL, from_name="Riley Rep")
    for sequence in SEQUENCES:
        create_sequence(
            ctx, user.id, sequence["name"], settings=sequence["settings"], steps=sequence["steps"]
        )
    contact_ids = _contacts(ctx, user.id)
    _records_and_list(ctx, user.id, contact_ids)
    token = create_token(ctx, user.id, "demo")
    return DemoLogin(DEMO_EMAIL, DEMO_PASSWORD, token.token)


def _contacts(ctx: Context, owner_id: int) -> list[int]:
    """Seeds the contacts; returns their ids in seeded order (the database picks the ids:
    on a reused PostgreSQL database they need not start at 1)."""
    rng = random.Random(2026)
    now = ctx.clock.now()
    seeded: list[Contact] = []
    with ctx.db.transaction() as session:
        for index in range(CONTACT_COUNT):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            company, domain = rng.choice(COMPANIES)
            local = f"{first}.{last}.{index}".lower().replace("'", "")
            ascii_local = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()
            email = f"{ascii_local}@{domain}"
            contact = Contact(
                email=email,
                email_key=email.lower(),
                firstname=first,
                lastname=last,
                company=company,
                jobtitle=rng.choice(TITLES),
                timezone=rng.choice(TIMEZONES),
                properties={"industry": rng.choice(INDUSTRIES)},
                owner_id=owner_id,
                created_at=now,
                updated_at=now,
            )
            # A realistic list has gaps and history: every 20th bounced, every 25th
            # unsubscribed, every 33rd has no address and every 15th no first name.
            if index % 20 == 7:
                contact.bounced_at = now
            if index % 25 == 11:
                contact.unsubscribed_at = now
            if index % 33 == 5:
                contact.email = contact.email_key = None
            if index % 15 == 3:
                contact.firstname = None
            if index % 40 == 0:
                contact.timezone = None
            session.add(contact)
            seeded.append(contact)
        session.flush()
        return [contact.id for contact in seeded]


def _staff(ctx: Context, company: str, count: int) -> list[int]:
    """The first reachable contacts who work at `company` (their own company field), so
    a company record's people are the ones whose email and company say so."""
    with ctx.db.read() as session:
        return list(
            session.scalars(
                select(Contact.id)
                .where(
                    Contact.company == company,
                    Contact.email.is_not(None),
                    Contact.bounced_at.is_(None),
                    Contact.unsubscribed_at.is_(None),
                )
                .order_by(Contact.id)
                .limit(count)
            )
        )


def _records_and_list(ctx: Context, owner_id: int, contact_ids: list[int]) -> None:
    """Two companies with two of their own people each, a deal with its company's
    contact, and a static list, so the record and list pages tell one story."""
    people = {}
    for name, domain in (("Northwind Traders", "northwind.example"), ("Globex", "globex.example")):
        primary, other = people[name] = _staff(ctx, name, 2)
        linked = [records.AssociationIn(primary, primary=True), records.AssociationIn(other)]
        records.create_record(
            ctx, owner_id, "company", name=name,
            properties={"domain": domain, "industry": "Software", "employees": 120},
            associations=linked,
        )  # fmt: skip
    records.create_record(
        ctx, owner_id, "deal", name="Northwind renewal",
        properties={"amount": 24000, "stage": "proposal"},
        associations=[records.AssociationIn(people["Northwind Traders"][0], primary=True)],
    )  # fmt: skip
    conference = lists.create_list(ctx, owner_id, "Conference leads", ListKind.STATIC)
    lists.change_members(ctx, owner_id, conference.contact_list.id, add=contact_ids[10:20])
