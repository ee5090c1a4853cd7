"""Fixtures: the app on SQLite and (when TEST_DATABASE_URL is set) on PostgreSQL, plus factories.

Every test that takes `app`, `db` or `client` runs once per database. PostgreSQL tests get a
scratch database made for this run and dropped after it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from telerehab import create_app
from telerehab.accounts import operations as accounts
from telerehab.accounts.models import User
from telerehab.accounts.operations import SYSTEM, Actor
from telerehab.careplans import operations as careplans
from telerehab.extensions import db as _db
from telerehab.video.notify import stop_listener

SHARED = Path(__file__).resolve().parents[2] / "shared"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PASSWORD = "correct-horse-battery"

TEST_SETTINGS = {
    "TESTING": True,
    "STORAGE_DIR": tempfile.mkdtemp(prefix="telerehab-storage-"),
    "SECRET_KEY": "test-secret",
    "WTF_CSRF_ENABLED": False,
    "SESSION_COOKIE_SECURE": False,
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_KIB": 64,  # fast hashing for tests; production uses 64 MiB
}


def postgres_admin_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return None
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def scratch_postgres_database(admin: str | None = None, prefix: str = "telerehab_test") -> tuple[str, callable]:
    """Create an empty PostgreSQL database on the server of `admin` (default: TEST_DATABASE_URL);
    returns its URL and a function that drops it. The benchmarks use it too."""
    admin_url = sa.make_url(admin or postgres_admin_url())
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def database_for(backend: str, sqlite_url: str) -> Iterator[str]:
    """Yield an empty database of `backend`; a PostgreSQL one is dropped afterwards."""
    if backend == "sqlite":
        yield sqlite_url
        return
    if not postgres_admin_url():
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    url, drop = scratch_postgres_database()
    yield url
    drop()


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request) -> Iterator[str]:
    yield from database_for(request.param, "sqlite://")


@pytest.fixture(scope="session")
def app(database_url):
    app = create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        _db.create_all()
    yield app
    stop_listener(app)  # the video long-poll's LISTEN connection, before the database is dropped
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def db(app):
    """The database, emptied after each test (row deletes: far faster than dropping the schema)."""
    with app.app_context():
        yield _db
        _db.session.rollback()
        with _db.engine.begin() as connection:
            for table in reversed(_db.metadata.sorted_tables):
                connection.execute(table.delete())
        _db.session.remove()


class FreshContextClient(FlaskClient):
    """A test client whose every request gets its own app context (and so its own database
    session and `g`), as in production.

    The `db` fixture keeps an app context pushed for the whole test, and Flask would reuse it for
    requests: flask-login's cached user would leak from one request to the next, and objects
    loaded by an earlier request would be served stale.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


def new_client(app) -> FreshContextClient:
    return FreshContextClient(app, app.response_class, use_cookies=True)


@pytest.fixture
def client(app, db):
    return new_client(app)


# ---------------------------------------------------------------- factories


@dataclass
class World:
    """Two organisations' worth of people, so that every scope rule has someone outside it."""

    clinic: object
    other_clinic: object  # same organisation, another clinic
    foreign_clinic: object  # another organisation
    admin: User
    therapist: User
    therapist2: User
    assistant: User
    billing: User
    other_therapist: User  # works at other_clinic
    foreign_therapist: User
    patient: object  # a patient of `clinic`, with a sign-in (patient_user)
    patient_user: User
    other_patient: object  # a patient of other_clinic
    foreign_patient: object
    episode: object
    other_episode: object

    def user(self, role: str) -> User:
        return {"admin": self.admin, "therapist": self.therapist, "assistant": self.assistant,
                "billing": self.billing, "patient": self.patient_user}[role]


def clinic_data(organisation_id: int, name: str, **overrides) -> dict:
    return {"organisation_id": organisation_id, "name": name, "timezone": "America/Chicago",
            "address_line1": "1 Main St", "city": "Chicago", "state": "IL", "postal_code": "60601",
            "npi": "1234567893", "tin": "123456789", **overrides}


def make_user(organisation_id: int, username: str, role: str, clinic_id: int | None, **extra) -> User:
    return accounts.create_user(SYSTEM, {
        "organisation_id": organisation_id, "username": username, "full_name": username.title(),
        "role": role, "clinic_id": clinic_id, "password": PASSWORD,
        "npi": "1245319599" if role == "therapist" else None, **extra,
    }, now=NOW)


def patient_data(**overrides) -> dict:
    return {"first_name": "Ana", "last_name": "Alvarez", "date_of_birth": date(1950, 4, 2), "sex": "F",
            "phone": "+13125550101", "email": "ana@example.org", "timezone": "America/Chicago",
            "payer_type": "medicare", "payer_name": "Medicare", "member_id": "1EG4TE5MK73", **overrides}


def episode_data(**overrides) -> dict:
    start = overrides.pop("start_date", date(2026, 3, 2))
    return {"title": "Right knee OA", "start_date": start, "frequency_per_week": 2, "duration_weeks": 8,
            "diagnoses": ["M17.11"], "goals": [{"description": "Climb 12 stairs with one rail"}],
            "certification_start": start, "certification_end": date.fromordinal(start.toordinal() + 89),
            "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893",
            "certification_signed_on": start, "plan_notes": "Clinical reasoning", **overrides}


@pytest.fixture
def world(db) -> World:
    org = accounts.create_organisation("Riverbend")
    foreign_org = accounts.create_organisation("Elsewhere PT")
    clinic = accounts.create_clinic(SYSTEM, clinic_data(org.id, "Downtown"), now=NOW)
    other_clinic = accounts.create_clinic(SYSTEM, clinic_data(org.id, "Eastside", timezone="America/New_York"), now=NOW)
    foreign_clinic = accounts.create_clinic(SYSTEM, clinic_data(foreign_org.id, "Faraway"), now=NOW)
    therapist = make_user(org.id, "therapist", "therapist", clinic.id)
    other_therapist = make_user(org.id, "eastpt", "therapist", other_clinic.id)
    foreign_therapist = make_user(foreign_org.id, "farpt", "therapist", foreign_clinic.id)
    patient = accounts.create_patient(Actor(therapist), patient_data(primary_therapist_id=therapist.id), now=NOW)
    patient_user = accounts.give_portal_access(Actor(therapist), patient.id, "ana", PASSWORD, now=NOW)
    other_patient = accounts.create_patient(Actor(other_therapist), patient_data(first_name="Ben"), now=NOW)
    foreign_patient = accounts.create_patient(Actor(foreign_therapist), patient_data(first_name="Cy"), now=NOW)
    episode = careplans.create_episode(Actor(therapist), patient.id, episode_data(), now=NOW)
    other_episode = careplans.create_episode(Actor(other_therapist), other_patient.id, episode_data(), now=NOW)
    return World(
        clinic=clinic, other_clinic=other_clinic, foreign_clinic=foreign_clinic,
        admin=make_user(org.id, "admin", "admin", None),
        therapist=therapist, therapist2=make_user(org.id, "therapist2", "therapist", clinic.id),
        assistant=make_user(org.id, "assistant", "assistant", clinic.id),
        billing=make_user(org.id, "billing", "billing", clinic.id),
        other_therapist=other_therapist, foreign_therapist=foreign_therapist,
        patient=patient, patient_user=patient_user, other_patient=other_patient,
        foreign_patient=foreign_patient, episode=episode, other_episode=other_episode,
    )


def login(client, username: str, password: str = PASSWORD):
    return client.post("/login", data={"username": username, "password": password})


def bearer(user: User) -> dict[str, str]:
    token, _ = accounts.create_api_token(Actor(user), "tests", expires_in_days=None, now=NOW)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (skips the test, saying why, where Chromium or Playwright is missing)."""
    from .browser_support import chromium

    with chromium() as browser:
        yield browser
