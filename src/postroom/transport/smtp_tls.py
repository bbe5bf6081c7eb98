"""TLS for the SMTP client: the context, the handshake, and failures explained.

Certificates are checked by OpenSSL (``check_hostname`` and ``CERT_REQUIRED``) unless
mail.tls_verify is false; mail.tls_ca_file adds a CA to the system ones. A failed
check becomes a :class:`CertificateError` that says whether the certificate is not
trusted or names other hosts (and which), every other failure a :class:`TLSError`.
"""

from __future__ import annotations

import functools
import re
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from postroom.errors import CertificateError, TLSError, TransportTimeout
from postroom.transport.smtp_protocol import with_fix

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH = {62, 64}
_EXPIRED = 10


def make_context(*, verify: bool, ca_file: str = "") -> ssl.SSLContext:
    """The client context: system CAs plus ``ca_file``; no checks if ``verify`` is off."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            fix = "give mail.tls_ca_file the path of a readable PEM CA bundle, or unset it"
            message = f"cannot load mail.tls_ca_file {ca_file!r} ({exc}); {fix}"
            raise with_fix(TLSError(message), fix) from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def wrap(
    sock: socket.socket,
    context: ssl.SSLContext,
    *,
    host: str,
    where: str,
    timeout: float,
    implicit: bool,
    probe_names: Callable[[], tuple[str, ...]],
) -> ssl.SSLSocket:
    """Run the handshake on ``sock``; raise CertificateError, TLSError or TransportTimeout."""
    tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    tls.settimeout(timeout)
    try:
        tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        tls.close()
        raise _certificate_error(exc, host, where, probe_names) from None
    except TimeoutError:
        tls.close()
        fix = (
            "the server may not speak TLS on this port: check mail.port and mail.security"
            if implicit
            else "the server or a middlebox stalls the handshake; check the server's TLS setup"
        )
        message = f"TLS handshake with {where} timed out after {timeout:g}s; {fix}"
        raise with_fix(TransportTimeout(message, step="tls"), fix) from None
    except (ssl.SSLError, OSError) as exc:
        tls.close()
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        if implicit and reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"):
            fix = (
                "the server answered in plaintext, so it does not expect implicit TLS here: "
                "set mail.security=starttls (usually port 587) or none"
            )
        else:
            fix = "check mail.security and mail.port, and the server's TLS setup"
        message = f"TLS handshake with {where} failed ({reason}); {fix}"
        raise with_fix(TLSError(message), fix) from None
    return tls


def _certificate_error(
    exc: ssl.SSLCertVerificationError,
    host: str,
    where: str,
    probe_names: Callable[[], tuple[str, ...]],
) -> CertificateError:
    message = exc.verify_message or exc.reason or "verification failed"
    if exc.verify_code in _NAME_MISMATCH:
        names = probe_names()
        listed = ", ".join(names) if names else "other names"
        what = f"the certificate of {where} is for {listed}, not {host}"
        fix = (
            "set mail.host to a name the certificate holds"
            if names
            else "set mail.host to the name on the server's certificate"
        )
    elif exc.verify_code == _EXPIRED:
        what = f"the certificate of {where} has expired"
        fix = "renew the server's certificate"
    else:
        what = f"the certificate of {where} is not trusted ({message})"
        fix = "if an internal CA signed it, set mail.tls_ca_file to that CA's PEM file"
    return with_fix(CertificateError(f"{what}; {fix}"), fix)


def certificate_names(cert: Mapping[str, Any]) -> tuple[str, ...]:
    """Host names and addresses a certificate is for (subjectAltName, else its CN)."""
    alt_names = cert.get("subjectAltName", ())
    names = tuple(str(value) for kind, value in alt_names if kind in ("DNS", "IP Address"))
    if names:
        return names
    return tuple(
        str(value) for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"
    )


def describe(sock: ssl.SSLSocket, *, verified: bool) -> dict[str, object]:
    """Protocol, cipher and (when checked) certificate of a TLS connection."""
    cipher = sock.cipher()
    info: dict[str, object] = {
        "version": sock.version(),
        "cipher": cipher[0] if cipher else None,
        "verified": verified,
    }
    cert = sock.getpeercert() if verified else None
    if cert:
        rdns: Any = cert.get("issuer", ())
        issuer = {key: value for rdn in rdns for key, value in rdn}
        info["names"] = list(certificate_names(cert))
        info["issuer"] = issuer.get("organizationName") or issuer.get("commonName")
        info["expires"] = cert.get("notAfter")
    return info


@functools.cache
def _fqdn() -> str:
    return socket.getfqdn()


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def local_name(sock: socket.socket) -> str:
    """The EHLO name: this machine's name (its FQDN where it has one), as the glossary
    promises; an address literal of our end only when the name is unusable."""
    name = _fqdn()
    if _HOST_NAME.fullmatch(name):
        return name
    address = str(sock.getsockname()[0])
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


def speaks_tls(addresses: Sequence[tuple[Any, ...]], *, timeout: float) -> bool:
    """Whether the server at the first of ``addresses`` (getaddrinfo entries) completes
    a TLS handshake right after connecting, i.e. expects implicit TLS. Diagnostics only:
    the certificate is not checked here."""
    if not addresses:
        return False
    family, kind, proto, _, sockaddr = addresses[0]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            with context.wrap_socket(sock) as tls:
                return tls.version() is not None
    except (OSError, ssl.SSLError):
        return False
