"""`cadenza reports show` and `cadenza reports export` on both databases: the figures of
an engine run, CSV out, the policy (a member's own work only), and bad input refused
with one readable line. The CLI's clock is the real one, so periods are given."""

from __future__ import annotations

import csv
import io

import pytest

from cadenza.services.accounts.users import create_user
from tests.conftest import MISSING_ID
from tests.support.reports import run_team_day

DAY = "--from=2026-03-01", "--to=2026-03-02"  # the team day runs on Monday 2 March 2026
ADMIN = "ada@example.com"


@pytest.fixture
def admin(ctx, world):
    return create_user(ctx, ADMIN, role="admin")


def test_show_and_export_as_an_admin_and_as_a_member(cli, ctx, world, admin, tmp_path):
    team = run_team_day(ctx, world)
    shown = cli("reports", "show", "sequence", *DAY, "--as", ADMIN)
    assert "Calls" in shown and "4 (+4)" in shown and "compared with 2026-02-27" in shown
    as_csv = list(csv.DictReader(io.StringIO(
        cli("reports", "show", "rep", *DAY, "--basis", "mailbox_owner", "--csv", "--as", ADMIN)
    )))  # fmt: skip
    by_rep = {row["rep"]: row for row in as_csv}
    assert by_rep[str(team.rep_id)]["enrolled"] == "3" and by_rep[str(team.other_id)]["sent"] == "1"
    exported = list(
        csv.DictReader(io.StringIO(cli("reports", "export", "messages", *DAY, "--as", ADMIN)))
    )
    assert len(exported) == 4 and sum(int(r["replys"]) for r in exported) == 1
    # A member: their own work only, and another rep's is refused.
    out = tmp_path / "tasks.csv"
    cli("reports", "export", "tasks", *DAY, "--out", out, "--as", "rep@example.com")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows and {r["owner_id"] for r in rows} == {str(team.rep_id)}
    refused = cli(
        "reports", "show", "rep", *DAY, "--rep", team.other_id, "--as", "rep@example.com", ok=False
    )
    assert "permission_denied" in refused


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--from", "2026-13-01"), "validation_error"),
        (("--from", "2026-03-05", "--to", "2026-03-01"), "validation_error"),
        (("--rep", MISSING_ID), "user_not_found"),
        (("--sequence", MISSING_ID), "sequence_not_found"),
    ],
)
def test_bad_input_is_one_clear_line(cli, admin, args, code):
    for command in (("show", "sequence"), ("export", "enrollments")):
        refused = cli("reports", *command, *args, "--as", ADMIN, ok=False)
        assert code in refused and "Traceback" not in refused
