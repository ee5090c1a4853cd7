"""The assessment API: protocols (read), results (create, list) and trends, with bad input answered
as problem+json naming the field and nothing written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from telerehab.assessments.models import AssessmentResult

from .conftest import NOW, bearer
from .test_assessments_operations import make_visit

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    moment = {"now": NOW}
    monkeypatch.setattr("telerehab.assessments.api.utc_now", lambda: moment["now"])
    return moment


def results_count(db) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(AssessmentResult))


def test_protocols_are_listed_and_read(client, world):
    headers = bearer(world.patient_user)
    listed = client.get("/api/v1/protocols", headers=headers).json
    assert len(listed) == 28 and [p["id"] for p in listed] == sorted(p["id"] for p in listed)
    tug = next(p for p in listed if p["id"] == "perf_tug")
    assert tug == {"id": "perf_tug", "version": 1, "name": "Timed Up and Go", "kind": "performance",
                   "body_region": "whole-body mobility", "units": "seconds", "direction": "higher_worse",
                   "video_available": True, "comparability": "not_comparable"}
    document = client.get("/api/v1/protocols/rom_knee_flexion", headers=headers).json
    assert document["goniometry"]["reading"] == "deviation_from_straight"
    assert document["variants"]["video"]["camera"]["plane"].startswith("Lens square")
    assert document["mcid"] == {"value": None, "text": "NOT FOUND: no MCID for knee flexion ROM in the sources consulted",
                                "sources": []}
    missing = client.get("/api/v1/protocols/rom_wrist", headers=headers)
    assert missing.status_code == 404 and missing.content_type == PROBLEM


def test_create_list_and_trend(client, db, world, clock):
    headers = bearer(world.therapist)
    clinic, video = make_visit(world, days=1), make_visit(world, modality="video", days=8)
    first = client.post(f"/api/v1/patients/{world.patient.id}/assessments", headers=headers, json={
        "protocol_id": "perf_tug", "visit_id": clinic.id, "inputs": {"seconds": 14.2, "aid": "none"}})
    assert first.status_code == 201, first.json
    assert (first.json["variant"], first.json["score"], first.json["protocol_version"]) == ("in_clinic", 14.2, 1)
    clock["now"] = NOW + timedelta(days=7)
    second = client.post(f"/api/v1/patients/{world.patient.id}/assessments", headers=headers, json={
        "protocol_id": "perf_tug", "visit_id": video.id, "inputs": {"seconds": 11.0, "aid": "none"},
        "checklist": {"helper_present": True}})
    assert second.status_code == 201 and second.json["variant"] == "video"
    assert second.json["checklist"]["helper_present"] is True

    listed = client.get(f"/api/v1/patients/{world.patient.id}/assessments?protocol_id=perf_tug", headers=headers).json
    assert [r["id"] for r in listed] == [second.json["id"], first.json["id"]]

    trend = client.get(f"/api/v1/patients/{world.patient.id}/assessments/perf_tug/trend",
                       headers=bearer(world.patient_user)).json
    assert trend["comparability"] == "not_comparable"
    [series] = trend["series"]
    assert series["key"] == "aid=none" and series["not_comparable_steps"] == 1
    baseline, later = series["points"]
    assert baseline["since_baseline"] is None and baseline["norm"]["position"] == "above"  # 75 y: >10.2 s
    assert later["since_baseline"]["comparable"] is False and later["since_baseline"]["delta"] is None
    assert later["since_baseline"]["summary"].startswith("Not comparable")


BAD_BODIES = [
    ({"protocol_id": "perf_tug", "inputs": {"seconds": "fast", "aid": "none"}}, 422, "inputs.seconds"),
    ({"protocol_id": "perf_tug", "inputs": {"seconds": 9, "aid": "none", "x": 1}}, 422, "inputs.x"),
    ({"protocol_id": "perf_bench", "inputs": {}}, 422, "protocol_id"),
    ({"protocol_id": "perf_tug"}, 422, "inputs"),
    ({"protocol_id": "perf_tug", "inputs": []}, 422, "inputs"),
    ({"protocol_id": "perf_tug", "inputs": {}, "colour": "red"}, 422, "colour"),
    ({"protocol_id": "perf_tug", "inputs": {}, "visit_id": 2**31}, 422, "visit_id"),
    ({"protocol_id": "perf_tug", "inputs": {}, "visit_id": "1"}, 422, "visit_id"),
    ({"protocol_id": "perf_tug", "inputs": {"seconds": 9, "aid": "none"}, "visit_id": None}, 422, "episode_id"),
    ({"protocol_id": "prom_quickdash", "inputs": {"item_1": 3, "item_2": 3}}, 422, "inputs.items"),
    ({"protocol_id": "perf_tug", "inputs": {"seconds": 9, "aid": "none"}, "variant": "tv"}, 422, "variant"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_BODIES, ids=[b[2] for b in BAD_BODIES])
def test_bad_input_is_a_problem_naming_the_field(client, db, world, body, status, field):
    visit = make_visit(world)
    body = {"visit_id": visit.id, **body}
    response = client.post(f"/api/v1/patients/{world.patient.id}/assessments", headers=bearer(world.therapist),
                           json=body)
    assert response.status_code == status, response.json
    assert response.content_type == PROBLEM
    assert field in response.json["errors"]["json"]
    assert results_count(db) == 0


def test_bad_query_and_unknown_trend(client, world):
    headers = bearer(world.therapist)
    response = client.get(f"/api/v1/patients/{world.patient.id}/assessments?colour=red", headers=headers)
    assert response.status_code == 422 and "colour" in response.json["errors"]["query"]
    response = client.get(f"/api/v1/patients/{world.patient.id}/assessments/rom_wrist/trend", headers=headers)
    assert response.status_code == 404 and response.content_type == PROBLEM


def test_billing_never_sees_results(client, world):
    response = client.get(f"/api/v1/patients/{world.patient.id}/assessments", headers=bearer(world.billing))
    assert response.status_code == 403
