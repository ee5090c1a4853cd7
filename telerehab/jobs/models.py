"""The job layer's own records: every run of a job, and how far a job has read a table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from telerehab.db_types import UTCDateTime
from telerehab.extensions import db


class JobRun(db.Model):
    """One run of a scheduled job: when, how it ended, what it did."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(60))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(12))  # running, ok, failed
    counts: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    runner: Mapped[str] = mapped_column(String(120))  # host:pid of the scheduler process

    __table_args__ = (Index("ix_job_runs_job_started_at", "job", "started_at"),)


class JobCursor(db.Model):
    """How far a job has read an append-only table (e.g. the last check-in id evaluated)."""

    __tablename__ = "job_cursors"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
