"""CSV import: good rows in, bad rows reported by line, malformed files refused whole."""

import pytest

from cadenza.domain.errors import CadenzaError
from cadenza.services.crm.contact_import import import_contacts
from cadenza.services.crm.contacts import search_contacts

GOOD = (
    "Email,First Name,last_name,Company,Time Zone,Industry\n"
    "ann@corp.example,Ann,Lee,Corp,Europe/Berlin,retail\n"
    "bob@corp.example,Bob,,Corp,,\n"
)


def all_contacts(ctx):
    return search_contacts(ctx, limit=500).results


def test_imports_rows_with_header_aliases_and_properties(ctx):
    report = import_contacts(ctx, GOOD.encode())
    assert (report.rows, report.created, report.updated, report.errors) == (2, 2, 0, [])
    ann, bob = all_contacts(ctx)
    assert (ann.firstname, ann.lastname, ann.timezone) == ("Ann", "Lee", "Europe/Berlin")
    assert ann.properties == {"Industry": "retail"}
    assert bob.lastname is None and bob.properties == {}


def test_reimport_updates_instead_of_duplicating(ctx):
    import_contacts(ctx, GOOD.encode())
    changed = GOOD.replace("Ann,Lee", "Annie,Lee")
    report = import_contacts(ctx, changed.encode())
    assert (report.created, report.updated) == (0, 2)
    assert [c.firstname for c in all_contacts(ctx)] == ["Annie", "Bob"]


def test_an_address_twice_in_a_file_makes_one_contact_the_last_row_wins(ctx):
    """A batch looks its addresses up once (one query, not one a row): the contact the
    first row created is the one the second row updates, whatever the case."""
    data = "email,firstname\nann@corp.example,Ann\nbob@corp.example,Bob\nANN@Corp.example,Annie\n"
    report = import_contacts(ctx, data.encode())
    assert (report.created, report.updated, report.errors) == (2, 1, [])
    assert [(c.email_key, c.firstname) for c in all_contacts(ctx)] == [
        ("ann@corp.example", "Annie"),
        ("bob@corp.example", "Bob"),
    ]


def test_bad_rows_are_reported_by_line_and_good_rows_imported(ctx):
    data = (
        "email,firstname,timezone\n"
        "ok@x.example,Ok,\n"
        "not-an-email,Bad,\n"
        ",NoEmail,\n"
        "tz@x.example,Tz,Mars/Phobos\n"
        "short@x.example\n"
        "\n"
        "late@x.example,Late,UTC\n"
    )
    report = import_contacts(ctx, data.encode())
    assert [(e.line, e.code) for e in report.errors] == [
        (3, "invalid_email"),
        (4, "missing_email"),
        (5, "invalid_timezone"),
        (6, "malformed_csv"),
    ]
    assert report.created == 2
    assert sorted(c.email for c in all_contacts(ctx)) == ["late@x.example", "ok@x.example"]


def test_semicolon_and_tab_files_are_understood_and_bom_ignored(ctx):
    semicolons = "\ufeffemail;firstname\nann@x.example;Ann\n"
    tabs = "email\tfirstname\nbob@x.example\tBob\n"
    assert import_contacts(ctx, semicolons.encode()).created == 1
    assert import_contacts(ctx, tabs.encode()).created == 1
    assert [c.firstname for c in all_contacts(ctx)] == ["Ann", "Bob"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"email|firstname\nann@x.example|Ann\n", "missing_header"),  # unsupported delimiter
        (b"firstname,lastname\nAnn,Lee\n", "missing_header"),
        (b"", "missing_header"),
        (b"email,email\na@x.example,b@x.example\n", "missing_header"),
        ("email,firstname\nann@x.example,Jos\xe9\n".encode("latin-1"), "bad_encoding"),
        (b'email,firstname\nann@x.example,"unterminated\x00\n', "malformed_csv"),
    ],
)
def test_malformed_files_are_refused_whole(ctx, data, code):
    with pytest.raises(CadenzaError) as caught:
        import_contacts(ctx, data)
    assert caught.value.code == code
    assert all_contacts(ctx) == []


def test_bad_encoding_names_the_line(ctx):
    data = "email,firstname\nann@x.example,Ann\nbob@x.example,Jos\xe9\n".encode("latin-1")
    with pytest.raises(CadenzaError) as caught:
        import_contacts(ctx, data)
    assert caught.value.details == {"line": 3}
    assert "UTF-8" in caught.value.message


def test_file_over_the_limit_is_refused(ctx):
    ctx.settings.import_max_bytes = 1000
    with pytest.raises(CadenzaError) as caught:
        import_contacts(ctx, GOOD.encode() * 50)
    assert caught.value.code == "file_too_large"
    assert all_contacts(ctx) == []


def test_progress_is_reported_per_batch(ctx):
    rows = "".join(f"c{i}@x.example,C{i}\n" for i in range(1200))
    seen = []
    report = import_contacts(
        ctx, ("email,firstname\n" + rows).encode(), on_progress=lambda d, t: seen.append((d, t))
    )
    assert report.created == 1200
    assert seen == [(500, 1200), (1000, 1200), (1200, 1200)]
