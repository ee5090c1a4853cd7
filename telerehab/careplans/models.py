"""Episodes of care: the plan of care with its diagnoses, goals and certification."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telerehab.accounts.models import Clinic, Patient, User
from telerehab.db_types import UTCDateTime
from telerehab.extensions import db


class Episode(db.Model):
    __tablename__ = "episodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    therapist_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    start_date: Mapped[date] = mapped_column(Date)  # first treatment, the evaluation included
    frequency_per_week: Mapped[int] = mapped_column(Integer)
    duration_weeks: Mapped[int] = mapped_column(Integer)
    certification_start: Mapped[date | None] = mapped_column(Date)
    certification_end: Mapped[date | None] = mapped_column(Date)
    certifying_physician_name: Mapped[str | None] = mapped_column(String(200))
    certifying_physician_npi: Mapped[str | None] = mapped_column(String(10))
    certification_signed_on: Mapped[date | None] = mapped_column(Date)
    discharge_date: Mapped[date | None] = mapped_column(Date)
    discharge_reason: Mapped[str | None] = mapped_column(String(30))
    # The therapist's clinical reasoning for the plan; billing staff never see it.
    plan_notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    patient: Mapped[Patient] = relationship()
    clinic: Mapped[Clinic] = relationship()
    therapist: Mapped[User] = relationship()
    diagnoses: Mapped[list[EpisodeDiagnosis]] = relationship(
        order_by="EpisodeDiagnosis.position", cascade="all, delete-orphan"
    )
    goals: Mapped[list[EpisodeGoal]] = relationship(
        order_by="EpisodeGoal.position", cascade="all, delete-orphan"
    )

    @property
    def diagnosis_codes(self) -> list[str]:
        return [d.code for d in self.diagnoses]


class EpisodeDiagnosis(db.Model):
    __tablename__ = "episode_diagnoses"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"))
    position: Mapped[int] = mapped_column(Integer)  # 1 is the principal diagnosis
    code: Mapped[str] = mapped_column(String(8))

    __table_args__ = (
        UniqueConstraint("episode_id", "position"),
        UniqueConstraint("episode_id", "code"),
    )


class EpisodeGoal(db.Model):
    __tablename__ = "episode_goals"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"))
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    target_date: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (UniqueConstraint("episode_id", "position"),)
