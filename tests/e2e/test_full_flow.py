"""The whole flow over HTTP against a live `cadenza serve`, delivering to a real SMTP sink."""

from email.parser import BytesParser
from email.policy import default

from tests.e2e.conftest import wait_for
from tests.support.smtp_sink import SmtpSink


def test_mailbox_sequence_contacts_enroll_send_pause_resume_unenroll(live_server):
    live_server.cli(
        *("user", "create", "rep@corp.example", "--firstname", "Riley", "--role", "member"),
        *("--timezone", "Europe/Berlin", "--password", "pw"),
    )
    token = live_server.cli("token", "create", "--as", "rep@corp.example").strip()
    with SmtpSink() as sink, live_server.client(token) as api:
        mailbox = api.post(
            "/api/v1/mailboxes",
            json={"from_email": "rep@corp.example", "from_name": "Riley Rep", "transport": "smtp",
                  "smtp_host": sink.host, "smtp_port": sink.port, "smtp_security": "none"},
        )  # fmt: skip
        assert mailbox.status_code == 201, mailbox.text
        sequence = api.post(
            "/api/v1/sequences",
            json={
                "name": "Flow",
                "settings": {"follow_up_days": "weekdays"},
                "steps": [
                    {"type": "email", "subject": "Hallo {{ contact.firstname }}",
                     "body": "<p>Grüße aus München</p>"},
                    {"type": "email", "delay_days": 2, "thread_with_step": 1,
                     "body": "<p>Nachfrage</p>"},
                ],
            },
        )  # fmt: skip
        assert sequence.status_code == 201, sequence.text
        ids = [
            api.post("/api/v1/contacts", json={"email": f"{name}@client.example",
                                               "firstname": name.title(),
                                               "timezone": "Asia/Kolkata"}).json()["id"]
            for name in ("zoe", "omar")
        ]  # fmt: skip
        enroll_url = f"/api/v1/sequences/{sequence.json()['id']}/enrollments"
        body = {"mailbox_id": mailbox.json()["id"], "contacts": [{"contact_id": i} for i in ids]}
        dry = api.post(enroll_url, json={**body, "dry_run": True}).json()["results"]
        assert all(r["ok"] and r["enrollment_id"] is None for r in dry)
        assert dry[0]["schedule"][1]["due_at"].endswith("+05:30")
        assert sink.message_ids() == []
        results = api.post(enroll_url, json=body).json()["results"]
        assert all(r["ok"] for r in results)
        received = wait_for(lambda: sink.message_count == 2 and sink.messages)
        parsed = [BytesParser(policy=default).parsebytes(m.data) for m in received]
        assert sorted(p["To"] for p in parsed) == [
            "Omar <omar@client.example>",
            "Zoe <zoe@client.example>",
        ]
        assert {p["Subject"] for p in parsed} == {"Hallo Zoe", "Hallo Omar"}
        assert all(p["From"] == "Riley Rep <rep@corp.example>" and p["Message-ID"] for p in parsed)
        enrollment_id = results[0]["enrollment_id"]
        sent = api.get("/api/v1/messages", params={"enrollment_id": enrollment_id}).json()
        assert [m["status"] for m in sent["results"]] == ["sent"]
        assert sent["results"][0]["message_id"] in sink.message_ids()
        shown = api.get(f"/api/v1/enrollments/{enrollment_id}").json()
        assert [s["status"] for s in shown["steps"]] == ["sent", "pending"]
        for action, state in (
            ("pause", "paused"),
            ("resume", "active"),
            ("unenroll", "unenrolled"),
        ):
            changed = api.post(f"/api/v1/enrollments/{enrollment_id}/{action}")
            assert changed.status_code == 200, changed.text
            assert changed.json()["state"] == state
        final = api.get(f"/api/v1/enrollments/{enrollment_id}").json()
        assert [s["status"] for s in final["steps"]] == ["sent", "cancelled"]
