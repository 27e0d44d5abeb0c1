"""Settings read from CADENZA_* environment variables (documented in the README)."""

import ipaddress
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cadenza.domain.enums import Exclusivity, OAuthProvider, Reenrollment
from cadenza.domain.oauth_providers import OVERRIDABLE, OAuthProviderConfig, configure
from cadenza.domain.sequence_settings import MAX_MIN_DAYS_SINCE_EMAILED, EnrollmentRules
from cadenza.domain.template_limits import TemplateLimits

_TEMPLATE_DEFAULTS = TemplateLimits()


class Settings(BaseSettings):
    # hide_input_in_errors: a refused CADENZA_SECRET_KEY (too short) must not be echoed
    # into the error a unit writes to the journal.
    model_config = SettingsConfigDict(
        env_prefix="CADENZA_", extra="ignore", hide_input_in_errors=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments and CADENZA_* variables only. Cadenza reads no .env file and no
        secrets directory (deploy/ hands the environment over through systemd), and each
        source is a pass over all of these fields on every Settings(): with both unused
        ones, building the settings took twice as long (each CLI command does it)."""
        return (init_settings, env_settings)

    database_url: str = "sqlite:///./cadenza.db"
    default_timezone: str = "UTC"
    enroll_bulk_limit: int = 50
    daily_enrollment_limit: int = 1000
    allow_multiple_sequences: bool = False
    # The installation's enrollment rules (docs/enrollment.md, "Enrollment rules"); a
    # sequence's own `enrollment_rules` win. Exclusivity unset follows the older
    # CADENZA_ALLOW_MULTIPLE_SEQUENCES: false (the default) is `any`, true is `none`.
    enrollment_exclusivity: Exclusivity | None = None
    enrollment_reenrollment: Reenrollment = Reenrollment.WHEN_NOT_LIVE
    enrollment_min_days_since_emailed: Annotated[
        int, Field(ge=0, le=MAX_MIN_DAYS_SINCE_EMAILED)
    ] = 0
    import_max_bytes: int = 20 * 1024 * 1024
    cli_user: str | None = None
    # Where recipients reach this server: unsubscribe, open and click links start here.
    public_url: str = "http://127.0.0.1:8000"
    # The key that seals stored secrets (mailbox passwords, webhook secrets, the key that
    # signs links and session cookies); when unset, a key file is created once beside the
    # SQLite database (see services/accounts/keys.py and docs/security.md). Never in the database.
    # (a SecretStr: settings printed or logged show it as **********)
    secret_key: SecretStr | None = None
    # Earlier secret keys, comma-separated: still open what they sealed, during a rotation.
    old_secret_keys: SecretStr | None = None
    # Where the key file is when CADENZA_SECRET_KEY is unset (default: beside the database).
    key_file: str | None = None
    # scrypt work factor for login passwords: log2 of N (r=8, p=3; 2^15 uses 32 MiB).
    # TEST-ONLY knob: tests lower it to stay fast. Production keeps the default.
    password_hash_cost: int = 15
    # Proxies whose X-Forwarded-For is believed (comma-separated addresses or networks).
    # None by default: the peer address is the client, and nobody can claim another.
    trusted_proxies: str = ""
    # Hosts a mailbox may log in to without encryption (comma-separated): a local relay.
    plain_auth_hosts: str = "localhost,127.0.0.1,::1"
    # An open or click this soon after sending is a scanner's, not a person's.
    open_grace_seconds: int = 60
    # The retention policy (docs/contact-data.md), off when unset: email bodies older than
    # this many days are replaced by a note; open and click events older than that are
    # deleted. The worker checks at most once per interval.
    retention_body_days: Annotated[int, Field(gt=0, le=36_500)] | None = None
    retention_event_days: Annotated[int, Field(gt=0, le=36_500)] | None = None
    retention_interval_minutes: Annotated[int, Field(gt=0, le=525_600)] = 60
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

    def enrollment_rules(self) -> EnrollmentRules:
        """The installation's default rules, every one set."""
        exclusivity = self.enrollment_exclusivity or (
            Exclusivity.NONE if self.allow_multiple_sequences else Exclusivity.ANY
        )
        return EnrollmentRules(
            exclusivity=exclusivity,
            reenrollment=self.enrollment_reenrollment,
            min_days_since_emailed=self.enrollment_min_days_since_emailed,
        )

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

    # Operations (docs/operations.md). GET /metrics answers only a client sending this
    # token as `Authorization: Bearer <token>`; unset, /metrics on the main address is 404.
    metrics_token: SecretStr | None = None
    # host:port of a second listener serving only /metrics, without a token (the address
    # is the protection: bind it to a private interface). Started by `cadenza serve`.
    metrics_address: str | None = None
    # "text" (a line per record, for a terminal) or "json" (a JSON object per line).
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("metrics_token must be at least 16 characters long")
        return value

    @field_validator("metrics_address")
    @classmethod
    def _metrics_address(cls, value: str | None) -> str | None:
        if value:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("metrics_address must be host:port, e.g. 127.0.0.1:9108")
        return value or None

    # OAuth 2.0 mailboxes (docs/mailboxes.md): per provider, the client registered
    # in its console (CADENZA_OAUTH_<PROVIDER>_CLIENT_ID/_CLIENT_SECRET) and where its
    # endpoints and mail servers are (the presets name no host: set them from the
    # provider's documentation). ADVANCED/TEST: any preset field may be overridden, which
    # is how the tests point a preset at the authorization server on loopback.
    # The secret is a SecretStr: settings printed or logged show **********.
    oauth_google_client_id: str | None = None
    oauth_google_client_secret: SecretStr | None = None
    oauth_google_authorize_url: str | None = None
    oauth_google_token_url: str | None = None
    oauth_google_revoke_url: str | None = None
    oauth_google_userinfo_url: str | None = None
    oauth_google_scopes: str | None = None
    oauth_google_smtp_host: str | None = None
    oauth_google_smtp_port: int | None = None
    oauth_google_smtp_security: str | None = None
    oauth_google_imap_host: str | None = None
    oauth_google_imap_port: int | None = None
    oauth_google_imap_security: str | None = None
    oauth_microsoft_client_id: str | None = None
    oauth_microsoft_client_secret: SecretStr | None = None
    oauth_microsoft_authorize_url: str | None = None
    oauth_microsoft_token_url: str | None = None
    oauth_microsoft_revoke_url: str | None = None
    oauth_microsoft_userinfo_url: str | None = None
    oauth_microsoft_scopes: str | None = None
    oauth_microsoft_smtp_host: str | None = None
    oauth_microsoft_smtp_port: int | None = None
    oauth_microsoft_smtp_security: str | None = None
    oauth_microsoft_imap_host: str | None = None
    oauth_microsoft_imap_port: int | None = None
    oauth_microsoft_imap_security: str | None = None
    oauth_generic_client_id: str | None = None
    oauth_generic_client_secret: SecretStr | None = None
    oauth_generic_authorize_url: str | None = None
    oauth_generic_token_url: str | None = None
    oauth_generic_revoke_url: str | None = None
    oauth_generic_userinfo_url: str | None = None
    oauth_generic_scopes: str | None = None
    oauth_generic_smtp_host: str | None = None
    oauth_generic_smtp_port: int | None = None
    oauth_generic_smtp_security: str | None = None
    oauth_generic_imap_host: str | None = None
    oauth_generic_imap_port: int | None = None
    oauth_generic_imap_security: str | None = None
    # How long before its expiry an access token is refreshed (a send in flight must
    # not outlive it), and how long a started connect may take to come back.
    oauth_refresh_margin_seconds: PositiveInt = 300
    oauth_state_ttl_seconds: PositiveInt = 600

    def oauth_provider(self, provider: OAuthProvider | str) -> OAuthProviderConfig:
        """A provider's preset with this installation's client and overrides laid over it."""
        provider = OAuthProvider(provider)
        prefix = f"oauth_{provider.value}_"
        secret = getattr(self, prefix + "client_secret")
        return configure(
            provider,
            getattr(self, prefix + "client_id"),
            secret.get_secret_value() if secret is not None else None,
            {name: getattr(self, prefix + name) for name in OVERRIDABLE},
        )

    def oauth_providers(self) -> list[OAuthProviderConfig]:
        """The providers a rep may connect with here: those configured."""
        return [c for c in map(self.oauth_provider, OAuthProvider) if c.configured]

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

    @field_validator("password_hash_cost")
    @classmethod
    def _password_hash_cost(cls, value: int) -> int:
        if not 4 <= value <= 20:
            raise ValueError("password_hash_cost must be from 4 to 20")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {part!r} is no address or network") from None
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        parts = filter(None, (p.strip() for p in self.trusted_proxies.split(",")))
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts)

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("secret_key must be at least 32 characters long")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
