"""The visits API: cadence preview and confirm, scheduling, the calendar, status changes with the
video slot offered for a cancelled clinic visit, notes, services with the 8-minute rule, plan
alerts and recertification. Bad input is refused with problem+json naming the field.

The API reads the clock once per request; these tests set it (the `clock` fixture) so that the
episode of the `world` (2026-03-02 to 2026-05-30, clinic in America/Chicago) is current.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.careplans.models import Visit, VisitNote

from .conftest import NOW, bearer, episode_data, patient_data

PROBLEM = "application/problem+json"
CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture
def clock(monkeypatch):
    """The API's clock, fixed at NOW (Monday 2026-03-02, 09:00 in Chicago) unless a test moves it."""

    class Clock:
        now = NOW

    fixed = Clock()
    monkeypatch.setattr("telerehab.careplans.api.utc_now", lambda: fixed.now)
    return fixed


@pytest.fixture
def api(client, world, clock):
    """`api(role_or_user).post(path, json=...)`: the test client with that user's bearer token."""
    tokens = {}

    class As:
        def __init__(self, user):
            if user not in tokens:
                tokens[user] = bearer(user)
            self.headers = tokens[user]

        def __getattr__(self, method):
            def call(path, **kwargs):
                return client.open(path, method=method.upper(), headers=self.headers, **kwargs)
            return call

    def as_user(who):
        if isinstance(who, str):
            who = world.patient_user if who == "patient" else getattr(world, who)
        return As(who)

    return as_user


def at(local: str) -> str:
    """A Chicago wall time, '2026-03-04 10:00', as ISO 8601 with its offset."""
    return datetime.fromisoformat(local).replace(tzinfo=CHICAGO).isoformat()


def slot(local: str, minutes: int = 45, *, kind: str = "treatment", modality: str = "in_clinic", **extra) -> dict:
    start = datetime.fromisoformat(local).replace(tzinfo=CHICAGO)
    return {"kind": kind, "modality": modality, "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(minutes=minutes)).isoformat(), **extra}


def utc(local: str) -> str:
    return datetime.fromisoformat(local).replace(tzinfo=CHICAGO).astimezone(UTC).isoformat()


def refused(response, status: int, *fields: str) -> dict:
    """Assert a problem+json answer with `status` naming exactly `fields` (under json or query)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    body = response.json
    if fields:
        errors = body["errors"]
        named = set(errors.get("json", {})) | set(errors.get("query", {}))
        assert named == set(fields), body
        for name in fields:
            assert name in body["detail"]
    return body


def messages(response, location: str = "json") -> str:
    return repr(response.json["errors"][location])


def schedule(api, world, local: str, *, who="therapist", **extra) -> dict:
    response = api(who).post(f"/api/v1/episodes/{world.episode.id}/visits", json=slot(local, **extra))
    assert response.status_code == 201, response.json
    return response.json


def move(api, visit_id: int, *statuses: str, who="therapist", **extra):
    response = None
    for status in statuses:
        response = api(who).post(f"/api/v1/visits/{visit_id}/status", json={"status": status, **extra})
        assert response.status_code == 200, response.json
    return response.json


def second_patient_episode(world):
    patient = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Dee"), now=NOW)
    return careplans.create_episode(Actor(world.therapist), patient.id, episode_data(), now=NOW)


def visit_count(db) -> int:
    return db.session.scalar(select(func.count(Visit.id)))


# ---------------------------------------------------------------- cadence


def test_preview_then_confirm_a_hybrid_cadence(api, world, db):
    options = {"modality_pattern": ["in_clinic", "video", "video"], "preferred_weekdays": [0, 3],
               "preferred_start": "10:00"}
    preview = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/cadence/preview", json=options)
    assert preview.status_code == 200, preview.json
    proposal = preview.json
    visits = proposal["visits"]
    assert proposal["problems"] == []
    assert len(visits) == 16  # 2 a week for 8 weeks
    assert visit_count(db) == 0  # a preview writes nothing
    assert [v["kind"] for v in visits][:1] == ["initial_evaluation"] and visits[-1]["kind"] == "discharge"
    assert visits[9]["kind"] == "progress"  # the 10th treatment day
    for visit in visits:
        if visit["kind"] != "treatment":
            assert visit["modality"] == "in_clinic"
    treatments = [v["modality"] for v in visits if v["kind"] == "treatment"]
    assert treatments[:6] == ["in_clinic", "video", "video"] * 2
    # Monday 10:00 in Chicago, before and after the change to daylight time on 8 March.
    assert visits[0]["starts_at"] == "2026-03-02T16:00:00+00:00"
    assert visits[0]["ends_at"] == "2026-03-02T16:45:00+00:00"
    assert visits[2]["starts_at"] == "2026-03-09T15:00:00+00:00"

    # What the preview gave, flags included, goes straight back to confirm.
    confirmed = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/cadence/confirm",
                                      json={"visits": visits})
    assert confirmed.status_code == 201, confirmed.json
    assert len(confirmed.json) == 16
    first = confirmed.json[0]
    assert first["status"] == "scheduled" and first["clinician"]["id"] == world.therapist.id
    assert first["timezone"] == "America/Chicago" and first["patient"]["id"] == world.patient.id
    assert not {"note", "subjective", "objective", "assessment", "plan"} & set(first)

    timeline = api("billing").get(f"/api/v1/episodes/{world.episode.id}/visits")
    assert timeline.status_code == 200
    assert [v["starts_at"] for v in timeline.json] == [v["starts_at"] for v in visits]
    assert [v["modality"] for v in timeline.json] == [v["modality"] for v in visits]

    # Confirming the same series again clashes with itself: refused whole, nothing added.
    again = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/cadence/confirm", json={"visits": visits})
    body = refused(again, 422)
    assert all(key.startswith("visits.") for key in body["errors"]["json"])
    assert visit_count(db) == 16


def test_preview_avoids_the_patients_existing_visits_and_flags_the_day(api, world):
    schedule(api, world, "2026-03-02 10:00", kind="initial_evaluation")
    preview = api("assistant").post(f"/api/v1/episodes/{world.episode.id}/cadence/preview", json={
        "modality_pattern": ["video"], "preferred_weekdays": [0], "preferred_start": "10:00", "visit_minutes": 30})
    assert preview.status_code == 200, preview.json
    first = preview.json["visits"][0]
    assert first["starts_at"] != utc("2026-03-02 10:00")
    assert "not_a_preferred_day" in first["flags"]


@pytest.mark.parametrize(("options", "field"), [
    ({"modality_pattern": [], "preferred_weekdays": [0], "preferred_start": "09:00"}, "modality_pattern"),
    ({"modality_pattern": ["hologram"], "preferred_weekdays": [0], "preferred_start": "09:00"}, "modality_pattern"),
    ({"modality_pattern": ["video"], "preferred_weekdays": [7], "preferred_start": "09:00"}, "preferred_weekdays"),
    ({"modality_pattern": ["video"], "preferred_weekdays": [1, 1], "preferred_start": "09:00"}, "preferred_weekdays"),
    ({"modality_pattern": ["video"], "preferred_weekdays": ["1"], "preferred_start": "09:00"}, "preferred_weekdays"),
    ({"modality_pattern": ["video"], "preferred_weekdays": [1], "preferred_start": "9am"}, "preferred_start"),
    ({"modality_pattern": ["video"], "preferred_weekdays": [1], "preferred_start": "09:00+02:00"}, "preferred_start"),
    ({"modality_pattern": ["video"], "preferred_weekdays": [1], "preferred_start": "09:00", "visit_minutes": 45.5},
     "visit_minutes"),
    ({"modality_pattern": ["video"], "preferred_weekdays": [1], "preferred_start": "09:00", "start_date": "1066-10-14"},
     "start_date"),
    ({"modality_pattern": ["video"], "preferred_weekdays": [1], "preferred_start": "09:00", "weekends": True},
     "weekends"),
    ({"preferred_weekdays": [1], "preferred_start": "09:00"}, "modality_pattern"),
])
def test_preview_bad_options_are_named(api, world, options, field):
    response = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/cadence/preview", json=options)
    refused(response, 422, field)


def test_preview_with_a_clinician_of_another_clinic_is_refused(api, world):
    response = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/cadence/preview", json={
        "modality_pattern": ["video"], "preferred_weekdays": [1], "preferred_start": "09:00",
        "clinician_id": world.other_therapist.id})
    refused(response, 422, "clinician_id")


def test_cadence_refused_to_billing_and_patient_and_unknown_episode(api, world):
    options = {"modality_pattern": ["video"], "preferred_weekdays": [1], "preferred_start": "09:00"}
    path = f"/api/v1/episodes/{world.episode.id}/cadence/preview"
    refused(api("billing").post(path, json=options), 403)
    refused(api("patient").post(path, json=options), 403)
    refused(api("therapist").post("/api/v1/episodes/999999/cadence/preview", json=options), 404)
    refused(api("therapist").post(f"/api/v1/episodes/{world.other_episode.id}/cadence/preview", json=options), 404)
    refused(api("therapist").post("/api/v1/episodes/999999/cadence/confirm",
                                  json={"visits": [slot("2026-03-03 10:00")]}), 404)


def test_confirm_bad_input(api, world, db):
    path = f"/api/v1/episodes/{world.episode.id}/cadence/confirm"
    refused(api("therapist").post(path, json={"visits": []}), 422, "visits")
    naive = slot("2026-03-03 10:00") | {"starts_at": "2026-03-03T10:00:00"}
    response = api("therapist").post(path, json={"visits": [naive]})
    refused(response, 422, "visits")
    assert "offset" in messages(response)
    backwards = slot("2026-03-03 10:00") | {"ends_at": at("2026-03-03 09:00")}
    response = api("therapist").post(path, json={"visits": [slot("2026-03-02 10:00"), backwards]})
    refused(response, 422, "visits")
    assert response.json["errors"]["json"]["visits"] == {"1": {"ends_at": ["The visit ends before it starts."]}}
    refused(api("therapist").post(path, json={"visits": [slot("2026-03-03 10:00", clinician_id=1)]}), 422, "visits")
    refused(api("therapist").post(path, json={"visits": [slot("2026-03-03 10:00")], "clinician_id": "1"}), 422,
            "clinician_id")
    # Two visits on one day for the patient, and the assistant for an evaluation: all refused.
    response = api("therapist").post(path, json={"clinician_id": world.assistant.id, "visits": [
        slot("2026-03-03 10:00", kind="initial_evaluation"), slot("2026-03-03 14:00")]})
    body = refused(response, 422)
    assert "clinician_id" in " ".join(body["errors"]["json"]) and "starts_at" in " ".join(body["errors"]["json"])
    assert visit_count(db) == 0


def test_confirm_names_a_refused_visit_by_its_place_in_the_request(api, world):
    schedule(api, world, "2026-03-05 10:00")
    response = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/cadence/confirm", json={
        "visits": [slot("2026-03-05 14:00"), slot("2026-03-03 10:00")]})
    refused(response, 422)
    assert set(response.json["errors"]["json"]) == {"visits.0.starts_at"}


# ---------------------------------------------------------------- one visit: bad input


def test_schedule_one_visit_and_read_it(api, world):
    created = api("assistant").post(f"/api/v1/episodes/{world.episode.id}/visits",
                                    json=slot("2026-03-03 10:00", room="Gym 2", clinician_id=world.assistant.id))
    assert created.status_code == 201, created.json
    visit = created.json
    assert visit["starts_at"] == "2026-03-03T16:00:00+00:00" and visit["room"] == "Gym 2"
    assert visit["clinician"] == {"id": world.assistant.id, "full_name": world.assistant.full_name}
    read = api("patient").get(f"/api/v1/visits/{visit['id']}")
    assert read.status_code == 200
    assert read.json["services"] == [] and read.json["id"] == visit["id"]


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"ends_at": at("2026-03-03 09:00")}, "ends_at", "ends before it starts"),
    ({"ends_at": at("2026-03-03 15:00")}, "ends_at", "at most 4 hours"),
    ({"starts_at": "2026-03-03T10:00:00"}, "starts_at", "offset"),
    ({"ends_at": "2026-03-03 10:45"}, "ends_at", "offset"),
    ({"starts_at": "tomorrow morning"}, "starts_at", "datetime"),
    ({"starts_at": "0001-01-01T00:00:00+10:00"}, "starts_at", "between"),
    ({"kind": "massage"}, "kind", "one of"),
    ({"modality": "phone"}, "modality", "one of"),
    ({"modality": "video", "room": "Gym 1"}, "room", "video visit has no room"),
    ({"clinician_id": 2.0}, "clinician_id", "integer"),
    ({"clinician_id": 2**40}, "clinician_id", "less than"),
    ({"colour": "blue"}, "colour", "Unknown field"),
    ({"kind": "initial_evaluation", "clinician_id": "assistant"}, "clinician_id", "needs a physical therapist"),
    ({"starts_at": at("2026-06-01 10:00"), "ends_at": at("2026-06-01 10:45")}, "starts_at", "certified period"),
    ({"starts_at": at("2026-02-27 10:00"), "ends_at": at("2026-02-27 10:45")}, "starts_at", "before the episode"),
    ({"clinician_id": "other_therapist"}, "clinician_id", "of this clinic"),
    ({"clinician_id": "billing"}, "clinician_id", "therapist or assistant"),
])
def test_schedule_bad_input_is_named(api, world, db, change, field, words):
    people = {"assistant": world.assistant.id, "other_therapist": world.other_therapist.id,
              "billing": world.billing.id}
    if change.get("clinician_id") in people:
        change = change | {"clinician_id": people[change["clinician_id"]]}
    response = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/visits",
                                     json=slot("2026-03-03 10:00") | change)
    refused(response, 422, field)
    assert words in messages(response)
    assert visit_count(db) == 0


def test_overlapping_visit_for_the_therapist_is_refused(api, world, db):
    other = second_patient_episode(world)
    response = api("therapist").post(f"/api/v1/episodes/{other.id}/visits", json=slot("2026-03-03 10:00"))
    assert response.status_code == 201
    response = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/visits", json=slot("2026-03-03 10:30"))
    refused(response, 422, "starts_at")
    assert "already has a visit at that time" in messages(response)
    # Back to back is fine: a visit may start when the other ends.
    assert api("therapist").post(f"/api/v1/episodes/{world.episode.id}/visits",
                                 json=slot("2026-03-03 10:45")).status_code == 201
    # Another clinician may take the same time.
    assert api("therapist").post(f"/api/v1/episodes/{other.id}/visits", json=slot(
        "2026-03-04 10:00", clinician_id=world.therapist2.id)).status_code == 201


def test_second_visit_the_same_day_for_the_patient_is_refused(api, world):
    schedule(api, world, "2026-03-03 08:00")
    response = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/visits",
                                     json=slot("2026-03-03 16:00", clinician_id=world.therapist2.id))
    refused(response, 422, "starts_at")
    assert "already has a visit on 2026-03-03" in messages(response)


def test_a_recertification_lets_visits_go_past_the_first_period(api, world):
    late = slot("2026-06-02 10:00")
    refused(api("therapist").post(f"/api/v1/episodes/{world.episode.id}/visits", json=late), 422, "starts_at")
    recert = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/recertifications", json={
        "certification_start": "2026-05-31", "certification_end": "2026-08-28",
        "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893",
        "certification_signed_on": "2026-05-31"})
    assert recert.status_code == 201, recert.json
    assert recert.json["episode_id"] == world.episode.id and recert.json["recorded_by_id"] == world.therapist.id
    created = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/visits", json=late)
    assert created.status_code == 201, created.json
    assert created.json["beyond_certification"] is False
    # Once a recertification is recorded, a visit past every certified day is flagged, not refused.
    later = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/visits", json=slot("2026-09-01 10:00"))
    assert later.status_code == 201, later.json
    assert later.json["beyond_certification"] is True
    alerts = api("therapist").get(f"/api/v1/episodes/{world.episode.id}/alerts").json
    assert [a["kind"] for a in alerts] == ["visits_beyond_certification"]


@pytest.mark.parametrize(("change", "field"), [
    ({"certification_start": "2026-05-20", "certification_end": "2026-08-17"}, "certification_start"),  # overlap
    ({"certification_end": "2026-09-30"}, "certification_end"),  # more than 90 days
    ({"certification_end": "2026-05-31", "certification_start": "2026-06-01"}, "certification_end"),
    ({"certifying_physician_npi": "1234567890"}, "certifying_physician_npi"),
    ({"certifying_physician_name": ""}, "certifying_physician_name"),
    ({"certification_start": "2026-02-30"}, "certification_start"),
    ({"certification_start": "9999-12-31"}, "certification_start"),
    ({"reason": "x"}, "reason"),
])
def test_recertification_bad_input_is_named(api, world, change, field):
    body = {"certification_start": "2026-05-31", "certification_end": "2026-08-28",
            "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893"} | change
    refused(api("therapist").post(f"/api/v1/episodes/{world.episode.id}/recertifications", json=body), 422, field)


def test_a_recertification_signed_ahead_of_its_period_is_accepted(api, world):
    response = api("therapist").post(f"/api/v1/episodes/{world.episode.id}/recertifications", json={
        "certification_start": "2026-05-31", "certification_end": "2026-08-28",
        "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893",
        "certification_signed_on": "2026-05-26"})
    assert response.status_code == 201, response.json


def test_recertification_is_the_therapists(api, world):
    body = {"certification_start": "2026-05-31", "certification_end": "2026-08-28",
            "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893"}
    for role in ("admin", "assistant", "billing", "patient"):
        assert api(role).post(f"/api/v1/episodes/{world.episode.id}/recertifications",
                              json=body).status_code in {403, 404}
    refused(api("therapist").post("/api/v1/episodes/999999/recertifications", json=body), 404)


def test_unknown_ids_are_404(api, world):
    for method, path, body in [
        ("get", "/api/v1/episodes/999999/visits", None),
        ("post", "/api/v1/episodes/999999/visits", slot("2026-03-03 10:00")),
        ("get", "/api/v1/visits/999999", None),
        ("post", "/api/v1/visits/999999/reschedule", {"starts_at": at("2026-03-03 10:00"),
                                                      "ends_at": at("2026-03-03 10:45")}),
        ("post", "/api/v1/visits/999999/status", {"status": "checked_in"}),
        ("get", "/api/v1/patients/999999/visits/upcoming", None),
        ("get", "/api/v1/patients/999999/offers", None),
        ("post", "/api/v1/offers/999999/accept", {}),
        ("get", "/api/v1/visits/999999/note", None),
        ("put", "/api/v1/visits/999999/note", {"subjective": "x"}),
        ("post", "/api/v1/visits/999999/note/sign", {}),
        ("post", "/api/v1/visits/999999/note/cosign", {}),
        ("post", "/api/v1/visits/999999/note/addenda", {"text": "x"}),
        ("put", "/api/v1/visits/999999/services", {"lines": []}),
        ("get", "/api/v1/episodes/999999/alerts", None),
        ("get", "/api/v1/visits/99999999999", None),  # beyond the id column: a plain 404
    ]:
        response = getattr(api("therapist"), method)(path, json=body)
        refused(response, 404)


def test_writes_without_a_json_body_are_refused(api, world):
    visit = schedule(api, world, "2026-03-03 10:00")
    for path in (f"/api/v1/visits/{visit['id']}/note/sign", f"/api/v1/visits/{visit['id']}/status",
                 "/api/v1/offers/1/accept"):
        refused(api("therapist").post(path), 415)


def test_other_clinics_visits_are_not_found(api, world):
    other = careplans.schedule_visit(Actor(world.other_therapist), world.other_episode.id,
                                     {"kind": "treatment", "modality": "video",
                                      "starts_at": datetime(2026, 3, 3, 15, tzinfo=UTC),
                                      "ends_at": datetime(2026, 3, 3, 15, 45, tzinfo=UTC)}, now=NOW)
    for role in ("therapist", "assistant", "billing", "patient"):
        refused(api(role).get(f"/api/v1/visits/{other.id}"), 404)
        refused(api(role).get(f"/api/v1/patients/{world.other_patient.id}/visits/upcoming"), 404)
    assert api("admin").get(f"/api/v1/visits/{other.id}").status_code == 200  # organisation-wide


# ---------------------------------------------------------------- calendar and lists


def test_calendar_lists_the_visits_in_the_range(api, world):
    schedule(api, world, "2026-03-03 10:00")
    schedule(api, world, "2026-03-05 10:00", modality="video", clinician_id=world.therapist2.id)
    schedule(api, world, "2026-03-12 10:00")
    query = {"start": at("2026-03-02 00:00"), "end": at("2026-03-09 00:00")}
    week = api("therapist").get("/api/v1/visits", query_string=query)
    assert week.status_code == 200, week.json
    assert [v["starts_at"] for v in week.json] == [utc("2026-03-03 10:00"), utc("2026-03-05 10:00")]
    assert [v["modality"] for v in week.json] == ["in_clinic", "video"]
    mine = api("therapist").get("/api/v1/visits", query_string=query | {"clinician_id": world.therapist.id})
    assert [v["starts_at"] for v in mine.json] == [utc("2026-03-03 10:00")]
    assert len(api("patient").get("/api/v1/visits", query_string=query).json) == 2
    outsider = api(world.other_therapist).get("/api/v1/visits", query_string=query)
    assert outsider.json == []


@pytest.mark.parametrize(("query", "field"), [
    ({"start": "2026-03-09T00:00:00Z", "end": "2026-03-02T00:00:00Z"}, "end"),
    ({"start": "2026-03-02T00:00:00Z", "end": "2026-03-02T00:00:00Z"}, "end"),
    ({"start": "2026-03-02T00:00:00Z", "end": "2026-04-14T00:00:01Z"}, "end"),
    ({"start": "2026-03-02T00:00:00", "end": "2026-03-09T00:00:00Z"}, "start"),
    ({"start": "2026-03-02", "end": "2026-03-09T00:00:00Z"}, "start"),
    ({"end": "2026-03-09T00:00:00Z"}, "start"),
    ({"start": "2026-03-02T00:00:00Z", "end": "2026-03-09T00:00:00Z", "clinician_id": "me"}, "clinician_id"),
    ({"start": "2026-03-02T00:00:00Z", "end": "2026-03-09T00:00:00Z", "clinican_id": "1"}, "clinican_id"),
])
def test_calendar_bad_range_is_named(api, world, query, field):
    response = api("therapist").get("/api/v1/visits", query_string=query)
    refused(response, 422, field)


def test_calendar_accepts_exactly_42_days(api, world):
    response = api("therapist").get("/api/v1/visits", query_string={
        "start": "2026-03-02T00:00:00-06:00", "end": "2026-04-13T00:00:00-06:00"})
    assert response.status_code == 200


def test_upcoming_visits_of_the_patient(api, world, clock):
    schedule(api, world, "2026-03-02 08:00")  # earlier today: over
    later = schedule(api, world, "2026-03-04 10:00", modality="video")
    cancelled = schedule(api, world, "2026-03-05 10:00", modality="video")
    move(api, cancelled["id"], "cancelled", reason="Travel")
    upcoming = api("patient").get(f"/api/v1/patients/{world.patient.id}/visits/upcoming")
    assert upcoming.status_code == 200
    assert [v["id"] for v in upcoming.json] == [later["id"]]


# ---------------------------------------------------------------- reschedule and status


def test_reschedule(api, world):
    visit = schedule(api, world, "2026-03-03 10:00")
    path = f"/api/v1/visits/{visit['id']}/reschedule"
    moved = api("assistant").post(path, json={"starts_at": at("2026-03-04 11:00"), "ends_at": at("2026-03-04 11:45")})
    assert moved.status_code == 200, moved.json
    assert moved.json["starts_at"] == utc("2026-03-04 11:00")
    # Moving it onto itself is no clash.
    assert api("therapist").post(path, json={"starts_at": at("2026-03-04 11:15"),
                                             "ends_at": at("2026-03-04 12:00")}).status_code == 200
    refused(api("therapist").post(path, json={"starts_at": at("2026-03-04 11:00"), "ends_at": at("2026-03-04 10:00")}),
            422, "ends_at")
    response = api("therapist").post(path, json={"starts_at": "2026-03-04T11:00:00", "ends_at": at("2026-03-04 12:00")})
    refused(response, 422, "starts_at")
    assert "offset" in messages(response)
    refused(api("therapist").post(path, json={"starts_at": at("2026-03-04 11:00")}), 422, "ends_at")
    refused(api("billing").post(path, json={"starts_at": at("2026-03-06 11:00"), "ends_at": at("2026-03-06 11:45")}),
            403)
    other = schedule(api, world, "2026-03-06 10:00")
    response = api("therapist").post(path, json={"starts_at": at("2026-03-06 14:00"), "ends_at": at("2026-03-06 14:45")})
    refused(response, 422, "starts_at")  # the patient already has a visit that day
    move(api, other["id"], "checked_in", "in_progress", "completed")
    refused(api("therapist").post(f"/api/v1/visits/{other['id']}/reschedule", json={
        "starts_at": at("2026-03-10 11:00"), "ends_at": at("2026-03-10 11:45")}), 422, "status")


def test_status_transitions(api, world):
    clinic = schedule(api, world, "2026-03-03 10:00")
    path = f"/api/v1/visits/{clinic['id']}/status"
    response = api("therapist").post(path, json={"status": "in_progress"})
    refused(response, 422, "status")
    assert "Check the patient in" in messages(response)
    done = move(api, clinic["id"], "checked_in", "in_progress", "completed")
    assert done["status"] == "completed" and done["offer"] is None
    response = api("therapist").post(path, json={"status": "scheduled"})
    refused(response, 422, "status")
    assert "final" in messages(response)
    refused(api("therapist").post(path, json={"status": "done"}), 422, "status")
    refused(api("therapist").post(path, json={"reason": "x"}), 422, "status")
    refused(api("patient").post(path, json={"status": "cancelled", "reason": "ill"}), 403)
    # A video visit may start without a check-in; a retried request changes nothing.
    video = schedule(api, world, "2026-03-04 10:00", modality="video")
    assert move(api, video["id"], "in_progress", "in_progress")["status"] == "in_progress"


def test_cancelling_needs_a_reason(api, world):
    visit = schedule(api, world, "2026-03-03 10:00")
    for body in ({"status": "cancelled"}, {"status": "cancelled", "reason": "  "},
                 {"status": "cancelled", "reason": None}):
        refused(api("therapist").post(f"/api/v1/visits/{visit['id']}/status", json=body), 422, "reason")
    assert api("therapist").get(f"/api/v1/visits/{visit['id']}").json["status"] == "scheduled"


def test_no_show(api, world):
    visit = schedule(api, world, "2026-03-03 10:00")
    result = move(api, visit["id"], "no_show")
    assert result["status"] == "no_show" and result["offer"] is None


# ---------------------------------------------------------------- the video slot offered for a cancelled clinic visit


def test_cancel_a_clinic_visit_then_the_patient_accepts_the_offered_video_slot(api, world, db):
    visit = schedule(api, world, "2026-03-04 10:00", room="Gym 1")
    cancelled = api("therapist").post(f"/api/v1/visits/{visit['id']}/status",
                                      json={"status": "cancelled", "reason": "Car broke down"})
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled" and cancelled.json["cancel_reason"] == "Car broke down"
    offer = cancelled.json["offer"]
    assert offer["modality"] == "video" and offer["cancelled_visit_id"] == visit["id"]
    # The clinic slot itself is free again, and it is the nearest one that week.
    assert offer["starts_at"] == utc("2026-03-04 10:00") and offer["ends_at"] == utc("2026-03-04 10:45")
    assert offer["token"].startswith("vso_")
    assert offer["accept_url"].endswith(f"/api/v1/offers/{offer['id']}/accept")
    assert offer["one_tap_url"].endswith(f"/offers/accept/{offer['token']}")
    assert careplans.offer_for_token(offer["token"], now=NOW).id == offer["id"]

    listed = api("patient").get(f"/api/v1/patients/{world.patient.id}/offers")
    assert listed.status_code == 200
    assert [o["id"] for o in listed.json] == [offer["id"]]
    assert "token" not in listed.json[0] and offer["token"] not in listed.get_data(as_text=True)
    assert offer["token"] not in api("therapist").get(f"/api/v1/visits/{visit['id']}").get_data(as_text=True)

    refused(api("billing").post(f"/api/v1/offers/{offer['id']}/accept", json={}), 403)
    refused(api("patient").post(f"/api/v1/offers/{offer['id']}/accept", json={"visit_id": 1}), 422, "visit_id")
    accepted = api("patient").post(f"/api/v1/offers/{offer['id']}/accept", json={})
    assert accepted.status_code == 201, accepted.json
    new_visit = accepted.json
    assert new_visit["modality"] == "video" and new_visit["status"] == "scheduled"
    assert new_visit["kind"] == visit["kind"] and new_visit["room"] is None
    assert new_visit["rescheduled_from_id"] == visit["id"]
    assert new_visit["starts_at"] == offer["starts_at"]

    again = api("patient").post(f"/api/v1/offers/{offer['id']}/accept", json={})
    assert again.status_code == 201 and again.json["id"] == new_visit["id"]
    assert visit_count(db) == 2
    assert api("patient").get(f"/api/v1/patients/{world.patient.id}/offers").json == []
    upcoming = api("patient").get(f"/api/v1/patients/{world.patient.id}/visits/upcoming").json
    assert [v["id"] for v in upcoming] == [new_visit["id"]]


def test_a_retried_cancel_offers_nothing_new(api, world):
    visit = schedule(api, world, "2026-03-04 10:00")
    body = {"status": "cancelled", "reason": "Ill"}
    first = api("therapist").post(f"/api/v1/visits/{visit['id']}/status", json=body).json
    second = api("therapist").post(f"/api/v1/visits/{visit['id']}/status", json=body).json
    assert first["offer"] is not None and second["offer"] is None
    assert len(api("therapist").get(f"/api/v1/patients/{world.patient.id}/offers").json) == 1


def test_cancelling_a_video_visit_offers_nothing(api, world):
    visit = schedule(api, world, "2026-03-04 10:00", modality="video")
    assert move(api, visit["id"], "cancelled", reason="Ill")["offer"] is None


def test_an_expired_offer_cannot_be_accepted(api, world, clock):
    visit = schedule(api, world, "2026-03-04 10:00")
    offer = move(api, visit["id"], "cancelled", reason="Ill")["offer"]
    clock.now = datetime.fromisoformat(offer["expires_at"]) + timedelta(minutes=1)
    assert api("patient").get(f"/api/v1/patients/{world.patient.id}/offers").json == []
    refused(api("patient").post(f"/api/v1/offers/{offer['id']}/accept", json={}), 422, "offer")


def test_an_offer_whose_slot_was_taken_is_refused(api, world):
    visit = schedule(api, world, "2026-03-04 10:00")
    offer = move(api, visit["id"], "cancelled", reason="Ill")["offer"]
    other = second_patient_episode(world)
    taken = api("therapist").post(f"/api/v1/episodes/{other.id}/visits", json=slot("2026-03-04 10:00"))
    assert taken.status_code == 201
    refused(api("patient").post(f"/api/v1/offers/{offer['id']}/accept", json={}), 422, "offer")


def test_another_patient_cannot_see_or_accept_the_offer(api, world):
    visit = schedule(api, world, "2026-03-04 10:00")
    offer = move(api, visit["id"], "cancelled", reason="Ill")["offer"]
    other = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Eve"), now=NOW)
    eve = accounts.give_portal_access(Actor(world.therapist), other.id, "eve", "another-long-password", now=NOW)
    refused(api(eve).post(f"/api/v1/offers/{offer['id']}/accept", json={}), 404)
    refused(api(eve).get(f"/api/v1/patients/{world.patient.id}/offers"), 404)
    refused(api(world.other_therapist).post(f"/api/v1/offers/{offer['id']}/accept", json={}), 404)


# ---------------------------------------------------------------- notes


def test_note_draft_sign_lock_and_addendum(api, world, db):
    visit = schedule(api, world, "2026-03-03 10:00")
    path = f"/api/v1/visits/{visit['id']}/note"
    refused(api("therapist").get(path), 404)  # no note yet
    refused(api("therapist").post(f"{path}/sign", json={}), 422, "note")  # nothing to sign
    draft = api("therapist").put(path, json={"subjective": "Knee pain 4/10", "plan": "Continue HEP"})
    assert draft.status_code == 200, draft.json
    assert draft.json["signed_at"] is None and draft.json["objective"] == ""
    changed = api("therapist").put(path, json={"subjective": "Knee pain 3/10", "assessment": "Improving"})
    assert changed.json["subjective"] == "Knee pain 3/10" and changed.json["plan"] == ""  # PUT: the whole draft
    refused(api("therapist2").put(path, json={"subjective": "Not mine"}), 403)
    refused(api("therapist").post(f"{path}/addenda", json={"text": "Too early"}), 422, "text")

    signed = api("therapist").post(f"{path}/sign", json={})
    assert signed.status_code == 200
    assert signed.json["signed_at"] == NOW.isoformat() and signed.json["needs_cosign"] is False
    response = api("therapist").put(path, json={"subjective": "Edited after signing"})
    refused(response, 422, "note")
    assert "addendum" in messages(response)
    refused(api("therapist").post(f"{path}/cosign", json={}), 422, "note")  # a PT's note needs none

    addendum = api("assistant").post(f"{path}/addenda", json={"text": "Patient called: pain eased."})
    assert addendum.status_code == 201, addendum.json
    assert addendum.json["author"]["id"] == world.assistant.id
    refused(api("therapist").post(f"{path}/addenda", json={"text": ""}), 422, "text")
    refused(api("therapist").post(f"{path}/addenda", json={"text": 42}), 422, "text")

    note = api("therapist").get(path)
    assert note.status_code == 200
    assert note.json["subjective"] == "Knee pain 3/10" and note.json["author"]["id"] == world.therapist.id
    assert [a["text"] for a in note.json["addenda"]] == ["Patient called: pain eased."]
    assert db.session.scalar(select(VisitNote.subjective)) == "Knee pain 3/10"


def test_assistant_note_needs_the_therapists_cosign(api, world):
    visit = schedule(api, world, "2026-03-03 10:00", clinician_id=world.assistant.id)
    path = f"/api/v1/visits/{visit['id']}/note"
    assert api("assistant").put(path, json={"objective": "ROM 0-115"}).status_code == 200
    refused(api("therapist").post(f"{path}/cosign", json={}), 422, "note")  # not signed yet
    refused(api("therapist").post(f"{path}/sign", json={}), 403)  # the author signs
    signed = api("assistant").post(f"{path}/sign", json={})
    assert signed.json["needs_cosign"] is True and signed.json["cosigned_at"] is None
    refused(api("assistant").post(f"{path}/cosign", json={}), 403)
    refused(api("admin").post(f"{path}/cosign", json={}), 403)
    cosigned = api("therapist2").post(f"{path}/cosign", json={})
    assert cosigned.status_code == 200, cosigned.json
    assert cosigned.json["cosigned_by"]["id"] == world.therapist2.id and cosigned.json["cosigned_at"] == NOW.isoformat()


def test_billing_admin_and_patient_cannot_read_notes(api, world):
    visit = schedule(api, world, "2026-03-03 10:00")
    path = f"/api/v1/visits/{visit['id']}/note"
    assert api("therapist").put(path, json={"assessment": "Clinical reasoning"}).status_code == 200
    for role in ("billing", "admin", "patient"):
        response = api(role).get(path)
        refused(response, 403)
        assert "Clinical reasoning" not in response.get_data(as_text=True)
        visit_json = api(role).get(f"/api/v1/visits/{visit['id']}").get_data(as_text=True)
        assert "Clinical reasoning" not in visit_json
    assert api("assistant").get(path).status_code == 200


def test_note_bad_input(api, world):
    visit = schedule(api, world, "2026-03-03 10:00")
    path = f"/api/v1/visits/{visit['id']}/note"
    refused(api("therapist").put(path, json={"subjective": 1}), 422, "subjective")
    refused(api("therapist").put(path, json={"history": "x"}), 422, "history")
    refused(api("therapist").put(path, json={"plan": "x" * 20001}), 422, "plan")
    refused(api("therapist").post(f"{path}/sign", json={"signature": "me"}), 422, "signature")
    move(api, visit["id"], "cancelled", reason="Ill")
    refused(api("therapist").put(path, json={"subjective": "x"}), 422, "note")


# ---------------------------------------------------------------- services


def completed_visit(api, world, local: str, **extra) -> dict:
    visit = schedule(api, world, local, **extra)
    steps = ("in_progress", "completed") if extra.get("modality") == "video" else (
        "checked_in", "in_progress", "completed")
    move(api, visit["id"], *steps)
    return visit


def test_services_in_the_clinic_by_the_8_minute_rule(api, world):
    visit = completed_visit(api, world, "2026-03-03 10:00")
    response = api("therapist").put(f"/api/v1/visits/{visit['id']}/services", json={"lines": [
        {"cpt_code": "97110", "minutes": 33}, {"cpt_code": "97140", "minutes": 7}]})
    assert response.status_code == 200, response.json
    lines = {line["cpt_code"]: line for line in response.json["lines"]}
    assert {code: line["units"] for code, line in lines.items()} == {"97110": 2, "97140": 1}
    assert {line["place_of_service"] for line in lines.values()} == {"11"}
    assert all(line["modifiers"] == ["GP"] for line in lines.values())
    assert lines["97110"]["assistant_minutes"] == 0
    shown = api("billing").get(f"/api/v1/visits/{visit['id']}").json["services"]
    assert {line["cpt_code"]: line["units"] for line in shown} == {"97110": 2, "97140": 1}
    # A second PUT replaces the list.
    replaced = api("therapist").put(f"/api/v1/visits/{visit['id']}/services",
                                    json={"lines": [{"cpt_code": "97530", "minutes": 8, "assistant_minutes": 8}]})
    assert [(line["cpt_code"], line["units"], line["modifiers"]) for line in replaced.json["lines"]] == [
        ("97530", 1, ["GP", "CQ"])]


def test_services_on_video_are_pos_10_with_95_and_93_when_audio_only(api, world):
    visit = completed_visit(api, world, "2026-03-04 10:00", modality="video")
    path = f"/api/v1/visits/{visit['id']}/services"
    response = api("assistant").put(path, json={"lines": [{"cpt_code": "97110", "minutes": 30}]})
    assert response.status_code == 200, response.json
    [line] = response.json["lines"]
    assert (line["units"], line["place_of_service"], line["modifiers"]) == (2, "10", ["GP", "95"])
    response = api("assistant").put(path, json={"audio_only": True, "lines": [
        {"cpt_code": "97110", "minutes": 30, "assistant_minutes": 4}]})
    [line] = response.json["lines"]
    assert line["modifiers"] == ["GP", "CQ", "95", "93"]
    assert api("therapist").put(path, json={"lines": []}).json["lines"] == []


def test_services_untimed_evaluation_is_one_unit(api, world):
    visit = completed_visit(api, world, "2026-03-02 10:00", kind="initial_evaluation")
    response = api("therapist").put(f"/api/v1/visits/{visit['id']}/services", json={"lines": [
        {"cpt_code": "97162", "minutes": 50}, {"cpt_code": "97110", "minutes": 10}]})
    assert {line["cpt_code"]: line["units"] for line in response.json["lines"]} == {"97162": 1, "97110": 1}


@pytest.mark.parametrize(("lines", "words"), [
    ([{"cpt_code": "9711", "minutes": 30}], "5 digits"),
    ([{"cpt_code": "97110a", "minutes": 30}], "5 digits"),
    ([{"cpt_code": 97110, "minutes": 30}], "string"),
    ([{"cpt_code": "97110", "minutes": 0}], "greater than or equal to 1"),
    ([{"cpt_code": "97110", "minutes": 481}], "less than or equal to 480"),
    ([{"cpt_code": "97110", "minutes": "30"}], "integer"),
    ([{"cpt_code": "97110", "minutes": 30.5}], "integer"),
    ([{"cpt_code": "97110", "minutes": 30, "assistant_minutes": 31}], "at most"),
    ([{"cpt_code": "97110", "minutes": 30, "assistant_minutes": -1}], "greater than or equal to 0"),
    ([{"cpt_code": "97110", "minutes": 30, "units": 2}], "Unknown field"),
    ([{"cpt_code": "97110", "minutes": 30, "modifiers": ["GP"]}], "Unknown field"),
    ([{"cpt_code": "97110", "minutes": 20}, {"cpt_code": "97110", "minutes": 10}], "once"),
    ([{"minutes": 30}], "required"),
])
def test_services_bad_lines_are_named(api, world, lines, words):
    visit = completed_visit(api, world, "2026-03-03 10:00")
    response = api("therapist").put(f"/api/v1/visits/{visit['id']}/services", json={"lines": lines})
    refused(response, 422, "lines")
    assert words in messages(response)


def test_services_wait_for_completion_and_lock_with_the_signed_note(api, world):
    visit = schedule(api, world, "2026-03-03 10:00")
    path = f"/api/v1/visits/{visit['id']}/services"
    lines = {"lines": [{"cpt_code": "97110", "minutes": 30}]}
    refused(api("therapist").put(path, json=lines), 422, "services")
    refused(api("therapist").put(path, json={"audio_only": "yes please", **lines}), 422, "audio_only")
    refused(api("therapist").put(path, json={}), 422, "lines")
    move(api, visit["id"], "checked_in", "in_progress", "completed")
    refused(api("billing").put(path, json=lines), 403)
    refused(api("admin").put(path, json=lines), 403)
    assert api("therapist").put(path, json=lines).status_code == 200
    api("therapist").put(f"/api/v1/visits/{visit['id']}/note", json={"plan": "Continue"})
    api("therapist").post(f"/api/v1/visits/{visit['id']}/note/sign", json={})
    refused(api("therapist").put(path, json=lines), 422, "services")


def test_audio_only_on_a_clinic_visit_is_refused(api, world):
    visit = completed_visit(api, world, "2026-03-03 10:00")
    response = api("therapist").put(f"/api/v1/visits/{visit['id']}/services", json={
        "audio_only": True, "lines": [{"cpt_code": "97110", "minutes": 30}]})
    refused(response, 422, "audio_only")


# ---------------------------------------------------------------- plan-of-care alerts


def test_alerts_certification_ending_within_7_days(api, world, clock):
    path = f"/api/v1/episodes/{world.episode.id}/alerts"
    assert api("therapist").get(path).json == []
    clock.now = datetime(2026, 5, 26, 15, tzinfo=UTC)  # the certification ends on 2026-05-30
    response = api("therapist").get(path)
    assert response.status_code == 200
    assert [a["kind"] for a in response.json] == ["certification_ending"]
    assert "2026-05-30" in response.json[0]["message"] and "4 days left" in response.json[0]["message"]
    clock.now = datetime(2026, 5, 22, 15, tzinfo=UTC)  # 8 days before: not yet
    assert api("therapist").get(path).json == []
    clock.now = datetime(2026, 5, 26, 15, tzinfo=UTC)
    assert api("therapist").post(f"/api/v1/episodes/{world.episode.id}/recertifications", json={
        "certification_start": "2026-05-31", "certification_end": "2026-08-28", "certifying_physician_name": "Dr. Hale",
        "certifying_physician_npi": "1234567893"}).status_code == 201
    assert api("therapist").get(path).json == []


def test_alerts_unsigned_certification_and_progress_due(api, world, clock):
    unsigned = careplans.create_episode(Actor(world.therapist), world.patient.id, episode_data(
        title="Left shoulder", certification_signed_on=None), now=NOW)
    clock.now = datetime(2026, 4, 3, 15, tzinfo=UTC)
    response = api("billing").get(f"/api/v1/episodes/{unsigned.id}/alerts")
    assert [a["kind"] for a in response.json] == ["certification_unsigned"]
    refused(api(world.other_therapist).get(f"/api/v1/episodes/{unsigned.id}/alerts"), 404)
