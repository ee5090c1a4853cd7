"""The scheduler process: APScheduler 3.x in one process, jobs declared in code.

Each job is one service function from an operations module, called with `now`, in its own app
context (so its own database session). Every job is safe to run twice and to stop halfway: the
functions are idempotent, keyed by unique constraints, so APScheduler needs no persistent job
store and nothing is lost when the process restarts.

When the database is PostgreSQL, the process takes a session-level advisory lock before it starts
the scheduler, so that of several scheduler processes (one per host, say) exactly one runs jobs;
the others wait and take over when its connection ends. On a SQLite file (one host) an exclusive
file lock next to the database does the same. Every run is recorded in `job_runs`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import socket
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from telerehab.db_types import utc_now
from telerehab.jobs.models import JobRun

log = logging.getLogger(__name__)

# pg advisory lock key: any fixed 64-bit number that no other lock in the database uses.
SCHEDULER_LOCK_KEY = 0x7472_6B5F_6A6F_6273  # "trk_jobs"


@dataclass(frozen=True)
class JobSpec:
    id: str
    function: str  # "module:function", a service function taking now=
    seconds: int  # the interval; for a daily job, how often it could at most run (once a day)
    misfire_grace_seconds: int  # how late a run may still start; later ones are skipped
    daily_at_utc: str | None = None  # "HH:MM": a daily job at this time instead of an interval
    # A polling job's runs that found nothing to do are not kept: one every few seconds would bury
    # the runs that did something.
    keep_idle_runs: bool = True

    @property
    def schedule(self) -> str:
        return f"daily at {self.daily_at_utc} UTC" if self.daily_at_utc else f"every {self.seconds} s"


JOBS = (
    # Send due texts. A late run is still worth doing, but one interval late the next run is due.
    JobSpec("deliver_outbox", "telerehab.messaging.operations:deliver_due", 30, 30),
    # Queue daily reminders once their time has passed; idempotent per patient and local day.
    JobSpec("enqueue_daily_reminders", "telerehab.messaging.operations:enqueue_daily_reminders", 300, 300),
    # RTM for the patients with a new check-in or time entry (read past a cursor on the ids).
    JobSpec("evaluate_rtm_dirty", "telerehab.monitoring.operations:evaluate_dirty", 300, 300),
    # Every active enrolment: closes ended periods and months into billable lines. After midnight
    # in the US; a run delayed by hours is still worth doing, a missed one is done by the next.
    JobSpec("evaluate_rtm_nightly", "telerehab.monitoring.operations:evaluate_all", 86400, 6 * 3600,
            daily_at_utc="07:30"),
    # Pain alerts and silences, for the triage inbox.
    JobSpec("raise_rtm_alerts", "telerehab.monitoring.operations:raise_alerts", 600, 600),
    # The billing workbench: new RTM lines and signed visit services in, open lines refreshed.
    JobSpec("collect_billing_lines", "telerehab.billing.operations:collect_all", 600, 600),
    # Export batches queued on the workbench; the page polls their progress.
    JobSpec("run_claim_exports", "telerehab.billing.operations:run_queued_exports", 5, 5, keep_idle_runs=False),
    # Runs older than a month (failures: six months) are forgotten.
    JobSpec("prune_job_runs", "telerehab.jobs.operations:prune_runs", 86400, 6 * 3600, daily_at_utc="08:15"),
)


def _resolve(path: str) -> Callable:
    module_name, _, name = path.partition(":")
    module = __import__(module_name, fromlist=[name])
    return getattr(module, name)


def _counts(result) -> dict | None:
    """The numbers a job's result reports (never its details, which may name patients)."""
    if dataclasses.is_dataclass(result):
        return {k: v for k, v in dataclasses.asdict(result).items() if isinstance(v, int) and not isinstance(v, bool)}
    return None


def run_job(app: Flask, function: str, *, job_id: str | None = None, keep_idle: bool = True) -> None:
    """Run one service function in a fresh app context, recorded in `job_runs` (start committed
    first, so a run that dies stays visible as `running`). An error is logged and the job runs
    again at its next time; its function is idempotent, so a half-done run is finished by the next.
    Without `keep_idle`, a run that went well and counted nothing leaves no record."""
    with app.app_context():
        from telerehab.extensions import db

        run = JobRun(job=job_id or function, started_at=utc_now(), outcome="running",
                     runner=f"{socket.gethostname()}:{os.getpid()}")
        db.session.add(run)
        db.session.commit()
        run_id = run.id
        try:
            result = _resolve(function)(now=utc_now())
            log.info("job %s: %s", function, result)
            outcome, counts, error = "ok", _counts(result), None
        except Exception as exc:
            db.session.rollback()
            log.exception("job %s failed; it runs again at its next time", function)
            outcome, counts, error = "failed", None, f"{type(exc).__name__}: {exc}"[:2000]
        try:
            if outcome == "ok" and not keep_idle and counts is not None and not any(counts.values()):
                db.session.execute(sa.delete(JobRun).where(JobRun.id == run_id))
            else:
                db.session.execute(sa.update(JobRun).where(JobRun.id == run_id).values(
                    finished_at=utc_now(), outcome=outcome, counts=counts, error=error))
            db.session.commit()
        finally:
            db.session.remove()


def build_scheduler(app: Flask, *, jobs: tuple[JobSpec, ...] = JOBS, lock: LeaderLock | None = None) -> BlockingScheduler:
    """The scheduler with every job registered; with `lock`, each run first checks that this
    process still holds it, and the scheduler stops if it does not (another instance may run)."""
    scheduler = BlockingScheduler(
        timezone="UTC",
        # coalesce: runs missed while the process was busy or paused become one run;
        # max_instances=1: a slow run is never overlapped by the next one of the same job.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )

    def guarded(function: str, job_id: str | None = None) -> None:
        if lock is not None and not lock.still_held():
            log.error("the scheduler lock is lost (database connection ended?): stopping")
            scheduler.shutdown(wait=False)
            return
        run_job(app, function, job_id=job_id, keep_idle=keep_idle[job_id])

    keep_idle = {spec.id: spec.keep_idle_runs for spec in jobs}
    for spec in jobs:
        if spec.daily_at_utc:
            hour, minute = (int(part) for part in spec.daily_at_utc.split(":"))
            trigger = CronTrigger(hour=hour, minute=minute, timezone="UTC")
        else:
            trigger = IntervalTrigger(seconds=spec.seconds, timezone="UTC")
        scheduler.add_job(
            guarded, trigger, args=(spec.function,), kwargs={"job_id": spec.id},
            id=spec.id, name=spec.id, replace_existing=True, coalesce=True, max_instances=1,
            misfire_grace_time=spec.misfire_grace_seconds,
        )
    return scheduler


class LeaderLock:
    """A PostgreSQL session-level advisory lock held on a connection of its own for the life of the
    process: whoever holds it runs the jobs. On a SQLite file, an exclusive lock on a file beside
    it (`<database>.scheduler.lock`) held by the process; an in-memory SQLite needs none."""

    def __init__(self, engine: sa.Engine, key: int = SCHEDULER_LOCK_KEY):
        self.engine = engine
        self.key = key
        self.connection: sa.Connection | None = None
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self.lock_path = Path(database + ".scheduler.lock") if database and database != ":memory:" else None
        self._file: int | None = None

    @property
    def needed(self) -> bool:
        return self.engine.dialect.name == "postgresql" or self.lock_path is not None

    def _try_file_lock(self) -> bool:
        if self._file is not None:
            return True
        descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        self._file = descriptor
        return True

    def try_acquire(self) -> bool:
        if not self.needed:
            return True
        if self.lock_path is not None:
            return self._try_file_lock()
        if self.connection is None:
            self.connection = self.engine.connect()
        got = bool(self.connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        self.connection.commit()  # the lock belongs to the session, not the transaction
        return got

    def acquire(self, *, poll_seconds: float = 10.0, stop: Callable[[], bool] = lambda: False) -> bool:
        """Wait until this process holds the lock (or `stop()` says to give up)."""
        while not self.try_acquire():
            if stop():
                return False
            log.info("another scheduler holds the lock; waiting to take over")
            clock.sleep(poll_seconds)
        return True

    def still_held(self) -> bool:
        if not self.needed:
            return True
        if self.lock_path is not None:
            return self._file is not None  # the kernel keeps the lock while the descriptor is open
        if self.connection is None:
            return False
        try:
            held = self.connection.execute(sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND granted AND ((classid::bigint << 32) | objid::bigint) = :key"
            ), {"key": self.key}).scalar()
            self.connection.commit()
            return bool(held)
        except sa.exc.SQLAlchemyError:  # the connection is gone, and the lock with it
            self._discard()
            return False

    def release(self) -> None:
        if self._file is not None:
            os.close(self._file)  # closing releases the flock
            self._file = None
        if self.connection is None:
            return
        try:
            self.connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            self.connection.commit()
        except sa.exc.SQLAlchemyError:
            pass  # a dead connection holds no lock
        finally:
            self._discard()

    def _discard(self) -> None:
        if self.connection is None:
            return
        try:
            self.connection.invalidate()  # never hand a connection that may hold the lock back to the pool
            self.connection.close()
        except sa.exc.SQLAlchemyError:
            pass
        self.connection = None
