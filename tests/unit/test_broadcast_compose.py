"""The fast paths of a broadcast give what the ordinary ones give: addresses checked per
domain, and copies made from a template, byte for byte as compose makes them."""

from __future__ import annotations

import dataclasses
import string
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.addresses import Address, parse_address
from postroom.broadcast.checker import AddressChecker
from postroom.errors import MessageError, MessageTooLargeError
from postroom.message import ComposePolicy, OutgoingMessage, compose, mime
from postroom.message.personal import PersonalCopies

DOMAINS = [
    "example.org",
    "Example.ORG",
    "bücher.example",
    "localhost",
    "a..b",
    "-bad.org",
    "[127.0.0.1]",
    "nodot",
    "ex ample.org",
    "x" * 64 + ".org",
]
LOCAL = st.text(
    alphabet=string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-.\" ()<>,;:@é",
    max_size=70,
)


def outcome(parse: object, text: str) -> tuple[str, object]:
    try:
        return ("ok", parse(text))  # type: ignore[operator]
    except MessageError as exc:
        return ("error", str(exc))


@settings(max_examples=400, deadline=None)
@given(local=LOCAL, domain=st.sampled_from(DOMAINS))
def test_checker_answers_as_parse_address(local: str, domain: str) -> None:
    checker = AddressChecker()
    # Teach it the domain first, as a broadcast does with its first user there.
    outcome(checker.parse, f"first@{domain}")
    text = f"{local}@{domain}"
    assert outcome(checker.parse, text) == outcome(parse_address, text)


def test_checker_checks_each_domain_in_full_once() -> None:
    checker = AddressChecker()
    assert checker.parse("ada@University.Example") == Address("ada@university.example")
    assert checker.parse("bob@University.Example") == Address("bob@university.example")
    assert checker.parse("Bob <bob@University.Example>").name == "Bob"
    with pytest.raises(MessageError):
        checker.parse("a..b@University.Example")


POLICY = ComposePolicy(from_="OMERO <omero@university.example>", subject_prefix="[OMERO]")


@pytest.mark.parametrize("html", [None, "<p>Down at <b>6pm</b></p>"])
@pytest.mark.parametrize(
    "address",
    [
        "bob@university.example",
        "a.very.long.local.part.for.folding.tests@" + "sub." * 12 + "university.example",
    ],
)
def test_a_copy_is_what_compose_makes_for_that_address(
    monkeypatch: pytest.MonkeyPatch, html: str | None, address: str
) -> None:
    monkeypatch.setattr(mime, "_random_boundary", lambda: "=_fixed")
    message = OutgoingMessage(subject="Maintenance", text="Down at 6pm", html=html, type="b")
    copies = PersonalCopies(message, POLICY)
    first = copies.copy_for(parse_address("ada@university.example"))
    copy = copies.copy_for(parse_address(address))
    assert copy.message_id != first.message_id
    expected = compose(
        dataclasses.replace(message, to=(address,), message_id=copy.message_id),
        POLICY,
        now=_date_of(first.raw),
    )
    assert copy.raw == expected.raw
    assert copy.envelope == expected.envelope
    assert copy.recipient_kinds == ((address, "to"),)
    assert (copy.subject, copy.from_header) == (expected.subject, expected.from_header)


def _date_of(raw: bytes) -> datetime:
    line = next(x for x in raw.split(b"\r\n") if x.startswith(b"Date: "))
    return datetime.strptime(line[6:].decode(), "%a, %d %b %Y %H:%M:%S %z").astimezone(UTC)


def test_non_ascii_addresses_and_redirects_take_the_ordinary_path() -> None:
    message = OutgoingMessage(subject="s", text="t")
    copies = PersonalCopies(message, POLICY)
    utf8 = copies.copy_for(parse_address("jörg@example.org"))
    assert utf8.envelope.smtputf8
    redirected = PersonalCopies(message, dataclasses.replace(POLICY, redirect_to="qa@x.org"))
    for _ in range(2):
        copy = redirected.copy_for(parse_address("bob@example.org"))
        assert copy.recipient_kinds == (("qa@x.org", "redirect"),)
        assert b"X-Postroom-Original-Recipients: bob@example.org" in copy.raw


def test_copies_refuse_a_message_with_recipients_and_keep_the_size_limit() -> None:
    with pytest.raises(MessageError):
        PersonalCopies(OutgoingMessage(to=("a@x.org",), subject="s", text="t"), POLICY)
    small = dataclasses.replace(POLICY, max_size=470)  # the first copy is 456 bytes
    copies = PersonalCopies(OutgoingMessage(subject="s", text="t" * 100), small)
    copies.copy_for(parse_address("a@x.org"))
    with pytest.raises(MessageTooLargeError):
        copies.copy_for(parse_address("b" * 60 + "@" + "x" * 60 + ".org"))
