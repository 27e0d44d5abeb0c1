"""Settings read from CADENZA_* environment variables (documented in the README)."""

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CADENZA_", extra="ignore")

    database_url: str = "sqlite:///./cadenza.db"
    default_timezone: str = "UTC"
    enroll_bulk_limit: int = 50
    daily_enrollment_limit: int = 1000
    allow_multiple_sequences: bool = False
    import_max_bytes: int = 20 * 1024 * 1024
    cli_user: str | None = None
    # Signs the web app's session cookies; unset, each process makes its own (sessions
    # then end at a restart and are not shared by several web processes).
    secret_key: str | None = None


@lru_cache
def get_settings() -> Settings:
    return Settings()
