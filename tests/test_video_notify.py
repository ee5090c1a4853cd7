"""Held signaling long-polls woken by PostgreSQL notifications (telerehab/video/notify.py): a message
sent through another app instance (another web process, as far as the database can tell) wakes a
waiting long-poll at once, and the long-poll looks at the database only a few times while it waits;
with the listener's connection killed, a message still arrives (the safety re-check) and the
listener comes back. On SQLite a long-poll still looks every 0.1 s, with no listener."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import event, text

from telerehab import create_app
from telerehab.accounts.operations import Actor
from telerehab.db_types import utc_now
from telerehab.extensions import db as db_extension
from telerehab.video import notify
from telerehab.video import operations as video

from .authorisation_support import visit as _visit
from .browser_support import served
from .conftest import TEST_SETTINGS, new_client, postgres_admin_url, scratch_postgres_database
from .test_video_signaling import _call
from .video_client import build_video_visit, loopback_candidates

SIGNAL_SELECT = "FROM signal_messages"


@pytest.fixture
def room(app, db, world) -> SimpleNamespace:
    """A room with the therapist and the admitted patient, whose long-polls read from `after`."""
    visit = _visit(world, modality="video")
    patient = video.enter_room(Actor(world.patient_user), visit.id, now=utc_now())
    therapist = video.enter_room(Actor(world.therapist), visit.id, now=utc_now())
    video.admit(therapist.participant, patient.participant.id, now=utc_now())
    return SimpleNamespace(visit_id=visit.id, patient=patient, therapist=therapist,
                           after=video.room_of_visit(visit.id).last_seq)


@pytest.fixture
def call(app, db, room) -> Iterator[SimpleNamespace]:
    """The room on PostgreSQL, with a second app instance on the same database to send from; this
    app's listener is stopped afterwards."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("PostgreSQL only: on SQLite (one process) a long-poll looks at the database every 0.1 s")
    other_worker = create_app(dict(app.config))
    room.sender = new_client(other_worker)
    yield room
    notify.stop_listener(app)
    with other_worker.app_context():
        db.engine.dispose()


class HeldPoll:
    """GET .../signals?wait=… through the test client in a thread of its own, counting the SELECTs
    of signal messages that thread ran."""

    def __init__(self, app, db, call, wait: float):
        self.selects = 0
        self.answer: dict | None = None
        self.returned_at: float | None = None
        self._engine = db.engine
        self._client = new_client(app)
        self._url = f"/video/rooms/{call.visit_id}/signals?after={call.after}&wait={wait}"
        self._headers = {"X-Room-Token": call.patient.token}
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _count(self, _connection, _cursor, statement, *_args) -> None:
        if threading.current_thread() is self._thread and SIGNAL_SELECT in statement:
            self.selects += 1

    def _poll(self) -> None:
        response = self._client.get(self._url, headers=self._headers)
        self.returned_at = time.monotonic()
        self.answer = response.get_json()

    def __enter__(self) -> HeldPoll:
        event.listen(self._engine, "before_cursor_execute", self._count)
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._thread.join(timeout=30)
        event.remove(self._engine, "before_cursor_execute", self._count)


def _send(call) -> float:
    """The therapist sends the patient a message through the other app instance; returns when."""
    sent_at = time.monotonic()
    response = call.sender.post(f"/video/rooms/{call.visit_id}/signals", headers={"X-Room-Token": call.therapist.token},
                                json={"to": call.patient.participant.id, "kind": "candidate",
                                      "body": {"candidate": None, "session": "s1"}})
    assert response.status_code == 201, response.get_json()
    return sent_at


def _listening(app, *, other_than: int | None = None, within: float = 10.0) -> int:
    """The listener's server process once it listens (a new one when `other_than` is given)."""
    with app.app_context():
        listener = notify.listener()
    give_up = time.monotonic() + within
    while time.monotonic() < give_up:
        pid = listener.backend_pid
        if pid is not None and pid != other_than:
            return pid
        time.sleep(0.05)
    raise AssertionError("the listener is not listening")


def test_a_message_from_another_worker_wakes_the_long_poll_at_once(app, db, call):
    _listening(app)
    with HeldPoll(app, db, call, wait=10) as poll:
        time.sleep(1.0)
        sent_at = _send(call)
    assert [m["kind"] for m in poll.answer["messages"]] == ["candidate"]
    assert poll.returned_at - sent_at < 0.3
    assert poll.selects == 2  # before the wait, and once woken: not one every 0.1 s


def test_a_quiet_long_poll_looks_only_at_the_safety_interval(app, db, call):
    _listening(app)
    with HeldPoll(app, db, call, wait=2) as poll:
        pass
    assert poll.answer["messages"] == []
    assert poll.selects <= 3  # polling every 0.1 s would have made about 20


def test_a_message_sent_while_the_listener_is_down_still_arrives(app, db, call, monkeypatch):
    monkeypatch.setattr(notify, "RECONNECT_SECONDS", 4.0)  # down for longer than the safety interval
    killed = _listening(app)
    with HeldPoll(app, db, call, wait=10) as poll:
        time.sleep(0.3)
        assert db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed}).scalar()
        db.session.commit()
        sent_at = _send(call)
    assert [m["kind"] for m in poll.answer["messages"]] == ["candidate"]
    delay = poll.returned_at - sent_at
    assert delay < notify.SAFETY_RECHECK_SECONDS + 0.5 and delay < notify.RECONNECT_SECONDS

    # The listener is back, and wakes long-polls at once again.
    _listening(app, other_than=killed)
    call.after = video.room_of_visit(call.visit_id).last_seq
    with HeldPoll(app, db, call, wait=10) as poll:
        time.sleep(0.5)
        sent_at = _send(call)
    assert poll.answer["messages"] and poll.returned_at - sent_at < 0.3


def test_without_notifications_a_long_poll_looks_every_tenth_of_a_second_and_starts_no_listener(
        app, db, room, monkeypatch):
    """On SQLite; on PostgreSQL with VIDEO_LISTEN_NOTIFY off (behind a pooler where LISTEN cannot work)."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        monkeypatch.setitem(app.config, "VIDEO_LISTEN_NOTIFY", False)
        notify.stop_listener(app)  # started by the tests before
    with HeldPoll(app, db, room, wait=1) as poll:
        pass
    assert poll.answer["messages"] == []
    assert 8 <= poll.selects <= 12
    assert "video_room_listener" not in app.extensions


def test_two_aiortc_peers_on_two_web_workers_over_postgresql():
    """The whole call through two served app instances on PostgreSQL, the patient on one and the
    therapist on the other: every message reaches the other side by notification."""
    if not postgres_admin_url():
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    url, drop = scratch_postgres_database()
    app = create_app({**TEST_SETTINGS, "WTF_CSRF_ENABLED": True, "SQLALCHEMY_DATABASE_URI": url})
    other_worker = create_app(dict(app.config))
    try:
        with app.app_context():
            db_extension.create_all()
        ids = build_video_visit(app, visits=1)
        with loopback_candidates(), served(app) as patient_url, served(other_worker) as therapist_url:
            live = SimpleNamespace(url=patient_url, password=ids.password)
            received = asyncio.run(_call(live, ids.visit, therapist_url=therapist_url))["received"]
        assert received["patient"].get("video", 0) >= 10 and received["therapist"].get("video", 0) >= 10
        assert all(worker.extensions["video_room_listener"].backend_pid for worker in (app, other_worker))
    finally:
        for worker in (app, other_worker):
            notify.stop_listener(worker)
            with worker.app_context():
                db_extension.engine.dispose()
        drop()
