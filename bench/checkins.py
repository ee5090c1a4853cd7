"""Check-in ingestion under load: `python bench/checkins.py` (the lead wires it into `make bench`).

Two servers, each gunicorn with 2 sync workers on 127.0.0.1 over the same PostgreSQL database:

* the app itself, taking POST /api/v1/patients/<id>/checkins (bearer token, strict schema, policy,
  program look-up, idempotency check, check-in + exercise rows + audit entry, one transaction);
* a baseline: a minimal Flask endpoint that inserts one row through SQLAlchemy.

This process is the load generator: BENCH_CONCURRENCY client threads send BENCH_REQUESTS requests
to each server, in alternating rounds, and the figures are printed side by side with their ratio
(the issue's aim: the check-in endpoint at >= 0.5 of the baseline's requests per second). Replays
(the same client_id sent again, answered 200) are measured too, and so is GET /api/v1/me, which
does nothing but the API's token check: the floor every API request stands on.

Database: BENCH_DATABASE_URL (it is emptied: every table is dropped), or else a scratch database
created on the local PostgreSQL server named by BENCH_ADMIN_URL (default
postgresql://postgres@127.0.0.1:5432/test) and dropped afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker  # noqa: E402

from tests.conftest import scratch_postgres_database  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1500"))  # per endpoint and round
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
PATIENTS = int(os.environ.get("BENCH_PATIENTS", "20"))
WARM_UP = 100
WORKERS = 2
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")


def sqlalchemy_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# ---------------------------------------------------------------- the baseline server

class _BaselineBase(DeclarativeBase):
    pass


class BenchRow(_BaselineBase):
    __tablename__ = "bench_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, unique=True)
    payload: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


def make_baseline_app():
    """gunicorn 'bench.checkins:make_baseline_app()': POST /rows inserts one row, answers 201."""
    from flask import Flask, jsonify, request

    engine = sa.create_engine(sqlalchemy_url(os.environ["DATABASE_URL"]), pool_pre_ping=True)
    session_factory = sessionmaker(engine, expire_on_commit=False)
    app = Flask("baseline")

    @app.post("/rows")
    def insert_row():
        data = request.get_json()
        with session_factory() as session:
            row = BenchRow(client_id=uuid.UUID(data["client_id"]), payload=json.dumps(data),
                           created_at=datetime.now(UTC))
            session.add(row)
            session.commit()
        return jsonify(id=row.id), 201

    return app


# ---------------------------------------------------------------- the database

def scratch_database() -> tuple[str, callable]:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url, lambda: None
    return scratch_postgres_database(sqlalchemy_url(ADMIN_URL), prefix="telerehab_bench")


@dataclass
class Fixture:
    patients: list[tuple[int, str, list[int]]]  # patient id, bearer token, program item ids
    server_version: str = ""


def build(url: str) -> Fixture:
    """Schema and data: a clinic, PATIENTS patients each with a sign-in, an episode and a program."""
    from datetime import date

    from telerehab import create_app
    from telerehab.accounts import operations as accounts
    from telerehab.accounts.operations import SYSTEM, Actor
    from telerehab.careplans import operations as careplans
    from telerehab.exercises import operations as exercises
    from telerehab.extensions import db

    now = datetime.now(UTC)
    app = create_app({"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": sqlalchemy_url(url),
                      "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 64})
    fixture = Fixture(patients=[])
    with app.app_context():
        db.drop_all()
        _BaselineBase.metadata.drop_all(db.engine)
        db.create_all()
        _BaselineBase.metadata.create_all(db.engine)
        fixture.server_version = db.session.scalar(sa.text("SHOW server_version"))
        org = accounts.create_organisation("Bench")
        clinic = accounts.create_clinic(SYSTEM, {
            "organisation_id": org.id, "name": "Bench clinic", "timezone": "America/Chicago",
            "address_line1": "1 Main", "city": "Chicago", "state": "IL", "postal_code": "60601",
            "npi": "1234567893", "tin": "123456789"}, now=now)
        therapist = accounts.create_user(SYSTEM, {
            "organisation_id": org.id, "username": "benchpt", "full_name": "Bench PT", "role": "therapist",
            "clinic_id": clinic.id, "npi": "1245319599", "password": "bench-password-long"}, now=now)
        start = (now - timedelta(days=10)).date()
        for index in range(PATIENTS):
            patient = accounts.create_patient(Actor(therapist), {
                "first_name": f"First{index}", "last_name": f"Last{index:03d}", "date_of_birth": date(1950, 1, 1),
                "sex": "F", "timezone": "America/Chicago", "payer_type": "self_pay"}, now=now)
            user = accounts.give_portal_access(Actor(therapist), patient.id, f"bench{index}",
                                               "bench-password-long", now=now)
            episode = careplans.create_episode(Actor(therapist), patient.id, {
                "title": "Knee OA", "start_date": start, "frequency_per_week": 2, "duration_weeks": 8,
                "diagnoses": ["M17.11"], "goals": [{"description": "Climb stairs"}]}, now=now)
            program = exercises.create_program_version(Actor(therapist), episode.id, {"items": [
                {"exercise_key": "glute-bridge"}, {"exercise_key": "heel-raise"}, {"exercise_key": "quad-set"}]},
                now=now)
            token, _ = accounts.create_api_token(Actor(user), "bench", expires_in_days=None, now=now)
            fixture.patients.append((patient.id, token, [item.id for item in program.items]))
        db.session.remove()
        db.engine.dispose()
    return fixture


def count_rows(url: str) -> tuple[int, int]:
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.connect() as connection:
        checkins = connection.execute(sa.text("SELECT count(*) FROM checkins")).scalar_one()
        rows = connection.execute(sa.text("SELECT count(*) FROM bench_rows")).scalar_one()
    engine.dispose()
    return checkins, rows


# ---------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(app_spec: str, url: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-only", "TELEREHAB_ENV": "production",
           "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}",
         "--chdir", str(ROOT), "--log-level", "warning", app_spec],
        # cwd too: `python -m` puts the working directory first on sys.path, ahead of ROOT.
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{app_spec} did not start: {process.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"{app_spec} did not listen on port {port} within 30 s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


# ---------------------------------------------------------------- load

@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    cpu_seconds: tuple[float, float] = (0.0, 0.0)  # the server's workers, the database's backends

    def add(self, other: Result) -> None:
        self.latencies_ms += other.latencies_ms
        self.seconds += other.seconds
        self.cpu_seconds = (self.cpu_seconds[0] + other.cpu_seconds[0], self.cpu_seconds[1] + other.cpu_seconds[1])
        for status, number in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + number

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies_ms, n=20)[-1]

    def cpu_ms(self, which: int) -> float:
        return self.cpu_seconds[which] * 1000 / len(self.latencies_ms)


# ---------------------------------------------------------------- CPU time, from /proc (Linux)

def _processes() -> list[tuple[int, int, str, float]]:
    """(pid, parent pid, command line, user + system CPU seconds) of every process we may read."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else []:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError):
            continue  # not a process, or gone
        found.append((int(entry.name), int(fields[1]), command,
                      (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")))
    return found


def cpu_seconds(server: subprocess.Popen, database: str) -> tuple[float, float]:
    """CPU used so far by the server's workers and by the PostgreSQL backends of `database` (whose
    process titles name it). Under other load on the machine this moves far less than req/s does."""
    processes = _processes()
    workers = sum(cpu for _, parent, _, cpu in processes if parent == server.pid)
    backends = sum(cpu for _, _, command, cpu in processes
                   if command.startswith("postgres:") and f" {database} " in command)
    return workers, backends


def measured(server: subprocess.Popen, database: str, port: int, requests) -> Result:
    before = cpu_seconds(server, database)
    result = load(port, requests)
    after = cpu_seconds(server, database)
    result.cpu_seconds = (after[0] - before[0], after[1] - before[1])
    return result


def load(port: int, requests: list[tuple[str, dict, bytes | None]]) -> Result:
    """Send `requests` (path, headers, body; no body: a GET) from CONCURRENCY threads, each taking
    the next one."""
    result = Result()
    lock = threading.Lock()
    position = iter(range(len(requests)))

    def client() -> None:
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            path, headers, body = requests[index]
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET" if body is None else "POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            connection.close()
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                result.latencies_ms.append(elapsed)
                result.statuses[response.status] = result.statuses.get(response.status, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


def checkin_requests(fixture: Fixture, number: int) -> list[tuple[str, dict, bytes]]:
    requests = []
    for index in range(number):
        patient_id, token, item_ids = fixture.patients[index % len(fixture.patients)]
        body = {"client_id": str(uuid.uuid4()), "recorded_at": datetime.now(UTC).isoformat(), "pain": index % 11,
                "difficulty": "ok", "exercises": [{"program_item_id": i, "sets": 3, "reps": 10} for i in item_ids]}
        requests.append((f"/api/v1/patients/{patient_id}/checkins",
                         {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                         json.dumps(body).encode()))
    return requests


def token_check_requests(fixture: Fixture, number: int) -> list[tuple[str, dict, None]]:
    return [("/api/v1/me", {"Authorization": f"Bearer {fixture.patients[index % len(fixture.patients)][1]}"}, None)
            for index in range(number)]


def baseline_requests(number: int) -> list[tuple[str, dict, bytes]]:
    return [("/rows", {"Content-Type": "application/json"},
             json.dumps({"client_id": str(uuid.uuid4()), "recorded_at": datetime.now(UTC).isoformat(),
                         "pain": index % 11}).encode()) for index in range(number)]


def main() -> int:
    url, drop = scratch_database()
    servers = []
    try:
        fixture = build(url)
        app_process, app_port = start_server("wsgi:app", url)
        servers.append(app_process)
        base_process, base_port = start_server("bench.checkins:make_baseline_app()", url)
        servers.append(base_process)

        load(app_port, checkin_requests(fixture, WARM_UP))
        load(base_port, baseline_requests(WARM_UP))
        baseline, checkins, replays, token_checks = Result(), Result(), Result(), Result()
        sent_checkins = []
        database = sa.make_url(sqlalchemy_url(url)).database
        for _ in range(ROUNDS):
            baseline.add(measured(base_process, database, base_port, baseline_requests(REQUESTS)))
            batch = checkin_requests(fixture, REQUESTS)
            checkins.add(measured(app_process, database, app_port, batch))
            sent_checkins += batch
        replays.add(measured(app_process, database, app_port, sent_checkins[:REQUESTS]))
        token_checks.add(measured(app_process, database, app_port, token_check_requests(fixture, REQUESTS)))
        stored_checkins, stored_rows = count_rows(url)
    finally:
        for process in servers:
            stop_server(process)
        drop()

    total = ROUNDS * REQUESTS
    print(f"check-in ingestion: gunicorn --workers {WORKERS} on 127.0.0.1, PostgreSQL {fixture.server_version}, "
          f"{CONCURRENCY} concurrent clients in this process, {ROUNDS} x {REQUESTS} requests per endpoint")
    print(f"{'endpoint':<58}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms: server':>16}{'+ db':>7}  statuses")
    for label, result in (
        ("baseline: minimal Flask + SQLAlchemy, insert one row", baseline),
        ("POST /api/v1/patients/<id>/checkins (new, 201)", checkins),
        ("POST /api/v1/patients/<id>/checkins (replayed, 200)", replays),
        ("for scale: GET /api/v1/me (the API's token check alone)", token_checks),
    ):
        statuses = ", ".join(f"{status}x{number}" for status, number in sorted(result.statuses.items()))
        print(f"{label:<58}{result.rate:>9.1f}{result.p50:>9.1f}{result.p95:>9.1f}"
              f"{result.cpu_ms(0):>16.2f}{result.cpu_ms(1):>7.2f}  {statuses}")
    ratio = checkins.rate / baseline.rate
    print(f"check-ins at {ratio:.2f} x the baseline's requests per second (aim: at least 0.50); "
          f"p95 {checkins.p95 / baseline.p95:.2f} x the baseline's")
    if checkins.cpu_seconds[0]:
        # Other work on the machine moves the rates above far more than the CPU each request takes.
        cpu_ratio = (baseline.cpu_ms(0) + baseline.cpu_ms(1)) / (checkins.cpu_ms(0) + checkins.cpu_ms(1))
        print(f"by CPU per request (server + database), check-ins at {cpu_ratio:.2f} x the baseline's")
    # Every new check-in stored once (warm-up included), replays adding none.
    expected_checkins = total + WARM_UP
    ok = (checkins.statuses == {201: total} and replays.statuses == {200: REQUESTS}
          and token_checks.statuses == {200: REQUESTS}
          and baseline.statuses == {201: total} and stored_checkins == expected_checkins
          and stored_rows == total + WARM_UP)
    print(f"stored: {stored_checkins} check-ins (expected {expected_checkins}), {stored_rows} baseline rows"
          + ("" if ok else "  <- MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
