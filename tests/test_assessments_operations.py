"""Recording results (variant from the visit's modality, override with a reason, raw inputs kept
beside the score, refusals that write nothing), trends, and goniometry stills (kept only with
consent, landmarks turned into a ROM result). Every read and write is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import AuditEntry
from telerehab.accounts.operations import Actor
from telerehab.assessments import operations
from telerehab.assessments.models import AssessmentResult, GoniometryCapture
from telerehab.careplans import operations as careplans
from telerehab.errors import Forbidden, NotFound, ValidationFailed

from .conftest import NOW
from .test_assessments_rules import png


def make_visit(world, *, modality="in_clinic", days=1, patient=None):
    start = datetime(2026, 3, 3, 15, 0, tzinfo=UTC) + timedelta(days=days)
    return careplans.schedule_visit(Actor(world.therapist), world.episode.id, {
        "kind": "treatment", "modality": modality, "starts_at": start, "ends_at": start + timedelta(minutes=45),
        "clinician_id": world.therapist.id}, now=NOW)


def consent(world, patient=None, user=None):
    return accounts.record_consent(Actor(user or world.therapist), (patient or world.patient).id, "telehealth",
                                   method="written", note=None, now=NOW)


def chair_stand(visit, stands=12, **extra):
    return {"protocol_id": "perf_30s_chair_stand", "visit_id": visit.id, "inputs": {"stands": stands}, **extra}


def count(db, model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def audit_actions(db, record_type: str) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.record_type == record_type)
                                   .order_by(AuditEntry.id)))


LANDMARKS = {"axis": [400, 300], "stationary": [100, 300], "moving": [500, 473.2]}  # shank 60 deg below the thigh


# ---------------------------------------------------------------- recording

@pytest.mark.parametrize(("modality", "variant"), [("in_clinic", "in_clinic"), ("video", "video")])
def test_the_variant_follows_the_visits_modality(db, world, modality, variant):
    visit = make_visit(world, modality=modality)
    result = operations.record_result(Actor(world.therapist), world.patient.id, chair_stand(visit), now=NOW)
    assert (result.variant, result.modality, result.override_reason) == (variant, modality, None)
    assert (result.protocol_id, result.protocol_version, result.score, result.units) == (
        "perf_30s_chair_stand", 1, 12, "stands")
    assert result.inputs == {"stands": 12, "arms_used": False}
    assert result.episode_id == world.episode.id and result.recorded_at == NOW
    assert audit_actions(db, "assessment_result") == ["create"]


def test_overriding_the_variant_needs_a_reason(db, world):
    visit = make_visit(world, modality="video")
    with pytest.raises(ValidationFailed) as caught:
        operations.record_result(Actor(world.therapist), world.patient.id, chair_stand(visit, variant="in_clinic"),
                                 now=NOW)
    assert "override_reason" in caught.value.errors
    assert count(db, AssessmentResult) == 0
    result = operations.record_result(Actor(world.therapist), world.patient.id, chair_stand(
        visit, variant="in_clinic", override_reason="Patient came to the clinic for this test"), now=NOW)
    assert (result.variant, result.modality) == ("in_clinic", "video")
    assert result.override_reason == "Patient came to the clinic for this test"


def test_the_video_checklist_is_kept_with_a_video_result(db, world):
    visit = make_visit(world, modality="video")
    result = operations.record_result(Actor(world.therapist), world.patient.id,
                                      chair_stand(visit, checklist={"helper_present": True}), now=NOW)
    assert result.checklist == {"whole_body": False, "space_clear": False, "helper_present": True,
                                "practice_done": False}
    with pytest.raises(ValidationFailed) as caught:
        operations.record_result(Actor(world.therapist), world.patient.id,
                                 chair_stand(visit, checklist={"tripod": True}), now=NOW)
    assert "checklist" in caught.value.errors


@pytest.mark.parametrize(("change", "field"), [
    (lambda w, v: {"protocol_id": "perf_bench_press"}, "protocol_id"),
    (lambda w, v: {"protocol_id": None}, "protocol_id"),
    (lambda w, v: {"inputs": {"stands": 99}}, "inputs.stands"),
    (lambda w, v: {"inputs": {"stands": 3, "reps": 3}}, "inputs.reps"),
    (lambda w, v: {"inputs": "twelve"}, "inputs"),
    (lambda w, v: {"protocol_id": "prom_odi", "inputs": {"item_1": 3}}, "inputs.items"),
    (lambda w, v: {"variant": "phone"}, "variant"),
    (lambda w, v: {"visit_id": None, "episode_id": None}, "episode_id"),
    (lambda w, v: {"visit_id": None, "episode_id": w.episode.id}, "variant"),  # no visit: say which variant
    (lambda w, v: {"visit_id": None, "episode_id": w.other_episode.id}, "episode_id"),
])
def test_refused_input_names_the_field_and_writes_nothing(db, world, change, field):
    visit = make_visit(world)
    data = {**chair_stand(visit), **change(world, visit)}
    with pytest.raises(ValidationFailed) as caught:
        operations.record_result(Actor(world.therapist), world.patient.id, data, now=NOW)
    assert field in caught.value.errors
    assert count(db, AssessmentResult) == 0


def test_a_result_without_a_visit_belongs_to_the_episode(db, world):
    result = operations.record_result(Actor(world.assistant), world.patient.id, {
        "protocol_id": "prom_nprs", "episode_id": world.episode.id, "variant": "video",
        "inputs": {"recall": "now", "pain": 4}}, now=NOW)
    assert (result.visit_id, result.modality, result.variant, result.score) == (None, None, "video", 4)


def test_a_visit_of_another_patient_or_a_cancelled_visit_is_refused(db, world):
    other_start = datetime(2026, 3, 4, 15, tzinfo=UTC)
    other_visit = careplans.schedule_visit(Actor(world.other_therapist), world.other_episode.id, {
        "kind": "treatment", "modality": "in_clinic", "starts_at": other_start,
        "ends_at": other_start + timedelta(minutes=45)}, now=NOW)
    with pytest.raises(ValidationFailed) as caught:
        operations.record_result(Actor(world.therapist), world.patient.id, chair_stand(other_visit), now=NOW)
    assert "visit_id" in caught.value.errors
    visit = make_visit(world)
    careplans.change_visit_status(Actor(world.therapist), visit.id, "cancelled", reason="Snow", now=NOW)
    with pytest.raises(ValidationFailed) as caught:
        operations.record_result(Actor(world.therapist), world.patient.id, chair_stand(visit), now=NOW)
    assert "cancelled" in caught.value.errors["visit_id"][0]


@pytest.mark.parametrize("role", ["billing", "patient", "admin"])
def test_only_clinicians_record(db, world, role):
    visit = make_visit(world)
    with pytest.raises((Forbidden, NotFound)):
        operations.record_result(Actor(world.user(role)), world.patient.id, chair_stand(visit), now=NOW)


def test_another_clinics_therapist_cannot_record_or_read(db, world):
    visit = make_visit(world)
    with pytest.raises(NotFound):
        operations.record_result(Actor(world.other_therapist), world.patient.id, chair_stand(visit), now=NOW)
    with pytest.raises(NotFound):
        operations.list_results(Actor(world.other_therapist), world.patient.id, now=NOW)


# ---------------------------------------------------------------- reading and trends

def test_trend_separates_series_and_reads_each_against_baseline(db, world):
    therapist = Actor(world.therapist)
    clinic_visit, video_visit = make_visit(world, days=1), make_visit(world, modality="video", days=8)
    for days, side, angle, visit in ((1, "left", 90, clinic_visit), (8, "left", 104, video_visit),
                                     (8, "right", 120, video_visit)):
        operations.record_result(therapist, world.patient.id, {
            "protocol_id": "rom_knee_flexion", "visit_id": visit.id, "inputs": {
                "side": side, "motion": "active", "position": "supine", "instrument": "universal_goniometer",
                "angle": angle}}, now=NOW + timedelta(days=days))
    view = operations.trend(Actor(world.patient_user), world.patient.id, "rom_knee_flexion", now=NOW)
    assert [(s.label, [r.score for r in s.results]) for s in view.series] == [
        ("Side: Left · Active or passive: Active · Position: Supine", [90, 104]),
        ("Side: Right · Active or passive: Active · Position: Supine", [120])]
    change = view.series[0].readings[1].since_baseline
    assert (change.comparable, change.delta, change.mdc, change.beyond_mdc) == (True, 14, 12, True)  # video MDC
    assert view.series[0].norms[0].position == "within"
    reads = audit_actions(db, "assessment_result")
    assert reads.count("list") == 3  # one entry per result shown


def test_results_are_listed_newest_first_and_filtered_by_protocol(db, world):
    therapist = Actor(world.therapist)
    visit = make_visit(world)
    for stands in (10, 11):
        operations.record_result(therapist, world.patient.id, chair_stand(visit, stands), now=NOW + timedelta(minutes=stands))
    operations.record_result(therapist, world.patient.id, {
        "protocol_id": "prom_nprs", "visit_id": visit.id, "inputs": {"recall": "now", "pain": 3}}, now=NOW)
    results = operations.list_results(therapist, world.patient.id, protocol_id="perf_30s_chair_stand", now=NOW)
    assert [r.score for r in results] == [11, 10]
    with pytest.raises(Forbidden):
        operations.list_results(Actor(world.billing), world.patient.id, now=NOW)


def test_an_unknown_protocol_trend_is_not_found(db, world):
    with pytest.raises(NotFound):
        operations.trend(Actor(world.therapist), world.patient.id, "rom_wrist", now=NOW)


# ---------------------------------------------------------------- goniometry stills

def stored_files(app) -> list[Path]:
    return sorted((Path(app.config["STORAGE_DIR"]) / "goniometry").rglob("*.*"))


def test_a_still_is_refused_without_telehealth_consent_and_nothing_is_kept(app, db, world):
    before = stored_files(app)
    visit = make_visit(world, modality="video")
    with pytest.raises(ValidationFailed) as caught:
        operations.upload_still(Actor(world.therapist), visit.id, png(640, 480), now=NOW)
    assert "consent" in caught.value.errors["image"][0]
    assert count(db, GoniometryCapture) == 0 and stored_files(app) == before


@pytest.mark.parametrize(("image", "message"), [(b"", "Choose an image file."),
                                                (b"GIF89a", "Only PNG or JPEG images are accepted.")])
def test_a_bad_still_is_refused(app, db, world, image, message):
    consent(world)
    before = stored_files(app)
    with pytest.raises(ValidationFailed) as caught:
        operations.upload_still(Actor(world.therapist), make_visit(world).id, image, now=NOW)
    assert caught.value.errors == {"image": [message]}
    assert stored_files(app) == before


def test_landmarks_on_a_still_make_a_knee_flexion_result(app, db, world):
    consent(world)
    visit = make_visit(world, modality="video")
    capture = operations.upload_still(Actor(world.therapist), visit.id, png(640, 480), now=NOW)
    stored = Path(app.config["STORAGE_DIR"]) / capture.image_path
    assert stored.read_bytes() == png(640, 480) and (capture.width, capture.height) == (640, 480)
    path, content_type = operations.capture_image(Actor(world.therapist), capture.id, now=NOW)
    assert path == stored and content_type == "image/png"

    result = operations.mark_capture(Actor(world.therapist), capture.id, {
        "protocol_id": "rom_knee_flexion", "landmarks": LANDMARKS,
        "inputs": {"side": "left", "motion": "active", "position": "side_lying"},
        "checklist": {"perpendicular": True, "joint_height": True}}, now=NOW)
    assert result.score == pytest.approx(60, abs=0.05)
    assert (result.method, result.variant, result.visit_id) == ("goniometry", "video", visit.id)
    assert result.inputs["instrument"] == "photo_landmarks"
    assert result.checklist["perpendicular"] is True and result.checklist["lighting"] is False
    db.session.refresh(capture)
    assert capture.result_id == result.id and capture.landmark_source == "manual"
    assert capture.landmarks == {k: [float(c) for c in v] for k, v in LANDMARKS.items()}
    assert audit_actions(db, "goniometry_capture") == ["create", "read_image", "update"]

    with pytest.raises(ValidationFailed) as caught:
        operations.mark_capture(Actor(world.therapist), capture.id, {
            "protocol_id": "rom_knee_flexion", "landmarks": LANDMARKS, "inputs": {}}, now=NOW)
    assert "capture" in caught.value.errors


@pytest.mark.parametrize(("data", "field"), [
    ({"protocol_id": "perf_tug"}, "protocol_id"),
    ({"landmarks": {**LANDMARKS, "axis": [700, 10]}}, "landmarks.axis"),
    ({"landmarks": {**LANDMARKS, "moving": [401, 301]}}, "landmarks.moving"),
    ({"landmarks": None}, "landmarks.axis"),
    ({"inputs": {"side": "middle", "motion": "active", "position": "supine"}}, "inputs.side"),
])
def test_bad_marking_is_refused_and_the_still_stays_unmeasured(app, db, world, data, field):
    consent(world)
    capture = operations.upload_still(Actor(world.therapist), make_visit(world).id, png(640, 480), now=NOW)
    payload = {"protocol_id": "rom_knee_flexion", "landmarks": LANDMARKS,
               "inputs": {"side": "left", "motion": "active", "position": "supine"}, **data}
    with pytest.raises(ValidationFailed) as caught:
        operations.mark_capture(Actor(world.therapist), capture.id, payload, now=NOW)
    assert field in caught.value.errors
    assert count(db, AssessmentResult) == 0
    db.session.refresh(capture)
    assert capture.result_id is None and capture.landmarks is None


@pytest.mark.parametrize("role", ["billing", "patient", "admin"])
def test_stills_are_for_clinicians_only(app, db, world, role):
    consent(world)
    visit = make_visit(world)
    capture = operations.upload_still(Actor(world.therapist), visit.id, png(32, 32), now=NOW)
    with pytest.raises((Forbidden, NotFound)):
        operations.upload_still(Actor(world.user(role)), visit.id, png(32, 32), now=NOW)
    with pytest.raises((Forbidden, NotFound)):
        operations.capture_image(Actor(world.user(role)), capture.id, now=NOW)


# ---------------------------------------------------------------- pose-model proposals

def fake_pose(monkeypatch, found):
    """The pose model, replaced: `found` is what it sees (normalised joints), or None for no one."""
    monkeypatch.setattr("telerehab.assessments.pose.available", lambda: True)
    monkeypatch.setattr("telerehab.assessments.pose.detect", lambda image: found)


LEFT_LEG = {23: (0.25, 0.625, 0.99), 25: (0.625, 0.625, 0.98), 27: (0.78125, 0.98583, 0.9)}  # hip, knee, ankle


@pytest.mark.parametrize(("moved", "source"), [(0.0, "auto"), (0.6, "auto"), (1.5, "auto_adjusted"), (40.0, "auto_adjusted")])
def test_proposed_landmarks_and_whether_the_therapist_moved_them(app, db, world, monkeypatch, moved, source):
    consent(world)
    fake_pose(monkeypatch, LEFT_LEG)
    capture = operations.upload_still(Actor(world.therapist), make_visit(world).id, png(640, 480), now=NOW)
    proposal = operations.propose_landmarks(Actor(world.therapist), capture.id, "rom_knee_flexion", "left", now=NOW)
    assert proposal.points == {"axis": [400.0, 300.0], "stationary": [160.0, 300.0], "moving": [500.0, 473.2]}
    # The therapist slides the ankle point along the shank by `moved` pixels: the angle stays 60 deg.
    landmarks = {**proposal.points, "moving": [500.0 - 0.5 * moved, 473.2 - 0.866 * moved]}
    result = operations.mark_capture(Actor(world.therapist), capture.id, {
        "protocol_id": "rom_knee_flexion", "landmarks": landmarks,
        "inputs": {"side": "left", "motion": "active", "position": "supine"}}, now=NOW)
    db.session.refresh(capture)
    assert capture.landmark_source == source
    assert capture.proposed_landmarks["points"] == proposal.points
    assert result.score == pytest.approx(60, abs=0.5)
    assert "propose_landmarks" in audit_actions(db, "goniometry_capture")


def test_a_proposal_for_another_measure_does_not_count(app, db, world, monkeypatch):
    consent(world)
    fake_pose(monkeypatch, {**LEFT_LEG, 11: (0.3, 0.2, 0.9)})
    capture = operations.upload_still(Actor(world.therapist), make_visit(world).id, png(640, 480), now=NOW)
    operations.propose_landmarks(Actor(world.therapist), capture.id, "rom_hip_flexion", "left", now=NOW)
    operations.mark_capture(Actor(world.therapist), capture.id, {
        "protocol_id": "rom_knee_flexion", "landmarks": LANDMARKS,
        "inputs": {"side": "left", "motion": "active", "position": "supine"}}, now=NOW)
    db.session.refresh(capture)
    assert capture.landmark_source == "manual"


@pytest.mark.parametrize(("found", "message"), [
    (None, "did not find"),
    ({**LEFT_LEG, 27: (0.78, 0.98, 0.2)}, "did not find"),  # the ankle is not clearly visible
])
def test_no_clear_pose_means_placing_by_hand(app, db, world, monkeypatch, found, message):
    consent(world)
    fake_pose(monkeypatch, found)
    capture = operations.upload_still(Actor(world.therapist), make_visit(world).id, png(640, 480), now=NOW)
    proposal = operations.propose_landmarks(Actor(world.therapist), capture.id, "rom_knee_flexion", "left", now=NOW)
    assert proposal.points is None and message in proposal.message
    db.session.refresh(capture)
    assert capture.proposed_landmarks is None


def test_without_the_pose_package_there_is_no_proposal(app, db, world, monkeypatch):
    consent(world)
    monkeypatch.setattr("telerehab.assessments.pose.available", lambda: False)
    capture = operations.upload_still(Actor(world.therapist), make_visit(world).id, png(64, 48), now=NOW)
    proposal = operations.propose_landmarks(Actor(world.therapist), capture.id, "rom_knee_flexion", "left", now=NOW)
    assert proposal.points is None and "No pose model is installed" in proposal.message


@pytest.mark.parametrize(("protocol_id", "side", "field"), [
    ("rom_knee_extension", "left", "protocol_id"), ("rom_knee_flexion", "middle", "side"), ("nope", "left", "protocol_id")])
def test_a_proposal_needs_a_measure_with_pose_joints_and_a_side(app, db, world, protocol_id, side, field):
    consent(world)
    capture = operations.upload_still(Actor(world.therapist), make_visit(world).id, png(64, 48), now=NOW)
    with pytest.raises(ValidationFailed) as caught:
        operations.propose_landmarks(Actor(world.therapist), capture.id, protocol_id, side, now=NOW)
    assert field in caught.value.errors


def test_the_bundled_pose_model_runs_offline_and_finds_no_one_in_an_empty_frame(app, db, world):
    from telerehab.assessments import pose

    if not pose.available():
        pytest.skip("mediapipe (requirements-pose.txt) is not installed: the pose model is not tested")
    assert pose.detect(png(320, 240)) is None
    assert pose.detect(b"not an image") is None
