"""The job layer's own upkeep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete

from telerehab.extensions import db
from telerehab.jobs.models import JobRun

KEEP_OK_RUNS = timedelta(days=30)
KEEP_FAILED_RUNS = timedelta(days=180)  # failures are what someone looks back for


@dataclass
class PruneRun:
    deleted: int = 0


def prune_runs(*, now: datetime) -> PruneRun:
    """Forget old runs: the frequent jobs (the export queue every 5 s) would otherwise grow
    `job_runs` by tens of thousands of rows a day. A run still marked running is kept."""
    result = db.session.execute(delete(JobRun).where(
        ((JobRun.outcome == "ok") & (JobRun.started_at < now - KEEP_OK_RUNS))
        | ((JobRun.outcome == "failed") & (JobRun.started_at < now - KEEP_FAILED_RUNS))))
    db.session.commit()
    return PruneRun(deleted=result.rowcount)
