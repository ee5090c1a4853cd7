"""Use cases for episodes of care (plans of care)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from telerehab.accounts.models import Clinic, Patient, User
from telerehab.accounts.operations import (
    Actor,
    Page,
    active_consent,
    audit,
    audit_reads,
    consent_in_force,
    hash_token,
    new_secret_token,
)
from telerehab.accounts.policy import (
    Permission,
    can_use_clinic,
    has_permission,
    patient_scope,
    require_patient,
    require_permission,
)
from telerehab.accounts.rules import CLINICAL_ROLES, ConsentKind, Role
from telerehab.accounts.schemas import PAYER_TYPES
from telerehab.careplans.models import (
    CalendarFeed,
    CareSettings,
    ClinicClosure,
    Episode,
    EpisodeDiagnosis,
    EpisodeGoal,
    NoteAddendum,
    PayerSettings,
    Recertification,
    ServiceLine,
    VideoSlotOffer,
    Visit,
    VisitNote,
    WorkingHours,
)
from telerehab.careplans.records import episode_for, visit_for
from telerehab.careplans.rules import (
    DEFAULT_WORKING_HOURS,
    PLANNED_VISIT_STATUSES,
    Alert,
    CadencePolicy,
    CadenceProposal,
    CadenceRequest,
    EpisodeStatus,
    Modality,
    PlanFacts,
    ServiceMinutes,
    VisitKind,
    VisitStatus,
    cadence_request_problems,
    certification_problems,
    clinician_problem,
    discharge_problems,
    interval_problem,
    line_modifiers,
    nearest_free_slot,
    normalise_icd10,
    overlaps,
    place_of_service,
    plan_alerts,
    propose_cadence,
    telehealth_consent_alert,
    timed_units,
    transition_problem,
    working_hours_problems,
)
from telerehab.db_types import contains_text
from telerehab.errors import Forbidden, NotFound, ValidationFailed
from telerehab.extensions import db
from telerehab.messaging import operations as messaging

_SCALAR_FIELDS = (
    "title", "status", "start_date", "frequency_per_week", "duration_weeks",
    "certification_start", "certification_end", "certifying_physician_name",
    "certifying_physician_npi", "certification_signed_on", "discharge_date", "discharge_reason",
    "plan_notes", "therapist_id",
)


def _check(values: dict[str, Any]) -> None:
    problems = certification_problems(
        start_date=values["start_date"],
        certification_start=values.get("certification_start"),
        certification_end=values.get("certification_end"),
        certification_signed_on=values.get("certification_signed_on"),
    )
    problems |= discharge_problems(
        status=values["status"], start_date=values["start_date"],
        discharge_date=values.get("discharge_date"), discharge_reason=values.get("discharge_reason"),
    )
    if values.get("certification_signed_on") and not values.get("certifying_physician_npi"):
        problems["certifying_physician_npi"] = "A signed certification names the physician's NPI."
    if problems:
        raise ValidationFailed({field: [message] for field, message in problems.items()})


def _check_therapist(actor: Actor, therapist_id: int, clinic_id: int) -> None:
    therapist = db.session.get(User, therapist_id)
    if therapist is None or therapist.role != Role.THERAPIST or therapist.clinic_id != clinic_id \
            or not therapist.is_active:
        raise ValidationFailed({"therapist_id": ["Choose an active therapist of the patient's clinic."]})


def _apply(episode: Episode, values: dict[str, Any]) -> list[str]:
    changed = []
    for key in _SCALAR_FIELDS:
        if key in values and getattr(episode, key) != values[key]:
            setattr(episode, key, values[key])
            changed.append(key)
    if "diagnoses" in values:
        codes = [normalise_icd10(c) for c in values["diagnoses"]]
        if codes != episode.diagnosis_codes:
            episode.diagnoses.clear()
            db.session.flush()  # the unique (episode, position) rows must go before new ones come
            episode.diagnoses.extend(EpisodeDiagnosis(position=i, code=c) for i, c in enumerate(codes, 1))
            changed.append("diagnoses")
    if "goals" in values:
        goals = [(g["description"], g.get("target_date")) for g in values["goals"]]
        if goals != [(g.description, g.target_date) for g in episode.goals]:
            episode.goals.clear()
            db.session.flush()
            episode.goals.extend(
                EpisodeGoal(position=i, description=d, target_date=t) for i, (d, t) in enumerate(goals, 1)
            )
            changed.append("goals")
    return changed


def create_episode(actor: Actor, patient_id: int, data: dict[str, Any], *, now: datetime) -> Episode:
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.EDIT_EPISODE)
    values = {"status": EpisodeStatus.ACTIVE, "therapist_id": actor.user.id, **data}
    _check(values)
    _check_therapist(actor, values["therapist_id"], patient.clinic_id)
    episode = Episode(patient_id=patient.id, clinic_id=patient.clinic_id, created_at=now, updated_at=now)
    db.session.add(episode)
    _apply(episode, values)
    db.session.flush()
    audit(actor, "create", "episode", episode.id, now=now, patient_id=patient.id)
    db.session.commit()
    return episode


def update_episode(actor: Actor, episode_id: int, data: dict[str, Any], *, now: datetime) -> Episode:
    episode = episode_for(actor, episode_id, Permission.EDIT_EPISODE)
    current = {key: getattr(episode, key) for key in _SCALAR_FIELDS}
    values = {**current, **data}
    _check(values)
    if "therapist_id" in data:
        _check_therapist(actor, data["therapist_id"], episode.clinic_id)
    changed = _apply(episode, data)
    if changed:
        episode.updated_at = now
    audit(actor, "update", "episode", episode.id, now=now, patient_id=episode.patient_id,
          detail="fields=" + ",".join(changed))
    db.session.commit()
    return episode


def get_episode(actor: Actor, episode_id: int, *, now: datetime) -> Episode:
    episode = episode_for(actor, episode_id, Permission.VIEW_EPISODE)
    audit(actor, "read", "episode", episode.id, now=now, patient_id=episode.patient_id)
    db.session.commit()
    return episode


def episodes_of_patient(actor: Actor, patient_id: int, *, now: datetime) -> list[Episode]:
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.VIEW_EPISODE)
    episodes = list(db.session.scalars(
        select(Episode).where(Episode.patient_id == patient.id).order_by(Episode.start_date.desc())
    ))
    audit(actor, "list", "episode", None, now=now, patient_id=patient.id,
          detail="ids=" + ",".join(str(e.id) for e in episodes))
    db.session.commit()
    return episodes


def may_see_plan_notes(actor: Actor) -> bool:
    return has_permission(actor.user, Permission.VIEW_CLINICAL_NOTES)


def search_episodes(
    actor: Actor, *, query: str | None, status: str | None, page: int, page_size: int, now: datetime
) -> Page:
    """Episodes of the patients the actor may see, newest first, matching patient name or title."""
    require_permission(actor.user, Permission.VIEW_EPISODE)
    statement = patient_scope(actor.user, select(Episode).join(Patient, Episode.patient_id == Patient.id))
    if query:
        statement = statement.where(or_(
            contains_text(Episode.title, query),
            contains_text(Patient.first_name + " " + Patient.last_name, query),
        ))
    if status:
        statement = statement.where(Episode.status == status)
    total = db.session.scalar(select(func.count()).select_from(statement.subquery()))
    episodes = list(db.session.scalars(
        statement.order_by(Episode.start_date.desc(), Episode.id.desc())
        .limit(page_size).offset((page - 1) * page_size)
    ))
    for episode in episodes:
        audit(actor, "list", "episode", episode.id, now=now, patient_id=episode.patient_id)
    db.session.commit()
    return Page(items=episodes, total=total, page=page, page_size=page_size)


def latest_episodes(actor: Actor, patients: list[Patient]) -> dict[int, Episode]:
    """The most recent episode of each of `patients` (already read, and audited, by the caller)."""
    for patient in patients:
        require_patient(actor.user, patient, Permission.VIEW_EPISODE)
    latest: dict[int, Episode] = {}
    if patients:
        for episode in db.session.scalars(
            select(Episode).where(Episode.patient_id.in_([p.id for p in patients]))
            .order_by(Episode.patient_id, Episode.start_date.desc(), Episode.id.desc())
        ):
            latest.setdefault(episode.patient_id, episode)
    return latest


# ================================================================ visits
#
# Scheduling, status changes, the video slot offered when a clinic visit is cancelled, notes with
# signatures and addenda, services with their derived units, POS and modifiers, plan tracking.

ACTIVE_VISIT_STATUSES = (VisitStatus.SCHEDULED, VisitStatus.CHECKED_IN, VisitStatus.IN_PROGRESS,
                         VisitStatus.COMPLETED)
OFFER_TOKEN_PREFIX = "vso_"  # noqa: S105 (a public prefix, not a secret)


def care_settings(clinic_id: int) -> CareSettings:
    """The clinic's rule choices; a clinic that never changed them gets the defaults."""
    settings = db.session.scalar(select(CareSettings).where(CareSettings.clinic_id == clinic_id))
    if settings is None:
        settings = CareSettings(clinic_id=clinic_id)
        for column in CareSettings.__table__.columns:
            if column.default is not None and getattr(settings, column.key) is None:
                setattr(settings, column.key, column.default.arg)
    return settings


def cadence_policy(settings: CareSettings) -> CadencePolicy:
    return CadencePolicy(
        initial_evaluation_in_clinic=settings.initial_evaluation_in_clinic,
        progress_every_treatment_visits=settings.progress_every_treatment_visits,
        progress_in_clinic=settings.progress_in_clinic,
        discharge_in_clinic=settings.discharge_in_clinic,
        one_visit_per_patient_per_day=settings.one_visit_per_patient_per_day,
        allow_beyond_certification=settings.allow_beyond_certification,
    )


def working_hours_of(user_id: int) -> dict[int, tuple[tuple[time, time], ...]]:
    rows = db.session.scalars(select(WorkingHours).where(WorkingHours.user_id == user_id)).all()
    if not rows:
        return DEFAULT_WORKING_HOURS
    hours: dict[int, list[tuple[time, time]]] = {}
    for row in sorted(rows, key=lambda r: (r.weekday, r.starts)):
        hours.setdefault(row.weekday, []).append((row.starts, row.ends))
    return {weekday: tuple(intervals) for weekday, intervals in hours.items()}


def _busy_intervals(clinician_id: int, start: datetime, end: datetime, *, except_visit_id: int | None = None):
    query = select(Visit.starts_at, Visit.ends_at).where(
        Visit.clinician_id == clinician_id, Visit.status.in_(ACTIVE_VISIT_STATUSES),
        Visit.starts_at < end, Visit.ends_at > start,
    )
    if except_visit_id is not None:
        query = query.where(Visit.id != except_visit_id)
    return [(s, e) for s, e in db.session.execute(query)]


def _patient_visit_days(patient_id: int, zone: ZoneInfo, *, except_visit_id: int | None = None) -> set[date]:
    query = select(Visit.starts_at).where(Visit.patient_id == patient_id, Visit.status.in_(ACTIVE_VISIT_STATUSES))
    if except_visit_id is not None:
        query = query.where(Visit.id != except_visit_id)
    return {starts.astimezone(zone).date() for starts in db.session.scalars(query)}


def _closures(clinic_id: int) -> frozenset[date]:
    return frozenset(db.session.scalars(select(ClinicClosure.day).where(ClinicClosure.clinic_id == clinic_id)))


def certified_until(episode: Episode, recertifications: list[Recertification] | None = None) -> date | None:
    """The last certified day: the latest recertification's end, else the plan's own."""
    if recertifications is None:
        recertifications = _recertifications(episode.id)
    ends = [r.certification_end for r in recertifications]
    if episode.certification_end is not None:
        ends.append(episode.certification_end)
    return max(ends) if ends else None


def _recertifications(episode_id: int) -> list[Recertification]:
    return list(db.session.scalars(select(Recertification).where(Recertification.episode_id == episode_id)))


def _clinician(actor: Actor, clinician_id: int, clinic_id: int) -> User:
    clinician = db.session.get(User, clinician_id)
    if clinician is None or clinician.clinic_id != clinic_id or not clinician.is_active \
            or clinician.role not in {Role.THERAPIST, Role.ASSISTANT}:
        raise ValidationFailed({"clinician_id": ["Choose an active therapist or assistant of this clinic."]})
    return clinician


def _modality_pattern(values) -> tuple[Modality, ...]:
    try:
        return tuple(Modality(value) for value in values or ())
    except ValueError:
        raise ValidationFailed({"modality_pattern": ["Each entry is in_clinic or video."]}) from None


def preview_cadence(actor: Actor, episode_id: int, options: dict[str, Any], *, now: datetime) -> CadenceProposal:
    """The proposed series for an episode (nothing is written): the therapist edits, then confirms."""
    episode = episode_for(actor, episode_id, Permission.SCHEDULE_VISITS)
    _ensure_schedulable(episode)
    if options.get("start_date") and options["start_date"] < episode.start_date:
        raise ValidationFailed({"start_date": ["The series cannot start before the episode."]})
    settings = care_settings(episode.clinic_id)
    clinician_id = options.get("clinician_id") or episode.therapist_id
    _clinician(actor, clinician_id, episode.clinic_id)
    zone = ZoneInfo(episode.clinic.timezone)
    start_date = options.get("start_date") or max(episode.start_date, now.astimezone(zone).date())
    horizon_start = datetime.combine(start_date, time(0), zone)
    horizon_end = horizon_start + timedelta(weeks=episode.duration_weeks + 1)
    request = CadenceRequest(
        start_date=start_date,
        frequency_per_week=episode.frequency_per_week,
        duration_weeks=episode.duration_weeks,
        certification_end=certified_until(episode),
        recertification_recorded=bool(_recertifications(episode.id)),
        modality_pattern=_modality_pattern(options.get("modality_pattern")),
        preferred_weekdays=tuple(options.get("preferred_weekdays") or ()),
        preferred_start=options.get("preferred_start") or time(9, 0),
        visit_minutes=options.get("visit_minutes") or settings.visit_minutes,
        clinic_timezone=episode.clinic.timezone,
        working_hours=working_hours_of(clinician_id),
        therapist_busy=tuple(_busy_intervals(clinician_id, horizon_start, horizon_end)),
        patient_visit_dates=frozenset(_patient_visit_days(episode.patient_id, zone)),
        closures=_closures(episode.clinic_id),
        policy=cadence_policy(settings),
    )
    problems = cadence_request_problems(request)
    if problems:
        raise ValidationFailed({field: [message] for field, message in problems.items()})
    return propose_cadence(request)


@dataclass(frozen=True)
class _EpisodeSlots:
    """What placing any visit of one episode depends on, loaded once however many visits are checked."""

    episode: Episode
    zone: ZoneInfo
    settings: CareSettings
    closures: frozenset[date]
    patient_days: frozenset[date]
    certified: date | None
    may_go_beyond: bool


def _episode_slots(episode: Episode, *, except_visit_id: int | None = None) -> _EpisodeSlots:
    zone = ZoneInfo(episode.clinic.timezone)
    settings = care_settings(episode.clinic_id)
    recertifications = _recertifications(episode.id)
    return _EpisodeSlots(
        episode=episode, zone=zone, settings=settings, closures=_closures(episode.clinic_id),
        patient_days=frozenset(_patient_visit_days(episode.patient_id, zone, except_visit_id=except_visit_id)),
        certified=certified_until(episode, recertifications),
        may_go_beyond=settings.allow_beyond_certification or bool(recertifications),
    )


def _slot_problems(
    slots: _EpisodeSlots, clinician: User, kind: VisitKind, starts_at: datetime, ends_at: datetime, *,
    except_visit_id: int | None = None, taken_days: set[date] = frozenset(),
    taken_intervals: list[tuple[datetime, datetime]] = (),
) -> tuple[dict[str, list[str]], bool]:
    """Every problem with placing one visit (field -> messages), and whether it falls after the
    certified period."""
    interval = interval_problem(starts_at, ends_at)
    if interval:
        return {"ends_at": [interval]}, False
    problems: dict[str, list[str]] = {}

    def problem(field_name: str, message: str) -> None:
        problems.setdefault(field_name, []).append(message)

    who = clinician_problem(kind, clinician.role)
    if who:
        problem("clinician_id", who)
    day = starts_at.astimezone(slots.zone).date()
    if day < slots.episode.start_date:
        problem("starts_at", "The visit falls before the episode starts.")
    if day in slots.closures:
        problem("starts_at", f"The clinic is closed on {day:%Y-%m-%d}.")
    clashes = _busy_intervals(clinician.id, starts_at, ends_at, except_visit_id=except_visit_id)
    if clashes or any(overlaps(starts_at, ends_at, s, e) for s, e in taken_intervals):
        problem("starts_at", f"{clinician.full_name} already has a visit at that time.")
    if slots.settings.one_visit_per_patient_per_day and (day in slots.patient_days or day in taken_days):
        problem("starts_at", f"The patient already has a visit on {day:%Y-%m-%d}.")
    beyond = slots.certified is not None and day > slots.certified
    if beyond and not slots.may_go_beyond:
        problem("starts_at", f"The visit falls after the certified period ({slots.certified:%Y-%m-%d}); "
                             "record a recertification first.")
    return problems, beyond


def _new_visit(episode: Episode, clinician: User, data: dict[str, Any], beyond: bool, now: datetime) -> Visit:
    return Visit(
        episode_id=episode.id, patient_id=episode.patient_id, clinic_id=episode.clinic_id,
        clinician_id=clinician.id, modality=data["modality"], kind=data["kind"], status=VisitStatus.SCHEDULED,
        starts_at=data["starts_at"], ends_at=data["ends_at"],
        room=data.get("room") if data["modality"] == Modality.IN_CLINIC else None,
        beyond_certification=beyond, status_changed_at=now, created_at=now,
    )


def _ensure_schedulable(episode: Episode) -> None:
    if episode.status == EpisodeStatus.DISCHARGED:
        raise ValidationFailed({"episode": ["The episode is discharged: open a new one to schedule visits."]})


def confirm_cadence(
    actor: Actor, episode_id: int, visits: list[dict[str, Any]], *, clinician_id: int | None, now: datetime
) -> list[Visit]:
    """Write the series the therapist confirmed (as proposed or edited): all of it, or none."""
    episode = episode_for(actor, episode_id, Permission.SCHEDULE_VISITS)
    _ensure_schedulable(episode)
    clinician = _clinician(actor, clinician_id or episode.therapist_id, episode.clinic_id)
    if not visits:
        raise ValidationFailed({"visits": ["Confirm at least one visit."]})
    zone = ZoneInfo(episode.clinic.timezone)
    errors: dict[str, list[str]] = {}
    created: list[Visit] = []
    taken_days: set[date] = set()
    taken: list[tuple[datetime, datetime]] = []
    # Checked in time order (each against the earlier ones), reported by the index the client sent.
    slots = _episode_slots(episode)
    for index, data in sorted(enumerate(visits), key=lambda pair: pair[1]["starts_at"]):
        problems, beyond = _slot_problems(slots, clinician, VisitKind(data["kind"]), data["starts_at"],
                                          data["ends_at"], taken_days=taken_days, taken_intervals=taken)
        for field_name, messages in problems.items():
            errors[f"visits.{index}.{field_name}"] = messages
        taken_days.add(data["starts_at"].astimezone(zone).date())
        taken.append((data["starts_at"], data["ends_at"]))
        created.append(_new_visit(episode, clinician, data, beyond, now))
    if errors:
        raise ValidationFailed(errors)
    db.session.add_all(created)
    db.session.flush()
    audit(actor, "schedule_series", "episode", episode.id, now=now, patient_id=episode.patient_id,
          detail="visits=" + ",".join(str(v.id) for v in created))
    db.session.commit()
    return created


def schedule_visit(actor: Actor, episode_id: int, data: dict[str, Any], *, now: datetime) -> Visit:
    episode = episode_for(actor, episode_id, Permission.SCHEDULE_VISITS)
    _ensure_schedulable(episode)
    clinician = _clinician(actor, data.get("clinician_id") or episode.therapist_id, episode.clinic_id)
    problems, beyond = _slot_problems(_episode_slots(episode), clinician, VisitKind(data["kind"]),
                                      data["starts_at"], data["ends_at"])
    if problems:
        raise ValidationFailed(problems)
    visit = _new_visit(episode, clinician, data, beyond, now)
    db.session.add(visit)
    db.session.flush()
    audit(actor, "schedule", "visit", visit.id, now=now, patient_id=visit.patient_id)
    db.session.commit()
    return visit


def get_visit(actor: Actor, visit_id: int, *, now: datetime) -> Visit:
    visit = visit_for(actor, visit_id, Permission.VIEW_VISITS)
    audit(actor, "read", "visit", visit.id, now=now, patient_id=visit.patient_id)
    db.session.commit()
    return visit


def reschedule_visit(actor: Actor, visit_id: int, starts_at: datetime, ends_at: datetime, *, now: datetime) -> Visit:
    visit = visit_for(actor, visit_id, Permission.SCHEDULE_VISITS)
    if visit.status not in (VisitStatus.SCHEDULED, VisitStatus.CHECKED_IN):
        raise ValidationFailed({"status": [f"A {visit.status.replace('_', ' ')} visit cannot be moved."]})
    problems, beyond = _slot_problems(_episode_slots(visit.episode, except_visit_id=visit.id), visit.clinician,
                                      VisitKind(visit.kind), starts_at, ends_at, except_visit_id=visit.id)
    if problems:
        raise ValidationFailed(problems)
    before = visit.starts_at
    visit.starts_at, visit.ends_at, visit.beyond_certification = starts_at, ends_at, beyond
    visit.status, visit.status_changed_at = VisitStatus.SCHEDULED, now
    audit(actor, "reschedule", "visit", visit.id, now=now, patient_id=visit.patient_id,
          detail=f"from={before.isoformat()} to={starts_at.isoformat()}")
    db.session.commit()
    return visit


def change_visit_status(
    actor: Actor, visit_id: int, new_status: str, *, reason: str | None = None, now: datetime
) -> tuple[Visit, str | None]:
    """Move a visit along its allowed transitions. Cancelling a clinic visit offers the patient the
    nearest free video slot that week; the second value is the offer's one-tap token, if any."""
    visit = visit_for(actor, visit_id, Permission.SCHEDULE_VISITS)
    new_status = VisitStatus(new_status)
    if visit.status == new_status:
        return visit, None  # a retried request changes nothing
    problem = transition_problem(VisitStatus(visit.status), new_status, modality=Modality(visit.modality))
    if problem:
        raise ValidationFailed({"status": [problem]})
    if new_status == VisitStatus.CANCELLED and not (reason or "").strip():
        raise ValidationFailed({"reason": ["Say why the visit is cancelled."]})
    visit.status, visit.status_changed_at = new_status, now
    if new_status == VisitStatus.CANCELLED:
        visit.cancel_reason = reason.strip()
    audit(actor, f"status_{new_status}", "visit", visit.id, now=now, patient_id=visit.patient_id,
          detail=reason)
    token = None
    if new_status == VisitStatus.CANCELLED and visit.modality == Modality.IN_CLINIC:
        token = _offer_video_slot(visit, now=now)
    db.session.commit()
    return visit, token


def _offer_video_slot(cancelled: Visit, *, now: datetime) -> str | None:
    zone = ZoneInfo(cancelled.clinic.timezone)
    length = cancelled.ends_at - cancelled.starts_at
    settings = care_settings(cancelled.clinic_id)
    blocked = set(_closures(cancelled.clinic_id))
    if settings.one_visit_per_patient_per_day:
        blocked |= _patient_visit_days(cancelled.patient_id, zone, except_visit_id=cancelled.id)
    week_start = cancelled.starts_at - timedelta(days=7)
    slot = nearest_free_slot(
        cancelled.starts_at, minutes=int(length.total_seconds() // 60), timezone=cancelled.clinic.timezone,
        working_hours=working_hours_of(cancelled.clinician_id),
        busy=_busy_intervals(cancelled.clinician_id, week_start, cancelled.starts_at + timedelta(days=7)),
        blocked_days=frozenset(blocked), not_before=now + timedelta(hours=1),
    )
    if slot is None:
        return None
    token, token_hash = new_secret_token(OFFER_TOKEN_PREFIX)
    offer = VideoSlotOffer(
        cancelled_visit_id=cancelled.id, starts_at=slot[0], ends_at=slot[1], token_hash=token_hash,
        expires_at=min(slot[0], now + timedelta(days=7)),
    )
    db.session.add(offer)
    db.session.flush()
    # The text goes out with the cancellation (same transaction); it names no diagnosis.
    link = messaging.public_link(f"/offers/accept/{token}")
    when = slot[0].astimezone(ZoneInfo(cancelled.patient.timezone)).strftime("%a %d %b at %H:%M")
    messaging.enqueue_sms(
        cancelled.patient, kind="video_offer", idempotency_key=f"video_offer:{offer.id}", now=now,
        expires_at=offer.expires_at,
        body=f"Your clinic visit was cancelled. A video visit is free on {when}. "
             + (f"Tap to take it: {link}" if link else "Open the telerehab app to take it."),
    )
    return token


def open_offers_for_patient(actor: Actor, patient_id: int, *, now: datetime) -> list[VideoSlotOffer]:
    require_patient(actor.user, db.session.get(Patient, patient_id), Permission.VIEW_VISITS)
    offers = list(db.session.scalars(
        select(VideoSlotOffer).join(Visit, VideoSlotOffer.cancelled_visit_id == Visit.id)
        .where(Visit.patient_id == patient_id, VideoSlotOffer.accepted_at.is_(None), VideoSlotOffer.expires_at > now)
        .order_by(VideoSlotOffer.starts_at)
    ))
    audit_reads(actor, "list", "video_slot_offer", [(o.id, patient_id) for o in offers], now=now)
    return offers


def offer_for_token(token: str, *, now: datetime) -> VideoSlotOffer:
    offer = db.session.scalar(select(VideoSlotOffer).where(VideoSlotOffer.token_hash == hash_token(token)))
    if offer is None:
        raise NotFound("This offer link is not valid.")
    return offer


def accept_offer(actor: Actor, offer_id: int, *, now: datetime) -> Visit:
    """The patient (or staff for them) takes the offered video slot: a new video visit."""
    offer = db.session.get(VideoSlotOffer, offer_id)
    if offer is None:
        raise NotFound("No such offer.")
    cancelled = offer.cancelled_visit
    require_patient(actor.user, cancelled.patient, Permission.VIEW_VISITS)
    if actor.user.role not in (Role.PATIENT, *CLINICAL_ROLES, Role.ADMIN):
        raise Forbidden("Only the patient or the care team can accept an offer.")
    if offer.accepted_visit_id is not None:
        return db.session.get(Visit, offer.accepted_visit_id)  # a second tap changes nothing
    if offer.expires_at <= now:
        raise ValidationFailed({"offer": ["This offer has expired; call the clinic to rebook."]})
    episode = cancelled.episode
    kind = VisitKind(cancelled.kind)
    problems, beyond = _slot_problems(_episode_slots(episode), cancelled.clinician, kind, offer.starts_at,
                                      offer.ends_at)
    if problems:
        raise ValidationFailed({"offer": ["This slot has just been taken; call the clinic to rebook."]})
    visit = _new_visit(episode, cancelled.clinician, {
        "modality": Modality.VIDEO, "kind": kind, "starts_at": offer.starts_at, "ends_at": offer.ends_at,
    }, beyond, now)
    visit.rescheduled_from_id = cancelled.id
    db.session.add(visit)
    db.session.flush()
    offer.accepted_visit_id, offer.accepted_at = visit.id, now
    audit(actor, "accept_video_offer", "visit", visit.id, now=now, patient_id=visit.patient_id,
          detail=f"replaces={cancelled.id}")
    db.session.commit()
    return visit


# ---------------------------------------------------------------- lists and calendars

_VISIT_LOAD = (selectinload(Visit.patient), selectinload(Visit.clinician), selectinload(Visit.episode),
               selectinload(Visit.clinic))


def calendar_visits(
    actor: Actor, *, clinician_id: int | None, start: datetime, end: datetime, now: datetime
) -> list[Visit]:
    """Visits between `start` and `end` that the actor may see, optionally one clinician's."""
    require_permission(actor.user, Permission.VIEW_VISITS)
    query = patient_scope(actor.user, select(Visit).join(Patient, Visit.patient_id == Patient.id)).where(
        Visit.starts_at < end, Visit.ends_at > start)
    if clinician_id is not None:
        query = query.where(Visit.clinician_id == clinician_id)
    visits = list(db.session.scalars(query.options(*_VISIT_LOAD).order_by(Visit.starts_at)))
    _audit_visit_reads(actor, visits, now)
    return visits


def _audit_visit_reads(actor: Actor, visits: list[Visit], now: datetime) -> None:
    audit_reads(actor, "list", "visit", [(v.id, v.patient_id) for v in visits], now=now)


def visits_of_episode(actor: Actor, episode_id: int, *, now: datetime) -> list[Visit]:
    episode = episode_for(actor, episode_id, Permission.VIEW_VISITS)
    visits = list(db.session.scalars(
        select(Visit).where(Visit.episode_id == episode.id).options(*_VISIT_LOAD).order_by(Visit.starts_at)))
    _audit_visit_reads(actor, visits, now)
    return visits


def upcoming_visits(actor: Actor, patient_id: int, *, now: datetime) -> list[Visit]:
    require_patient(actor.user, db.session.get(Patient, patient_id), Permission.VIEW_VISITS)
    visits = list(db.session.scalars(
        select(Visit).where(Visit.patient_id == patient_id, Visit.ends_at > now,
                            Visit.status.in_((VisitStatus.SCHEDULED, VisitStatus.CHECKED_IN, VisitStatus.IN_PROGRESS)))
        .options(*_VISIT_LOAD).order_by(Visit.starts_at)))
    _audit_visit_reads(actor, visits, now)
    return visits


# ---------------------------------------------------------------- notes

NOTE_FIELDS = ("subjective", "objective", "assessment", "plan")


def _note_for_writing(actor: Actor, visit_id: int) -> tuple[Visit, VisitNote | None]:
    visit = visit_for(actor, visit_id, Permission.DOCUMENT_VISITS)
    return visit, visit.note


def save_note(actor: Actor, visit_id: int, data: dict[str, str], *, now: datetime) -> VisitNote:
    """Write or change the draft SOAP note; a signed note is locked (add an addendum instead)."""
    visit, note = _note_for_writing(actor, visit_id)
    if visit.status in (VisitStatus.CANCELLED, VisitStatus.NO_SHOW):
        raise ValidationFailed({"note": ["A cancelled or missed visit has no note."]})
    if note is None:
        note = VisitNote(author_id=actor.user.id, updated_at=now, **{f: "" for f in NOTE_FIELDS})
        visit.note = note
    elif note.signed_at is not None:
        raise ValidationFailed({"note": ["The note is signed and locked; add an addendum instead."]})
    elif note.author_id != actor.user.id:
        raise Forbidden("Only the note's author can change a draft.")
    for name in NOTE_FIELDS:
        if name in data:
            setattr(note, name, data[name])
    note.updated_at = now
    db.session.flush()
    audit(actor, "save_note", "visit_note", note.id, now=now, patient_id=visit.patient_id)
    db.session.commit()
    return note


def sign_note(actor: Actor, visit_id: int, *, now: datetime) -> VisitNote:
    visit, note = _note_for_writing(actor, visit_id)
    if note is None or not any(getattr(note, f).strip() for f in NOTE_FIELDS):
        raise ValidationFailed({"note": ["Write the note before signing it."]})
    if note.author_id != actor.user.id:
        raise Forbidden("A note is signed by its author.")
    if note.signed_at is None:
        note.signed_at = now
        audit(actor, "sign_note", "visit_note", note.id, now=now, patient_id=visit.patient_id)
        db.session.commit()
    return note


def get_note(actor: Actor, visit_id: int, *, now: datetime) -> VisitNote:
    """A visit's note, for clinical staff only; the read is audited like any clinical record."""
    visit = visit_for(actor, visit_id, Permission.VIEW_CLINICAL_NOTES)
    if visit.note is None:
        raise NotFound("This visit has no note yet.")
    audit(actor, "read", "visit_note", visit.note.id, now=now, patient_id=visit.patient_id)
    db.session.commit()
    return visit.note


def note_needs_cosign(note: VisitNote) -> bool:
    settings = care_settings(note.visit.clinic_id)
    return settings.assistant_notes_need_cosign and note.author.role == Role.ASSISTANT


def cosign_note(actor: Actor, visit_id: int, *, now: datetime) -> VisitNote:
    visit = visit_for(actor, visit_id, Permission.COSIGN_NOTES)
    note = visit.note
    if note is None or note.signed_at is None:
        raise ValidationFailed({"note": ["The assistant signs the note first."]})
    if not note_needs_cosign(note):
        raise ValidationFailed({"note": ["This note does not need a co-signature."]})
    if note.cosigned_at is None:
        note.cosigned_at, note.cosigned_by_id = now, actor.user.id
        audit(actor, "cosign_note", "visit_note", note.id, now=now, patient_id=visit.patient_id)
        db.session.commit()
    return note


def add_addendum(actor: Actor, visit_id: int, text: str, *, now: datetime) -> NoteAddendum:
    visit, note = _note_for_writing(actor, visit_id)
    if note is None or note.signed_at is None:
        raise ValidationFailed({"text": ["Addenda follow a signed note; change the draft instead."]})
    if not text.strip():
        raise ValidationFailed({"text": ["Write the addendum."]})
    addendum = NoteAddendum(author_id=actor.user.id, text=text.strip(), created_at=now)
    note.addenda.append(addendum)
    db.session.flush()
    audit(actor, "add_addendum", "visit_note", note.id, now=now, patient_id=visit.patient_id)
    db.session.commit()
    return addendum


# ---------------------------------------------------------------- services and charges

def set_services(
    actor: Actor, visit_id: int, lines: list[dict[str, Any]], *, audio_only: bool = False, now: datetime
) -> list[ServiceLine]:
    """Record the services of a visit; units follow the 8-minute rule over the patient's timed
    minutes that day, and POS and modifiers are derived from the visit, never typed."""
    visit = visit_for(actor, visit_id, Permission.DOCUMENT_VISITS)
    if visit.status != VisitStatus.COMPLETED:
        raise ValidationFailed({"services": ["Record services once the visit is completed."]})
    if visit.note is not None and visit.note.signed_at is not None:
        raise ValidationFailed({"services": ["The note is signed: services are locked with it."]})
    if audio_only and visit.modality != Modality.VIDEO:
        raise ValidationFailed({"audio_only": ["Only a telehealth visit can be audio-only."]})
    codes = [line["cpt_code"] for line in lines]
    if len(set(codes)) != len(codes):
        raise ValidationFailed({"services": ["List each CPT code once, with its total minutes."]})
    for line in lines:
        if not 1 <= line["minutes"] <= 480 or line.get("assistant_minutes", 0) < 0:
            raise ValidationFailed({"services": [f"{line['cpt_code']}: give 1 to 480 minutes."]})
        if line.get("assistant_minutes", 0) > line["minutes"]:
            raise ValidationFailed({"services": [f"{line['cpt_code']}: the assistant's minutes exceed the total."]})
    visit.services.clear()
    db.session.flush()
    for line in lines:
        visit.services.append(ServiceLine(
            cpt_code=line["cpt_code"], minutes=line["minutes"], assistant_minutes=line.get("assistant_minutes", 0),
            units=0, place_of_service="", modifiers=""))
    _derive_charges(visit, audio_only=audio_only)
    audit(actor, "set_services", "visit", visit.id, now=now, patient_id=visit.patient_id,
          detail=",".join(f"{line.cpt_code}x{line.units}" for line in visit.services))
    db.session.commit()
    return visit.services


def _derive_charges(visit: Visit, *, audio_only: bool) -> None:
    """Units over all the patient's completed visits that local day (one discipline), then POS and
    modifiers of this visit's lines."""
    zone = ZoneInfo(visit.clinic.timezone)
    day = visit.starts_at.astimezone(zone).date()
    same_day = [
        v for v in db.session.scalars(select(Visit).where(
            Visit.patient_id == visit.patient_id, Visit.status == VisitStatus.COMPLETED,
            Visit.starts_at >= datetime.combine(day, time(0), zone) - timedelta(hours=1),
            Visit.starts_at < datetime.combine(day + timedelta(days=1), time(0), zone)))
        if v.starts_at.astimezone(zone).date() == day
    ]
    if visit not in same_day:
        same_day.append(visit)
    lines = [line for v in same_day for line in v.services]
    units = timed_units([ServiceMinutes(line.cpt_code, line.minutes, line.assistant_minutes) for line in lines])
    wants_95 = payer_wants_modifier_95(visit.clinic.organisation_id, visit.patient.payer_type)
    modality = Modality(visit.modality)
    for line in visit.services:
        line.units = units[line.cpt_code]
        # A video visit under this plan is with the patient at home (POS 10) unless recorded otherwise.
        line.place_of_service = place_of_service(modality, patient_at_home=True)
        line.modifiers = " ".join(line_modifiers(
            ServiceMinutes(line.cpt_code, line.minutes, line.assistant_minutes), modality=modality,
            payer_wants_modifier_95=wants_95, audio_only=audio_only))


# ---------------------------------------------------------------- plan-of-care tracking

def _plan_facts(episode: Episode, visits: list[Visit], recertified_until: date | None,
                settings: CareSettings, *, telehealth_consent: bool) -> PlanFacts:
    zone = ZoneInfo(episode.clinic.timezone)
    ends = [d for d in (episode.certification_end, recertified_until) if d is not None]
    return PlanFacts(
        first_treatment=episode.start_date,
        certified_until=max(ends) if ends else None,
        certification_signed_on=episode.certification_signed_on,
        completed_kinds=tuple(VisitKind(v.kind) for v in visits if v.status == VisitStatus.COMPLETED),
        planned_dates=tuple(v.starts_at.astimezone(zone).date() for v in visits
                            if v.status in PLANNED_VISIT_STATUSES),
        progress_every=settings.progress_every_treatment_visits,
        video_visits=tuple((v.starts_at.astimezone(zone).date(), VisitStatus(v.status)) for v in visits
                           if v.modality == Modality.VIDEO),
        telehealth_consent_in_force=telehealth_consent,
    )


# Whether the visit's patient has telehealth consent in force, as a column of a query over visits.
_TELEHEALTH_CONSENT_OF_VISIT = consent_in_force(Visit.patient_id, ConsentKind.TELEHEALTH)


def _alerts_for(episodes: list[Episode], *, now: datetime) -> dict[int, list[Alert]]:
    """Alerts of many episodes in three queries, whatever their number."""
    ids = [e.id for e in episodes]
    visits: dict[int, list[Visit]] = {i: [] for i in ids}
    # The consent rides on the visits' query (no query of its own): an episode without visits has
    # no video visit planned, so its consent does not matter.
    consented: set[int] = set()
    for visit, telehealth_consent in db.session.execute(
            select(Visit, _TELEHEALTH_CONSENT_OF_VISIT).where(Visit.episode_id.in_(ids)).order_by(Visit.starts_at)):
        visits[visit.episode_id].append(visit)
        if telehealth_consent:
            consented.add(visit.episode_id)
    recertified = dict(db.session.execute(
        select(Recertification.episode_id, func.max(Recertification.certification_end))
        .where(Recertification.episode_id.in_(ids)).group_by(Recertification.episode_id)).all())
    settings = {clinic_id: care_settings(clinic_id) for clinic_id in {e.clinic_id for e in episodes}}
    return {
        e.id: plan_alerts(_plan_facts(e, visits[e.id], recertified.get(e.id), settings[e.clinic_id],
                                      telehealth_consent=e.id in consented),
                          today=now.astimezone(ZoneInfo(e.clinic.timezone)).date())
        for e in episodes
    }


def video_consent_alert(episode: Episode, video_starts: list[datetime], *, now: datetime) -> Alert | None:
    """The telehealth-consent alert for video visits being planned or just scheduled (for the
    episode the caller has already loaded with its permission checked)."""
    zone = ZoneInfo(episode.clinic.timezone)
    return telehealth_consent_alert(
        [(start.astimezone(zone).date(), VisitStatus.SCHEDULED) for start in video_starts],
        consent_in_force=active_consent(episode.patient, ConsentKind.TELEHEALTH) is not None,
        today=now.astimezone(zone).date())


def episode_alerts(episode: Episode, *, now: datetime) -> list[Alert]:
    return _alerts_for([episode], now=now)[episode.id]


def alerts_of_episode(actor: Actor, episode_id: int, *, now: datetime) -> list[Alert]:
    episode = episode_for(actor, episode_id, Permission.VIEW_EPISODE)
    audit(actor, "read_alerts", "episode", episode.id, now=now, patient_id=episode.patient_id)
    db.session.commit()
    return episode_alerts(episode, now=now)


def caseload_alerts(actor: Actor, *, therapist_id: int, now: datetime) -> list[tuple[Episode, list[Alert]]]:
    """Every active episode of the therapist that needs attention, with its alerts."""
    require_permission(actor.user, Permission.VIEW_EPISODE)
    episodes = list(db.session.scalars(patient_scope(actor.user, select(Episode).join(
        Patient, Episode.patient_id == Patient.id)).where(
        Episode.therapist_id == therapist_id, Episode.status == EpisodeStatus.ACTIVE)
        .options(selectinload(Episode.patient), selectinload(Episode.clinic))))
    alerts = _alerts_for(episodes, now=now)
    return [(episode, alerts[episode.id]) for episode in episodes if alerts[episode.id]]


def record_recertification(actor: Actor, episode_id: int, data: dict[str, Any], *, now: datetime) -> Recertification:
    episode = episode_for(actor, episode_id, Permission.EDIT_EPISODE)
    previous_end = certified_until(episode)
    # Checked without the signature date: a recertification is signed before its period begins.
    problems = certification_problems(
        start_date=episode.start_date, certification_start=data["certification_start"],
        certification_end=data["certification_end"], certification_signed_on=None)
    signed_on = data.get("certification_signed_on")
    if signed_on is not None and signed_on < episode.start_date:
        problems["certification_signed_on"] = "The recertification cannot be signed before the episode starts."
    if previous_end is not None and data["certification_start"] <= previous_end:
        problems["certification_start"] = f"A recertification starts after {previous_end:%Y-%m-%d}."
    if problems:
        raise ValidationFailed({k: [v] for k, v in problems.items()})
    recertification = Recertification(episode_id=episode.id, recorded_by_id=actor.user.id, recorded_at=now, **data)
    db.session.add(recertification)
    db.session.flush()
    audit(actor, "recertify", "episode", episode.id, now=now, patient_id=episode.patient_id)
    db.session.commit()
    return recertification


# ---------------------------------------------------------------- calendar feed (ICS)

FEED_TOKEN_PREFIX = "cal_"  # noqa: S105 (a public prefix, not a secret)


def create_calendar_feed(actor: Actor, *, now: datetime) -> str:
    """A new secret feed address for the actor; any older one is revoked. Returns the token."""
    for feed in db.session.scalars(select(CalendarFeed).where(
            CalendarFeed.user_id == actor.user.id, CalendarFeed.revoked_at.is_(None))):
        feed.revoked_at = now
    token, token_hash = new_secret_token(FEED_TOKEN_PREFIX)
    feed = CalendarFeed(user_id=actor.user.id, token_hash=token_hash, created_at=now)
    db.session.add(feed)
    db.session.flush()
    audit(actor, "create", "calendar_feed", feed.id, now=now)
    db.session.commit()
    return token


def revoke_calendar_feed(actor: Actor, *, now: datetime) -> None:
    for feed in db.session.scalars(select(CalendarFeed).where(
            CalendarFeed.user_id == actor.user.id, CalendarFeed.revoked_at.is_(None))):
        feed.revoked_at = now
        audit(actor, "revoke", "calendar_feed", feed.id, now=now)
    db.session.commit()


def has_calendar_feed(actor: Actor) -> bool:
    return db.session.scalar(select(CalendarFeed.id).where(
        CalendarFeed.user_id == actor.user.id, CalendarFeed.revoked_at.is_(None))) is not None


def feed_visits(token: str, *, now: datetime) -> tuple[User, list[Visit]]:
    """The feed owner's visits from 30 days ago on: a clinician's own, or a patient's."""
    feed = db.session.scalar(select(CalendarFeed).where(CalendarFeed.token_hash == hash_token(token)))
    if feed is None or feed.revoked_at is not None or not feed.user.is_active:
        raise NotFound("No such calendar.")
    user = feed.user
    query = select(Visit).where(Visit.starts_at > now - timedelta(days=30)).options(*_VISIT_LOAD)
    if user.role == Role.PATIENT:
        query = query.join(Patient, Visit.patient_id == Patient.id).where(Patient.user_id == user.id)
    else:
        query = query.where(Visit.clinician_id == user.id)
    visits = list(db.session.scalars(query.order_by(Visit.starts_at)))
    _audit_visit_reads(Actor(user), visits, now)
    return user, visits


# ---------------------------------------------------------------- clinic rules, closures, working hours

CARE_SETTING_FIELDS = (
    "initial_evaluation_in_clinic", "progress_every_treatment_visits", "progress_in_clinic",
    "discharge_in_clinic", "one_visit_per_patient_per_day", "allow_beyond_certification",
    "assistant_notes_need_cosign", "visit_minutes",
)


def _managed_clinic(actor: Actor, clinic_id: int) -> Clinic:
    require_permission(actor.user, Permission.MANAGE_CARE_SETTINGS)
    clinic = db.session.get(Clinic, clinic_id)
    if clinic is None or not can_use_clinic(actor.user, clinic):
        raise NotFound("No such clinic.")
    return clinic


def update_care_settings(actor: Actor, clinic_id: int, data: dict[str, Any], *, now: datetime) -> CareSettings:
    clinic = _managed_clinic(actor, clinic_id)
    settings = care_settings(clinic.id)
    db.session.add(settings)
    changed = [name for name in CARE_SETTING_FIELDS if name in data and getattr(settings, name) != data[name]]
    for name in changed:
        setattr(settings, name, data[name])
    audit(actor, "update", "care_settings", clinic.id, now=now, detail="fields=" + ",".join(changed))
    db.session.commit()
    return settings


def clinic_closures(actor: Actor, clinic_id: int) -> list[ClinicClosure]:
    clinic = _managed_clinic(actor, clinic_id)
    return list(db.session.scalars(
        select(ClinicClosure).where(ClinicClosure.clinic_id == clinic.id).order_by(ClinicClosure.day)))


def add_closure(actor: Actor, clinic_id: int, day: date, reason: str, *, now: datetime) -> ClinicClosure:
    clinic = _managed_clinic(actor, clinic_id)
    if db.session.scalar(select(ClinicClosure.id).where(ClinicClosure.clinic_id == clinic.id, ClinicClosure.day == day)):
        raise ValidationFailed({"day": [f"{day:%Y-%m-%d} is already a closure."]})
    booked = db.session.scalar(select(func.count(Visit.id)).where(
        Visit.clinic_id == clinic.id, Visit.status.in_((VisitStatus.SCHEDULED, VisitStatus.CHECKED_IN)),
        Visit.starts_at >= datetime.combine(day, time(0), ZoneInfo(clinic.timezone)),
        Visit.starts_at < datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(clinic.timezone))))
    if booked:
        raise ValidationFailed({"day": [f"{booked} visit{'s are' if booked != 1 else ' is'} booked that day: "
                                        "move or cancel them first."]})
    closure = ClinicClosure(clinic_id=clinic.id, day=day, reason=reason.strip())
    db.session.add(closure)
    db.session.flush()
    audit(actor, "create", "clinic_closure", closure.id, now=now)
    db.session.commit()
    return closure


def remove_closure(actor: Actor, closure_id: int, *, now: datetime) -> int:
    """Reopen a closed day; returns the clinic's id."""
    closure = db.session.get(ClinicClosure, closure_id)
    if closure is None:
        raise NotFound("No such closure.")
    clinic = _managed_clinic(actor, closure.clinic_id)
    audit(actor, "delete", "clinic_closure", closure.id, now=now, detail=f"{closure.day:%Y-%m-%d}")
    db.session.delete(closure)
    db.session.commit()
    return clinic.id


def _hours_owner(actor: Actor, user_id: int) -> User:
    """A clinician's hours are theirs to set, or their clinic administrator's."""
    user = db.session.get(User, user_id)
    if user is None or user.organisation_id != actor.user.organisation_id or (
        user.id != actor.user.id and not (
            has_permission(actor.user, Permission.MANAGE_CARE_SETTINGS)
            and (actor.user.clinic_id is None or actor.user.clinic_id == user.clinic_id))
    ):
        raise NotFound("No such user.")
    if user.role not in CLINICAL_ROLES:
        raise ValidationFailed({"user": ["Only therapists and assistants keep working hours."]})
    return user


def working_hours_for(actor: Actor, user_id: int) -> tuple[User, dict[int, tuple[tuple[time, time], ...]], bool]:
    """The clinician, their weekly hours, and whether those are the defaults (nothing recorded)."""
    user = _hours_owner(actor, user_id)
    recorded = db.session.scalar(select(func.count(WorkingHours.id)).where(WorkingHours.user_id == user.id))
    return user, working_hours_of(user.id), recorded == 0


def set_working_hours(
    actor: Actor, user_id: int, intervals: list[tuple[int, time, time]], *, now: datetime
) -> None:
    """Replace a clinician's weekly hours (weekday 0 = Monday, local wall times)."""
    user = _hours_owner(actor, user_id)
    problems = working_hours_problems(intervals)
    if problems:
        raise ValidationFailed({"hours": problems})
    for row in db.session.scalars(select(WorkingHours).where(WorkingHours.user_id == user.id)):
        db.session.delete(row)
    db.session.flush()
    db.session.add_all(WorkingHours(user_id=user.id, weekday=d, starts=s, ends=e) for d, s, e in intervals)
    audit(actor, "update", "working_hours", user.id, now=now)
    db.session.commit()


# ---------------------------------------------------------------- payer settings

def payer_row(organisation_id: int, payer_type: str) -> PayerSettings | None:
    """The organisation's settings for one kind of payer; None: the defaults."""
    return db.session.scalar(select(PayerSettings).where(
        PayerSettings.organisation_id == organisation_id, PayerSettings.payer_type == payer_type))


def payer_wants_modifier_95(organisation_id: int, payer_type: str) -> bool:
    return db.session.scalar(select(PayerSettings.telehealth_modifier_95).where(
        PayerSettings.organisation_id == organisation_id, PayerSettings.payer_type == payer_type)) is not False


def payer_settings(actor: Actor) -> dict[str, bool]:
    """Payer type -> whether its telehealth lines carry modifier 95, for the actor's organisation."""
    require_permission(actor.user, Permission.MANAGE_BILLING)  # a payer's choices: billing's, or the admin's
    return {payer_type: payer_wants_modifier_95(actor.user.organisation_id, payer_type) for payer_type in PAYER_TYPES}


def set_payer_settings(actor: Actor, modifier_95: dict[str, bool], *, now: datetime) -> None:
    require_permission(actor.user, Permission.MANAGE_BILLING)
    organisation_id = actor.user.organisation_id
    for payer_type in PAYER_TYPES:
        row = payer_row(organisation_id, payer_type)
        if row is None:
            row = PayerSettings(organisation_id=organisation_id, payer_type=payer_type)
            db.session.add(row)
        row.telehealth_modifier_95 = bool(modifier_95.get(payer_type))
    audit(actor, "update", "payer_settings", organisation_id, now=now,
          detail="modifier_95=" + ",".join(t for t in PAYER_TYPES if modifier_95.get(t)))
    db.session.commit()
