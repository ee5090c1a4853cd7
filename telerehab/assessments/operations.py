"""Use cases for assessments: record a result (entered or measured on a still), correct or withdraw
it (the original kept), list results, a patient's trend per measure, and the stills of video
goniometry. Each checks policy, calls the
rules, writes and audits in one transaction, and takes `now`."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from telerehab.accounts.models import Patient
from telerehab.accounts.operations import Actor, active_consent, audit, audit_reads
from telerehab.accounts.policy import Permission, require_patient
from telerehab.accounts.rules import ConsentKind
from telerehab.assessments import pose, rules
from telerehab.assessments.models import AssessmentResult, GoniometryCapture
from telerehab.assessments.protocols import all_protocols, get_protocol
from telerehab.assessments.rules import InputProblems, Variant
from telerehab.careplans.models import Episode, Visit
from telerehab.careplans.records import visit_for
from telerehab.careplans.rules import VisitStatus
from telerehab.errors import NotFound, ValidationFailed
from telerehab.extensions import db

METHOD_ENTERED = "entered"
METHOD_GONIOMETRY = "goniometry"
_CLOSED_VISITS = (VisitStatus.CANCELLED, VisitStatus.NO_SHOW)
STILLS_FOLDER = "goniometry"


def protocols_by_kind() -> dict[str, list[dict]]:
    """Every protocol, grouped by kind (ROM, performance, PROM) and sorted by name."""
    grouped: dict[str, list[dict]] = {"rom": [], "performance": [], "prom": []}
    for protocol in sorted(all_protocols().values(), key=lambda p: p["name"]):
        grouped[protocol["kind"]].append(protocol)
    return grouped


def goniometry_protocols() -> list[dict]:
    return sorted((p for p in all_protocols().values() if "goniometry" in p), key=lambda p: p["name"])


# ---------------------------------------------------------------- recording a result

def _problems(errors: Mapping[str, str]) -> ValidationFailed:
    return ValidationFailed({f"inputs.{k}": [v] for k, v in errors.items()})


def _protocol_for_writing(protocol_id: object) -> dict:
    protocol = all_protocols().get(protocol_id) if isinstance(protocol_id, str) else None
    if protocol is None:
        raise ValidationFailed({"protocol_id": ["No such assessment protocol."]})
    return protocol


def _place(patient: Patient, visit_id: int | None, episode_id: int | None) -> tuple[Episode, Visit | None]:
    """The episode (and visit) a result belongs to: both must be this patient's."""
    if visit_id is not None:
        visit = db.session.get(Visit, visit_id)
        if visit is None or visit.patient_id != patient.id:
            raise ValidationFailed({"visit_id": ["No such visit for this patient."]})
        if visit.status in _CLOSED_VISITS:
            raise ValidationFailed({"visit_id": [f"This visit was {visit.status.replace('_', ' ')}: record results at a visit that took place."]})
        return visit.episode, visit
    episode = db.session.get(Episode, episode_id) if episode_id is not None else None
    if episode is None or episode.patient_id != patient.id:
        raise ValidationFailed({"episode_id": ["Give the visit or the plan of care (episode) of this patient."]})
    return episode, None


def _variant(protocol: dict, visit: Visit | None, requested: str | None, reason: str | None) -> tuple[str, str | None]:
    """The protocol variant: the visit's modality unless the therapist overrides it with a reason."""
    reason = (reason or "").strip() or None
    default = visit.modality if visit is not None else None
    variant = requested or default
    if variant not in (Variant.IN_CLINIC, Variant.VIDEO):
        raise ValidationFailed({"variant": ["Choose in_clinic or video."]})
    if not protocol["variants"][variant].get("available", True):
        raise ValidationFailed({"variant": ["This test has no video variant: " + protocol["variants"]["video"]["reason"]]})
    if default is not None and variant != default:
        if reason is None or len(reason) < 5:
            raise ValidationFailed({"override_reason": [
                f"The visit is {'on video' if default == Variant.VIDEO else 'in the clinic'}: say why the "
                f"{'video' if variant == Variant.VIDEO else 'in-clinic'} variant was used."]})
        if len(reason) > rules.MAX_OVERRIDE_REASON:
            raise ValidationFailed({"override_reason": [f"At most {rules.MAX_OVERRIDE_REASON} characters."]})
        return variant, reason
    return variant, None


def _checklist(protocol: dict, variant: str, answers: Mapping[str, object] | None) -> dict[str, bool] | None:
    items = protocol["variants"][variant].get("checklist") if variant == Variant.VIDEO else None
    if not items:
        return None
    known = {item["id"] for item in items}
    unknown = [k for k in (answers or {}) if k not in known]
    if unknown:
        raise ValidationFailed({"checklist": [f"Not an item of this test's camera checklist: {unknown[0][:40]}."]})
    return {item["id"]: bool((answers or {}).get(item["id"])) for item in items}


def _scored_result(actor: Actor, patient: Patient, protocol: dict, data: Mapping[str, Any], *, method: str,
                   inputs: Mapping[str, object], now: datetime) -> AssessmentResult:
    """A result checked and scored by the protocol, not yet in the session."""
    episode, visit = _place(patient, data.get("visit_id"), data.get("episode_id"))
    variant, reason = _variant(protocol, visit, data.get("variant"), data.get("override_reason"))
    checklist = _checklist(protocol, variant, data.get("checklist"))
    try:
        values = rules.parse_inputs(protocol, inputs)
        value = rules.score(protocol, values)
    except InputProblems as error:
        raise _problems(error.errors) from None
    return AssessmentResult(
        patient_id=patient.id, episode_id=episode.id, visit_id=visit.id if visit else None,
        protocol_id=protocol["id"], protocol_version=protocol["version"], variant=variant,
        modality=visit.modality if visit else None, override_reason=reason,
        series_key=rules.series_key(protocol, values), inputs=values, checklist=checklist, score=value,
        units=protocol["units"], method=method, recorded_by_id=actor.user.id, recorded_at=now)


def _add_result(actor: Actor, result: AssessmentResult, *, now: datetime, note: str = "") -> AssessmentResult:
    db.session.add(result)
    db.session.flush()
    audit(actor, "create", "assessment_result", result.id, now=now, patient_id=result.patient_id,
          detail=f"{result.protocol_id} v{result.protocol_version} {result.variant}{note}")
    return result


def _new_result(actor: Actor, patient: Patient, protocol: dict, data: Mapping[str, Any], *, method: str,
                inputs: Mapping[str, object], now: datetime) -> AssessmentResult:
    return _add_result(actor, _scored_result(actor, patient, protocol, data, method=method, inputs=inputs, now=now),
                       now=now)


def record_result(actor: Actor, patient_id: int, data: Mapping[str, Any], *, now: datetime) -> AssessmentResult:
    """Record one result. `data`: protocol_id, visit_id or episode_id, inputs, and optionally
    variant (defaults to the visit's modality), override_reason, checklist."""
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.RECORD_ASSESSMENTS)
    protocol = _protocol_for_writing(data.get("protocol_id"))
    inputs = data.get("inputs")
    if not isinstance(inputs, Mapping):
        raise ValidationFailed({"inputs": ["Give the inputs as an object of input id to value."]})
    result = _new_result(actor, patient, protocol, data, method=METHOD_ENTERED, inputs=inputs, now=now)
    db.session.commit()
    return result


# ---------------------------------------------------------------- reading results

def _audit_results(actor: Actor, results: list[AssessmentResult], now: datetime) -> None:
    audit_reads(actor, "list", "assessment_result", [(r.id, r.patient_id) for r in results], now=now)


def visit_results(actor: Actor, visit_id: int, *, now: datetime) -> tuple[Visit, list[AssessmentResult]]:
    """The results recorded at a visit: the clinicians' working page (patients read their trends)."""
    visit = visit_for(actor, visit_id, Permission.RECORD_ASSESSMENTS)
    results = list(db.session.scalars(
        select(AssessmentResult).where(AssessmentResult.visit_id == visit.id, AssessmentResult.in_force)
        .order_by(AssessmentResult.recorded_at)))
    audit(actor, "read", "visit", visit.id, now=now, patient_id=visit.patient_id, detail="assessments")
    _audit_results(actor, results, now)
    return visit, results


def visit_for_recording(actor: Actor, visit_id: int, *, now: datetime) -> Visit:
    visit = visit_for(actor, visit_id, Permission.RECORD_ASSESSMENTS)
    audit(actor, "read", "visit", visit.id, now=now, patient_id=visit.patient_id, detail="record assessment")
    db.session.commit()
    return visit


def list_results(actor: Actor, patient_id: int, *, protocol_id: str | None = None, limit: int = 500,
                 now: datetime) -> list[AssessmentResult]:
    """The patient's results in force, newest first (optionally of one protocol)."""
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.VIEW_ASSESSMENTS)
    query = select(AssessmentResult).where(AssessmentResult.patient_id == patient.id, AssessmentResult.in_force)
    if protocol_id is not None:
        query = query.where(AssessmentResult.protocol_id == protocol_id)
    results = list(db.session.scalars(
        query.order_by(AssessmentResult.recorded_at.desc(), AssessmentResult.id.desc()).limit(limit)))
    _audit_results(actor, results, now)
    return results


@dataclass(frozen=True)
class SeriesTrend:
    key: str
    label: str
    results: list[AssessmentResult]
    readings: list[rules.Reading]
    norms: list[rules.NormVerdict | None]
    chart: rules.Chart
    warnings: int  # consecutive pairs that are not comparable


@dataclass(frozen=True)
class Trend:
    patient: Patient
    protocol: dict
    series: list[SeriesTrend]
    corrections: frozenset[int]  # ids of the results shown that correct an earlier one


def trend(actor: Actor, patient_id: int, protocol_id: str, *, now: datetime) -> Trend:
    """The patient's results in force of one measure, one series per side/direction/device, interpreted:
    a withdrawn baseline leaves the next result in force as the baseline."""
    protocol = get_protocol(protocol_id)
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.VIEW_ASSESSMENTS)
    results = list(db.session.scalars(
        select(AssessmentResult).where(AssessmentResult.patient_id == patient.id,
                                       AssessmentResult.protocol_id == protocol["id"], AssessmentResult.in_force)
        .order_by(AssessmentResult.recorded_at, AssessmentResult.id)))
    zone = ZoneInfo(patient.timezone)
    keyed: dict[str, list[AssessmentResult]] = {}
    for result in results:
        keyed.setdefault(result.series_key, []).append(result)
    series = []
    for key, rows in keyed.items():
        points = [rules.Point(r.id, r.recorded_at.astimezone(zone), r.score, r.variant) for r in rows]
        chart = rules.trend_chart(protocol, points)
        series.append(SeriesTrend(
            key=key, label=rules.series_label(protocol, key), results=rows,
            readings=rules.interpret_series(protocol, points, protocol["units"]),
            norms=[rules.norm_verdict(protocol, r.score, age=rules.age_on(patient.date_of_birth, r.recorded_at.date()),
                                      sex=patient.sex, series=rules.series_values(protocol, r.inputs)) for r in rows],
            chart=chart, warnings=sum(1 for s in chart.segments if not s.comparable)))
    corrections = frozenset(db.session.scalars(select(AssessmentResult.superseded_by_id).where(
        AssessmentResult.superseded_by_id.in_([r.id for r in results])))) if results else frozenset()
    _audit_results(actor, results, now)
    return Trend(patient=patient, protocol=protocol, series=series, corrections=corrections)


def patient_measures(actor: Actor, patient_id: int, *, now: datetime) -> tuple[Patient, list[tuple[dict, list[AssessmentResult]]]]:
    """Each measure the patient has results for, with its results newest first."""
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.VIEW_ASSESSMENTS)
    results = list_results(actor, patient.id, now=now)
    grouped: dict[str, list[AssessmentResult]] = {}
    for result in results:
        grouped.setdefault(result.protocol_id, []).append(result)
    protocols = all_protocols()
    measures = [(protocols[pid], rows) for pid, rows in grouped.items() if pid in protocols]
    return patient, sorted(measures, key=lambda m: m[0]["name"])


# ---------------------------------------------------------------- corrections and withdrawal

def _result_for(actor: Actor, result_id: int, permission: Permission, *, for_update: bool = False) -> AssessmentResult:
    # Amending locks the row (PostgreSQL) and reads it afresh, so that two corrections, or a correction
    # and a withdrawal, of one result cannot both pass the checks on its state.
    result = db.session.get(AssessmentResult, result_id, with_for_update=for_update, populate_existing=for_update)
    if result is None:
        raise NotFound("No such assessment result.")
    require_patient(actor.user, result.patient, permission)
    return result


def _in_force_for_amending(actor: Actor, result_id: int) -> AssessmentResult:
    result = _result_for(actor, result_id, Permission.RECORD_ASSESSMENTS, for_update=True)
    if result.superseded_by_id is not None:
        raise ValidationFailed({"result": [
            f"Result {result.id} was already corrected by result {result.superseded_by_id}: "
            "correct or withdraw that one."]})
    if result.withdrawn_at is not None:
        raise ValidationFailed({"result": [f"Result {result.id} was withdrawn as entered in error."]})
    return result


def _amendment_reason(value: object) -> str:
    reason = value.strip() if isinstance(value, str) else ""
    if len(reason) < 5:
        raise ValidationFailed({"reason": ["Say what was wrong with the result (at least 5 characters)."]})
    if len(reason) > rules.MAX_AMENDMENT_REASON:
        raise ValidationFailed({"reason": [f"At most {rules.MAX_AMENDMENT_REASON} characters."]})
    return reason


def result_for_amending(actor: Actor, result_id: int, *, now: datetime) -> AssessmentResult:
    """The result, for the correction and withdrawal forms (clinicians who may record for the patient)."""
    result = _result_for(actor, result_id, Permission.RECORD_ASSESSMENTS)
    audit(actor, "read", "assessment_result", result.id, now=now, patient_id=result.patient_id, detail="amend")
    db.session.commit()
    return result


def correct_result(actor: Actor, result_id: int, data: Mapping[str, Any], *, now: datetime) -> AssessmentResult:
    """Replace a result in force with a corrected one, scored by the protocol as when recording; the
    original stays, marked superseded by the new row, with who corrected it, when and why.

    `data`: reason (required), and any of inputs (the whole set, as when recording), variant,
    override_reason, checklist; what is not given is the original's. The correction keeps the
    original's visit, episode, time taken and clinician who took it.
    """
    original = _in_force_for_amending(actor, result_id)
    reason = _amendment_reason(data.get("reason"))
    protocol = _protocol_for_writing(original.protocol_id)
    inputs = original.inputs if data.get("inputs") is None else data["inputs"]
    if not isinstance(inputs, Mapping):
        raise ValidationFailed({"inputs": ["Give the inputs as an object of input id to value."]})
    wanted = {"visit_id": original.visit_id, "episode_id": original.episode_id,
              "variant": data.get("variant") or original.variant,
              "override_reason": data.get("override_reason", original.override_reason),
              "checklist": data.get("checklist", original.checklist)}
    corrected = _scored_result(actor, original.patient, protocol, wanted, method=original.method, inputs=inputs,
                               now=now)
    fields = ("inputs", "variant", "override_reason", "checklist")
    if all(getattr(corrected, f) == getattr(original, f) for f in fields):
        raise ValidationFailed({"inputs": [
            "Nothing differs from the result being corrected: change an input, the variant or its reason."]})
    goniometry = protocol.get("goniometry")
    if goniometry and original.method == METHOD_GONIOMETRY and (
            corrected.inputs.get(goniometry["input"]) != original.inputs.get(goniometry["input"])):
        corrected.method = METHOD_ENTERED  # the angle no longer comes from the landmarks on the still
    corrected.recorded_by_id, corrected.recorded_at = original.recorded_by_id, original.recorded_at
    _add_result(actor, corrected, now=now, note=f", correcting result {original.id}")
    original.superseded_by_id = corrected.id
    original.superseded_at = now
    original.superseded_by_user_id = actor.user.id
    original.superseded_reason = reason
    audit(actor, "supersede", "assessment_result", original.id, now=now, patient_id=original.patient_id,
          detail=f"corrected by result {corrected.id}")
    db.session.commit()
    return corrected


def withdraw_result(actor: Actor, result_id: int, data: Mapping[str, Any], *, now: datetime) -> AssessmentResult:
    """Withdraw a result entered in error (`data`: reason): it leaves lists and trends, never the record."""
    result = _in_force_for_amending(actor, result_id)
    result.withdrawn_reason = _amendment_reason(data.get("reason"))
    result.withdrawn_at = now
    result.withdrawn_by_id = actor.user.id
    audit(actor, "withdraw", "assessment_result", result.id, now=now, patient_id=result.patient_id)
    db.session.commit()
    return result


def result_history(actor: Actor, result_id: int, *, now: datetime) -> list[AssessmentResult]:
    """The result's chain of corrections, first entered to latest, whichever link is asked for;
    superseded and withdrawn links included (readable by whoever may read the patient's results)."""
    result = _result_for(actor, result_id, Permission.VIEW_ASSESSMENTS)
    chain = [result]
    while (earlier := db.session.scalar(
            select(AssessmentResult).where(AssessmentResult.superseded_by_id == chain[0].id))) is not None:
        chain.insert(0, earlier)
    while chain[-1].superseded_by_id is not None:
        chain.append(db.session.get(AssessmentResult, chain[-1].superseded_by_id))
    audit_reads(actor, "history", "assessment_result", [(r.id, r.patient_id) for r in chain], now=now)
    return chain


# ---------------------------------------------------------------- goniometry stills

def _storage() -> Path:
    return Path(current_app.config["STORAGE_DIR"])


def upload_still(actor: Actor, visit_id: int, image: bytes, *, now: datetime) -> GoniometryCapture:
    """Keep a still of the patient for marking, if their telehealth consent is in force."""
    visit = visit_for(actor, visit_id, Permission.RECORD_ASSESSMENTS)
    if visit.status in _CLOSED_VISITS:
        raise ValidationFailed({"image": [f"This visit was {visit.status.replace('_', ' ')}: no stills can be added."]})
    if active_consent(visit.patient, ConsentKind.TELEHEALTH) is None:
        raise ValidationFailed({"image": [
            "The patient has no telehealth consent in force, so no image of them is kept: record consent first, "
            "or measure the angle another way and enter it."]})
    problem = rules.still_problem(image)
    if problem:
        raise ValidationFailed({"image": [problem]})
    content_type, width, height = rules.image_dimensions(image)
    relative = Path(STILLS_FOLDER) / str(visit.patient_id) / f"{uuid.uuid4().hex}.{content_type.split('/')[1]}"
    target = _storage() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(image)
    capture = GoniometryCapture(
        patient_id=visit.patient_id, visit_id=visit.id, image_path=str(relative), content_type=content_type,
        width=width, height=height, sha256=hashlib.sha256(image).hexdigest(), captured_by_id=actor.user.id,
        captured_at=now)
    try:
        db.session.add(capture)
        db.session.flush()
        audit(actor, "create", "goniometry_capture", capture.id, now=now, patient_id=visit.patient_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        target.unlink(missing_ok=True)  # nothing half-written: no file without its row
        raise
    return capture


def _capture_for(actor: Actor, capture_id: int, *, for_update: bool = False) -> GoniometryCapture:
    # Marking locks the row (PostgreSQL) so that two saves of one still cannot both make a result.
    capture = db.session.get(GoniometryCapture, capture_id, with_for_update=for_update)
    if capture is None:
        raise NotFound("No such still.")
    require_patient(actor.user, capture.patient, Permission.RECORD_ASSESSMENTS)
    return capture


def get_capture(actor: Actor, capture_id: int, *, now: datetime) -> GoniometryCapture:
    capture = _capture_for(actor, capture_id)
    audit(actor, "read", "goniometry_capture", capture.id, now=now, patient_id=capture.patient_id)
    db.session.commit()
    return capture


def capture_image(actor: Actor, capture_id: int, *, now: datetime) -> tuple[Path, str]:
    """The still's file and content type; audited like any read of the patient's record."""
    capture = _capture_for(actor, capture_id)
    if capture.image_path is None:
        raise NotFound("The image of this still is no longer kept.")
    audit(actor, "read_image", "goniometry_capture", capture.id, now=now, patient_id=capture.patient_id)
    db.session.commit()
    return _storage() / capture.image_path, capture.content_type


def mark_capture(actor: Actor, capture_id: int, data: Mapping[str, Any], *, now: datetime) -> AssessmentResult:
    """The three landmarks on the still give the angle; it is stored as a ROM result of the visit.

    `data`: protocol_id (one with a goniometry block), landmarks {axis, stationary, moving: [x, y]}
    in image pixels, the protocol's other inputs, variant, override_reason, checklist. Whether the
    points are manual, the pose model's or adjusted from it is judged here against the stored proposal.
    """
    capture = _capture_for(actor, capture_id, for_update=True)
    if capture.result_id is not None:
        raise ValidationFailed({"capture": ["This still is already measured: upload a new one to measure again."]})
    protocol = _protocol_for_writing(data.get("protocol_id"))
    goniometry = protocol.get("goniometry")
    if goniometry is None:
        raise ValidationFailed({"protocol_id": ["This test is not measured from landmarks on a still."]})
    landmarks = data.get("landmarks") if isinstance(data.get("landmarks"), Mapping) else {}
    problems = rules.landmark_problems(landmarks, capture.width, capture.height)
    if problems:
        raise ValidationFailed({f"landmarks.{k}": [v] for k, v in problems.items()})
    points = {name: (float(landmarks[name][0]), float(landmarks[name][1])) for name in rules.LANDMARKS}
    proposal = capture.proposed_landmarks or {}
    source = rules.landmark_source(proposal.get("points") if proposal.get("protocol_id") == protocol["id"] else None,
                                   points)
    try:
        interior = rules.landmark_angle(points["axis"], points["stationary"], points["moving"])
    except InputProblems as error:
        raise ValidationFailed({f"landmarks.{k}": [v] for k, v in error.errors.items()}) from None
    inputs = dict(data["inputs"]) if isinstance(data.get("inputs"), Mapping) else {}
    inputs[goniometry["input"]] = rules.goniometer_reading(interior, goniometry["reading"])
    instrument = next((i for i in protocol["inputs"] if i["id"] == "instrument"), None)
    if instrument and any(c[0] == "photo_landmarks" for c in instrument["choices"]):
        inputs["instrument"] = "photo_landmarks"
    result = _new_result(actor, capture.patient, protocol, {**data, "visit_id": capture.visit_id},
                         method=METHOD_GONIOMETRY, inputs=inputs, now=now)
    capture.landmarks = {name: list(points[name]) for name in rules.LANDMARKS}
    capture.landmark_source = source
    capture.interior_angle = round(interior, 2)
    capture.result_id = result.id
    capture.marked_at = now
    audit(actor, "update", "goniometry_capture", capture.id, now=now, patient_id=capture.patient_id,
          detail=f"landmarks {source}")
    db.session.commit()
    return result


@dataclass(frozen=True)
class Proposal:
    points: dict[str, list[float]] | None
    message: str


def propose_landmarks(actor: Actor, capture_id: int, protocol_id: str, side: str, *, now: datetime) -> Proposal:
    """Ask the offline pose model for the three landmarks of `side`; a proposal found is kept on the
    still, so that the saved result can say whether the points were the model's or moved."""
    capture = _capture_for(actor, capture_id)
    protocol = _protocol_for_writing(protocol_id)
    if "pose" not in protocol.get("goniometry", {}):
        raise ValidationFailed({"protocol_id": ["The pose model cannot propose landmarks for this measure."]})
    if side not in rules.POSE_JOINTS:
        raise ValidationFailed({"side": ["Choose left or right."]})
    if not pose.available():
        return Proposal(None, "No pose model is installed here: place the points by hand.")
    if capture.image_path is None:
        raise ValidationFailed({"capture": ["The image of this still is no longer kept."]})
    found = pose.detect((_storage() / capture.image_path).read_bytes())
    points = rules.propose_landmarks(protocol["goniometry"], side, found or {}, capture.width, capture.height)
    audit(actor, "propose_landmarks", "goniometry_capture", capture.id, now=now, patient_id=capture.patient_id,
          detail=f"{protocol['id']} {side} {'found' if points else 'not found'}")
    if points is None:
        db.session.commit()
        return Proposal(None, "The pose model did not find these joints clearly: place the points by hand.")
    capture.proposed_landmarks = {"protocol_id": protocol["id"], "side": side, "points": points}
    db.session.commit()
    return Proposal(points, "Proposed by the pose model: check each point against the landmark and move it if needed.")
