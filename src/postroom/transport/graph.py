"""Microsoft Graph: the message's MIME, base64, to ``POST {base}/users/{from}/sendMail``.

For tenants where SMTP is off, as LabKey's mail_graph provider does. The token is an
app-only one (client credentials, ``Mail.Send`` application permission) from
:mod:`postroom.transport.oauth`. Graph takes a message for all its recipients or for
none, so every recipient gets the same verdict:

- 202: sent; 400 and 413: permanent (the message itself is refused);
- 429, 503 and other 5xx: temporary, no sooner than ``Retry-After``;
- 401: a new token once, then a configuration fault; 403 and 404 (no such mailbox):
  configuration faults. Delivery pauses and the mail stays queued.

Graph reads the recipients from the MIME headers, not from an envelope, so the headers
are made to name exactly the envelope's recipients (see :func:`graph_mime`).
"""

from __future__ import annotations

import base64
import email.utils
import time
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import TYPE_CHECKING
from urllib.parse import quote

from postroom.errors import TransportConfigError, TransportError, Verdict
from postroom.message.envelope import Envelope
from postroom.settings import Home, Settings
from postroom.transport.base import RecipientResult, SendResult, Transport
from postroom.transport.oauth import AccessToken, OAuthError, TokenSource, http_client

if TYPE_CHECKING:
    import httpx

#: Retry-After beyond this is not believed (an hour): the retry policy takes over.
LONGEST_RETRY_AFTER = 3600.0


def sending_mailbox(settings: Settings) -> str:
    """The mailbox Graph sends as: mail.username, else mail.from's address."""
    mail = settings.mail
    return mail.username or email.utils.parseaddr(mail.from_)[1]


class GraphTransport(Transport):
    """Sends through Microsoft Graph; see the module docstring."""

    def __init__(self, settings: Settings, *, home: Home) -> None:
        super().__init__(settings, home=home)
        mail = settings.mail
        self.mailbox = sending_mailbox(settings)
        self.url = f"{mail.graph_base_url.rstrip('/')}/users/{quote(self.mailbox)}/sendMail"
        self.tokens = TokenSource(mail, "graph")
        self._client: httpx.Client | None = None
        self._hold_until = 0.0  # time.time() before which Graph asked us not to call

    def open(self) -> None:
        if self.settings.mail.oauth_provider != "microsoft":
            raise OAuthError(
                "mail.transport=graph sends through Microsoft Graph",
                fix="set mail.oauth.provider=microsoft (or use mail.transport=smtp)",
            )
        if self._client is None:
            self._client = http_client(self.settings.mail)
        self.tokens.token()  # a refused client pauses delivery before any message

    def send(self, envelope: Envelope, data: bytes) -> SendResult:
        if self._client is None:
            self.open()
        now = time.time()
        if now < self._hold_until:
            wait = self._hold_until - now
            return _all(envelope, "temporary", f"Graph asked to wait {wait:.0f}s more", wait)
        body = base64.b64encode(graph_mime(data, envelope.recipients))
        token = self.tokens.token()
        response = self._post(body, token)
        if response.status_code == 401:  # revoked or expired early: one new token
            response = self._post(body, self.tokens.refresh(token))
        return self._result(envelope, response)

    def _post(self, body: bytes, token: AccessToken) -> httpx.Response:
        import httpx

        assert self._client is not None
        headers = {"Authorization": f"Bearer {token.value}", "Content-Type": "text/plain"}
        try:
            return self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise TransportError(
                f"Microsoft Graph did not answer within {self.settings.mail.timeout:g}s; "
                "the message is retried later"
            ) from None
        except httpx.HTTPError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise TransportError(
                f"cannot reach Microsoft Graph at {self.settings.mail.graph_base_url} "
                f"({reason}); check the network and mail.graph.base_url"
            ) from None

    def _result(self, envelope: Envelope, response: httpx.Response) -> SendResult:
        status = response.status_code
        request_id = response.headers.get("request-id", "")
        detail = f"Graph sendMail: HTTP {status} {_graph_error(response)}".rstrip()
        if request_id:
            detail += f" (request-id {request_id})"
        if 200 <= status < 300:
            return _all(envelope, "sent", detail)
        if status in (401, 403, 404):
            raise TransportConfigError(f"{detail}; {_config_fix(status, self.mailbox)}")
        if status == 429 or status >= 500:
            wait = _retry_after(response.headers.get("retry-after"))
            if wait:
                self._hold_until = time.time() + wait
            return _all(envelope, "temporary", detail, wait)
        return _all(envelope, "permanent", detail)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _all(
    envelope: Envelope, verdict: Verdict, detail: str, retry_after: float | None = None
) -> SendResult:
    return SendResult(
        tuple(RecipientResult(r, None, detail, verdict, retry_after) for r in envelope.recipients)
    )


def _graph_error(response: httpx.Response) -> str:
    """Graph's error code and message, if the body has them."""
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return ""
    if not isinstance(error, dict):
        return ""
    text = " ".join(str(error.get("message", "")).split())[:200]
    return f"{error.get('code', '')}: {text}".strip(": ")


def _config_fix(status: int, mailbox: str) -> str:
    if status == 404:
        return f"no mailbox {mailbox} in the tenant: set mail.username (or mail.from) to one"
    if status == 403:
        return (
            f"the app may not send as {mailbox}: give it the Mail.Send application "
            "permission with admin consent, and check any application access policy"
        )
    return "the token was refused twice: check mail.oauth.tenant_id, client_id and secret"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), LONGEST_RETRY_AFTER)


def graph_mime(data: bytes, recipients: tuple[str, ...]) -> bytes:
    """``data`` with headers naming exactly ``recipients``, since Graph sends to the
    To, Cc and Bcc it finds. Recipients missing from To and Cc (blind copies) get a
    Bcc line, which Exchange removes. When the headers name someone who must not get
    it (a retry for some recipients, mail.redirect_to), To and Cc become X-Original-To
    and X-Original-Cc and To names the recipients."""
    end = data.find(b"\r\n\r\n")
    head, body = (data, b"") if end < 0 else (data[: end + 2], data[end + 2 :])
    parsed = BytesHeaderParser(policy=default_policy).parsebytes(head)
    named = {
        address.lower()
        for field in ("To", "Cc")
        for _, address in email.utils.getaddresses([str(v) for v in parsed.get_all(field, [])])
        if address
    }
    wanted = {r.lower() for r in recipients}
    fields = _split_fields(head)
    if named <= wanted:
        kept = [f for f in fields if _name(f) != b"bcc"]
        extra = [r for r in recipients if r.lower() not in named]
        if extra:
            kept.append(b"Bcc: " + ", ".join(extra).encode() + b"\r\n")
        return b"".join(kept) + body
    renamed = []
    for f in fields:
        name = _name(f)
        if name in (b"to", b"cc"):
            renamed.append(b"X-Original-" + f)
        elif name != b"bcc":
            renamed.append(f)
    renamed.append(b"To: " + ", ".join(recipients).encode() + b"\r\n")
    return b"".join(renamed) + body


def _split_fields(head: bytes) -> list[bytes]:
    """Header fields with their folded lines, each ending in CRLF."""
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        elif line.strip():
            fields.append(line)
    return fields


def _name(field: bytes) -> bytes:
    return field.split(b":", 1)[0].strip().lower()
