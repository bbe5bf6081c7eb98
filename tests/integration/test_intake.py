"""The service's intake: messages from many requests at once, committed together (on
SQLite and on PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tests.support.pg import postroom_on

from postroom.service.intake import Intake
from postroom.store import queries


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_requests_each_get_their_own_message(tmp_path: Path, backend: str) -> None:
    with postroom_on(backend, tmp_path) as postroom:
        intake = Intake(postroom.outbox)
        prepared = [
            postroom.prepare({"to": f"u{n}@example.org", "subject": f"s{n}", "text": "t"})
            for n in range(50)
        ]

        async def all_at_once() -> list[tuple[int, str]]:
            done = await asyncio.gather(*(intake.submit(message) for message in prepared))
            return [(result.id, result.message_id) for result in done]

        results = asyncio.run(all_at_once())
        intake.close()
        assert [message_id for _, message_id in results] == [m.message_id for m in prepared]
        assert len({pk for pk, _ in results}) == 50
        stored = queries.get_message(postroom.engine, results[7][0])
        assert stored is not None
        assert stored.summary.subject == "s7"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_failed_commit_is_raised_to_its_callers(tmp_path: Path, backend: str) -> None:
    with postroom_on(backend, tmp_path) as postroom:
        message = postroom.prepare({"to": "ada@example.org", "subject": "s", "text": "t"})
        with postroom.engine.begin() as connection:
            connection.execute(text("ALTER TABLE recipients RENAME TO recipients_gone"))
        intake = Intake(postroom.outbox)
        with pytest.raises(DBAPIError):
            asyncio.run(intake.submit(message))
        intake.close()
        assert queries.list_messages(postroom.engine) == []
