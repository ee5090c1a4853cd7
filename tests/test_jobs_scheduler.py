"""The scheduler process: APScheduler wiring (jobs registered with their settings), the job
wrapper, the PostgreSQL advisory lock that lets one instance run jobs, and the commands
`flask scheduler run`, `flask messaging deliver`, `flask messaging remind`, `flask messaging receive`."""

from __future__ import annotations

import inspect
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.blocking import BlockingScheduler

from telerehab.extensions import db
from telerehab.jobs import scheduler as jobs
from telerehab.jobs.scheduler import JOBS, JobSpec, LeaderLock, build_scheduler, run_job
from telerehab.messaging import operations as messaging
from telerehab.messaging.models import InboundMessage, OutboxMessage, SmsLogEntry

from .conftest import NOW
from .test_messaging_support import count, rows, sms_consent

CALLS: list = []


def record_now(*, now):
    """A stand-in service function for the wrapper tests."""
    CALLS.append(now)
    return "ok"


def explode(*, now):
    raise RuntimeError("boom")


# ---------------------------------------------------------------- registration


def test_jobs_are_registered_with_their_settings(app):
    scheduler = build_scheduler(app)
    assert str(scheduler.timezone) == "UTC"
    registered = {job.id: job for job in scheduler.get_jobs()}
    assert set(registered) == {"deliver_outbox", "enqueue_daily_reminders", "evaluate_rtm_dirty",
                               "evaluate_rtm_nightly", "raise_rtm_alerts", "collect_billing_lines",
                               "run_claim_exports", "prune_job_runs"}
    expected = {"deliver_outbox": (30, "telerehab.messaging.operations:deliver_due"),
                "enqueue_daily_reminders": (300, "telerehab.messaging.operations:enqueue_daily_reminders"),
                "evaluate_rtm_dirty": (300, "telerehab.monitoring.operations:evaluate_dirty"),
                "raise_rtm_alerts": (600, "telerehab.monitoring.operations:raise_alerts"),
                "collect_billing_lines": (600, "telerehab.billing.operations:collect_all"),
                "run_claim_exports": (5, "telerehab.billing.operations:run_queued_exports")}
    for job_id, (seconds, function) in expected.items():
        job = registered[job_id]
        assert job.trigger.interval == timedelta(seconds=seconds)
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, seconds)
        assert job.args == (function,) and job.kwargs == {"job_id": job_id}
    nightly = registered["evaluate_rtm_nightly"]
    assert str(nightly.trigger) == "cron[hour='7', minute='30']"
    assert (nightly.coalesce, nightly.misfire_grace_time) == (True, 6 * 3600)
    assert nightly.args == ("telerehab.monitoring.operations:evaluate_all",)


def test_each_job_is_one_service_function_taking_now():
    for spec in JOBS:
        function = jobs._resolve(spec.function)
        assert spec.function.split(":")[0].endswith(".operations")
        assert "now" in inspect.signature(function).parameters


def test_run_job_calls_the_function_in_its_own_app_context(app):
    CALLS.clear()
    run_job(app, "tests.test_jobs_scheduler:record_now")
    assert len(CALLS) == 1 and CALLS[0].tzinfo is not None


def test_a_failing_job_is_logged_and_the_scheduler_goes_on(app, caplog):
    run_job(app, "tests.test_jobs_scheduler:explode")
    assert "failed; it runs again at its next time" in caplog.text


def test_the_scheduler_stops_when_it_loses_the_lock(app):
    """Each run first checks the lock; once lost, the scheduler shuts down (and the process exits,
    for its supervisor to restart it as a waiting instance)."""
    CALLS.clear()

    class Flaky:
        answers = [True, True, False]

        def still_held(self):
            return self.answers.pop(0) if self.answers else False

    spec = JobSpec("test", "tests.test_jobs_scheduler:record_now", 1, 5)
    scheduler = build_scheduler(app, jobs=(spec,), lock=Flaky())
    timer = threading.Timer(15, lambda: scheduler.shutdown(wait=False))
    timer.start()
    try:
        scheduler.start()  # blocks until the lost lock shuts it down
    finally:
        timer.cancel()
    assert len(CALLS) == 2


# ---------------------------------------------------------------- the advisory lock


def test_on_sqlite_no_lock_is_needed(app, db):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    lock = LeaderLock(db.engine)
    assert not lock.needed and lock.try_acquire() and lock.still_held()


def test_on_postgresql_one_instance_holds_the_lock(app, db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    first, second = LeaderLock(db.engine), LeaderLock(db.engine)
    try:
        assert first.try_acquire() and first.still_held()
        assert not second.try_acquire() and not second.still_held()
        assert not second.acquire(poll_seconds=0.01, stop=lambda: True)
        first.release()
        assert second.try_acquire() and second.still_held()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()


def test_on_postgresql_the_lock_ends_with_its_connection(app, db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    lock, waiting = LeaderLock(db.engine), LeaderLock(db.engine)
    try:
        assert lock.try_acquire()
        pid = lock.connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        lock.connection.commit()
        with db.engine.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        assert not lock.still_held()
        assert waiting.try_acquire()  # a waiting instance takes over
    finally:
        lock.release()
        waiting.release()


# ---------------------------------------------------------------- commands


@pytest.fixture
def no_signals(monkeypatch):
    monkeypatch.setattr("telerehab.jobs.cli.signal.signal", lambda *args: None)


def test_flask_scheduler_run_starts_the_scheduler_with_every_job(app, db, monkeypatch, no_signals):
    started = {}

    def fake_start(self, *args, **kwargs):
        started["jobs"] = sorted(job.id for job in self.get_jobs())

    monkeypatch.setattr(BlockingScheduler, "start", fake_start)
    result = app.test_cli_runner().invoke(args=["scheduler", "run"])
    assert result.exit_code == 0, result.output
    assert started["jobs"] == ["collect_billing_lines", "deliver_outbox", "enqueue_daily_reminders",
                               "evaluate_rtm_dirty", "evaluate_rtm_nightly", "prune_job_runs", "raise_rtm_alerts",
                               "run_claim_exports"]
    assert "job deliver_outbox: every 30 s" in result.output
    assert "job evaluate_rtm_nightly: daily at 07:30 UTC" in result.output


def test_flask_scheduler_run_refuses_bad_settings(app, db, monkeypatch, no_signals):
    monkeypatch.setitem(app.config, "SMS_BACKEND", "twilio")
    result = app.test_cli_runner().invoke(args=["scheduler", "run"])
    assert result.exit_code == 1 and "TWILIO_ACCOUNT_SID" in result.output
    monkeypatch.setitem(app.config, "SMS_BACKEND", "log")
    monkeypatch.setitem(app.config, "SMS_QUIET_HOURS", "late")
    result = app.test_cli_runner().invoke(args=["scheduler", "run"])
    assert result.exit_code == 1 and "HH:MM" in result.output


@pytest.fixture
def frozen_cli(monkeypatch):
    monkeypatch.setattr("telerehab.messaging.cli.utc_now", lambda: NOW + timedelta(days=1))


def test_flask_messaging_deliver_sends_what_is_due(app, world, frozen_cli):
    sms_consent(world)
    messaging.enqueue_sms(world.patient, kind="manual", body="Downtown: hi", idempotency_key="k", now=NOW)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["messaging", "deliver"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("sent 1,")
    assert app.test_cli_runner().invoke(args=["messaging", "deliver"]).output.startswith("sent 0,")
    assert count(SmsLogEntry) == 1


def test_flask_messaging_remind_queues_due_reminders(app, world, monkeypatch):
    monkeypatch.setattr("telerehab.messaging.cli.utc_now", lambda: NOW.replace(hour=23, minute=59) + timedelta(minutes=1))
    sms_consent(world)
    result = app.test_cli_runner().invoke(args=["messaging", "remind"])
    assert result.exit_code == 0 and result.output.startswith("queued 1,"), result.output
    assert [m.kind for m in rows(OutboxMessage)] == ["reminder"]


def test_flask_messaging_receive_handles_a_text_locally(app, world, frozen_cli):
    sms_consent(world)
    result = app.test_cli_runner().invoke(args=["messaging", "receive", "--from", "+13125550101", "what?"])
    assert result.exit_code == 0 and result.output.startswith("not_understood"), result.output
    assert count(InboundMessage) == 1
