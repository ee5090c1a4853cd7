"""`flask rtm evaluate [--as-of DATE] [--patient ID]` and `flask rtm alerts`: the scheduler's
RTM jobs, run once by hand."""

from __future__ import annotations

from datetime import date

import click
from flask.cli import AppGroup

from telerehab.db_types import utc_now
from telerehab.monitoring import operations

rtm_cli = AppGroup("rtm", help="Remote therapeutic monitoring.")


@rtm_cli.command("evaluate")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Evaluate as if this date (YYYY-MM-DD) were every patient's today (default: their own today).")
@click.option("--patient", "patient_ids", type=int, multiple=True, help="Only this patient (repeatable).")
def evaluate(as_of, patient_ids) -> None:
    """Evaluate RTM and write the lines of closed periods and months (what the nightly job does)."""
    day: date | None = as_of.date() if as_of else None
    run = operations.evaluate(now=utc_now(), as_of=day, patient_ids=list(patient_ids) or None)
    click.echo(f"enrolments {run.enrolments}: {run.inserted} lines written, {run.updated} updated, "
               f"{run.unchanged} unchanged, {run.frozen} left to billing; {run.ended} ended at discharge")


@rtm_cli.command("alerts")
def alerts() -> None:
    """Raise pain and no-check-in alerts (what the scheduler does every 10 minutes)."""
    run = operations.raise_alerts(now=utc_now())
    click.echo(f"enrolments {run.enrolments}: {run.raised} alerts raised")
