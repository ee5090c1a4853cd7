"""Episodes of care: the plan of care with its diagnoses, goals and certification."""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, Time, UniqueConstraint, false
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


class CareSettings(db.Model):
    """Per-clinic choices of the scheduling and documentation rules (defaults from issue 3)."""

    __tablename__ = "care_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), unique=True)
    initial_evaluation_in_clinic: Mapped[bool] = mapped_column(default=True)
    progress_every_treatment_visits: Mapped[int] = mapped_column(default=10)
    progress_in_clinic: Mapped[bool] = mapped_column(default=True)
    discharge_in_clinic: Mapped[bool] = mapped_column(default=True)
    one_visit_per_patient_per_day: Mapped[bool] = mapped_column(default=True)
    allow_beyond_certification: Mapped[bool] = mapped_column(default=False)
    assistant_notes_need_cosign: Mapped[bool] = mapped_column(default=True)
    visit_minutes: Mapped[int] = mapped_column(default=45)


class PayerSettings(db.Model):
    """What a kind of payer asks of a claim line. Modifier 95 on telehealth lines is the engine's
    default for Medicare Part B (rtm-billing-2026.md §4.2) and a toggle for the others."""

    __tablename__ = "payer_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    payer_type: Mapped[str] = mapped_column(String(30))
    telehealth_modifier_95: Mapped[bool] = mapped_column(default=True)
    # RTM: where the sources disagree, the payer decides (rtm-billing-2026.md §6 item 6). Defaults
    # are the reference's recommendations; telerehab.billing.rules.RtmPolicy names the choices.
    rtm_setup_min_days: Mapped[int] = mapped_column(default=2, server_default="2")
    rtm_setup_rebill: Mapped[str] = mapped_column(String(20), default="per_episode", server_default="per_episode")
    rtm_async_message_is_interactive: Mapped[bool] = mapped_column(default=False, server_default=false())
    rtm_addon_unit_cap: Mapped[int | None] = mapped_column(Integer)
    rtm_addon_needs_own_interaction: Mapped[bool] = mapped_column(default=False, server_default=false())
    rtm_device_dos: Mapped[str] = mapped_column(String(20), default="period_end", server_default="period_end")
    rtm_management_dos: Mapped[str] = mapped_column(String(20), default="month_end", server_default="month_end")
    rtm_setup_dos: Mapped[str] = mapped_column(String(20), default="setup_date", server_default="setup_date")
    rtm_cq_attribution: Mapped[str] = mapped_column(String(20), default="chronological",
                                                    server_default="chronological")
    rtm_rpm_overlap: Mapped[str] = mapped_column(String(10), default="hold", server_default="hold")
    rtm_place_of_service: Mapped[str] = mapped_column(String(2), default="11", server_default="11")
    kx_threshold_cents: Mapped[int] = mapped_column(default=248_000, server_default="248000")
    # Claims (837P): the payer as the clearinghouse knows it (NM1*PR), who sends (ISA06, loop 1000A)
    # and who receives (ISA08, loop 1000B), and whether the interchange is a test or production one.
    claim_payer_name: Mapped[str | None] = mapped_column(String(60))
    claim_payer_id: Mapped[str | None] = mapped_column(String(80))
    submitter_name: Mapped[str | None] = mapped_column(String(60))
    submitter_id: Mapped[str | None] = mapped_column(String(15))
    submitter_contact_name: Mapped[str | None] = mapped_column(String(60))
    submitter_contact_phone: Mapped[str | None] = mapped_column(String(10))
    receiver_name: Mapped[str | None] = mapped_column(String(60))
    receiver_id: Mapped[str | None] = mapped_column(String(15))
    claim_usage: Mapped[str] = mapped_column(String(1), default="T", server_default="T")

    __table_args__ = (UniqueConstraint("organisation_id", "payer_type"),)


class ClinicClosure(db.Model):
    __tablename__ = "clinic_closures"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    day: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200))

    __table_args__ = (UniqueConstraint("clinic_id", "day"),)


class WorkingHours(db.Model):
    """A clinician's weekly hours, in the clinic's local time."""

    __tablename__ = "working_hours"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)


class Recertification(db.Model):
    """A further certification period of the same plan of care."""

    __tablename__ = "recertifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), index=True)
    certification_start: Mapped[date] = mapped_column(Date)
    certification_end: Mapped[date] = mapped_column(Date)
    certifying_physician_name: Mapped[str] = mapped_column(String(200))
    certifying_physician_npi: Mapped[str] = mapped_column(String(10))
    certification_signed_on: Mapped[date | None] = mapped_column(Date)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Visit(db.Model):
    __tablename__ = "visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    clinician_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    modality: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    room: Mapped[str | None] = mapped_column(String(50))
    beyond_certification: Mapped[bool] = mapped_column(default=False)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rescheduled_from_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    episode: Mapped[Episode] = relationship()
    patient: Mapped[Patient] = relationship()
    clinic: Mapped[Clinic] = relationship()
    clinician: Mapped[User] = relationship()
    note: Mapped[VisitNote | None] = relationship(back_populates="visit")
    services: Mapped[list[ServiceLine]] = relationship(
        back_populates="visit", order_by="ServiceLine.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_visits_clinician_starts_at", "clinician_id", "starts_at"),
        Index("ix_visits_clinic_starts_at", "clinic_id", "starts_at"),
    )


class VideoSlotOffer(db.Model):
    """After a clinic visit is cancelled: the nearest free video slot that week, one tap to accept."""

    __tablename__ = "video_slot_offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    cancelled_visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), unique=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    cancelled_visit: Mapped[Visit] = relationship(foreign_keys=[cancelled_visit_id])


class VisitNote(db.Model):
    """SOAP note; locked once signed (and co-signed where the clinic requires it)."""

    __tablename__ = "visit_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), unique=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    subjective: Mapped[str] = mapped_column(Text, default="")
    objective: Mapped[str] = mapped_column(Text, default="")
    assessment: Mapped[str] = mapped_column(Text, default="")
    plan: Mapped[str] = mapped_column(Text, default="")
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cosigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cosigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    visit: Mapped[Visit] = relationship(back_populates="note")
    author: Mapped[User] = relationship(foreign_keys=[author_id])
    cosigned_by: Mapped[User | None] = relationship(foreign_keys=[cosigned_by_id])
    addenda: Mapped[list[NoteAddendum]] = relationship(order_by="NoteAddendum.created_at")


class NoteAddendum(db.Model):
    __tablename__ = "note_addenda"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("visit_notes.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    author: Mapped[User] = relationship()


class ServiceLine(db.Model):
    """A CPT service performed at a visit; units, POS and modifiers are derived by the rules."""

    __tablename__ = "service_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    cpt_code: Mapped[str] = mapped_column(String(5))
    minutes: Mapped[int] = mapped_column(Integer)
    assistant_minutes: Mapped[int] = mapped_column(Integer, default=0)
    units: Mapped[int] = mapped_column(Integer)
    place_of_service: Mapped[str] = mapped_column(String(2))
    modifiers: Mapped[str] = mapped_column(String(20))  # space-separated, in claim order

    visit: Mapped[Visit] = relationship(back_populates="services")

    __table_args__ = (UniqueConstraint("visit_id", "cpt_code"),)


class CalendarFeed(db.Model):
    """A secret, revocable ICS address per user; only the token's hash is kept."""

    __tablename__ = "calendar_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
