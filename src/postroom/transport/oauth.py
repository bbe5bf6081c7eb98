"""OAuth2 access tokens for sending mail: SMTP XOAUTH2 and Microsoft Graph.

Microsoft tokens come from ``msal`` (client credentials: the app sends as itself, no
user signs in); Google and ``generic`` ones from the refresh-token grant over httpx.
A token lives only in this process's memory, shared by every connection that uses the
same settings, and is fetched again :data:`REFRESH_MARGIN` before it expires, or at
once when a server refuses it. It is never logged, stored or shown.

A token endpoint that refuses the client (wrong secret, revoked grant, consent
missing) is an :class:`OAuthError`, a configuration fault: delivery pauses and the
mail stays queued. One that cannot be reached is a :class:`TokenEndpointError`, a
temporary failure like an SMTP server that is down.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from postroom.errors import TransportConfigError, TransportError
from postroom.settings.glossary import MailSettings

if TYPE_CHECKING:
    import httpx

#: A token is replaced this many seconds before it expires (LabKey uses 5 minutes).
REFRESH_MARGIN = 300.0

Purpose = Literal["smtp", "graph"]


@dataclass(frozen=True, slots=True)
class Provider:
    """Where a provider's tokens come from and which scope each use needs."""

    token_url: str  # may hold {tenant}
    smtp_scope: str
    graph_scope: str


#: The one list of providers: mail.oauth.provider takes these names.
PROVIDERS: dict[str, Provider] = {
    "microsoft": Provider(
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        "https://outlook.office365.com/.default",
        "https://graph.microsoft.com/.default",
    ),
    "google": Provider("https://oauth2.googleapis.com/token", "https://mail.google.com/", ""),
    "generic": Provider("", "", ""),
}


class OAuthError(TransportConfigError):
    """The token endpoint refused this client: fix the settings, then delivery resumes."""

    def __init__(self, message: str, *, fix: str) -> None:
        self.fix = fix
        super().__init__(f"{message}; {fix}")


class TokenEndpointError(TransportError):
    """The token endpoint could not be reached or failed on its side: try again later."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: float  # time.time()
    scopes: tuple[str, ...]

    def fresh(self, now: float) -> bool:
        return now < self.expires_at - REFRESH_MARGIN


def token_url(mail: MailSettings) -> str:
    """mail.oauth.token_url, or the provider's endpoint for the tenant."""
    if mail.oauth_token_url:
        return mail.oauth_token_url
    template = PROVIDERS[mail.oauth_provider].token_url
    return template.format(tenant=mail.oauth_tenant_id or "organizations")


def scope(mail: MailSettings, purpose: Purpose) -> str:
    if mail.oauth_scope:
        return mail.oauth_scope
    provider = PROVIDERS[mail.oauth_provider]
    return provider.graph_scope if purpose == "graph" else provider.smtp_scope


def missing_settings(mail: MailSettings) -> list[str]:
    """The mail.oauth.* settings that must still be set before a token can be asked for."""
    needed = ["oauth.client_id", "oauth.client_secret"]
    if mail.oauth_provider == "microsoft":
        needed.append("oauth.tenant_id")
    else:
        needed.append("oauth.refresh_token")
    if mail.oauth_provider == "generic":
        needed += ["oauth.token_url", "oauth.scope"]
    values = {
        "oauth.client_id": mail.oauth_client_id,
        "oauth.client_secret": mail.oauth_client_secret.reveal(),
        "oauth.tenant_id": mail.oauth_tenant_id,
        "oauth.refresh_token": mail.oauth_refresh_token.reveal(),
        "oauth.token_url": mail.oauth_token_url,
        "oauth.scope": mail.oauth_scope,
    }
    return ["mail." + key for key in needed if not values[key]]


def require_settings(mail: MailSettings) -> None:
    """Raise OAuthError naming every mail.oauth.* setting still missing."""
    missing = missing_settings(mail)
    if missing:
        raise OAuthError(
            f"OAuth2 needs {', '.join(missing)}",
            fix="set them (postroom config set KEY VALUE); see docs/oauth.md",
        )


def http_client(mail: MailSettings) -> httpx.Client:
    """An HTTPS client that trusts what the SMTP connection trusts (system CAs plus
    mail.tls_ca_file) and gives up after mail.timeout."""
    import httpx  # here, not at import: most commands never need it

    context = ssl.create_default_context()
    if mail.tls_ca_file:
        context.load_verify_locations(mail.tls_ca_file)
    if not mail.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return httpx.Client(verify=context, timeout=mail.timeout, follow_redirects=False)


class TokenSource:
    """Access tokens for one set of mail.oauth.* settings and one use (SMTP or Graph)."""

    def __init__(self, mail: MailSettings, purpose: Purpose) -> None:
        self.mail = mail
        self.purpose = purpose
        self.url = token_url(mail)
        self.scope = scope(mail, purpose)
        secret = mail.oauth_client_secret.reveal() + "\0" + mail.oauth_refresh_token.reveal()
        self._key = "\0".join(
            (
                mail.oauth_provider,
                self.url,
                self.scope,
                mail.oauth_client_id,
                hashlib.sha256(secret.encode()).hexdigest(),
            )
        )

    def token(self) -> AccessToken:
        """A token valid for at least REFRESH_MARGIN more seconds."""
        with _LOCK:
            cached = _CACHE.get(self._key)
            if cached is not None and cached.fresh(time.time()):
                return cached
            return self._fetch()

    def refresh(self, refused: AccessToken | None = None) -> AccessToken:
        """A new token, after a server refused ``refused`` (unless another connection
        already replaced it)."""
        with _LOCK:
            cached = _CACHE.get(self._key)
            if cached is not None and refused is not None and cached.value != refused.value:
                return cached
            return self._fetch()

    def _fetch(self) -> AccessToken:
        require_settings(self.mail)
        started = time.time()
        if self.mail.oauth_provider == "microsoft":
            answer = self._from_msal()
        else:
            answer = self._from_refresh_token()
        if "access_token" not in answer:
            raise self._refusal(answer)
        lifetime = float(answer.get("expires_in", 3600))
        scopes = tuple(str(answer.get("scope", self.scope)).split())
        token = AccessToken(str(answer["access_token"]), started + lifetime, scopes)
        _CACHE[self._key] = token
        return token

    def _from_msal(self) -> dict[str, Any]:
        import httpx
        import msal  # only when Microsoft tokens are used: it is slow to import

        authority = self.url.removesuffix("/oauth2/v2.0/token")
        with http_client(self.mail) as client:
            try:
                app = msal.ConfidentialClientApplication(
                    self.mail.oauth_client_id,
                    client_credential=self.mail.oauth_client_secret.reveal(),
                    authority=authority,
                    http_client=client,
                    instance_discovery=False,
                    token_cache=msal.TokenCache(),
                )
                answer: dict[str, Any] = app.acquire_token_for_client(scopes=[self.scope])
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
            except ValueError as exc:  # msal: the authority's discovery document failed
                raise self._unreachable(exc) from None
        return answer

    def _from_refresh_token(self) -> dict[str, Any]:
        import httpx

        form = {
            "grant_type": "refresh_token",
            "client_id": self.mail.oauth_client_id,
            "client_secret": self.mail.oauth_client_secret.reveal(),
            "refresh_token": self.mail.oauth_refresh_token.reveal(),
        }
        if self.mail.oauth_scope:
            form["scope"] = self.mail.oauth_scope
        with http_client(self.mail) as client:
            try:
                response = client.post(self.url, data=form)
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TokenEndpointError(
                f"the token endpoint {self.url} answered HTTP {response.status_code}; "
                "it is retried later"
            )
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": f"HTTP {response.status_code}", "error_description": "not JSON"}
        return answer if isinstance(answer, dict) else {"error": "not a JSON object"}

    def _unreachable(self, exc: Exception) -> TokenEndpointError:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return TokenEndpointError(
            f"cannot reach the token endpoint {self.url} ({reason}); check the network, "
            "mail.oauth.token_url and mail.tls_ca_file"
        )

    def _refusal(self, answer: dict[str, Any]) -> OAuthError:
        error = str(answer.get("error", "no token in the answer"))
        description = " ".join(str(answer.get("error_description", "")).split())
        first = description.split(" Trace ID")[0][:200]
        return OAuthError(
            f"the token endpoint {self.url} refused the client: {error}"
            + (f" ({first})" if first else ""),
            fix=refusal_fix(error, description, self.mail.oauth_provider),
        )


def refusal_fix(error: str, description: str, provider: str) -> str:
    """What an admin does about a token endpoint's refusal (its OAuth2 error code and,
    for Microsoft, the AADSTS number in the description)."""
    if "AADSTS65001" in description or "consent" in description.lower():
        return (
            "an admin must grant consent: Entra admin center > App registrations > the app "
            "> API permissions > Grant admin consent"
        )
    if "AADSTS700016" in description or "AADSTS90002" in description:
        return "check mail.oauth.client_id and mail.oauth.tenant_id (app or tenant not found)"
    if error == "invalid_client":
        return (
            "mail.oauth.client_secret is wrong or expired: create a new client secret and "
            "set it (postroom config set mail.oauth.client_secret)"
        )
    if error == "invalid_grant" and provider != "microsoft":
        return (
            "the refresh token was revoked or has expired: run "
            f"`postroom oauth authorize --provider {provider}` again"
        )
    if error == "invalid_scope":
        return "check mail.oauth.scope (empty: the provider's default)"
    return "check the mail.oauth.* settings against docs/oauth.md"


_LOCK = threading.Lock()  # one token request at a time per process
_CACHE: dict[str, AccessToken] = {}
