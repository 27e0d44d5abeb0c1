"""contacts: statistics on the lowered names a search compares (PostgreSQL), and a
zone's contacts by name

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04 21:00:00

Issue 15 §4 (bench/large.py, the contacts API's search): a search compares
`lower(firstname|lastname|company) LIKE '%word%'`, and PostgreSQL keeps statistics on
columns, not on `lower()` of them. With the word written in, it then guesses the share
of matches from the pattern's length alone (75 of 100,000 contacts for "globex", which
20,000 have), expects to find a page only by reading every contact, and may read and
sort all of them (48 ms) instead of walking them by id and stopping at a page of
matches (0.2 ms): which of the two it picks turns on the sample ANALYZE last took. The
statement is planned with the word for the first ten executions on each connection
(five before psycopg prepares it, five more before PostgreSQL weighs a generic plan,
which does not see the word and walked), so the slow plan came and went with the
connections and the statistics.

Statistics on these expressions (PostgreSQL 14+, `CREATE STATISTICS` on an expression;
no index, so nothing more to write on each insert) let ANALYZE sample the lowered
values, and the planner estimates a word from what the contacts hold: a common word
walks and stops, a rare one is read once, as before. ANALYZE keeps them fresh as it
does the columns' (autovacuum); the upgrade runs it once so they exist at once.
SQLite has no such estimate to correct: no statistics there.

ix_contacts_timezone_name (timezone, lower(coalesce(lastname, '')),
lower(coalesce(firstname, '')), id), on both databases: the contacts index filtered by
a zone in its default order (by name). SQLite read every contact of the zone through
ix_contacts_sort_timezone and sorted them for a page of 50 (8 ms for 8,333 contacts of
50,000; 0.03 ms with this index); the name keys are written as ix_contacts_sort_name
has them, so both databases match the page's ORDER BY.
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

# (name, expression): one object per expression, as a clause names one expression.
STATISTICS = (
    ("st_contacts_lower_firstname", "lower(firstname)"),
    ("st_contacts_lower_lastname", "lower(lastname)"),
    ("st_contacts_lower_company", "lower(company)"),
)


def _supported() -> bool:
    """PostgreSQL 14 or later: the first with statistics on an expression."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return int(bind.exec_driver_sql("SHOW server_version_num").scalar_one()) >= 140000


def upgrade() -> None:
    op.create_index(
        "ix_contacts_timezone_name",
        "contacts",
        [
            "timezone",
            sa.text("lower(coalesce(lastname, ''))"),
            sa.text("lower(coalesce(firstname, ''))"),
            "id",
        ],
    )
    if not _supported():
        return
    for name, expression in STATISTICS:
        op.execute(f"CREATE STATISTICS IF NOT EXISTS {name} ON ({expression}) FROM contacts")
    op.execute("ANALYZE contacts")


def downgrade() -> None:
    op.drop_index("ix_contacts_timezone_name", table_name="contacts")
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _ in STATISTICS:
        op.execute(f"DROP STATISTICS IF EXISTS {name}")
