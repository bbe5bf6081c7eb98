"""`postroom oauth authorize --provider google`: the installed-app flow as an admin runs
it. The test plays the browser: it reads the printed consent URL and follows the
provider's redirect to the loopback port with a code; the token endpoint is the fake."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trustme
from tests.support.cli import run_postroom
from tests.support.oauth_fakes import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    IdentityFake,
    identity_fake,
)

from postroom.runtime.settings import change_settings
from postroom.settings import Home


@pytest.fixture
def fake(tls_ca: trustme.CA) -> Iterator[IdentityFake]:
    with identity_fake(tls_ca) as started:
        yield started


def start_authorize(home: Path, fake: IdentityFake, ca_file: str) -> subprocess.Popen[str]:
    settings = {
        "mail.oauth.client_id": CLIENT_ID,
        "mail.oauth.client_secret": CLIENT_SECRET,
        "mail.oauth.token_url": fake.google_token_url,
        "mail.tls_ca_file": ca_file,
    }
    change_settings(Home(home), set_values=settings)  # as `config set` stores them
    environ = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    environ.update({"POSTROOM_HOME": str(home), "COLUMNS": "2000", "NO_COLOR": "1"})
    return subprocess.Popen(
        [sys.executable, "-m", "postroom", "oauth", "authorize", "--provider", "google",
         "--auth-url", f"{fake.base_url}/consent", "--timeout", "30"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def consent_url(process: subprocess.Popen[str]) -> dict[str, str]:
    """Read the printed URL (as the admin copies it) and return its query."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("https://"):
            return {k: v[0] for k, v in parse_qs(urlsplit(line.strip()).query).items()}
    raise AssertionError("no URL printed")


def test_the_refresh_token_is_stored_privately_and_never_printed(
    tmp_path: Path, fake: IdentityFake, ca_file: str
) -> None:
    process = start_authorize(tmp_path, fake, ca_file)
    query = consent_url(process)
    # The browser, after consent: the provider redirects with a code and our state.
    answer = httpx.get(query["redirect_uri"], params={"code": "fake-code", "state": query["state"]})
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 0, stderr
    assert answer.status_code == 200
    assert "close this tab" in answer.text
    assert query["client_id"] == CLIENT_ID
    assert query["scope"] == "https://mail.google.com/"
    assert query["access_type"] == "offline"
    assert urlsplit(query["redirect_uri"]).hostname == "127.0.0.1"
    [exchange] = fake.token_requests
    assert exchange["grant_type"] == "authorization_code"
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(exchange["code_verifier"].encode()).digest()
    )
    assert challenge.decode().rstrip("=") == query["code_challenge"]  # PKCE holds
    config_file = tmp_path / "postroom.toml"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    stored = tomllib.loads(config_file.read_text())["mail"]
    assert stored["oauth.refresh_token"] == REFRESH_TOKEN
    assert stored["oauth.provider"] == "google"
    assert REFRESH_TOKEN not in stdout + stderr
    assert "Stored mail.oauth.refresh_token" in stdout
    shown = run_postroom(tmp_path, "config", "get", "mail.oauth.refresh_token")
    assert REFRESH_TOKEN not in shown.output


def test_a_redirect_with_another_state_is_refused_and_nothing_stored(
    tmp_path: Path, fake: IdentityFake, ca_file: str
) -> None:
    process = start_authorize(tmp_path, fake, ca_file)
    query = consent_url(process)
    httpx.get(query["redirect_uri"], params={"code": "fake-code", "state": "forged"})
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 1
    assert "state" in stderr
    assert fake.token_requests == []
    assert "refresh_token" not in (tmp_path / "postroom.toml").read_text()


def test_consent_refused_in_the_browser_says_so(
    tmp_path: Path, fake: IdentityFake, ca_file: str
) -> None:
    process = start_authorize(tmp_path, fake, ca_file)
    query = consent_url(process)
    httpx.get(query["redirect_uri"], params={"error": "access_denied", "state": query["state"]})
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 1
    assert "access_denied" in stderr
    assert "Traceback" not in stderr


def test_microsoft_needs_no_authorize_step(tmp_path: Path) -> None:
    run = run_postroom(tmp_path, "oauth", "authorize", "--provider", "microsoft")

    assert run.code == 2
    assert "client credentials" in run.stderr
