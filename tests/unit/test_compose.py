"""compose(): each rule of DESIGN §3, checked on the bytes a recipient would get."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from postroom.errors import AddressError, HeaderError, MessageError, MessageTooLargeError
from postroom.message import (
    Attachment,
    ComposedMessage,
    ComposePolicy,
    OutgoingMessage,
    compose,
    safe_filename,
)
from postroom.settings.glossary import MailSettings

POLICY = ComposePolicy(from_="Postroom <postroom@example.org>")


def message(**fields: object) -> OutgoingMessage:
    values: dict[str, object] = {"to": ("jane@example.org",), "subject": "Hi", "text": "Hello"}
    values.update(fields)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def received(composed: ComposedMessage) -> EmailMessage:
    parsed = email.message_from_bytes(composed.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def sent(policy: ComposePolicy = POLICY, **fields: object) -> EmailMessage:
    return received(compose(message(**fields), policy))


# -- subject, type, automatic -----------------------------------------------------------


def test_subject_prefix_is_joined_with_exactly_one_space() -> None:
    policy = ComposePolicy(from_="postroom@example.org", subject_prefix="  [Kallithea] ")
    assert sent(policy, subject="  New comment  ")["Subject"] == "[Kallithea] New comment"


def test_subject_without_prefix_is_kept_as_given() -> None:
    assert sent(subject="Zürich ümlauts, “quotes” and emoji 🎉")["Subject"] == (
        "Zürich ümlauts, “quotes” and emoji 🎉"
    )


def test_long_subject_is_folded_and_unfolds_to_the_same_text() -> None:
    subject = " ".join(f"word{i}" for i in range(60)) + " Grüße " * 10
    composed = compose(message(subject=subject.strip()), POLICY)
    assert all(len(line) <= 78 for line in composed.as_bytes().split(b"\r\n"))
    assert received(composed)["Subject"] == subject.strip()


def test_type_header_carries_the_notification_type() -> None:
    assert sent(type="pull_request")["X-Postroom-Notification-Type"] == "pull_request"


def test_type_header_name_comes_from_the_policy() -> None:
    policy = ComposePolicy(from_="k@example.org", type_header="X-Kallithea-Notification-Type")
    assert sent(policy, type="cs_comment")["X-Kallithea-Notification-Type"] == "cs_comment"


def test_type_header_that_is_not_an_x_header_is_refused() -> None:
    with pytest.raises(HeaderError, match="X-"):
        compose(message(), ComposePolicy(from_="k@example.org", type_header="Subject"))


def test_automatic_mail_says_auto_submitted() -> None:
    assert sent(automatic=True)["Auto-Submitted"] == "auto-generated"


def test_mail_written_by_a_person_has_no_auto_submitted() -> None:
    assert "Auto-Submitted" not in sent(automatic=False)
    assert "Auto-Submitted" not in sent()  # the default: a plain send


def test_date_message_id_and_mime_version_are_set() -> None:
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    composed = compose(message(), POLICY, now=now)
    got = received(composed)
    assert got["Date"].datetime == now
    assert got["MIME-Version"] == "1.0"
    assert got["Message-ID"] == composed.message_id
    assert composed.message_id.startswith("<")
    assert composed.message_id.endswith("@example.org>")


def test_given_message_id_is_kept() -> None:
    composed = compose(message(message_id="<abc.123@example.org>"), POLICY)
    assert composed.message_id == "<abc.123@example.org>"
    assert received(composed)["Message-ID"] == "<abc.123@example.org>"


def test_message_id_without_angle_brackets_gets_them() -> None:
    assert compose(message(message_id="abc@example.org"), POLICY).message_id == (
        "<abc@example.org>"
    )


def test_malformed_message_id_is_refused() -> None:
    with pytest.raises(HeaderError, match="Message-ID"):
        compose(message(message_id="<no at sign>"), POLICY)


def test_naive_now_is_taken_as_utc() -> None:
    got = sent_at(datetime(2024, 5, 6, 7, 8, 9))
    assert got.utcoffset() is not None
    assert got.replace(tzinfo=None) == datetime(2024, 5, 6, 7, 8, 9)


def sent_at(now: datetime) -> datetime:
    value: datetime = received(compose(message(), POLICY, now=now))["Date"].datetime
    return value


# -- sender -----------------------------------------------------------------------------


def test_from_is_mail_from_as_configured() -> None:
    got = sent()
    assert got["From"] == "Postroom <postroom@example.org>"


def test_actor_name_with_no_reply_and_the_address_of_mail_from() -> None:
    got = sent(actor_name="Jane Doe")
    (sender,) = got["From"].addresses
    assert sender.display_name == "Jane Doe (no-reply)"
    assert sender.addr_spec == "postroom@example.org"
    assert '"Jane Doe (no-reply)" <postroom@example.org>' in str(got["From"])


def test_actor_rule_disregards_the_display_name_of_mail_from() -> None:
    got = sent(actor_name="Jörg Müller")
    assert "Postroom" not in str(got["From"])
    assert got["From"].addresses[0].display_name == "Jörg Müller (no-reply)"


def test_from_override_replaces_mail_from() -> None:
    composed = compose(message(from_="Errors <errors@example.org>"), POLICY)
    assert received(composed)["From"] == "Errors <errors@example.org>"
    assert composed.envelope.sender == "errors@example.org"


def test_envelope_sender_is_the_from_address() -> None:
    assert compose(message(actor_name="Jane"), POLICY).envelope.sender == "postroom@example.org"


def test_envelope_sender_is_mail_envelope_from_when_set() -> None:
    policy = ComposePolicy(from_="postroom@example.org", envelope_from="bounces@example.org")
    composed = compose(message(actor_name="Jane"), policy)
    assert composed.envelope.sender == "bounces@example.org"
    assert received(composed)["From"].addresses[0].addr_spec == "postroom@example.org"


# -- recipients -------------------------------------------------------------------------


def test_bcc_is_in_the_envelope_but_in_no_header() -> None:
    composed = compose(message(bcc=("secret@example.org",), cc=("cc@example.org",)), POLICY)
    assert composed.envelope.recipients == (
        "jane@example.org",
        "cc@example.org",
        "secret@example.org",
    )
    assert b"secret" not in composed.as_bytes()
    assert "Bcc" not in received(composed)


def test_message_to_bcc_only_has_no_to_header() -> None:
    composed = compose(message(to=(), bcc=("secret@example.org",)), POLICY)
    assert composed.envelope.recipients == ("secret@example.org",)
    assert b"secret" not in composed.as_bytes()


def test_recipients_are_addresses_only_without_repeats_in_order() -> None:
    composed = compose(
        message(
            to=("Jane <jane@example.org>", "bob@example.org"),
            cc=("JANE@example.org",),
            bcc=("Bob <bob@example.org>", "carol@example.org"),
        ),
        POLICY,
    )
    assert composed.envelope.recipients == (
        "jane@example.org",
        "bob@example.org",
        "carol@example.org",
    )
    assert composed.recipient_kinds == (
        ("jane@example.org", "to"),
        ("bob@example.org", "to"),
        ("carol@example.org", "bcc"),
    )


def test_to_and_cc_headers_keep_the_display_names() -> None:
    got = sent(to=('"Doe, Jane" <jane@example.org>',), cc=("Bob <bob@example.org>",))
    assert got["To"].addresses[0].display_name == "Doe, Jane"
    assert got["Cc"] == "Bob <bob@example.org>"


def test_reply_to_is_set_from_its_field() -> None:
    assert sent(reply_to=("Help <help@example.org>",))["Reply-To"] == "Help <help@example.org>"


def test_single_address_given_as_a_string_is_one_recipient() -> None:
    composed = compose(message(to="jane@example.org"), POLICY)
    assert composed.envelope.recipients == ("jane@example.org",)


def test_message_without_recipients_is_refused() -> None:
    with pytest.raises(MessageError, match="no recipient"):
        compose(message(to=()), POLICY)


def test_invalid_recipient_is_refused_naming_it() -> None:
    with pytest.raises(AddressError, match="not-an-address"):
        compose(message(to=("not-an-address",)), POLICY)


def test_redirect_sends_to_the_redirect_address_only() -> None:
    policy = ComposePolicy(from_="postroom@example.org", redirect_to="dev@example.org")
    composed = compose(
        message(cc=("cc@example.org",), bcc=("secret@example.org",)),
        policy,
    )
    assert composed.envelope.recipients == ("dev@example.org",)
    assert composed.recipient_kinds == (("dev@example.org", "redirect"),)
    got = received(composed)
    assert got["To"] == "jane@example.org"
    assert got["Cc"] == "cc@example.org"
    assert got["X-Postroom-Original-Recipients"] == "jane@example.org, cc@example.org"
    assert b"secret" not in composed.as_bytes()


def test_idn_domain_becomes_punycode() -> None:
    composed = compose(message(to=("Jörg <jörg@bücher.example>",)), POLICY)
    assert composed.envelope.recipients == ("jörg@xn--bcher-kva.example",)
    assert received(composed)["To"].addresses[0].domain == "xn--bcher-kva.example"


def test_ascii_message_does_not_need_smtputf8() -> None:
    composed = compose(message(to=("x@bücher.example",), subject="Grüße"), POLICY)
    assert composed.envelope.smtputf8 is False
    assert composed.as_bytes().isascii()


def test_non_ascii_local_part_needs_smtputf8() -> None:
    composed = compose(message(to=("ü@example.org",)), POLICY)
    assert composed.envelope.smtputf8 is True
    assert composed.envelope.recipients == ("ü@example.org",)
    # UTF-8 headers: read them as text, as an SMTPUTF8 server hands them on.
    got = email.message_from_string(composed.as_bytes().decode(), policy=email.policy.default)
    assert got["To"].addresses[0].addr_spec == "ü@example.org"


def test_non_ascii_local_part_only_in_bcc_still_needs_smtputf8() -> None:
    assert compose(message(bcc=("ü@example.org",)), POLICY).envelope.smtputf8 is True


# -- thread, extra headers --------------------------------------------------------------


def test_thread_id_sets_references_and_in_reply_to_to_a_stable_id() -> None:
    first = sent(thread_id="pull-request/42")
    second = sent(thread_id="pull-request/42", subject="Another comment")
    assert first["References"] == "<pull-request/42@example.org>"
    assert first["In-Reply-To"] == first["References"]
    assert second["References"] == first["References"]


def test_thread_id_with_spaces_and_colons_becomes_a_valid_id() -> None:
    assert sent(thread_id="changeset: a b")["References"] == "<changeset%3A%20a%20b@example.org>"


def test_thread_id_with_double_dots_becomes_a_valid_id() -> None:
    assert sent(thread_id="a..b")["References"] == "<a%2E%2Eb@example.org>"


def test_very_long_thread_id_becomes_a_short_stable_id() -> None:
    first = sent(thread_id="t" * 1000)["References"]
    assert first == sent(thread_id="t" * 1000)["References"]
    assert first.startswith("<sha256.")
    assert len(first) < 100


def test_very_long_message_id_is_refused() -> None:
    with pytest.raises(HeaderError, match="at most 250"):
        compose(message(message_id=f"<{'a' * 300}@example.org>"), POLICY)


def test_allowed_extra_headers_are_added() -> None:
    headers = {
        "List-Unsubscribe": "<https://example.org/unsubscribe/abc>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Precedence": "bulk",
        "X-Ticket": "1234",
    }
    got = sent(headers=headers)
    for name, value in headers.items():
        assert got[name] == value


@pytest.mark.parametrize(
    "name",
    ["Bcc", "From", "To", "Cc", "Reply-To", "Content-Type", "Subject", "Message-ID", "Received"],
)
def test_extra_header_not_on_the_allow_list_is_refused(name: str) -> None:
    with pytest.raises(HeaderError, match="allowed: In-Reply-To"):
        compose(message(headers={name: "x"}), POLICY)


def test_refused_address_header_points_at_the_field() -> None:
    with pytest.raises(HeaderError, match="use the message's reply_to field"):
        compose(message(headers={"Reply-To": "a@example.org"}), POLICY)


@pytest.mark.parametrize(
    "name", ["X-Postroom-Notification-Type", "x-postroom-original-recipients", "X-Postroom-Foo"]
)
def test_extra_header_postroom_sets_itself_is_refused(name: str) -> None:
    with pytest.raises(HeaderError, match="X-Postroom"):
        compose(message(headers={name: "x"}), POLICY)


def test_references_both_from_thread_id_and_extra_header_is_refused() -> None:
    with pytest.raises(HeaderError, match="twice"):
        compose(message(thread_id="pr/1", headers={"References": "<x@example.org>"}), POLICY)


def test_extra_header_with_pre_encoded_value_is_refused() -> None:
    with pytest.raises(HeaderError, match="plain text"):
        compose(message(headers={"X-Name": "=?utf-8?q?caf=C3=A9?="}), POLICY)


# -- body and attachments ---------------------------------------------------------------


def test_text_only_message_is_text_plain() -> None:
    got = sent(text="Hello ✓")
    assert got.get_content_type() == "text/plain"
    assert got.get_content().splitlines() == ["Hello ✓"]


def test_html_comes_as_an_alternative_to_the_text() -> None:
    got = sent(text="Hello", html="<p>Hello</p>")
    assert got.get_content_type() == "multipart/alternative"
    plain = got.get_body(("plain",))
    html = got.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().splitlines() == ["Hello"]
    assert html.get_content().splitlines() == ["<p>Hello</p>"]


def test_attachments_come_with_their_content_and_type() -> None:
    got = sent(
        html="<p>Hi</p>",
        attachments=(Attachment("report.pdf", b"%PDF-1.7", "application/pdf"),),
    )
    assert got.get_content_type() == "multipart/mixed"
    (part,) = got.iter_attachments()
    assert part.get_filename() == "report.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_content() == b"%PDF-1.7"
    assert got.get_body(("html",)) is not None


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\evil\\x.exe", "x.exe"),
        ("C:x.exe", "x.exe"),
        ("..", "attachment"),
        ("", "attachment"),
        ("dir/", "dir"),
        (".bashrc", "bashrc"),
        ("a\r\nb.txt", "ab.txt"),
        ("invoice\u202etxt.exe", "invoicetxt.exe"),
        ('"<quoted>".txt', "quoted.txt"),
        ("Grüße.txt", "Grüße.txt"),
    ],
)
def test_attachment_file_name_is_made_safe(given: str, safe: str) -> None:
    assert safe_filename(given) == safe
    (part,) = sent(attachments=(Attachment(given, b"x"),)).iter_attachments()
    assert part.get_filename() == safe


def test_very_long_file_name_is_cut_keeping_its_extension() -> None:
    name = safe_filename("a" * 500 + ".pdf")
    assert len(name) == 200
    assert name.endswith(".pdf")


def test_attachment_of_a_container_type_is_sent_as_plain_bytes() -> None:
    (part,) = sent(
        attachments=(Attachment("x.eml", b"From: a", "message/rfc822"),)
    ).iter_attachments()
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_filename() == "x.eml"


def test_attachment_content_type_must_be_type_slash_subtype() -> None:
    with pytest.raises(MessageError, match="type/subtype"):
        Attachment("x.bin", b"x", "application")


def test_text_with_lone_surrogate_is_refused() -> None:
    with pytest.raises(MessageError, match="text part"):
        compose(message(text="broken \udcff"), POLICY)


# -- size, settings, output -------------------------------------------------------------


def test_message_over_max_size_is_refused_with_size_and_limit() -> None:
    policy = ComposePolicy(from_="postroom@example.org", max_size=1000)
    with pytest.raises(MessageTooLargeError) as caught:
        compose(message(attachments=(Attachment("big.bin", b"x" * 2000),)), policy)
    assert caught.value.limit == 1000
    assert caught.value.size > 2000
    assert "mail.max_size" in str(caught.value)


def test_message_at_max_size_is_accepted() -> None:
    size = len(compose(message(), POLICY, now=datetime(2024, 1, 1, tzinfo=UTC)).as_bytes())
    policy = ComposePolicy(from_="Postroom <postroom@example.org>", max_size=size + 10)
    assert compose(message(), policy).message_id


def test_message_uses_crlf_line_ends_only() -> None:
    raw = compose(message(text="one\ntwo\rthree", html="<p>x</p>"), POLICY).as_bytes()
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")


def test_as_bytes_is_stable() -> None:
    composed = compose(message(html="<p>x</p>"), POLICY)
    assert composed.as_bytes() == composed.as_bytes()


def test_policy_from_settings_takes_the_mail_settings() -> None:
    mail = MailSettings(
        from_="Kallithea <k@example.org>",
        envelope_from="bounce@example.org",
        subject_prefix="[k]",
        type_header="X-Kallithea-Notification-Type",
        redirect_to="dev@example.org",
        max_size=1000,
    )
    assert ComposePolicy.from_settings(mail) == ComposePolicy(
        from_="Kallithea <k@example.org>",
        envelope_from="bounce@example.org",
        subject_prefix="[k]",
        type_header="X-Kallithea-Notification-Type",
        redirect_to="dev@example.org",
        max_size=1000,
    )


def test_message_headers_cannot_be_changed_through_the_callers_dict() -> None:
    headers = {"X-Ticket": "1"}
    outgoing = message(headers=headers)
    headers["X-Ticket"] = "2"
    assert sent(headers=outgoing.headers)["X-Ticket"] == "1"


def test_non_ascii_bodies_are_encoded_so_no_8bitmime_is_needed() -> None:
    text = "Grüße aus Köln\n" + "ä" * 200
    composed = compose(
        OutgoingMessage(to=("ada@example.org",), subject="Grüße", text=text, html="<p>Grüße</p>"),
        POLICY,
    )
    raw = composed.as_bytes()
    assert max(raw) < 128
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n").rstrip("\n") == text
