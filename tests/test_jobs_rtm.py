"""The job layer around RTM: every run recorded in job_runs, a run that dies halfway and runs
again leaves the same lines as one clean run, one scheduler of two runs jobs (PostgreSQL advisory
lock; a file lock on SQLite), and `flask rtm evaluate`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.extensions import db
from telerehab.jobs.models import JobRun
from telerehab.jobs.scheduler import LeaderLock, run_job
from telerehab.monitoring import operations as monitoring
from telerehab.monitoring.models import RtmBillableLine, RtmEnrolment

from .conftest import NOW, episode_data, patient_data
from .test_monitoring_support import START, add_checkins, days_from, enrol, line_content

APRIL_2 = NOW.replace(month=4, day=2)
ROOT = Path(__file__).resolve().parents[1]


def three_patients(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 20))
    monitoring.record_management_time(Actor(world.therapist), world.episode.id, {
        "service_date": "2026-03-10", "minutes": 45, "activity": "video", "interactive": True, "channel": "video"},
        now=APRIL_2)
    for n in range(2):
        patient = accounts.create_patient(Actor(world.therapist), patient_data(first_name=f"P{n}"), now=NOW)
        episode = careplans.create_episode(Actor(world.therapist), patient.id, episode_data(), now=NOW)
        enrol(world, episode=episode)
        add_checkins(patient, episode, days_from(START, 3 + 14 * n))


def test_a_run_killed_midway_and_run_again_leaves_the_lines_of_one_clean_run(world, monkeypatch):
    three_patients(world)
    real = monitoring._write_lines
    batches = []

    def dies_on_the_second_batch(*args, **kwargs):
        batches.append(1)
        if len(batches) == 2:
            real(*args, **kwargs)  # half-written in the session, never committed
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(monitoring, "_write_lines", dies_on_the_second_batch)
    with pytest.raises(RuntimeError):
        monitoring.evaluate(now=APRIL_2, batch_size=1)
    db.session.rollback()
    assert len({line.episode_id for line in db.session.scalars(select(RtmBillableLine))}) == 1  # batch 1 only
    monkeypatch.setattr(monitoring, "_write_lines", real)
    monitoring.evaluate(now=APRIL_2, batch_size=1)
    monitoring.evaluate(now=APRIL_2)  # and once more for good measure
    after_crash = line_content()

    db.session.execute(RtmBillableLine.__table__.delete())
    db.session.execute(RtmEnrolment.__table__.update().values(evaluated_signature=None))
    db.session.commit()
    monitoring.evaluate(now=APRIL_2)
    assert line_content() == after_crash
    assert {line[3] for line in after_crash} >= {"98975", "98977", "98985", "98980", "98981"}


def test_every_run_is_recorded(app, world):
    three_patients(world)
    run_job(app, "telerehab.monitoring.operations:evaluate_all", job_id="evaluate_rtm_nightly")
    run_job(app, "tests.test_jobs_rtm:explode", job_id="explode")
    db.session.expire_all()
    ok, failed = db.session.scalars(select(JobRun).order_by(JobRun.id)).all()
    assert (ok.job, ok.outcome, ok.counts["enrolments"]) == ("evaluate_rtm_nightly", "ok", 3)
    assert ok.counts["inserted"] > 0 and ok.finished_at >= ok.started_at and ok.runner
    assert (failed.outcome, failed.error) == ("failed", "RuntimeError: boom")


def explode(*, now):
    raise RuntimeError("boom")


def test_flask_rtm_evaluate(app, world):
    three_patients(world)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["rtm", "evaluate", "--as-of", "2026-03-20", "--patient", str(world.patient.id)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("enrolments 1: 1 lines written")  # only the set-up line by then
    result = runner.invoke(args=["rtm", "evaluate", "--as-of", "2026-04-02"])
    assert "enrolments 3:" in result.output and db.session.scalar(
        select(sa.func.count()).select_from(RtmBillableLine)) > 3
    assert runner.invoke(args=["rtm", "evaluate", "--as-of", "yesterday"]).exit_code == 2
    assert runner.invoke(args=["rtm", "alerts"]).exit_code == 0


def test_on_a_sqlite_file_one_process_holds_the_lock(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    first, second = LeaderLock(engine), LeaderLock(engine)
    try:
        assert first.needed and first.try_acquire() and first.still_held()
        assert not second.try_acquire() and not second.still_held()
        first.release()
        assert second.try_acquire()
    finally:
        first.release()
        second.release()
        engine.dispose()


SCHEDULER = textwrap.dedent("""
    import sys, threading, time
    from telerehab import create_app
    from telerehab.extensions import db
    from telerehab.jobs.scheduler import JobSpec, LeaderLock, build_scheduler

    app = create_app({"SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": sys.argv[1]})
    with app.app_context():
        lock = LeaderLock(db.engine)
        deadline = time.monotonic() + 20
        if not lock.acquire(poll_seconds=0.2, stop=lambda: time.monotonic() > deadline):
            print("gave up", flush=True)
            sys.exit(0)
        print("leader", flush=True)
        spec = JobSpec("alerts", "telerehab.monitoring.operations:raise_alerts", 1, 5)
        scheduler = build_scheduler(app, jobs=(spec,), lock=lock)
        threading.Timer(float(sys.argv[2]), lambda: scheduler.shutdown(wait=False)).start()
        scheduler.start()
        lock.release()
""")


def scheduler_process(url: str, seconds: int) -> subprocess.Popen:
    """A scheduler process of our own code (this interpreter, this checkout) on the test database."""
    return subprocess.Popen([sys.executable, "-c", SCHEDULER, url, str(seconds)], cwd=ROOT,  # noqa: S603
                            stdout=subprocess.PIPE, text=True)


def test_two_scheduler_processes_on_postgresql_only_one_runs_jobs(app, db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: the advisory lock")
    url = db.engine.url.render_as_string(hide_password=False)
    first = scheduler_process(url, 4)
    assert first.stdout.readline().strip() == "leader"
    second = scheduler_process(url, 3)
    try:
        assert first.wait(timeout=30) == 0
        assert second.stdout.readline().strip() == "leader"  # it took over once the first let go
        assert second.wait(timeout=30) == 0
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
    db.session.expire_all()
    runs = db.session.scalars(select(JobRun).order_by(JobRun.started_at)).all()
    runners = [run.runner for run in runs]
    assert len(set(runners)) == 2 and all(run.outcome == "ok" for run in runs)
    switch = runners.index(runners[-1])
    assert set(runners[:switch]) == {runners[0]} and set(runners[switch:]) == {runners[-1]}  # never interleaved
    assert max(r.finished_at for r in runs[:switch]) <= min(r.started_at for r in runs[switch:])


def test_the_scheduler_waits_while_another_holds_the_lock(app, db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: the advisory lock")
    holder = LeaderLock(db.engine)
    try:
        assert holder.try_acquire()
        url = db.engine.url.render_as_string(hide_password=False)
        waiting = scheduler_process(url, 1)
        time.sleep(2)
        assert waiting.poll() is None  # still waiting for the lock
        db.session.expire_all()
        assert db.session.scalar(select(sa.func.count()).select_from(JobRun)) == 0
        holder.release()
        assert waiting.stdout.readline().strip() == "leader"
        assert waiting.wait(timeout=30) == 0
    finally:
        holder.release()
        if waiting.poll() is None:
            waiting.kill()


KILLED_MIDWAY = textwrap.dedent("""
    import os, signal, sys
    from datetime import datetime, UTC
    from telerehab import create_app
    from telerehab.monitoring import operations

    real, calls = operations._write_lines, []

    def write_then_die(*args, **kwargs):
        calls.append(1)
        real(*args, **kwargs)
        if len(calls) == 2:  # the second batch is written in the session, not committed
            os.kill(os.getpid(), signal.SIGKILL)

    operations._write_lines = write_then_die
    app = create_app({"SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": sys.argv[1]})
    with app.app_context():
        operations.evaluate(now=datetime(2026, 4, 2, 15, tzinfo=UTC), batch_size=1)
""")


def test_a_process_killed_midway_and_run_again_leaves_the_lines_of_one_clean_run(app, world):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the killed process needs a database it can share (the SQLite tests run in memory)")
    three_patients(world)
    url = db.engine.url.render_as_string(hide_password=False)
    killed = subprocess.run([sys.executable, "-c", KILLED_MIDWAY, url], cwd=ROOT, timeout=60)  # noqa: S603
    assert killed.returncode == -9
    db.session.expire_all()
    assert len({line.episode_id for line in db.session.scalars(select(RtmBillableLine))}) == 1  # batch 1 only
    monitoring.evaluate(now=APRIL_2)
    after_kill = line_content()
    db.session.execute(RtmBillableLine.__table__.delete())
    db.session.execute(RtmEnrolment.__table__.update().values(evaluated_signature=None))
    db.session.commit()
    monitoring.evaluate(now=APRIL_2)
    assert line_content() == after_kill
