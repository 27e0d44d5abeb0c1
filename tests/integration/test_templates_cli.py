"""`cadenza templates` and `cadenza snippets` end to end (both databases): create, list
with search, show with figures, and refusals as one clear line."""

import re


def test_templates_and_snippets_from_the_command_line(cli, tmp_path):
    cli("db", "upgrade")
    cli("user", "create", "ops@example.com", "--role", "admin", "--password", "s3cret")
    body = tmp_path / "body.html"
    body.write_text("<p>Hi {{ contact.firstname }}</p>", encoding="utf-8")
    made = cli("templates", "create", "--name", "Opener", "--subject", "Hello there",
               "--body", body, "--folder", "Outbound", "--sharing", "team_use")  # fmt: skip
    template_id = re.fullmatch(r"template (\d+) created: Opener\n", made).group(1)
    listed = cli("templates", "list", "--search", "hello")
    assert "Opener" in listed and "Outbound" in listed and "team_use" in listed
    assert "Opener" not in cli("templates", "list", "--folder", "Elsewhere")
    shown = cli("templates", "show", template_id)
    assert "Hello there" in shown and "used in 0 steps" in shown and "reply rate —" in shown
    body.write_text('<p>{{ "x" * 10**9 }}</p>', encoding="utf-8")
    refused = cli("templates", "create", "--name", "Boom", "--subject", "S", "--body", body,
                  ok=False)  # fmt: skip
    assert "template_limit" in refused and "Traceback" not in refused

    assert "snippet" in cli("snippets", "create", "sig-short", "Best, {{ sender.firstname }}")
    assert "#sig-short" in cli("snippets", "list")
    assert "conflict" in cli("snippets", "create", "sig-short", "again", ok=False)
    assert "validation_error" in cli("snippets", "create", "Bad Name", "x", ok=False)
