"""Use cases for episodes of care (plans of care)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from telerehab.accounts.models import Patient, User
from telerehab.accounts.operations import Actor, Page, audit
from telerehab.accounts.policy import (
    Permission,
    has_permission,
    patient_scope,
    require_patient,
    require_permission,
)
from telerehab.accounts.rules import Role
from telerehab.careplans.models import Episode, EpisodeDiagnosis, EpisodeGoal
from telerehab.careplans.rules import (
    EpisodeStatus,
    certification_problems,
    discharge_problems,
    normalise_icd10,
)
from telerehab.db_types import contains_text
from telerehab.errors import NotFound, ValidationFailed
from telerehab.extensions import db

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
    episode = _load(actor, episode_id, Permission.EDIT_EPISODE)
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


def _load(actor: Actor, episode_id: int, permission: Permission) -> Episode:
    episode = db.session.get(Episode, episode_id)
    if episode is None:
        raise NotFound("No such episode.")
    require_patient(actor.user, episode.patient, permission)
    return episode


def get_episode(actor: Actor, episode_id: int, *, now: datetime) -> Episode:
    episode = _load(actor, episode_id, Permission.VIEW_EPISODE)
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
