"""The scheduler process: APScheduler 3.x in one process, jobs declared in code.

Each job is one service function from an operations module, called with `now`, in its own app
context (so its own database session). Every job is safe to run twice and to stop halfway: the
functions are idempotent, keyed by unique constraints, so APScheduler needs no persistent job
store and nothing is lost when the process restarts.

When the database is PostgreSQL, the process takes a session-level advisory lock before it starts
the scheduler, so that of several scheduler processes (one per host, say) exactly one runs jobs;
the others wait and take over when its connection ends.
"""

from __future__ import annotations

import logging
import time as clock
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from telerehab.db_types import utc_now

log = logging.getLogger(__name__)

# pg advisory lock key: any fixed 64-bit number that no other lock in the database uses.
SCHEDULER_LOCK_KEY = 0x7472_6B5F_6A6F_6273  # "trk_jobs"


@dataclass(frozen=True)
class JobSpec:
    id: str
    function: str  # "module:function", a service function taking now=
    seconds: int
    misfire_grace_seconds: int  # how late a run may still start; later ones are skipped


JOBS = (
    # Send due texts. A late run is still worth doing, but one interval late the next run is due.
    JobSpec("deliver_outbox", "telerehab.messaging.operations:deliver_due", 30, 30),
    # Queue daily reminders once their time has passed; idempotent per patient and local day.
    JobSpec("enqueue_daily_reminders", "telerehab.messaging.operations:enqueue_daily_reminders", 300, 300),
)


def _resolve(path: str) -> Callable:
    module_name, _, name = path.partition(":")
    module = __import__(module_name, fromlist=[name])
    return getattr(module, name)


def run_job(app: Flask, function: str) -> None:
    """Run one service function in a fresh app context. An error is logged and the job runs again
    at its next time; its function is idempotent, so a half-done run is finished by the next."""
    with app.app_context():
        from telerehab.extensions import db

        try:
            result = _resolve(function)(now=utc_now())
            log.info("job %s: %s", function, result)
        except Exception:
            db.session.rollback()
            log.exception("job %s failed; it runs again at its next time", function)
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

    def guarded(function: str) -> None:
        if lock is not None and not lock.still_held():
            log.error("the scheduler lock is lost (database connection ended?): stopping")
            scheduler.shutdown(wait=False)
            return
        run_job(app, function)

    for spec in jobs:
        scheduler.add_job(
            guarded, IntervalTrigger(seconds=spec.seconds, timezone="UTC"), args=(spec.function,),
            id=spec.id, name=spec.id, replace_existing=True, coalesce=True, max_instances=1,
            misfire_grace_time=spec.misfire_grace_seconds,
        )
    return scheduler


class LeaderLock:
    """A PostgreSQL session-level advisory lock held on a connection of its own for the life of the
    process: whoever holds it runs the jobs. On SQLite (one host, one process) it always holds."""

    def __init__(self, engine: sa.Engine, key: int = SCHEDULER_LOCK_KEY):
        self.engine = engine
        self.key = key
        self.connection: sa.Connection | None = None

    @property
    def needed(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def try_acquire(self) -> bool:
        if not self.needed:
            return True
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
