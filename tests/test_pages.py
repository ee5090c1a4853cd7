"""The HTML pages, through the test client: each page's main path, refused input, and scope."""

from __future__ import annotations

import html as html_lib
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from telerehab import create_app
from telerehab.accounts import operations as accounts
from telerehab.accounts.models import AuditEntry, Clinic, Consent, Patient, User
from telerehab.accounts.operations import Actor
from telerehab.careplans.models import Episode
from telerehab.extensions import db as _db

from .conftest import NOW, PASSWORD, TEST_SETTINGS, login, new_client


def count(model) -> int:
    _db.session.expire_all()
    return _db.session.scalar(select(func.count()).select_from(model))


def field_error(html: str, field: str) -> str:
    """The message shown beside `field` (the macro puts it right after the field)."""
    match = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', html, re.S)
    assert match, f"no error shown beside {field}"
    return html_lib.unescape(match.group(1))


def new_patient_form(**overrides) -> dict:
    return {"first_name": "Dana", "last_name": "Evans", "date_of_birth": "1948-07-01", "sex": "F",
            "phone": "+13125550199", "email": "dana@example.org", "timezone": "America/Chicago",
            "preferred_language": "en", "primary_therapist_id": "", "payer_type": "medicare",
            "payer_name": "Medicare", "member_id": "1eg4-te5-mk73", **overrides}


def new_episode_form(**overrides) -> dict:
    return {"title": "Left shoulder tendinopathy", "status": "active", "start_date": "2026-03-02",
            "frequency_per_week": "2", "duration_weeks": "6", "diagnoses": "m75112\nM25.512\n",
            "goals": "Reach the top shelf without pain | 2026-04-13\nSleep on the left side",
            "certification_start": "2026-03-02", "certification_end": "2026-05-30",
            "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893",
            "certification_signed_on": "2026-03-03", "discharge_date": "", "discharge_reason": "",
            "plan_notes": "Rotator cuff loading program", **overrides}


# ---------------------------------------------------------------- sign-in and homes

@pytest.mark.parametrize(("username", "home"), [
    ("therapist", "/patients"), ("assistant", "/patients"), ("billing", "/patients"),
    ("admin", "/admin/users"), ("ana", "/my-plan"),
])
def test_each_role_lands_on_its_home(client, world, username, home):
    assert login(client, username).status_code == 302
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == home
    assert client.get(home).status_code == 200


def test_pages_need_sign_in(client, world):
    for path in ("/patients", f"/patients/{world.patient.id}", "/my-plan", "/admin/users",
                 f"/episodes/{world.episode.id}"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_login_throttling_refuses_even_the_right_password(client, world):
    for _ in range(5):
        response = login(client, "therapist", "wrong password!")
        assert response.status_code == 401
        assert "Wrong username or password" in response.get_data(as_text=True)
    response = login(client, "therapist", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.get_data(as_text=True)
    assert client.get("/patients").status_code == 302  # still signed out


def test_logout_ends_the_session(client, world):
    login(client, "therapist")
    response = client.post("/logout")
    assert response.status_code == 302
    assert client.get("/patients").status_code == 302


def test_forms_refuse_a_post_without_the_csrf_token():
    """The real setting: every form POST must carry the token (the `app` fixture turns it off)."""
    app = create_app({**TEST_SETTINGS, "WTF_CSRF_ENABLED": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    with app.app_context():
        _db.create_all()
        client = app.test_client()
        refused = client.post("/login", data={"username": "x", "password": "y"})
        assert refused.status_code == 400
        assert "CSRF token is missing" in refused.get_data(as_text=True)
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
        accepted = client.post("/login", data={"username": "x", "password": "y", "csrf_token": token})
        assert accepted.status_code == 401  # past the CSRF check, refused as a wrong password
        # htmx requests send the token as a header (static/js/app.js).
        assert client.post("/logout", headers={"X-CSRFToken": meta}).status_code == 302
        _db.session.remove()
        _db.engine.dispose()


# ---------------------------------------------------------------- patient list and search

def test_patient_list_shows_scope_status_and_therapist(client, world):
    login(client, "therapist")
    html = client.get("/patients").get_data(as_text=True)
    assert "My patients" in html
    assert "Alvarez, Ana" in html
    assert "Therapist" in html  # the primary therapist's name (username titled by the factory)
    assert 'badge badge-active">Active' in html and "Right knee OA" in html
    assert "Ben" not in html and "Cy" not in html  # other clinic, other organisation
    assert f'href="/patients/{world.patient.id}"' in html


def test_mine_only_defaults_on_for_therapists(client, world):
    login(client, "therapist2")
    html = client.get("/patients").get_data(as_text=True)
    assert "Alvarez, Ana" not in html
    assert "No patients assigned to you yet" in html
    assert 'id="patient-mine" name="mine" value="1" role="switch" checked' in html
    html = client.get("/patients?mine=0").get_data(as_text=True)
    assert "Alvarez, Ana" in html
    # The form sends mine=0 then mine=1 when the box is ticked: the last one wins.
    assert "Alvarez, Ana" not in client.get("/patients?mine=0&mine=1").get_data(as_text=True)


def test_assistants_and_billing_see_the_whole_clinic_without_the_toggle(client, world):
    login(client, "billing")
    html = client.get("/patients").get_data(as_text=True)
    assert "Alvarez, Ana" in html and "Mine only" not in html
    assert "New patient" not in html  # billing may not register patients


def test_htmx_search_returns_only_the_results_partial(client, world):
    login(client, "therapist")
    full = client.get("/patients?q=alva").get_data(as_text=True)
    assert "<html" in full and 'hx-get="/patients"' in full
    assert 'hx-trigger="submit, keyup changed delay:300ms from:#patient-q' in full
    response = client.get("/patients?q=alva", headers={"HX-Request": "true"})
    partial = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in partial and "<nav>" not in partial
    assert "Alvarez, Ana" in partial and "1 patient matching" in partial
    assert "HX-Request" in response.headers["Vary"]
    nothing = client.get("/patients?q=zzzz", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "No patients match" in nothing and "Alvarez" not in nothing
    # A history restore needs the whole page.
    restore = client.get("/patients?q=alva", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)


def test_patient_list_pages(client, world):
    therapist = Actor(world.therapist)
    for index in range(27):
        accounts.create_patient(therapist, {
            "first_name": f"P{index:02d}", "last_name": "Zimmer", "date_of_birth": date(1960, 1, 1),
            "sex": "M", "timezone": "America/Chicago", "payer_type": "self_pay",
            "primary_therapist_id": world.therapist.id}, now=NOW)
    login(client, "therapist")
    first = client.get("/patients?q=zimmer").get_data(as_text=True)
    assert "27 patients" in first and "Page 1 of 2" in first
    assert first.count("Zimmer, P") == 25
    second = client.get("/patients?q=zimmer&mine=1&page=2").get_data(as_text=True)
    assert second.count("Zimmer, P") == 2 and "← Previous" in second
    for page in ("99999999999999999999", "-3", "x"):
        assert client.get(f"/patients?page={page}").status_code == 200


# ---------------------------------------------------------------- patient forms

@pytest.mark.parametrize(("field", "value", "message"), [
    ("phone", "555-0199", "international form"),
    ("member_id", "1EG4-TE5-MK7S", "not a valid Medicare MBI"),
    ("member_id", "12345", "11 characters"),
    ("timezone", "Mars/Olympus_Mons", "Unknown timezone"),
    ("date_of_birth", "not a date", "Not a valid date"),
    ("first_name", "", "Missing data for required field"),
])
def test_new_patient_refuses_bad_input_beside_the_field(client, world, field, value, message):
    login(client, "therapist")
    before = count(Patient)
    response = client.post("/patients/new", data=new_patient_form(**{field: value}))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in field_error(html, field)
    assert f'id="{field}" name="{field}" value="{value}"' in html or field == "first_name"  # input kept
    assert count(Patient) == before


def test_new_patient_is_saved_and_listed(client, world):
    login(client, "therapist")
    assert "Register patient" in client.get("/patients/new").get_data(as_text=True)
    response = client.post("/patients/new", data=new_patient_form(primary_therapist_id=str(world.therapist.id)))
    assert response.status_code == 302
    patient = _db.session.scalar(select(Patient).where(Patient.last_name == "Evans"))
    assert response.headers["Location"] == f"/patients/{patient.id}"
    assert patient.member_id == "1EG4TE5MK73"  # normalised
    assert patient.clinic_id == world.clinic.id  # the therapist's own clinic
    assert _db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "create", AuditEntry.patient_id == patient.id)) is not None
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Dana Evans is registered." in page
    assert "Evans, Dana" in client.get("/patients?q=evans").get_data(as_text=True)


def test_admin_chooses_the_clinic(client, world):
    login(client, "admin")
    form = client.get("/patients/new").get_data(as_text=True)
    assert 'name="clinic_id"' in form and "Eastside" in form
    response = client.post("/patients/new", data=new_patient_form())
    assert response.status_code == 422
    assert "Choose the patient's clinic" in field_error(response.get_data(as_text=True), "clinic_id")
    response = client.post("/patients/new", data=new_patient_form(clinic_id=str(world.other_clinic.id)))
    assert response.status_code == 302
    assert _db.session.scalar(select(Patient.clinic_id).where(Patient.last_name == "Evans")) == world.other_clinic.id


def test_edit_patient(client, world):
    login(client, "therapist")
    form = client.get(f"/patients/{world.patient.id}/edit").get_data(as_text=True)
    assert 'value="Ana"' in form and 'value="1950-04-02"' in form
    data = new_patient_form(first_name="Ana", last_name="Alvarez-Ruiz", phone="+13125550177")
    bad = client.post(f"/patients/{world.patient.id}/edit", data={**data, "email": "not-an-email"})
    assert bad.status_code == 422
    assert "Not a valid email" in field_error(bad.get_data(as_text=True), "email")
    _db.session.expire_all()
    assert _db.session.get(Patient, world.patient.id).last_name == "Alvarez"
    response = client.post(f"/patients/{world.patient.id}/edit", data=data)
    assert response.status_code == 302
    _db.session.expire_all()
    patient = _db.session.get(Patient, world.patient.id)
    assert (patient.last_name, patient.phone) == ("Alvarez-Ruiz", "+13125550177")
    assert "details are saved" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_billing_may_read_but_not_edit_patients(client, world):
    login(client, "billing")
    html = client.get(f"/patients/{world.patient.id}").get_data(as_text=True)
    assert "Ana Alvarez" in html and "1EG4TE5MK73" in html
    assert "Edit details" not in html and "New episode" not in html and "Record consent" not in html
    assert client.get("/patients/new").status_code == 403
    assert client.post("/patients/new", data=new_patient_form()).status_code == 403
    assert client.get(f"/patients/{world.patient.id}/edit").status_code == 403
    assert client.post(f"/patients/{world.patient.id}/edit", data=new_patient_form()).status_code == 403


def test_patients_outside_the_scope_are_not_found(client, world):
    login(client, "therapist")
    for patient in (world.other_patient, world.foreign_patient):
        for path in (f"/patients/{patient.id}", f"/patients/{patient.id}/edit",
                     f"/patients/{patient.id}/episodes/new"):
            response = client.get(path)
            assert response.status_code == 404
            assert "No such patient" in response.get_data(as_text=True)
    assert client.get(f"/episodes/{world.other_episode.id}").status_code == 404
    assert client.post(f"/patients/{world.other_patient.id}/consents",
                       data={"kind": "sms", "method": "verbal"}).status_code == 404


def test_patient_detail_shows_demographics_payer_and_episodes(client, world):
    login(client, "therapist")
    html = client.get(f"/patients/{world.patient.id}").get_data(as_text=True)
    for text in ("Ana Alvarez", "1950-04-02", "+13125550101", "Medicare", "1EG4TE5MK73",
                 "Right knee OA", "Edit details", "New episode", f"/episodes/{world.episode.id}"):
        assert text in html
    assert "Give portal access" not in html  # Ana already has a sign-in
    assert ">ana<" in html


# ---------------------------------------------------------------- consent

def test_consent_record_and_revoke_keep_history(client, world):
    login(client, "therapist")
    path = f"/patients/{world.patient.id}"
    response = client.post(f"{path}/consents", data={"kind": "telehealth", "method": "verbal", "note": "by phone"})
    assert response.status_code == 302
    assert "Telehealth (video visits) consent is recorded" in client.get(path).get_data(as_text=True)

    twice = client.post(f"{path}/consents", data={"kind": "telehealth", "method": "written"})
    assert twice.status_code == 422
    assert "already recorded" in field_error(twice.get_data(as_text=True), "kind")
    bad = client.post(f"{path}/consents", data={"kind": "fax", "method": "written"})
    assert bad.status_code == 422 and "Must be one of" in field_error(bad.get_data(as_text=True), "kind")

    consent = _db.session.scalar(select(Consent).where(Consent.patient_id == world.patient.id))
    response = client.post(f"/consents/{consent.id}/revoke",
                           data={"patient_id": world.patient.id, "note": "Prefers clinic visits"})
    assert response.status_code == 302
    again = client.post(f"/consents/{consent.id}/revoke", data={"patient_id": world.patient.id})
    assert again.status_code == 422
    assert "already revoked" in again.get_data(as_text=True)
    assert client.post(f"{path}/consents", data={"kind": "telehealth", "method": "written"}).status_code == 302

    _db.session.expire_all()
    rows = _db.session.scalars(select(Consent).where(Consent.patient_id == world.patient.id)
                               .order_by(Consent.id)).all()
    assert [(c.kind, c.revoked_at is not None) for c in rows] == [("telehealth", True), ("telehealth", False)]
    assert rows[0].revoked_by_id == world.therapist.id and rows[0].revocation_note == "Prefers clinic visits"
    html = client.get(path).get_data(as_text=True)
    assert "Revoked" in html and "In force" in html and "Prefers clinic visits" in html
    assert "recorded by Therapist" in html and "by Therapist" in html
    actions = _db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.patient_id == world.patient.id, AuditEntry.record_type == "consent")).all()
    assert sorted(actions) == ["grant_consent", "grant_consent", "revoke_consent"]


def test_consent_times_are_shown_in_the_clinic_timezone(client, world):
    accounts.record_consent(Actor(world.therapist), world.patient.id, "rtm", method="written", note=None, now=NOW)
    login(client, "assistant")
    html = client.get(f"/patients/{world.patient.id}").get_data(as_text=True)
    assert "2026-03-02 09:00 CST" in html  # 15:00 UTC in Chicago


# ---------------------------------------------------------------- portal access

def test_give_portal_access_then_the_patient_signs_in(client, world):
    login(client, "therapist")
    client.post("/patients/new", data=new_patient_form())
    patient = _db.session.scalar(select(Patient).where(Patient.last_name == "Evans"))
    path = f"/patients/{patient.id}"
    users_before = count(User)
    assert "Give portal access" in client.get(path).get_data(as_text=True)
    short = client.post(f"{path}/portal-access", data={"username": "dana", "password": "short"})
    assert short.status_code == 422
    assert "at least 12 characters" in field_error(short.get_data(as_text=True), "password")
    taken = client.post(f"{path}/portal-access", data={"username": "ana", "password": "temporary-pass-1"})
    assert taken.status_code == 422
    assert "taken" in field_error(taken.get_data(as_text=True), "username")
    bad_name = client.post(f"{path}/portal-access", data={"username": "d a", "password": "temporary-pass-1"})
    assert bad_name.status_code == 422
    assert count(User) == users_before  # nothing half-written
    response = client.post(f"{path}/portal-access", data={"username": "dana", "password": "temporary-pass-1"})
    assert response.status_code == 302
    assert "signs in as dana" in client.get(path).get_data(as_text=True)
    client.post("/logout")
    assert login(client, "dana", "temporary-pass-1").status_code == 302
    assert client.get("/").headers["Location"] == "/my-plan"


# ---------------------------------------------------------------- episodes

@pytest.mark.parametrize(("field", "value", "message"), [
    ("diagnoses", "M75.112\nXYZ", "'XYZ' is not an ICD-10-CM code"),
    ("diagnoses", "", "Give at least the principal diagnosis"),
    ("certification_end", "2026-06-01", "at most 90 days"),
    ("certifying_physician_npi", "1234567890", "check digit is wrong"),
    ("goals", "", "Give 1 to 20 measurable goals"),
    ("goals", "ok", "Line 1: Length must be between 3 and 1000"),
    ("frequency_per_week", "9", "less than or equal to 7"),
    ("status", "discharged", "needs its discharge date"),
])
def test_new_episode_refuses_bad_input_beside_the_field(client, world, field, value, message):
    login(client, "therapist")
    before = count(Episode)
    response = client.post(f"/patients/{world.patient.id}/episodes/new", data=new_episode_form(**{field: value}))
    assert response.status_code == 422
    error_field = "discharge_date" if field == "status" else field
    assert message in field_error(response.get_data(as_text=True), error_field)
    assert count(Episode) == before


def test_new_episode_is_saved_and_shown(client, world):
    login(client, "therapist")
    form = client.get(f"/patients/{world.patient.id}/episodes/new").get_data(as_text=True)
    assert "New episode of care" in form and 'name="plan_notes"' in form
    response = client.post(f"/patients/{world.patient.id}/episodes/new", data=new_episode_form())
    assert response.status_code == 302
    episode = _db.session.scalar(select(Episode).where(Episode.title == "Left shoulder tendinopathy"))
    assert response.headers["Location"] == f"/episodes/{episode.id}"
    assert episode.diagnosis_codes == ["M75.112", "M25.512"]
    assert [(g.description, g.target_date) for g in episode.goals] == [
        ("Reach the top shelf without pain", date(2026, 4, 13)), ("Sleep on the left side", None)]
    assert episode.therapist_id == world.therapist.id
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    for text in ("is saved", "Left shoulder tendinopathy", "M75.112", "Principal", "by 2026-04-13",
                 "2026-03-02 to 2026-05-30", "Rotator cuff loading program", "Edit plan"):
        assert text in html
    assert "Certification late" not in html
    assert "Left shoulder tendinopathy" in client.get(f"/patients/{world.patient.id}").get_data(as_text=True)


def test_edit_episode(client, world):
    login(client, "therapist")
    path = f"/episodes/{world.episode.id}/edit"
    form = client.get(path).get_data(as_text=True)
    assert "M17.11</textarea>" in form and "Climb 12 stairs with one rail</textarea>" in form
    data = new_episode_form(title="Right knee OA", diagnoses="M17.11", goals="Climb 12 stairs with one rail",
                            certification_end="2026-05-30", status="discharged")
    refused = client.post(path, data=data)
    assert refused.status_code == 422
    assert "needs a discharge reason" in field_error(refused.get_data(as_text=True), "discharge_reason")
    response = client.post(path, data={**data, "discharge_date": "2026-04-20", "discharge_reason": "goals_met"})
    assert response.status_code == 302
    _db.session.expire_all()
    episode = _db.session.get(Episode, world.episode.id)
    assert (episode.status, episode.discharge_reason) == ("discharged", "goals_met")
    html = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert "Discharged" in html and "Goals met" in html


def test_only_therapists_write_plans_of_care(client, world):
    for username in ("assistant", "billing", "admin"):
        login(client, username)
        assert client.get(f"/patients/{world.patient.id}/episodes/new").status_code == 403
        assert client.post(f"/patients/{world.patient.id}/episodes/new", data=new_episode_form()).status_code == 403
        assert client.get(f"/episodes/{world.episode.id}/edit").status_code == 403
        assert "Edit plan" not in client.get(f"/episodes/{world.episode.id}").get_data(as_text=True)
        client.post("/logout")


def test_billing_sees_the_episode_without_plan_notes(client, world):
    login(client, "therapist")
    assert "Clinical reasoning" in client.get(f"/episodes/{world.episode.id}").get_data(as_text=True)
    client.post("/logout")
    login(client, "billing")
    response = client.get(f"/episodes/{world.episode.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Right knee OA" in html and "M17.11" in html and "Dr. Hale" in html
    assert "Clinical reasoning" not in html and "Plan notes" not in html


def test_late_certification_is_flagged(client, world):
    episode = world.episode
    episode.certification_signed_on = episode.start_date + timedelta(days=45)
    _db.session.commit()
    login(client, "therapist")
    html = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert "Certification late" in html and "within 30 days" in html


# ---------------------------------------------------------------- the patient's own plan

def test_patient_sees_only_their_own_plan(client, world):
    login(client, "ana")
    response = client.get("/my-plan")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for text in ("My plan", "Ana Alvarez", "Right knee OA", "Climb 12 stairs with one rail", "Therapist",
                 "2 visits a week for 8 weeks", "M17.11"):
        assert text in html
    assert "Clinical reasoning" not in html  # plan notes are for clinicians
    assert "Ben" not in html and "Patients</a>" not in html
    assert client.get(f"/patients/{world.other_patient.id}").status_code == 404
    assert client.get(f"/episodes/{world.other_episode.id}").status_code == 404
    assert client.get("/admin/users").status_code == 403
    assert client.get(f"/patients/{world.patient.id}/edit").status_code == 403


def test_my_plan_empty_state_and_staff_redirect(client, world):
    accounts.give_portal_access(Actor(world.other_therapist), world.other_patient.id, "ben", PASSWORD, now=NOW)
    login(client, "ben")
    html = client.get("/my-plan").get_data(as_text=True)
    assert "Right knee OA" in html  # Ben has his own episode at the other clinic
    client.post("/logout")
    patient = accounts.create_patient(Actor(world.therapist), {
        "first_name": "Cleo", "last_name": "New", "date_of_birth": date(1970, 1, 1), "sex": "F",
        "timezone": "America/Chicago", "payer_type": "self_pay"}, now=NOW)
    accounts.give_portal_access(Actor(world.therapist), patient.id, "cleo", PASSWORD, now=NOW)
    login(client, "cleo")
    assert "You have no plan of care yet" in client.get("/my-plan").get_data(as_text=True)
    client.post("/logout")
    login(client, "therapist")
    assert client.get("/my-plan").headers["Location"] == "/"


# ---------------------------------------------------------------- administration

def test_admin_adds_and_deactivates_a_user(client, world):
    login(client, "admin")
    page = client.get("/admin/users").get_data(as_text=True)
    assert "Therapist2" in page and "Deactivate" in page
    user_form = {"form": "create", "full_name": "Noor Haddad", "username": "noor", "role": "therapist",
                 "clinic_id": str(world.clinic.id), "email": "", "npi": "1245319598", "password": "temporary-pass-1"}
    bad = client.post("/admin/users", data=user_form)
    assert bad.status_code == 422
    assert "check digit" in field_error(bad.get_data(as_text=True), "npi")
    no_npi = client.post("/admin/users", data={**user_form, "npi": ""})
    assert no_npi.status_code == 422 and "needs an NPI" in field_error(no_npi.get_data(as_text=True), "npi")
    taken = client.post("/admin/users", data={**user_form, "username": "therapist", "npi": "1245319599"})
    assert taken.status_code == 422 and "taken" in field_error(taken.get_data(as_text=True), "username")
    assert _db.session.scalar(select(User).where(User.username == "noor")) is None

    response = client.post("/admin/users", data={**user_form, "npi": "1245319599"})
    assert response.status_code == 302
    assert "Noor Haddad can now sign in as noor" in client.get("/admin/users").get_data(as_text=True)
    noor = _db.session.scalar(select(User).where(User.username == "noor"))
    assert (noor.role, noor.clinic_id) == ("therapist", world.clinic.id)

    other = new_client(client.application)
    assert login(other, "noor", "temporary-pass-1").status_code == 302
    assert other.get("/patients").status_code == 200

    response = client.post("/admin/users", data={"form": "deactivate", "user_id": noor.id})
    assert response.status_code == 302
    assert "Noor Haddad is deactivated" in client.get("/admin/users").get_data(as_text=True)
    assert other.get("/patients").status_code == 302  # the open session ended
    refused = login(new_client(client.application), "noor", "temporary-pass-1")
    assert refused.status_code == 401

    assert client.post("/admin/users", data={"form": "reactivate", "user_id": noor.id}).status_code == 302
    assert login(new_client(client.application), "noor", "temporary-pass-1").status_code == 302
    assert client.post("/admin/users", data={"form": "deactivate", "user_id": world.admin.id}).status_code == 422


def test_admin_adds_a_clinic(client, world):
    login(client, "admin")
    clinic_form = {"name": "Northside", "timezone": "America/Denver", "address_line1": "9 Pine St",
                   "address_line2": "", "city": "Denver", "state": "CO", "postal_code": "80202",
                   "phone": "", "npi": "1234567893", "tin": "12-3456789"}
    bad = client.post("/admin/clinics", data={**clinic_form, "tin": "12345", "timezone": "Denver"})
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "9 digits" in field_error(html, "tin") and "Unknown timezone" in field_error(html, "timezone")
    assert count(Clinic) == 3
    response = client.post("/admin/clinics", data=clinic_form)
    assert response.status_code == 302
    html = client.get("/admin/clinics").get_data(as_text=True)
    assert "Northside is added" in html and "America/Denver" in html and "Faraway" not in html
    clinic = _db.session.scalar(select(Clinic).where(Clinic.name == "Northside"))
    assert (clinic.tin, clinic.organisation_id) == ("123456789", world.clinic.organisation_id)


@pytest.mark.parametrize("username", ["therapist", "assistant", "billing", "ana"])
def test_administration_is_for_admins(client, world, username):
    login(client, username)
    assert client.get("/admin/users").status_code == 403
    assert client.post("/admin/users", data={"form": "deactivate", "user_id": world.therapist2.id}).status_code == 403
    assert client.get("/admin/clinics").status_code == 403
    assert client.post("/admin/clinics", data={"name": "X"}).status_code == 403
    _db.session.expire_all()
    assert _db.session.get(User, world.therapist2.id).is_active_account


# ---------------------------------------------------------------- what every page carries

def test_pages_have_no_inline_script_or_style_and_carry_the_csp(client, world):
    """The CSP allows only the app's own files: an inline script or style would be blocked."""
    login(client, "therapist")
    paths = ["/patients", "/patients/new", f"/patients/{world.patient.id}", f"/patients/{world.patient.id}/edit",
             f"/patients/{world.patient.id}/episodes/new", f"/episodes/{world.episode.id}",
             f"/episodes/{world.episode.id}/edit", "/account"]
    for path in paths:
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert " style=" not in html and "<style" not in html, path
        assert all('src="/static/' in tag for tag in re.findall(r"<script[^>]*>", html)), path
        assert re.search(r" on[a-z]+=", html) is None, path
        # Every POST form carries the CSRF token.
        for form in re.findall(r'<form[^>]*method="post".*?</form>', html, re.S):
            assert 'name="csrf_token"' in form, path
    assert '"includeIndicatorStyles": false' in client.get("/patients").get_data(as_text=True)


def test_the_pages_own_stylesheets_and_scripts_are_served(client):
    """base.html links the vendored files from the web blueprint's static folder."""
    for path in ("/static/css/app.css", "/static/js/app.js", "/static/vendor/htmx-2.0.11/htmx.min.js",
                 "/static/vendor/pico-2.1.1/pico.min.css"):
        response = client.get(path)
        assert response.status_code == 200, f"{path}: {response.status_code}"
        response.close()
