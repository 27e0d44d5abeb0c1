"""Reading and writing rows straight from the store, for tests that check (or set up)
what a use case committed, and the one claim call the delivery tests make."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from cadenza.services.delivery import claims

LEASE = timedelta(minutes=1)
ONE_EMAIL = [{"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}]


def rows(ctx, model, *where):
    """Every row of `model` matching `where`, oldest first."""
    with ctx.db.read() as session:
        return list(session.scalars(select(model).where(*where).order_by(model.id)))


def one(ctx, model, pk):
    with ctx.db.read() as session:
        return session.get(model, pk)


def write(ctx, model, pk, **values):
    with ctx.db.transaction() as session:
        session.execute(update(model).where(model.id == pk).values(**values))


def claim(ctx, worker_id, mailbox_id, batch_size=10, horizon=timedelta(minutes=5)):
    return claims.claim_emails(
        ctx, mailbox_id, worker_id, batch_size=batch_size, horizon=horizon, lease=LEASE
    )


def insert_contacts(ctx, count, company):
    """`count` contacts written in one statement (no service: a plan test needs thousands),
    named alike, each at its own domain among 97; `company(i)` is the i-th's company."""
    from sqlalchemy import insert

    from cadenza.store.models import Contact

    now = ctx.clock.now()
    rows = [
        {"email": f"p{i}@c{i % 97}.example", "email_key": f"p{i}@c{i % 97}.example",
         "firstname": "Ann", "lastname": f"Lee{i}", "properties": {}, "company": company(i),
         "blocked": False, "created_at": now, "updated_at": now}
        for i in range(count)
    ]  # fmt: skip
    with ctx.db.transaction() as session:
        session.execute(insert(Contact), rows)
