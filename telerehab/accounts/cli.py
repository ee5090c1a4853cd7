"""`flask create-user` and `flask seed-demo`."""

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from telerehab.accounts import operations
from telerehab.accounts.models import Clinic, Organisation
from telerehab.accounts.operations import SYSTEM
from telerehab.accounts.rules import Role
from telerehab.db_types import utc_now
from telerehab.errors import ValidationFailed
from telerehab.extensions import db


@click.command("create-user")
@click.option("--username", required=True)
@click.option("--full-name", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role if r != Role.PATIENT]), required=True)
@click.option("--clinic", "clinic_name", help="Clinic name; leave out for organisation-wide staff.")
@click.option("--organisation", "organisation_name", help="Organisation name (created if missing).")
@click.option("--npi", help="Required for therapists.")
@click.option("--email")
@click.password_option()
@with_appcontext
def create_user(username, full_name, role, clinic_name, organisation_name, npi, email, password):
    """Create a staff user (the first admin, for instance)."""
    from telerehab.accounts.schemas import UserCreateSchema

    organisation = (
        db.session.scalar(select(Organisation).where(Organisation.name == organisation_name))
        if organisation_name else db.session.scalar(select(Organisation).order_by(Organisation.id))
    )
    if organisation is None:
        organisation = operations.create_organisation(organisation_name or "My practice")
    clinic_id = None
    if clinic_name:
        clinic = db.session.scalar(select(Clinic).where(
            Clinic.name == clinic_name, Clinic.organisation_id == organisation.id))
        if clinic is None:
            raise click.BadParameter(f"no clinic named {clinic_name!r}", param_hint="--clinic")
        clinic_id = clinic.id
    payload = {"username": username, "full_name": full_name, "role": role, "clinic_id": clinic_id,
               "npi": npi, "email": email, "password": password}
    errors = UserCreateSchema().validate(payload)
    if errors:
        raise click.UsageError(_describe(errors))
    try:
        user = operations.create_user(SYSTEM, {**payload, "organisation_id": organisation.id}, now=utc_now())
    except ValidationFailed as error:
        raise click.UsageError(_describe(error.errors)) from error
    click.echo(f"Created {user.role} {user.username} (id {user.id}).")


def _describe(errors: dict) -> str:
    return "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in errors.items())


@click.command("seed-demo")
@click.option("--patients", default=30, show_default=True)
@with_appcontext
def seed_demo(patients):
    """Load the demo organisation (skipped if it is already there)."""
    from telerehab.demo import DEMO_PASSWORD, load_demo

    logins = load_demo(patient_count=patients, now=utc_now())
    if logins is None:
        click.echo("Demo data is already loaded.")
        return
    click.echo(f"Demo data loaded. Every demo login uses the password {DEMO_PASSWORD!r}:")
    for username, role in logins:
        click.echo(f"  {username:<12} {role}")
