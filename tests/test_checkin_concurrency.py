"""The same check-in sent 20 times at once stores one row (PostgreSQL: real concurrent writers).

SQLite in memory is one shared connection, so writers there cannot race: these tests need
TEST_DATABASE_URL and are skipped with that reason without it.
"""

from __future__ import annotations

import threading
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from telerehab import create_app
from telerehab.accounts.models import AuditEntry
from telerehab.accounts.operations import Actor
from telerehab.exercises import operations as exercises
from telerehab.exercises.models import CheckIn, CheckInExercise
from telerehab.extensions import db as _db

from .conftest import NOW, TEST_SETTINGS, bearer, new_client
from .test_exercises_operations import make_program

THREADS = 20


@pytest.fixture
def postgres(db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL (set TEST_DATABASE_URL): SQLite in memory has a single connection, "
                    "so concurrent writers cannot race there")
    return db


@contextmanager
def wide_pool_app(db):
    """The app on the same database with room for every thread to hold its own connection."""
    app = create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": db.engine.url.render_as_string(hide_password=False),
                      "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": THREADS + 5, "max_overflow": 0}})
    try:
        yield app
    finally:
        with app.app_context():
            _db.engine.dispose()


def run_together(target) -> list:
    barrier = threading.Barrier(THREADS, timeout=60)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(target())
        except Exception as error:  # reported below: a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(results) == THREADS
    return results


def stored(db) -> tuple[int, int, list[str]]:
    db.session.expire_all()
    checkins = db.session.scalar(select(func.count()).select_from(CheckIn))
    rows = db.session.scalar(select(func.count()).select_from(CheckInExercise))
    actions = list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.record_type == "checkin")))
    return checkins, rows, actions


def test_the_same_check_in_posted_20_times_concurrently_stores_one_row(postgres, world, monkeypatch):
    monkeypatch.setattr("telerehab.exercises.api.utc_now", lambda: NOW + timedelta(minutes=1))
    item = make_program(world).items[0]
    headers = bearer(world.patient_user)
    body = {"client_id": str(uuid.uuid4()), "recorded_at": NOW.isoformat(), "pain": 4, "difficulty": "ok",
            "exercises": [{"program_item_id": item.id, "sets": 3, "reps": 10}]}
    with wide_pool_app(postgres) as app:
        def post():
            response = new_client(app).post(f"/api/v1/patients/{world.patient.id}/checkins", json=body,
                                            headers=headers)
            return response.status_code, response.get_json()

        results = run_together(post)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * (THREADS - 1) + [201], results
    assert len({answer["id"] for _, answer in results}) == 1
    assert all(answer["client_id"] == body["client_id"] for _, answer in results)
    checkins, rows, actions = stored(postgres)
    assert (checkins, rows) == (1, 1)
    assert sorted(actions) == ["create"] + ["replay"] * (THREADS - 1)


def test_when_every_request_passes_the_look_up_the_unique_constraint_decides(postgres, world, monkeypatch):
    """Force the worst interleaving: all 20 look the client_id up, find nothing, and insert."""
    item = make_program(world).items[0]
    data = {"client_id": uuid.uuid4(), "recorded_at": NOW, "pain": 4, "difficulty": "ok", "note": None,
            "exercises": [{"program_item_id": item.id, "sets": 3, "reps": 10}]}
    real_look_up = exercises._look_up
    first_look_up = threading.Barrier(THREADS, timeout=60)
    seen = threading.local()

    def racing_look_up(*args):
        found = real_look_up(*args)
        if not getattr(seen, "done", False):
            seen.done = True
            first_look_up.wait()  # nobody inserts before everybody has looked
            assert found[2] is None
        return found

    monkeypatch.setattr(exercises, "_look_up", racing_look_up)
    with wide_pool_app(postgres) as app:
        def record():
            with app.app_context():
                try:
                    checkin, created = exercises.record_checkin(
                        Actor(_db.session.merge(world.patient_user)), world.patient.id, data, source="api", now=NOW)
                    return checkin.id, created
                finally:
                    _db.session.remove()

        results = run_together(record)
    assert sorted(created for _, created in results) == [False] * (THREADS - 1) + [True]
    assert len({checkin_id for checkin_id, _ in results}) == 1
    checkins, rows, actions = stored(postgres)
    assert (checkins, rows) == (1, 1)
    assert sorted(actions) == ["create"] + ["replay"] * (THREADS - 1)
