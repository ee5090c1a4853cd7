"""Waking the signaling long-polls held for a room when a message for that room is stored.

PostgreSQL: storing a message also runs pg_notify('video_room', <room id>) in the same transaction,
so the notification goes out when, and only if, the message is committed. Each web process keeps
ONE listener thread, on its own autocommit connection (LISTEN video_room), started by the first
long-poll and reconnecting whenever that connection drops; it wakes the long-polls waiting on the
room named. A woken long-poll reads the database as before (a notification only says "look", and
wakes every participant of the room waiting in this process), and it also reads it every
SAFETY_RECHECK_SECONDS without one: a notification lost while the listener reconnects costs
latency, never a message.

SQLite (one process: development and demos), or VIDEO_LISTEN_NOTIFY off (a pooler in
transaction mode): no notifications; a long-poll looks every POLL_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from flask import Flask, current_app
from psycopg import sql
from sqlalchemy import func, select

from telerehab.extensions import db

log = logging.getLogger(__name__)

CHANNEL = "video_room"
POLL_SECONDS = 0.1  # how often a long-poll nothing wakes looks (SQLite; media sessions' answers)
SAFETY_RECHECK_SECONDS = 2.0  # PostgreSQL: how often it looks even when no notification came
RECONNECT_SECONDS = 1.0  # the listener's pause before it reconnects
STOP_CHECK_SECONDS = 1.0  # how long the listener waits for notifications before seeing if it should stop
# A server that vanished without closing the connection is noticed by TCP keepalives (libpq settings).
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
_EXTENSION = "video_room_listener"
_starting = threading.Lock()


def _notifies() -> bool:
    return db.session.get_bind().dialect.name == "postgresql" and current_app.config["VIDEO_LISTEN_NOTIFY"]


def announce(room_id: int) -> None:
    """In the transaction that stores a message for the room: wake its long-polls on commit."""
    if _notifies():
        db.session.execute(select(func.pg_notify(CHANNEL, str(room_id))))


class RoomListener:
    """LISTEN on a dedicated connection in a thread of its own; wake the waiters of each room named."""

    def __init__(self, connect_args: dict):
        self._connect_args = {**connect_args, **KEEPALIVES, "autocommit": True}
        self._lock = threading.Lock()
        self._waiting: dict[int, set[threading.Event]] = {}
        self._stopping = threading.Event()
        self.backend_pid: int | None = None  # the listening connection's server process, while connected
        self._thread = threading.Thread(target=self._run, name="video-room-listener", daemon=True)
        self._thread.start()

    @contextmanager
    def watching(self, room_id: int) -> Iterator[threading.Event]:
        """An event set whenever a message for the room may have been stored."""
        event = threading.Event()
        with self._lock:
            self._waiting.setdefault(room_id, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._waiting[room_id]
                events.discard(event)
                if not events:
                    del self._waiting[room_id]

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=STOP_CHECK_SECONDS + 5)

    def _wake(self, room_id: int | None) -> None:
        """Wake the waiters of one room, or of every room (None)."""
        with self._lock:
            groups = self._waiting.values() if room_id is None else [self._waiting.get(room_id, ())]
            for events in groups:
                for event in events:
                    event.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except psycopg.Error as error:  # the connection was killed, the server restarted...
                log.warning("video room listener: %s; reconnecting in %g s", error, RECONNECT_SECONDS)
            except Exception:  # whatever it was, the long-polls need the listener back
                log.exception("video room listener failed; reconnecting in %g s", RECONNECT_SECONDS)
            self.backend_pid = None
            self._stopping.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        with psycopg.connect(**self._connect_args) as connection:
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            self.backend_pid = connection.info.backend_pid
            self._wake(None)  # anything stored while nobody listened
            while not self._stopping.is_set():
                for notification in connection.notifies(timeout=STOP_CHECK_SECONDS):
                    if notification.payload.isdigit():
                        self._wake(int(notification.payload))


def listener() -> RoomListener:
    """This app's listener (one per web process), started on first use."""
    app = current_app._get_current_object()
    with _starting:
        found = app.extensions.get(_EXTENSION)
        if found is None:
            engine = db.engine
            _args, connect_args = engine.dialect.create_connect_args(engine.url)
            found = app.extensions[_EXTENSION] = RoomListener(connect_args)
    return found


def stop_listener(app: Flask) -> None:
    """Stop the app's listener, if it started (tests, and a clean shutdown)."""
    found = app.extensions.pop(_EXTENSION, None)
    if found is not None:
        found.stop()


class _Notified:
    def __init__(self, event: threading.Event):
        self._event = event

    def pause(self, at_most: float) -> None:
        self._event.wait(min(at_most, SAFETY_RECHECK_SECONDS))
        # Cleared before the caller looks again: a message stored after that look sets it anew.
        self._event.clear()


class _Polling:
    @staticmethod
    def pause(at_most: float) -> None:
        time.sleep(min(at_most, POLL_SECONDS))


@contextmanager
def room_wakeups(room_id: int) -> Iterator[_Notified | _Polling]:
    """For a long-poll on the room: `pause(at_most)` between two looks at the database returns when
    a message for the room may have been stored (PostgreSQL), at the latest after the safety
    interval, or after POLL_SECONDS (SQLite). Enter before the first look, so none is missed."""
    if not _notifies():
        yield _Polling()
        return
    with listener().watching(room_id) as event:
        yield _Notified(event)
