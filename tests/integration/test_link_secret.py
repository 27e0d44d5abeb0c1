"""The link-signing key: generated once per installation and shared through the database,
sealed under a key that is not in it."""

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from cadenza.config import Settings
from cadenza.services.accounts.link_secret import link_secret
from cadenza.services.context import Context
from cadenza.store.db import Database
from cadenza.store.models import AppSecret


def test_generated_once_and_shared_by_every_process(ctx):
    key = link_secret(ctx)
    assert len(key) >= 43
    # another process: its own database handle, nothing cached
    other = Context(db=Database(ctx.db.url), clock=ctx.clock, settings=ctx.settings)
    try:
        assert link_secret(other) == key
    finally:
        other.db.dispose()
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(AppSecret)) == 1


def test_a_key_created_in_a_transaction_that_rolls_back_is_not_kept(ctx):
    with pytest.raises(RuntimeError), ctx.db.transaction() as session:
        lost = link_secret(ctx, session)
        raise RuntimeError("the claim failed")
    assert link_secret(ctx) != lost


def test_a_configured_key_keeps_signing_links_and_is_stored_sealed_never_printed(ctx):
    """An installation that set CADENZA_SECRET_KEY signed its links with it: it stays
    the link key (links already sent keep working), but the database holds it sealed."""
    settings = Settings(database_url="sqlite://", secret_key="k" * 40)
    configured = Context(db=ctx.db, clock=ctx.clock, settings=settings)
    assert link_secret(configured) == b"k" * 40
    assert "k" * 40 not in repr(settings) and "k" * 40 not in str(settings.model_dump())
    with ctx.db.read() as session:
        stored = session.scalar(select(AppSecret.value))
    assert stored.startswith("sealed:v1:") and "k" * 40 not in stored


@pytest.mark.parametrize(
    "field", [{"secret_key": "short"}, {"public_url": "ftp://x"}, {"public_url": "http://a b"}]
)
def test_bad_settings_are_refused_at_start(field):
    with pytest.raises(ValidationError):
        Settings(**field)


def test_public_url_loses_its_trailing_slash():
    assert Settings(public_url="https://mail.example.com/").public_url == "https://mail.example.com"
