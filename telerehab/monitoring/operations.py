"""Use cases of remote therapeutic monitoring: enrolment, management time, the set-based
evaluation that writes billable lines, alerts, and what the RTM panel and triage inbox show.

Every function takes `now`. Staff-facing functions take the acting user (`actor`), check policy,
audit and commit. The evaluation is set-based: a fixed number of queries whatever the number of
patients (data days are counted per enrolment and 30-day period in SQL), the rules decide in
Python, and lines are written insert-if-absent / update-if-changed under a unique constraint, in
batches that each commit whole, so a run that dies halfway and runs again leaves the same lines.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from telerehab.accounts.models import Clinic, Patient, User
from telerehab.accounts.operations import SYSTEM, Actor, active_consent, audit, audit_entry
from telerehab.accounts.policy import (
    Permission,
    can_use_clinic,
    has_permission,
    patient_scope,
    require_patient,
    require_permission,
)
from telerehab.accounts.rules import CLINICAL_ROLES, ConsentKind, Role
from telerehab.billing import rules as billing
from telerehab.billing.rules import (
    CqAttribution,
    DeviceDos,
    ManagementDos,
    MonitoredSystem,
    RpmOverlap,
    RtmPolicy,
    SetupDos,
    SetupRebill,
)
from telerehab.careplans.models import Episode, PayerSettings, Visit
from telerehab.careplans.operations import payer_row
from telerehab.careplans.records import episode_for
from telerehab.careplans.rules import EpisodeStatus
from telerehab.errors import NotFound, ValidationFailed, field_errors
from telerehab.exercises.models import CheckIn
from telerehab.extensions import db
from telerehab.jobs.models import JobCursor
from telerehab.monitoring import rules
from telerehab.monitoring.models import (
    ManagementTimeEntry,
    MonitoringSettings,
    RpmPeriod,
    RtmAlert,
    RtmBillableLine,
    RtmEnrolment,
    RtmTimer,
    TherapyAmount,
)
from telerehab.monitoring.rules import Activity, AlertThresholds, Channel, Status

ACTIVE = "active"
# Lines the engine may still change; billing staff's statuses (approved, exported...) freeze a line.
ENGINE_STATUSES = (Status.READY.value, Status.HELD.value, Status.NOT_BILLABLE.value)
# Ended enrolments stay in the nightly run this long: their last period closes, late uploads land.
ENDED_LOOKBACK_DAYS = 45
BATCH = 5000
# A check-in or time entry younger than this may sit in a transaction not yet committed when the
# dirty job reads: the cursor stops short of it, so the next run reads it again.
CURSOR_GRACE = timedelta(minutes=2)
MAX_TIMER_MINUTES = 600
MAX_ROW_ID = 2**31 - 1  # ids are INTEGER columns: a larger number can be no row (and overflows PostgreSQL)


# ================================================================ payer policy


def policy_of(settings: PayerSettings | None) -> RtmPolicy:
    if settings is None:
        return RtmPolicy()
    return RtmPolicy(
        setup_min_days=settings.rtm_setup_min_days, setup_rebill=SetupRebill(settings.rtm_setup_rebill),
        async_message_is_interactive=settings.rtm_async_message_is_interactive,
        addon_unit_cap=settings.rtm_addon_unit_cap,
        addon_needs_own_interaction=settings.rtm_addon_needs_own_interaction,
        device_dos=DeviceDos(settings.rtm_device_dos), management_dos=ManagementDos(settings.rtm_management_dos),
        setup_dos=SetupDos(settings.rtm_setup_dos), cq_attribution=CqAttribution(settings.rtm_cq_attribution),
        rpm_overlap=RpmOverlap(settings.rtm_rpm_overlap), kx_threshold_cents=settings.kx_threshold_cents,
        place_of_service=settings.rtm_place_of_service,
    )


def _policies(organisation_ids: Iterable[int]) -> dict[tuple[int, str], RtmPolicy]:
    rows = db.session.scalars(select(PayerSettings).where(PayerSettings.organisation_id.in_(set(organisation_ids))))
    return {(row.organisation_id, row.payer_type): policy_of(row) for row in rows}


def thresholds_of(settings: MonitoringSettings | None) -> AlertThresholds:
    if settings is None:
        return AlertThresholds()
    return AlertThresholds(settings.pain_at_or_above, settings.rise_over_baseline, settings.rise_days,
                           settings.no_checkin_days, settings.at_risk_slack_days)


def _thresholds(clinic_ids: Iterable[int]) -> dict[int, AlertThresholds]:
    rows = db.session.scalars(select(MonitoringSettings).where(MonitoringSettings.clinic_id.in_(set(clinic_ids))))
    return {row.clinic_id: thresholds_of(row) for row in rows}


def local_today(timezone: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


# ---------------------------------------------------------------- the settings page

POLICY_COLUMNS = {  # RtmPolicy field -> PayerSettings column
    "setup_min_days": "rtm_setup_min_days", "setup_rebill": "rtm_setup_rebill",
    "async_message_is_interactive": "rtm_async_message_is_interactive", "addon_unit_cap": "rtm_addon_unit_cap",
    "addon_needs_own_interaction": "rtm_addon_needs_own_interaction", "device_dos": "rtm_device_dos",
    "management_dos": "rtm_management_dos", "setup_dos": "rtm_setup_dos", "cq_attribution": "rtm_cq_attribution",
    "rpm_overlap": "rtm_rpm_overlap", "place_of_service": "rtm_place_of_service",
    "kx_threshold_cents": "kx_threshold_cents",
}


def rtm_policy(actor: Actor, payer_type: str) -> RtmPolicy:
    """The payer's choices: set by the admin, read by billing staff too."""
    if not has_permission(actor.user, Permission.MANAGE_BILLING):
        require_permission(actor.user, Permission.MANAGE_CARE_SETTINGS)
    return policy_of(payer_row(actor.user.organisation_id, payer_type))


def set_rtm_policy(actor: Actor, payer_type: str, data: dict[str, Any], *, now: datetime) -> RtmPolicy:
    """The organisation's RTM choices for one kind of payer (validated by the schema). The admin's: they
    decide which lines are held, so the clerks approving lines do not set them."""
    require_permission(actor.user, Permission.MANAGE_CARE_SETTINGS)
    row = payer_row(actor.user.organisation_id, payer_type)
    if row is None:
        row = PayerSettings(organisation_id=actor.user.organisation_id, payer_type=payer_type)
        db.session.add(row)
    for name, column in POLICY_COLUMNS.items():
        setattr(row, column, data[name])
    db.session.flush()
    audit(actor, "update", "payer_settings", row.id, now=now, detail=f"rtm_policy payer={payer_type}")
    db.session.commit()
    return policy_of(row)


def alert_thresholds(actor: Actor, clinic_id: int) -> AlertThresholds:
    clinic = _settings_clinic(actor, clinic_id)
    return thresholds_of(db.session.scalar(select(MonitoringSettings).where(MonitoringSettings.clinic_id == clinic.id)))


def set_alert_thresholds(actor: Actor, clinic_id: int, data: dict[str, Any], *, now: datetime) -> AlertThresholds:
    clinic = _settings_clinic(actor, clinic_id)
    row = db.session.scalar(select(MonitoringSettings).where(MonitoringSettings.clinic_id == clinic.id))
    if row is None:
        row = MonitoringSettings(clinic_id=clinic.id)
        db.session.add(row)
    for name in ("pain_at_or_above", "rise_over_baseline", "rise_days", "no_checkin_days", "at_risk_slack_days"):
        setattr(row, name, data[name])
    row.updated_by_id, row.updated_at = actor.user.id, now
    db.session.flush()
    audit(actor, "update", "rtm_clinic_settings", row.id, now=now)
    db.session.commit()
    return thresholds_of(row)


def _settings_clinic(actor: Actor, clinic_id: int) -> Clinic:
    require_permission(actor.user, Permission.MANAGE_CARE_SETTINGS)
    clinic = db.session.get(Clinic, clinic_id) if _is_row_id(clinic_id) else None
    if clinic is None or not can_use_clinic(actor.user, clinic):
        raise NotFound("No such clinic.")
    return clinic


# ================================================================ enrolment


def enrolment_of(episode_id: int) -> RtmEnrolment | None:
    return db.session.scalar(select(RtmEnrolment).where(RtmEnrolment.episode_id == episode_id))


def _is_row_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ROW_ID


def _clinician(user_id: int | None, episode: Episode, field_name: str) -> User | None:
    if user_id is None:
        return None
    user = db.session.get(User, user_id) if _is_row_id(user_id) else None
    if user is None or user.role not in CLINICAL_ROLES or not user.is_active \
            or user.organisation_id != episode.clinic.organisation_id or user.clinic_id not in (episode.clinic_id, None):
        raise ValidationFailed({field_name: ["Choose a therapist or assistant of this clinic."]})
    return user


def _setup_values(data: dict[str, Any], episode: Episode, today: date) -> dict[str, Any]:
    setup_date = data.get("setup_date")
    if setup_date is None:
        return {}
    by = _clinician(data.get("setup_by_id"), episode, "setup_by_id")
    field_errors({
        "setup_date": "The set-up session cannot be in the future." if setup_date > today else None,
        "setup_minutes": None if isinstance(data.get("setup_minutes"), int) and 1 <= data["setup_minutes"] <= 240
        else "Give the session's minutes (1 to 240).",
        "setup_by_id": None if by else "Say who ran the set-up and education session.",
    })
    return {"setup_date": setup_date, "setup_minutes": data["setup_minutes"], "setup_by_id": by.id,
            "setup_by_role": by.role}


def enrol(actor: Actor, episode_id: int, data: dict[str, Any], *, now: datetime) -> RtmEnrolment:
    """Enrol an episode in RTM. `data`: monitored_system, device_name, device_identifier,
    cost_sharing_notice_shown_at (aware), monitoring_start (default the patient's today),
    baseline_pain, and optionally the set-up session: setup_date, setup_minutes, setup_by_id."""
    episode = episode_for(actor, episode_id, Permission.MANAGE_RTM_ENROLMENT)
    patient = episode.patient
    today = local_today(patient.timezone, now)
    consent = active_consent(patient, ConsentKind.RTM)
    start = data.get("monitoring_start") or today
    shown = data.get("cost_sharing_notice_shown_at")
    field_errors({
        "episode": None if episode.status in (EpisodeStatus.ACTIVE, EpisodeStatus.PLANNED)
        else "Only an active plan of care can be monitored.",
        "consent": None if consent else "Record the patient's RTM consent first.",
        "cost_sharing_notice_shown_at": None if isinstance(shown, datetime) and shown.tzinfo and shown <= now
        else "Say when the cost-sharing notice was shown (not in the future).",
        "monitoring_start": None if episode.start_date <= start <= today + timedelta(days=30)
        else "Monitoring starts on or after the episode's start, and within 30 days.",
        "device_name": None if (data.get("device_name") or "").strip() else "Name the software or device used.",
    })
    if enrolment_of(episode.id) is not None:
        raise ValidationFailed({"episode": ["This episode is already enrolled in RTM."]})
    enrolment = RtmEnrolment(
        episode_id=episode.id, patient_id=patient.id, clinic_id=episode.clinic_id, status=ACTIVE,
        consent_id=consent.id, cost_sharing_notice_shown_at=shown,
        monitored_system=MonitoredSystem(data.get("monitored_system") or MonitoredSystem.MUSCULOSKELETAL),
        device_name=data["device_name"].strip(), device_identifier=(data.get("device_identifier") or "").strip() or None,
        monitoring_start=start, baseline_pain=data.get("baseline_pain"), created_by_id=actor.user.id,
        created_at=now, updated_at=now, **_setup_values(data, episode, today),
    )
    db.session.add(enrolment)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ValidationFailed({"episode": [
            "The patient is already monitored under another episode; end that monitoring first."]}) from None
    audit(actor, "create", "rtm_enrolment", enrolment.id, now=now, patient_id=patient.id,
          detail=f"system={enrolment.monitored_system};start={start.isoformat()}")
    db.session.commit()
    return enrolment


def _enrolment(actor: Actor, episode_id: int, permission: Permission) -> RtmEnrolment:
    episode = episode_for(actor, episode_id, permission)
    enrolment = enrolment_of(episode.id)
    if enrolment is None:
        raise NotFound("This episode is not enrolled in RTM.")
    return enrolment


def record_setup(actor: Actor, episode_id: int, data: dict[str, Any], *, now: datetime) -> RtmEnrolment:
    """The set-up and education session (98975): date, minutes, who (PT or PTA)."""
    enrolment = _enrolment(actor, episode_id, Permission.MANAGE_RTM_ENROLMENT)
    if data.get("setup_date") is None:
        raise ValidationFailed({"setup_date": ["Give the date of the set-up session."]})
    values = _setup_values(data, enrolment.episode, local_today(enrolment.patient.timezone, now))
    for key, value in values.items():
        setattr(enrolment, key, value)
    enrolment.updated_at = now
    audit(actor, "update", "rtm_enrolment", enrolment.id, now=now, patient_id=enrolment.patient_id,
          detail=f"setup={values['setup_date'].isoformat()};minutes={values['setup_minutes']}")
    db.session.commit()
    return enrolment


def end_monitoring(actor: Actor, episode_id: int, data: dict[str, Any], *, now: datetime) -> RtmEnrolment:
    """Stop monitoring (`reason` opted_out or ended) after `end_date` (default the patient's today).
    Data already collected stays and still counts up to that day."""
    enrolment = _enrolment(actor, episode_id, Permission.MANAGE_RTM_ENROLMENT)
    today = local_today(enrolment.patient.timezone, now)
    end = data.get("end_date") or today
    reason = data.get("reason") or "opted_out"
    field_errors({
        "reason": None if reason in ("opted_out", "ended") else "The reason is opted_out or ended.",
        "end_date": None if enrolment.monitoring_start - timedelta(days=1) <= end <= today
        else "The last monitored day is between the day before monitoring started and today.",
        "episode": None if enrolment.status == ACTIVE else "Monitoring has already ended.",
    })
    enrolment.status, enrolment.monitoring_end, enrolment.end_reason = reason, end, reason
    enrolment.updated_at = now
    audit(actor, "end", "rtm_enrolment", enrolment.id, now=now, patient_id=enrolment.patient_id,
          detail=f"reason={reason};end={end.isoformat()}")
    db.session.commit()
    return enrolment


def record_rpm_period(actor: Actor, patient_id: int, data: dict[str, Any], *, now: datetime) -> RpmPeriod:
    """Remote physiologic monitoring billed for the patient (their attestation, a denial...)."""
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.MANAGE_RTM_ENROLMENT)
    start, end = data["start_date"], data["end_date"]
    field_errors({"end_date": "The end is before the start." if end < start
                  else "An RPM period is at most a year." if (end - start).days > 366 else None})
    row = RpmPeriod(patient_id=patient.id, start_date=start, end_date=end, source=data.get("source") or "attestation",
                    note=(data.get("note") or "").strip() or None, recorded_by_id=actor.user.id, recorded_at=now)
    db.session.add(row)
    db.session.flush()
    audit(actor, "create", "rpm_period", row.id, now=now, patient_id=patient.id)
    db.session.commit()
    return row


def record_therapy_amount(actor: Actor, patient_id: int, data: dict[str, Any], *, now: datetime) -> TherapyAmount:
    """The year-to-date therapy amount from the MAC's threshold inquiry (KX)."""
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.RECORD_THERAPY_AMOUNT)
    row = db.session.scalar(select(TherapyAmount).where(
        TherapyAmount.patient_id == patient.id, TherapyAmount.year == data["year"]))
    if row is None:
        row = TherapyAmount(patient_id=patient.id, year=data["year"])
        db.session.add(row)
    row.amount_cents, row.as_of, row.recorded_by_id, row.recorded_at = (
        data["amount_cents"], data["as_of"], actor.user.id, now)
    db.session.flush()
    audit(actor, "update", "therapy_amount", row.id, now=now, patient_id=patient.id,
          detail=f"year={row.year};cents={row.amount_cents}")
    db.session.commit()
    return row


# ================================================================ management time


def record_management_time(actor: Actor, episode_id: int, data: dict[str, Any], *, now: datetime) -> ManagementTimeEntry:
    """Log minutes of RTM treatment management for the episode, by the acting PT or PTA.

    `data`: service_date (ISO date or date), minutes (int), activity (data_review, program_change,
    call, video, message, care_coordination), interactive (bool: real-time communication with the
    patient or caregiver), channel (phone, video, in_person, or None for an asynchronous message),
    linked_visit_id (a separately billed visit whose minutes may not count again), note.
    """
    episode = episode_for(actor, episode_id, Permission.LOG_MANAGEMENT_TIME)
    enrolment = enrolment_of(episode.id)
    if enrolment is None:
        raise ValidationFailed({"episode": ["This episode is not enrolled in RTM, so its minutes cannot be logged."]})
    today = local_today(episode.clinic.timezone, now)
    service_date = data.get("service_date")
    if isinstance(service_date, str):
        try:
            service_date = date.fromisoformat(service_date)
        except ValueError:
            service_date = None
    minutes, interactive = data.get("minutes"), data.get("interactive")
    activity, channel = data.get("activity"), data.get("channel") or None
    visit_id = data.get("linked_visit_id")
    end = enrolment.monitoring_end or episode.discharge_date
    field_errors({
        "service_date": "Give the date as YYYY-MM-DD." if not isinstance(service_date, date)
        else "The date cannot be in the future." if service_date > today
        else "The date is before monitoring started." if service_date < enrolment.monitoring_start
        else "The date is after monitoring ended." if end is not None and service_date > end else None,
        "minutes": None if isinstance(minutes, int) and not isinstance(minutes, bool) and 1 <= minutes <= 600
        else "Minutes are a whole number from 1 to 600.",
        "activity": None if activity in set(Activity) else "Choose an activity: " + ", ".join(Activity) + ".",
        "interactive": None if isinstance(interactive, bool) else "Say whether it was real-time communication.",
        "channel": None if channel is None or channel in set(Channel) else "The channel is phone, video or in_person.",
        "note": None if len(data.get("note") or "") <= 2000 else "Keep the note under 2000 characters.",
    })
    field_errors({"channel": "Say how you spoke with the patient (phone, video, in person)."
                  if interactive and channel is None and activity != Activity.MESSAGE else
                  "Only real-time communication has a channel." if not interactive and channel else None})
    if visit_id is not None:
        visit = db.session.get(Visit, visit_id) if _is_row_id(visit_id) else None
        if visit is None or visit.episode_id != episode.id:
            raise ValidationFailed({"linked_visit_id": ["No such visit in this episode."]})
    entry = ManagementTimeEntry(
        enrolment_id=enrolment.id, patient_id=episode.patient_id, service_date=service_date, minutes=minutes,
        activity=activity, staff_id=actor.user.id, staff_role=actor.user.role, interactive=interactive,
        channel=channel, linked_visit_id=visit_id, note=(data.get("note") or "").strip() or None, created_at=now,
    )
    db.session.add(entry)
    db.session.flush()
    audit(actor, "create", "rtm_time_entry", entry.id, now=now, patient_id=episode.patient_id,
          detail=f"minutes={minutes};activity={activity};interactive={interactive}")
    db.session.commit()
    return entry


def void_management_time(actor: Actor, entry_id: int, *, now: datetime) -> ManagementTimeEntry:
    entry = db.session.get(ManagementTimeEntry, entry_id)
    if entry is None:
        raise NotFound("No such time entry.")
    require_patient(actor.user, db.session.get(Patient, entry.patient_id), Permission.LOG_MANAGEMENT_TIME)
    if entry.voided_at is None:
        entry.voided_at, entry.voided_by_id = now, actor.user.id
        audit(actor, "void", "rtm_time_entry", entry.id, now=now, patient_id=entry.patient_id)
    db.session.commit()
    return entry


def running_timer(actor: Actor) -> RtmTimer | None:
    return db.session.scalar(select(RtmTimer).where(RtmTimer.user_id == actor.user.id))


def start_timer(actor: Actor, episode_id: int, *, now: datetime) -> RtmTimer:
    """Start the actor's stopwatch on this episode (a running one elsewhere is replaced)."""
    enrolment = _enrolment(actor, episode_id, Permission.LOG_MANAGEMENT_TIME)
    timer = running_timer(actor) or RtmTimer(user_id=actor.user.id)
    timer.enrolment_id, timer.started_at = enrolment.id, now
    db.session.add(timer)
    db.session.flush()
    audit(actor, "start", "rtm_timer", timer.id, now=now, patient_id=enrolment.patient_id)
    db.session.commit()
    return timer


def stop_timer(actor: Actor, episode_id: int, data: dict[str, Any], *, now: datetime) -> ManagementTimeEntry:
    """Stop the stopwatch and log its minutes (rounded up to whole minutes) as one entry."""
    enrolment = _enrolment(actor, episode_id, Permission.LOG_MANAGEMENT_TIME)
    timer = running_timer(actor)
    if timer is None or timer.enrolment_id != enrolment.id:
        raise ValidationFailed({"timer": ["No timer is running for this patient."]})
    seconds = (now - timer.started_at).total_seconds()
    minutes = max(1, int(-(-seconds // 60)))
    if minutes > MAX_TIMER_MINUTES:  # left running: the clock no longer says how long the work took
        db.session.delete(timer)
        db.session.commit()
        raise ValidationFailed({"timer": ["The timer ran for more than 10 hours, so it was discarded; "
                                          "log the real minutes by hand."]})
    entry_data = {**data, "minutes": minutes, "service_date": local_today(enrolment.episode.clinic.timezone,
                                                                        timer.started_at)}
    db.session.delete(timer)
    db.session.flush()
    return record_management_time(actor, enrolment.episode_id, entry_data, now=now)


# ================================================================ evaluation (set-based)


def _day_offset(local_date, start):
    """Whole days from `start` to `local_date`, in SQL."""
    if db.engine.dialect.name == "sqlite":
        return sa.cast(func.julianday(local_date) - func.julianday(start), sa.Integer)
    return sa.type_coerce(local_date - start, sa.Integer)


def _days_list(column):
    if db.engine.dialect.name == "sqlite":
        return func.group_concat(column.distinct())
    return func.string_agg(sa.distinct(sa.cast(column, sa.String)), ",")


def data_days_query(enrolment_filter, *, with_days: bool = True):
    """(enrolment id, 30-day period index, distinct data days[, the days as text]) for the
    enrolments `enrolment_filter` selects: data days counted per period in the database, from
    the check-ins the patient sent (`CheckIn.self_reported`)."""
    period = (_day_offset(CheckIn.local_date, RtmEnrolment.monitoring_start) // rules.PERIOD_DAYS).label("period")
    columns = [RtmEnrolment.id, period, func.count(CheckIn.local_date.distinct())]
    return (
        select(*columns, *([_days_list(CheckIn.local_date)] if with_days else []))
        .join(CheckIn, CheckIn.patient_id == RtmEnrolment.patient_id)
        .where(enrolment_filter, CheckIn.self_reported, CheckIn.local_date >= RtmEnrolment.monitoring_start,
               or_(RtmEnrolment.monitoring_end.is_(None), CheckIn.local_date <= RtmEnrolment.monitoring_end))
        .group_by(RtmEnrolment.id, period)
    )


class EnrolmentRow(NamedTuple):
    """The enrolment's columns the evaluation reads (plain values: no ORM objects per patient)."""

    id: int
    episode_id: int
    patient_id: int
    clinic_id: int
    monitored_system: str
    monitoring_start: date
    monitoring_end: date | None
    setup_date: date | None
    setup_by_role: str | None
    evaluated_signature: str | None


_ENROLMENT_COLUMNS = [getattr(RtmEnrolment, name) for name in EnrolmentRow._fields]


@dataclass
class Subject:
    """One enrolment with everything the rules need. The data days stay as the database's text
    until the rules need them: an enrolment whose inputs did not change is never parsed."""

    row: EnrolmentRow
    timezone: str
    organisation_id: int
    payer_type: str
    discharge_date: date | None
    day_counts: dict[int, int] = field(default_factory=dict)  # period index -> data days
    day_texts: list[str] = field(default_factory=list)
    entry_signature: tuple = ()
    entries: list[rules.TimeEntry] = field(default_factory=list)
    counted: bool = False  # day_counts read
    days_loaded: bool = False  # day_texts read

    @property
    def days(self) -> list[date]:
        return [date.fromisoformat(day) for text in self.day_texts for day in text.split(",")]

    def as_rules(self) -> rules.Enrolment:
        ends = [d for d in (self.row.monitoring_end, self.discharge_date) if d is not None]
        return rules.Enrolment(
            id=self.row.id, episode_id=self.row.episode_id, system=MonitoredSystem(self.row.monitored_system),
            monitoring_start=self.row.monitoring_start, monitoring_end=min(ends) if ends else None,
            setup_date=self.row.setup_date, setup_by_assistant=self.row.setup_by_role == Role.ASSISTANT)


def _enrolments(enrolment_filter) -> dict[int, Subject]:
    """The enrolments `enrolment_filter` selects, by id, with their time entries' signature (a
    count, the newest id and the voided count: any entry added or voided changes it)."""
    rows = db.session.execute(
        select(*_ENROLMENT_COLUMNS, Patient.timezone, Clinic.organisation_id, Patient.payer_type,
               Episode.discharge_date)
        .join(Patient, Patient.id == RtmEnrolment.patient_id)
        .join(Clinic, Clinic.id == Patient.clinic_id)
        .join(Episode, Episode.id == RtmEnrolment.episode_id)
        .where(enrolment_filter).order_by(RtmEnrolment.id)
    ).all()
    width = len(EnrolmentRow._fields)
    subjects = {row[0]: Subject(EnrolmentRow(*row[:width]), *row[width:]) for row in rows}
    if subjects:
        for enrolment_id, *signature in db.session.execute(
            select(ManagementTimeEntry.enrolment_id, func.count(), func.max(ManagementTimeEntry.id),
                   func.count(ManagementTimeEntry.voided_at))
            .join(RtmEnrolment, RtmEnrolment.id == ManagementTimeEntry.enrolment_id)
            .where(enrolment_filter).group_by(ManagementTimeEntry.enrolment_id)
        ):
            subjects[enrolment_id].entry_signature = tuple(signature)
    return subjects


def _subjects(enrolment_filter) -> list[Subject]:
    """The enrolments with everything the rules need: data days (counted per period in SQL, and
    the days themselves) and time entries. For the panel and the triage inbox."""
    subjects = list(_enrolments(enrolment_filter).values())
    _count_days(subjects, enrolment_filter, with_days=True)
    _load_entries(subjects, enrolment_filter)
    return subjects


def _filters(subjects: list[Subject], enrolment_filter):
    """`enrolment_filter` (which selects these subjects, and maybe others) when given: one pass,
    cheaper when it selects few others; else the subjects by id, in chunks."""
    if enrolment_filter is not None:
        return [enrolment_filter]
    return [RtmEnrolment.id.in_(chunk) for chunk in _chunks([s.row.id for s in subjects], 5000)]


def _count_days(subjects: list[Subject], enrolment_filter=None, *, with_days: bool) -> None:
    """Count these subjects' data days per period (and read the days too, `with_days`)."""
    by_id = {s.row.id: s for s in subjects}
    for subject in subjects:
        subject.day_counts, subject.counted = {}, True
        if with_days:
            subject.day_texts, subject.days_loaded = [], True
    for where in _filters(subjects, enrolment_filter):
        for enrolment_id, period, count, *days in db.session.execute(data_days_query(where, with_days=with_days)):
            subject = by_id.get(enrolment_id)
            if subject is not None:
                subject.day_counts[period] = count
                if days and days[0]:
                    subject.day_texts.append(days[0])


def _load_days(subjects: list[Subject], enrolment_filter=None) -> None:
    """Read the data days of the subjects whose days are not loaded yet."""
    needing = {s.row.id: s for s in subjects if not s.days_loaded}
    if not needing:
        return
    for where in _filters(list(needing.values()), enrolment_filter):
        for enrolment_id, _, _, days in db.session.execute(data_days_query(where)):
            if days and enrolment_id in needing:
                needing[enrolment_id].day_texts.append(days)
    for subject in needing.values():
        subject.days_loaded = True


def _load_entries(subjects: list[Subject], enrolment_filter=None, since: date = date.min) -> None:
    """Read the time entries (not voided) of these subjects, from `since` on."""
    by_id = {s.row.id: s for s in subjects}
    activities, channels = {a.value: a for a in Activity}, {c.value: c for c in Channel}
    for where in _filters(subjects, enrolment_filter):
        for row in db.session.execute(
            select(ManagementTimeEntry.enrolment_id, ManagementTimeEntry.id, ManagementTimeEntry.service_date,
                   ManagementTimeEntry.minutes, ManagementTimeEntry.activity, ManagementTimeEntry.staff_role,
                   ManagementTimeEntry.interactive, ManagementTimeEntry.channel, ManagementTimeEntry.linked_visit_id)
            .join(RtmEnrolment, RtmEnrolment.id == ManagementTimeEntry.enrolment_id)
            .where(where, ManagementTimeEntry.voided_at.is_(None), ManagementTimeEntry.service_date >= since)
        ):
            enrolment_id, entry_id, day, minutes, activity, role, interactive, channel, visit = row
            if enrolment_id in by_id:
                by_id[enrolment_id].entries.append(rules.TimeEntry(
                    entry_id, day, minutes, activities[activity], role == Role.ASSISTANT, interactive,
                    channels[channel] if channel else None, visit))


def _contexts(subjects: list[Subject], enrolment_filter=None) -> dict[int, rules.Context]:
    """Each enrolment's payer policy, RPM periods, year-to-date amounts and any 98975 billed on
    another episode of the patient: one query each, for all of them (the patients of
    `enrolment_filter`, when it selects these subjects, or else the subjects' patients by id)."""
    policies = _policies({s.organisation_id for s in subjects})
    rpm, ytd, setups = defaultdict(list), defaultdict(dict), defaultdict(list)
    patients = [select(RtmEnrolment.patient_id).where(enrolment_filter)] if enrolment_filter is not None else \
        _chunks(sorted({s.row.patient_id for s in subjects}), 5000)
    for chunk in patients:
        for pid, start, end in db.session.execute(
                select(RpmPeriod.patient_id, RpmPeriod.start_date, RpmPeriod.end_date)
                .where(RpmPeriod.patient_id.in_(chunk)).order_by(RpmPeriod.id)):
            rpm[pid].append((start, end))
        for pid, year, cents in db.session.execute(
                select(TherapyAmount.patient_id, TherapyAmount.year, TherapyAmount.amount_cents)
                .where(TherapyAmount.patient_id.in_(chunk))):
            ytd[pid][year] = cents
        for pid, episode_id in db.session.execute(
                select(RtmBillableLine.patient_id, RtmBillableLine.episode_id).where(
                    RtmBillableLine.patient_id.in_(chunk), RtmBillableLine.slot == rules.Slot.SETUP.value,
                    RtmBillableLine.status != Status.NOT_BILLABLE.value)):
            setups[pid].append(episode_id)
    result = {}
    for s in subjects:
        other = [e for e in setups[s.row.patient_id] if e != s.row.episode_id]
        result[s.row.id] = rules.Context(
            policy=policies.get((s.organisation_id, s.payer_type), RtmPolicy()),
            rpm_periods=tuple(rpm[s.row.patient_id]), ytd_therapy_cents=ytd[s.row.patient_id],
            setup_billed_on_episode=min(other) if other else None)
    return result


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _today(subject: Subject, now: datetime, as_of: date | None, cache: dict[str, date]) -> date:
    if as_of is not None:
        return as_of
    if subject.timezone not in cache:
        cache[subject.timezone] = local_today(subject.timezone, now)
    return cache[subject.timezone]


def evaluate_subjects(subjects: list[Subject], *, now: datetime, as_of: date | None = None
                      ) -> list[tuple[Subject, rules.Evaluation, rules.Context, date]]:
    """Every decision of each subject (entries loaded), for the panel and the triage inbox."""
    contexts, cache = _contexts(subjects), {}
    return [(s, rules.evaluate(s.as_rules(), days=s.days, entries=s.entries, today=today,
                               context=contexts[s.row.id]), contexts[s.row.id], today)
            for s in subjects for today in (_today(s, now, as_of, cache),)]


class Signature(NamedTuple):
    """What an enrolment's written decisions were last made from, as digests over the context (the
    enrolment, the payer's policy, the patient's RPM periods, amounts and other set-up codes) and
    one of the inputs each: `shape`, how many periods had closed; `days`, the data days of closed
    periods and the set-up threshold's progress; `entries`, the time entries; and how many months
    had closed. Data coming into the running period changes nothing written (until it closes), so
    it is left out: a night with nothing closing and no late data decides nothing."""

    shape: str
    days: str
    entries: str
    months_closed: int

    @classmethod
    def parse(cls, text: str | None) -> Signature | None:
        parts = (text or "").split()
        if len(parts) != len(cls._fields) or not parts[-1].isdigit():
            return None
        return cls(*parts[:-1], int(parts[-1]))

    def __str__(self) -> str:
        return " ".join(map(str, self))


@dataclass
class _Plan:
    """One enrolment in a run: its inputs' digests now, against those of its last evaluation."""

    subject: Subject
    context: rules.Context
    today: date
    stored: Signature | None
    enrolment: rules.Enrolment | None = None  # as the rules take it
    base: str = ""  # the context's digest
    periods_closed: int = 0
    months_closed: int = 0
    shape: str = ""
    entries: str = ""
    days: str | None = None  # known once the data days are counted, or taken from `stored`
    days_changed: bool = False
    months_standing: int = 0  # months whose decisions stand: neither the context nor an entry changed

    def __post_init__(self) -> None:
        self.enrolment = enrolment = self.subject.as_rules()
        self.base = rules.context_digest(enrolment, self.context)
        self.periods_closed, self.months_closed = rules.closed_windows(
            enrolment.monitoring_start, enrolment.monitoring_end, self.today)
        self.shape = rules.digest(self.base, self.periods_closed)
        self.entries = rules.digest(self.base, self.subject.entry_signature)

    @property
    def reshaped(self) -> bool:
        return self.stored is None or self.stored.shape != self.shape

    @property
    def months_changed(self) -> bool:
        return self.months_standing < self.months_closed

    def compare(self) -> bool:
        """Whether anything written may change (the data days counted, unless they need not be)."""
        if self.subject.counted:
            counts = [self.subject.day_counts.get(i, 0) for i in range(self.periods_closed)]
            threshold = self.context.policy.setup_min_days
            running = None if any(count >= threshold for count in counts) else \
                min(self.subject.day_counts.get(self.periods_closed, 0), threshold)
            self.days = rules.digest(self.base, counts, running)
        else:
            self.days = self.stored.days
        stored = self.stored
        self.days_changed = stored is None or self.days != stored.days
        self.months_standing = min(stored.months_closed, self.months_closed) \
            if stored is not None and stored.entries == self.entries else 0
        return self.days_changed or self.months_changed

    @property
    def entries_since(self) -> date:
        """The first day of the first month to decide: entries before it are not needed."""
        return rules.month_start(self.subject.row.monitoring_start, self.months_standing)

    @property
    def signature(self) -> str:
        return str(Signature(self.shape, self.days, self.entries, self.months_closed))


# Columns of a line's content, in the order the fingerprint serialises them.
_CONTENT = ("code", "units", "modifiers", "service_date", "place_of_service", "status", "reason", "evidence",
            "period_start", "period_end")
_KEY = ("enrolment_id", "episode_id", "patient_id", "slot", "period_key")
_INSERTED = (*_KEY, *_CONTENT, "fingerprint", "inputs", "created_at", "updated_at")
_REFRESHED = ("line_id", *_CONTENT, "fingerprint", "inputs", "updated_at")


def _line_content(decision: rules.Decision, context: rules.Context) -> tuple[tuple, str]:
    """The line's content in `_CONTENT` order, dates as ISO text and the evidence as JSON text
    (each serialised once), and its fingerprint: the SHA-256 of the content as
    `json.dumps(content, default=str)` writes it, spliced from those pieces."""
    service_date = decision.service_date.isoformat() if decision.service_date is not None else None
    head = [decision.code, decision.units, " ".join(decision.modifiers), service_date,
            context.policy.place_of_service if decision.code else None, decision.status.value, decision.reason]
    evidence = json.dumps(decision.evidence)
    start, end = decision.period_start.isoformat(), decision.period_end.isoformat()
    text = f'{json.dumps(head)[:-1]}, {evidence}, "{start}", "{end}"]'
    return (*head, evidence, start, end), hashlib.sha256(text.encode()).hexdigest()


@dataclass
class EvaluationRun:
    enrolments: int = 0
    evaluated: int = 0  # enrolments whose inputs changed since their last evaluation
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    frozen: int = 0  # lines billing staff have taken over: never changed by the engine
    ended: int = 0  # enrolments ended by their episode's discharge


def _end_discharged(now: datetime) -> int:
    """Monitoring ends with the episode: an active enrolment of a discharged episode ends on the
    discharge date."""
    discharge = select(Episode.discharge_date).where(Episode.id == RtmEnrolment.episode_id).scalar_subquery()
    discharged = select(Episode.id).where(Episode.status == EpisodeStatus.DISCHARGED,
                                          Episode.discharge_date.is_not(None))
    result = db.session.execute(
        update(RtmEnrolment).where(RtmEnrolment.status == ACTIVE, RtmEnrolment.episode_id.in_(discharged))
        .values(status="ended", end_reason="discharged", monitoring_end=discharge, updated_at=now)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount or 0


_LINES = RtmBillableLine.__table__


_PERIOD_SLOTS = (rules.Slot.SETUP.value, rules.Slot.DEVICE.value)


def _existing_lines(plans: list[_Plan], enrolment_filter=None, in_scope: int = 0) -> dict[tuple[int, str, str], tuple]:
    """(episode, slot, period key) -> (id, status, fingerprint, reason, inputs) of the lines written
    for the windows these plans decide: the set-up and device lines where the days changed, the
    management lines of the months decided. Each kind is read by the episodes' ids, or in one pass
    over the episodes of `enrolment_filter` (`in_scope` enrolments) when it selects few others."""
    existing = {}
    columns = (RtmBillableLine.id, RtmBillableLine.episode_id, RtmBillableLine.slot, RtmBillableLine.period_key,
               RtmBillableLine.status, RtmBillableLine.fingerprint, RtmBillableLine.reason, RtmBillableLine.inputs)
    first_month = min((p.entries_since for p in plans if p.months_changed), default=date.max)
    month_lines = and_(RtmBillableLine.slot.not_in(_PERIOD_SLOTS),
                       RtmBillableLine.period_key >= f"{first_month:%Y-%m}")  # keys are "YYYY-MM"
    for kind, slots in ((lambda p: p.days_changed, RtmBillableLine.slot.in_(_PERIOD_SLOTS)),
                        (lambda p: p.months_changed, month_lines)):
        episodes = [p.subject.row.episode_id for p in plans if kind(p)]
        wanted = set(episodes)
        chunks = [select(RtmEnrolment.episode_id).where(enrolment_filter)] \
            if enrolment_filter is not None and 2 * len(episodes) > in_scope else _chunks(episodes, 5000)
        for chunk in chunks:  # the episode leads the lines' unique index
            for line_id, episode_id, slot, period_key, status, fingerprint, reason, inputs in db.session.execute(
                    select(*columns).where(RtmBillableLine.episode_id.in_(chunk), slots)):
                if episode_id in wanted:
                    existing[(episode_id, slot, period_key)] = (line_id, status, fingerprint, reason, inputs)
    return existing


def _write_lines(evaluated, existing: dict[tuple[int, str, str], tuple], now: datetime, run: EvaluationRun,
                 writer: _SqliteLines | _PostgresLines) -> None:
    """Insert the lines that are absent, update the engine's lines whose content changed, mark a
    line no longer earned (a 98981 unit, say) not billable. Billing staff's lines stay as they are."""
    inserts, updates, refreshed, withdrawn, seen = [], [], [], [], set()
    by_episode: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for episode_id, slot, period_key in existing:
        by_episode[episode_id].append((slot, period_key))
    for subject, evaluation, context, _ in evaluated:
        row = subject.row
        for decision in evaluation.decisions:
            if not decision.written:
                continue
            inputs = evaluation.inputs.get((decision.slot, decision.period_key))
            key = (row.episode_id, decision.slot, decision.period_key)
            seen.add(key)
            line = existing.get(key)
            if line is not None and line[1] not in ENGINE_STATUSES:
                run.frozen += 1
                continue
            content, fingerprint = _line_content(decision, context)
            if line is None:
                inserts.append((row.id, row.episode_id, row.patient_id, decision.slot, decision.period_key,
                                *content, fingerprint, inputs))
            elif line[2] != fingerprint:
                updates.append((line[0], *content, fingerprint, inputs))
                run.updated += 1
            else:
                run.unchanged += 1
                if line[4] != inputs:  # the same decision from other inputs: only its digest is refreshed
                    refreshed.append((line[0], inputs))
        for slot, period_key in by_episode[row.episode_id]:
            key = (row.episode_id, slot, period_key)
            line_id, status, _, reason, _ = existing[key]
            if key not in seen and period_key in evaluation.decided_months and slot.startswith(rules.Slot.ADDON.value) \
                    and status in (Status.READY.value, Status.HELD.value):
                withdrawn.append({"line_id": line_id, "reason": "no longer earned: " + reason})
    # A line billing staff took meanwhile is left alone by the UPDATEs' condition on its status.
    writer.update(updates)
    writer.refresh(refreshed)
    if withdrawn:
        db.session.execute(_LINES.update().where(_LINES.c.id == sa.bindparam("line_id")).values(
            status=Status.NOT_BILLABLE.value, reason=sa.bindparam("reason"), fingerprint=None, updated_at=now),
            withdrawn)
        run.updated += len(withdrawn)
    run.inserted += writer.insert(inserts)


# Not line columns, or not their type, in the recordset:
_RECORD_TYPES = {"line_id": "integer", "evidence": "text", "enrolment_id": "integer", "signature": "text"}


def _line_writer(now: datetime) -> _SqliteLines | _PostgresLines:
    return _PostgresLines(now) if db.engine.dialect.name == "postgresql" else _SqliteLines(now)
_ENGINE_OWNED = "status IN ({})".format(", ".join(f"'{status}'" for status in ENGINE_STATUSES))


class _SqliteLines:
    """Lines written through the driver's executemany: the values are already the text SQLite
    stores (ISO dates, JSON text), so no per-value conversion runs in Python."""

    def __init__(self, now: datetime):
        dialect = db.engine.dialect
        self.now = _LINES.c.updated_at.type.dialect_impl(dialect).bind_processor(dialect)(now)  # as SQLAlchemy stores it
        self.connection = db.session.connection()

    def insert(self, rows: list[tuple]) -> int:
        """Insert-if-absent; the number of lines inserted."""
        if not rows:
            return 0
        statement = (f"INSERT INTO {_LINES.name} ({', '.join(_INSERTED)}) "  # noqa: S608 - names from the model
                     f"VALUES ({', '.join('?' * len(_INSERTED))}) "
                     "ON CONFLICT (episode_id, slot, period_key) DO NOTHING")
        return self.connection.exec_driver_sql(statement, [(*row, self.now, self.now) for row in rows]).rowcount

    def update(self, rows: list[tuple]) -> None:
        if rows:
            columns = ", ".join(f"{name} = ?" for name in _REFRESHED[1:])
            self.connection.exec_driver_sql(
                f"UPDATE {_LINES.name} SET {columns} WHERE id = ? AND {_ENGINE_OWNED}",  # noqa: S608
                [(*row[1:], self.now, row[0]) for row in rows])

    def sign(self, rows: list[tuple[int, str]]) -> None:
        """Each evaluated enrolment's signature: (enrolment id, signature)."""
        self.connection.exec_driver_sql(
            f"UPDATE {RtmEnrolment.__tablename__} SET evaluated_signature = ? WHERE id = ?",  # noqa: S608
            [(signature, enrolment_id) for enrolment_id, signature in rows])

    def refresh(self, rows: list[tuple]) -> None:
        if rows:
            self.connection.exec_driver_sql(
                f"UPDATE {_LINES.name} SET inputs = ?, updated_at = ? WHERE id = ? AND {_ENGINE_OWNED}",  # noqa: S608
                [(inputs, self.now, line_id) for line_id, inputs in rows])


class _PostgresLines:
    """Lines inserted with COPY into a scratch table, then INSERT ... SELECT ... ON CONFLICT DO
    NOTHING; updated from one JSON parameter per 5,000 rows, unpacked by the server. (A multi-row
    VALUES statement with thousands of parameters is parsed in pure Python by psycopg, slower than
    everything else.) The evidence travels as JSON text either way."""

    def __init__(self, now: datetime):
        self.now = now

    @staticmethod
    def _recordset(names: Iterable[str]) -> str:
        dialect = db.engine.dialect
        types = ", ".join(f"{name} {_RECORD_TYPES.get(name) or _LINES.c[name].type.compile(dialect=dialect)}"
                          for name in names)
        return f"json_to_recordset(CAST(:rows AS json)) AS r({types})"

    def _run(self, statement: str, names: tuple[str, ...], rows: list[tuple]) -> int:
        done = 0
        for chunk in _chunks(rows, 5000):
            text = json.dumps([dict(zip(names, row, strict=True)) for row in chunk])
            done += db.session.execute(sa.text(statement), {"rows": text, "now": self.now}).rowcount
        return done

    def insert(self, rows: list[tuple]) -> int:
        """Insert-if-absent; the number of lines inserted."""
        if not rows:
            return 0
        columns = ", ".join(_INSERTED)
        # the session's own connection, so the lines belong to its transaction
        with db.session.connection().connection.dbapi_connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS pg_temp.rtm_lines_in")
            cursor.execute(f"CREATE TEMP TABLE rtm_lines_in ON COMMIT DROP AS "  # noqa: S608 - names from the model
                           f"SELECT {columns} FROM {_LINES.name} WITH NO DATA")
            with cursor.copy(f"COPY rtm_lines_in ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((*row, self.now, self.now))
            cursor.execute(f"INSERT INTO {_LINES.name} ({columns}) SELECT {columns} FROM rtm_lines_in "  # noqa: S608
                           "ON CONFLICT (episode_id, slot, period_key) DO NOTHING")
            inserted = cursor.rowcount
            cursor.execute("DROP TABLE rtm_lines_in")
        return inserted

    def update(self, rows: list[tuple]) -> None:
        names = _REFRESHED[:-1]
        columns = ", ".join(f"{name} = " + ("CAST(r.evidence AS json)" if name == "evidence" else f"r.{name}")
                            for name in names[1:])
        self._run(f"UPDATE {_LINES.name} l SET {columns}, updated_at = :now "  # noqa: S608
                  f"FROM {self._recordset(names)} WHERE l.id = r.line_id AND l.{_ENGINE_OWNED}", names, rows)

    def sign(self, rows: list[tuple[int, str]]) -> None:
        """Each evaluated enrolment's signature: (enrolment id, signature)."""
        self._run(f"UPDATE {RtmEnrolment.__tablename__} e SET evaluated_signature = r.signature "  # noqa: S608
                  f"FROM {self._recordset(('enrolment_id', 'signature'))} WHERE e.id = r.enrolment_id",
                  ("enrolment_id", "signature"), rows)

    def refresh(self, rows: list[tuple]) -> None:
        self._run(f"UPDATE {_LINES.name} l SET inputs = r.inputs, updated_at = :now "  # noqa: S608
                  f"FROM {self._recordset(('line_id', 'inputs'))} WHERE l.id = r.line_id AND l.{_ENGINE_OWNED}",
                  ("line_id", "inputs"), rows)


def evaluate(*, now: datetime, as_of: date | None = None, patient_ids: Iterable[int] | None = None,
             batch_size: int = BATCH) -> EvaluationRun:
    """Evaluate RTM for active enrolments (and those ended lately), as of `as_of` (default each
    patient's own today at `now`), and write the decisions of closed periods and months as lines.

    Each enrolment's inputs are digested (`Signature`); one whose inputs are those of its last
    evaluation is skipped. Data days are counted in SQL, per enrolment and period, in one pass over
    the enrolments that need it (as one query counting data days per patient and period would).
    The others are decided and written in batches, each committed whole: its lines with its
    signatures."""
    with _collector_paused():
        return _evaluate(now=now, as_of=as_of, patient_ids=patient_ids, batch_size=batch_size)


@contextmanager
def _collector_paused():
    """The cyclic garbage collector off during a run: the run holds every enrolment's days and
    entries (about a million objects at 10,000 patients), which each full collection would walk
    again (a third of the run's time, measured); the few cycles a run makes are collected after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _evaluate(*, now: datetime, as_of: date | None, patient_ids: Iterable[int] | None,
              batch_size: int) -> EvaluationRun:
    run = EvaluationRun(ended=_end_discharged(now))
    reference = as_of or now.date()
    scope = or_(RtmEnrolment.status == ACTIVE,
                RtmEnrolment.monitoring_end >= reference - timedelta(days=ENDED_LOOKBACK_DAYS))
    if patient_ids is not None:
        scope = and_(scope, RtmEnrolment.patient_id.in_(list(patient_ids)))
    subjects = list(_enrolments(scope).values())
    contexts = _contexts(subjects, scope)
    # Data days are counted again only where they may have changed: a period closed or the context
    # changed since the last evaluation, or check-ins came that no run has evaluated yet (past the
    # cursor the every-few-minutes job shares). A run for named patients counts theirs.
    unread, settled = _unread(CHECKINS_CURSOR, CheckIn, now) if patient_ids is None else (None, None)
    db.session.commit()
    cache: dict[str, date] = {}
    plans = [_Plan(s, contexts[s.row.id], _today(s, now, as_of, cache), Signature.parse(s.row.evaluated_signature))
             for s in subjects]
    recount = [p for p in plans if p.reshaped or unread is None or p.subject.row.patient_id in unread]
    _count_days([p.subject for p in recount], scope if 2 * len(recount) > len(plans) else None,
                with_days=2 * sum(p.reshaped for p in recount) > len(recount))  # most will be decided
    changed = [p for p in plans if p.compare()]
    run.enrolments, run.evaluated = len(plans), len(changed)
    # What most enrolments need (the entries, when a month closed) is read in one pass over the
    # scope; the rest batch by batch, by id.
    def load_days(plans, where=None):
        _load_days([p.subject for p in plans if p.days_changed], where)

    def load_entries(plans, where=None):
        deciding = [p for p in plans if p.months_changed]
        _load_entries([p.subject for p in deciding], where, min((p.entries_since for p in deciding), default=date.max))

    loaders = [(load, 2 * sum(map(needs, changed)) > len(plans))
               for load, needs in ((load_days, lambda p: p.days_changed), (load_entries, lambda p: p.months_changed))]
    for load, preloaded in loaders:
        if preloaded:
            load(changed, scope)
    lines = _existing_lines(changed, scope, len(plans))
    for batch in _chunks(changed, batch_size):
        for load, preloaded in loaders:
            if not preloaded:
                load(batch)
        episodes = {p.subject.row.episode_id for p in batch}
        existing = {key: line for key, line in lines.items() if key[0] in episodes}
        known: dict[int, dict[tuple[str, str], str]] = defaultdict(dict)
        for (episode_id, slot, period_key), line in existing.items():
            if line[4] is not None:
                known[episode_id][slot, period_key] = line[4]
        evaluated = [(p.subject, rules.evaluate(p.enrolment, days=p.subject.days if p.days_changed else None,
                                                entries=p.subject.entries if p.months_changed else None,
                                                today=p.today, context=p.context,
                                                known=known[p.subject.row.episode_id],
                                                months_standing=p.months_standing, context_key=p.base),
                      p.context, p.today)
                     for p in batch]
        writer = _line_writer(now)
        _write_lines(evaluated, existing, now, run, writer)
        writer.sign([(p.subject.row.id, p.signature) for p in batch])
        db.session.commit()
    if settled is not None:
        _move_cursor(CHECKINS_CURSOR, settled, now)
    db.session.add(audit_entry(SYSTEM, "evaluate", "rtm_billable_line", None, now, None,
                               f"enrolments={run.enrolments};evaluated={run.evaluated};inserted={run.inserted};"
                               f"updated={run.updated}"))
    db.session.commit()
    return run


def evaluate_all(*, now: datetime) -> EvaluationRun:
    """Job (nightly): every active enrolment, closing periods and months into lines."""
    return evaluate(now=now)


CHECKINS_CURSOR = "rtm_checkins"
TIME_ENTRIES_CURSOR = "rtm_time_entries"


def _unread(name: str, model, now: datetime) -> tuple[set[int], int | None]:
    """Patients with rows of `model` past the cursor `name`, and the newest row old enough to be
    surely committed: where the cursor may move once those patients are evaluated."""
    position = db.session.scalar(select(JobCursor.position).where(JobCursor.name == name)) or 0
    stamp = model.received_at if model is CheckIn else model.created_at
    patients = set(db.session.scalars(select(model.patient_id).distinct().where(model.id > position)))
    settled = db.session.scalar(select(func.max(model.id)).where(model.id > position, stamp <= now - CURSOR_GRACE))
    return patients, settled


def _move_cursor(name: str, position: int, now: datetime) -> None:
    """Forward only: the nightly run and the every-few-minutes job share the check-in cursor, and
    either may finish first."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(JobCursor).values(name=name, position=position, updated_at=now)
                       .on_conflict_do_nothing())
    db.session.execute(update(JobCursor).where(JobCursor.name == name, JobCursor.position < position)
                       .values(position=position, updated_at=now))


def evaluate_dirty(*, now: datetime) -> EvaluationRun:
    """Job (every few minutes): the patients with a new check-in or time entry since the last
    run. The check-in path writes nothing for this: the job reads past a cursor on the ids."""
    checkins, checkins_settled = _unread(CHECKINS_CURSOR, CheckIn, now)
    entries, entries_settled = _unread(TIME_ENTRIES_CURSOR, ManagementTimeEntry, now)
    patients = checkins | entries
    enrolled = set(db.session.scalars(select(RtmEnrolment.patient_id).where(RtmEnrolment.patient_id.in_(patients)))) \
        if patients else set()
    run = evaluate(now=now, patient_ids=enrolled) if enrolled else EvaluationRun()
    for name, settled in ((CHECKINS_CURSOR, checkins_settled), (TIME_ENTRIES_CURSOR, entries_settled)):
        if settled is not None:  # only after the evaluation is written
            _move_cursor(name, settled, now)
    db.session.commit()
    return run


# ================================================================ alerts


@dataclass
class AlertRun:
    enrolments: int = 0
    raised: int = 0


def raise_alerts(*, now: datetime, lookback_days: int = 7) -> AlertRun:
    """Job: pain alerts (high pain; pain over the baseline on consecutive days) and silences (no
    check-in for the clinic's number of days), once each, for every active enrolment."""
    run = AlertRun()
    rows = db.session.execute(
        select(RtmEnrolment, Patient.timezone).join(Patient, Patient.id == RtmEnrolment.patient_id)
        .where(RtmEnrolment.status == ACTIVE)).all()
    if not rows:
        return run
    active = RtmEnrolment.status == ACTIVE
    since = now.date() - timedelta(days=lookback_days + 1)
    daily: dict[int, dict[date, int]] = defaultdict(dict)
    for enrolment_id, day, pain in db.session.execute(
        select(RtmEnrolment.id, CheckIn.local_date, func.max(CheckIn.pain))
        .join(CheckIn, CheckIn.patient_id == RtmEnrolment.patient_id)
        .where(active, CheckIn.local_date >= since, CheckIn.local_date >= RtmEnrolment.monitoring_start,
               CheckIn.pain.is_not(None))
        .group_by(RtmEnrolment.id, CheckIn.local_date)
    ):
        daily[enrolment_id][day] = pain
    last_day = dict(db.session.execute(
        select(RtmEnrolment.id, func.max(CheckIn.local_date))
        .join(CheckIn, CheckIn.patient_id == RtmEnrolment.patient_id)
        .where(active, CheckIn.local_date >= RtmEnrolment.monitoring_start).group_by(RtmEnrolment.id)).all())
    baselines = _baselines([e for e, _ in rows if e.baseline_pain is None], now)
    thresholds = _thresholds({e.clinic_id for e, _ in rows})
    new = []
    for enrolment, timezone in rows:
        run.enrolments += 1
        today = local_today(timezone, now)
        limits = thresholds.get(enrolment.clinic_id, AlertThresholds())
        baseline = enrolment.baseline_pain if enrolment.baseline_pain is not None else baselines.get(enrolment.id)
        alerts = rules.pain_alerts(daily[enrolment.id], baseline, limits)
        silence = rules.no_checkin_alert(last_day.get(enrolment.id), enrolment.monitoring_start, today, limits)
        for alert in [*alerts, *([silence] if silence else [])]:
            new.append({"enrolment_id": enrolment.id, "patient_id": enrolment.patient_id,
                        "clinic_id": enrolment.clinic_id, "kind": alert.kind.value, "day": alert.day,
                        "detail": alert.detail, "raised_at": now})
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    for chunk in _chunks(new, 500):
        run.raised += len(db.session.execute(dialect.insert(RtmAlert).values(chunk).on_conflict_do_nothing(
            index_elements=["enrolment_id", "kind", "day"]).returning(RtmAlert.id)).all())
    db.session.add(audit_entry(SYSTEM, "raise", "rtm_alert", None, now, None,
                               f"enrolments={run.enrolments};raised={run.raised}"))
    db.session.commit()
    return run


def _baselines(enrolments: list[RtmEnrolment], now: datetime) -> dict[int, int]:
    """The first pain reported since monitoring started, kept on the enrolment as its baseline."""
    if not enrolments:
        return {}
    found: dict[int, int] = {}
    for enrolment_id, pain in db.session.execute(
        select(RtmEnrolment.id, CheckIn.pain).join(CheckIn, CheckIn.patient_id == RtmEnrolment.patient_id)
        .where(RtmEnrolment.id.in_([e.id for e in enrolments]), CheckIn.pain.is_not(None),
               CheckIn.local_date >= RtmEnrolment.monitoring_start)
        .order_by(RtmEnrolment.id, CheckIn.recorded_at, CheckIn.id)
    ):
        found.setdefault(enrolment_id, pain)
    for enrolment in enrolments:
        if enrolment.id in found:
            enrolment.baseline_pain, enrolment.updated_at = found[enrolment.id], now
    return found


def acknowledge_alert(actor: Actor, alert_id: int, *, now: datetime) -> RtmAlert:
    alert = db.session.get(RtmAlert, alert_id)
    if alert is None:
        raise NotFound("No such alert.")
    require_patient(actor.user, alert.patient, Permission.LOG_MANAGEMENT_TIME)
    if alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by_id = now, actor.user.id
        audit(actor, "acknowledge", "rtm_alert", alert.id, now=now, patient_id=alert.patient_id)
    db.session.commit()
    return alert


# ================================================================ what the therapist sees


@dataclass(frozen=True)
class TimelineDay:
    day: date
    has_data: bool
    future: bool


@dataclass
class RtmStatus:
    episode: Episode
    enrolment: RtmEnrolment | None
    today: date | None = None
    period: rules.Window | None = None
    timeline: list[TimelineDay] = field(default_factory=list)
    day_forecast: list[rules.DayTierForecast] = field(default_factory=list)
    month: rules.Window | None = None
    minutes: rules.MinuteForecast | None = None
    month_entries: list[ManagementTimeEntry] = field(default_factory=list)
    lines: list[RtmBillableLine] = field(default_factory=list)
    decisions: list[rules.Decision] = field(default_factory=list)
    timer: RtmTimer | None = None
    policy: RtmPolicy | None = None


def rtm_status(actor: Actor, episode_id: int, *, now: datetime) -> RtmStatus:
    """The RTM panel: the current period day by day, this month's minutes against the tiers, the
    forecast, the decisions so far and the lines written."""
    episode = episode_for(actor, episode_id, Permission.VIEW_MONITORING)
    enrolment = enrolment_of(episode.id)
    status = RtmStatus(episode=episode, enrolment=enrolment)
    if enrolment is None:
        audit(actor, "read", "rtm_status", episode.id, now=now, patient_id=episode.patient_id, detail="not enrolled")
        db.session.commit()
        return status
    [(subject, evaluation, context, today)] = evaluate_subjects(_subjects(RtmEnrolment.id == enrolment.id), now=now)
    status.today, status.decisions, status.policy = today, evaluation.decisions, context.policy
    if evaluation.periods:
        period, days = evaluation.periods[-1]
        status.period = period
        present = set(days)
        status.timeline = [TimelineDay(period.start + timedelta(days=i), period.start + timedelta(days=i) in present,
                                       period.start + timedelta(days=i) > today)
                           for i in range((period.end - period.start).days + 1)]
        status.day_forecast = rules.day_forecast(subject.as_rules().system, days, period, today)
    if evaluation.months:
        month, tally = evaluation.months[-1]
        status.month, status.minutes = month, rules.minute_forecast(tally, context.policy)
        status.month_entries = list(db.session.scalars(
            select(ManagementTimeEntry).where(ManagementTimeEntry.enrolment_id == enrolment.id,
                                              ManagementTimeEntry.service_date.between(month.start, month.end))
            .order_by(ManagementTimeEntry.service_date.desc(), ManagementTimeEntry.id.desc())))
    status.lines = list(db.session.scalars(select(RtmBillableLine).where(
        RtmBillableLine.enrolment_id == enrolment.id).order_by(RtmBillableLine.period_start, RtmBillableLine.slot)))
    if actor.user is not None and has_permission(actor.user, Permission.LOG_MANAGEMENT_TIME):
        timer = running_timer(actor)
        status.timer = timer if timer is not None and timer.enrolment_id == enrolment.id else None
    audit(actor, "read", "rtm_status", enrolment.id, now=now, patient_id=episode.patient_id)
    db.session.commit()
    return status


@dataclass
class TriageItem:
    patient: Patient
    episode_id: int
    reasons: list[str] = field(default_factory=list)
    at_risk: bool = False
    interactive_missing: bool = False
    alerts: list[RtmAlert] = field(default_factory=list)
    unread_texts: int = 0


def triage(actor: Actor, *, now: datetime) -> list[TriageItem]:
    """Across the actor's patients with active monitoring: tiers at risk, this month's interactive
    communication still missing, open alerts, unread texts. A fixed number of queries."""
    from telerehab.messaging.models import InboundMessage

    require_permission(actor.user, Permission.LOG_MANAGEMENT_TIME)  # pain and texts: clinicians only
    visible = patient_scope(actor.user, select(Patient.id))
    scope = and_(RtmEnrolment.status == ACTIVE, RtmEnrolment.patient_id.in_(visible))
    evaluated = evaluate_subjects(_subjects(scope), now=now)
    thresholds = _thresholds({s.row.clinic_id for s, *_ in evaluated})
    alerts = defaultdict(list)
    for alert in db.session.scalars(select(RtmAlert).where(
            RtmAlert.acknowledged_at.is_(None), RtmAlert.patient_id.in_(visible)).order_by(RtmAlert.day.desc())):
        alerts[alert.enrolment_id].append(alert)
    unread = dict(db.session.execute(
        select(InboundMessage.patient_id, func.count()).where(
            InboundMessage.needs_attention.is_(True), InboundMessage.read_at.is_(None),
            InboundMessage.patient_id.in_(visible)).group_by(InboundMessage.patient_id)).all())
    patients = {p.id: p for p in db.session.scalars(
        select(Patient).where(Patient.id.in_([s.row.patient_id for s, *_ in evaluated])))}
    items = []
    for subject, evaluation, _context, today in evaluated:
        item = TriageItem(patients[subject.row.patient_id], subject.row.episode_id)
        slack = thresholds.get(subject.row.clinic_id, AlertThresholds()).at_risk_slack_days
        if evaluation.periods:
            period, days = evaluation.periods[-1]
            if not period.closed(today):
                low, high = rules.day_forecast(subject.as_rules().system, days, period, today)
                tier = high if high.reachable else low
                if rules.at_risk(tier, slack):
                    item.at_risk = True
                    item.reasons.append(f"{tier.needed} more data days needed in {tier.days_left} days for {tier.code}")
        if evaluation.months:
            month, tally = evaluation.months[-1]
            if not month.closed(today) and not tally.interactive:
                item.interactive_missing = True
                item.reasons.append("no real-time interactive communication yet this month")
        item.alerts = alerts[subject.row.id]
        item.unread_texts = unread.get(subject.row.patient_id, 0)
        if item.reasons or item.alerts or item.unread_texts:
            items.append(item)
    audit_rows = [audit_entry(actor, "triage", "patient", i.patient.id, now, i.patient.id) for i in items]
    db.session.add_all(audit_rows)
    db.session.commit()
    items.sort(key=lambda i: (-len(i.alerts), not i.at_risk, i.patient.last_name))
    return items


def send_reminder(actor: Actor, patient_id: int, *, now: datetime) -> bool:
    """The triage inbox's one-click nudge: today's check-in reminder, once per patient per day.
    False when no text can be sent (no SMS consent or no mobile number)."""
    from telerehab.messaging import operations as messaging
    from telerehab.messaging import rules as sms_rules

    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.SEND_MESSAGES)
    today = local_today(patient.timezone, now)
    message = messaging.enqueue_sms(patient, kind="reminder", body=sms_rules.reminder_body(patient.clinic.name),
                                    idempotency_key=f"rtm-nudge:{patient.id}:{today.isoformat()}", now=now,
                                    created_by=actor.user)
    if message is None:
        db.session.rollback()
        return False
    db.session.flush()
    audit(actor, "queue_sms", "sms_outbox", message.id, now=now, patient_id=patient.id, detail="kind=rtm_nudge")
    db.session.commit()
    return True


# ================================================================ the patient's RPM periods and therapy amounts


@dataclass
class PatientInputs:
    """What the engine reads from the patient beyond the enrolment, for the RTM panel: the RPM
    periods recorded, the year-to-date therapy amounts, and the payer's policy applied to them."""

    rpm_periods: list[RpmPeriod]  # latest start first
    therapy_amounts: list[TherapyAmount]  # latest year first
    policy: RtmPolicy
    kx_years: set[int]  # years whose amount passes the payer's KX threshold


def patient_inputs(actor: Actor, patient_id: int, *, now: datetime) -> PatientInputs:
    """The patient's RPM periods and year-to-date therapy amounts, with their payer's policy (the
    organisation's settings for the patient's kind of payer, as the evaluation looks it up)."""
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.VIEW_MONITORING)
    periods = list(db.session.scalars(select(RpmPeriod).where(RpmPeriod.patient_id == patient.id)
                                      .order_by(RpmPeriod.start_date.desc(), RpmPeriod.id.desc())))
    amounts = list(db.session.scalars(select(TherapyAmount).where(TherapyAmount.patient_id == patient.id)
                                      .order_by(TherapyAmount.year.desc())))
    policy = policy_of(payer_row(patient.clinic.organisation_id, patient.payer_type))
    # The lines' own modifier rule decides, so the panel cannot disagree with what is billed.
    kx_years = {amount.year for amount in amounts if billing.THRESHOLD_MODIFIER in billing.modifiers(
        billing.MANAGEMENT_FIRST_20, assistant_over_de_minimis=False, ytd_therapy_cents=amount.amount_cents,
        policy=policy)}
    audit(actor, "list", "rpm_period", None, now=now, patient_id=patient.id,
          detail="ids=" + ",".join(str(p.id) for p in periods))
    audit(actor, "list", "therapy_amount", None, now=now, patient_id=patient.id,
          detail="ids=" + ",".join(str(a.id) for a in amounts))
    db.session.commit()
    return PatientInputs(periods, amounts, policy, kx_years)
