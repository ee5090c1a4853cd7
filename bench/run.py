"""`make bench`: request latency of the main API reads, against a baseline measured in the same run.

The baseline is GET /api/v1/me (token check only); every other figure is also printed as a ratio
to it, so machines of different speed give comparable numbers. Runs in-process on SQLite by
default, or on BENCH_DATABASE_URL (a PostgreSQL database that will be emptied).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telerehab import create_app
from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import SYSTEM, Actor
from telerehab.extensions import db

PATIENTS = int(os.environ.get("BENCH_PATIENTS", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def build(app):
    with app.app_context():
        db.drop_all()
        db.create_all()
        org = accounts.create_organisation("Bench")
        clinic = accounts.create_clinic(SYSTEM, {
            "organisation_id": org.id, "name": "Bench clinic", "timezone": "America/Chicago",
            "address_line1": "1 Main", "city": "Chicago", "state": "IL", "postal_code": "60601",
            "npi": "1234567893", "tin": "123456789"}, now=NOW)
        therapist = accounts.create_user(SYSTEM, {
            "organisation_id": org.id, "username": "benchpt", "full_name": "Bench PT", "role": "therapist",
            "clinic_id": clinic.id, "npi": "1245319599", "password": "bench-password-long"}, now=NOW)
        for index in range(PATIENTS):
            db.session.add(accounts.Patient(
                clinic_id=clinic.id, primary_therapist_id=therapist.id, first_name=f"First{index}",
                last_name=f"Last{index:05d}", date_of_birth=date(1950, 1, 1), sex="F", timezone="America/Chicago",
                payer_type="self_pay", created_at=NOW, updated_at=NOW))
        db.session.commit()
        token, _ = accounts.create_api_token(Actor(therapist), "bench", expires_in_days=None, now=NOW)
        patient_id = db.session.scalar(db.select(accounts.Patient.id).limit(1))
        return {"Authorization": f"Bearer {token}"}, patient_id


def measure(client, path, headers) -> list[float]:
    client.get(path, headers=headers)  # warm caches and compiled queries
    timings = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        response = client.get(path, headers=headers)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)
    return timings


def main() -> None:
    url = os.environ.get("BENCH_DATABASE_URL", "sqlite://")
    app = create_app({"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url, "TELEREHAB_ENV": "testing"})
    headers, patient_id = build(app)
    client = app.test_client()
    cases = [
        ("baseline GET /api/v1/me", "/api/v1/me"),
        ("GET /api/v1/patients (page of 25)", "/api/v1/patients?page_size=25"),
        ("GET /api/v1/patients?q= (search)", "/api/v1/patients?q=last01&page_size=25"),
        ("GET /api/v1/patients/<id>", f"/api/v1/patients/{patient_id}"),
    ]
    print(f"database={url.split('://')[0]} patients={PATIENTS} rounds={ROUNDS}")
    print(f"{'request':<40}{'p50 ms':>9}{'p95 ms':>9}{'x baseline':>12}")
    baseline = None
    for label, path in cases:
        timings = measure(client, path, headers)
        p50 = statistics.median(timings)
        p95 = statistics.quantiles(timings, n=20)[-1]
        baseline = baseline or p50
        print(f"{label:<40}{p50:>9.2f}{p95:>9.2f}{p50 / baseline:>12.2f}")


if __name__ == "__main__":
    main()
