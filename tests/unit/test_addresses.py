"""parse_address: the forms people write addresses in, normalised for SMTP."""

from __future__ import annotations

import email
import email.policy
import os

import pytest
from email_validator import validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.addresses import Address, _plain_address, parse_address, parse_address_list
from postroom.errors import AddressError, HeaderError


@pytest.mark.parametrize(
    ("text", "name", "addr_spec"),
    [
        ("jane@example.org", "", "jane@example.org"),
        ("  jane@example.org  ", "", "jane@example.org"),
        ("<jane@example.org>", "", "jane@example.org"),
        ("Jane Doe <jane@example.org>", "Jane Doe", "jane@example.org"),
        ("Jane<jane@example.org>", "Jane", "jane@example.org"),
        ('"Doe, Jane" <jane@example.org>', "Doe, Jane", "jane@example.org"),
        ('"Say \\"hi\\"" <x@example.org>', 'Say "hi"', "x@example.org"),
        ('"Jane <at work>" <jane@example.org>', "Jane <at work>", "jane@example.org"),
        ("Jörg Müller <jorg@example.org>", "Jörg Müller", "jorg@example.org"),
    ],
)
def test_name_forms_are_parsed(text: str, name: str, addr_spec: str) -> None:
    address = parse_address(text)
    assert (address.name, address.addr_spec) == (name, addr_spec)


def test_idn_domain_becomes_punycode() -> None:
    address = parse_address("Jörg <x@Bücher.example>")
    assert address.addr_spec == "x@xn--bcher-kva.example"
    assert address.domain == "xn--bcher-kva.example"
    assert address.smtputf8 is False


def test_non_ascii_local_part_is_kept_and_needs_smtputf8() -> None:
    address = parse_address("ü@example.org")
    assert address.addr_spec == "ü@example.org"
    assert address.smtputf8 is True


@pytest.mark.parametrize("text", ["root@localhost", "root@LOCALHOST", "root@localhost.localdomain"])
def test_localhost_is_allowed(text: str) -> None:
    assert parse_address(text).addr_spec == text.lower()


def test_address_prints_as_it_would_in_a_header() -> None:
    assert str(parse_address('"Doe, Jane" <jane@example.org>')) == (
        '"Doe, Jane" <jane@example.org>'
    )
    assert str(parse_address("jane@example.org")) == "jane@example.org"


def test_with_name_gives_a_new_address_with_that_name() -> None:
    address = Address("jane@example.org").with_name("Jane")
    assert (address.name, address.addr_spec) == ("Jane", "jane@example.org")


def test_with_name_refuses_a_line_break() -> None:
    with pytest.raises(HeaderError):
        Address("jane@example.org").with_name("Jane\r\nBcc: x@evil.example")


def test_bare_address_is_required_when_names_are_not_allowed() -> None:
    with pytest.raises(AddressError, match="bare address"):
        parse_address("Jane <jane@example.org>", allow_name=False)


def test_a_list_given_as_a_string_is_one_address() -> None:
    assert parse_address_list("jane@example.org") == (parse_address("jane@example.org"),)


@pytest.mark.parametrize(
    ("text", "named", "says"),
    [
        ("not-an-address", "not-an-address", "@-sign"),
        ("jane@example", "jane@example", "period"),
        ("", "''", "empty"),
        ("Jane <>", "Jane <>", "empty"),
        ("a b@example.org", "a b@example.org", "SPACE"),
        ("a@example.org, b@example.org", "a@example.org, b@example.org", "one address per entry"),
        ("A <a@example.org> B <b@example.org>", "A <a@example.org>", "one address per entry"),
        ("x@[127.0.0.1]", "x@[127.0.0.1]", "IP address"),
    ],
)
def test_invalid_address_gives_one_line_naming_it(text: str, named: str, says: str) -> None:
    with pytest.raises(AddressError) as caught:
        parse_address(text)
    message = str(caught.value)
    assert "\n" not in message
    assert named in message
    assert says in message


@pytest.mark.parametrize(
    "text",
    [
        "jane@example.org\r\nBcc: x@evil.example",
        "Jane\n <jane@example.org>",
        "jane@example.org\x00",
        "=?utf-8?q?Jane=0ABcc:_x@evil.example?= <jane@example.org>",
    ],
)
def test_address_with_line_break_is_refused_as_a_header_error(text: str) -> None:
    with pytest.raises(HeaderError):
        parse_address(text)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("jane@example.org", "jane@example.org"),
        ("Jane Doe <jane@example.org>", "Jane Doe <jane@example.org>"),
        ('"Doe, Jane" <jane@example.org>', '"Doe, Jane" <jane@example.org>'),
        ('"Say \\"hi\\"" <x@example.org>', '"Say \\"hi\\"" <x@example.org>'),
        ("Jörg Müller <jorg@example.org>", "Jörg Müller <jorg@example.org>"),
    ],
)
def test_address_is_shown_as_a_reader_shows_it_with_the_name_decoded(text: str, shown: str) -> None:
    address = parse_address(text)
    assert address.shown == shown
    # str(address) is the header form (names RFC 2047-encoded); a reader decodes it.
    parsed = email.message_from_string(f"From: {address}\n\n", policy=email.policy.default)
    assert str(parsed["From"]) == shown


_ATOM_CHARS = "abcXYZ019!#$%&'*+/=?^_`{|}~-"


@given(
    local=st.text(alphabet=_ATOM_CHARS + ".", min_size=1, max_size=70),
    labels=st.lists(
        st.text(alphabet="abcXYZ019-", min_size=1, max_size=64), min_size=1, max_size=4
    ),
    tld=st.sampled_from(["org", "COM", "de", "test", "local", "onion", "x", "c0m", "museum"]),
)
@settings(max_examples=int(os.environ.get("POSTROOM_HYPOTHESIS_EXAMPLES", "400")), deadline=None)
def test_fast_path_agrees_with_email_validator(local: str, labels: list[str], tld: str) -> None:
    spec = f"{local}@{'.'.join([*labels, tld])}"
    fast = _plain_address(spec)
    if fast is None:
        return  # the fast path declined: email-validator decides, as before
    checked = validate_email(spec, check_deliverability=False, allow_smtputf8=True)
    assert fast == f"{checked.local_part}@{checked.ascii_domain}"


@pytest.mark.parametrize(
    "text",
    [
        "alice@example.org)<bob@example.org>",
        "alice@example.org <bob@example.org>",
        '"alice@example.org" <bob@example.org>',
        "Alice (lab <bob@example.org>",
        "Alice) (lab <bob@example.org>",
        'Al"ice <bob@example.org>',
        "Alice <a@example.org> Bob <bob@example.org>",
    ],
)
def test_a_name_that_could_be_read_as_another_address_is_refused(text: str) -> None:
    with pytest.raises(AddressError) as refused:
        parse_address(text)
    assert "\n" not in str(refused.value)
    assert "give the address alone" in str(refused.value) or "one address per entry" in str(
        refused.value
    )


def test_a_name_with_paired_parentheses_is_fine() -> None:
    address = parse_address("Alice (lab 3) <alice@example.org>")
    assert (address.name, address.addr_spec) == ("Alice (lab 3)", "alice@example.org")
