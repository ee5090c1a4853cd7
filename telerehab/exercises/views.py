"""Pages: exercise library, programmes, the patient's check-in.

Views stay thin: the schemas validate the form, operations check policy, write and audit, and a
refused form comes back with the message beside its field (422).
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from marshmallow import ValidationError as MarshmallowValidationError

from telerehab.accounts.policy import Permission, has_permission, require_permission
from telerehab.accounts.rules import Role
from telerehab.db_types import utc_now
from telerehab.errors import ValidationFailed
from telerehab.exercises import operations
from telerehab.exercises.library import load_library
from telerehab.exercises.rules import (
    DEFAULT_LATE_UPLOAD_DAYS,
    REGION_LABELS,
    BodyRegion,
    CheckInSource,
    Difficulty,
    adjacent_month,
    month_grid,
    parse_month,
)
from telerehab.exercises.schemas import (
    CheckInSettingsSchema,
    CheckInWriteSchema,
    ClinicExerciseWriteSchema,
    ProgramItemWriteSchema,
    ProgramWriteSchema,
)
from telerehab.web.forms import actor, form_errors, form_payload, load_form

bp = Blueprint("exercises", __name__, template_folder="templates", static_folder="static",
               static_url_path="/exercises/static")


@bp.record_once
def _load_library_at_start_up(state) -> None:
    """A malformed library.json stops the app here, not on the first patient's page."""
    load_library()


DIFFICULTY_LABELS = {Difficulty.EASY: "Easy", Difficulty.OK: "OK", Difficulty.HARD: "Hard"}
SOURCE_LABELS = {"web": "Web", "api": "App", "sms": "SMS"}
REGION_CHOICES = [(r.value, REGION_LABELS[r]) for r in BodyRegion]


@bp.app_context_processor
def _labels():
    return {"difficulty_labels": DIFFICULTY_LABELS, "source_labels": SOURCE_LABELS,
            "region_labels": {r.value: label for r, label in REGION_LABELS.items()}}


# ---------------------------------------------------------------- the patient's daily check-in

_DONE = re.compile(r"^done-([0-9]{1,10})$")


def _checkin_payload(client_id: str) -> tuple[dict, list[int]]:
    """The check-in form as the API's payload; also the ticked item ids, in form order."""
    ticked = [int(m.group(1)) for key in request.form if (m := _DONE.match(key))]
    exercises = []
    for item_id in ticked:
        entry = {"program_item_id": item_id}
        for name in ("sets", "reps"):
            raw = request.form.get(f"{name}-{item_id}", "").strip()
            entry[name] = int(raw) if raw.isdigit() else (raw or None)
        exercises.append(entry)
    pain = request.form.get("pain", "").strip()
    payload = {
        "client_id": client_id,
        "recorded_at": utc_now().isoformat(),  # a live page: the server's clock is the device's
        "pain": int(pain) if pain.isdigit() else (pain or None),
        "difficulty": request.form.get("difficulty") or None,
        "note": request.form.get("note", "").strip() or None,
        "exercises": exercises,
    }
    return payload, ticked


def _checkin_errors(messages: dict, ticked: list[int]) -> dict[str, list[str]]:
    """marshmallow's messages keyed as the form's fields: sets-<item id>, reps-<item id>."""
    errors: dict[str, list[str]] = {}
    for name, value in messages.items():
        if name != "exercises" or not isinstance(value, dict):
            errors.update(form_errors({name: value}))
            continue
        for index, item_errors in value.items():
            for field_name, texts in item_errors.items():
                key = f"{field_name}-{ticked[index]}" if field_name in ("sets", "reps") else "exercises"
                errors.setdefault(key, []).extend(texts)
    return errors


@bp.route("/check-in", methods=["GET", "POST"])
@login_required
def checkin():
    if current_user.role != Role.PATIENT:
        return redirect(url_for("web.home"))  # staff record check-ins through the API
    a = actor()
    errors, status = {}, 200
    client_id = request.form.get("client_id", "") if request.method == "POST" else str(uuid.uuid4())
    if request.method == "POST":
        payload, ticked = _checkin_payload(client_id)
        try:
            try:
                data = CheckInWriteSchema().load(payload)
            except MarshmallowValidationError as error:
                raise ValidationFailed(_checkin_errors(error.messages, ticked)) from None
            context = operations.checkin_today(a, now=utc_now())
            if context.patient is None:
                raise ValidationFailed({"form": ["Your sign-in is not linked to a patient record yet."]})
            _, created = operations.record_checkin(a, context.patient.id, data, source=CheckInSource.WEB,
                                                   now=utc_now())
        except ValidationFailed as error:
            errors, status = error.errors, 422
        else:
            flash("Thank you: your check-in is saved." if created else "That check-in was already saved.",
                  "success")
            return redirect(url_for("exercises.checkin"))
    context = operations.checkin_today(a, now=utc_now())
    show_form = bool(errors) or not context.checkins or request.args.get("again") == "1"
    instructions = {}
    if context.day:
        for item in context.day.items:
            entry = operations.library_entry(item.exercise_key, context.episode.clinic_id)
            instructions[item.id] = entry.instructions if entry else ""
    return render_template(
        "exercises/checkin.html", ctx=context, show_form=show_form, errors=errors, client_id=client_id,
        form=request.form if request.method == "POST" else None, instructions=instructions,
        difficulties=list(DIFFICULTY_LABELS.items()),
    ), status


# ---------------------------------------------------------------- staff: a patient's check-ins

@bp.route("/patients/<id:patient_id>/check-ins")
@login_required
def patient_checkins(patient_id: int):
    a, now = actor(), utc_now()
    month = operations.checkin_month(a, patient_id, parse_month(request.args.get("month")), now=now)
    requested = (month.year, month.month)
    previous, following = adjacent_month(*requested, -1), adjacent_month(*requested, 1)
    return render_template(
        "exercises/patient_checkins.html", month=month, patient=month.patient, grid=month_grid(*requested),
        month_label=date(*requested, 1).strftime("%B %Y"),
        previous=f"{previous[0]:04d}-{previous[1]:02d}", following=f"{following[0]:04d}-{following[1]:02d}",
        show_notes=operations.may_see_checkin_notes(a),
        can_view_program=has_permission(current_user, Permission.VIEW_PROGRAM),
        is_patient=current_user.role == Role.PATIENT,
    )


# ---------------------------------------------------------------- programs

@bp.route("/episodes/<id:episode_id>/program")
@login_required
def program(episode_id: int):
    a, now = actor(), utc_now()
    episode, versions = operations.program_history(a, episode_id, now=now)
    today = operations.patient_today(episode.patient, now)
    on = _date_arg("on") or today
    day = operations.program_on(episode, on)
    instructions = {}
    for version in versions:
        for item in version.items:
            if item.exercise_key not in instructions:
                entry = operations.library_entry(item.exercise_key, episode.clinic_id)
                instructions[item.exercise_key] = entry.instructions if entry else ""
    return render_template(
        "exercises/program.html", episode=episode, patient=episode.patient, versions=versions, day=day,
        on=on, today=today, instructions=instructions,
        can_edit=has_permission(current_user, Permission.EDIT_PROGRAM),
        is_patient=current_user.role == Role.PATIENT,
    )


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


_ITEM_FIELDS = ("exercise_key", "sets", "reps", "hold_seconds", "load", "times_per_day", "days_per_week",
                "start_date", "end_date", "notes")
_ROW = re.compile(r"^items-([0-9]{1,3})-exercise_key$")
BLANK_ROWS = 3


def _program_rows() -> list[tuple[int, dict]]:
    """(row number, submitted fields) of every row with an exercise chosen and not removed."""
    rows = []
    for number in sorted({int(m.group(1)) for key in request.form if (m := _ROW.match(key))}):
        values = {name: request.form.get(f"items-{number}-{name}", "") for name in _ITEM_FIELDS}
        if values["exercise_key"].strip() and not request.form.get(f"items-{number}-remove"):
            rows.append((number, values))
    return rows


def _load_program_form() -> dict:
    rows = _program_rows()
    item_schema = ProgramItemWriteSchema()
    payload = form_payload(request.form, ProgramWriteSchema(only=("effective_from", "change_note")))
    payload["items"] = [form_payload(values, item_schema) for _, values in rows]
    try:
        return ProgramWriteSchema().load(payload)
    except MarshmallowValidationError as error:
        errors: dict[str, list[str]] = {}
        for name, value in error.messages.items():
            if name == "items" and isinstance(value, dict):
                for index, fields_ in value.items():
                    for field_name, text in fields_.items():
                        key = f"items-{rows[index][0]}-{'end_date' if field_name == '_schema' else field_name}"
                        errors.setdefault(key, []).extend(text)
            else:
                errors.update(form_errors({name: value}))
        raise ValidationFailed(errors) from None


def _item_values(item) -> dict[str, str]:
    values = {}
    for name in _ITEM_FIELDS:
        value = getattr(item, name)
        values[name] = "" if value is None else (value.isoformat() if isinstance(value, date) else str(value))
    return values


@bp.route("/episodes/<id:episode_id>/program/edit", methods=["GET", "POST"])
@login_required
def program_edit(episode_id: int):
    a, now = actor(), utc_now()
    episode, latest, catalogue = operations.program_editor(a, episode_id, now=now)
    today = operations.patient_today(episode.patient, now)
    errors, status = {}, 200
    if request.method == "POST":
        try:
            program = operations.create_program_version(a, episode.id, _load_program_form(), now=now)
        except ValidationFailed as error:
            errors, status = error.errors, 422
        else:
            flash(f"Version {program.version} of the home program is saved; it takes effect on "
                  f"{program.effective_from.isoformat()}.", "success")
            return redirect(url_for("exercises.program", episode_id=episode.id))
        numbers = sorted({int(m.group(1)) for key in request.form if (m := _ROW.match(key))})
        rows = [(n, {name: request.form.get(f"items-{n}-{name}", "") for name in (*_ITEM_FIELDS, "remove")})
                for n in numbers]
        values = {"effective_from": request.form.get("effective_from", ""),
                  "change_note": request.form.get("change_note", "")}
    else:
        items = latest.items if latest else []
        rows = [(n, _item_values(item)) for n, item in enumerate(items)]
        rows += [(len(items) + n, {}) for n in range(BLANK_ROWS)]
        effective = max(today, latest.effective_from) if latest else today
        values = {"effective_from": effective.isoformat(), "change_note": ""}
    return render_template(
        "exercises/program_form.html", episode=episode, patient=episode.patient, latest=latest, rows=rows,
        values=values, errors=errors, catalogue=catalogue, today=today,
    ), status


# ---------------------------------------------------------------- the library

@bp.route("/exercises", methods=["GET", "POST"])
@login_required
def library():
    require_permission(current_user, Permission.VIEW_EXERCISE_LIBRARY)
    a, now = actor(), utc_now()
    errors, status = {}, 200
    if request.method == "POST":
        require_permission(current_user, Permission.MANAGE_EXERCISES)
        try:
            data = load_form(ClinicExerciseWriteSchema(), lists=("equipment",), adjust=_equipment_lines)
            exercise = operations.create_clinic_exercise(a, data, now=now)
        except ValidationFailed as error:
            errors, status = error.errors, 422
        else:
            flash(f"“{exercise.name}” is added to your clinic's library.", "success")
            return redirect(url_for("exercises.library", q=exercise.name))
    query = request.args.get("q", "").strip()[:100]
    region = request.args.get("region", "")
    region = region if region in {r.value for r in BodyRegion} else None
    equipment = request.args.get("equipment", "").strip()[:40] or None
    result = operations.search_library(a, query=query or None, region=region, equipment=equipment, clinic_id=None,
                                       page=1, page_size=100, now=now)
    return render_template(
        "exercises/library.html", result=result, query=query, region=region or "", equipment=equipment or "",
        regions=REGION_CHOICES, errors=errors, values=request.form if request.method == "POST" else {},
        can_add=has_permission(current_user, Permission.MANAGE_EXERCISES) and current_user.clinic_id is not None,
    ), status


def _equipment_lines(payload: dict) -> dict:
    """The equipment box takes commas as well as lines."""
    if "equipment" in payload:
        payload["equipment"] = [part.strip() for line in payload["equipment"] for part in line.split(",")
                                if part.strip()]
    return payload


# ---------------------------------------------------------------- a clinic's check-in settings

@bp.route("/clinics/<id:clinic_id>/check-in-settings", methods=["GET", "POST"])
@login_required
def checkin_settings(clinic_id: int):
    a = actor()
    clinic, days = operations.get_checkin_settings(a, clinic_id)
    errors, status = {}, 200
    if request.method == "POST":
        try:
            data = load_form(CheckInSettingsSchema())
            operations.set_checkin_settings(a, clinic.id, data, now=utc_now())
        except ValidationFailed as error:
            errors, status = error.errors, 422
        else:
            flash(f"{clinic.name} now accepts check-ins uploaded up to {data['late_upload_days']} days late.",
                  "success")
            return redirect(url_for("exercises.checkin_settings", clinic_id=clinic.id))
    value = request.form.get("late_upload_days", "") if errors else str(days)
    return render_template("exercises/checkin_settings.html", clinic=clinic, value=value, errors=errors,
                           default_days=DEFAULT_LATE_UPLOAD_DAYS), status


# Used by templates to show a late upload's delay in words.
@bp.app_template_filter("delay")
def _delay(value: timedelta) -> str:
    hours = int(value.total_seconds() // 3600)
    return f"{hours // 24} d {hours % 24} h" if hours >= 24 else f"{hours} h"
