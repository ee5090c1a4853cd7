"""Pages: episodes of care (plans of care), a patient's own plan, and visits: the calendar, the
episode's timeline and cadence, the visit page, the patient's upcoming visits and video-slot offers,
and the ICS calendar feed.

Views stay thin: the schemas validate the form, operations check policy, write and audit, and a
refused form comes back with the message beside its field (422).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from icalendar import Calendar as ICalendar
from icalendar import Event as IEvent
from marshmallow import Schema, fields, validate

from telerehab.accounts import operations as account_operations
from telerehab.accounts.policy import Permission, has_permission, require_permission
from telerehab.accounts.rules import Role, npi_problem
from telerehab.accounts.schemas import PAYER_TYPES
from telerehab.api.validation import checked_by
from telerehab.careplans import operations
from telerehab.careplans.models import Episode, Visit
from telerehab.careplans.rules import (
    CERTIFICATION_DUE_DAYS,
    VISIT_TRANSITIONS,
    WEEKDAY_NAMES,
    DischargeReason,
    EpisodeStatus,
    Modality,
    VisitFlag,
    VisitKind,
    VisitStatus,
    certification_is_late,
)
from telerehab.careplans.schemas import EpisodeWriteSchema
from telerehab.db_types import utc_now
from telerehab.errors import NotFound, ValidationFailed
from telerehab.web import local_time
from telerehab.web.forms import actor, is_htmx_partial, load_form

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
    return _episode_page(episode_id)


def _episode_page(episode_id: int, *, errors: dict | None = None, status: int = 200):
    """The episode page; `errors` are the recertification form's, re-shown beside its fields."""
    episode = operations.get_episode(actor(), episode_id, now=utc_now())
    staff = current_user.role != Role.PATIENT
    return render_template(
        "careplans/episode_detail.html", episode=episode, patient=episode.patient,
        late=is_late(episode), due_days=CERTIFICATION_DUE_DAYS,
        status_labels=STATUS_LABELS, discharge_labels=DISCHARGE_LABELS,
        show_plan_notes=operations.may_see_plan_notes(actor()),
        can_edit=has_permission(current_user, Permission.EDIT_EPISODE),
        can_schedule=has_permission(current_user, Permission.SCHEDULE_VISITS),
        alerts=operations.episode_alerts(episode, now=utc_now()) if staff else [],
        certified_until=operations.certified_until(episode),
        recert_errors=errors or {}, recert_form=request.form if errors else {},
    ), status


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


# ================================================================ visits
#
# The calendar, the episode's timeline and cadence, the visit page (status, reschedule, note,
# services), the patient's upcoming visits and video-slot offers, and the ICS feed. Times are
# entered and shown in the clinic's timezone (the patient's own on the patient's pages).

KIND_LABELS = {
    VisitKind.INITIAL_EVALUATION: "Initial evaluation",
    VisitKind.TREATMENT: "Treatment",
    VisitKind.PROGRESS: "Progress visit",
    VisitKind.RE_EVALUATION: "Re-evaluation",
    VisitKind.DISCHARGE: "Discharge visit",
}
VISIT_STATUS_LABELS = {
    VisitStatus.SCHEDULED: "Scheduled",
    VisitStatus.CHECKED_IN: "Checked in",
    VisitStatus.IN_PROGRESS: "In progress",
    VisitStatus.COMPLETED: "Completed",
    VisitStatus.CANCELLED: "Cancelled",
    VisitStatus.NO_SHOW: "No-show",
}
MODALITY_LABELS = {Modality.IN_CLINIC: "In clinic", Modality.VIDEO: "Video"}
FLAG_LABELS = {
    VisitFlag.BEYOND_CERTIFICATION: "After the certified period",
    VisitFlag.LATER_THAN_PREFERRED_TIME: "Later than the preferred time",
    VisitFlag.NOT_A_PREFERRED_DAY: "Not a preferred day",
}
# The buttons of the visit page, in the order they are offered.
STATUS_ACTIONS = {
    VisitStatus.CHECKED_IN: "Check in",
    VisitStatus.IN_PROGRESS: "Start visit",
    VisitStatus.COMPLETED: "Complete visit",
    VisitStatus.NO_SHOW: "Mark no-show",
}
WEEKDAYS = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]
# Preferred weekdays offered by default for a plan of n visits a week.
DEFAULT_WEEKDAYS = {1: [0], 2: [0, 3], 3: [0, 2, 4], 4: [0, 1, 3, 4], 5: [0, 1, 2, 3, 4],
                    6: [0, 1, 2, 3, 4, 5], 7: [0, 1, 2, 3, 4, 5, 6]}
PATTERN_ROWS = 4  # select rows for the repeating modality pattern
MAX_FORM_ROWS = 400  # a plan of 52 weeks at 7 a week is 364 visits
SERVICE_ROWS_MIN = 3
MAX_SERVICE_ROWS = 20
OPEN_STATUSES = (VisitStatus.SCHEDULED, VisitStatus.CHECKED_IN, VisitStatus.IN_PROGRESS)
MINUTES_RANGE = "Give {min} to {max} minutes."
# Dates far from today are typing mistakes, and near the ends of the calendar they overflow.
PLAUSIBLE_DATES = validate.Range(min=date(2000, 1, 1), max=date(2100, 12, 31), error="Give a date from {min} to {max}.")


@bp.context_processor
def _visit_vocabulary() -> dict:
    return {"visit_status_labels": VISIT_STATUS_LABELS, "flag_labels": FLAG_LABELS, "open_statuses": OPEN_STATUSES}


class CadenceOptionsForm(Schema):
    clinician_id = fields.Integer(strict=True, validate=validate.Range(min=1))
    start_date = fields.Date(allow_none=True, validate=PLAUSIBLE_DATES)
    preferred_start = fields.Time(required=True)
    visit_minutes = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=5, max=240, error=MINUTES_RANGE))


class SingleVisitForm(Schema):
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in VisitKind]))
    modality = fields.String(required=True, validate=validate.OneOf([m.value for m in Modality]))
    clinician_id = fields.Integer(strict=True, validate=validate.Range(min=1))
    date = fields.Date(required=True, validate=PLAUSIBLE_DATES)
    time = fields.Time(required=True)
    minutes = fields.Integer(strict=True, required=True, validate=validate.Range(min=5, max=240, error=MINUTES_RANGE))
    room = fields.String(allow_none=True, validate=validate.Length(max=50))


class RescheduleForm(Schema):
    new_date = fields.Date(required=True, validate=PLAUSIBLE_DATES)
    new_start = fields.Time(required=True)
    new_end = fields.Time(required=True)


class RecertificationForm(Schema):
    certification_start = fields.Date(required=True, validate=PLAUSIBLE_DATES)
    certification_end = fields.Date(required=True, validate=PLAUSIBLE_DATES)
    certifying_physician_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    certifying_physician_npi = fields.String(required=True, validate=checked_by(npi_problem))
    certification_signed_on = fields.Date(allow_none=True, validate=PLAUSIBLE_DATES)


def _zone(timezone: str) -> ZoneInfo:
    return ZoneInfo(timezone)


def _utc_of(day: date, at: time, zone: ZoneInfo) -> datetime | None:
    """A clinic-local wall time as UTC; None for a time the spring clock change skips."""
    wall = datetime.combine(day, at.replace(second=0, microsecond=0, tzinfo=None))
    start = wall.replace(tzinfo=zone).astimezone(UTC)
    return start if start.astimezone(zone).replace(tzinfo=None) == wall else None


def _remap(errors: dict, mapping: dict[str, str]) -> dict[str, list[str]]:
    """Operation field names -> the names of the form's inputs."""
    out: dict[str, list[str]] = {}
    for name, messages in errors.items():
        out.setdefault(mapping.get(name, name), []).extend(messages)
    return out


def _parse_date(raw: str) -> date | None:
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    return day if 2000 <= day.year <= 2100 else None


def _parse_time(raw: str) -> time | None:
    try:
        return time.fromisoformat(raw)
    except ValueError:
        return None


def _minutes_between(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() // 60)


# ---------------------------------------------------------------- the calendar

def _calendar_clinicians(a) -> list:
    """Whose calendar the signed-in user may open: a therapist their own; an assistant their own
    or a therapist's of the clinic; admin and billing staff any therapist's they can see."""
    if current_user.role == Role.THERAPIST:
        return [current_user._get_current_object()]
    therapists = account_operations.list_clinicians(a)
    if current_user.role == Role.ASSISTANT:
        return [current_user._get_current_object(), *therapists]
    return therapists


@bp.route("/calendar")
@login_required
def calendar():
    if current_user.role == Role.PATIENT:
        return redirect(url_for("careplans.my_visits"))
    require_permission(current_user, Permission.VIEW_VISITS)
    a, now = actor(), utc_now()
    errors, status = {}, 200
    view = "day" if request.args.get("view") == "day" else "week"
    choices = _calendar_clinicians(a)
    wanted = request.args.get("clinician", "")
    clinician = choices[0] if choices else None
    if wanted:
        clinician = next((c for c in choices if str(c.id) == wanted), None)
        if clinician is None:
            raise NotFound("No such clinician.")
    clinic = (clinician.clinic if clinician and clinician.clinic else current_user.clinic)
    timezone = clinic.timezone if clinic else "UTC"
    zone = _zone(timezone)
    today = now.astimezone(zone).date()
    day = today
    if request.args.get("date"):
        parsed = _parse_date(request.args["date"])
        if parsed is None:
            errors, status = {"date": ["Give the date as YYYY-MM-DD."]}, 422
        else:
            day = parsed
    first = day - timedelta(days=day.weekday()) if view == "week" else day
    days = [first + timedelta(days=offset) for offset in range(7 if view == "week" else 1)]
    start = datetime.combine(days[0], time(0), zone).astimezone(UTC)
    end = datetime.combine(days[-1] + timedelta(days=1), time(0), zone).astimezone(UTC)
    visits = operations.calendar_visits(a, clinician_id=clinician.id, start=start, end=end, now=now) \
        if clinician else []
    by_day: dict[date, list] = {d: [] for d in days}
    for visit in visits:
        by_day.setdefault(visit.starts_at.astimezone(zone).date(), []).append(visit)
    step = timedelta(days=7 if view == "week" else 1)
    alerts = operations.caseload_alerts(a, therapist_id=clinician.id, now=now) \
        if clinician is not None and clinician.role == Role.THERAPIST else []
    context = {
        "view": view, "days": days, "by_day": by_day, "today": today, "timezone": timezone,
        "clinician": clinician, "choices": choices if len(choices) > 1 or current_user.role != Role.THERAPIST else [],
        "previous": (first - step).isoformat(), "next": (first + step).isoformat(),
        "alerts": alerts, "errors": errors, "visit_count": len(visits),
        "is_own": clinician is not None and clinician.id == current_user.id,
    }
    template = "careplans/_calendar.html" if is_htmx_partial() else "careplans/calendar.html"
    response = make_response(render_template(template, **context), status)
    response.headers["Vary"] = "HX-Request"
    return response


# ---------------------------------------------------------------- the episode: timeline and cadence

def _episode_for(episode_id: int, permission: Permission) -> Episode:
    """The episode (a record out of scope is not found), then the permission the action needs."""
    episode = operations.get_episode(actor(), episode_id, now=utc_now())
    require_permission(current_user, permission)
    return episode


def _clinician_choices(episode: Episode) -> list[tuple[int, str]]:
    return [(t.id, t.full_name) for t in account_operations.list_clinicians(actor(), episode.clinic_id)]


@bp.route("/episodes/<id:episode_id>/visits", methods=["GET", "POST"])
@login_required
def episode_visits(episode_id: int):
    """The episode's visit timeline; staff who schedule may add a single visit here."""
    a, now = actor(), utc_now()
    episode = operations.get_episode(a, episode_id, now=now)
    zone = _zone(episode.clinic.timezone)
    errors, status = {}, 200
    if request.method == "POST":
        require_permission(current_user, Permission.SCHEDULE_VISITS)
        try:
            data = load_form(SingleVisitForm())
            starts_at = _utc_of(data["date"], data["time"], zone)
            if starts_at is None:
                raise ValidationFailed({"time": ["That time does not exist on that day (the clocks change)."]})
            visit = operations.schedule_visit(a, episode.id, {
                "kind": data["kind"], "modality": data["modality"], "clinician_id": data.get("clinician_id"),
                "starts_at": starts_at, "ends_at": starts_at + timedelta(minutes=data["minutes"]),
                "room": data.get("room"),
            }, now=now)
        except ValidationFailed as error:
            errors, status = _remap(error.errors, {"starts_at": "date", "ends_at": "minutes",
                                                   "episode": "form"}), 422
        else:
            flash(f"The visit on {local_time(visit.starts_at, episode.clinic.timezone, '%a %d %b %H:%M')} "
                  "is scheduled.", "success")
            _flash_consent_alert(episode, [visit], now)
            return redirect(url_for("careplans.visit_detail", visit_id=visit.id))
    visits = operations.visits_of_episode(a, episode.id, now=now)
    values = request.form if errors else {
        "kind": VisitKind.TREATMENT, "modality": Modality.IN_CLINIC, "clinician_id": episode.therapist_id,
        "date": clinic_today(episode).isoformat(), "time": "09:00",
        "minutes": operations.care_settings(episode.clinic_id).visit_minutes,
    }
    can_schedule = has_permission(current_user, Permission.SCHEDULE_VISITS)
    return render_template(
        "careplans/episode_visits.html", episode=episode, patient=episode.patient, visits=visits,
        timezone=episode.clinic.timezone, can_schedule=can_schedule, errors=errors, values=values,
        clinician_choices=_clinician_choices(episode) if can_schedule else [],
        kinds=list(KIND_LABELS.items()), modalities=list(MODALITY_LABELS.items()),
        upcoming=[v for v in visits if v.status in OPEN_STATUSES and v.ends_at > now],
    ), status


def _cadence_defaults(episode: Episode) -> dict:
    return {
        "clinician_id": str(episode.therapist_id),
        "start_date": max(episode.start_date, clinic_today(episode)).isoformat(),
        "preferred_start": "09:00",
        "visit_minutes": str(operations.care_settings(episode.clinic_id).visit_minutes),
        "pattern": [Modality.IN_CLINIC, Modality.VIDEO, Modality.VIDEO, ""],
        "weekdays": [str(d) for d in DEFAULT_WEEKDAYS[min(max(episode.frequency_per_week, 1), 7)]],
    }


def _cadence_values() -> dict:
    """The submitted options, as the template shows them again."""
    pattern = request.form.getlist("pattern")[:PATTERN_ROWS]
    return {
        "clinician_id": request.form.get("clinician_id", ""), "start_date": request.form.get("start_date", ""),
        "preferred_start": request.form.get("preferred_start", ""),
        "visit_minutes": request.form.get("visit_minutes", ""),
        "pattern": pattern + [""] * (PATTERN_ROWS - len(pattern)), "weekdays": request.form.getlist("weekdays"),
    }


def _load_cadence_options() -> dict:
    errors: dict[str, list[str]] = {}
    try:
        data = load_form(CadenceOptionsForm())
    except ValidationFailed as error:
        data, errors = {}, dict(error.errors)
    pattern = [value for value in request.form.getlist("pattern") if value]
    if not pattern:
        errors["modality_pattern"] = ["Choose in clinic or video for at least the first treatment visit."]
    elif any(value not in MODALITY_LABELS for value in pattern):
        errors["modality_pattern"] = ["Each entry is in the clinic or on video."]
    weekdays = request.form.getlist("weekdays")
    if any(not (value.isdigit() and len(value) == 1) for value in weekdays):
        errors["preferred_weekdays"] = ["Tick weekdays from the list."]
    if errors:
        raise ValidationFailed(errors)
    return {**data, "modality_pattern": pattern, "preferred_weekdays": [int(value) for value in weekdays]}


def _proposal_rows(proposal, zone: ZoneInfo) -> list[dict]:
    rows = []
    for visit in proposal.visits:
        local = visit.start.astimezone(zone)
        rows.append({"kind": visit.kind.value, "modality": visit.modality.value, "date": local.date().isoformat(),
                     "time": local.strftime("%H:%M"), "minutes": str(_minutes_between(visit.start, visit.end)),
                     "flags": [flag.value for flag in visit.flags], "remove": False})
    return rows


def _submitted_rows() -> list[dict]:
    count = min(max(request.form.get("visit_count", type=int) or 0, 0), MAX_FORM_ROWS)
    rows = []
    for index in range(count):
        def value(name: str, index=index) -> str:
            return request.form.get(f"visits-{index}-{name}", "").strip()
        rows.append({
            "kind": value("kind"), "modality": value("modality"), "date": value("date"), "time": value("time"),
            "minutes": value("minutes"), "flags": [f for f in value("flags").split() if f in FLAG_LABELS],
            "remove": bool(request.form.get(f"visits-{index}-remove")),
        })
    return rows


def _visits_of_rows(rows: list[dict], zone: ZoneInfo) -> list[tuple[int, dict]]:
    """The rows kept, as (row index, visit) for confirm_cadence; raises with per-input messages."""
    errors: dict[str, list[str]] = {}
    visits = []
    for index, row in enumerate(rows):
        if row["remove"]:
            continue
        prefix = f"visits-{index}-"
        if row["kind"] not in KIND_LABELS:
            errors[prefix + "row"] = ["Unknown kind of visit."]
        if row["modality"] not in MODALITY_LABELS:
            errors[prefix + "modality"] = ["Choose in clinic or video."]
        day, at = _parse_date(row["date"]), _parse_time(row["time"])
        minutes = int(row["minutes"]) if row["minutes"].isdigit() and len(row["minutes"]) <= 4 else 0
        if day is None:
            errors[prefix + "date"] = ["Give the date as YYYY-MM-DD."]
        if at is None:
            errors[prefix + "time"] = ["Give the start as HH:MM."]
        if minutes < 1:
            errors[prefix + "minutes"] = ["Give the length in whole minutes."]
        starts_at = _utc_of(day, at, zone) if day and at else None
        if day and at and starts_at is None:
            errors[prefix + "time"] = ["That time does not exist on that day (the clocks change)."]
        if starts_at is not None and minutes >= 1:
            visits.append((index, {"kind": row["kind"], "modality": row["modality"], "starts_at": starts_at,
                                   "ends_at": starts_at + timedelta(minutes=minutes)}))
    if errors:
        raise ValidationFailed(errors)
    return visits


def _confirm_errors(errors: dict, visits: list[tuple[int, dict]]) -> dict[str, list[str]]:
    """confirm_cadence names a visit by its index in the list it was given ("visits.3.starts_at");
    the page names it by its row (removed rows are not in that list)."""
    out: dict[str, list[str]] = {}
    for name, messages in errors.items():
        match = re.fullmatch(r"visits\.(\d+)\.(\w+)", name)
        if match and int(match[1]) < len(visits):
            out.setdefault(f"visits-{visits[int(match[1])][0]}-row", []).extend(messages)
        else:
            out.setdefault("form" if name in ("visits", "episode") else name, []).extend(messages)
    return out


def _flash_consent_alert(episode: Episode, visits: list[Visit], now: datetime) -> None:
    """Scheduling video visits without telehealth consent is allowed, with a warning."""
    alert = operations.video_consent_alert(
        episode, [v.starts_at for v in visits if v.modality == Modality.VIDEO], now=now)
    if alert is not None:
        flash(alert.message, "warning")


def _cadence_page(episode: Episode, *, values: dict, errors: dict, rows: list[dict] | None,
                  problems=(), consent_alert=None, status: int = 200):
    return render_template(
        "careplans/cadence.html", episode=episode, patient=episode.patient, values=values, errors=errors,
        rows=rows, problems=problems, consent_alert=consent_alert, timezone=episode.clinic.timezone,
        clinician_choices=_clinician_choices(episode), weekdays=WEEKDAYS,
        modalities=list(MODALITY_LABELS.items()), pattern_rows=PATTERN_ROWS,
    ), status


@bp.route("/episodes/<id:episode_id>/cadence", methods=["GET", "POST"])
@login_required
def episode_cadence(episode_id: int):
    """Plan the series: options -> preview (each row editable) -> confirm."""
    episode = _episode_for(episode_id, Permission.SCHEDULE_VISITS)
    if request.method == "GET":
        return _cadence_page(episode, values=_cadence_defaults(episode), errors={}, rows=None)
    a, now = actor(), utc_now()
    zone = _zone(episode.clinic.timezone)
    values = _cadence_values()
    if request.form.get("step") == "confirm":
        rows = _submitted_rows()
        try:
            visits = _visits_of_rows(rows, zone)
        except ValidationFailed as error:
            return _cadence_page(episode, values=values, errors=error.errors, rows=rows, status=422)
        try:
            created = operations.confirm_cadence(a, episode.id, [visit for _, visit in visits],
                                                 clinician_id=request.form.get("clinician_id", type=int), now=now)
        except ValidationFailed as error:
            consent_alert = operations.video_consent_alert(
                episode, [v["starts_at"] for _, v in visits if v["modality"] == Modality.VIDEO], now=now)
            return _cadence_page(episode, values=values, errors=_confirm_errors(error.errors, visits), rows=rows,
                                 consent_alert=consent_alert, status=422)
        flash(f"{len(created)} visit{'' if len(created) == 1 else 's'} scheduled.", "success")
        _flash_consent_alert(episode, created, now)
        return redirect(url_for("careplans.episode_visits", episode_id=episode.id))
    try:
        proposal = operations.preview_cadence(a, episode.id, _load_cadence_options(), now=now)
    except ValidationFailed as error:
        return _cadence_page(episode, values=values, errors=error.errors, rows=None, status=422)
    consent_alert = operations.video_consent_alert(
        episode, [v.start for v in proposal.visits if v.modality == Modality.VIDEO], now=now)
    return _cadence_page(episode, values=values, errors={}, rows=_proposal_rows(proposal, zone),
                         problems=proposal.problems, consent_alert=consent_alert)


@bp.route("/episodes/<id:episode_id>/recertifications", methods=["POST"])
@login_required
def recertification_new(episode_id: int):
    episode = _episode_for(episode_id, Permission.EDIT_EPISODE)
    try:
        data = load_form(RecertificationForm())
        recertification = operations.record_recertification(actor(), episode.id, data, now=utc_now())
    except ValidationFailed as error:
        return _episode_page(episode_id, errors=error.errors, status=422)
    flash(f"The recertification through {recertification.certification_end.isoformat()} is recorded.", "success")
    return redirect(url_for("careplans.episode_detail", episode_id=episode.id, _anchor="certification"))


# ---------------------------------------------------------------- the visit page

def _service_rows(visit) -> list[dict]:
    rows = [{"cpt_code": line.cpt_code, "minutes": str(line.minutes),
             "assistant_minutes": str(line.assistant_minutes) if line.assistant_minutes else ""}
            for line in visit.services]
    blanks = max(SERVICE_ROWS_MIN - len(rows), 1)
    return rows + [{"cpt_code": "", "minutes": "", "assistant_minutes": ""}] * blanks


def _submitted_service_rows() -> list[dict]:
    count = min(max(request.form.get("service_count", type=int) or 0, 0), MAX_SERVICE_ROWS)
    return [{name: request.form.get(f"services-{index}-{name}", "").strip()
             for name in ("cpt_code", "minutes", "assistant_minutes")} for index in range(count)]


def _visit_page(visit_id: int, *, failed: str | None = None, errors: dict | None = None, status: int = 200):
    """The visit page; `failed` names the form whose `errors` to show beside its fields."""
    a, now = actor(), utc_now()
    visit = operations.get_visit(a, visit_id, now=now)
    staff = current_user.role != Role.PATIENT
    can_schedule = has_permission(current_user, Permission.SCHEDULE_VISITS)
    can_document = has_permission(current_user, Permission.DOCUMENT_VISITS)
    show_note = has_permission(current_user, Permission.VIEW_CLINICAL_NOTES)
    note = visit.note if show_note else None
    note_signed = visit.note is not None and visit.note.signed_at is not None
    documentable = visit.status not in (VisitStatus.CANCELLED, VisitStatus.NO_SHOW)
    offers = []
    if visit.status == VisitStatus.CANCELLED and visit.modality == Modality.IN_CLINIC:
        offers = [o for o in operations.open_offers_for_patient(a, visit.patient_id, now=now)
                  if o.cancelled_visit_id == visit.id]
    transitions = VISIT_TRANSITIONS[Modality(visit.modality)][VisitStatus(visit.status)]
    errors = errors or {}
    zone = _zone(visit.clinic.timezone)
    local_start = visit.starts_at.astimezone(zone)
    return render_template(
        "careplans/visit_detail.html", visit=visit, patient=visit.patient, episode=visit.episode,
        timezone=visit.clinic.timezone, staff=staff, failed=failed, errors=errors,
        form=request.form if failed else {},
        actions=[(s, label) for s, label in STATUS_ACTIONS.items() if s in transitions] if can_schedule else [],
        can_cancel=can_schedule and VisitStatus.CANCELLED in transitions,
        can_reschedule=can_schedule and visit.status in (VisitStatus.SCHEDULED, VisitStatus.CHECKED_IN),
        reschedule_values=request.form if failed == "reschedule" else {
            "new_date": local_start.date().isoformat(), "new_start": local_start.strftime("%H:%M"),
            "new_end": visit.ends_at.astimezone(zone).strftime("%H:%M")},
        offers=offers, can_accept_offer=staff and current_user.role != Role.BILLING,
        show_note=show_note, note=note, note_signed=note_signed,
        note_editable=can_document and documentable and (note is None or (
            note.signed_at is None and note.author_id == current_user.id)),
        needs_cosign=note is not None and note_signed and operations.note_needs_cosign(note),
        can_cosign=note is not None and note_signed and note.cosigned_at is None
        and has_permission(current_user, Permission.COSIGN_NOTES) and operations.note_needs_cosign(note),
        can_addendum=can_document and note_signed,
        show_services=staff,
        services_editable=can_document and visit.status == VisitStatus.COMPLETED and not note_signed,
        service_rows=_submitted_service_rows() if failed == "services" else _service_rows(visit),
        audio_only=(bool(request.form.get("audio_only")) if failed == "services"
                    else any("93" in line.modifiers.split() for line in visit.services)),
    ), status


def _visit_for(visit_id: int, permission: Permission):
    """The visit (a record out of scope is not found), then the permission the action needs."""
    visit = operations.get_visit(actor(), visit_id, now=utc_now())
    require_permission(current_user, permission)
    return visit


@bp.route("/visits/<id:visit_id>")
@login_required
def visit_detail(visit_id: int):
    return _visit_page(visit_id)


@bp.route("/visits/<id:visit_id>/status", methods=["POST"])
@login_required
def visit_status(visit_id: int):
    _visit_for(visit_id, Permission.SCHEDULE_VISITS)
    new_status = request.form.get("status", "")
    failed = "cancel" if new_status == VisitStatus.CANCELLED else "status"
    try:
        if new_status not in VISIT_STATUS_LABELS:
            raise ValidationFailed({"status": ["Choose one of the actions offered."]})
        visit, offer_token = operations.change_visit_status(actor(), visit_id, new_status,
                                                            reason=request.form.get("reason"), now=utc_now())
    except ValidationFailed as error:
        return _visit_page(visit_id, failed=failed, errors=error.errors, status=422)
    message = f"The visit is now {VISIT_STATUS_LABELS[VisitStatus(visit.status)].lower()}."
    if visit.status == VisitStatus.CANCELLED and visit.modality == Modality.IN_CLINIC:
        # The one-tap token reaches the patient by SMS once messaging lands; the page shows the slot.
        message += (" A video visit in the same week is offered to the patient." if offer_token
                    else " No free video slot that week could be offered.")
    flash(message, "success")
    return redirect(url_for("careplans.visit_detail", visit_id=visit_id))


@bp.route("/visits/<id:visit_id>/reschedule", methods=["POST"])
@login_required
def visit_reschedule(visit_id: int):
    visit = _visit_for(visit_id, Permission.SCHEDULE_VISITS)
    zone = _zone(visit.clinic.timezone)
    try:
        data = load_form(RescheduleForm())
        starts_at = _utc_of(data["new_date"], data["new_start"], zone)
        ends_at = _utc_of(data["new_date"], data["new_end"], zone)
        if starts_at is None or ends_at is None:
            raise ValidationFailed({"new_start": ["That time does not exist on that day (the clocks change)."]})
        visit = operations.reschedule_visit(actor(), visit_id, starts_at, ends_at, now=utc_now())
    except ValidationFailed as error:
        errors = _remap(error.errors, {"starts_at": "new_start", "ends_at": "new_end", "status": "reschedule",
                                       "clinician_id": "reschedule"})
        return _visit_page(visit_id, failed="reschedule", errors=errors, status=422)
    flash(f"The visit is moved to {local_time(visit.starts_at, visit.clinic.timezone, '%a %d %b %Y %H:%M')}.",
          "success")
    return redirect(url_for("careplans.visit_detail", visit_id=visit_id))


@bp.route("/visits/<id:visit_id>/note", methods=["POST"])
@login_required
def visit_note(visit_id: int):
    _visit_for(visit_id, Permission.DOCUMENT_VISITS)
    a, now = actor(), utc_now()
    data = {name: request.form.get(name, "")[:20000] for name in operations.NOTE_FIELDS if name in request.form}
    try:
        operations.save_note(a, visit_id, data, now=now)
        if request.form.get("action") == "sign":
            operations.sign_note(a, visit_id, now=now)
    except ValidationFailed as error:
        return _visit_page(visit_id, failed="note", errors=error.errors, status=422)
    flash("The note is signed." if request.form.get("action") == "sign" else "The draft note is saved.", "success")
    return redirect(url_for("careplans.visit_detail", visit_id=visit_id, _anchor="note"))


@bp.route("/visits/<id:visit_id>/note/cosign", methods=["POST"])
@login_required
def visit_cosign(visit_id: int):
    _visit_for(visit_id, Permission.COSIGN_NOTES)
    try:
        operations.cosign_note(actor(), visit_id, now=utc_now())
    except ValidationFailed as error:
        return _visit_page(visit_id, failed="cosign", errors=error.errors, status=422)
    flash("The note is co-signed.", "success")
    return redirect(url_for("careplans.visit_detail", visit_id=visit_id, _anchor="note"))


@bp.route("/visits/<id:visit_id>/addenda", methods=["POST"])
@login_required
def visit_addendum(visit_id: int):
    _visit_for(visit_id, Permission.DOCUMENT_VISITS)
    try:
        operations.add_addendum(actor(), visit_id, request.form.get("text", "")[:20000], now=utc_now())
    except ValidationFailed as error:
        return _visit_page(visit_id, failed="addendum", errors=error.errors, status=422)
    flash("The addendum is added to the signed note.", "success")
    return redirect(url_for("careplans.visit_detail", visit_id=visit_id, _anchor="note"))


def _service_lines(rows: list[dict]) -> list[dict]:
    errors: dict[str, list[str]] = {}
    lines = []
    for index, row in enumerate(rows):
        if not any(row.values()):
            continue  # a blank row
        prefix = f"services-{index}-"
        if not re.fullmatch(r"\d{5}", row["cpt_code"]):
            errors[prefix + "cpt_code"] = ["Give a 5-digit CPT code."]
        if not (row["minutes"].isdigit() and 1 <= int(row["minutes"]) <= 600):
            errors[prefix + "minutes"] = ["Give the minutes, a whole number from 1 to 600."]
        assistant = row["assistant_minutes"] or "0"
        if not (assistant.isdigit() and int(assistant) <= 600):
            errors[prefix + "assistant_minutes"] = ["Give the assistant's minutes, a whole number (or leave blank)."]
        if not errors:
            lines.append({"cpt_code": row["cpt_code"], "minutes": int(row["minutes"]),
                          "assistant_minutes": int(assistant)})
    if errors:
        raise ValidationFailed(errors)
    return lines


@bp.route("/visits/<id:visit_id>/services", methods=["POST"])
@login_required
def visit_services(visit_id: int):
    visit = _visit_for(visit_id, Permission.DOCUMENT_VISITS)
    audio_only = bool(request.form.get("audio_only"))
    try:
        lines = _service_lines(_submitted_service_rows())
        if audio_only and visit.modality != Modality.VIDEO:
            raise ValidationFailed({"audio_only": ["Only a video visit can be audio-only."]})
        operations.set_services(actor(), visit_id, lines, audio_only=audio_only, now=utc_now())
    except ValidationFailed as error:
        return _visit_page(visit_id, failed="services", errors=error.errors, status=422)
    flash("The services are saved; units, place of service and modifiers are derived.", "success")
    return redirect(url_for("careplans.visit_detail", visit_id=visit_id, _anchor="services"))


# ---------------------------------------------------------------- patients: upcoming visits and offers

@bp.route("/my-visits")
@login_required
def my_visits():
    if current_user.role != Role.PATIENT:
        return redirect(url_for("web.home"))
    a, now = actor(), utc_now()
    patient = account_operations.own_patient_record(a, now=now)
    visits = operations.upcoming_visits(a, patient.id, now=now) if patient else []
    offers = operations.open_offers_for_patient(a, patient.id, now=now) if patient else []
    return render_template("careplans/my_visits.html", patient=patient, visits=visits, offers=offers,
                           timezone=patient.timezone if patient else "UTC", for_staff=False)


@bp.route("/patients/<id:patient_id>/visits")
@login_required
def patient_visits(patient_id: int):
    """A patient's upcoming visits and open offers, for the care team."""
    a, now = actor(), utc_now()
    patient = account_operations.get_patient(a, patient_id, now=now)
    if current_user.role == Role.PATIENT:
        return redirect(url_for("careplans.my_visits"))  # their own record: their own page
    visits = operations.upcoming_visits(a, patient.id, now=now)
    offers = operations.open_offers_for_patient(a, patient.id, now=now)
    return render_template("careplans/my_visits.html", patient=patient, visits=visits, offers=offers,
                           timezone=patient.clinic.timezone, for_staff=True,
                           can_accept=current_user.role != Role.BILLING)


@bp.route("/offers/<id:offer_id>/accept", methods=["POST"])
@login_required
def offer_accept(offer_id: int):
    try:
        visit = operations.accept_offer(actor(), offer_id, now=utc_now())
    except ValidationFailed as error:
        return render_template("careplans/offer.html", offer=None, errors=error.errors), 422
    own = current_user.role == Role.PATIENT
    timezone = visit.patient.timezone if own else visit.clinic.timezone
    when = local_time(visit.starts_at, timezone, "%A %d %B at %H:%M")
    flash(f"{'Your' if own else 'The'} video visit on {when} is booked.", "success")
    if own:
        return redirect(url_for("careplans.my_visits"))
    return redirect(url_for("careplans.visit_detail", visit_id=visit.id))


@bp.route("/offers/accept/<token>")
@login_required
def offer_by_token(token: str):
    """The one-tap link from the SMS: the offer and a single button (signing in first if needed)."""
    if not token.startswith(operations.OFFER_TOKEN_PREFIX) or len(token) > 100:
        raise NotFound("This offer link is not valid.")
    a, now = actor(), utc_now()
    offer = operations.offer_for_token(token, now=now)
    cancelled = operations.get_visit(a, offer.cancelled_visit_id, now=now)  # only for those who may see it
    own = current_user.role == Role.PATIENT
    return render_template(
        "careplans/offer.html", offer=offer, cancelled=cancelled, errors={},
        timezone=cancelled.patient.timezone if own else cancelled.clinic.timezone,
        expired=offer.accepted_at is None and offer.expires_at <= now,
        can_accept=current_user.role not in (Role.BILLING,),
    )


# ---------------------------------------------------------------- calendar feed (ICS)

def _feed_context(new_url: str | None = None) -> dict:
    return {"feed_active": operations.has_calendar_feed(actor()), "new_url": new_url}


def _feed_response(new_url: str | None = None, status: int = 200):
    template = "careplans/_calendar_feed.html" if is_htmx_partial() else "careplans/calendar_feed.html"
    response = make_response(render_template(template, **_feed_context(new_url)), status)
    response.headers["Vary"] = "HX-Request"
    return response


@bp.route("/account/calendar-feed", methods=["GET", "POST"])
@login_required
def calendar_feed():
    """Create (or replace) the secret feed address; it is shown once, right after."""
    new_url = None
    if request.method == "POST":
        token = operations.create_calendar_feed(actor(), now=utc_now())
        new_url = url_for("careplans.calendar_feed_ics", token=token, _external=True)
    return _feed_response(new_url)


@bp.route("/account/calendar-feed/revoke", methods=["POST"])
@login_required
def calendar_feed_revoke():
    operations.revoke_calendar_feed(actor(), now=utc_now())
    if is_htmx_partial():
        return _feed_response()
    flash("The calendar feed address is revoked; calendar apps using it stop updating.", "success")
    return redirect(url_for("accounts.account", _anchor="calendar-feed"))


def _clinic_address(clinic) -> str:
    parts = [clinic.name, clinic.address_line1, clinic.address_line2,
             f"{clinic.city}, {clinic.state} {clinic.postal_code}"]
    return ", ".join(p for p in parts if p)


@bp.route("/calendar/feed/<token>.ics")
def calendar_feed_ics(token: str):
    """Public, but only with the secret token. No diagnosis ever; patient names only in the
    clinicians' feeds."""
    if not token.startswith(operations.FEED_TOKEN_PREFIX) or len(token) > 100:
        raise NotFound("No such calendar.")
    now = utc_now()
    user, visits = operations.feed_visits(token, now=now)
    own = user.role == Role.PATIENT
    feed = ICalendar()
    feed.add("prodid", "-//telerehab//visits//EN")
    feed.add("version", "2.0")
    feed.add("calscale", "GREGORIAN")
    feed.add("method", "PUBLISH")
    feed.add("x-wr-calname", "Physical therapy visits" if own else "telerehab visits")
    for visit in visits:
        video = visit.modality == Modality.VIDEO
        event = IEvent()
        event.add("uid", f"visit-{visit.id}@telerehab")
        event.add("dtstamp", now)
        event.add("last-modified", visit.status_changed_at)
        event.add("dtstart", visit.starts_at.astimezone(UTC))
        event.add("dtend", visit.ends_at.astimezone(UTC))
        kind = KIND_LABELS.get(visit.kind, visit.kind)
        if own:
            summary = "Physical therapy visit"
        else:
            summary = f"{visit.patient.full_name}: {kind} ({MODALITY_LABELS.get(visit.modality, visit.modality)})"
        event.add("summary", summary)
        if video:
            link = url_for("careplans.visit_detail", visit_id=visit.id, _external=True, _anchor="call")
            event.add("location", "Video visit")
            event.add("url", link)
            event.add("description", f"Video visit. Join here: {link}")
        else:
            location = _clinic_address(visit.clinic)
            event.add("location", f"{location} (room {visit.room})" if visit.room else location)
            event.add("description", "In-clinic visit." if own else f"{kind}, in the clinic.")
        event.add("status", "CANCELLED" if visit.status == VisitStatus.CANCELLED else "CONFIRMED")
        feed.add_component(event)
    response = Response(feed.to_ical(), mimetype="text/calendar")
    response.headers["Content-Disposition"] = 'inline; filename="visits.ics"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


# ---------------------------------------------------------------- clinic scheduling rules and hours

class CareSettingsForm(Schema):
    """Checkboxes arrive only when ticked, so every flag defaults to False here."""

    initial_evaluation_in_clinic = fields.Boolean(load_default=False)
    progress_in_clinic = fields.Boolean(load_default=False)
    discharge_in_clinic = fields.Boolean(load_default=False)
    one_visit_per_patient_per_day = fields.Boolean(load_default=False)
    allow_beyond_certification = fields.Boolean(load_default=False)
    assistant_notes_need_cosign = fields.Boolean(load_default=False)
    progress_every_treatment_visits = fields.Integer(
        required=True, validate=validate.Range(min=2, max=10, error="Medicare asks for a report at least every 10 treatment days."))
    visit_minutes = fields.Integer(required=True, validate=validate.Range(min=15, max=240))


class ClosureForm(Schema):
    day = fields.Date(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=2, max=200))


@bp.route("/admin/clinics/<id:clinic_id>/scheduling", methods=["GET", "POST"])
@login_required
def clinic_scheduling(clinic_id: int):
    """The clinic's cadence and documentation rules, and the days it is closed."""
    a, now = actor(), utc_now()
    errors, status = {}, 200
    form = request.form.get("form")
    try:
        if form == "settings":
            operations.update_care_settings(a, clinic_id, load_form(CareSettingsForm()), now=now)
            flash("The scheduling rules are saved.", "success")
            return redirect(url_for("careplans.clinic_scheduling", clinic_id=clinic_id))
        if form == "closure":
            data = load_form(ClosureForm())
            operations.add_closure(a, clinic_id, data["day"], data["reason"], now=now)
            flash(f"The clinic is closed on {data['day']:%Y-%m-%d}.", "success")
            return redirect(url_for("careplans.clinic_scheduling", clinic_id=clinic_id))
    except ValidationFailed as error:
        errors, status = error.errors, 422
    closures = operations.clinic_closures(a, clinic_id)
    clinic = account_operations.get_clinic(a, clinic_id)
    return render_template("careplans/clinic_scheduling.html", clinic=clinic,
                           settings=operations.care_settings(clinic_id), closures=closures,
                           errors=errors, values=request.form, form_name=form), status


@bp.route("/admin/closures/<id:closure_id>/delete", methods=["POST"])
@login_required
def closure_delete(closure_id: int):
    clinic_id = operations.remove_closure(actor(), closure_id, now=utc_now())
    flash("The closure is removed.", "success")
    return redirect(url_for("careplans.clinic_scheduling", clinic_id=clinic_id))


@bp.route("/staff/<id:user_id>/hours", methods=["GET", "POST"])
@login_required
def working_hours(user_id: int):
    """A clinician's weekly hours, which the cadence proposals and video-slot offers respect."""
    a = actor()
    errors, status = {}, 200
    if request.method == "POST":
        try:
            operations.set_working_hours(a, user_id, _hours_from_form(request.form), now=utc_now())
        except ValidationFailed as error:
            errors, status = error.errors, 422
        else:
            flash("The working hours are saved.", "success")
            return redirect(url_for("careplans.working_hours", user_id=user_id))
    user, hours, defaults = operations.working_hours_for(a, user_id)
    return render_template("careplans/working_hours.html", user=user, hours=hours, defaults=defaults,
                           weekdays=WEEKDAY_NAMES, errors=errors, values=request.form), status


HOUR_SLOTS = 2  # intervals a day on the form: a morning and an afternoon


def _hours_from_form(form) -> list[tuple[int, time, time]]:
    intervals, problems = [], []
    for weekday, name in enumerate(WEEKDAY_NAMES):
        for slot in range(HOUR_SLOTS):
            starts, ends = form.get(f"start_{weekday}_{slot}", ""), form.get(f"end_{weekday}_{slot}", "")
            if not starts and not ends:
                continue
            try:
                intervals.append((weekday, time.fromisoformat(starts), time.fromisoformat(ends)))
            except ValueError:
                problems.append(f"{name}: give both times as HH:MM.")
    if problems:
        raise ValidationFailed({"hours": problems})
    return intervals


@bp.route("/admin/payers", methods=["GET", "POST"])
@login_required
def payer_settings():
    """What each kind of payer asks of telehealth claim lines."""
    a = actor()
    if request.method == "POST":
        operations.set_payer_settings(a, {t: f"modifier_95_{t}" in request.form for t in PAYER_TYPES},
                                      now=utc_now())
        flash("The payer settings are saved.", "success")
        return redirect(url_for("careplans.payer_settings"))
    return render_template("careplans/payer_settings.html", settings=operations.payer_settings(a))
