"""The JSON API: tokens, problem+json errors naming the field, paging and search, writes."""

from sqlalchemy import func, select

from telerehab.accounts.models import AuditEntry, Patient
from telerehab.careplans.models import Episode

from .conftest import bearer

PROBLEM = "application/problem+json"


def new_patient_json(**overrides):
    return {"first_name": "Dana", "last_name": "Evans", "date_of_birth": "1948-07-01", "sex": "F",
            "phone": "+13125550199", "timezone": "America/Chicago", "payer_type": "medicare",
            "member_id": "1eg4-te5-mk73", **overrides}


def test_no_token_is_401_problem(client, world):
    response = client.get("/api/v1/patients")
    assert response.status_code == 401
    assert response.content_type == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_session_cookie_is_not_enough(client, world):
    client.post("/login", data={"username": "therapist", "password": "correct-horse-battery"})
    assert client.get("/api/v1/patients").status_code == 401


def test_revoked_token_stops_working(client, world):
    headers = bearer(world.therapist)
    tokens = client.get("/api/v1/tokens", headers=headers).json
    assert client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=headers).status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_token_created_through_the_api_is_shown_once_and_works(client, world):
    headers = bearer(world.therapist)
    created = client.post("/api/v1/tokens", json={"name": "home app", "expires_in_days": 30}, headers=headers)
    assert created.status_code == 201
    token = created.json["token"]
    listed = client.get("/api/v1/tokens", headers=headers).json
    assert all("token" not in t for t in listed)
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json["username"] == "therapist"


def test_create_patient_normalises_and_audits(client, world, db):
    response = client.post("/api/v1/patients", json=new_patient_json(), headers=bearer(world.therapist))
    assert response.status_code == 201, response.json
    body = response.json
    assert body["member_id"] == "1EG4TE5MK73"
    assert body["clinic_id"] == world.clinic.id
    entry = db.session.scalar(select(AuditEntry).where(
        AuditEntry.record_type == "patient", AuditEntry.record_id == body["id"], AuditEntry.action == "create"))
    assert entry.actor_id == world.therapist.id and entry.ip_address == "127.0.0.1"


def test_bad_fields_are_named_and_nothing_is_written(client, world, db):
    before = db.session.scalar(select(func.count(Patient.id)))
    response = client.post("/api/v1/patients", headers=bearer(world.therapist), json=new_patient_json(
        phone="503-555-0123", member_id="1SG4TE5MK73", timezone="Mars/Olympus", favourite_colour="red"))
    assert response.status_code == 422
    assert response.content_type == PROBLEM
    errors = response.json["errors"]["json"]
    assert set(errors) == {"phone", "member_id", "timezone", "favourite_colour"}
    assert "MBI" in " ".join(errors["member_id"])
    assert db.session.scalar(select(func.count(Patient.id))) == before


def test_strict_integers_refuse_floats_and_strings(client, world):
    response = client.post(f"/api/v1/patients/{world.patient.id}/episodes", headers=bearer(world.therapist),
                           json={"title": "x", "start_date": "2026-03-02", "frequency_per_week": 2.5,
                                 "duration_weeks": "6", "diagnoses": ["M17.11"],
                                 "goals": [{"description": "Walk 1 km"}]})
    assert response.status_code == 422
    assert set(response.json["errors"]["json"]) == {"frequency_per_week", "duration_weeks"}


def test_list_pages_and_search(client, world):
    headers = bearer(world.therapist)
    for index in range(5):
        client.post("/api/v1/patients", headers=headers,
                    json=new_patient_json(first_name=f"Page{index}", last_name="Zed"))
    page = client.get("/api/v1/patients?q=zed&page=2&page_size=2", headers=headers).json
    assert page["total"] == 5 and page["pages"] == 3 and page["page"] == 2
    assert [p["first_name"] for p in page["items"]] == ["Page2", "Page3"]
    assert client.get("/api/v1/patients?page=0", headers=headers).status_code == 422


def test_other_clinic_patient_is_404_and_absent_from_lists(client, world):
    headers = bearer(world.therapist)
    assert client.get(f"/api/v1/patients/{world.other_patient.id}", headers=headers).status_code == 404
    ids = {p["id"] for p in client.get("/api/v1/patients?page_size=100", headers=headers).json["items"]}
    assert world.patient.id in ids and world.other_patient.id not in ids


def test_patient_token_sees_only_self(client, world):
    headers = bearer(world.patient_user)
    listed = client.get("/api/v1/patients", headers=headers).json
    assert [p["id"] for p in listed["items"]] == [world.patient.id]
    assert client.patch(f"/api/v1/patients/{world.patient.id}", json={"first_name": "X"},
                        headers=headers).status_code == 403


def test_episode_create_update_and_certification_rule(client, world, db):
    headers = bearer(world.therapist)
    payload = {"title": "Low back pain", "start_date": "2026-03-02", "frequency_per_week": 2,
               "duration_weeks": 6, "diagnoses": ["m545", "M54.16"], "goals": [{"description": "Sit 1 hour"}],
               "certification_start": "2026-03-02", "certification_end": "2026-05-31",
               "certifying_physician_npi": "1234567893"}
    response = client.post(f"/api/v1/patients/{world.patient.id}/episodes", json=payload, headers=headers)
    assert response.status_code == 422
    assert "certification_end" in response.json["errors"]["json"]
    payload["certification_end"] = "2026-05-30"  # day 90 counting the first treatment
    response = client.post(f"/api/v1/patients/{world.patient.id}/episodes", json=payload, headers=headers)
    assert response.status_code == 201, response.json
    assert response.json["diagnoses"] == ["M54.5", "M54.16"]
    episode_id = response.json["id"]
    patched = client.patch(f"/api/v1/episodes/{episode_id}", headers=headers,
                           json={"diagnoses": ["M54.16", "M54.5"], "status": "discharged"})
    assert patched.status_code == 422 and "discharge_date" in patched.json["errors"]["json"]
    patched = client.patch(f"/api/v1/episodes/{episode_id}", headers=headers, json={
        "diagnoses": ["M54.16", "M54.5"], "status": "discharged", "discharge_date": "2026-04-10",
        "discharge_reason": "goals_met"})
    assert patched.status_code == 200
    assert patched.json["diagnoses"] == ["M54.16", "M54.5"]
    assert db.session.get(Episode, episode_id).discharge_reason == "goals_met"


def test_bad_npi_check_digit_is_named(client, world):
    response = client.patch(f"/api/v1/episodes/{world.episode.id}", headers=bearer(world.therapist),
                            json={"certifying_physician_npi": "1234567890"})
    assert response.status_code == 422
    assert "check digit" in response.json["errors"]["json"]["certifying_physician_npi"][0]


def test_billing_gets_episodes_without_clinical_notes(client, world):
    therapist_view = client.get(f"/api/v1/episodes/{world.episode.id}", headers=bearer(world.therapist)).json
    billing_view = client.get(f"/api/v1/episodes/{world.episode.id}", headers=bearer(world.billing)).json
    assert therapist_view["plan_notes"] == "Clinical reasoning"
    assert "plan_notes" not in billing_view
    assert billing_view["diagnoses"] == therapist_view["diagnoses"]
    listed = client.get("/api/v1/episodes", headers=bearer(world.billing)).json["items"]
    assert listed and all("plan_notes" not in e for e in listed)


def test_consent_history_through_the_api(client, world):
    headers = bearer(world.therapist)
    granted = client.post(f"/api/v1/patients/{world.patient.id}/consents", json={"kind": "sms"}, headers=headers)
    assert granted.status_code == 201
    again = client.post(f"/api/v1/patients/{world.patient.id}/consents", json={"kind": "sms"}, headers=headers)
    assert again.status_code == 422
    revoked = client.post(f"/api/v1/consents/{granted.json['id']}/revoke", json={"note": "asked by phone"},
                          headers=headers)
    assert revoked.status_code == 200 and revoked.json["is_active"] is False
    history = client.get(f"/api/v1/patients/{world.patient.id}/consents", headers=headers).json
    assert [(c["kind"], c["is_active"]) for c in history] == [("sms", False)]
    assert history[0]["revoked_by"] == world.therapist.full_name


def test_405_keeps_the_allow_header(client, world):
    response = client.put("/api/v1/patients", headers=bearer(world.therapist))
    assert response.status_code == 405
    assert response.content_type == PROBLEM
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]


def test_openapi_documents_the_bearer_scheme(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]
    error = spec["components"]["responses"]["DEFAULT_ERROR"]["content"]
    assert list(error) == [PROBLEM]


def test_search_takes_wildcards_literally(client, world):
    headers = bearer(world.therapist)
    client.post("/api/v1/patients", headers=headers, json=new_patient_json(first_name="Per_cent", last_name="Q"))
    found = client.get("/api/v1/patients?q=%25", headers=headers).json["items"]
    assert found == []
    found = client.get("/api/v1/patients?q=r_c", headers=headers).json["items"]
    assert [p["first_name"] for p in found] == ["Per_cent"]
    found = client.get("/api/v1/patients?q=alvarez, ana", headers=headers).json["items"]
    assert [p["id"] for p in found] == [world.patient.id]


def test_a_write_without_a_json_body_is_415_and_changes_nothing(client, world):
    headers = bearer(world.therapist)
    response = client.patch(f"/api/v1/patients/{world.patient.id}", headers=headers)
    assert response.status_code == 415 and response.content_type == PROBLEM
    response = client.patch(f"/api/v1/patients/{world.patient.id}", headers=headers, data="first_name=X",
                            content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_ids_beyond_the_id_range_are_404_not_a_database_error(client, world):
    response = client.get("/api/v1/patients/9223372036854775808", headers=bearer(world.therapist))
    assert response.status_code == 404 and response.content_type == PROBLEM
    assert client.get("/api/v1/patients/2147483648", headers=bearer(world.therapist)).status_code == 404


def test_unknown_query_parameters_are_named(client, world):
    response = client.get("/api/v1/patients?serach=ana", headers=bearer(world.therapist))
    assert response.status_code == 422
    assert "serach" in response.json["errors"]["query"]
