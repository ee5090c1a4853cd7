"""Video rooms, their participants and signaling messages, call segments, recording consent,
media-worker sessions, recordings and captured stills.

Everything a second web worker or the media worker needs is here, never in a process's memory.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telerehab.accounts.models import User
from telerehab.careplans.models import Visit
from telerehab.db_types import UTCDateTime
from telerehab.extensions import db


class VideoRoom(db.Model):
    """One per video visit, made when someone first enters."""

    __tablename__ = "video_rooms"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), unique=True)
    # The last signaling sequence number handed out: bumped with an UPDATE, so concurrent web
    # workers serialise on the row and every message of a room gets the next number.
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    minutes_logged: Mapped[int | None] = mapped_column(Integer)
    minutes_logged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    minutes_logged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    visit: Mapped[Visit] = relationship()
    participants: Mapped[list[RoomParticipant]] = relationship(
        back_populates="room", order_by="RoomParticipant.id"
    )


class RoomParticipant(db.Model):
    """A person who may be in the room: a user (patient, clinician) or an invited guest."""

    __tablename__ = "room_participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("video_rooms.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(20))
    display_name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(12))
    # Guests only: the one-time link's hash, when it stops working, and when it was used.
    invite_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invite_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    admitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The peer connection's state as the participant's page last reported it (connected, ...).
    media_state: Mapped[str | None] = mapped_column(String(20))
    media_state_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    room: Mapped[VideoRoom] = relationship(back_populates="participants")
    user: Mapped[User | None] = relationship(foreign_keys=[user_id])

    __table_args__ = (UniqueConstraint("room_id", "user_id"),)


class SignalMessage(db.Model):
    """An offer, answer, ICE candidate or room event, addressed to one participant."""

    __tablename__ = "signal_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("video_rooms.id"))
    seq: Mapped[int] = mapped_column(Integer)
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("room_participants.id"))  # None: the app
    recipient_id: Mapped[int] = mapped_column(ForeignKey("room_participants.id"))
    kind: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("room_id", "seq"),
        Index("ix_signal_messages_recipient_seq", "recipient_id", "seq"),
    )


class CallSegment(db.Model):
    """A stretch of time during which the patient and a clinician were both connected."""

    __tablename__ = "call_segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("video_rooms.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecordingConsent(db.Model):
    """The patient's consent to record this one visit; revoking stamps it."""

    __tablename__ = "recording_consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), unique=True)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    method: Mapped[str] = mapped_column(String(20))  # verbal, written, electronic
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class MediaSession(db.Model):
    """Work for the media worker: an echo device check, a still capture or a recording.

    The browser (or test peer) posts an offer; the worker claims the row, answers, and writes what
    it measured or saved. The caller holds a bearer secret whose hash is kept here."""

    __tablename__ = "media_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # echo, capture, record
    status: Mapped[str] = mapped_column(String(20))  # waiting_offer, offered, live, finished, failed
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # who asked
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"), index=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("room_participants.id"))  # whose media
    offer_sdp: Mapped[str | None] = mapped_column(Text)
    answer_sdp: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(100))
    result: Mapped[str | None] = mapped_column(Text)  # JSON
    error: Mapped[str | None] = mapped_column(Text)
    stop_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_media_sessions_status", "status"),)


class Recording(db.Model):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    media_session_id: Mapped[int] = mapped_column(ForeignKey("media_sessions.id"), unique=True)
    path: Mapped[str] = mapped_column(String(300))  # relative to STORAGE_DIR
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    size_bytes: Mapped[int] = mapped_column(Integer)


class CapturedStill(db.Model):
    __tablename__ = "captured_stills"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    media_session_id: Mapped[int] = mapped_column(ForeignKey("media_sessions.id"), index=True)
    path: Mapped[str] = mapped_column(String(300))  # relative to STORAGE_DIR
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
