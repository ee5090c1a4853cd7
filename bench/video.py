"""Video visits: `python bench/video.py` (the lead wires it into `make bench`).

1. Time from the patient pressing Join to connected media (the patient's first decoded frame from
   the therapist), median over BENCH_VIDEO_CALLS calls with each signaling transport, measured in
   the same run, calls alternating between them:
   * long-poll (what the call page does): GET .../signals?after=N&wait=20, held by the server
     until a message arrives (it looks in the database every 0.1 s);
   * plain 1-second polling, the baseline: the same endpoint with wait=0, asked again a second
     after every empty answer.
   The therapist is already in the room and admits the patient as soon as the waiting list shows
   them; both sides are aiortc peers talking to the app served on 127.0.0.1 (threaded werkzeug
   server, SQLite file), 320x240 video.
2. The same time on PostgreSQL (a scratch database on BENCH_ADMIN_URL, default
   postgresql://postgres@127.0.0.1:5432/test; skipped when unreachable), long-polls woken by
   LISTEN/NOTIFY against the same long-polls looking every 0.1 s (VIDEO_LISTEN_NOTIFY off), calls
   alternating between them.
3. CPU of the media worker per recorded stream: `flask media-worker run` in its own process
   records BENCH_RECORD_STREAMS patient streams (640x480, 30 frames a second, with audio) for
   BENCH_RECORD_SECONDS; its CPU time (from /proc) over that window, less its idle CPU over an
   equal window, divided by the streams.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiortc import AudioStreamTrack  # noqa: E402

from telerehab import create_app  # noqa: E402
from telerehab.accounts.models import User  # noqa: E402
from telerehab.accounts.operations import Actor  # noqa: E402
from telerehab.careplans.models import Visit  # noqa: E402
from telerehab.extensions import db  # noqa: E402
from telerehab.video import operations  # noqa: E402
from tests.browser_support import served  # noqa: E402
from tests.conftest import NOW, TEST_SETTINGS, scratch_postgres_database  # noqa: E402
from tests.video_client import (  # noqa: E402
    LONG_POLL,
    PLAIN_POLL,
    PatternTrack,
    RoomClient,
    build_video_visit,
    clinician_side,
    loopback_candidates,
    media_session,
    new_peer,
    patient_side,
)

CALLS = int(os.environ.get("BENCH_VIDEO_CALLS", "20"))
RECORD_STREAMS = int(os.environ.get("BENCH_RECORD_STREAMS", "2"))
RECORD_SECONDS = float(os.environ.get("BENCH_RECORD_SECONDS", "10"))
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")


def more_visits(app, template_id: int, count: int) -> list[int]:
    """Copies of one video visit, a day apart: one fresh room (and waiting room) per call."""
    with app.app_context():
        template = db.session.get(Visit, template_id)
        columns = [c.key for c in Visit.__table__.columns if c.key not in ("id", "starts_at", "ends_at")]
        visits = []
        for n in range(1, count + 1):
            visit = Visit(**{c: getattr(template, c) for c in columns},
                          starts_at=template.starts_at + timedelta(days=n), ends_at=template.ends_at + timedelta(days=n))
            db.session.add(visit)
            visits.append(visit)
        db.session.commit()
        ids = [v.id for v in visits]
        db.session.remove()
    return ids


async def one_call(base: str, visit_id: int, password: str, transport: str) -> float:
    patient, therapist = RoomClient(base, visit_id, transport=transport), RoomClient(base, visit_id, transport=transport)
    patient_pc, therapist_pc = new_peer(), new_peer()
    therapist_pc.addTrack(PatternTrack())
    patient_pc.addTrack(PatternTrack())
    first_frame = asyncio.get_running_loop().create_future()

    async def read(track):
        if track.kind == "video":
            await track.recv()
            if not first_frame.done():
                first_frame.set_result(time.perf_counter())

    reader: list[asyncio.Task] = []
    patient_pc.on("track", lambda track: reader.append(asyncio.ensure_future(read(track))))
    try:
        await therapist.sign_in("therapist", password)
        await patient.sign_in("ana", password)
        await therapist.join()
        admitting = asyncio.ensure_future(clinician_side(therapist, therapist_pc))
        started = time.perf_counter()  # the patient presses Join
        await patient.join()
        await patient_side(patient, patient_pc)
        await admitting
        return await asyncio.wait_for(first_frame, 30) - started
    finally:
        for task in reader:
            task.cancel()
        await asyncio.gather(patient_pc.close(), therapist_pc.close())
        await asyncio.gather(patient.close(), therapist.close())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def record_streams(app, base: str, visit_ids: list[int], password: str, worker_pid: int) -> float:
    """Record one stream per visit at once; returns the worker's CPU seconds while they ran."""
    with app.app_context():
        therapist = User.query.filter_by(username="therapist").one()
        for visit_id in visit_ids:
            operations.record_recording_consent(Actor(therapist), visit_id, "verbal", now=NOW)
        db.session.remove()
    window: dict[str, float] = {}
    recording = asyncio.Event()

    async def stream(visit_id: int) -> dict:
        patient, therapist = RoomClient(base, visit_id), RoomClient(base, visit_id)
        pc = new_peer()
        pc.addTransceiver(PatternTrack(640, 480), direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        try:
            await therapist.sign_in("therapist", password)
            await patient.sign_in("ana", password)
            await therapist.join()
            await patient.join()
            await therapist.admit((await therapist.wait_for_waiting())[0]["participant_id"])
            async with therapist.http.post(f"{base}/video/rooms/{visit_id}/worker", headers=therapist.headers,
                                           json={"kind": "record"}) as response:
                assert response.status == 201, await response.text()
            request = (await patient.next_message("media-request"))["body"]

            async def record_then_stop():
                await asyncio.sleep(2)  # let every stream settle before the window opens
                recording.set()
                await asyncio.sleep(RECORD_SECONDS)
                window.setdefault("end", cpu_seconds(worker_pid))
                async with therapist.http.post(f"{base}/video/rooms/{visit_id}/worker", headers=therapist.headers,
                                               json={"kind": "stop"}):
                    pass

            return await media_session(patient.http, base, request["media_session_id"], request["token"], pc,
                                       on_answered=record_then_stop)
        finally:
            await pc.close()
            await asyncio.gather(patient.close(), therapist.close())

    async def open_window():
        await recording.wait()
        window["start"] = cpu_seconds(worker_pid)

    results = await asyncio.gather(open_window(), *(stream(v) for v in visit_ids))
    failed = [r for r in results[1:] if r["status"] != "finished"]
    assert not failed, failed
    return window["end"] - window["start"]


def postgres_calls() -> dict[str, list[float]] | None:
    """Join -> first frame on PostgreSQL, long-polls woken by NOTIFY or looking every 0.1 s."""
    from sqlalchemy.exc import OperationalError

    from telerehab.video import notify

    try:
        url, drop = scratch_postgres_database(ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1),
                                              prefix="telerehab_bench_video")
    except OperationalError as error:
        print(f"PostgreSQL unreachable at {ADMIN_URL}: skipped ({error.__class__.__name__})")
        return None
    app = create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": url})
    try:
        with app.app_context():
            db.create_all()
        ids = build_video_visit(app, visits=1)
        visits = [ids.visit, *more_visits(app, ids.visit, 2 * CALLS - 1)]
        timings: dict[str, list[float]] = {"notify": [], "poll": []}
        with loopback_candidates(), served(app) as base:
            for n, visit_id in enumerate(visits):
                mode = ("notify", "poll")[n % 2]
                app.config["VIDEO_LISTEN_NOTIFY"] = mode == "notify"  # read by each request
                timings[mode].append(asyncio.run(one_call(base, visit_id, ids.password, LONG_POLL)))
        return timings
    finally:
        notify.stop_listener(app)
        with app.app_context():
            db.engine.dispose()
        drop()


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    storage = tempfile.mkdtemp(prefix="bench-video-")
    database = Path(storage) / "bench.sqlite3"
    settings = {**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}", "STORAGE_DIR": storage}
    app = create_app(settings)
    with app.app_context():
        db.create_all()
    ids = build_video_visit(app, visits=1)
    visits = [ids.visit, *more_visits(app, ids.visit, 2 * CALLS + RECORD_STREAMS - 1)]
    call_visits, record_visits = visits[:2 * CALLS], visits[2 * CALLS:]

    timings: dict[str, list[float]] = {LONG_POLL: [], PLAIN_POLL: []}
    with loopback_candidates(), served(app) as base:
        for n, visit_id in enumerate(call_visits):
            transport = (LONG_POLL, PLAIN_POLL)[n % 2]
            timings[transport].append(asyncio.run(one_call(base, visit_id, ids.password, transport)))

        env = {**os.environ, "TELEREHAB_ENV": "development", "SECRET_KEY": TEST_SETTINGS["SECRET_KEY"],
               "DATABASE_URL": f"sqlite:///{database}", "STORAGE_DIR": storage,
               "MEDIA_WORKER_HOST_ADDRESSES": "127.0.0.1", "MEDIA_WORKER_POLL_SECONDS": "0.1"}
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "media-worker", "run"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(3)  # start-up
            idle_start = cpu_seconds(worker.pid)
            time.sleep(RECORD_SECONDS)
            idle = cpu_seconds(worker.pid) - idle_start
            busy = asyncio.run(record_streams(app, base, record_visits, ids.password, worker.pid))
        finally:
            worker.terminate()
            worker.wait(timeout=20)

    long_poll, plain = statistics.median(timings[LONG_POLL]), statistics.median(timings[PLAIN_POLL])
    print(f"video: patient presses Join -> first frame, median of {CALLS} calls each")
    print(f"  long-poll (chosen)      {long_poll * 1000:8.0f} ms   "
          f"(min {min(timings[LONG_POLL]) * 1000:.0f}, max {max(timings[LONG_POLL]) * 1000:.0f})")
    print(f"  plain 1 s polling       {plain * 1000:8.0f} ms   "
          f"(min {min(timings[PLAIN_POLL]) * 1000:.0f}, max {max(timings[PLAIN_POLL]) * 1000:.0f})")
    print(f"  ratio plain / long-poll {plain / long_poll:8.2f}x")
    on_postgres = postgres_calls()
    if on_postgres is not None:
        woken, polled = statistics.median(on_postgres["notify"]), statistics.median(on_postgres["poll"])
        print(f"  PostgreSQL, long-poll woken by NOTIFY {woken * 1000:8.0f} ms   against looking every 0.1 s "
              f"{polled * 1000:.0f} ms   ({polled / woken:.2f}x)")
    per_stream = (busy - idle) / RECORD_SECONDS / RECORD_STREAMS
    print(f"media worker: {RECORD_STREAMS} recorded streams (640x480 at 30 fps + audio) for {RECORD_SECONDS:g} s")
    print(f"  CPU per recorded stream {per_stream * 100:8.1f} % of one core   (idle worker {idle / RECORD_SECONDS * 100:.1f} %)")


if __name__ == "__main__":
    main()
