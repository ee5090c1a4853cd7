"""The exercise, program and check-in API: 201 and 200-on-replay, paging and date filters, and bad
input answered with problem+json naming the field (and nothing written)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from telerehab.exercises.models import CheckIn, ClinicExercise, Program

from .conftest import NOW, bearer
from .test_exercises_operations import make_program

PROBLEM = "application/problem+json"
CLOCK = NOW + timedelta(minutes=1)


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The API's clock, fixed: check-ins are judged against it."""
    moment = {"now": CLOCK}
    monkeypatch.setattr("telerehab.exercises.api.utc_now", lambda: moment["now"])
    return moment


def count(db, model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def problem_fields(response, location="json") -> set[str]:
    assert response.content_type == PROBLEM, response.get_data(as_text=True)
    return set(response.json["errors"][location])


def checkin_json(**overrides) -> dict:
    return {"client_id": str(uuid.uuid4()), "recorded_at": "2026-03-02T09:00:00-06:00", "pain": 3,
            "difficulty": "ok", "note": "fine", "exercises": [], **overrides}


def post_checkin(client, world, body, user=None):
    return client.post(f"/api/v1/patients/{world.patient.id}/checkins", json=body,
                       headers=bearer(user or world.patient_user))


# ---------------------------------------------------------------- the library

def test_library_search_by_words_region_and_equipment(client, world):
    headers = bearer(world.therapist)
    everything = client.get("/api/v1/exercises?page_size=100", headers=headers).json
    assert everything["total"] >= 40
    first = everything["items"][0]
    assert set(first) == {"key", "name", "body_region", "region_label", "instructions", "equipment", "media",
                          "dosage", "clinic_id"}
    assert set(first["dosage"]) == {"sets", "reps", "hold_seconds", "times_per_day", "days_per_week"}
    bands = client.get("/api/v1/exercises?q=band", headers=headers).json["items"]
    assert bands and all("band" in (e["name"] + " ".join(e["equipment"])).lower() for e in bands)
    knees = client.get("/api/v1/exercises?region=knee&equipment=chair", headers=headers).json["items"]
    assert knees and all(e["body_region"] == "knee" and "chair" in e["equipment"] for e in knees)
    bare = client.get("/api/v1/exercises?equipment=none", headers=headers).json["items"]
    assert bare and all(e["equipment"] == [] for e in bare)


@pytest.mark.parametrize(("query", "field"), [
    ("region=tail", "region"), ("page=0", "page"), ("page_size=1000", "page_size"), ("colour=red", "colour"),
    ("clinic_id=abc", "clinic_id"),
])
def test_library_search_refuses_bad_arguments_by_name(client, world, query, field):
    response = client.get(f"/api/v1/exercises?{query}", headers=bearer(world.therapist))
    assert response.status_code == 422
    assert problem_fields(response, "query") == {field}


def test_library_search_of_another_clinic_is_refused(client, world):
    response = client.get(f"/api/v1/exercises?clinic_id={world.other_clinic.id}", headers=bearer(world.therapist))
    assert response.status_code == 422 and problem_fields(response) == {"clinic_id"}


CLINIC_EXERCISE = {"name": "Step-over drill", "body_region": "balance",
                   "instructions": "Step over the cones slowly, one foot then the other.",
                   "equipment": ["cones"], "sets": 2, "reps": 8}


def test_a_clinic_adds_an_exercise(client, world, db):
    response = client.post("/api/v1/exercises", json=CLINIC_EXERCISE, headers=bearer(world.therapist))
    assert response.status_code == 201, response.json
    body = response.json
    assert body["key"].startswith("clinic:") and body["clinic_id"] == world.clinic.id
    assert body["dosage"] == {"sets": 2, "reps": 8, "hold_seconds": 0, "times_per_day": 1, "days_per_week": 7}
    found = client.get("/api/v1/exercises?q=step-over", headers=bearer(world.assistant)).json["items"]
    assert [e["key"] for e in found] == [body["key"]]
    again = client.post("/api/v1/exercises", json=CLINIC_EXERCISE, headers=bearer(world.therapist))
    assert again.status_code == 422 and problem_fields(again) == {"name"}
    assert count(db, ClinicExercise) == 1


@pytest.mark.parametrize(("changes", "fields"), [
    ({"sets": "2"}, {"sets"}),
    ({"reps": 2.5}, {"reps"}),
    ({"sets": 0, "reps": 999}, {"sets", "reps"}),
    ({"body_region": "tail"}, {"body_region"}),
    ({"media": "../x.png"}, {"media"}),
    ({"instructions": "short"}, {"instructions"}),
    ({"name": None}, {"name"}),
    ({"favourite": 1}, {"favourite"}),
    ({"clinic_id": 2**31}, {"clinic_id"}),
])
def test_clinic_exercise_bad_fields_are_named(client, world, db, changes, fields):
    response = client.post("/api/v1/exercises", json={**CLINIC_EXERCISE, **changes}, headers=bearer(world.therapist))
    assert response.status_code == 422
    assert problem_fields(response) == fields
    assert count(db, ClinicExercise) == 0


# ---------------------------------------------------------------- programs

def program_json(*keys, **overrides) -> dict:
    return {"items": [{"exercise_key": key} for key in (keys or ("glute-bridge", "heel-raise"))], **overrides}


def test_program_versions_through_the_api(client, world):
    headers = bearer(world.therapist)
    path = f"/api/v1/episodes/{world.episode.id}/program"
    assert client.get(path, headers=headers).status_code == 404
    first = client.post(path, json=program_json(change_note="Start"), headers=headers)
    assert first.status_code == 201, first.json
    assert (first.json["version"], first.json["effective_from"]) == (1, "2026-03-02")
    assert first.json["items"][0]["exercise_name"] == "Bridge"
    second = client.post(path, json=program_json("clamshell", effective_from="2026-03-10"), headers=headers)
    assert second.status_code == 201 and second.json["version"] == 2

    today = client.get(path, headers=bearer(world.patient_user))
    assert today.status_code == 200
    assert (today.json["date"], today.json["program"]["version"]) == ("2026-03-02", 1)
    on_ninth = client.get(f"{path}?on=2026-03-09", headers=headers).json
    on_tenth = client.get(f"{path}?on=2026-03-10", headers=headers).json
    assert [i["exercise_key"] for i in on_ninth["items"]] == ["glute-bridge", "heel-raise"]
    assert [i["exercise_key"] for i in on_tenth["items"]] == ["clamshell"]
    assert client.get(f"{path}?on=2026-03-01", headers=headers).status_code == 404

    versions = client.get(f"{path}/versions", headers=headers).json
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["created_by"]["full_name"] == world.therapist.full_name


@pytest.mark.parametrize(("body", "fields"), [
    ({"items": [{"exercise_key": "glute-bridge", "sets": 0}]}, {"items"}),
    ({"items": [{"exercise_key": "glute-bridge", "reps": "ten"}]}, {"items"}),
    ({"items": [{"exercise_key": "glute-bridge", "start_date": "2026-03-05", "end_date": "2026-03-04"}]},
     {"items"}),
    ({"items": [{"exercise_key": "no-such-thing"}]}, {"items"}),
    ({"items": [{"exercise_key": "glute-bridge"}], "effective_from": "2026-03-01"}, {"effective_from"}),
    ({"items": [{"exercise_key": "glute-bridge"}], "effective_from": "yesterday"}, {"effective_from"}),
    ({}, {"items"}),
    ({"items": [{"exercise_key": "glute-bridge"}] * 31}, {"items"}),
    ({"items": [], "version": 7}, {"version"}),
], ids=["zero-sets", "string-reps", "end-before-start", "unknown-exercise", "backdated", "not-a-date",
        "no-items", "too-many", "unknown-field"])
def test_program_bad_input_is_named_and_nothing_is_written(client, world, db, body, fields):
    response = client.post(f"/api/v1/episodes/{world.episode.id}/program", json=body, headers=bearer(world.therapist))
    assert response.status_code == 422
    assert problem_fields(response) == fields
    assert count(db, Program) == 0


def test_nested_item_errors_name_the_line_and_field(client, world):
    response = client.post(f"/api/v1/episodes/{world.episode.id}/program", headers=bearer(world.therapist),
                           json={"items": [{"exercise_key": "glute-bridge"}, {"exercise_key": "clamshell", "sets": 0}]})
    assert response.json["errors"]["json"]["items"] == {"1": {"sets": ["Must be greater than or equal to 1 and "
                                                                       "less than or equal to 20."]}}


def test_program_of_a_bad_date_argument(client, world):
    response = client.get(f"/api/v1/episodes/{world.episode.id}/program?on=someday", headers=bearer(world.therapist))
    assert response.status_code == 422 and problem_fields(response, "query") == {"on"}


# ---------------------------------------------------------------- check-ins

def test_post_is_201_then_200_with_the_first_check_in(client, world, db):
    item = make_program(world).items[0]
    body = checkin_json(exercises=[{"program_item_id": item.id, "sets": 3, "reps": 10}])
    created = post_checkin(client, world, body)
    assert created.status_code == 201, created.json
    answer = created.json
    assert answer["client_id"] == body["client_id"]
    assert answer["recorded_at"] == "2026-03-02T15:00:00+00:00"
    assert answer["received_at"] == "2026-03-02T15:01:00+00:00"
    assert (answer["local_date"], answer["timezone"], answer["source"]) == ("2026-03-02", "America/Chicago", "api")
    assert answer["exercises"] == [{"program_item_id": item.id, "exercise_name": "Bridge", "sets": 3, "reps": 10}]

    replay = post_checkin(client, world, {**body, "pain": 9, "note": "changed"})
    assert replay.status_code == 200
    assert replay.json == answer
    assert count(db, CheckIn) == 1


def test_2330_in_los_angeles_through_the_api(client, world, clock):
    client.patch(f"/api/v1/patients/{world.patient.id}", json={"timezone": "America/Los_Angeles"},
                 headers=bearer(world.therapist))
    clock["now"] = NOW + timedelta(hours=17)  # 08:00 UTC on 3 March
    response = post_checkin(client, world, checkin_json(recorded_at="2026-03-02T23:30:00-08:00"))
    assert response.status_code == 201
    assert response.json["recorded_at"] == "2026-03-03T07:30:00+00:00"
    assert response.json["local_date"] == "2026-03-02"


@pytest.mark.parametrize(("changes", "fields"), [
    ({"recorded_at": "2026-03-02T09:00:00"}, {"recorded_at"}),  # no offset
    ({"recorded_at": "2026-03-02T15:06:01Z"}, {"recorded_at"}),  # beyond the 5-minute skew
    ({"recorded_at": "2026-02-23T15:00:59Z"}, {"recorded_at"}),  # more than 7 days late
    ({"recorded_at": "soon"}, {"recorded_at"}),
    ({"client_id": "123"}, {"client_id"}),
    ({"client_id": None}, {"client_id"}),
    ({"pain": 11}, {"pain"}),
    ({"pain": -1}, {"pain"}),
    ({"pain": "5"}, {"pain"}),
    ({"pain": 4.0}, {"pain"}),
    ({"difficulty": "brutal"}, {"difficulty"}),
    ({"note": "x" * 2001}, {"note"}),
    ({"exercises": [{"program_item_id": 1, "sets": -1, "reps": 10}]}, {"exercises"}),
    ({"exercises": [{"program_item_id": 999999, "sets": 1, "reps": 1}]}, {"exercises"}),
    ({"exercises": "all"}, {"exercises"}),
    ({"pain": None, "difficulty": None, "note": None}, {"exercises"}),  # nothing to record
    ({"mood": "good"}, {"mood"}),
], ids=["naive", "future", "too-late", "not-a-time", "short-uuid", "null-uuid", "pain-11", "pain-minus",
        "pain-string", "pain-float", "difficulty", "long-note", "negative-sets", "unknown-item", "exercises-string",
        "empty", "unknown-field"])
def test_check_in_bad_input_is_named_and_nothing_is_written(client, world, db, changes, fields):
    make_program(world)
    response = post_checkin(client, world, checkin_json(**changes))
    assert response.status_code == 422, response.json
    assert problem_fields(response) == fields
    assert count(db, CheckIn) == 0


def test_missing_required_fields_are_named(client, world, db):
    response = post_checkin(client, world, {"pain": 3})
    assert response.status_code == 422
    assert problem_fields(response) == {"client_id", "recorded_at"}


def test_without_an_active_episode_the_message_is_clear(client, world):
    client.patch(f"/api/v1/episodes/{world.episode.id}", headers=bearer(world.therapist),
                 json={"status": "on_hold"})
    response = post_checkin(client, world, checkin_json())
    assert response.status_code == 422
    assert "no active plan of care" in response.json["errors"]["json"]["episode"][0]


def test_a_body_that_is_not_json_is_refused(client, world):
    response = client.post(f"/api/v1/patients/{world.patient.id}/checkins", data="pain=3",
                           headers=bearer(world.patient_user))
    assert response.status_code == 415


def test_list_pages_and_filters_on_the_data_day(client, world, clock):
    for day in range(2, 8):
        clock["now"] = NOW + timedelta(days=day - 2)
        response = post_checkin(client, world, checkin_json(recorded_at=f"2026-03-{day:02d}T09:00:00-06:00"))
        assert response.status_code == 201
    headers = bearer(world.therapist)
    path = f"/api/v1/patients/{world.patient.id}/checkins"
    page = client.get(f"{path}?page_size=4", headers=headers).json
    assert (page["total"], page["pages"], len(page["items"])) == (6, 2, 4)
    assert [c["local_date"] for c in page["items"]] == ["2026-03-07", "2026-03-06", "2026-03-05", "2026-03-04"]
    second = client.get(f"{path}?page_size=4&page=2", headers=headers).json
    assert [c["local_date"] for c in second["items"]] == ["2026-03-03", "2026-03-02"]
    window = client.get(f"{path}?from=2026-03-03&to=2026-03-04", headers=headers).json
    assert [c["local_date"] for c in window["items"]] == ["2026-03-04", "2026-03-03"]
    assert client.get(f"{path}?from=2026-03-07", headers=headers).json["total"] == 1
    assert client.get(f"{path}?to=2026-03-02", headers=headers).json["total"] == 1


@pytest.mark.parametrize(("query", "field"), [
    ("from=2026-03-05&to=2026-03-04", "to"), ("from=March", "from"), ("page=0", "page"),
    ("page_size=101", "page_size"), ("date=2026-03-02", "date"),
])
def test_list_refuses_bad_filters_by_name(client, world, query, field):
    response = client.get(f"/api/v1/patients/{world.patient.id}/checkins?{query}", headers=bearer(world.therapist))
    assert response.status_code == 422
    assert problem_fields(response, "query") == {field}


def test_billing_sees_check_ins_without_the_patients_note(client, world):
    post_checkin(client, world, checkin_json(note="my knee clicks"))
    billing = client.get(f"/api/v1/patients/{world.patient.id}/checkins", headers=bearer(world.billing)).json
    assert billing["items"][0]["local_date"] == "2026-03-02" and "note" not in billing["items"][0]
    therapist = client.get(f"/api/v1/patients/{world.patient.id}/checkins", headers=bearer(world.therapist)).json
    assert therapist["items"][0]["note"] == "my knee clicks"


def test_staff_record_for_their_clinics_patient_only(client, world):
    assert post_checkin(client, world, checkin_json(), user=world.assistant).status_code == 201
    response = client.post(f"/api/v1/patients/{world.other_patient.id}/checkins", json=checkin_json(),
                           headers=bearer(world.therapist))
    assert response.status_code == 404 and response.content_type == PROBLEM
