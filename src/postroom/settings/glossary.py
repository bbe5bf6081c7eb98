"""The settings glossary: every key, its kind, default, secrecy, meaning and env twin.

Each section is a frozen dataclass; each field is declared with :func:`setting`, so the
typed settings object and the glossary users read (``postroom config describe``,
docs/settings.md) come from the same lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from postroom.settings import kinds
from postroom.settings.faults import FaultRule
from postroom.settings.kinds import HostPort, Kind, RateLimit, Secret
from postroom.settings.senders import SendersBase, SendersSettings


def setting(
    default: Any, kind: Kind, description: str, *, secret: bool = False, name: str = ""
) -> Any:
    """A glossary entry; ``name`` is its key within the section when that is not the
    attribute's name (``oauth.client_id`` for ``oauth_client_id``)."""
    metadata = {"kind": kind, "description": description, "secret": secret}
    if name:
        metadata["name"] = name
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class MailSettings:
    enabled: bool = setting(
        False,
        kinds.BOOL,
        "Master switch. Off: every message goes to the log transport (the whole message "
        "is written to the log, marked as logged, not delivered).",
    )
    transport: str = setting(
        "smtp",
        kinds.TRANSPORT,
        "How mail leaves when enabled: smtp, graph (Microsoft Graph sendMail), log, file, "
        "memory, capture (recording mode: kept in the mail record, NOT delivered), or "
        "package.module:Class for your own.",
    )
    host: str = setting("localhost", kinds.HOST, "SMTP server host name or IP address.")
    port: int = setting(
        25, kinds.PORT, "SMTP server port: 25 (relay), 587 (submission, STARTTLS), 465 (SSL)."
    )
    security: str = setting(
        "none",
        kinds.choice("none", "starttls", "ssl"),
        "Connection security: none, starttls (upgrade after EHLO; never falls back to "
        "plaintext) or ssl (implicit TLS from the first byte, usually port 465).",
    )
    username: str = setting("", kinds.TEXT, "Login name; empty for no login.")
    password: Secret = setting(
        Secret(""), kinds.SECRET, "Login password. Never shown, logged or reported.", secret=True
    )
    auth: str = setting(
        "auto",
        kinds.choice("auto", "plain", "login", "cram-md5", "xoauth2"),
        "Login mechanism; auto picks the best password one the server offers; xoauth2 "
        "logs in with an OAuth2 token (mail.oauth.*, over TLS only; see docs/oauth.md).",
    )
    oauth_provider: str = setting(
        "microsoft",
        kinds.choice("microsoft", "google", "generic"),
        "Where OAuth2 tokens come from: microsoft (client credentials, app-only), google "
        "or generic (a refresh token).",
        name="oauth.provider",
    )
    oauth_tenant_id: str = setting(
        "", kinds.TEXT, "Microsoft Entra tenant (directory) ID or domain.", name="oauth.tenant_id"
    )
    oauth_client_id: str = setting(
        "", kinds.TEXT, "OAuth2 client (application) ID.", name="oauth.client_id"
    )
    oauth_client_secret: Secret = setting(
        Secret(""),
        kinds.SECRET,
        "OAuth2 client secret. Never shown, logged or reported.",
        secret=True,
        name="oauth.client_secret",
    )
    oauth_refresh_token: Secret = setting(
        Secret(""),
        kinds.SECRET,
        "OAuth2 refresh token (google, generic; `postroom oauth authorize` sets it). Never "
        "shown, logged or reported.",
        secret=True,
        name="oauth.refresh_token",
    )
    oauth_token_url: str = setting(
        "",
        kinds.TEXT,
        "Token endpoint; empty: the provider's (Microsoft's for mail.oauth.tenant_id, Google's).",
        name="oauth.token_url",
    )
    oauth_scope: str = setting(
        "",
        kinds.TEXT,
        "Scope asked for; empty: the provider's (Microsoft: outlook.office365.com/.default "
        "for SMTP, graph.microsoft.com/.default for Graph; Google: mail.google.com).",
        name="oauth.scope",
    )
    graph_base_url: str = setting(
        "https://graph.microsoft.com/v1.0",
        kinds.TEXT,
        "Microsoft Graph endpoint of mail.transport=graph (another for a national cloud).",
        name="graph.base_url",
    )
    graph_save_to_sent: bool = setting(
        False,
        kinds.BOOL,
        "Graph: keep a copy of each message in the sending mailbox's Sent Items.",
        name="graph.save_to_sent",
    )
    allow_plaintext_auth: bool = setting(
        False,
        kinds.BOOL,
        "Allow sending the password without TLS to a host that is not loopback.",
    )
    timeout: float = setting(
        30.0,
        kinds.DURATION,
        "Time limit of every network step: connect, TLS, and each whole reply (however "
        "slowly the server trickles it); writing a message may take this plus 1s per 50 kB, "
        "and a whole message (MAIL to the last reply) 3 times this plus 1s per 50 kB.",
    )
    tls_verify: bool = setting(
        True, kinds.BOOL, "Check the server's certificate and host name. Keep it on."
    )
    tls_ca_file: str = setting(
        "", kinds.TEXT, "PEM bundle of extra CAs to trust (an internal CA); empty: system CAs."
    )
    helo_name: str = setting(
        "", kinds.TEXT, "Name sent with EHLO; empty: this machine's fully qualified name."
    )
    from_: str = setting(
        "postroom@localhost",
        kinds.MAILBOX,
        "From of postroom's mail: addr or 'Name <addr>'. Mail caused by a user shows "
        "'\"Full Name (no-reply)\" <addr>'.",
    )
    envelope_from: str = setting(
        "",
        kinds.ADDRESS_OPTIONAL,
        "Envelope sender (bounce address); empty: the mail.from address.",
    )
    error_from: str = setting(
        "", kinds.MAILBOX_OPTIONAL, "From of error reports; empty: mail.from."
    )
    admins: tuple[str, ...] = setting(
        (), kinds.ADDRESS_LIST, "Addresses that get error reports and fallback mail."
    )
    subject_prefix: str = setting(
        "", kinds.HEADER_TEXT, "Put before every subject, joined with one space."
    )
    type_header: str = setting(
        "X-Postroom-Notification-Type",
        kinds.HEADER_NAME,
        "Header carrying the notification type, for filtering.",
    )
    redirect_to: str = setting(
        "",
        kinds.ADDRESS_OPTIONAL,
        "Non-production: deliver every message to this address instead of its recipients.",
    )
    max_size: int = setting(
        25_000_000, kinds.SIZE, "Largest message accepted at enqueue (e.g. 25 MB, 10 MiB)."
    )
    file_dir: str = setting(
        "", kinds.TEXT, "Folder of the file transport (one .eml per message); empty: HOME/mail."
    )


@dataclass(frozen=True)
class DeliverySettings:
    concurrency: int = setting(4, kinds.INT, "SMTP connections a worker runs at once.")
    batch_size: int = setting(100, kinds.INT, "Messages a worker claims at a time.")
    lease: float = setting(
        300.0, kinds.DURATION, "How long a claim lasts before a dead worker's messages return."
    )
    max_attempts: int = setting(20, kinds.INT, "Attempts before a message fails for good.")
    backoff_min: float = setting(
        60.0, kinds.DURATION_OR_ZERO, "First retry delay (then doubling); 0: at once."
    )
    backoff_max: float = setting(3600.0, kinds.DURATION_OR_ZERO, "Longest retry delay.")
    max_age: float = setting(
        432000.0, kinds.DURATION, "After this long in the queue a message fails for good."
    )
    rate_limit: RateLimit | None = setting(
        None, kinds.RATE, "Shared send rate across all workers, e.g. 50/min; empty: none."
    )
    poll_interval: float = setting(1.0, kinds.DURATION, "How often an idle worker looks for mail.")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = setting(
        "",
        kinds.DATABASE_URL,
        "Database URL; empty: SQLite file postroom.db in the home folder. "
        "postgresql+psycopg://USER@HOST/DB for several workers.",
    )


@dataclass(frozen=True)
class WebSettings:
    bind: HostPort = setting(
        HostPort("127.0.0.1", 8025), kinds.HOST_PORT, "Address of the HTTP service and console."
    )
    allow_remote: bool = setting(
        False,
        kinds.BOOL,
        "Let the service bind to a non-loopback address (put TLS in front of it: a proxy).",
    )
    debug: bool = setting(False, kinds.BOOL, "Debug mode; true also turns error reports off.")
    public_url: str = setting(
        "",
        kinds.PUBLIC_URL,
        "Base URL people reach the service at (links in mail, the console address "
        "printed at start); empty: http://web.bind.",
    )
    allowed_hosts: tuple[str, ...] = setting(
        (),
        kinds.LIST,
        "Host names the service answers to (DNS rebinding guard); '.example.org' also "
        "takes its subdomains. Always: loopback names, web.bind's host, web.public_url's.",
    )
    trusted_proxies: tuple[str, ...] = setting(
        ("127.0.0.1", "::1"),
        kinds.LIST,
        "Proxies whose X-Forwarded-For/-Proto are believed (client address, https).",
    )
    rate_limit: RateLimit | None = setting(
        RateLimit(100, 1.0),
        kinds.RATE,
        "Requests per API token, e.g. 100/s; past it: 429 with Retry-After. Empty: none.",
    )
    session_lifetime: float = setting(
        8 * 3600.0, kinds.DURATION, "A console login lasts this long after its last use."
    )
    metrics_auth: bool = setting(
        False, kinds.BOOL, "Require an admin token for /metrics (it is open by default)."
    )


@dataclass(frozen=True)
class CaptureSettings:
    bind: HostPort = setting(
        HostPort("127.0.0.1", 1025), kinds.HOST_PORT, "Address of the capture SMTP server."
    )
    allow_remote: bool = setting(
        False, kinds.BOOL, "Let the capture server bind to a non-loopback address."
    )
    max_messages: int = setting(
        10_000, kinds.INT, "Messages kept in the mail record; the oldest go first."
    )
    max_size: int = setting(
        25_000_000,
        kinds.SIZE,
        "Largest message the capture server takes (announced with SIZE; larger: 552).",
    )
    max_bytes: int = setting(
        1_000_000_000,
        kinds.SIZE,
        "Size of the mail record at most: the oldest messages go first past it "
        "(as past capture.max_messages). At least capture.max_size.",
    )
    max_recipients: int = setting(
        1000, kinds.INT, "Recipients per message; the capture server answers 452 past it."
    )
    max_sessions: int = setting(
        100, kinds.INT, "Connections the capture server serves at once; one more gets 421."
    )
    idle_timeout: float = setting(
        300.0, kinds.DURATION, "The capture server closes a connection silent for this long."
    )
    tls_cert: str = setting(
        "", kinds.TEXT, "PEM certificate (chain) for STARTTLS; empty: no STARTTLS offered."
    )
    tls_key: str = setting("", kinds.TEXT, "PEM private key of capture.tls_cert.")
    auth: bool = setting(
        False,
        kinds.BOOL,
        "Offer AUTH (PLAIN, LOGIN) and accept any login, for apps that always log in.",
    )
    faults: tuple[FaultRule, ...] = setting(
        (),
        kinds.FAULTS,
        'Scripted faults, a JSON array: {"match": "*@x.org", "reply": 451, "at": "rcpt", '
        '"times": 2} or {"match": "*", "action": "drop-after-dot"} (see docs/capture.md).',
    )


@dataclass(frozen=True)
class ReportsSettings:
    notify_404: bool = setting(
        True,
        kinds.BOOL,
        "Report broken links: a 404 whose Referer is a page (not the URL itself, not ignored).",
    )
    ignore_404: tuple[str, ...] = setting(
        ("/favicon.ico", "/robots.txt", "/apple-touch-icon*", "/.env", "/.git/*", "/wp-*", "*.php"),
        kinds.LIST,
        "URL paths whose 404s are never reported: shell patterns (* and ?), e.g. /wp-*, *.php.",
    )
    throttle: float = setting(
        600.0,
        kinds.DURATION,
        "Repeats of one error within this window are counted, then summarised in one mail.",
    )
    max_per_minute: int = setting(
        20, kinds.INT, "Error reports mailed per minute at most, all errors together."
    )
    include_locals: bool = setting(
        False,
        kinds.BOOL,
        "Show the local variables of the innermost app frames (scrubbed, shortened).",
    )
    scrub_names: tuple[str, ...] = setting(
        ("pass", "secret", "token", "key", "auth", "session", "csrf", "signature", "card",
         "cookie"),
        kinds.LIST,
        "Names (substring, any case) of headers, fields and variables masked in reports.",
    )  # fmt: skip


@dataclass(frozen=True)
class Settings:
    mail: MailSettings = field(default_factory=MailSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    web: WebSettings = field(default_factory=WebSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    reports: ReportsSettings = field(default_factory=ReportsSettings)
    senders: SendersBase = field(default_factory=SendersSettings)


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One glossary entry."""

    key: str
    section: str
    attribute: str
    kind: Kind
    default: Any
    description: str
    secret: bool

    @property
    def env(self) -> str:
        return "POSTROOM_" + self.key.upper().replace(".", "_")


def _build_glossary() -> dict[str, SettingSpec]:
    glossary: dict[str, SettingSpec] = {}
    defaults = Settings()
    for section_field in fields(Settings):
        for item in fields(getattr(defaults, section_field.name)):
            name = item.metadata.get("name") or item.name.rstrip("_")
            key = f"{section_field.name}.{name}"
            glossary[key] = SettingSpec(
                key=key,
                section=section_field.name,
                attribute=item.name,
                kind=item.metadata["kind"],
                default=item.default,
                description=item.metadata["description"],
                secret=item.metadata["secret"],
            )
    return glossary


GLOSSARY: dict[str, SettingSpec] = _build_glossary()
