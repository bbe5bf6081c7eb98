"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from tests.support.smtpd import SilentServer, SMTPServer, start_server

# -- SMTP servers (tests/support/smtpd.py) -------------------------------------------------


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A private CA; servers get certificates from it, clients trust it via a PEM file."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of the test CA's certificate (PEM), for mail.tls_ca_file."""
    path: Path = tmp_path_factory.mktemp("ca") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def make_smtp_server() -> Iterator[Callable[..., SMTPServer]]:
    """Start test SMTP servers (see ``start_server``); all are stopped after the test."""
    started: list[SMTPServer] = []

    def make(*args: Any, **kwargs: Any) -> SMTPServer:
        server = start_server(*args, **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(make_smtp_server: Callable[..., SMTPServer]) -> SMTPServer:
    """A plain SMTP server on 127.0.0.1 that records what it receives."""
    return make_smtp_server()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A TCP port that accepts connections and never greets."""
    server = SilentServer()
    yield server
    server.close()
