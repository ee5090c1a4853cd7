"""`flask claims export --month YYYY-MM --format csv|837p --output FILE`: the month's approved lines
exported from the command line (the same batches and files as the workbench's export)."""

from __future__ import annotations

import re
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from telerehab.accounts.models import Organisation
from telerehab.billing import operations
from telerehab.billing.models import BillingLine
from telerehab.billing.x12 import dollars
from telerehab.db_types import utc_now
from telerehab.errors import DomainError, ValidationFailed
from telerehab.extensions import db

claims_cli = AppGroup("claims", help="Billing: claim files.")


def _organisation_id(given: int | None, month: str) -> int:
    """The organisation asked for, or else the one whose lines are in that month (a database of one
    practice needs no option)."""
    if given is not None:
        if db.session.get(Organisation, given) is None:
            raise click.BadParameter(f"no organisation {given}", param_hint="--organisation")
        return given
    ids = list(db.session.scalars(select(BillingLine.organisation_id).where(BillingLine.month == month).distinct()))
    if len(ids) != 1:
        raise click.BadParameter(f"{len(ids)} organisations have lines in {month}: say which one",
                                 param_hint="--organisation")
    return ids[0]


def _output_path(output: Path, reference: str, several: bool) -> Path:
    """One batch: the file asked for. Several (one per clinic and payer type): the batch reference
    before the suffix, so that none overwrites another."""
    return output.with_name(f"{output.stem}-{reference}{output.suffix}") if several else output


@claims_cli.command("export")
@click.option("--month", required=True, help="YYYY-MM: the month of the lines' dates of service.")
@click.option("--format", "file_format", type=click.Choice(["csv", "837p"]), required=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--batch", "batch_id", type=int, default=None, help="Write this batch's file again, byte for byte.")
@click.option("--organisation", "organisation_id", type=int, default=None,
              help="Needed only when the database holds several organisations.")
def export(month: str, file_format: str, output: Path, batch_id: int | None, organisation_id: int | None) -> None:
    """Export the month's approved lines that are in no batch yet (one batch per clinic and payer
    type), or with --batch a batch already exported."""
    if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", month):
        raise click.BadParameter("give the month as YYYY-MM, e.g. 2026-03", param_hint="--month")
    try:
        exports = operations.export_from_command_line(_organisation_id(organisation_id, month), month, file_format,
                                                      batch_id=batch_id, now=utc_now())
    except ValidationFailed as error:
        raise click.ClickException("; ".join(" ".join(messages) for messages in error.errors.values())) from None
    except DomainError as error:
        raise click.ClickException(str(error)) from None
    failed = []
    for export_ in exports:  # every batch written is saved, whatever became of the others
        batch = export_.batch
        if export_.file is None:
            failed.append(f"{batch.reference} ({batch.payer_type}) failed, its lines are free again: {batch.error}")
            continue
        path = _output_path(output, batch.reference, len(exports) > 1)
        path.write_bytes(export_.file.data)
        click.echo(f"{batch.reference}: {batch.claim_count} claims, {batch.line_count} lines, "
                   f"${dollars(batch.total_cents)} ({batch.payer_type}) -> {path}")
    if failed:
        raise click.ClickException("\n".join(failed))
