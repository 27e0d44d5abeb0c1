"""What every use case needs: the database, the clock and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from cadenza.config import Settings, get_settings
from cadenza.domain import template_limits
from cadenza.domain.clock import Clock, SystemClock
from cadenza.store.db import Database


@dataclass
class Context:
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    settings: Settings = field(default_factory=get_settings)

    def __post_init__(self) -> None:
        # Templates render in the domain, which has no settings: one installation per
        # process, so its limits are installed once, for every render (config.py).
        if isinstance(self.settings, Settings):
            template_limits.configure(self.settings.template_limits())

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Context:
        settings = settings or get_settings()
        return cls(db=Database(settings.database_url), settings=settings)
