"""What connecting a mailbox with OAuth 2.0 needs to know about each provider.

A preset holds what does not change between installations: the provider's published
endpoints, its mail servers with their ports and security, the scopes that let a token
send over SMTP and read over IMAP, the extra authorization parameters that make it hand
out a refresh token. What belongs to one installation (the client id and secret
registered in the provider's console) comes from the settings
(`CADENZA_OAUTH_<PROVIDER>_CLIENT_ID/_CLIENT_SECRET`, config.py), which `configure`
lays over the preset; any preset field may be overridden the same way (a Microsoft
tenant of one's own, or the tests' authorization server on loopback: no test ever
reaches a provider). The generic provider has no preset endpoints: all come from the
settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cadenza.domain.enums import OAuthProvider, SmtpSecurity

# Fields an installation may override on any preset (CADENZA_OAUTH_<PROVIDER>_<FIELD>).
OVERRIDABLE = (
    "authorize_url",
    "token_url",
    "revoke_url",
    "userinfo_url",
    "scopes",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "imap_host",
    "imap_port",
    "imap_security",
)


@dataclass(frozen=True)
class OAuthProviderConfig:
    """One provider as this installation uses it. `client_secret` never shows in a repr."""

    provider: OAuthProvider
    label: str
    scopes: tuple[str, ...]
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    authorize_url: str = ""
    token_url: str = ""
    revoke_url: str = ""
    userinfo_url: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    imap_host: str = ""
    imap_port: int = 993
    imap_security: SmtpSecurity = SmtpSecurity.TLS
    # Added to the authorization URL: what makes the provider issue a refresh token.
    authorize_params: tuple[tuple[str, str], ...] = ()

    @property
    def configured(self) -> bool:
        """Usable: registered (client id), told where to send the user and the code, and
        where the mail goes."""
        return not self.missing

    @property
    def missing(self) -> tuple[str, ...]:
        """The settings still unset, named as the admin sets them."""
        needed = ("client_id", "authorize_url", "token_url", "smtp_host")
        prefix = f"CADENZA_OAUTH_{self.provider.value.upper()}_"
        return tuple(prefix + name.upper() for name in needed if not getattr(self, name))


PRESETS: dict[OAuthProvider, OAuthProviderConfig] = {
    OAuthProvider.GOOGLE: OAuthProviderConfig(
        provider=OAuthProvider.GOOGLE,
        label="Google",
        # The one scope Gmail accepts for SMTP and IMAP; the OpenID ones name the account.
        scopes=("openid", "email", "https://mail.google.com/"),
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        revoke_url="https://oauth2.googleapis.com/revoke",
        userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
        smtp_host="smtp.gmail.com",
        imap_host="imap.gmail.com",
        smtp_port=587,
        smtp_security=SmtpSecurity.STARTTLS,
        imap_port=993,
        imap_security=SmtpSecurity.TLS,
        # offline: a refresh token; consent: a new one on every connect (else only the first).
        authorize_params=(("access_type", "offline"), ("prompt", "consent")),
    ),
    OAuthProvider.MICROSOFT: OAuthProviderConfig(
        provider=OAuthProvider.MICROSOFT,
        label="Microsoft",
        # offline_access is Microsoft's word for "issue a refresh token".
        scopes=(
            "openid",
            "email",
            "offline_access",
            "https://outlook.office.com/SMTP.Send",
            "https://outlook.office.com/IMAP.AccessAsUser.All",
        ),
        # The "common" tenant takes work and personal accounts; a single-tenant app
        # registration sets CADENZA_OAUTH_MICROSOFT_AUTHORIZE_URL/_TOKEN_URL to its own.
        authorize_url="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_url="https://login.microsoftonline.com/common/oauth2/v2.0/token",
        userinfo_url="https://graph.microsoft.com/oidc/userinfo",
        smtp_host="smtp.office365.com",
        imap_host="outlook.office365.com",
        smtp_port=587,
        smtp_security=SmtpSecurity.STARTTLS,
        imap_port=993,
        imap_security=SmtpSecurity.TLS,
        authorize_params=(("prompt", "select_account"),),
    ),
    OAuthProvider.GENERIC: OAuthProviderConfig(
        provider=OAuthProvider.GENERIC,
        label="OAuth 2.0",
        scopes=("openid", "email", "offline_access"),
    ),
}


def configure(
    provider: OAuthProvider,
    client_id: str | None,
    client_secret: str | None,
    overrides: dict[str, str | int | None],
) -> OAuthProviderConfig:
    """The preset with this installation's registration and settings laid over it.

    `overrides` holds the OVERRIDABLE fields that are set (None and "" leave the
    preset's value); scopes are space- or comma-separated, as consoles show them.
    """
    unknown = set(overrides) - set(OVERRIDABLE)
    if unknown:
        raise ValueError(f"no OAuth setting {', '.join(sorted(unknown))}")
    changes: dict[str, object] = {}
    for name, value in overrides.items():
        if value is None or value == "":
            continue
        if name == "scopes":
            changes[name] = tuple(s for s in str(value).replace(",", " ").split() if s)
        elif name.endswith("_port"):
            changes[name] = int(value)
        elif name.endswith("_security"):
            changes[name] = SmtpSecurity(str(value))
        else:
            changes[name] = str(value).strip()
    base = PRESETS[provider]
    return replace(base, client_id=client_id or "", client_secret=client_secret or "", **changes)  # type: ignore[arg-type]
