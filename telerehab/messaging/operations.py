"""Use cases for text messaging: queueing (the outbox), delivery with retries, delivery-status
callbacks, inbound replies, daily reminders, and the staff pages' reads and writes.

Time is always the `now` argument. Writes go through these functions; each commits its own
transaction, except `enqueue_sms`, which joins the caller's so that a text is queued if and only if
its cause is saved.
"""

from __future__ import annotations

import logging
import random
import time as time_module
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import Clinic, Patient, User
from telerehab.accounts.operations import SYSTEM, Actor, active_consent, audit, audit_entry, consent_in_force
from telerehab.accounts.policy import Permission, clinic_scope, require_patient, require_permission
from telerehab.accounts.rules import ConsentKind, normalise_phone
from telerehab.careplans.models import Episode, EpisodeDiagnosis
from telerehab.careplans.rules import EpisodeStatus
from telerehab.errors import DomainError, NotFound, ValidationFailed, field_errors
from telerehab.exercises import operations as exercises
from telerehab.exercises.models import CheckIn  # its local_date is the patient's data day
from telerehab.extensions import db
from telerehab.messaging import rules
from telerehab.messaging.backends import (
    OutgoingSms,
    ProviderError,
    ProviderMessage,
    SmsBackend,
    backend_from_config,
)
from telerehab.messaging.models import InboundMessage, OutboxMessage, PatientSmsSettings
from telerehab.messaging.rules import DeliveryStatus, Intent, Outcome, QuietHours

log = logging.getLogger(__name__)

# Check-ins by SMS carry uuid5(this namespace, MessageSid) as their client id, so a webhook that is
# delivered twice (or processed again after a crash) records one check-in.
SMS_CHECKIN_NAMESPACE = uuid.UUID("6f1d2c3a-8e55-4c1b-9a57-2f7f3f0f5a11")

DEFAULT_REMINDER_TIME = time(18, 0)


# ---------------------------------------------------------------- settings


def quiet_hours() -> QuietHours:
    return rules.parse_quiet_hours(current_app.config.get("SMS_QUIET_HOURS") or "21:00-08:00")


def _config_number(name: str, default: float) -> float:
    value = current_app.config.get(name)
    return float(default if value is None else value)


def public_link(path: str) -> str | None:
    """An absolute link for a text (e.g. a video-slot offer's one-tap page), from PUBLIC_BASE_URL;
    None when it is not set."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    return f"{base.rstrip('/')}/{path.lstrip('/')}" if base else None


def status_callback_url(outbox_id: int) -> str | None:
    """Where Twilio reports delivery; needs the public address (PUBLIC_BASE_URL)."""
    return public_link(f"/twilio/sms/status?o={outbox_id}")


# ---------------------------------------------------------------- queueing


def enqueue_sms(
    patient: Patient, *, kind: str, body: str, idempotency_key: str, now: datetime,
    created_by: User | None = None, expires_at: datetime | None = None, not_before: datetime | None = None,
) -> OutboxMessage | None:
    """Queue a text to `patient` in the caller's transaction (the caller commits it with its cause).

    Returns the row already queued under `idempotency_key` if there is one, and None (queueing
    nothing) when the patient has no SMS consent in force or no mobile number. A text due inside
    the patient's quiet hours is held until they end.
    """
    existing = db.session.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key))
    if existing is not None:
        return existing
    if active_consent(patient, ConsentKind.SMS) is None or not normalise_phone(patient.phone or ""):
        return None
    due = rules.earliest_send_time(max(now, not_before or now), patient.timezone, quiet_hours())
    message = OutboxMessage(
        idempotency_key=idempotency_key, patient_id=patient.id, clinic_id=patient.clinic_id, kind=kind,
        body=body, status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=due, expires_at=expires_at,
        created_at=now, created_by_id=created_by.id if created_by else None, updated_at=now,
    )
    db.session.add(message)
    return message


def _clinical_terms(patient_ids: list[int]) -> dict[int, list[str]]:
    """Each patient's diagnosis codes and episode titles: words no text may carry."""
    terms: dict[int, list[str]] = {pid: [] for pid in patient_ids}
    if not patient_ids:
        return terms
    for pid, title in db.session.execute(
        select(Episode.patient_id, Episode.title).where(Episode.patient_id.in_(patient_ids))
    ):
        terms[pid].append(title)
    for pid, code in db.session.execute(
        select(Episode.patient_id, EpisodeDiagnosis.code)
        .join(EpisodeDiagnosis, EpisodeDiagnosis.episode_id == Episode.id)
        .where(Episode.patient_id.in_(patient_ids))
    ):
        terms[pid].append(code)
    return terms


def send_manual_message(actor: Actor, patient_id: int, data: dict[str, Any], *, now: datetime) -> OutboxMessage:
    """A therapist's text to a patient, through the outbox. `data['request_id']` (made when the form
    was shown) keys it, so a double-submitted form queues one text."""
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.SEND_MESSAGES)
    text = " ".join((data.get("body") or "").split())
    field_errors({"body": rules.body_problem(text)})
    if active_consent(patient, ConsentKind.SMS) is None:
        raise ValidationFailed({"body": [
            "The patient has no SMS consent in force (never given, or they replied STOP): record it first."]})
    if not normalise_phone(patient.phone or ""):
        raise ValidationFailed({"body": ["There is no valid mobile number on file for this patient."]})
    # The therapist's words are checked; the clinic's name in front identifies the sender.
    field_errors({"body": rules.clinical_detail_problem(text, _clinical_terms([patient.id])[patient.id])})
    request_id = data.get("request_id") or uuid.uuid4()
    message = enqueue_sms(patient, kind="manual", body=rules.manual_body(patient.clinic.name, text),
                          idempotency_key=f"manual:{patient.id}:{request_id}", now=now, created_by=actor.user)
    if message not in db.session.new:
        return message  # the same form submitted again: queued once, audited once
    db.session.flush()
    audit(actor, "queue_sms", "sms_outbox", message.id, now=now, patient_id=patient.id, detail="kind=manual")
    db.session.commit()
    return message


# ---------------------------------------------------------------- daily reminders


def sms_settings(patient_id: int) -> PatientSmsSettings:
    """The patient's settings, or unsaved defaults."""
    settings = db.session.scalar(select(PatientSmsSettings).where(PatientSmsSettings.patient_id == patient_id))
    return settings or PatientSmsSettings(patient_id=patient_id, reminders_enabled=True,
                                          reminder_time=DEFAULT_REMINDER_TIME)


def update_sms_settings(actor: Actor, patient_id: int, data: dict[str, Any], *, now: datetime) -> PatientSmsSettings:
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.SEND_MESSAGES)
    reminder_time = data["reminder_time"]
    field_errors({"reminder_time": rules.reminder_time_problem(reminder_time, quiet_hours())})
    settings = sms_settings(patient.id)
    settings.reminder_time = reminder_time
    settings.reminders_enabled = data["reminders_enabled"]
    settings.updated_at, settings.updated_by_id = now, actor.user.id
    db.session.add(settings)
    db.session.flush()
    audit(actor, "update", "sms_settings", settings.id, now=now, patient_id=patient.id,
          detail=f"reminder_time={reminder_time:%H:%M} enabled={settings.reminders_enabled}")
    db.session.commit()
    return settings


def _checked_in_on(patient_day: dict[int, Any]) -> set[int]:
    """Which of these patients already have a check-in on their given local day."""
    if not patient_day:
        return set()
    rows = db.session.execute(
        select(CheckIn.patient_id, CheckIn.local_date).where(CheckIn.patient_id.in_(list(patient_day)))
        .where(CheckIn.local_date.in_(set(patient_day.values())))
    )
    return {pid for pid, day in rows if patient_day.get(pid) == day}


@dataclass
class ReminderRun:
    queued: int = 0
    already_queued: int = 0
    checked_in: int = 0
    withheld: int = 0  # the body would have named a diagnosis or the plan: never sent


def enqueue_daily_reminders(*, now: datetime) -> ReminderRun:
    """Job: queue one reminder per patient per local day, once the patient's reminder time has
    passed, for patients with an active episode and SMS consent who have not checked in that day.
    Keyed by patient and date, so any number of runs queue each reminder once."""
    sms_consent = consent_in_force(Patient.id, ConsentKind.SMS)
    active_episode = exists().where(Episode.patient_id == Patient.id, Episode.status == EpisodeStatus.ACTIVE)
    candidates = db.session.execute(
        select(Patient, PatientSmsSettings)
        .outerjoin(PatientSmsSettings, PatientSmsSettings.patient_id == Patient.id)
        .where(sms_consent, active_episode, Patient.phone.is_not(None))
        .where(or_(PatientSmsSettings.id.is_(None), PatientSmsSettings.reminders_enabled.is_(True)))
        .options(selectinload(Patient.clinic), selectinload(Patient.consents))
        .order_by(Patient.id)
    ).all()
    due: dict[int, tuple[Patient, date, time]] = {}
    for patient, settings in candidates:
        reminder_time = settings.reminder_time if settings else DEFAULT_REMINDER_TIME
        day = rules.reminder_due_day(now, patient.timezone, reminder_time)
        if day is not None:
            due[patient.id] = (patient, day, reminder_time)
    run = ReminderRun()
    keys = {pid: rules.reminder_key(pid, day) for pid, (_, day, _) in due.items()}
    queued_keys = set(db.session.scalars(
        select(OutboxMessage.idempotency_key).where(OutboxMessage.idempotency_key.in_(list(keys.values())))
    )) if keys else set()
    done = _checked_in_on({pid: day for pid, (_, day, _) in due.items() if keys[pid] not in queued_keys})
    terms = _clinical_terms([pid for pid in due if keys[pid] not in queued_keys and pid not in done])
    for pid, (patient, day, reminder_time) in due.items():
        if keys[pid] in queued_keys:
            run.already_queued += 1
            continue
        if pid in done:
            run.checked_in += 1
            continue
        body = rules.reminder_body(patient.clinic.name)
        # Everything after the clinic's name (which identifies the sender) is checked.
        if rules.clinical_detail_problem(body.removeprefix(patient.clinic.name), terms[pid]):
            log.warning("reminder withheld for patient %s: the body would name clinical detail", pid)
            run.withheld += 1
            continue
        next_due = rules.local_instant(day + timedelta(days=1), reminder_time, ZoneInfo(patient.timezone))
        message = enqueue_sms(patient, kind="reminder", body=body, idempotency_key=keys[pid], now=now,
                              expires_at=next_due)  # tomorrow's reminder replaces an unsent one
        if message is None:
            continue
        try:
            db.session.flush()
            db.session.add(audit_entry(SYSTEM, "queue_sms", "sms_outbox", message.id, now, pid, "kind=reminder"))
            db.session.commit()
        except IntegrityError:  # another run queued it a moment ago
            db.session.rollback()
            run.already_queued += 1
            continue
        run.queued += 1
    db.session.commit()
    return run


# ---------------------------------------------------------------- delivery


@dataclass
class DeliveryRun:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    held: int = 0  # waiting for the end of quiet hours
    recovered: int = 0  # found at the provider after a lost attempt: not sent again
    uncertain: int = 0
    details: list[str] = field(default_factory=list)


def _backoff(attempt: int, rand: Callable[[], float]) -> timedelta:
    return rules.backoff_delay(
        max(attempt, 1),
        base_seconds=_config_number("OUTBOX_BACKOFF_BASE_SECONDS", 30),
        max_seconds=_config_number("OUTBOX_BACKOFF_MAX_SECONDS", 3600),
        jitter=_config_number("OUTBOX_BACKOFF_JITTER", 0.2),
        random_fraction=rand(),
    )


def deliver_due(
    *, now: datetime, backend: SmsBackend | None = None, rand: Callable[[], float] = random.random,
    limit: int = 200,
) -> DeliveryRun:
    """Job: send the texts that are due, at most once each.

    For each due row: a row in `sending` (an attempt whose outcome was lost: a crash, a timeout, a
    5xx) is first looked up at the provider and marked sent if the provider has it; only if the
    provider has no record is it sent again. Before a send the row is marked `sending` and that is
    committed, then the provider is called, then the outcome is committed. 429 and refused
    connections are retried with exponential backoff; permanent 4xx are recorded as failed.
    """
    backend = backend or backend_from_config(current_app.config)
    run = DeliveryRun()
    ids = list(db.session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
               OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit)
    ))
    db.session.commit()
    # Every claim of this run is stamped with `now`, and its lease runs from there: claims stop
    # halfway through the lease, so that no attempt still in flight outlives its lease (and is
    # looked up and resent by another run). The rest wait for the next run.
    budget = _lease().total_seconds() / 2
    started = time_module.monotonic()
    for outbox_id in ids:
        if time_module.monotonic() - started > budget:
            break
        _deliver_one(outbox_id, backend=backend, now=now, rand=rand, run=run)
    return run


def _max_attempts() -> int:
    return int(_config_number("OUTBOX_MAX_ATTEMPTS", 8))


def _lease() -> timedelta:
    return timedelta(seconds=_config_number("OUTBOX_SENDING_LEASE_SECONDS", 120))


def _outgoing(message: OutboxMessage, now: datetime) -> OutgoingSms:
    known = frozenset(db.session.scalars(
        select(OutboxMessage.provider_sid).where(
            OutboxMessage.to_phone == message.to_phone, OutboxMessage.provider_sid.is_not(None),
            OutboxMessage.id != message.id)
    ))
    return OutgoingSms(
        idempotency_key=message.idempotency_key, to_phone=message.to_phone or "", body=message.body,
        attempt_at=now, first_attempt_at=message.first_attempt_at or now,
        status_callback=status_callback_url(message.id), known_sids=known,
    )


def _finish(message: OutboxMessage, status: DeliveryStatus, now: datetime, *, error: str | None = None,
            provider: ProviderMessage | None = None) -> None:
    message.status = status
    message.updated_at = now
    if error is not None:
        message.last_error = error[:1000]
    if provider is not None:
        message.provider_sid = provider.sid
        message.provider_status = provider.status
        message.sent_at = message.sent_at or now
        provider_status = rules.status_after_callback(status, provider.status)
        if provider_status is not None:  # the look-up already says delivered (or failed)
            message.status = provider_status
    if message.status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED):
        db.session.add(audit_entry(SYSTEM, f"sms_{message.status}", "sms_outbox", message.id, now,
                                   message.patient_id, f"kind={message.kind} attempts={message.attempts}"))


def _deliver_one(outbox_id: int, *, backend: SmsBackend, now: datetime, rand, run: DeliveryRun) -> None:
    message = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.id == outbox_id).execution_options(populate_existing=True)
    )
    if message is None or message.status not in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING) or (
        message.next_attempt_at > now
    ):
        db.session.rollback()
        return
    if message.status == DeliveryStatus.SENDING:
        # An attempt whose outcome we lost. Ask the provider before anything is sent again.
        try:
            found = backend.find_sent(_outgoing(message, now))
        except ProviderError as error:
            message.next_attempt_at = now + _backoff(message.attempts, rand)
            message.last_error = f"checking an earlier attempt: {error}"[:1000]
            message.updated_at = now
            db.session.commit()
            run.uncertain += 1
            return
        if found is not None:
            _finish(message, DeliveryStatus.SENT, now, provider=found)
            db.session.commit()
            run.recovered += 1
            return
        # The provider never got it: it is safe to send (again).
    patient = message.patient
    stop = _reason_not_to_send(message, patient, now)
    if stop is not None:
        status, reason = stop
        _finish(message, status, now, error=reason)
        db.session.commit()
        if status == DeliveryStatus.CANCELLED:
            run.cancelled += 1
        else:
            run.failed += 1
        return
    quiet_end = rules.quiet_hours_end(now, patient.timezone, quiet_hours())
    if quiet_end is not None:
        message.status = DeliveryStatus.QUEUED  # from `sending` too: the provider has no copy
        message.next_attempt_at = quiet_end
        message.updated_at = now
        db.session.commit()
        run.held += 1
        return
    # Claim: `sending` is committed before the provider is called. The compare-and-set on status
    # and attempts makes one deliverer win when two run at once.
    attempt = message.attempts + 1
    claimed = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.status == message.status,
               OutboxMessage.attempts == message.attempts)
        .values(status=DeliveryStatus.SENDING, attempts=attempt, next_attempt_at=now + _lease(),
                to_phone=normalise_phone(patient.phone), first_attempt_at=func.coalesce(
                    OutboxMessage.first_attempt_at, now), updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if claimed != 1:
        return
    message = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.id == outbox_id).execution_options(populate_existing=True)
    )
    outgoing = _outgoing(message, now)
    db.session.commit()  # nothing is held open while the provider is called
    try:
        sent = backend.send(outgoing)
    except ProviderError as error:
        message = db.session.get(OutboxMessage, outbox_id, populate_existing=True)
        _after_error(message, error, attempt, now, rand, run)
        db.session.commit()
        return
    message = db.session.get(OutboxMessage, outbox_id, populate_existing=True)
    _finish(message, DeliveryStatus.SENT, now, provider=sent)
    db.session.commit()
    run.sent += 1


def _after_error(message: OutboxMessage, error: ProviderError, attempt: int, now: datetime, rand,
                 run: DeliveryRun) -> None:
    message.last_error = str(error)[:1000]
    message.updated_at = now
    if error.outcome == Outcome.FAILED:
        _finish(message, DeliveryStatus.FAILED, now)
        run.failed += 1
    elif error.outcome == Outcome.UNCERTAIN:
        # Stay in `sending`: the next run asks the provider before sending again.
        message.next_attempt_at = now + _backoff(attempt, rand)
        run.uncertain += 1
    elif attempt >= _max_attempts():
        _finish(message, DeliveryStatus.FAILED, now, error=f"gave up after {attempt} attempts: {error}")
        run.failed += 1
    else:
        message.status = DeliveryStatus.QUEUED
        message.next_attempt_at = now + _backoff(attempt, rand)
        run.retried += 1


def _reason_not_to_send(message: OutboxMessage, patient: Patient, now: datetime) -> tuple[DeliveryStatus, str] | None:
    if message.expires_at is not None and message.expires_at <= now:
        return DeliveryStatus.CANCELLED, "expired before it could be sent"
    if active_consent(patient, ConsentKind.SMS) is None:
        return DeliveryStatus.CANCELLED, "no SMS consent in force"
    if not normalise_phone(patient.phone or ""):
        return DeliveryStatus.FAILED, "no valid mobile number on file"
    if message.attempts >= _max_attempts():
        return DeliveryStatus.FAILED, f"gave up after {message.attempts} attempts: {message.last_error or ''}"
    return None


def apply_status_callback(params: dict[str, str], *, outbox_id: int | None, now: datetime) -> OutboxMessage | None:
    """Twilio's delivery report (signature already verified): move the row forward, never back."""
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    provider_status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    if not sid:
        return None
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.provider_sid == sid))
    if message is None and outbox_id is not None:
        # A send whose answer we never committed (a crash right after the provider took it): the
        # callback names the row, so it is recorded as sent and is never sent again.
        candidate = db.session.get(OutboxMessage, outbox_id)
        if candidate is not None and candidate.provider_sid is None and candidate.status == DeliveryStatus.SENDING:
            message = candidate
            message.provider_sid = sid
            message.sent_at = now
            message.status = DeliveryStatus.SENT
    if message is None:
        db.session.rollback()
        return None
    message.provider_status = provider_status or message.provider_status
    new = rules.status_after_callback(message.status, provider_status)
    if new is not None:
        error_code = params.get("ErrorCode")
        _finish(message, new, now, error=f"Twilio error {error_code}" if error_code else None)
    message.updated_at = now
    db.session.commit()
    return message


# ---------------------------------------------------------------- inbound


def _patients_with_phone(phone: str | None) -> list[Patient]:
    if not phone:
        return []
    return list(db.session.scalars(
        select(Patient).where(Patient.phone == phone).options(selectinload(Patient.consents))
        .order_by(Patient.id)
    ))


def _match_patient(patients: list[Patient]) -> tuple[Patient | None, int | None]:
    """The one patient a number belongs to, and the clinic whose staff read the message.

    Several patients may share a number (a carer, a couple). The one with SMS consent in force is
    taken; if none has it, the one who ever had it (a START after a STOP). Otherwise no patient is
    guessed at (never a check-in on the wrong record): the message goes to their clinic unattached,
    or stays unmatched when they are in different clinics.
    """
    if len(patients) == 1:
        return patients[0], patients[0].clinic_id
    pool = [p for p in patients if active_consent(p, ConsentKind.SMS) is not None]
    if not pool:
        pool = [p for p in patients if any(c.kind == ConsentKind.SMS for c in p.consents)]
    if len(pool) == 1:
        return pool[0], pool[0].clinic_id
    clinics = {p.clinic_id for p in (pool or patients)}
    return None, clinics.pop() if len(clinics) == 1 else None


def receive_sms(actor: Actor, params: dict[str, str], *, now: datetime) -> InboundMessage:
    """An SMS from the provider's webhook (its signature already verified by the caller).

    Stored once per MessageSid; a replay of a processed message changes nothing and gets the same
    answer. Check-ins go to the exercises domain; STOP revokes SMS consent at once; anything not
    understood is kept, unread, for the clinic's staff, and the sender gets a short help text.
    """
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    if not sid:
        raise ValidationFailed({"MessageSid": ["Missing."]})
    message = _inbound_by_sid(sid)
    if message is None:
        message = InboundMessage(
            message_sid=sid, from_phone=(params.get("From") or "")[:32], to_phone=(params.get("To") or "")[:32],
            body=params.get("Body") or "", received_at=now, needs_attention=False,
        )
        db.session.add(message)
        try:
            db.session.commit()
        except IntegrityError:  # the same webhook, delivered twice at once
            db.session.rollback()
            message = _inbound_by_sid(sid)
    if message.processed_at is not None:
        return message
    _process(actor, message, now=now)
    return message


def _inbound_by_sid(sid: str) -> InboundMessage | None:
    return db.session.scalar(
        select(InboundMessage).where(InboundMessage.message_sid == sid).execution_options(populate_existing=True)
    )


def _process(actor: Actor, message: InboundMessage, *, now: datetime) -> None:
    patient, clinic_id = _match_patient(_patients_with_phone(normalise_phone(message.from_phone)))
    message.patient_id = patient.id if patient else None
    message.clinic_id = clinic_id
    clinic = patient.clinic if patient else (db.session.get(Clinic, clinic_id) if clinic_id else None)
    clinic_name, clinic_phone = (clinic.name, clinic.phone) if clinic else (None, None)
    parsed = rules.parse_reply(message.body)

    # Twilio answers its own opt-out and opt-in keywords itself (and, after an opt-out, refuses any
    # answer of ours), so those get an empty TwiML document.
    silent = parsed.keyword and parsed.intent in (Intent.OPT_OUT, Intent.OPT_IN)
    attention = True  # what a person should see; only what was handled in full is not
    if patient is None:
        outcome = "ambiguous_sender" if clinic_id else "unknown_sender"
        detail = "several patients have this number" if clinic_id else "no patient has this number"
        if parsed.intent == Intent.OPT_OUT:
            # A STOP from a number stops texts to that number, whoever among them we were writing to.
            for candidate in _patients_with_phone(normalise_phone(message.from_phone)):
                _opt_out(actor, candidate, message, now)
            detail += "; SMS consent revoked for each (they replied STOP)"
            reply = None if silent else rules.OPT_OUT_CONFIRMATION
        elif silent:
            reply = None
        elif clinic_id:
            reply = rules.not_understood_reply(clinic_name, clinic_phone, None)
        else:
            reply = rules.UNKNOWN_SENDER_REPLY
    elif parsed.intent == Intent.OPT_OUT:
        outcome, detail = _opt_out(actor, patient, message, now)
        reply = None if silent else rules.OPT_OUT_CONFIRMATION
    elif parsed.intent == Intent.OPT_IN:
        outcome = "opt_in_request"
        detail = ("asks to receive texts again: record SMS consent on the patient's page"
                  if active_consent(patient, ConsentKind.SMS) is None else None)
        reply = None if silent else rules.help_reply(clinic_name, clinic_phone)
    elif parsed.intent == Intent.HELP:
        outcome, detail = "help", None
        reply = rules.help_reply(clinic_name, clinic_phone)
    elif parsed.intent == Intent.CHECKIN:
        outcome, detail, reply, attention = _record_checkin(actor, patient, message, parsed, now)
    else:
        outcome, detail = "not_understood", parsed.problem
        reply = rules.not_understood_reply(clinic_name, clinic_phone, parsed.problem)

    message = db.session.get(InboundMessage, message.id) or message
    message.patient_id = patient.id if patient else None
    message.clinic_id = clinic_id
    message.intent = parsed.intent
    message.outcome = outcome
    message.outcome_detail = detail
    message.needs_attention = attention
    message.reply = reply
    message.processed_at = now
    db.session.add(audit_entry(actor, "receive_sms", "sms_inbound", message.id, now,
                               message.patient_id, f"intent={parsed.intent} outcome={outcome}"))
    db.session.commit()


def _opt_out(actor: Actor, patient: Patient, message: InboundMessage, now: datetime) -> tuple[str, str]:
    """STOP: the patient's SMS consent is revoked at once, through accounts (which audits it), and
    every text still queued for them is cancelled."""
    consent = active_consent(patient, ConsentKind.SMS)
    if consent is not None:
        try:
            accounts.revoke_consent(actor, consent.id, note=f"Patient replied {message.body.strip()[:20]!r} by SMS",
                                    now=now)
        except ValidationFailed:  # revoked a moment ago (the same STOP, delivered twice)
            db.session.rollback()
    cancelled = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.patient_id == patient.id, OutboxMessage.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.CANCELLED, last_error="the patient opted out by SMS", updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return "opted_out", f"SMS consent revoked; {cancelled} queued text(s) cancelled"


def _record_checkin(actor: Actor, patient: Patient, message: InboundMessage, parsed: rules.Reply, now: datetime):
    data = {
        "client_id": uuid.uuid5(SMS_CHECKIN_NAMESPACE, message.message_sid),
        "recorded_at": now, "pain": parsed.pain, "difficulty": None,
        "note": message.body.strip() or None, "exercises": [],
        "all_done": parsed.done,  # DONE: every exercise of the day, as prescribed
    }
    try:
        checkin, _created = exercises.record_checkin(actor, patient.id, data, source="sms", now=now)
    except DomainError as error:  # no active episode, RTM not consented, ...
        db.session.rollback()
        errors = getattr(error, "errors", None)
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()) if errors else str(error)
        return "checkin_refused", detail[:1000], rules.checkin_refused_reply(), True
    message.checkin_id = checkin.id
    return "checkin_recorded", None, rules.checkin_reply(parsed.pain), False


# ---------------------------------------------------------------- pages


def _audit_inbound_reads(actor: Actor, messages: list[InboundMessage], now: datetime) -> None:
    db.session.add_all(audit_entry(actor, "read", "sms_inbound", m.id, now, m.patient_id) for m in messages)
    db.session.commit()


def inbox(actor: Actor, *, include_read: bool, now: datetime, limit: int = 200) -> list[InboundMessage]:
    """Inbound texts for the clinics the user works in: the unread ones (or the latest of all)."""
    require_permission(actor.user, Permission.VIEW_MESSAGES)
    query = (
        select(InboundMessage)
        .where(InboundMessage.clinic_id.in_(clinic_scope(actor.user, select(Clinic.id))))
        .options(selectinload(InboundMessage.patient), selectinload(InboundMessage.clinic),
                 selectinload(InboundMessage.read_by))
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc()).limit(limit)
    )
    if not include_read:
        query = query.where(InboundMessage.needs_attention.is_(True), InboundMessage.read_at.is_(None))
    messages = list(db.session.scalars(query))
    _audit_inbound_reads(actor, messages, now)
    return messages


def unread_count(actor: Actor) -> int:
    return db.session.scalar(
        select(func.count()).select_from(InboundMessage).where(
            InboundMessage.clinic_id.in_(clinic_scope(actor.user, select(Clinic.id))),
            InboundMessage.needs_attention.is_(True), InboundMessage.read_at.is_(None))
    ) or 0


def mark_read(actor: Actor, message_id: int, *, now: datetime) -> InboundMessage:
    require_permission(actor.user, Permission.VIEW_MESSAGES)
    message = db.session.get(InboundMessage, message_id)
    allowed_clinics = set(db.session.scalars(clinic_scope(actor.user, select(Clinic.id))))
    if message is None or message.clinic_id not in allowed_clinics:
        raise NotFound("No such message.")
    if message.patient is not None:
        require_patient(actor.user, message.patient, Permission.VIEW_MESSAGES)
    if message.read_at is None:
        message.read_at, message.read_by_id = now, actor.user.id
        audit(actor, "mark_read", "sms_inbound", message.id, now=now, patient_id=message.patient_id)
        db.session.commit()
    return message


@dataclass(frozen=True)
class Conversation:
    patient: Patient
    outgoing: list[OutboxMessage]
    incoming: list[InboundMessage]
    settings: PatientSmsSettings
    has_consent: bool
    phone_ok: bool
    quiet: QuietHours


def conversation(actor: Actor, patient_id: int, *, now: datetime, limit: int = 100) -> Conversation:
    """A patient's texts both ways, for the patient's messages page."""
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.VIEW_MESSAGES)
    outgoing = list(db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)
        .options(selectinload(OutboxMessage.created_by))
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc()).limit(limit)
    ))
    incoming = list(db.session.scalars(
        select(InboundMessage).where(InboundMessage.patient_id == patient.id)
        .options(selectinload(InboundMessage.read_by))
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc()).limit(limit)
    ))
    accounts.audit_patient_reads(actor, "read_messages", [patient], now=now)
    return Conversation(
        patient=patient, outgoing=outgoing, incoming=incoming, settings=sms_settings(patient.id),
        has_consent=active_consent(patient, ConsentKind.SMS) is not None,
        phone_ok=bool(normalise_phone(patient.phone or "")), quiet=quiet_hours(),
    )


def outbox_counts() -> dict[str, int]:
    """Rows per status (for the command line)."""
    return dict(db.session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    ).all())

