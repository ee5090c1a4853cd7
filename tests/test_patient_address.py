"""The patient's home address (the claim subscriber's N3/N4): optional, but whole when given, in a
form every claim file accepts; through the API and the patient pages, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import Patient
from telerehab.accounts.operations import Actor
from telerehab.accounts.schemas import US_STATE_CODES
from telerehab.errors import ValidationFailed

from .conftest import NOW, bearer, login, patient_data
from .test_api import PROBLEM, new_patient_json
from .test_pages import field_error, new_patient_form

ADDRESS = {"address_line1": "1200 Maple Avenue", "address_line2": "Apt 3B", "city": "Springfield",
           "state": "IL", "postal_code": "62701-1234"}
NO_ADDRESS = dict.fromkeys(ADDRESS)
REQUIRED = {"address_line1", "city", "state", "postal_code"}


def stored(db, patient_id: int) -> Patient:
    db.session.expire_all()
    return db.session.get(Patient, patient_id)


def patient_count(db) -> int:
    return db.session.scalar(select(func.count(Patient.id)))


def address_of(patient: Patient) -> tuple:
    return (patient.address_line1, patient.address_line2, patient.city, patient.state, patient.postal_code)


def with_address(world, **address) -> Patient:
    return accounts.update_patient(Actor(world.therapist), world.patient.id, {**ADDRESS, **address}, now=NOW)


# ---------------------------------------------------------------- API: create

def test_a_patient_without_an_address_is_created_and_read_with_none(client, world, db):
    headers = bearer(world.therapist)
    response = client.post("/api/v1/patients", json=new_patient_json(), headers=headers)
    assert response.status_code == 201, response.json
    assert {name: response.json[name] for name in ADDRESS} == NO_ADDRESS
    assert client.get(f"/api/v1/patients/{world.patient.id}", headers=headers).json["city"] is None


@pytest.mark.parametrize(("sent", "kept"), [
    ("62701", "62701"), ("62701-1234", "627011234"), ("627011234", "627011234"), ("00501", "00501"),
])
def test_a_whole_address_is_stored_with_the_zip_without_its_dash(client, world, db, sent, kept):
    response = client.post("/api/v1/patients", headers=bearer(world.therapist),
                           json=new_patient_json(**{**ADDRESS, "postal_code": sent}))
    assert response.status_code == 201, response.json
    assert response.json["postal_code"] == kept
    assert address_of(stored(db, response.json["id"])) == (
        "1200 Maple Avenue", "Apt 3B", "Springfield", "IL", kept)


@pytest.mark.parametrize("line2", [None, ""])
def test_the_second_line_is_optional(client, world, db, line2):
    response = client.post("/api/v1/patients", headers=bearer(world.therapist),
                           json=new_patient_json(**{**ADDRESS, "address_line2": line2}))
    assert response.status_code == 201, response.json
    assert stored(db, response.json["id"]).address_line2 is None


@pytest.mark.parametrize(("given", "missing"), [
    ({"address_line1": "1200 Maple Avenue"}, {"city", "state", "postal_code"}),
    ({"city": "Springfield"}, {"address_line1", "state", "postal_code"}),
    ({"state": "IL"}, {"address_line1", "city", "postal_code"}),
    ({"postal_code": "62701"}, {"address_line1", "city", "state"}),
    ({"address_line2": "Apt 3B"}, REQUIRED),  # a second line alone is no address
    ({**ADDRESS, "postal_code": None}, {"postal_code"}),
    ({**ADDRESS, "address_line1": None}, {"address_line1"}),
    ({**ADDRESS, "city": "   "}, {"city"}),  # blank is not given
])
def test_a_partial_address_is_refused_naming_each_missing_part(client, world, db, given, missing):
    before = patient_count(db)
    response = client.post("/api/v1/patients", headers=bearer(world.therapist), json=new_patient_json(**given))
    assert response.status_code == 422
    assert response.content_type == PROBLEM
    errors = response.json["errors"]["json"]
    assert set(errors) == missing
    assert all("first line, city, state and ZIP" in " ".join(errors[name]) for name in missing)
    assert patient_count(db) == before


@pytest.mark.parametrize(("field", "value", "message"), [
    ("state", "XX", "USPS code"),
    ("state", "il", "USPS code"),
    ("state", "ILL", "USPS code"),
    ("state", "I", "USPS code"),
    ("state", "AA", "USPS code"),  # armed forces codes are not a home state
    ("postal_code", "6270", "5 digits"),
    ("postal_code", "627011", "5 digits"),
    ("postal_code", "62701-123", "5 digits"),
    ("postal_code", "62701-12345", "5 digits"),
    ("postal_code", "62701 1234", "5 digits"),
    ("postal_code", "62701--1234", "5 digits"),
    ("postal_code", "ABCDE", "5 digits"),
    ("address_line1", "1200 Maple*Avenue", "separators"),
    ("address_line1", "1200 Maple~Avenue", "separators"),
    ("address_line1", "Unit 4: 1200 Maple", "separators"),
    ("address_line1", "1200 Maple^Avenue", "separators"),
    ("address_line2", "Apt *3B", "separators"),
    ("address_line2", "Apt ~3B", "separators"),
    ("city", "Spring:field", "separators"),
    ("city", "Spring^field", "separators"),
    ("address_line1", "1200 Maple Avenue\nApt 3B", "line breaks"),
    ("address_line2", "Apt\t3B", "line breaks"),
    ("address_line1", "", "Length"),
    ("address_line1", "x" * 56, "Length"),
    ("address_line2", "x" * 56, "Length"),
    ("city", "S", "Length"),
    ("city", "S" * 31, "Length"),
])
def test_a_bad_part_is_refused_naming_its_field(client, world, db, field, value, message):
    before = patient_count(db)
    response = client.post("/api/v1/patients", headers=bearer(world.therapist),
                           json=new_patient_json(**{**ADDRESS, field: value}))
    assert response.status_code == 422
    errors = response.json["errors"]["json"]
    assert set(errors) == {field}
    assert message in " ".join(errors[field])
    assert patient_count(db) == before


@pytest.mark.parametrize(("field", "value"), [
    ("address_line1", "x" * 55), ("address_line1", "1"), ("address_line2", "x" * 55),
    ("city", "Ty"), ("city", "C" * 30), ("city", "Coeur d'Alene"), ("address_line1", "12-B O'Hara St., #4"),
    *[("state", code) for code in ("DC", "PR", "GU", "VI", "AS", "MP", "AK", "HI", "WY")],
])
def test_edge_values_are_accepted(client, world, field, value):
    response = client.post("/api/v1/patients", headers=bearer(world.therapist),
                           json=new_patient_json(**{**ADDRESS, field: value}))
    assert response.status_code == 201, response.json
    assert response.json[field] == value


def test_the_state_list_is_the_states_dc_and_the_territories():
    assert len(US_STATE_CODES) == 56
    assert {"DC", "PR", "GU", "VI", "AS", "MP"} <= US_STATE_CODES
    assert not {"AA", "AE", "AP", "FM", "MH", "PW", "UM"} & US_STATE_CODES


def test_the_openapi_document_lists_the_states_and_the_zip_pattern(client):
    schema = client.get("/api/v1/openapi.json").json["components"]["schemas"]["PatientWrite"]["properties"]
    assert set(schema["state"]["enum"]) == US_STATE_CODES | {None}  # None: no address
    assert schema["postal_code"]["pattern"] == r"^[0-9]{5}(-?[0-9]{4})?$"


# ---------------------------------------------------------------- API: update

def test_an_address_is_added_to_an_existing_patient(client, world, db):
    assert address_of(stored(db, world.patient.id)) == (None,) * 5  # patients made before still work
    response = client.patch(f"/api/v1/patients/{world.patient.id}", headers=bearer(world.therapist),
                            json={**ADDRESS, "postal_code": "62701"})
    assert response.status_code == 200, response.json
    assert address_of(stored(db, world.patient.id)) == ("1200 Maple Avenue", "Apt 3B", "Springfield", "IL", "62701")


@pytest.mark.parametrize(("change", "missing"), [
    ({"city": "Springfield"}, {"address_line1", "state", "postal_code"}),
    ({"address_line1": "1 Elm St", "city": "Peoria", "state": "IL"}, {"postal_code"}),
])
def test_a_patch_that_leaves_a_partial_address_is_refused(client, world, db, change, missing):
    response = client.patch(f"/api/v1/patients/{world.patient.id}", headers=bearer(world.therapist), json=change)
    assert response.status_code == 422
    assert set(response.json["errors"]["json"]) == missing
    assert address_of(stored(db, world.patient.id)) == (None,) * 5


def test_a_patch_changes_one_part_of_a_stored_address(client, world, db):
    with_address(world)
    response = client.patch(f"/api/v1/patients/{world.patient.id}", headers=bearer(world.therapist),
                            json={"city": "Chatham", "postal_code": "62629"})
    assert response.status_code == 200, response.json
    assert address_of(stored(db, world.patient.id)) == ("1200 Maple Avenue", "Apt 3B", "Chatham", "IL", "62629")


def test_a_patch_may_clear_the_whole_address_but_not_one_required_part(client, world, db):
    with_address(world)
    headers = bearer(world.therapist)
    response = client.patch(f"/api/v1/patients/{world.patient.id}", headers=headers, json={"city": None})
    assert response.status_code == 422
    assert set(response.json["errors"]["json"]) == {"city"}
    assert stored(db, world.patient.id).city == "Springfield"
    assert client.patch(f"/api/v1/patients/{world.patient.id}", headers=headers,
                        json={"address_line2": None}).status_code == 200
    assert stored(db, world.patient.id).address_line2 is None
    response = client.patch(f"/api/v1/patients/{world.patient.id}", headers=headers, json=NO_ADDRESS)
    assert response.status_code == 200, response.json
    assert address_of(stored(db, world.patient.id)) == (None,) * 5


@pytest.mark.parametrize(("field", "value"), [("state", "ZZ"), ("postal_code", "1234"), ("city", "A~B")])
def test_a_patch_with_a_bad_part_is_refused(client, world, db, field, value):
    with_address(world)
    response = client.patch(f"/api/v1/patients/{world.patient.id}", headers=bearer(world.therapist),
                            json={field: value})
    assert response.status_code == 422
    assert set(response.json["errors"]["json"]) == {field}
    assert address_of(stored(db, world.patient.id)) == (
        "1200 Maple Avenue", "Apt 3B", "Springfield", "IL", "627011234")


def test_operations_refuse_a_partial_address_from_any_caller(db, world):
    """The demo loader and other code call the operations without a schema: the rule holds there too."""
    with pytest.raises(ValidationFailed) as refused:
        accounts.create_patient(Actor(world.therapist), patient_data(city="Springfield"), now=NOW)
    assert set(refused.value.errors) == {"address_line1", "state", "postal_code"}
    patient = accounts.create_patient(Actor(world.therapist), patient_data(**ADDRESS), now=NOW)
    assert patient.postal_code == "627011234"


# ---------------------------------------------------------------- pages

def test_a_new_patient_with_an_address_is_saved_and_shown_to_staff(client, world, db):
    login(client, "therapist")
    form = client.get("/patients/new").get_data(as_text=True)
    assert 'name="address_line1"' in form and 'name="postal_code"' in form
    response = client.post("/patients/new", data=new_patient_form(**ADDRESS))
    assert response.status_code == 302
    patient = db.session.scalar(select(Patient).where(Patient.last_name == "Evans"))
    assert address_of(patient) == ("1200 Maple Avenue", "Apt 3B", "Springfield", "IL", "627011234")
    login(client, "billing")
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "1200 Maple Avenue<br>Apt 3B<br>Springfield, IL 62701-1234" in page


def test_a_patient_without_an_address_says_so_on_the_page(client, world):
    login(client, "therapist")
    page = client.get(f"/patients/{world.patient.id}").get_data(as_text=True)
    assert "None yet: claims need it" in page


def test_the_form_shows_each_problem_beside_its_field_and_keeps_the_input(client, world, db):
    login(client, "therapist")
    before = patient_count(db)
    response = client.post("/patients/new", data=new_patient_form(
        address_line1="1200 Maple*Avenue", address_line2="", city="", state="il", postal_code="6270"))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "separators" in field_error(html, "address_line1")
    assert "first line, city, state and ZIP" in field_error(html, "city")
    assert "USPS code" in field_error(html, "state")
    assert "5 digits" in field_error(html, "postal_code")
    assert 'id="address_line1" name="address_line1" value="1200 Maple*Avenue"' in html
    assert 'id="state" name="state" value="il"' in html
    assert patient_count(db) == before


def test_a_form_without_any_address_registers_the_patient(client, world, db):
    login(client, "therapist")
    response = client.post("/patients/new", data=new_patient_form(**dict.fromkeys(ADDRESS, "")))
    assert response.status_code == 302
    patient = db.session.scalar(select(Patient).where(Patient.last_name == "Evans"))
    assert address_of(patient) == (None,) * 5


def test_the_edit_page_round_trip(client, world, db):
    with_address(world, postal_code="62701")
    login(client, "therapist")
    form = client.get(f"/patients/{world.patient.id}/edit").get_data(as_text=True)
    assert 'value="1200 Maple Avenue"' in form and 'value="62701"' in form and 'value="IL"' in form
    data = new_patient_form(first_name="Ana", last_name="Alvarez", **{**ADDRESS, "postal_code": "62704-0001"})
    bad = client.post(f"/patients/{world.patient.id}/edit", data={**data, "state": "", "city": ""})
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "first line, city, state and ZIP" in field_error(html, "state")
    assert "first line, city, state and ZIP" in field_error(html, "city")
    assert stored(db, world.patient.id).postal_code == "62701"
    assert client.post(f"/patients/{world.patient.id}/edit", data=data).status_code == 302
    assert stored(db, world.patient.id).postal_code == "627040001"
    cleared = client.post(f"/patients/{world.patient.id}/edit", data={**data, **dict.fromkeys(ADDRESS, "")})
    assert cleared.status_code == 302
    assert address_of(stored(db, world.patient.id)) == (None,) * 5
