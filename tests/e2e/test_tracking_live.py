"""Links of a received email followed over real HTTP against a live `cadenza serve`."""

from email.parser import BytesParser
from email.policy import default
from html.parser import HTMLParser

import httpx

from tests.e2e.conftest import wait_for
from tests.support.smtp_sink import SmtpSink


class Hrefs(HTMLParser):
    def __init__(self, html):
        super().__init__()
        self.hrefs = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


def test_click_then_one_click_unsubscribe_over_http(live_server):
    live_server.cli("user", "create", "rep@corp.example", "--role", "member", "--password", "pw")
    token = live_server.cli("token", "create", "--as", "rep@corp.example").strip()
    with SmtpSink() as sink, live_server.client(token) as api:
        mailbox = api.post(
            "/api/v1/mailboxes",
            json={"from_email": "rep@corp.example", "transport": "smtp",
                  "smtp_host": sink.host, "smtp_port": sink.port, "smtp_security": "none"},
        ).json()  # fmt: skip
        sequence = api.post(
            "/api/v1/sequences",
            json={
                "name": "Tracked",
                "settings": {"track_clicks": True},
                "steps": [
                    {"type": "email", "subject": "Hi",
                     "body": '<p><a href="https://example.com/demo?x=1">Book a demo</a></p>'},
                    {"type": "email", "delay_days": 2, "thread_with_step": 1,
                     "body": "<p>Later</p>"},
                ],
            },
        ).json()  # fmt: skip
        contact = api.post("/api/v1/contacts", json={"email": "zoe@client.example"}).json()
        enrolled = api.post(
            f"/api/v1/sequences/{sequence['id']}/enrollments",
            json={"mailbox_id": mailbox["id"], "contacts": [{"contact_id": contact["id"]}]},
        ).json()["results"][0]
        assert enrolled["ok"], enrolled
        [message] = wait_for(lambda: sink.messages)
        email = BytesParser(policy=default).parsebytes(message.data)
        unsubscribe = str(email["List-Unsubscribe"])[1:-1]
        assert unsubscribe.startswith(f"{live_server.url}/u/")
        click, footer = Hrefs(email.get_body(("html",)).get_content()).hrefs
        assert footer == unsubscribe and click.startswith(f"{live_server.url}/c/")

        redirect = httpx.get(click, follow_redirects=False)
        assert redirect.status_code == 302
        assert redirect.headers["location"] == "https://example.com/demo?x=1"

        page = httpx.get(unsubscribe)
        assert page.status_code == 200 and '<form method="post">' in page.text
        assert api.get(f"/api/v1/contacts/{contact['id']}").json()["unsubscribed"] is False
        done = httpx.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
        assert api.get(f"/api/v1/contacts/{contact['id']}").json()["unsubscribed"] is True
        enrollment = api.get(f"/api/v1/enrollments/{enrolled['enrollment_id']}").json()
        assert (enrollment["state"], enrollment["reason"]) == ("unenrolled", "unsubscribed")
        forged = httpx.post(unsubscribe[:-3] + "AAA")
        assert forged.status_code == 404 and forged.json()["error"]["code"] == "not_found"
