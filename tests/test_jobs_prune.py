"""Old job runs are forgotten, failures later than successes, running ones never."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from telerehab.jobs.models import JobRun
from telerehab.jobs.operations import prune_runs
from telerehab.jobs.scheduler import JOBS

from .conftest import NOW


@pytest.mark.parametrize("outcome, age_days, kept", [
    ("ok", 29, True), ("ok", 30, True), ("ok", 31, False),
    ("failed", 31, True), ("failed", 180, True), ("failed", 181, False),
    ("running", 400, True),
])
def test_runs_are_kept_for_their_time(db, outcome, age_days, kept):
    db.session.add(JobRun(job="deliver_outbox", started_at=NOW - timedelta(days=age_days), outcome=outcome,
                          runner="host:1"))
    db.session.commit()
    assert prune_runs(now=NOW).deleted == (0 if kept else 1)
    assert (db.session.scalar(select(JobRun.id)) is not None) == kept


def test_the_scheduler_prunes_daily():
    assert any(spec.function == "telerehab.jobs.operations:prune_runs" and spec.daily_at_utc for spec in JOBS)
