"""contacts: PostgreSQL statistics on the lowered names a search compares

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04 21:00:00

Issue 15 §4 (bench/large.py, the contacts API's search): a search compares
`lower(firstname|lastname|company) LIKE '%word%'`, and PostgreSQL keeps statistics on
columns, not on `lower()` of them. With the word written in, it then guesses the share
of matches from the pattern's length alone (about 0.1% for "globex", which a fifth of
the contacts have), expects to find a page only by reading every contact, and reads
and sorts all of them (48 ms at 100,000 contacts) instead of walking them by id and
stopping at a page of matches (0.2 ms). It answered fast only once psycopg had
prepared the statement and PostgreSQL had switched to its generic plan, which does not
see the word: ten requests on each connection first, every time a connection was new.

Statistics on these expressions (PostgreSQL 14+, `CREATE STATISTICS` on an expression;
no index, so nothing more to write on each insert) let ANALYZE sample the lowered
values, and the planner estimates a word from what the contacts hold: a common word
walks and stops, a rare one is read once, as before. ANALYZE keeps them fresh as it
does the columns' (autovacuum); the upgrade runs it once so they exist at once.
SQLite has no such estimate to correct: nothing is done there.
"""

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
    if not _supported():
        return
    for name, expression in STATISTICS:
        op.execute(f"CREATE STATISTICS IF NOT EXISTS {name} ON ({expression}) FROM contacts")
    op.execute("ANALYZE contacts")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _ in STATISTICS:
        op.execute(f"DROP STATISTICS IF EXISTS {name}")
