"""Correcting a result (a new row scored by the protocol, the original kept and marked superseded)
and withdrawing one entered in error: only results in force count in lists, trends and their
baseline; the history keeps every link; every step is audited. Operations, API and pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from telerehab.accounts.models import AuditEntry
from telerehab.accounts.operations import Actor
from telerehab.assessments import operations, rules
from telerehab.assessments.models import AssessmentResult
from telerehab.assessments.protocols import get_protocol
from telerehab.errors import Forbidden, NotFound, ValidationFailed

from .conftest import NOW, bearer, login, new_client
from .test_assessments_operations import LANDMARKS, audit_actions, chair_stand, consent, count, make_visit
from .test_assessments_pages import assert_csp_safe
from .test_assessments_rules import png
from .test_checkin_concurrency import THREADS, postgres, run_together, wide_pool_app  # noqa: F401 (fixture)

LATER = NOW + timedelta(days=2)
PROBLEM = "application/problem+json"


def record(world, visit, stands, *, days=0, **extra):
    return operations.record_result(Actor(world.therapist), world.patient.id, chair_stand(visit, stands, **extra),
                                    now=NOW + timedelta(days=days))


def in_force_scores(world) -> list[float]:
    view = operations.trend(Actor(world.therapist), world.patient.id, "perf_30s_chair_stand", now=LATER)
    return [r.score for s in view.series for r in s.results]


def row(db, result_id) -> AssessmentResult:
    db.session.expire_all()
    return db.session.get(AssessmentResult, result_id)


# ---------------------------------------------------------------- operations

def test_a_correction_is_a_new_scored_row_and_the_original_is_kept_superseded(db, world):
    visit = make_visit(world)
    original = record(world, visit, 12)
    corrected = operations.correct_result(Actor(world.assistant), original.id, {
        "inputs": {"stands": 14, "arms_used": True}, "reason": "Counted the last stand twice"}, now=LATER)

    protocol = get_protocol("perf_30s_chair_stand")
    expected = rules.score(protocol, rules.parse_inputs(protocol, {"stands": 14, "arms_used": True}))
    assert corrected.id != original.id and corrected.score == expected
    assert corrected.inputs == {"stands": 14, "arms_used": True}
    # The test was taken when and by whom it was: the trend still plots it on that day.
    assert (corrected.recorded_at, corrected.recorded_by_id, corrected.visit_id, corrected.variant) == (
        original.recorded_at, world.therapist.id, visit.id, "in_clinic")
    old = row(db, original.id)
    assert (old.score, old.inputs) == (12, {"stands": 12, "arms_used": False})  # untouched
    assert (old.superseded_by_id, old.superseded_at, old.superseded_by_user_id, old.superseded_reason) == (
        corrected.id, LATER, world.assistant.id, "Counted the last stand twice")
    assert not old.in_force and row(db, corrected.id).in_force

    assert in_force_scores(world) == [corrected.score]
    assert [r.id for r in operations.list_results(Actor(world.therapist), world.patient.id, now=LATER)] == [corrected.id]
    assert [r.id for r in operations.visit_results(Actor(world.therapist), visit.id, now=LATER)[1]] == [corrected.id]
    _, measures = operations.patient_measures(Actor(world.therapist), world.patient.id, now=LATER)
    assert [[r.id for r in rows] for _, rows in measures] == [[corrected.id]]
    assert count(db, AssessmentResult) == 2  # nothing deleted


def test_corrections_and_withdrawals_are_audited(db, world):
    visit = make_visit(world)
    original = record(world, visit, 12)
    corrected = operations.correct_result(Actor(world.therapist), original.id, {
        "inputs": {"stands": 13}, "reason": "Misread the count"}, now=LATER)
    operations.withdraw_result(Actor(world.therapist), corrected.id, {"reason": "Wrong patient's chart"}, now=LATER)
    entries = list(db.session.execute(
        select(AuditEntry.action, AuditEntry.record_id, AuditEntry.detail, AuditEntry.actor_id, AuditEntry.patient_id)
        .where(AuditEntry.record_type == "assessment_result", AuditEntry.action != "read").order_by(AuditEntry.id)))
    assert [(e.action, e.record_id) for e in entries] == [
        ("create", original.id), ("create", corrected.id), ("supersede", original.id), ("withdraw", corrected.id)]
    assert f"correcting result {original.id}" in entries[1].detail
    assert f"corrected by result {corrected.id}" in entries[2].detail
    assert {(e.actor_id, e.patient_id) for e in entries} == {(world.therapist.id, world.patient.id)}


def test_a_superseded_or_withdrawn_result_cannot_be_amended_again(db, world):
    visit = make_visit(world)
    original = record(world, visit, 12)
    corrected = operations.correct_result(Actor(world.therapist), original.id, {
        "inputs": {"stands": 13}, "reason": "Misread the count"}, now=LATER)
    for amend in (operations.correct_result, operations.withdraw_result):
        with pytest.raises(ValidationFailed) as caught:
            amend(Actor(world.therapist), original.id, {"inputs": {"stands": 15}, "reason": "Again"}, now=LATER)
        message = caught.value.errors["result"][0]
        assert f"Result {original.id}" in message and f"by result {corrected.id}" in message
    operations.withdraw_result(Actor(world.therapist), corrected.id, {"reason": "Not this patient"}, now=LATER)
    with pytest.raises(ValidationFailed) as caught:
        operations.correct_result(Actor(world.therapist), corrected.id, {
            "inputs": {"stands": 15}, "reason": "Another go"}, now=LATER)
    assert "withdrawn" in caught.value.errors["result"][0]
    assert count(db, AssessmentResult) == 2
    assert in_force_scores(world) == []


@pytest.mark.parametrize("reason", [None, "", "    ", "typo", "x" * (rules.MAX_AMENDMENT_REASON + 1), 42])
def test_a_reason_is_required_and_nothing_is_written_without_one(db, world, reason):
    original = record(world, make_visit(world), 12)
    for amend in (operations.correct_result, operations.withdraw_result):
        with pytest.raises(ValidationFailed) as caught:
            amend(Actor(world.therapist), original.id, {"inputs": {"stands": 13}, "reason": reason}, now=LATER)
        assert list(caught.value.errors) == ["reason"]
    assert count(db, AssessmentResult) == 1 and row(db, original.id).in_force
    assert "supersede" not in audit_actions(db, "assessment_result")


@pytest.mark.parametrize(("change", "field"), [
    ({"inputs": {"stands": 99}}, "inputs.stands"),
    ({"inputs": {"stands": 12, "reps": 3}}, "inputs.reps"),
    ({"inputs": "twelve"}, "inputs"),
    ({"variant": "video"}, "override_reason"),  # a clinic visit: the other variant needs its reason
    ({"inputs": {"stands": 12}}, "inputs"),  # the same as the original: nothing to correct
])
def test_corrected_input_is_checked_as_when_recording(db, world, change, field):
    original = record(world, make_visit(world), 12)
    with pytest.raises(ValidationFailed) as caught:
        operations.correct_result(Actor(world.therapist), original.id, {**change, "reason": "Misread it"}, now=LATER)
    assert field in caught.value.errors
    assert count(db, AssessmentResult) == 1 and row(db, original.id).in_force


def test_the_variant_and_its_reason_can_be_corrected(db, world):
    visit = make_visit(world, modality="video")
    original = record(world, visit, 12)
    corrected = operations.correct_result(Actor(world.therapist), original.id, {
        "variant": "in_clinic", "override_reason": "Patient came in for this test", "reason": "Wrong variant ticked"},
        now=LATER)
    assert (corrected.variant, corrected.modality, corrected.override_reason) == (
        "in_clinic", "video", "Patient came in for this test")
    assert (corrected.inputs, corrected.checklist) == (original.inputs, None)


def test_the_baseline_moves_to_the_next_result_in_force_when_it_is_withdrawn(db, world):
    visit = make_visit(world)
    first, second, third = (record(world, visit, stands, days=days) for stands, days in ((9, 0), (12, 7), (15, 14)))
    view = operations.trend(Actor(world.therapist), world.patient.id, "perf_30s_chair_stand", now=LATER)
    assert view.series[0].readings[2].since_baseline.delta == third.score - first.score

    operations.withdraw_result(Actor(world.therapist), first.id, {"reason": "Taken on the wrong side"}, now=LATER)
    [series] = operations.trend(Actor(world.therapist), world.patient.id, "perf_30s_chair_stand", now=LATER).series
    assert [r.id for r in series.results] == [second.id, third.id]
    assert series.readings[0].since_baseline is None  # the new baseline
    assert series.readings[1].since_baseline.delta == third.score - second.score
    assert series.readings[1].since_last.delta == third.score - second.score
    withdrawn = row(db, first.id)
    assert (withdrawn.withdrawn_at, withdrawn.withdrawn_by_id, withdrawn.withdrawn_reason) == (
        LATER, world.therapist.id, "Taken on the wrong side")


def test_a_corrected_baseline_counts_with_its_corrected_score(db, world):
    visit = make_visit(world)
    first, later = record(world, visit, 9), record(world, visit, 15, days=7)
    corrected = operations.correct_result(Actor(world.therapist), first.id, {
        "inputs": {"stands": 11}, "reason": "Misread the count"}, now=LATER)
    [series] = operations.trend(Actor(world.therapist), world.patient.id, "perf_30s_chair_stand", now=LATER).series
    assert [r.id for r in series.results] == [corrected.id, later.id]  # still first: it keeps the day it was taken
    assert series.readings[1].since_baseline.delta == later.score - corrected.score


def test_the_history_is_the_whole_chain_from_any_link(db, world):
    original = record(world, make_visit(world), 12)
    second = operations.correct_result(Actor(world.therapist), original.id, {
        "inputs": {"stands": 13}, "reason": "Misread the count"}, now=LATER)
    third = operations.correct_result(Actor(world.therapist), second.id, {
        "inputs": {"stands": 14}, "reason": "Misread it again"}, now=LATER + timedelta(hours=1))
    for asked in (original, second, third):
        chain = operations.result_history(Actor(world.patient_user), asked.id, now=LATER)
        assert [r.id for r in chain] == [original.id, second.id, third.id]
    assert [r.in_force for r in chain] == [False, False, True]
    assert audit_actions(db, "assessment_result").count("history") == 9  # every link shown, each time


def test_correcting_the_angle_of_a_goniometry_result_makes_it_an_entered_one(db, world):
    consent(world)
    visit = make_visit(world, modality="video")
    capture = operations.upload_still(Actor(world.therapist), visit.id, png(640, 480), now=NOW)
    measured = operations.mark_capture(Actor(world.therapist), capture.id, {
        "protocol_id": "rom_knee_flexion", "landmarks": LANDMARKS,
        "inputs": {"side": "left", "motion": "active", "position": "side_lying"}}, now=NOW)
    side_fixed = operations.correct_result(Actor(world.therapist), measured.id, {
        "inputs": {**measured.inputs, "side": "right"}, "reason": "It was the right knee"}, now=LATER)
    assert (side_fixed.method, side_fixed.score, side_fixed.series_key) == (
        "goniometry", measured.score, "side=right;motion=active;position=side_lying")
    angle_fixed = operations.correct_result(Actor(world.therapist), side_fixed.id, {
        "inputs": {**side_fixed.inputs, "angle": 75}, "reason": "Landmark was off the joint line"}, now=LATER)
    assert (angle_fixed.method, angle_fixed.score) == ("entered", 75)


@pytest.mark.parametrize("role", ["billing", "patient", "admin"])
def test_only_clinicians_amend(db, world, role):
    original = record(world, make_visit(world), 12)
    for amend in (operations.correct_result, operations.withdraw_result):
        with pytest.raises((Forbidden, NotFound)):
            amend(Actor(world.user(role)), original.id, {"inputs": {"stands": 13}, "reason": "Misread it"}, now=LATER)
    with pytest.raises(NotFound):
        operations.withdraw_result(Actor(world.other_therapist), original.id, {"reason": "Misread it"}, now=LATER)
    assert row(db, original.id).in_force


def test_concurrent_corrections_of_one_result_leave_one_in_force(postgres, world, monkeypatch):  # noqa: F811
    """PostgreSQL: the row lock lets one of 20 simultaneous corrections through; the rest are refused."""
    monkeypatch.setattr("telerehab.assessments.api.utc_now", lambda: LATER)
    original = record(world, make_visit(world), 12)
    headers = bearer(world.therapist)
    with wide_pool_app(postgres) as app:
        def post():
            return new_client(app).post(f"/api/v1/assessment-results/{original.id}/corrections", headers=headers,
                                        json={"inputs": {"stands": 13}, "reason": "Misread the count"}).status_code

        statuses = run_together(post)
    assert sorted(statuses) == [201] + [422] * (THREADS - 1)
    assert count(postgres, AssessmentResult) == 2
    assert [r.score for r in postgres.session.scalars(select(AssessmentResult).where(AssessmentResult.in_force))] == [13]


# ---------------------------------------------------------------- API

def test_api_corrects_withdraws_and_shows_the_history(client, db, world, monkeypatch):
    monkeypatch.setattr("telerehab.assessments.api.utc_now", lambda: LATER)
    headers = bearer(world.therapist)
    original = record(world, make_visit(world), 12)
    response = client.post(f"/api/v1/assessment-results/{original.id}/corrections", headers=headers,
                           json={"inputs": {"stands": 14}, "reason": "Misread the count"})
    assert response.status_code == 201, response.json
    corrected = response.json
    assert (corrected["score"], corrected["in_force"], corrected["superseded_by_id"]) == (14, True, None)

    history = client.get(f"/api/v1/assessment-results/{corrected['id']}/history", headers=bearer(world.patient_user))
    old, new = history.json
    assert (old["id"], old["in_force"], old["superseded_by_id"], old["superseded_reason"]) == (
        original.id, False, corrected["id"], "Misread the count")
    assert old["superseded_by_user_id"] == world.therapist.id and new["id"] == corrected["id"]

    withdrawn = client.post(f"/api/v1/assessment-results/{corrected['id']}/withdrawal", headers=headers,
                            json={"reason": "Entered in the wrong chart"})
    assert withdrawn.status_code == 200
    assert (withdrawn.json["in_force"], withdrawn.json["withdrawn_by_id"]) == (False, world.therapist.id)
    listed = client.get(f"/api/v1/patients/{world.patient.id}/assessments", headers=headers).json
    trend = client.get(f"/api/v1/patients/{world.patient.id}/assessments/perf_30s_chair_stand/trend",
                       headers=headers).json
    assert listed == [] and trend["series"] == []


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("corrections", {"inputs": {"stands": 14}}, 422, "reason"),
    ("corrections", {"inputs": {"stands": 14}, "reason": "bad"}, 422, "reason"),
    ("corrections", {"inputs": {"stands": "many"}, "reason": "Misread it"}, 422, "inputs.stands"),
    ("corrections", {"inputs": {"stands": 14}, "reason": "Misread it", "score": 14}, 422, "score"),
    ("corrections", {"variant": "phone", "reason": "Misread it"}, 422, "variant"),
    ("withdrawal", {}, 422, "reason"),
    ("withdrawal", {"reason": "x" * (rules.MAX_AMENDMENT_REASON + 1)}, 422, "reason"),
])
def test_api_refuses_bad_input_naming_the_field(client, db, world, path, body, status, field):
    original = record(world, make_visit(world), 12)
    response = client.post(f"/api/v1/assessment-results/{original.id}/{path}", headers=bearer(world.therapist),
                           json=body)
    assert response.status_code == status and response.content_type == PROBLEM
    assert field in response.json["errors"]["json"]
    assert count(db, AssessmentResult) == 1 and row(db, original.id).in_force


def test_api_refuses_a_second_correction_naming_the_result_and_an_unknown_one(client, db, world):
    headers = bearer(world.therapist)
    original = record(world, make_visit(world), 12)
    body = {"inputs": {"stands": 14}, "reason": "Misread the count"}
    assert client.post(f"/api/v1/assessment-results/{original.id}/corrections", headers=headers,
                       json=body).status_code == 201
    again = client.post(f"/api/v1/assessment-results/{original.id}/corrections", headers=headers, json=body)
    assert again.status_code == 422 and again.content_type == PROBLEM
    assert f"Result {original.id} was already corrected" in again.json["errors"]["json"]["result"][0]
    missing = client.post("/api/v1/assessment-results/999999/withdrawal", headers=headers, json={"reason": "Wrong one"})
    assert missing.status_code == 404 and missing.content_type == PROBLEM
    assert count(db, AssessmentResult) == 2


# ---------------------------------------------------------------- pages

@pytest.fixture
def therapist_client(client, world):
    assert login(client, "therapist").status_code == 302
    return client


def test_the_trend_offers_correct_and_withdraw_and_the_form_starts_from_the_result(therapist_client, world):
    original = record(world, make_visit(world), 12, variant="in_clinic")
    trend = therapist_client.get(f"/patients/{world.patient.id}/assessments/perf_30s_chair_stand").get_data(as_text=True)
    assert f'href="/assessment-results/{original.id}/correction"' in trend
    assert f'href="/assessment-results/{original.id}/withdrawal"' in trend and "Withdraw (entered in error)" in trend
    page = therapist_client.get(f"/assessment-results/{original.id}/correction")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert re.search(r'name="input-stands" value="12"', html) and re.search(r'id="variant-in_clinic"[^>]*checked', html)
    assert 'name="reason"' in html
    assert_csp_safe(html)


def test_a_refused_correction_is_shown_beside_its_field_and_nothing_is_written(therapist_client, db, world):
    original = record(world, make_visit(world), 12)
    for form, field in (({"input-stands": "14", "reason": ""}, "reason"),
                        ({"input-stands": "many", "reason": "Misread the count"}, "input-stands")):
        response = therapist_client.post(f"/assessment-results/{original.id}/correction", data=form)
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html) and f'id="{field}-error"' in html
    assert count(db, AssessmentResult) == 1


def test_correcting_on_the_page_replaces_the_point_and_the_history_shows_both(therapist_client, db, world):
    original = record(world, make_visit(world), 12)
    response = therapist_client.post(f"/assessment-results/{original.id}/correction",
                                     data={"input-stands": "14", "reason": "Counted the last stand twice"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/patients/{world.patient.id}/assessments/perf_30s_chair_stand"
    corrected = row(db, original.id).superseded_by_id
    trend = therapist_client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"/assessment-results/{corrected}\"" in trend and "Corrected: history" in trend
    assert f"/assessment-results/{original.id}\"" not in trend
    history = therapist_client.get(f"/assessment-results/{corrected}").get_data(as_text=True)
    assert "Superseded" in history and "In force" in history and "Counted the last stand twice" in history
    assert history.index(f"result {original.id}") < history.index(f"result {corrected}")
    again = therapist_client.post(f"/assessment-results/{original.id}/correction",
                                  data={"input-stands": "15", "reason": "Another try"})
    assert again.status_code == 422 and "already corrected" in again.get_data(as_text=True)


def test_withdrawing_on_the_page_removes_it_from_the_trend(therapist_client, db, world):
    original = record(world, make_visit(world), 12)
    refused = therapist_client.post(f"/assessment-results/{original.id}/withdrawal", data={"reason": ""})
    assert refused.status_code == 422 and 'id="reason-error"' in refused.get_data(as_text=True)
    assert row(db, original.id).in_force
    response = therapist_client.post(f"/assessment-results/{original.id}/withdrawal",
                                     data={"reason": "Entered in the wrong chart"})
    assert response.status_code == 302
    trend = therapist_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "No results of this test yet." in trend
    history = therapist_client.get(f"/assessment-results/{original.id}").get_data(as_text=True)
    assert "Withdrawn as entered in error" in history and "Entered in the wrong chart" in history
    assert "Withdraw (entered in error)" not in history  # no action on a result not in force
    assert db.session.scalar(select(func.count()).select_from(AssessmentResult)) == 1
