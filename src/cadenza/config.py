"""Settings read from CADENZA_* environment variables (documented in the README)."""

from functools import lru_cache

from pydantic import PositiveFloat, PositiveInt, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cadenza.domain.template_limits import TemplateLimits

_TEMPLATE_DEFAULTS = TemplateLimits()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CADENZA_", extra="ignore")

    database_url: str = "sqlite:///./cadenza.db"
    default_timezone: str = "UTC"
    enroll_bulk_limit: int = 50
    daily_enrollment_limit: int = 1000
    allow_multiple_sequences: bool = False
    import_max_bytes: int = 20 * 1024 * 1024
    cli_user: str | None = None
    # Where recipients reach this server: unsubscribe, open and click links start here.
    public_url: str = "http://127.0.0.1:8000"
    # Signs those links and the web app's session cookies; when unset, a random key is
    # generated once and kept in the database (table app_secrets), so every process of
    # one installation shares it and sessions survive a restart.
    # (a SecretStr: settings printed or logged show it as **********)
    secret_key: SecretStr | None = None
    # An open or click this soon after sending is a scanner's, not a person's.
    open_grace_seconds: int = 60
    # What one template render may use, at save, preview, views and in the worker alike
    # (docs/security.md, "Template limits"). A render past a limit fails that one step
    # with template_limit; the others go on.
    template_max_source_chars: PositiveInt = _TEMPLATE_DEFAULTS.max_source_chars
    template_max_output_chars: PositiveInt = _TEMPLATE_DEFAULTS.max_output_chars
    template_max_built_chars: PositiveInt = _TEMPLATE_DEFAULTS.max_built_chars
    template_max_loop_iterations: PositiveInt = _TEMPLATE_DEFAULTS.max_loop_iterations
    template_max_number: PositiveInt = _TEMPLATE_DEFAULTS.max_number
    template_max_nesting: PositiveInt = _TEMPLATE_DEFAULTS.max_nesting
    template_max_seconds: PositiveFloat = _TEMPLATE_DEFAULTS.max_seconds

    def template_limits(self) -> TemplateLimits:
        return TemplateLimits(
            max_source_chars=self.template_max_source_chars,
            max_output_chars=self.template_max_output_chars,
            max_built_chars=self.template_max_built_chars,
            max_loop_iterations=self.template_max_loop_iterations,
            max_number=self.template_max_number,
            max_nesting=self.template_max_nesting,
            max_seconds=self.template_max_seconds,
        )
    # Hosts and networks webhooks may reach although they are inside (loopback, private):
    # comma-separated names, `*.suffix`, addresses or CIDR networks. Empty: public only.
    outbound_allow: str = ""
    # Mail servers members may use for their mailboxes (admins may set any host but
    # link-local and metadata addresses); same syntax. Default: a relay on this machine.
    mailbox_hosts: str = "localhost,127.0.0.1,::1"

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        """Checked at start-up: a bad base would otherwise fail every send's header."""
        value = value.strip().rstrip("/")
        scheme, _, rest = value.partition("://")
        if scheme not in ("http", "https") or not rest or not value.isascii():
            raise ValueError("public_url must be an http:// or https:// URL in ASCII")
        if any(c.isspace() or c in "<>\"'" for c in value):
            raise ValueError("public_url must not contain spaces, quotes or angle brackets")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("secret_key must be at least 32 characters long")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
