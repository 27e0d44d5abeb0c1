"""The retention settings (docs/contact-data.md): off unless set, and bounded, so that a
typo cannot make the worker's date arithmetic overflow on every tick."""

import pytest
from pydantic import ValidationError

from cadenza.config import Settings


def test_retention_is_off_unless_set(monkeypatch):
    for name in ("BODY_DAYS", "EVENT_DAYS", "INTERVAL_MINUTES"):
        monkeypatch.delenv(f"CADENZA_RETENTION_{name}", raising=False)
    settings = Settings()
    assert (settings.retention_body_days, settings.retention_event_days) == (None, None)
    assert settings.retention_interval_minutes == 60
    monkeypatch.setenv("CADENZA_RETENTION_BODY_DAYS", "365")
    assert Settings().retention_body_days == 365


@pytest.mark.parametrize(
    "bad",
    [
        {"retention_body_days": 0},
        {"retention_event_days": -1},
        {"retention_body_days": 10**9},  # now - 10**9 days is before year 1
        {"retention_interval_minutes": 0},
        {"retention_interval_minutes": 10**12},
    ],
)
def test_nonsense_is_refused_at_start(bad):
    with pytest.raises(ValidationError):
        Settings(**bad)
