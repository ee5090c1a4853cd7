"""Pages: episodes of care (plans of care), and a patient's own plan.

Views stay thin: the schemas validate the form, operations check policy, write and audit, and a
refused form comes back with the message beside its field (422).
"""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from telerehab.accounts import operations as account_operations
from telerehab.accounts.policy import Permission, has_permission, require_permission
from telerehab.accounts.rules import Role
from telerehab.careplans import operations
from telerehab.careplans.models import Episode
from telerehab.careplans.rules import (
    CERTIFICATION_DUE_DAYS,
    DischargeReason,
    EpisodeStatus,
    certification_is_late,
)
from telerehab.careplans.schemas import EpisodeWriteSchema
from telerehab.db_types import utc_now
from telerehab.errors import ValidationFailed
from telerehab.web.forms import actor, load_form

bp = Blueprint("careplans", __name__, template_folder="templates")

STATUS_LABELS = {
    EpisodeStatus.PLANNED: "Planned",
    EpisodeStatus.ACTIVE: "Active",
    EpisodeStatus.ON_HOLD: "On hold",
    EpisodeStatus.DISCHARGED: "Discharged",
}
DISCHARGE_LABELS = {
    DischargeReason.GOALS_MET: "Goals met",
    DischargeReason.PLATEAU: "Plateau",
    DischargeReason.PATIENT_CHOICE: "Patient's choice",
    DischargeReason.NON_ATTENDANCE: "Did not attend",
    DischargeReason.REFERRED_ON: "Referred on",
    DischargeReason.MEDICAL: "Medical reasons",
    DischargeReason.OTHER: "Other",
}
EPISODE_FIELDS = (
    "title", "status", "therapist_id", "start_date", "frequency_per_week", "duration_weeks",
    "certification_start", "certification_end", "certifying_physician_name", "certifying_physician_npi",
    "certification_signed_on", "discharge_date", "discharge_reason", "plan_notes",
)
# A goal line may end with "| YYYY-MM-DD", its target date.
_GOAL_LINE = re.compile(r"^(?P<description>.*?)\s*\|\s*(?P<target>\S*)\s*$")


def clinic_today(episode_or_patient) -> date:
    return utc_now().astimezone(ZoneInfo(episode_or_patient.clinic.timezone)).date()


def is_late(episode: Episode) -> bool:
    return certification_is_late(episode.start_date, episode.certification_signed_on,
                                 today=clinic_today(episode))


def _goals(payload: dict) -> dict:
    """Goal lines into the nested goal objects the schema wants."""
    if "goals" in payload:
        goals = []
        for line in payload["goals"]:
            match = _GOAL_LINE.match(line)
            if match:
                goals.append({"description": match["description"], "target_date": match["target"] or None})
            else:
                goals.append({"description": line})
        payload["goals"] = goals
    return payload


def _load_episode_form() -> dict:
    return load_form(EpisodeWriteSchema(), lists=("diagnoses", "goals"), adjust=_goals)


def _episode_values(episode: Episode) -> dict[str, str]:
    values = {}
    for name in EPISODE_FIELDS:
        value = getattr(episode, name)
        values[name] = "" if value is None else (value.isoformat() if isinstance(value, date) else str(value))
    values["diagnoses"] = "\n".join(episode.diagnosis_codes)
    values["goals"] = "\n".join(
        f"{g.description} | {g.target_date.isoformat()}" if g.target_date else g.description for g in episode.goals
    )
    return values


def _episode_form(*, patient, episode, values, errors, status):
    return render_template(
        "careplans/episode_form.html", patient=patient, episode=episode, values=values, errors=errors,
        therapist_choices=[(t.id, t.full_name)
                           for t in account_operations.list_clinicians(actor(), patient.clinic_id)],
        statuses=list(STATUS_LABELS.items()), discharge_reasons=list(DISCHARGE_LABELS.items()),
        show_plan_notes=operations.may_see_plan_notes(actor()),
    ), status


@bp.route("/patients/<id:patient_id>/episodes/new", methods=["GET", "POST"])
@login_required
def episode_new(patient_id: int):
    patient = account_operations.get_patient(actor(), patient_id, now=utc_now())
    require_permission(current_user, Permission.EDIT_EPISODE)
    if request.method == "POST":
        try:
            episode = operations.create_episode(actor(), patient.id, _load_episode_form(), now=utc_now())
        except ValidationFailed as error:
            return _episode_form(patient=patient, episode=None, values=request.form, errors=error.errors,
                                 status=422)
        flash(f"The plan of care “{episode.title}” is saved.", "success")
        return redirect(url_for("careplans.episode_detail", episode_id=episode.id))
    today = clinic_today(patient).isoformat()
    values = {"status": EpisodeStatus.ACTIVE, "therapist_id": str(current_user.id), "start_date": today,
              "certification_start": today}
    return _episode_form(patient=patient, episode=None, values=values, errors={}, status=200)


@bp.route("/episodes/<id:episode_id>/edit", methods=["GET", "POST"])
@login_required
def episode_edit(episode_id: int):
    episode = operations.get_episode(actor(), episode_id, now=utc_now())
    require_permission(current_user, Permission.EDIT_EPISODE)
    if request.method == "POST":
        try:
            operations.update_episode(actor(), episode.id, _load_episode_form(), now=utc_now())
        except ValidationFailed as error:
            return _episode_form(patient=episode.patient, episode=episode, values=request.form,
                                 errors=error.errors, status=422)
        flash(f"The plan of care “{episode.title}” is updated.", "success")
        return redirect(url_for("careplans.episode_detail", episode_id=episode.id))
    return _episode_form(patient=episode.patient, episode=episode, values=_episode_values(episode), errors={},
                         status=200)


@bp.route("/episodes/<id:episode_id>")
@login_required
def episode_detail(episode_id: int):
    episode = operations.get_episode(actor(), episode_id, now=utc_now())
    return render_template(
        "careplans/episode_detail.html", episode=episode, patient=episode.patient,
        late=is_late(episode), due_days=CERTIFICATION_DUE_DAYS,
        status_labels=STATUS_LABELS, discharge_labels=DISCHARGE_LABELS,
        show_plan_notes=operations.may_see_plan_notes(actor()),
        can_edit=has_permission(current_user, Permission.EDIT_EPISODE),
    )


@bp.route("/my-plan")
@login_required
def my_plan():
    if current_user.role != Role.PATIENT:
        return redirect(url_for("web.home"))  # staff have no plan of their own
    patient = account_operations.own_patient_record(actor(), now=utc_now())
    episodes = operations.episodes_of_patient(actor(), patient.id, now=utc_now()) if patient else []
    current = [e for e in episodes if e.status != EpisodeStatus.DISCHARGED]
    past = [e for e in episodes if e.status == EpisodeStatus.DISCHARGED]
    return render_template(
        "careplans/my_plan.html", patient=patient, current=current, past=past,
        status_labels=STATUS_LABELS, discharge_labels=DISCHARGE_LABELS,
    )
