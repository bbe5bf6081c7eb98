"""The directory on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.support.pg import postroom_on

from postroom import Postroom
from postroom.errors import DirectoryError, UserImportError
from postroom.store.directory_schema import members, users


@pytest.fixture(params=["sqlite", "postgresql"])
def postroom(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Postroom]:
    with postroom_on(request.param, tmp_path) as instance:
        yield instance


def test_root_exists_from_the_start_with_id_0_and_no_address(postroom: Postroom) -> None:
    root = postroom.users.get(0)
    assert (root.username, root.admin, root.active, root.email) == ("root", True, True, None)
    assert postroom.users.get("root") == root
    ada = postroom.users.add("ada", email="ada@example.org")
    assert ada.id == 1  # ids carry on after root's explicit 0, on either database


def test_root_gets_an_address_as_in_omero(postroom: Postroom) -> None:
    root = postroom.users.update_items("0", ["email=root@university.example"])
    assert root.email == "root@university.example"
    with pytest.raises(DirectoryError, match="root stays an active admin"):
        postroom.users.deactivate("root")


def test_users_are_named_by_username_or_id_and_unknown_ones_are_named(
    postroom: Postroom,
) -> None:
    postroom.users.add_group("lab")
    ada = postroom.users.add("ada", full_name="Ada Lovelace", groups=["lab"])
    assert postroom.users.get(str(ada.id)).groups == ("lab",)
    with pytest.raises(DirectoryError, match=r"no user ghost, 99; see"):
        postroom.users.user_ids(["ghost", "ada", 99])
    with pytest.raises(DirectoryError, match="exists already"):
        postroom.users.add("ada")
    with pytest.raises(DirectoryError, match="no group staff"):
        postroom.users.add("bob", groups=["staff"])


def test_members_are_added_and_removed(postroom: Postroom) -> None:
    postroom.users.add_group("lab")
    for name in ("ada", "bob", "carol"):
        postroom.users.add(name)
    name, found = postroom.users.members("lab", add=["ada", "bob", "ada"])
    assert (name, [u.username for u in found]) == ("lab", ["ada", "bob"])
    _, found = postroom.users.members("1", add=["carol"], remove=["ada"])
    assert [u.username for u in found] == ["bob", "carol"]
    assert [(g.name, g.members) for g in postroom.users.groups()] == [("lab", 2)]


def test_deactivated_users_are_listed_only_with_all(postroom: Postroom) -> None:
    postroom.users.add("ada")
    postroom.users.deactivate("ada")
    assert [u.username for u in postroom.users.list()] == ["root"]
    assert [u.username for u in postroom.users.list(include_inactive=True)] == ["root", "ada"]
    assert postroom.users.activate("ada").active


CSV = (
    "username,name,email,admin,groups\n"
    "ada,Ada Lovelace,ada@example.org,true,lab;imaging\n"
    "bob,Bob,bob@example.org,,lab\n"
)


def test_import_creates_users_and_groups_then_updates_them(postroom: Postroom) -> None:
    report = postroom.users.import_csv(io.StringIO(CSV))
    assert (report.rows, report.created, report.updated) == (2, 2, 0)
    assert report.groups_created == ("imaging", "lab")
    ada = postroom.users.get("ada")
    assert (ada.full_name, ada.admin, ada.groups) == ("Ada Lovelace", True, ("imaging", "lab"))
    again = postroom.users.import_csv(
        io.StringIO("username,email,groups\nada,,staff\nbob,bob@example.org,\n")
    )
    assert (again.created, again.updated, again.unchanged) == (0, 1, 1)
    ada = postroom.users.get("ada")
    assert (ada.email, ada.full_name, ada.admin) == (None, "Ada Lovelace", True)
    assert ada.groups == ("imaging", "lab", "staff")  # joined, never left


def test_import_with_a_bad_row_reports_every_line_and_stores_nothing(
    postroom: Postroom,
) -> None:
    bad = CSV + "carol,Carol,carol@,false,\n12,Twelve,,,\nbob,Again,,,\n"
    with pytest.raises(UserImportError) as caught:
        postroom.users.import_csv(io.StringIO(bad))
    assert [line for line, _ in caught.value.problems] == [4, 5, 6]
    assert "line 6: username 'bob' is already on line 3" in str(caught.value)
    assert [u.username for u in postroom.users.list()] == ["root"]
    assert postroom.users.groups() == []


def test_import_can_refuse_existing_users_and_can_be_dry(postroom: Postroom) -> None:
    postroom.users.add("bob")
    with pytest.raises(UserImportError, match="line 3: user 'bob' exists already"):
        postroom.users.import_csv(io.StringIO(CSV), update_existing=False)
    dry = postroom.users.import_csv(io.StringIO(CSV), dry_run=True)
    assert (dry.created, dry.updated, dry.dry_run) == (1, 1, True)
    assert postroom.users.get("bob").email is None
    assert [u.username for u in postroom.users.list()] == ["root", "bob"]


def test_host_sync_upserts_and_can_deactivate_the_rest(postroom: Postroom) -> None:
    postroom.users.add("old")
    report = postroom.users.sync(
        [
            {"username": "ada", "full_name": "Ada", "email": "ada@example.org", "groups": ["lab"]},
            {"username": "bob", "email": "bob@example.org", "admin": True},
        ],
        deactivate_missing=True,
    )
    assert (report.created, report.deactivated) == (2, 1)
    assert not postroom.users.get("old").active
    assert postroom.users.get("root").active  # never deactivated by a sync
    with pytest.raises(UserImportError, match=r"entry 2: .*not a valid e-mail address"):
        postroom.users.sync([{"username": "carol"}, {"username": "dave", "email": "dave@"}])
    with pytest.raises(DirectoryError):
        postroom.users.get("carol")
    ada = postroom.users.upsert("ada", email=None, admin=True)
    assert (ada.email, ada.admin, ada.full_name, ada.groups) == (
        "ada@example.org",
        True,
        "Ada",
        ("lab",),
    )


def test_an_import_of_thousands_commits_once(postroom: Postroom) -> None:
    lines = ["username,email,groups"] + [
        f"u{i},u{i}@example.org,{'even' if i % 2 == 0 else 'odd'}" for i in range(2500)
    ]
    report = postroom.users.import_csv(io.StringIO("\n".join(lines) + "\n"))
    assert report.created == 2500
    with postroom.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(users)).scalar() == 2501
        assert connection.execute(select(func.count()).select_from(members)).scalar() == 2500
