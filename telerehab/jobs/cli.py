"""`flask scheduler run`: the one process that runs the scheduled jobs."""

from __future__ import annotations

import contextlib
import logging
import signal

import click
from apscheduler.schedulers import SchedulerNotRunningError
from flask import current_app
from flask.cli import AppGroup

from telerehab.jobs.scheduler import JOBS, LeaderLock, build_scheduler

scheduler_cli = AppGroup("scheduler", help="The job scheduler process.")


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (a supervisor stopping us) ends the process like Ctrl-C


@scheduler_cli.command("run")
@click.option("--poll-seconds", default=10.0, show_default=True,
              help="How often a waiting instance tries to take over the PostgreSQL lock.")
def run(poll_seconds: float) -> None:
    """Run the scheduler in the foreground (one active instance; others wait for the lock)."""
    from telerehab.extensions import db
    from telerehab.messaging.backends import backend_from_config
    from telerehab.messaging.rules import parse_quiet_hours

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = current_app._get_current_object()
    try:  # refuse to start on settings the jobs would trip over later
        backend_from_config(app.config)
        parse_quiet_hours(app.config.get("SMS_QUIET_HOURS") or "")
    except (RuntimeError, ValueError) as error:
        raise click.ClickException(str(error)) from error

    signal.signal(signal.SIGTERM, _interrupt)
    with app.app_context():
        lock = LeaderLock(db.engine)
        scheduler = None
        try:
            lock.acquire(poll_seconds=poll_seconds)
            if lock.needed:
                click.echo("holding the scheduler lock: this instance runs the jobs")
            scheduler = build_scheduler(app, lock=lock)
            for spec in JOBS:
                click.echo(f"job {spec.id}: {spec.schedule} -> {spec.function}")
            scheduler.start()  # blocks until shut down (or the lock is lost)
        except KeyboardInterrupt:
            click.echo("stopping: letting running jobs finish")
        finally:
            if scheduler is not None:
                with contextlib.suppress(SchedulerNotRunningError):
                    scheduler.shutdown(wait=True)
            lost = lock.needed and lock.connection is not None and not lock.still_held()
            lock.release()
        if lost:
            raise click.ClickException("the scheduler lock was lost; exiting so that a supervisor restarts us")
