"""What every use case needs: the database, the clock and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from cadenza.config import Settings, get_settings
from cadenza.domain.clock import Clock, SystemClock
from cadenza.store.db import Database


@dataclass
class Context:
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    settings: Settings = field(default_factory=get_settings)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Context:
        settings = settings or get_settings()
        return cls(db=Database(settings.database_url), settings=settings)
