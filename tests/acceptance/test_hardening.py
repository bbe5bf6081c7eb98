"""Hardening (issue 9): no address that redirects mail, nothing secret in sight, files
private, and every failure one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.cli import run_postroom

from postroom import Postroom
from postroom.errors import AddressError

MIS_SPLIT = "alice@example.org)<bob@example.org>"


def one_line_refusal(done: object, *, says: str) -> None:
    from tests.support.cli import Run

    assert isinstance(done, Run)
    assert done.code == 2, done.output
    assert "Traceback" not in done.output
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert says in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("send", "--to", MIS_SPLIT, "--subject", "s", "--text", "x"),
        ("send", "--to", "ok@example.org", "--cc", MIS_SPLIT, "--subject", "s", "--text", "x"),
        ("config", "set", "mail.from", MIS_SPLIT),
        ("config", "set", "mail.admins", MIS_SPLIT),
        ("config", "set", "mail.redirect_to", MIS_SPLIT),
        ("user", "add", "eve", "--email", MIS_SPLIT),
    ],
)
def test_a_mis_split_address_is_refused_at_every_door(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    one_line_refusal(run_postroom(tmp_path, *args), says=MIS_SPLIT)
    listed = run_postroom(tmp_path, "outbox", "list", "--json")
    assert json.loads(listed.stdout) == []
    assert not (tmp_path / "postroom.toml").exists()


def test_a_mis_split_address_is_refused_in_imports_and_the_library(tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    csv.write_text(f"username,email\neve,{MIS_SPLIT}\n")
    imported = run_postroom(tmp_path, "user", "import", str(csv))
    assert imported.code == 2
    assert MIS_SPLIT in imported.stderr
    with Postroom(tmp_path) as postroom:
        with pytest.raises(AddressError):
            postroom.send(to=MIS_SPLIT, subject="s", text="x")
        assert [u.username for u in postroom.users.list()] == ["root"]
