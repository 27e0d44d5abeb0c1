"""large installation: the list pages' indexes

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 08:00:00

Issue 15 §4 (bench/large.py): with a million contacts the index page sorted every
contact on each request. One index per sort, in the sort's order with the id as the
tie-break, so a page walks the index and stops:
- ix_contacts_sort_name (lower(coalesce(lastname, '')), lower(coalesce(firstname, '')), id)
- ix_contacts_sort_company (lower(coalesce(company, '')), id)
- ix_contacts_sort_created (created_at, id)
- ix_contacts_sort_timezone (timezone, id): also the timezone filter and the list of
  zones the filter offers.
The email sort already has the unique index on email_key.
- ix_messages_status_id (status, id): the outbox's failed emails newest first, a
  range of the index instead of a walk over every email ever sent.
- ix_enrollments_state_id (state, id): the enrollments page and API by state, newest
  first, without sorting every live enrollment.
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_contacts_sort_name",
        "contacts",
        [sa.text("lower(coalesce(lastname, ''))"), sa.text("lower(coalesce(firstname, ''))"), "id"],
    )
    op.create_index(
        "ix_contacts_sort_company", "contacts", [sa.text("lower(coalesce(company, ''))"), "id"]
    )
    op.create_index("ix_contacts_sort_created", "contacts", ["created_at", "id"])
    op.create_index("ix_contacts_sort_timezone", "contacts", ["timezone", "id"])
    op.create_index("ix_messages_status_id", "messages", ["status", "id"])
    op.create_index("ix_enrollments_state_id", "enrollments", ["state", "id"])


def downgrade() -> None:
    op.drop_index("ix_enrollments_state_id", table_name="enrollments")
    op.drop_index("ix_messages_status_id", table_name="messages")
    for name in (
        "ix_contacts_sort_timezone",
        "ix_contacts_sort_created",
        "ix_contacts_sort_company",
        "ix_contacts_sort_name",
    ):
        op.drop_index(name, table_name="contacts")
