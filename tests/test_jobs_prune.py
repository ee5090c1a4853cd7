"""Old job runs are forgotten, failures later than successes, running ones never; a polling job's
idle runs are not kept at all."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import select

from telerehab.billing.operations import ExportRun
from telerehab.jobs.models import JobRun
from telerehab.jobs.operations import prune_runs
from telerehab.jobs.scheduler import JOBS, run_job

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


def test_a_polling_job_keeps_only_the_runs_that_did_something(app, db, monkeypatch):
    monkeypatch.setitem(app.extensions, "test_export_runs", iter([ExportRun(), ExportRun(ready=1), ExportRun()]))
    for _ in range(3):
        run_job(app, "tests.test_jobs_prune:next_export_run", job_id="run_claim_exports", keep_idle=False)
    run_job(app, "tests.test_jobs_prune:next_export_run", job_id="run_claim_exports")  # kept: an ordinary job
    db.session.expire_all()
    assert [run.counts for run in db.session.scalars(select(JobRun).order_by(JobRun.id))] == [
        {"ready": 1, "failed": 0}, {"ready": 0, "failed": 0}]
    assert {spec.id for spec in JOBS if not spec.keep_idle_runs} == {"run_claim_exports"}


def next_export_run(*, now):
    return next(current_app.extensions["test_export_runs"], ExportRun())
