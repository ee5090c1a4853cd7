"""Pages: record an assessment at a visit (the form comes from the protocol), correct or withdraw
a result and read its history, a patient's trends, and video goniometry (upload a still, mark three landmarks, the server computes the angle)."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required

from telerehab.accounts.policy import Permission, has_permission
from telerehab.assessments import operations, pose, protocols
from telerehab.assessments.rules import LANDMARKS, VARIANT_LABELS, Variant, series_label
from telerehab.db_types import utc_now
from telerehab.errors import ValidationFailed
from telerehab.web.forms import actor

bp = Blueprint("assessments", __name__, template_folder="templates", static_folder="static",
               static_url_path="/assessments/static")

KIND_LABELS = {"rom": "Range of motion", "performance": "Performance tests", "prom": "Patient-reported outcomes"}
COMPARABILITY_LABELS = {"interchangeable": "Interchangeable", "comparable_with_offset": "Comparable with an offset",
                        "not_comparable": "Not comparable"}


@bp.record_once
def _load_protocols_at_start_up(state) -> None:
    """A broken protocol file stops create_app here, naming the file and the field."""
    protocols.init_app(state.app)


@bp.app_context_processor
def _labels():
    """Labels, and what the signed-in user may do here (for the links on visit and episode pages)."""
    signed_in = current_user.is_authenticated
    return {"variant_labels": {v.value: label for v, label in VARIANT_LABELS.items()},
            "kind_labels": KIND_LABELS, "comparability_labels": COMPARABILITY_LABELS, "series_label": series_label,
            "can_view_assessments": signed_in and has_permission(current_user, Permission.VIEW_ASSESSMENTS),
            "can_record_assessments": signed_in and has_permission(current_user, Permission.RECORD_ASSESSMENTS)}


def _form_errors(error: ValidationFailed) -> dict[str, list[str]]:
    """Operation field names as the form's: inputs.<id> -> input-<id>, landmarks.<p> -> <p>."""
    errors: dict[str, list[str]] = {}
    for key, messages in error.errors.items():
        if key.startswith("inputs."):
            name = key.removeprefix("inputs.")
            key = "items" if name == "items" else f"input-{name}"
        elif key.startswith("landmarks."):
            key = key.removeprefix("landmarks.")
        errors.setdefault(key, []).extend(messages)
    return errors


def _submitted(protocol: dict) -> dict:
    """The record form as the operation's data: inputs by id, variant, reason, checklist."""
    form = request.form
    inputs = {}
    for item in protocol["inputs"]:
        raw = form.get(f"input-{item['id']}")
        inputs[item["id"]] = ("1" if raw else None) if item["type"] == "boolean" else raw
    video = protocol["variants"]["video"]
    checklist = {c["id"]: True for c in video.get("checklist", ()) if form.get(f"checklist-{c['id']}")}
    return {"protocol_id": protocol["id"], "inputs": inputs, "variant": form.get("variant") or None,
            "override_reason": form.get("override_reason"), "checklist": checklist}


# ---------------------------------------------------------------- at a visit

@bp.route("/visits/<id:visit_id>/assessments")
@login_required
def visit_assessments(visit_id: int):
    visit, results = operations.visit_results(actor(), visit_id, now=utc_now())
    return render_template(
        "assessments/visit.html", visit=visit, results=results, all_protocols=protocols.all_protocols(),
        grouped=operations.protocols_by_kind(), goniometry=operations.goniometry_protocols(), errors={})


@bp.route("/visits/<id:visit_id>/assessments/new", methods=["GET", "POST"])
@login_required
def record(visit_id: int):
    a = actor()
    visit = operations.visit_for_recording(a, visit_id, now=utc_now())
    protocol = protocols.get_protocol(request.values.get("protocol", ""))
    errors, status = {}, 200
    if request.method == "POST":
        data = _submitted(protocol)
        try:
            result = operations.record_result(a, visit.patient_id, {**data, "visit_id": visit.id}, now=utc_now())
        except ValidationFailed as error:
            errors, status = _form_errors(error), 422
        else:
            flash(f"{protocol['name']}: {result.score:g} {result.units} recorded.", "success")
            return redirect(url_for("assessments.trend", patient_id=visit.patient_id, protocol_id=protocol["id"]))
    return render_template(
        "assessments/record.html", visit=visit, protocol=protocol, errors=errors,
        form=request.form if request.method == "POST" else {}, default_variant=visit.modality), status


# ---------------------------------------------------------------- corrections and withdrawal

_FIELDS_ON_AMENDMENT_FORMS = {"items", "variant", "override_reason", "checklist", "reason"}


def _amendment_errors(error: ValidationFailed) -> dict[str, list[str]]:
    """As _form_errors; what no field of the form shows (the result's state, its visit) goes on top."""
    errors: dict[str, list[str]] = {}
    for key, messages in _form_errors(error).items():
        shown = key in _FIELDS_ON_AMENDMENT_FORMS or key.startswith("input-")
        errors.setdefault(key if shown else "form", []).extend(messages)
    return errors


def _form_of(result, protocol: dict) -> dict[str, str]:
    """The result's values as the record form's, to start its correction from."""
    values = {"variant": result.variant, "override_reason": result.override_reason or ""}
    for item in protocol["inputs"]:
        value = result.inputs.get(item["id"])
        if item["type"] == "boolean":
            values[f"input-{item['id']}"] = "1" if value else ""
        else:
            values[f"input-{item['id']}"] = "" if value is None else f"{value}"
    for item, ticked in (result.checklist or {}).items():
        values[f"checklist-{item}"] = "1" if ticked else ""
    return values


@bp.route("/assessment-results/<id:result_id>")
@login_required
def result_history(result_id: int):
    chain = operations.result_history(actor(), result_id, now=utc_now())
    return render_template("assessments/history.html", chain=chain, asked=result_id, patient=chain[0].patient,
                           protocol=protocols.get_protocol(chain[0].protocol_id), staff=current_user.role != "patient")


@bp.route("/assessment-results/<id:result_id>/correction", methods=["GET", "POST"])
@login_required
def correct(result_id: int):
    a = actor()
    result = operations.result_for_amending(a, result_id, now=utc_now())
    protocol = protocols.get_protocol(result.protocol_id)
    errors, status, form = {}, 200, _form_of(result, protocol)
    if request.method == "POST":
        form = request.form
        data = {key: value for key, value in _submitted(protocol).items() if key != "protocol_id"}
        try:
            corrected = operations.correct_result(a, result.id, {**data, "reason": form.get("reason")}, now=utc_now())
        except ValidationFailed as error:
            errors, status = _amendment_errors(error), 422
        else:
            flash(f"{protocol['name']}: corrected to {corrected.score:g} {corrected.units}; the original is kept "
                  "in its history.", "success")
            return redirect(url_for("assessments.trend", patient_id=result.patient_id, protocol_id=protocol["id"]))
    return render_template("assessments/correct.html", result=result, protocol=protocol, patient=result.patient,
                           errors=errors, form=form, default_variant=result.modality), status


@bp.route("/assessment-results/<id:result_id>/withdrawal", methods=["GET", "POST"])
@login_required
def withdraw(result_id: int):
    a = actor()
    result = operations.result_for_amending(a, result_id, now=utc_now())
    protocol = protocols.get_protocol(result.protocol_id)
    errors, status = {}, 200
    if request.method == "POST":
        try:
            operations.withdraw_result(a, result.id, {"reason": request.form.get("reason")}, now=utc_now())
        except ValidationFailed as error:
            errors, status = _amendment_errors(error), 422
        else:
            flash(f"{protocol['name']}: the result of {result.score:g} {result.units} is withdrawn; it stays in "
                  "its history.", "success")
            return redirect(url_for("assessments.trend", patient_id=result.patient_id, protocol_id=protocol["id"]))
    return render_template("assessments/withdraw.html", result=result, protocol=protocol, patient=result.patient,
                           errors=errors, form=request.form), status


# ---------------------------------------------------------------- goniometry

def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" or "X-CSRFToken" in request.headers


@bp.route("/visits/<id:visit_id>/goniometry/stills", methods=["POST"])
@login_required
def upload_still(visit_id: int):
    """A still from the file picker, or a frame the video-call page grabbed (multipart field `image`)."""
    upload = request.files.get("image")
    try:
        capture = operations.upload_still(actor(), visit_id, upload.read() if upload else b"", now=utc_now())
    except ValidationFailed as error:
        if _wants_json():
            return jsonify({"errors": error.errors}), 422
        visit, results = operations.visit_results(actor(), visit_id, now=utc_now())
        return render_template(
            "assessments/visit.html", visit=visit, results=results, all_protocols=protocols.all_protocols(),
            grouped=operations.protocols_by_kind(), goniometry=operations.goniometry_protocols(),
            errors=error.errors), 422
    mark_url = url_for("assessments.mark", capture_id=capture.id)
    if _wants_json():
        return jsonify({"capture_id": capture.id, "mark_url": mark_url}), 201
    return redirect(mark_url)


@bp.route("/goniometry/<id:capture_id>/image")
@login_required
def still_image(capture_id: int):
    path, content_type = operations.capture_image(actor(), capture_id, now=utc_now())
    return send_file(path, mimetype=content_type, max_age=0)


def _coordinate(name: str, axis: str):
    raw = request.form.get(f"{name}_{axis}", "").strip()
    try:
        return float(raw)
    except ValueError:
        return None


def _proposed_values(capture, protocol: dict) -> dict[str, str]:
    """The pose model's proposal for this measure, as the marking form's values."""
    proposal = capture.proposed_landmarks or {}
    if proposal.get("protocol_id") != protocol["id"] or capture.result_id:
        return {}
    values = {"input-side": proposal["side"]}
    for name, (x, y) in proposal["points"].items():
        values[f"{name}_x"], values[f"{name}_y"] = f"{x:g}", f"{y:g}"
    return values


@bp.route("/goniometry/<id:capture_id>/proposal", methods=["POST"])
@login_required
def propose(capture_id: int):
    """Ask the offline pose model for the landmarks; the marking page shows them to adjust."""
    protocol_id = request.form.get("protocol", "")
    try:
        proposal = operations.propose_landmarks(actor(), capture_id, protocol_id, request.form.get("side", ""),
                                                now=utc_now())
    except ValidationFailed as error:
        flash(" ".join(m for messages in error.errors.values() for m in messages), "error")
    else:
        flash(proposal.message, "success" if proposal.points else "error")
    return redirect(url_for("assessments.mark", capture_id=capture_id, protocol=protocol_id or None))


@bp.route("/goniometry/<id:capture_id>", methods=["GET", "POST"])
@login_required
def mark(capture_id: int):
    a = actor()
    capture = operations.get_capture(a, capture_id, now=utc_now())
    choices = operations.goniometry_protocols()
    chosen = request.values.get("protocol") or choices[0]["id"]
    protocol = protocols.get_protocol(chosen)
    errors, status = {}, 200
    if request.method == "POST":
        data = _submitted(protocol)
        data["landmarks"] = {name: [_coordinate(name, "x"), _coordinate(name, "y")] for name in LANDMARKS}
        try:
            result = operations.mark_capture(a, capture.id, data, now=utc_now())
        except ValidationFailed as error:
            errors, status = _form_errors(error), 422
        else:
            flash(f"{protocol['name']}: {result.score:g}° from the landmarks.", "success")
            return redirect(url_for("assessments.trend", patient_id=capture.patient_id, protocol_id=protocol["id"]))
    return render_template(
        "assessments/mark.html", capture=capture, visit=capture.visit, protocol=protocol, choices=choices,
        errors=errors, form=request.form if request.method == "POST" else _proposed_values(capture, protocol),
        default_variant=capture.visit.modality, landmarks=LANDMARKS, pose_available=pose.available()), status


# ---------------------------------------------------------------- trends

@bp.route("/patients/<id:patient_id>/assessments")
@login_required
def patient_measures(patient_id: int):
    patient, measures = operations.patient_measures(actor(), patient_id, now=utc_now())
    return render_template("assessments/measures.html", patient=patient, measures=measures,
                           staff=current_user.role != "patient")


@bp.route("/patients/<id:patient_id>/assessments/<protocol_id>")
@login_required
def trend(patient_id: int, protocol_id: str):
    view = operations.trend(actor(), patient_id, protocol_id, now=utc_now())
    return render_template("assessments/trend.html", trend=view, patient=view.patient, protocol=view.protocol,
                           staff=current_user.role != "patient", VIDEO=Variant.VIDEO)
