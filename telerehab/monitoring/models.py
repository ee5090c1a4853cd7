"""RTM enrolments, management time, RPM periods recorded on the patient, the patient's
year-to-date therapy amount, billable lines, alerts, the clinic's alert thresholds and running timers."""

from __future__ import annotations

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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telerehab.accounts.models import Consent, Patient, User
from telerehab.careplans.models import Episode
from telerehab.db_types import UTCDateTime
from telerehab.extensions import db


class RtmEnrolment(db.Model):
    """An episode's remote therapeutic monitoring: consent, what is monitored and with what, the
    set-up and education session (98975), and the monitored days (start to end). Opting out ends
    monitoring; the data already collected stays."""

    __tablename__ = "rtm_enrolments"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    status: Mapped[str] = mapped_column(String(12))  # active, ended, opted_out
    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id"))
    cost_sharing_notice_shown_at: Mapped[datetime] = mapped_column(UTCDateTime)
    monitored_system: Mapped[str] = mapped_column(String(20))
    device_name: Mapped[str] = mapped_column(String(120))  # the software or device (FDA-defined)
    device_identifier: Mapped[str | None] = mapped_column(String(80))  # UDI / product id
    setup_date: Mapped[date | None] = mapped_column(Date)
    setup_minutes: Mapped[int | None] = mapped_column(Integer)
    setup_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    setup_by_role: Mapped[str | None] = mapped_column(String(20))  # therapist or assistant, as then
    monitoring_start: Mapped[date] = mapped_column(Date)
    monitoring_end: Mapped[date | None] = mapped_column(Date)  # the last monitored day
    end_reason: Mapped[str | None] = mapped_column(String(20))  # discharged, opted_out, ended
    baseline_pain: Mapped[int | None] = mapped_column(Integer)
    # Digests of the inputs of its last evaluation (operations.Signature): the nightly run skips
    # it while they stand.
    evaluated_signature: Mapped[str | None] = mapped_column(String(128))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    episode: Mapped[Episode] = relationship()
    patient: Mapped[Patient] = relationship()
    consent: Mapped[Consent] = relationship()
    setup_by: Mapped[User | None] = relationship(foreign_keys=[setup_by_id])

    __table_args__ = (
        # One monitoring at a time per patient: one biller, and no data day counted twice.
        Index("uq_rtm_enrolments_active_patient", "patient_id", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
        CheckConstraint("status IN ('active', 'ended', 'opted_out')", name="status"),
    )


class ManagementTimeEntry(db.Model):
    """Minutes of RTM treatment management. An entry is voided, never deleted."""

    __tablename__ = "rtm_time_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("rtm_enrolments.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    service_date: Mapped[date] = mapped_column(Date)
    minutes: Mapped[int] = mapped_column(Integer)
    activity: Mapped[str] = mapped_column(String(20))
    staff_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    staff_role: Mapped[str] = mapped_column(String(20))  # the role when the time was spent
    interactive: Mapped[bool] = mapped_column(Boolean)
    channel: Mapped[str | None] = mapped_column(String(10))
    linked_visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    staff: Mapped[User] = relationship(foreign_keys=[staff_id])

    __table_args__ = (CheckConstraint("minutes > 0 AND minutes <= 600", name="minutes_range"),)


class RpmPeriod(db.Model):
    """Remote physiologic monitoring billed for the patient (by anyone): RTM over it is held."""

    __tablename__ = "rtm_rpm_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(20))  # attestation, denial, other
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TherapyAmount(db.Model):
    """The patient's year-to-date therapy amount (from the MAC's threshold inquiry), for KX."""

    __tablename__ = "therapy_amounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    year: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[date] = mapped_column(Date)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("patient_id", "year"),)


class RtmBillableLine(db.Model):
    """What the engine decided for one slot of an episode's period or month (reason and evidence
    kept whether billable or not). The unique constraint makes a second line for the same slot
    (device code, set-up, management, each 98981 unit) and period impossible, whoever writes it.
    The engine updates a line while it is `ready`, `held` or `not_billable`; billing staff's later
    statuses freeze it."""

    __tablename__ = "rtm_billable_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("rtm_enrolments.id"), index=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    slot: Mapped[str] = mapped_column(String(12))  # setup, device, management, addon:<n>
    period_key: Mapped[str] = mapped_column(String(10))  # "2026-03-02" (period), "2026-03" (month), "episode"
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    code: Mapped[str | None] = mapped_column(String(5))
    units: Mapped[int] = mapped_column(Integer, default=0)
    modifiers: Mapped[str] = mapped_column(String(20), default="")  # space-separated, claim order
    service_date: Mapped[date | None] = mapped_column(Date)
    place_of_service: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16))  # ready, held, not_billable (then billing's own)
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict] = mapped_column(JSON)
    fingerprint: Mapped[str | None] = mapped_column(String(64))  # of the content: a re-run compares this
    inputs: Mapped[str | None] = mapped_column(String(40))  # digest of what it was decided from
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("episode_id", "slot", "period_key", name="uq_rtm_billable_lines_slot"),
        Index("ix_rtm_billable_lines_status", "status", "service_date"),
    )


class RtmAlert(db.Model):
    __tablename__ = "rtm_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("rtm_enrolments.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    kind: Mapped[str] = mapped_column(String(20))
    day: Mapped[date] = mapped_column(Date)
    detail: Mapped[dict] = mapped_column(JSON)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient] = relationship()

    __table_args__ = (
        UniqueConstraint("enrolment_id", "kind", "day"),
        Index("ix_rtm_alerts_clinic_open", "clinic_id", "acknowledged_at"),
    )


class MonitoringSettings(db.Model):
    """A clinic's alert thresholds; a clinic without a row has the defaults."""

    __tablename__ = "rtm_clinic_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), unique=True)
    pain_at_or_above: Mapped[int] = mapped_column(Integer, default=7)
    rise_over_baseline: Mapped[int] = mapped_column(Integer, default=2)
    rise_days: Mapped[int] = mapped_column(Integer, default=2)
    no_checkin_days: Mapped[int] = mapped_column(Integer, default=3)
    at_risk_slack_days: Mapped[int] = mapped_column(Integer, default=3)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RtmTimer(db.Model):
    """A running management-time stopwatch: one per staff member, kept server-side so that a
    closed tab loses nothing."""

    __tablename__ = "rtm_timers"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("rtm_enrolments.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
