"""The billing workbench: every billable line (RTM and visit charges) with billing's status, notes on
lines, the fee schedule per payer, export batches and the X12 control numbers they used."""

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

from telerehab.accounts.models import Patient, User
from telerehab.db_types import UTCDateTime
from telerehab.extensions import db


class BillingLine(db.Model):
    """One line billing staff review and claim: an RTM line the engine produced, or a service of a
    visit whose note is signed. Its source is unique, and the source is unique per code, episode and
    period (RTM) or visit and code (visit charges), so nothing can be billed twice. While `ready` or
    `held` the line follows its source; from `approved` on it is billing's and never changes under
    them. Holds and charge are refreshed with it."""

    __tablename__ = "billing_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(5))  # rtm, visit
    rtm_line_id: Mapped[int | None] = mapped_column(ForeignKey("rtm_billable_lines.id"), unique=True)
    service_line_id: Mapped[int | None] = mapped_column(ForeignKey("service_lines.id"), unique=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), index=True)
    rendering_id: Mapped[int] = mapped_column(ForeignKey("users.id"))  # the PT the line is billed under
    payer_type: Mapped[str] = mapped_column(String(30))
    month: Mapped[str] = mapped_column(String(7))  # "2026-03": the month of the last date of service
    code: Mapped[str] = mapped_column(String(5))
    modifiers: Mapped[str] = mapped_column(String(20))  # space-separated, claim order
    units: Mapped[int] = mapped_column(Integer)
    service_from: Mapped[date] = mapped_column(Date)
    service_to: Mapped[date] = mapped_column(Date)
    place_of_service: Mapped[str] = mapped_column(String(2))
    charge_cents: Mapped[int | None] = mapped_column(Integer)  # None: no fee on the payer's schedule
    status: Mapped[str] = mapped_column(String(12))
    holds: Mapped[list] = mapped_column(JSON)  # [{kind, reason, release}], telerehab.billing.rules.Hold
    manual_hold: Mapped[str | None] = mapped_column(Text)  # billing's own hold reason: kept across refreshes
    claim_number: Mapped[str | None] = mapped_column(String(38))  # CLM01 of its claim in its live batch
    payer_claim_number: Mapped[str | None] = mapped_column(String(50))  # the payer's, for corrections
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    patient: Mapped[Patient] = relationship()
    rendering: Mapped[User] = relationship(foreign_keys=[rendering_id])
    notes: Mapped[list[BillingLineNote]] = relationship(order_by="BillingLineNote.created_at")

    __table_args__ = (
        CheckConstraint("(source = 'rtm' AND rtm_line_id IS NOT NULL AND service_line_id IS NULL) OR "
                        "(source = 'visit' AND service_line_id IS NOT NULL AND rtm_line_id IS NULL)",
                        name="one_source"),
        CheckConstraint("status IN ('ready', 'held', 'approved', 'exported', 'submitted', 'paid', 'denied', "
                        "'void', 'withdrawn')", name="status"),
        CheckConstraint("units > 0", name="units_positive"),
        Index("ix_billing_lines_month", "organisation_id", "month", "status"),
    )


class BillingLineNote(db.Model):
    __tablename__ = "billing_line_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("billing_lines.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    author: Mapped[User] = relationship()


class Fee(db.Model):
    """What the organisation charges a kind of payer for one code, per unit."""

    __tablename__ = "fee_schedule"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    payer_type: Mapped[str] = mapped_column(String(30))
    code: Mapped[str] = mapped_column(String(5))
    amount_cents: Mapped[int] = mapped_column(Integer)
    updated_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("organisation_id", "payer_type", "code"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
    )


class ExportBatch(db.Model):
    """Lines exported together. The files are written once, by the export job, and kept: exporting
    the batch again serves the same bytes. A replacement (7) or void (8) batch carries one claim."""

    __tablename__ = "export_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    # One billing provider (the clinic's NPI and TIN) and one receiver (the payer's) per interchange.
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    payer_type: Mapped[str] = mapped_column(String(30))
    month: Mapped[str | None] = mapped_column(String(7))
    frequency: Mapped[str] = mapped_column(String(1))  # 1 original, 7 replacement, 8 void
    corrects_claim_number: Mapped[str | None] = mapped_column(String(38))
    original_claim_number: Mapped[str | None] = mapped_column(String(50))  # the payer's, for REF*F8
    status: Mapped[str] = mapped_column(String(12))  # queued, running, ready, failed, cancelled
    line_count: Mapped[int] = mapped_column(Integer)
    claim_count: Mapped[int] = mapped_column(Integer, default=0)
    total_cents: Mapped[int] = mapped_column(Integer)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    error_field: Mapped[str | None] = mapped_column(String(200))
    usage: Mapped[str] = mapped_column(String(1))  # ISA15: T test, P production
    interchange_control_number: Mapped[int | None] = mapped_column(Integer, unique=True)
    x12_sha256: Mapped[str | None] = mapped_column(String(64))
    csv_sha256: Mapped[str | None] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the command line
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # by the export job: a stale one is retried
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'ready', 'failed', 'cancelled')", name="status"),
        CheckConstraint("frequency IN ('1', '7', '8')", name="frequency"),
    )

    @property
    def reference(self) -> str:
        return batch_reference(self.id)


def batch_reference(batch_id: int) -> str:
    """BHT03 and the prefix of every claim number: short, and unique because the id is."""
    return f"TR{batch_id:06d}"


class ExportBatchLine(db.Model):
    """A line's place in a batch. A line is in one live batch at most (a cancelled batch lets its
    lines go; a correction batch takes them over from the batch it corrects)."""

    __tablename__ = "export_batch_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("export_batches.id"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("billing_lines.id"))
    claim_number: Mapped[str | None] = mapped_column(String(38))
    live: Mapped[bool] = mapped_column(Boolean)

    line: Mapped[BillingLine] = relationship()
    batch: Mapped[ExportBatch] = relationship()

    __table_args__ = (
        Index("uq_export_batch_lines_live_line", "line_id", unique=True,
              sqlite_where=text("live"), postgresql_where=text("live")),
    )


class ControlNumber(db.Model):
    """ISA13/GS06 numbers: a row per interchange, numbered by the database, never reused (SQLite's
    AUTOINCREMENT and PostgreSQL's sequence never hand out a number twice)."""

    __tablename__ = "x12_control_numbers"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("export_batches.id"), unique=True)
    allocated_at: Mapped[datetime] = mapped_column(UTCDateTime)
