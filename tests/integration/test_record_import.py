"""CSV import of records with association columns, through the service and the CLI."""

import re

import pytest

from cadenza.domain.errors import CadenzaError
from cadenza.services.crm import records
from cadenza.services.crm.record_import import import_records

COMPANIES = (
    "Name,domain,employees,contact_emails,primary_contact_email\n"
    "Acme,acme.example,120,ann@corp.example;bob@corp.example,bob@corp.example\n"
    "Globex,globex.example,lots,,\n"
    "Initech,initech.example,30,nobody@corp.example,\n"
    ",nameless.example,1,,\n"
    "Umbrella,umbrella.example,,eve@corp.example,\n"
)


def test_import_with_associations_reports_each_bad_line(ctx, world):
    ann, bob, eve = (world.contact(f"{n}@corp.example") for n in ("ann", "bob", "eve"))
    seen = []
    report = import_records(
        ctx, "companies", COMPANIES.encode(), key="domain", on_progress=lambda *a: seen.append(a)
    )
    assert (report.rows, report.created, report.updated) == (5, 2, 0)
    assert [(e.line, e.code) for e in report.errors] == [
        (3, "validation_error"), (4, "contact_not_found"), (5, "validation_error"),
    ]  # fmt: skip
    assert seen[-1] == (5, 5)
    _, found = records.search_records(ctx, "company")
    assert [r.name for r in found] == ["Acme", "Umbrella"]
    acme = records.get_record(ctx, "company", found[0].id)
    assert acme.record.properties == {"domain": "acme.example", "employees": 120}
    assert {(a.contact_id, a.is_primary) for a in acme.associations} == {
        (ann.id, False), (bob.id, True),
    }  # fmt: skip

    again = "name,domain,employees,contact_email\nACME Corp,acme.example,150,eve@corp.example\n"
    report = import_records(ctx, "company", again.encode(), key="domain")
    assert (report.created, report.updated, report.errors) == (0, 1, [])
    acme = records.get_record(ctx, "company", found[0].id)  # found by its key, renamed
    assert acme.record.name == "ACME Corp" and acme.record.properties["employees"] == 150
    assert {a.contact_id for a in acme.associations} == {ann.id, bob.id, eve.id}


@pytest.mark.parametrize(
    ("data", "key", "code"),
    [
        (b"domain\nacme.example\n", "name", "missing_header"),
        (b"name,colour\nAcme,red\n", "name", "missing_header"),
        (b"name,name\nA,B\n", "name", "missing_header"),
        (b"name\nAcme\n", "domain", "missing_header"),
        (b"name,employees\nAcme,3\n", "employees", "validation_error"),  # not a text key
        (b"name\n\xff\n", "name", "bad_encoding"),
    ],
)
def test_whole_file_problems_import_nothing(ctx, world, data, key, code):
    with pytest.raises(CadenzaError) as caught:
        import_records(ctx, "company", data, key=key)
    assert caught.value.code == code
    assert records.search_records(ctx, "company")[1] == []


def test_cli_records_import_lists_and_automation(cli, tmp_path):
    run = cli  # the shared runner: tests/integration/conftest.py
    run("user", "create", "admin@example.com", "--role", "admin", "--password", "s3cret-enough!")
    contacts_csv = tmp_path / "contacts.csv"
    contacts_csv.write_text("email,firstname\nann@corp.example,Ann\n")
    run("contacts", "import", contacts_csv)
    deals = tmp_path / "deals.csv"
    deals.write_text("name,amount,stage,contact_email\nBig,5000,qualified,ann@corp.example\n"
                     "Bad,10,nowhere,\n")  # fmt: skip
    out = run("records", "import", "deal", deals, ok=False)
    assert "1 created" in out and "line 3: validation_error" in out and "stage" in out
    assert "Big" in run("records", "list", "deals")
    assert "deal" in run("records", "types")
    assert "error not_found" in run("records", "import", "planet", deals, ok=False)
    assert "members" in run("lists", "list")
    rule = tmp_path / "rule.json"
    rule.write_text('{"name": "r", "trigger": {"type": "contact_created"}, '
                    '"action": {"type": "unenroll", "scope": "all"}}')  # fmt: skip
    created = run("automation", "create", rule, "--as", "admin@example.com")
    rule_id = re.search(r"rule (\d+) created", created).group(1)
    assert f"rule {rule_id} off" in run(
        "automation", "disable", rule_id, "--as", "admin@example.com"
    )
    assert "contact_created" in run("automation", "list")
    rule.write_text("[]")
    assert "validation_error" in run("automation", "create", rule, "--as", "admin@example.com",
                                     ok=False)  # fmt: skip
