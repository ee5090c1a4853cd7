"""Clinic exercises, versioned home exercise programs, check-ins and the clinic's check-in settings.

Our own exercise library is a data file (library.json), not a table; a program item names its
exercise by key ("glute-bridge", or "clinic:<id>" for a clinic's own) and keeps a copy of the name,
so that the history shows what the patient was given even after the library changes.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telerehab.accounts.models import Clinic, Patient, User
from telerehab.careplans.models import Episode
from telerehab.db_types import UTCDateTime
from telerehab.exercises.rules import DEFAULT_LATE_UPLOAD_DAYS
from telerehab.extensions import db


class ClinicExercise(db.Model):
    """An exercise a clinic added to the library for its own patients."""

    __tablename__ = "clinic_exercises"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    body_region: Mapped[str] = mapped_column(String(20))
    instructions: Mapped[str] = mapped_column(Text)
    equipment: Mapped[list[str]] = mapped_column(JSON)
    media: Mapped[str] = mapped_column(String(300), default="")
    default_sets: Mapped[int] = mapped_column(Integer)
    default_reps: Mapped[int] = mapped_column(Integer)
    default_hold_seconds: Mapped[int] = mapped_column(Integer)
    default_times_per_day: Mapped[int] = mapped_column(Integer)
    default_days_per_week: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    clinic: Mapped[Clinic] = relationship()

    __table_args__ = (UniqueConstraint("clinic_id", "name"),)


class Program(db.Model):
    """One version of an episode's home exercise program. An edit adds a version; none is changed."""

    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"))
    version: Mapped[int] = mapped_column(Integer)
    # The patient's local date from which this version is in force (until a later one takes over).
    effective_from: Mapped[date] = mapped_column(Date)
    change_note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    episode: Mapped[Episode] = relationship()
    created_by: Mapped[User] = relationship()
    items: Mapped[list[ProgramItem]] = relationship(
        back_populates="program", order_by="ProgramItem.position", cascade="all, delete-orphan"
    )

    __table_args__ = (UniqueConstraint("episode_id", "version"),)


class ProgramItem(db.Model):
    __tablename__ = "program_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    position: Mapped[int] = mapped_column(Integer)
    exercise_key: Mapped[str] = mapped_column(String(40))
    exercise_name: Mapped[str] = mapped_column(String(120))
    sets: Mapped[int] = mapped_column(Integer)
    reps: Mapped[int] = mapped_column(Integer)
    hold_seconds: Mapped[int] = mapped_column(Integer, default=0)
    load: Mapped[str | None] = mapped_column(String(40))  # "2 kg", "red band"
    times_per_day: Mapped[int] = mapped_column(Integer)
    days_per_week: Mapped[int] = mapped_column(Integer)
    notes: Mapped[str | None] = mapped_column(Text)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)

    program: Mapped[Program] = relationship(back_populates="items")

    __table_args__ = (UniqueConstraint("program_id", "position"),)


class CheckIn(db.Model):
    """A patient's report of a day's home exercise, pain and difficulty: the RTM data.

    `client_id` is made by the client, so a retried upload stores one row; `local_date` is the date
    in the patient's timezone at `recorded_at` (the data day) and is kept, not recomputed.
    """

    __tablename__ = "checkins"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), index=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id"))  # the version in force
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the device's time
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the server's time
    local_date: Mapped[date] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String(64))  # the patient's, that local_date is counted in
    source: Mapped[str] = mapped_column(String(8))
    pain: Mapped[int | None] = mapped_column(Integer)
    difficulty: Mapped[str | None] = mapped_column(String(8))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: a verified SMS
    # Sent by the patient (the app, the web page, a text), not entered by staff on their behalf:
    # only such data is RTM data ("generated by a device or self-reported by the patient through
    # the device or software", reference/rtm-billing-2026.md §1.2), so only it makes a data day.
    self_reported: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    patient: Mapped[Patient] = relationship()
    episode: Mapped[Episode] = relationship()
    program: Mapped[Program | None] = relationship()
    recorded_by: Mapped[User | None] = relationship()
    exercises: Mapped[list[CheckInExercise]] = relationship(
        back_populates="checkin", order_by="CheckInExercise.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_checkins_patient_local_date", "patient_id", "local_date"),
        CheckConstraint("pain IS NULL OR (pain >= 0 AND pain <= 10)", name="pain_range"),
        CheckConstraint("source IN ('web', 'api', 'sms')", name="source"),
    )

    @property
    def is_late(self) -> bool:
        """Uploaded on a later day than it was recorded (an offline phone catching up)."""
        return (self.received_at - self.recorded_at).total_seconds() > 3600


class CheckInExercise(db.Model):
    __tablename__ = "checkin_exercises"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkin_id: Mapped[int] = mapped_column(ForeignKey("checkins.id"))
    program_item_id: Mapped[int] = mapped_column(ForeignKey("program_items.id"), index=True)
    sets_done: Mapped[int] = mapped_column(Integer)
    reps_done: Mapped[int] = mapped_column(Integer)

    checkin: Mapped[CheckIn] = relationship(back_populates="exercises")
    program_item: Mapped[ProgramItem] = relationship()

    __table_args__ = (UniqueConstraint("checkin_id", "program_item_id"),)


class CheckInSettings(db.Model):
    """A clinic's choice of how late an offline check-in may still be uploaded."""

    __tablename__ = "checkin_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), unique=True)
    late_upload_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_LATE_UPLOAD_DAYS)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
