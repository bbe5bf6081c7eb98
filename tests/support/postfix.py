"""A real Postfix for conformance tests, on a free loopback port, all of it in a folder.

Debian's ``postfix`` package runs here with its own configuration, queue, data and mail
folders in a temporary folder of its own: the system's /etc/postfix is only read (for
the dynamic map list), never changed, and the system's mail daemon is not involved.
The test starts Postfix's ``master`` itself, in the foreground and in its own process
group, and stops that group and removes the folder afterwards, whatever happened.

The folder is not one of pytest's: Postfix's daemons read the SASL database and write
the Maildirs as the ``postfix`` user, through absolute paths, and pytest keeps its
folders closed to other users (0700), closing them again whenever a pytest session
starts; so the folder is made by :func:`tempfile.mkdtemp`, open to passing through only.

What it offers: STARTTLS (required before MAIL) with the caller's certificate, AUTH
PLAIN and LOGIN (Cyrus SASL against a sasldb file made with ``saslpasswd2``, required
before MAIL), PIPELINING, 8BITMIME, SMTPUTF8, a 32 MiB size limit, and delivery of
every address in ``mailboxes`` into a Maildir under :attr:`PostfixServer.mail_dir`.
Mail for anywhere else is refused: nothing leaves the machine.

Without the packages (postfix, sasl2-bin, libsasl2-modules) the test is skipped with
the reason, unless ``POSTROOM_REQUIRE_POSTFIX=1`` (CI), where it fails instead.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.support.service import free_port
from tests.support.waiting import wait_until

REQUIRE_ENV = "POSTROOM_REQUIRE_POSTFIX"
PACKAGES = "postfix sasl2-bin libsasl2-modules"
MASTER = Path("/usr/lib/postfix/sbin/master")
SASLPASSWD = "saslpasswd2"
# Where saslpasswd2 is besides PATH (a user's PATH may lack the sbin folders).
SBIN = ("/usr/sbin", "/usr/bin", "/sbin")
MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"
HOST = "127.0.0.1"
HOSTNAME = "mail.example.net"
SIZE_LIMIT = 32 * 1024 * 1024
# The Cyrus SASL plugins smtpd needs: the password store and the two mechanisms.
SASL_PLUGINS = ("libsasldb.so", "libplain.so", "liblogin.so")
SASL_PLUGIN_DIRS = Path("/usr/lib")  # in <multiarch triplet>/sasl2/

# Queue subfolders: (name, owner, group, mode), as Postfix's postfix-files sets them.
_QUEUE_DIRS = (
    *((name, MAIL_OWNER, None, 0o700) for name in ("active", "bounce", "corrupt", "defer")),
    *((name, MAIL_OWNER, None, 0o700) for name in ("deferred", "flush", "hold", "incoming")),
    *((name, MAIL_OWNER, None, 0o700) for name in ("private", "saved", "trace")),
    ("maildrop", MAIL_OWNER, SETGID_GROUP, 0o730),
    ("public", MAIL_OWNER, SETGID_GROUP, 0o710),
    ("pid", None, None, 0o755),
)

_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{host}:{port} inet n    -       n       -       -       smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = {owner}
setgid_group = {setgid_group}
myhostname = {hostname}
mydomain = example.net
myorigin = $myhostname
mydestination =
inet_interfaces = {host}
inet_protocols = ipv4
mynetworks = {host}/32
smtpd_banner = $myhostname ESMTP Postfix (postroom conformance test)
maillog_file = {log}
maillog_file_prefixes = {root}
alias_maps =
alias_database =
biff = no
in_flow_delay = 0s
smtpd_error_sleep_time = 0s
smtpd_peername_lookup = no
# Nothing leaves: mail for any domain but the virtual one is refused.
default_transport = error:5.7.1 this test server delivers nowhere else
relay_transport = $default_transport

# SMTPUTF8, 8BITMIME and PIPELINING (the last two are always on), a 10 MB attachment.
smtputf8_enable = yes
message_size_limit = {size_limit}
virtual_mailbox_limit = 0

# STARTTLS, required before MAIL; AUTH only after it, and required before MAIL.
smtpd_tls_security_level = encrypt
smtpd_tls_chain_files = {certificate}
smtpd_tls_received_header = yes
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {sasl_config}
smtpd_sasl_security_options = noanonymous
smtpd_sasl_authenticated_header = yes
smtpd_sender_restrictions = permit_sasl_authenticated, reject
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination

# Delivery into Maildirs (a trailing / in the map) as the mail owner.
virtual_mailbox_domains = {domain}
virtual_mailbox_maps = texthash:{mailbox_map}
virtual_mailbox_base = {mail}
virtual_minimum_uid = 1
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
"""

_SASL_CONF = """\
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: {sasldb}
"""


def missing() -> str | None:
    """Why a private Postfix cannot run here (with the fix), or None if it can."""
    try:
        pwd.getpwnam(MAIL_OWNER)
        grp.getgrnam(SETGID_GROUP)
    except KeyError:
        return f"Postfix is not installed (no {MAIL_OWNER} user); apt-get install {PACKAGES}"
    if not MASTER.is_file():
        return f"Postfix is not installed (no {MASTER}); apt-get install {PACKAGES}"
    if _saslpasswd() is None:
        return f"Cyrus SASL's {SASLPASSWD} is not installed; apt-get install {PACKAGES}"
    for plugin in SASL_PLUGINS:
        if next(SASL_PLUGIN_DIRS.glob(f"*/sasl2/{plugin}"), None) is None:
            return f"the Cyrus SASL plugin {plugin} is not installed; apt-get install {PACKAGES}"
    if os.geteuid() != 0:
        return "a private Postfix needs root (its daemons switch to the postfix user)"
    return None


def _saslpasswd() -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return shutil.which(SASLPASSWD, path=path)


def require_postfix() -> None:
    """Skip the test (fail it with POSTROOM_REQUIRE_POSTFIX=1) if Postfix cannot run."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)


@dataclass
class PostfixServer:
    """A running private Postfix: where to connect, and where its mail lands."""

    host: str
    port: int
    root: Path
    domain: str
    mailboxes: Mapping[str, str]  # address → Maildir folder under mail_dir
    master: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def log_file(self) -> Path:
        return self.root / "maillog"

    def delivered(self, address: str) -> list[Path]:
        """The files delivered to ``address``'s Maildir so far, oldest first."""
        new = self.mail_dir / self.mailboxes[address] / "new"
        if not new.is_dir():
            return []
        return sorted(new.iterdir(), key=lambda path: (path.stat().st_mtime_ns, path.name))

    def wait_for_delivery(self, *addresses: str, timeout: float = 20) -> None:
        """Wait until every one of ``addresses`` has mail; on timeout, fail with the log."""
        try:
            wait_until(lambda: all(self.delivered(a) for a in addresses), timeout=timeout)
        except AssertionError:
            late = [a for a in addresses if not self.delivered(a)]
            raise AssertionError(
                f"no mail for {', '.join(late)} within {timeout:g}s; Postfix's log ends:\n"
                + self.log()[-3000:]
            ) from None

    def log(self) -> str:
        """Postfix's log so far (for failure messages)."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@contextlib.contextmanager
def running_postfix(
    *,
    certificate_chain: bytes,
    domain: str,
    mailboxes: Sequence[str],
    users: Mapping[str, str],
) -> Iterator[PostfixServer]:
    """Configure and start Postfix in a new temporary folder; on leaving, even on
    failure, stop it (and every daemon it started) and remove the folder.

    ``certificate_chain`` is PEM: the private key, then the certificate and its chain.
    ``mailboxes`` are addresses in ``domain`` (UTF-8 local parts allowed) that get a
    Maildir each; ``users`` maps SASL login names (``user@realm``) to passwords.
    """
    require_postfix()
    root = Path(tempfile.mkdtemp(prefix="postroom-postfix-"))
    try:
        root.chmod(0o711)  # the mail owner passes through; nobody else may list it
        server = PostfixServer(
            HOST,
            free_port(),
            root,
            domain,
            {address: f"box{index}" for index, address in enumerate(mailboxes)},
        )
        _configure(server, certificate_chain, users)
        with _master(server):
            wait_until(lambda: _greets(server), timeout=20)
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _master(server: PostfixServer) -> Iterator[None]:
    """Run Postfix's master in the foreground (-d), in its own process group."""
    with (server.root / "master.out").open("wb") as output:
        master = subprocess.Popen(
            [str(MASTER), "-c", str(server.root / "conf"), "-d"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one below
        )
    server.master = master
    try:
        yield
    finally:
        _stop(master)


def _configure(server: PostfixServer, certificate_chain: bytes, users: Mapping[str, str]) -> None:
    root = server.root
    owner = pwd.getpwnam(MAIL_OWNER)
    postdrop = grp.getgrnam(SETGID_GROUP).gr_gid
    conf, queue, data, mail, sasl = (
        root / name for name in ("conf", "queue", "data", "mail", "sasl")
    )
    for path in (conf, queue, conf / "sasl"):
        path.mkdir(mode=0o755)
    for path in (data, mail, sasl):
        path.mkdir(mode=0o700)
        os.chown(path, owner.pw_uid, owner.pw_gid)
    for name, user, group, mode in _QUEUE_DIRS:
        path = queue / name
        path.mkdir()
        uid = owner.pw_uid if user else 0
        gid = postdrop if group else (owner.pw_gid if user else 0)
        os.chown(path, uid, gid)
        path.chmod(mode)  # after mkdir, which the umask would narrow
    certificate = conf / "server.pem"
    certificate.write_bytes(certificate_chain)
    certificate.chmod(0o600)
    mailbox_map = conf / "mailboxes"
    mailbox_map.write_text(
        "".join(f"{address} {box}/\n" for address, box in server.mailboxes.items()),
        encoding="utf-8",
    )
    sasldb = sasl / "sasldb2"
    (conf / "sasl" / "smtpd.conf").write_text(_SASL_CONF.format(sasldb=sasldb))
    (conf / "master.cf").write_text(_MASTER_CF.format(host=server.host, port=server.port))
    (conf / "main.cf").write_text(
        _MAIN_CF.format(
            root=root,
            queue=queue,
            data=data,
            mail=mail,
            log=server.log_file,
            owner=MAIL_OWNER,
            setgid_group=SETGID_GROUP,
            hostname=HOSTNAME,
            host=server.host,
            size_limit=SIZE_LIMIT,
            certificate=certificate,
            sasl_config=conf / "sasl",
            domain=server.domain,
            mailbox_map=mailbox_map,
            uid=owner.pw_uid,
            gid=owner.pw_gid,
        )
    )
    for login, password in users.items():
        user, at, realm = login.rpartition("@")
        if not at:  # a login without a realm
            user, realm = login, ""
        in_realm = ["-u", realm] if realm else []
        subprocess.run(
            [str(_saslpasswd()), "-p", "-c", "-f", str(sasldb), *in_realm, user],
            input=password.encode("utf-8"),
            check=True,
            capture_output=True,
            timeout=10,
        )
    for path in sasl.iterdir():  # the database and its lock file, read as the mail owner
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _greets(server: PostfixServer) -> bool:
    master = server.master
    if master is not None and master.poll() is not None:
        output = (server.root / "master.out").read_text(errors="replace")
        raise AssertionError(
            f"Postfix's master exited with {master.returncode}: {output.strip()}\n"
            f"{server.log()[-3000:]}"
        )
    try:
        with socket.create_connection((server.host, server.port), timeout=2) as sock:
            return sock.recv(512).startswith(b"220 ")
    except OSError:
        return False


def _stop(master: subprocess.Popen[bytes]) -> None:
    """Stop master and every daemon of its process group; never raises."""
    with contextlib.suppress(ProcessLookupError):
        master.terminate()  # master passes SIGTERM on to its daemons
    try:
        master.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            master.kill()
        master.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(master.pid, signal.SIGKILL)  # any daemon still in its group
    # Let them go before their folder is removed; best effort, never a test failure.
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not _group_alive(master.pid), timeout=5)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
