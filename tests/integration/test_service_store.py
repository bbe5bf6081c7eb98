"""The service's state on real SQLite and PostgreSQL: tokens, sessions, passwords,
remembered answers and workers' status."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.support.pg import postroom_on

from postroom import Postroom
from postroom.errors import DirectoryError, TokenError
from postroom.store.service_schema import api_tokens
from postroom.store.tokens import Tokens
from postroom.store.web import IdempotentAnswers, RememberedAnswer, Sessions
from postroom.store.workers import SILENT_AFTER, WorkerRegistry


@pytest.fixture(params=["sqlite", "postgresql"])
def postroom(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Postroom]:
    with postroom_on(request.param, tmp_path) as instance:
        yield instance


def test_a_token_is_kept_only_as_a_hash_and_checked_whole(postroom: Postroom) -> None:
    tokens = Tokens(postroom.engine)
    info, token = tokens.create("omero-server", scope="send")
    lookup, _, secret = token.removeprefix("pr_").partition("_")
    with postroom.engine.connect() as connection:
        row = connection.execute(select(api_tokens)).one()
    assert secret not in str(tuple(row))
    assert tokens.verify(token) == info
    assert tokens.verify(f"pr_{lookup}_{'A' * 43}") is None
    assert tokens.verify(token[:-1]) is None
    assert all(secret not in str(t.to_json()) for t in tokens.list())
    tokens.revoke("omero-server")
    assert tokens.verify(token) is None
    assert tokens.list()[0].revoked_at is not None


def test_token_names_and_scopes_are_checked(postroom: Postroom) -> None:
    tokens = Tokens(postroom.engine)
    tokens.create("app", scope="admin")
    with pytest.raises(TokenError, match="exists already"):
        tokens.create("app", scope="send")
    with pytest.raises(TokenError, match="not allowed"):
        tokens.create("has space", scope="send")
    with pytest.raises(TokenError, match="scope"):
        tokens.create("other", scope="root")
    with pytest.raises(TokenError, match="no token named 'ghost'"):
        tokens.revoke("ghost")


def test_console_passwords_let_only_active_admins_in(postroom: Postroom) -> None:
    users = postroom.users
    assert users.console_admins() == 0
    users.set_password("root", "correct horse battery")
    users.add("ada", email="ada@example.org")
    users.set_password("ada", "ada's long password")
    assert users.console_admins() == 1
    root = users.login("root", "correct horse battery")
    assert root is not None
    assert root.username == "root"
    assert users.login("root", "wrong password!") is None
    assert users.login("ghost", "correct horse battery") is None
    assert users.login("ada", "ada's long password") is None  # not an admin
    users.update("ada", admin=True)
    assert users.login("ada", "ada's long password") is not None
    users.deactivate("ada")
    assert users.login("ada", "ada's long password") is None
    with pytest.raises(DirectoryError, match="at least 10"):
        users.set_password("root", "short")
    users.add("longusername1")
    with pytest.raises(DirectoryError, match="is the username"):
        users.set_password("longusername1", "LongUsername1")


def test_sessions_last_their_lifetime_and_need_an_active_admin(postroom: Postroom) -> None:
    sessions = Sessions(postroom.engine)
    cookie, started = sessions.create(0, lifetime=60)
    found = sessions.get(cookie)
    assert found is not None
    assert found.username == "root"
    assert found.csrf == started.csrf
    assert sessions.get(cookie, now=time.time() + 61) is None
    sessions.extend(cookie, lifetime=600)
    assert sessions.get(cookie, now=time.time() + 61) is not None
    assert sessions.get("not-a-cookie") is None
    ada = postroom.users.add("ada", admin=True)
    theirs, _ = sessions.create(ada.id, lifetime=60)
    postroom.users.update("ada", admin=False)
    assert sessions.get(theirs) is None
    assert sessions.end_all_of(ada.id) == 1
    sessions.end(cookie)
    assert sessions.get(cookie) is None
    assert sessions.purge(now=time.time() + 10_000) == 0


def test_the_first_answer_to_a_key_is_the_one_kept(postroom: Postroom) -> None:
    answers = IdempotentAnswers(postroom.engine)
    first = RememberedAnswer("h1", 202, "application/json", b'{"id": 1}')
    assert answers.get("7", "key") is None
    assert answers.remember("7", "key", first) == first
    late = RememberedAnswer("h1", 202, "application/json", b'{"id": 2}')
    assert answers.remember("7", "key", late) == first
    assert answers.get("7", "key") == first
    assert answers.get("8", "key") is None  # another token's keys are its own
    assert answers.purge(older_than=time.time() + 1) == 1


def test_workers_say_they_are_alive_and_why_they_paused(postroom: Postroom) -> None:
    registry = WorkerRegistry(postroom.engine)
    registry.started("host:1:a", 1)
    registry.started("host:2:b", 2)
    now = time.time()
    registry.paused("host:2:b", until=now + 30, reason="535 login refused", fix="check it")
    found = {w.name: w for w in registry.all(now=now)}
    assert set(found) == {"host:1:a", "host:2:b"}
    assert found["host:2:b"].paused(now)
    assert found["host:2:b"].to_json(now)["reason"] == "535 login refused"
    assert not found["host:1:a"].paused(now)
    later = now + SILENT_AFTER + 1
    assert [w.name for w in registry.all(now=later)] == []  # silent, pause over
    registry.resumed("host:2:b")
    registry.stopped("host:1:a")
    assert [w.name for w in registry.all()] == ["host:2:b"]
    assert registry.forget_silent(now=now + 11 * SILENT_AFTER) == 1
