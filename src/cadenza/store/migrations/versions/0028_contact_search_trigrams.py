"""contacts: a trigram index for the search (PostgreSQL, when pg_trgm is available)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-04 23:30:00

Issue 15 §4 (bench/large.py, the contacts index's search). A search compares
`email_key`, `lower(firstname)`, `lower(lastname)` and `lower(company)` with
`LIKE '%word%'` (services/crm/contacts.py, `search_condition`), which no b-tree index
serves: a page of matches walked the contacts in the page's order until it had found
one, and the capped count of matches (contact_index.COUNT_CAP) read contacts until it
had counted 10,001. For a word a fifth of the contacts hold that was 50,000 contacts
read for the count, whatever the installation's size; for a word few or none hold it
was every contact, for the page and for the count.

pg_trgm's GIN operator class indexes the three-letter pieces of each value, and
PostgreSQL uses it for `LIKE '%word%'` (a word of three letters or more): a bitmap scan
of this one index (a multicolumn GIN index serves a condition on any of its columns,
and the search's OR of four becomes a BitmapOr of four scans of it) finds the matching
contacts without reading the others. The planner still walks the page's sort index for
a common word, where a page of matches comes after a few hundred contacts.

The expressions are the search's exactly (`folded()` writes `lower(x)` on PostgreSQL),
or the planner could not match them. pg_trgm ships with PostgreSQL's contrib package
and is a trusted extension (13+): the database's owner may create it, no superuser
needed. Where the server does not list it in pg_available_extensions the upgrade
creates nothing and the search reads as before; SQLite has nothing like it (its search
compares the columns, and stays a walk). The downgrade drops the index and leaves the
extension, which other objects may have come to use.

Writing a contact now updates this index too (GIN's pending list takes it, folded in
batches by autovacuum): the CSV import's rate in docs/benchmarks.md, "Large
installation", is measured with it. Building it on an existing installation holds
writes to contacts for the time it takes (8.3 s for 1,000,000 contacts, 97 MB, with
the default maintenance_work_mem).

Even through this index, counting a common word's matches rechecks each one: the
contacts index counts only as far as the pages around the one shown (contact_index
`count_limit`, docs/ui.md), so a word a fifth of the contacts hold costs its page about
what it costs on a small installation.
"""

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

INDEX = "ix_contacts_search_trgm"
# The search's comparisons, in the text services/crm/contacts.py sends them.
EXPRESSIONS = ("email_key", "lower(firstname)", "lower(lastname)", "lower(company)")


def _trigrams_available() -> bool:
    """PostgreSQL with pg_trgm installed on the server (created or not in this database)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        bind.exec_driver_sql(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"
        ).scalar()
    )


def upgrade() -> None:
    if not _trigrams_available():
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    columns = ", ".join(f"({e}) gin_trgm_ops" for e in EXPRESSIONS)
    op.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON contacts USING gin ({columns})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
