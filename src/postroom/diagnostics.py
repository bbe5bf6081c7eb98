"""``test-email``: try the SMTP settings step by step and explain the first failure.

:func:`run_test_email` walks a real session with the configured server: resolve,
connect, TLS and certificate, greeting, EHLO capabilities, login, then MAIL FROM,
RCPT TO and DATA of a short test message. Each step is timed; the first one that
fails ends the run with what went wrong and the likely fix. Nothing is printed here:
the CLI and the HTTP API show the :class:`Report` each in its own way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from postroom.addresses import parse_address
from postroom.diagnostics_oauth import graph_steps, token_steps
from postroom.errors import SMTPProtocolError, TransportError, TransportTimeout
from postroom.message.compose import ComposePolicy, compose
from postroom.message.envelope import Envelope
from postroom.message.model import OutgoingMessage
from postroom.settings import Home, Settings
from postroom.transport import smtp_tls
from postroom.transport.smtp_auth import BASIC_AUTH_OFF, SWITCH_TO_OAUTH
from postroom.transport.smtp_client import SMTPClient
from postroom.transport.smtp_protocol import Reply, choose_mechanism

TEST_SUBJECT = "postroom test message"
#: The notification type header (mail.type_header) of the test message.
TEST_TYPE = "test_email"


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step: whether it worked, how long it took, what was seen, and the fix."""

    name: str
    title: str
    ok: bool
    seconds: float
    detail: str
    fix: str | None = None
    data: dict[str, object] | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "ok": self.ok,
            "seconds": round(self.seconds, 6),
            "detail": self.detail,
            "fix": self.fix,
            **({"data": self.data} if self.data is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class Report:
    server: str
    security: str
    to: str
    steps: tuple[StepResult, ...]
    warnings: tuple[str, ...] = ()
    transcript: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def failed(self) -> StepResult | None:
        return next((step for step in self.steps if not step.ok), None)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "server": self.server,
            "security": self.security,
            "to": self.to,
            "warnings": list(self.warnings),
            "steps": [step.to_json() for step in self.steps],
            "transcript": [{"direction": d, "line": line} for d, line in self.transcript],
        }


#: A step: returns what it saw (and data for JSON), raises what went wrong.
Action = Callable[[], str | tuple[str, dict[str, object]]]


class _StepFailed(Exception):
    def __init__(self, detail: str, fix: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


@dataclass
class _Runner:
    clock: Callable[[], float]
    steps: list[StepResult] = field(default_factory=list)

    def run(
        self, name: str, title: str, action: Callable[[], str | tuple[str, dict[str, object]]]
    ) -> bool:
        started = self.clock()
        try:
            outcome = action()
        except TransportError as exc:
            detail, fix = exc.split_fix()
            self.steps.append(StepResult(name, title, False, self.clock() - started, detail, fix))
            return False
        except _StepFailed as exc:
            self.steps.append(
                StepResult(name, title, False, self.clock() - started, exc.detail, exc.fix)
            )
            return False
        detail, data = outcome if isinstance(outcome, tuple) else (outcome, None)
        self.steps.append(StepResult(name, title, True, self.clock() - started, detail, None, data))
        return True


def build_test_message(settings: Settings, to: str) -> tuple[Envelope, bytes]:
    """The short test message from mail.from (envelope: mail.envelope_from) to ``to``.

    Written by postroom's own composer, as all its mail is, but exactly as asked: to
    ``to`` alone (not mail.redirect_to) and without mail.subject_prefix.
    Raises AddressError if ``to`` is not a bare address.
    """
    mail = settings.mail
    recipient = parse_address(to, allow_name=False)
    policy = replace(ComposePolicy.from_settings(mail), subject_prefix="", redirect_to="")
    message = OutgoingMessage(
        to=(recipient.addr_spec,),
        subject=TEST_SUBJECT,
        text=(
            "This is a test message from `postroom test-email`.\n\n"
            f"It was sent through {mail.host}:{mail.port} (mail.security={mail.security}) "
            "to check postroom's mail settings. No action is needed.\n"
        ),
        type=TEST_TYPE,
        automatic=True,
    )
    composed = compose(message, policy)
    return composed.envelope, composed.raw


def run_test_email(
    settings: Settings,
    to: str,
    *,
    home: Home,
    clock: Callable[[], float] = time.perf_counter,
) -> Report:
    """Walk a session with the configured SMTP server (or Microsoft Graph, with
    mail.transport=graph) and send a test message to ``to``. With OAuth2 the token
    endpoint and the token come first.

    Raises AddressError if ``to`` is not an address; everything else is a step result.
    """
    mail = settings.mail
    envelope, data = build_test_message(settings, to)
    runner = _Runner(clock)
    if mail.transport == "graph":
        steps = token_steps(settings, "graph") + graph_steps(settings, home, envelope, data)
        _run(runner, steps)
        return Report(
            server=mail.graph_base_url,
            security="https",
            to=envelope.recipients[0],
            steps=tuple(runner.steps),
            warnings=tuple(_warnings(settings)),
        )
    transcript: list[tuple[str, str]] = []
    client = SMTPClient.from_settings(mail, transcript=lambda d, line: transcript.append((d, line)))
    try:
        if mail.auth != "xoauth2" or _run(runner, token_steps(settings, "smtp")):
            _session(runner, client, settings, envelope, data)
    finally:
        client.quit()
    return Report(
        server=client.where,
        security=mail.security,
        to=envelope.recipients[0],
        steps=tuple(runner.steps),
        warnings=tuple(_warnings(settings)),
        transcript=tuple(transcript),
    )


def _warnings(settings: Settings) -> list[str]:
    mail = settings.mail
    found = []
    if not mail.enabled:
        found.append(
            "mail.enabled is false: postroom does not send real mail yet (it only logs it); "
            f"this test still uses the SMTP server {mail.host}:{mail.port}, so you can check "
            "it before setting mail.enabled=true"
        )
    elif mail.transport == "capture":
        found.append(
            "mail.transport is capture (recording mode): postroom's real mail is being "
            "RECORDED in the mail record, not delivered; this test still uses the SMTP "
            f"server {mail.host}:{mail.port}, but the mail your application sends does not"
        )
    elif mail.transport not in ("smtp", "graph"):
        found.append(
            f"mail.transport is {mail.transport}, so postroom's mail does not go through "
            f"SMTP; this test still uses the SMTP server {mail.host}:{mail.port}"
        )
    return found


def _session(
    runner: _Runner, client: SMTPClient, settings: Settings, envelope: Envelope, data: bytes
) -> None:
    mail = settings.mail
    steps: list[tuple[str, str, Callable[[], str | tuple[str, dict[str, object]]]]] = [
        (
            "resolve",
            "Resolve",
            lambda: f"{mail.host} → {', '.join(dict.fromkeys(client.resolve()))}",
        ),
        ("connect", "Connect", lambda: _connect(client)),
    ]
    if mail.security == "ssl":
        steps.append(("tls", "TLS handshake and certificate", lambda: _tls(client, implicit=True)))
    steps.append(("greeting", "Greeting", lambda: _greeting(client)))
    steps.append(("ehlo", "EHLO capabilities", lambda: _ehlo(client)))
    if mail.security == "starttls":
        steps.append(("tls", "STARTTLS and certificate", lambda: _tls(client, implicit=False)))
    if client.username:
        steps.append(("login", "Login", lambda: _login(client)))
    steps += [
        ("mail", "MAIL FROM", lambda: _mail(client, envelope, len(data))),
        ("rcpt", "RCPT TO", lambda: _rcpt(client, envelope)),
        ("data", "DATA (test message)", lambda: _data(client, data)),
    ]
    _run(runner, steps)


def _run(runner: _Runner, steps: list[tuple[str, str, Action]]) -> bool:
    """Run ``steps`` until one fails; whether all passed."""
    return all(runner.run(name, title, action) for name, title, action in steps)


def _resolve(client: SMTPClient) -> str:
    return f"{client.host} → {', '.join(dict.fromkeys(client.resolve()))}"


def _connect(client: SMTPClient) -> str:
    client.connect()
    peer = client.peer
    return f"connected to {peer[0] if peer else client.host} port {client.port}"


def _greeting(client: SMTPClient) -> str:
    try:
        return str(client.read_greeting())
    except (TransportTimeout, SMTPProtocolError) as exc:
        if client.security == "ssl" or not (client.port == 465 or _speaks_tls(client)):
            raise
        detail, _ = exc.split_fix()
        where = "port 465" if client.port == 465 else f"port {client.port} (like 465)"
        raise _StepFailed(detail, f"{where} expects implicit TLS: set mail.security=ssl") from None


#: How long the port is probed for TLS after a greeting did not come: short, so the
#: step does not take twice mail.timeout (a TLS server answers a ClientHello at once).
TLS_PROBE = 2.0


def _speaks_tls(client: SMTPClient) -> bool:
    return smtp_tls.speaks_tls(client.addresses, timeout=min(client.timeout, TLS_PROBE))


def _ehlo(client: SMTPClient) -> tuple[str, dict[str, object]]:
    caps = client.ehlo()
    summary = caps.summary()
    if not caps.extended:
        return f"EHLO refused, HELO accepted by {caps.name}: no extensions", summary
    return _describe_capabilities(caps.summary()), summary


def _describe_capabilities(summary: dict[str, object]) -> str:
    def yes(key: str) -> str:
        return "yes" if summary[key] else "no"

    size = summary["size"]
    auth = summary["auth"]
    return (
        f"SIZE {size if size else 'no limit given'}; "
        f"AUTH {' '.join(auth) if isinstance(auth, list) and auth else 'not offered'}; "
        f"STARTTLS {yes('starttls')}; SMTPUTF8 {yes('smtputf8')}; "
        f"PIPELINING {yes('pipelining')}"
    )


def _tls(client: SMTPClient, *, implicit: bool) -> tuple[str, dict[str, object]]:
    if implicit:
        client.handshake()
    else:
        client.starttls()
    info = client.tls_info() or {}
    detail = f"{info.get('version')}, {info.get('cipher')}"
    if not info.get("verified"):
        detail += "; certificate NOT checked (mail.tls_verify=false)"
    elif info.get("names"):
        names = info.get("names")
        listed = ", ".join(str(n) for n in names) if isinstance(names, list) else ""
        detail += f"; certificate for {listed}, issued by {info.get('issuer')}, "
        detail += f"valid until {info.get('expires')}"
    if not implicit and client.capabilities is not None:
        detail += f"; after TLS: {_describe_capabilities(client.capabilities.summary())}"
    return detail, info


def _login(client: SMTPClient) -> str:
    caps = client.capabilities
    mechanism = choose_mechanism(client.auth, caps.auth) if caps else None
    client.login()
    return f"logged in as {client.username} ({mechanism})"


def _refused(step: str, reply: Reply, fix: str) -> _StepFailed:
    if reply.code == 421:  # not about this command: the server is closing the session
        return _StepFailed(
            f"the server closed the session at {step}: {reply}",
            "421 means the server will not talk now (busy, rate limits, or it refuses this "
            "client's address or EHLO name, see mail.helo_name): try again later, or read "
            "the server's log for why",
        )
    if any(code in reply.text for code in BASIC_AUTH_OFF):  # Microsoft: log in with OAuth2
        fix = SWITCH_TO_OAUTH
    return _StepFailed(f"the server refused {step}: {reply}", fix)


def _mail(client: SMTPClient, envelope: Envelope, size: int) -> str:
    caps = client.capabilities
    if envelope.smtputf8 and caps is not None and not caps.smtputf8:
        raise _StepFailed(
            "the test address is not ASCII and the server does not offer SMTPUTF8",
            "send the test to an ASCII address, or use a server that supports SMTPUTF8",
        )
    reply = client.mail(envelope.sender, size=size, smtputf8=envelope.smtputf8)
    if not reply.ok:
        raise _refused(
            f"MAIL FROM:<{envelope.sender}>",
            reply,
            "check mail.from / mail.envelope_from: the server may not let this login or "
            "host send as that address",
        )
    return f"MAIL FROM:<{envelope.sender}> → {reply}"


def _rcpt(client: SMTPClient, envelope: Envelope) -> str:
    recipient = envelope.recipients[0]
    reply = client.rcpt(recipient, smtputf8=envelope.smtputf8)
    if not reply.ok:
        raise _refused(
            f"RCPT TO:<{recipient}>",
            reply,
            "check the address; if the server does not relay for you (e.g. 5.7.1), set "
            "mail.username and mail.password or ask its admin to allow this host",
        )
    return f"RCPT TO:<{recipient}> → {reply}"


def _data(client: SMTPClient, data: bytes) -> str:
    reply = client.data(data)
    if not reply.ok:
        raise _refused("the test message", reply, "see the server's reply above")
    return f"test message accepted ({len(data)} bytes): {reply}"
