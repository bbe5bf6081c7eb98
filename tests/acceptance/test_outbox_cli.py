"""`postroom outbox` driven as an admin would, in a subprocess, on the home's database."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.cli import run_postroom

from postroom.settings import Home
from postroom.store.engine import make_engine
from postroom.store.migrate import upgrade
from postroom.store.outbox import Outbox
from postroom.store.records import MessageOutcome, NewMessage, NewRecipient, RecipientOutcome

LOGGED_NOTE = (
    "mail is switched off (mail.enabled=false): these messages were written to the log, "
    "not delivered"
)


@dataclass
class Seeded:
    home: Path
    outbox: Outbox

    def add(
        self, subject: str, to: list[str], *, age_minutes: float = 0, held: bool = False
    ) -> int:
        headers = (
            f"From: Lab Server <noreply@lab.example.org>\r\nTo: {', '.join(to)}\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@lab.example.org>\r\n"
        )
        raw = (headers + f"\r\nDear colleague,\r\n{subject} is ready.\r\n").encode()
        message = NewMessage(
            message_id=f"<{subject.replace(' ', '.')}@lab.example.org>",
            type="message",
            subject=subject,
            from_header="Lab Server <noreply@lab.example.org>",
            envelope_from="noreply@lab.example.org",
            raw=raw,
            recipients=tuple(NewRecipient(a, "to") for a in to),
            held=held,
        )
        now = time.time() - age_minutes * 60
        return self.outbox.enqueue([message], now=now)[0].id

    def attempt(
        self,
        pk: int,
        replies: dict[str, tuple[str, int, str]],
        *,
        status: str,
        outcome: str | None = "sent",
    ) -> None:
        """One delivery attempt of ``pk`` with each recipient's (status, code, reply)."""
        claimed = self.outbox.claim("test", limit=1000, lease_seconds=60)
        mine = next(m for m in claimed if m.pk == pk)
        self.outbox.release("test", [m.pk for m in claimed if m.pk != pk])
        results = tuple(RecipientOutcome(r.pk, *replies[r.address]) for r in mine.recipients)
        problems = [f"{o.code} {o.reply}" for o in results if o.status != "sent"]
        self.outbox.record(
            "test",
            [
                MessageOutcome(
                    pk=pk,
                    status=status,
                    counted=True,
                    next_attempt_at=time.time() + 600,
                    last_error="; ".join(problems) or None,
                    outcome=outcome if status == "sent" else None,
                    attempt_outcome=status,
                    detail=json.dumps(
                        {
                            "recipients": [
                                {"address": r.address, "code": o.code, "reply": o.reply}
                                for r, o in zip(mine.recipients, results, strict=True)
                            ]
                        }
                    ),
                    started_at=time.time(),
                    finished_at=time.time(),
                    recipients=results,
                )
            ],
            worker="worker-7",
        )


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    engine = make_engine(f"sqlite:///{Home.resolve(tmp_path).database_file}")
    upgrade(engine)
    yield Seeded(tmp_path, Outbox(engine))
    engine.dispose()


def outbox(home: Path, *args: str) -> tuple[int, str, str]:
    run = run_postroom(home, "outbox", *args)
    return run.code, run.stdout, run.stderr


def test_list_shows_newest_first_with_state_recipients_and_subject(seeded: Seeded) -> None:
    old = seeded.add("Nightly backup", ["ops@lab.example.org"], age_minutes=90)
    new = seeded.add(
        "Image import",
        ["ada@uni.example", "bob@uni.example", "cy@uni.example"],
    )
    code, stdout, _ = outbox(seeded.home, "list")
    assert code == 0
    assert stdout.index("Image import") < stdout.index("Nightly backup")
    assert "ada@uni.example, bob@uni.example +1" in stdout
    assert "1h30m" in stdout
    code, stdout, stderr = outbox(seeded.home, "list", "--json")
    listed = json.loads(stdout)
    assert [m["id"] for m in listed] == [new, old]
    assert set(listed[0]) >= {
        "id", "status", "subject", "from", "recipients", "attempts", "message_id",
        "created_at", "updated_at", "outcome", "last_error",
    }  # fmt: skip
    assert listed[0]["recipients"][2] == {
        "address": "cy@uni.example",
        "kind": "to",
        "status": "queued",
        "code": None,
        "reply": None,
        "attempts": 0,
        "updated_at": listed[0]["created_at"],
    }
    assert stderr == ""


def test_list_filters_by_status_and_limit(seeded: Seeded) -> None:
    seeded.add("First", ["ada@uni.example"])
    held = seeded.add("Second", ["ada@uni.example"], held=True)
    code, stdout, _ = outbox(seeded.home, "list", "--status", "held", "--json")
    assert code == 0
    assert [m["id"] for m in json.loads(stdout)] == [held]
    assert len(json.loads(outbox(seeded.home, "list", "--limit", "1", "--json")[1])) == 1


def test_list_rejects_an_unknown_status_naming_the_states(seeded: Seeded) -> None:
    code, stdout, stderr = outbox(seeded.home, "list", "--status", "bounced", "--json")
    assert code == 2
    assert stdout == ""
    assert stderr.strip().splitlines() == [
        "error: unknown status 'bounced'; the states are queued, sending, sent, deferred, "
        "failed, held"
    ]


def test_empty_outbox_in_a_new_home(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    assert outbox(home, "list", "--json")[:2] == (0, "[]\n")
    code, stdout, _ = outbox(home, "list")
    assert (code, stdout.strip()) == (0, "the outbox is empty")


def test_logged_only_mail_is_not_called_delivered(seeded: Seeded) -> None:
    pk = seeded.add("Password reset", ["ada@uni.example"])
    seeded.attempt(
        pk,
        {"ada@uni.example": ("sent", 250, "logged, not delivered")},
        status="sent",
        outcome="logged",
    )
    code, stdout, stderr = outbox(seeded.home, "list")
    assert code == 0
    assert "sent (logged only, not delivered)" in stdout
    assert LOGGED_NOTE in stderr
    assert json.loads(outbox(seeded.home, "list", "--json")[1])[0]["outcome"] == "logged"
    assert "sent (logged only, not delivered)" in outbox(seeded.home, "show", str(pk))[1]


def test_delivered_mail_has_no_logged_only_note(seeded: Seeded) -> None:
    pk = seeded.add("Password reset", ["ada@uni.example"])
    seeded.attempt(pk, {"ada@uni.example": ("sent", 250, "2.0.0 Ok: queued")}, status="sent")
    code, stdout, stderr = outbox(seeded.home, "list")
    assert code == 0
    assert "logged only" not in stdout + stderr
    assert "250 2.0.0 Ok: queued" in stdout


def test_show_has_headers_body_recipient_states_and_attempts(seeded: Seeded) -> None:
    pk = seeded.add("Quota warning", ["ada@uni.example", "bob@other.example"])
    seeded.attempt(
        pk,
        {
            "ada@uni.example": ("sent", 250, "2.0.0 Ok"),
            "bob@other.example": ("deferred", 451, "4.7.1 greylisted"),
        },
        status="deferred",
    )
    code, stdout, _ = outbox(seeded.home, "show", str(pk))
    assert code == 0
    for expected in (
        f"Message {pk}",
        "Subject: Quota warning",
        "From: Lab Server <noreply@lab.example.org>",
        "Dear colleague,",
        "Quota warning is ready.",
        "bob@other.example",
        "4.7.1 greylisted",
        "worker-7",
        "bob@other.example: 451 4.7.1 greylisted",
        "last error: 451 4.7.1 greylisted",
    ):
        assert expected in stdout, expected
    shown = json.loads(outbox(seeded.home, "show", str(pk), "--json")[1])
    assert shown["id"] == pk
    assert shown["status"] == "deferred"
    assert [(r["address"], r["status"], r["code"]) for r in shown["recipients"]] == [
        ("ada@uni.example", "sent", 250),
        ("bob@other.example", "deferred", 451),
    ]
    assert shown["attempt_log"][0]["worker"] == "worker-7"
    assert shown["text"] == "Dear colleague,\nQuota warning is ready.\n"
    assert {"name": "Subject", "value": "Quota warning"} in shown["headers"]


def test_show_raw_prints_only_the_message_to_copy(seeded: Seeded) -> None:
    pk = seeded.add("Copy me", ["ada@uni.example"])
    code, stdout, stderr = outbox(seeded.home, "show", str(pk), "--raw")
    assert code == 0
    assert stdout.startswith("From: Lab Server <noreply@lab.example.org>\n")
    assert stdout.endswith("Copy me is ready.\n")
    assert "Message " not in stdout
    assert stderr == ""


def test_show_unknown_id_is_bad_input(seeded: Seeded) -> None:
    code, stdout, stderr = outbox(seeded.home, "show", "404", "--json")
    assert (code, stdout) == (2, "")
    assert "no message 404 in the outbox" in stderr


def test_retry_makes_a_deferred_message_due_and_refuses_a_sent_one(seeded: Seeded) -> None:
    deferred = seeded.add("Try again", ["ada@uni.example"])
    seeded.attempt(deferred, {"ada@uni.example": ("deferred", 421, "busy")}, status="deferred")
    sent = seeded.add("Done", ["ada@uni.example"])
    seeded.attempt(sent, {"ada@uni.example": ("sent", 250, "Ok")}, status="sent")

    code, stdout, _ = outbox(seeded.home, "retry", str(deferred))
    assert (code, stdout.strip()) == (0, "1 message(s) queued for retry now")
    assert json.loads(outbox(seeded.home, "show", str(deferred), "--json")[1])["status"] == "queued"

    code, stdout, stderr = outbox(seeded.home, "retry", str(sent))
    assert code == 2
    assert "a sent message cannot be retried" in stderr
    assert outbox(seeded.home, "retry", "999")[0] == 2


def test_retry_all_failed_and_all_deferred(seeded: Seeded) -> None:
    failed = seeded.add("Bounced", ["ghost@uni.example"])
    seeded.attempt(failed, {"ghost@uni.example": ("failed", 550, "no such user")}, status="failed")
    assert json.loads(outbox(seeded.home, "retry", "--all-deferred", "--json")[1]) == {"retried": 0}
    code, stdout, _ = outbox(seeded.home, "retry", "--all-failed")
    assert (code, stdout.strip()) == (0, "1 message(s) queued for retry now")
    shown = json.loads(outbox(seeded.home, "show", str(failed), "--json")[1])
    assert shown["recipients"][0]["status"] == "queued"


@pytest.mark.parametrize("args", [(), ("1", "--all-failed"), ("--all-deferred", "--all-failed")])
def test_retry_needs_exactly_one_selector(seeded: Seeded, args: tuple[str, ...]) -> None:
    seeded.add("Any", ["ada@uni.example"])
    code, _, stderr = outbox(seeded.home, "retry", *args)
    assert code == 2
    assert "exactly one of ID, --all-deferred or --all-failed" in stderr


def test_hold_and_release(seeded: Seeded) -> None:
    pk = seeded.add("Wait for it", ["ada@uni.example"])
    code, stdout, _ = outbox(seeded.home, "hold", str(pk), "--json")
    assert (code, json.loads(stdout)) == (0, {"id": pk, "status": "held"})
    code, _, stderr = outbox(seeded.home, "hold", str(pk))
    assert code == 2
    assert f"message {pk} is held" in stderr
    code, stdout, _ = outbox(seeded.home, "release", str(pk))
    assert code == 0
    assert "released" in stdout
    code, _, stderr = outbox(seeded.home, "release", str(pk))
    assert code == 2
    assert f"message {pk} is queued; only held messages can be released" in stderr
    assert "no message 77 in the outbox" in outbox(seeded.home, "hold", "77")[2]


def test_purge_deletes_old_finished_mail_only(seeded: Seeded) -> None:
    sent = seeded.add("Old news", ["ada@uni.example"])
    seeded.attempt(sent, {"ada@uni.example": ("sent", 250, "Ok")}, status="sent")
    waiting = seeded.add("Still waiting", ["ada@uni.example"])
    code, stdout, _ = outbox(seeded.home, "purge", "--older-than", "1")
    assert (code, stdout.strip()) == (0, "Purged 0 message(s)")
    code, stdout, _ = outbox(seeded.home, "purge", "--older-than", "0", "--json")
    assert (code, json.loads(stdout)) == (0, {"purged": 1})
    ids = [m["id"] for m in json.loads(outbox(seeded.home, "list", "--json")[1])]
    assert ids == [waiting]


@pytest.mark.parametrize("status", ["queued", "sending", "deferred"])
def test_purge_refuses_unfinished_states(seeded: Seeded, status: str) -> None:
    seeded.add("Keep me", ["ada@uni.example"])
    code, _, stderr = outbox(seeded.home, "purge", "--older-than", "0", "--status", status)
    assert code == 2
    assert "not finished" in stderr
    assert len(json.loads(outbox(seeded.home, "list", "--json")[1])) == 1


def test_stats_counts_and_qshape(seeded: Seeded) -> None:
    seeded.add("A", ["ada@uni.example", "bob@uni.example"], age_minutes=2)
    seeded.add("B", ["cy@other.example"], age_minutes=45)
    seeded.add("C", ["dee@uni.example"], held=True)
    code, stdout, _ = outbox(seeded.home, "stats", "--json")
    assert code == 0
    data = json.loads(stdout)
    assert data["counts"] == {
        "queued": 2, "sending": 0, "sent": 0, "deferred": 0, "failed": 0, "held": 1,
    }  # fmt: skip
    assert 44 * 60 < data["oldest_pending_seconds"] < 50 * 60
    assert data["age_buckets"][0] == "0-5m"
    assert data["age_buckets"][-1] == "1280m+"
    assert data["domains"] == [
        {"domain": "uni.example", "total": 2, "buckets": [2, 0, 0, 0, 0, 0, 0, 0, 0, 0]},
        {"domain": "other.example", "total": 1, "buckets": [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]},
    ]
    code, stdout, _ = outbox(seeded.home, "stats")
    assert code == 0
    assert "oldest pending message: 4" in stdout
    lines = {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.strip()}
    assert lines["TOTAL"] == ["3", "2", "0", "0", "0", "1", "0", "0", "0", "0", "0"]
    assert lines["uni.example"][:2] == ["2", "2"]
    assert "640-1280m" in stdout
