"""Text messages: the outbox of outgoing SMS, inbound replies, per-patient SMS settings, and the
log backend's record of what it "sent"."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, Time
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telerehab.accounts.models import Clinic, Patient, User
from telerehab.db_types import UTCDateTime
from telerehab.extensions import db


class OutboxMessage(db.Model):
    """An outgoing SMS, written in the same transaction as its cause and sent by the delivery job.

    `idempotency_key` names the cause (a reminder for a patient and day, a therapist's message, a
    video-slot offer), so the same cause can never queue two texts. `status` moves
    queued -> sending -> sent -> delivered (or failed / cancelled); `sending` is committed before the
    provider is called, so a row found in `sending` later may have been sent, and the provider is
    asked before it is sent again.
    """

    __tablename__ = "sms_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # reminder, manual, video_offer, ...
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the job looks at the row next: the send time (after quiet hours or a backoff), or for a
    # row in `sending`, when the attempt in flight counts as lost and is checked with the provider.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # not worth sending after this
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    to_phone: Mapped[str | None] = mapped_column(String(16))  # the number of the latest attempt
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    provider_status: Mapped[str | None] = mapped_column(String(20))  # Twilio's own word, as reported
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    patient: Mapped[Patient] = relationship()
    clinic: Mapped[Clinic] = relationship()
    created_by: Mapped[User | None] = relationship()

    __table_args__ = (Index("ix_sms_outbox_status_next_attempt_at", "status", "next_attempt_at"),)


class InboundMessage(db.Model):
    """An SMS a patient (or anyone) sent us, keyed by the provider's MessageSid: a webhook that is
    delivered twice stores one row. Nothing is dropped: what was not understood waits, unread, for
    the therapist."""

    __tablename__ = "sms_inbound"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_phone: Mapped[str] = mapped_column(String(32))
    to_phone: Mapped[str | None] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The patient whose number sent it; None when no patient, or several, have that number.
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    # The clinic whose staff read it; None only when the number matches no patient at all.
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"))
    intent: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str | None] = mapped_column(String(30))
    outcome_detail: Mapped[str | None] = mapped_column(Text)
    checkin_id: Mapped[int | None] = mapped_column(Integer)  # the check-in it recorded, if any
    reply: Mapped[str | None] = mapped_column(Text)  # what we answered, so a replay answers the same
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient | None] = relationship()
    clinic: Mapped[Clinic | None] = relationship()
    read_by: Mapped[User | None] = relationship()

    __table_args__ = (Index("ix_sms_inbound_clinic_attention", "clinic_id", "needs_attention", "read_at"),)

    @property
    def is_unread(self) -> bool:
        return self.needs_attention and self.read_at is None


class PatientSmsSettings(db.Model):
    """A patient's text-message preferences; a patient without a row has the defaults."""

    __tablename__ = "sms_patient_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    reminders_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    reminder_time: Mapped[time] = mapped_column(Time, default=time(18, 0))  # patient's local time
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class SmsLogEntry(db.Model):
    """The log backend's "provider": every text it would have sent, for the demo and the tests."""

    __tablename__ = "sms_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    to_phone: Mapped[str] = mapped_column(String(16))
    from_phone: Mapped[str | None] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
