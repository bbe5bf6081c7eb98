"""Error reports' flood control (DESIGN §7): one row per fingerprint, shared by every
process of every app that reports into this database."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from postroom.store.schema import metadata

error_reports = Table(
    "error_reports",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # error, broken_link
    Column("title", Text, nullable=False),  # ValueError: boom at /path
    Column("path", Text, nullable=False),
    Column("first_at", Float, nullable=False),
    Column("last_at", Float, nullable=False),
    Column("total", Integer, nullable=False),
    Column("mailed_at", Float, nullable=True),  # the last mail about it (report or summary)
    Column("unsent", Integer, nullable=False),  # occurrences since that mail
    Column("unsent_since", Float, nullable=True),
    Column("summary_due_at", Float, nullable=True),
    Index("ix_error_reports_summary_due_at", "summary_due_at"),
    Index("ix_error_reports_last_at", "last_at"),
)

__all__ = ["error_reports"]
