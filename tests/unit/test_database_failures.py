"""One line for a database that cannot be used, the fix named, no password shown."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from postroom.store.engine import database_failure

SQLITE = "sqlite:////srv/postroom/postroom.db"


def failure(message: str, url: str = SQLITE) -> str:
    error = OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))
    return str(database_failure(error, url))


@pytest.mark.parametrize(
    ("reason", "fix"),
    [
        ("unable to open database file", "must exist and be writable"),
        ("attempt to write a readonly database", "must exist and be writable"),
        ("disk I/O error", "free some space"),
        ("database or disk is full", "free some space"),
        ("database is locked", "for longer than 30 s"),
    ],
)
def test_sqlite_failures_name_the_fix(reason: str, fix: str) -> None:
    line = failure(reason)
    assert "\n" not in line
    assert fix in line
    assert "/srv/postroom/postroom.db" in line


def test_a_postgresql_failure_hides_the_password() -> None:
    line = failure(
        "connection refused", "postgresql+psycopg://mail:SECRET@db.example:5432/postroom"
    )
    assert "SECRET" not in line
    assert "check database.url" in line
