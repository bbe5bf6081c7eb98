"""The pure parts of OAuth2 sending: the XOAUTH2 string, Graph's recipient headers and
Retry-After, the fixes for token endpoint refusals, and verdicts without SMTP codes."""

from __future__ import annotations

import base64
import email.utils
import random
import time
from email import message_from_bytes
from email.policy import default

import pytest

from postroom.delivery.policy import RetryPolicy, decide
from postroom.store.records import ClaimedMessage, ClaimedRecipient
from postroom.transport.base import RecipientResult, SendResult
from postroom.transport.graph import _retry_after, graph_mime
from postroom.transport.oauth import refusal_fix
from postroom.transport.smtp_auth import xoauth2_response

MIME = (
    b"From: Lab <noreply@contoso.example>\r\n"
    b"To: Ada <ada@example.org>,\r\n bob@example.org\r\n"
    b"Cc: carol@example.org\r\n"
    b"Subject: hello\r\n"
    b"\r\n"
    b"To: this line is the body, not a header\r\n"
)


def test_the_xoauth2_string_is_the_one_the_providers_document() -> None:
    raw = base64.b64decode(xoauth2_response("someone@example.com", "ya29.token"))
    assert raw == b"user=someone@example.com\x01auth=Bearer ya29.token\x01\x01"


def test_graph_mime_adds_blind_copies_as_bcc_and_keeps_the_rest() -> None:
    recipients = ("ada@example.org", "bob@example.org", "carol@example.org", "dan@example.org")
    out = graph_mime(MIME, recipients)
    parsed = message_from_bytes(out, policy=default)
    assert parsed["Bcc"] == "dan@example.org"
    assert parsed["To"] == "Ada <ada@example.org>, bob@example.org"
    assert out.endswith(b"\r\n\r\nTo: this line is the body, not a header\r\n")


def test_graph_mime_unchanged_when_headers_name_exactly_the_recipients() -> None:
    recipients = ("ada@example.org", "bob@example.org", "carol@example.org")
    assert graph_mime(MIME, recipients) == MIME


def test_graph_mime_never_sends_to_someone_the_envelope_leaves_out() -> None:
    # A retry for carol only: Ada and Bob had it already and must not get it again.
    out = graph_mime(MIME, ("carol@example.org",))
    parsed = message_from_bytes(out, policy=default)
    assert parsed["To"] == "carol@example.org"
    assert parsed["Cc"] is None
    assert parsed["X-Original-To"] == "Ada <ada@example.org>, bob@example.org"
    assert parsed["X-Original-Cc"] == "carol@example.org"
    assert out.endswith(b"\r\n\r\nTo: this line is the body, not a header\r\n")


@pytest.mark.parametrize(
    ("header", "expected"), [("120", 120.0), ("0", 0.0), ("999999", 3600.0), ("soon", None)]
)
def test_retry_after_in_seconds_is_bounded(header: str, expected: float | None) -> None:
    assert _retry_after(header) == expected


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 90, usegmt=True)
    seconds = _retry_after(when)
    assert seconds is not None
    assert 85 <= seconds <= 91


@pytest.mark.parametrize(
    ("error", "description", "provider", "expected"),
    [
        ("invalid_client", "AADSTS7000215: Invalid client secret", "microsoft", "client secret"),
        ("invalid_grant", "AADSTS65001: consent required", "microsoft", "admin consent"),
        ("unauthorized_client", "AADSTS700016: app not found", "microsoft", "client_id"),
        ("invalid_request", "AADSTS90002: Tenant not found", "microsoft", "tenant_id"),
        ("invalid_grant", "Token has been expired or revoked.", "google", "oauth authorize"),
        ("invalid_scope", "", "generic", "mail.oauth.scope"),
        ("server_error", "", "generic", "docs/oauth.md"),
    ],
)
def test_each_refusal_names_its_fix(
    error: str, description: str, provider: str, expected: str
) -> None:
    assert expected in refusal_fix(error, description, provider)


def _claimed(*addresses: str) -> ClaimedMessage:
    recipients = tuple(ClaimedRecipient(i + 1, a) for i, a in enumerate(addresses))
    now = time.time()
    return ClaimedMessage(
        pk=1,
        message_id="<m@x>",
        envelope_from="noreply@contoso.example",
        raw=b"",
        smtputf8=False,
        attempts=0,
        queued_at=now,
        recipients=recipients,
    )


def test_a_verdict_without_an_smtp_code_decides_and_retry_after_delays() -> None:
    message = _claimed("ada@example.org", "bob@example.org")
    result = SendResult(
        tuple(
            RecipientResult(a, None, "Graph sendMail: HTTP 429", "temporary", retry_after=600)
            for a in ("ada@example.org", "bob@example.org")
        )
    )
    now = time.time()
    outcome = decide(
        message,
        result=result,
        policy=RetryPolicy(backoff_min=1, backoff_max=5),
        started_at=now,
        now=now,
        rng=random.Random(1),
    )
    assert outcome.status == "deferred"
    assert outcome.next_attempt_at >= now + 600  # not the 1-5 s backoff
    assert [(r.code, r.status) for r in outcome.recipients] == [(None, "deferred")] * 2
