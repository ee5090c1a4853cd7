"""`flask messaging deliver`, `flask messaging remind` and, for the demo, `flask messaging receive`.

Each command calls the same service function as the scheduler's job, once.
"""

from __future__ import annotations

import secrets

import click
from flask.cli import with_appcontext

from telerehab.accounts.operations import Actor
from telerehab.db_types import utc_now
from telerehab.messaging import operations


@click.command("deliver")
@with_appcontext
def deliver():
    """Send the texts that are due now (what the scheduler does every 30 seconds)."""
    run = operations.deliver_due(now=utc_now())
    click.echo(f"sent {run.sent}, recovered {run.recovered}, retry later {run.retried + run.uncertain}, "
               f"held for quiet hours {run.held}, failed {run.failed}, cancelled {run.cancelled}")


@click.command("remind")
@with_appcontext
def remind():
    """Queue the daily reminders that are due now (what the scheduler does every 5 minutes)."""
    run = operations.enqueue_daily_reminders(now=utc_now())
    click.echo(f"queued {run.queued}, already queued {run.already_queued}, "
               f"already checked in {run.checked_in}, withheld {run.withheld}")


@click.command("receive")
@click.option("--from", "from_phone", required=True, help="The sender's number, E.164 (+13125550101).")
@click.argument("body")
@with_appcontext
def receive(from_phone: str, body: str):
    """Demo and development: handle an inbound text as if Twilio had delivered it."""
    message = operations.receive_sms(
        Actor(user=None, ip_address="127.0.0.1"),
        {"MessageSid": "SMlocal" + secrets.token_hex(13), "From": from_phone, "To": "", "Body": body},
        now=utc_now(),
    )
    click.echo(f"{message.outcome}: reply {message.reply!r}")
