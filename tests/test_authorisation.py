"""Every API endpoint and every page, against every role and against a patient of another clinic.

Each cell says whether the role is allowed (the expected success status) or refused (401, 403 or
404). A route missing from the tables fails `test_every_route_is_in_a_table`, so a new endpoint
cannot ship without its row.
"""

from __future__ import annotations

import pytest

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor

from .authorisation_support import (
    REFUSED,
    ROLES,
    Case,
    api_call,
    domain_tables,
    other_sms_consent,
    page_call,
    sms_consent,
    visit,
)
from .conftest import NOW, PASSWORD, bearer

ALL = {role: 200 for role in ROLES}
EDITORS = {"admin": 200, "therapist": 200, "assistant": 200}
PATIENT_JSON = {"first_name": "New", "last_name": "Person", "date_of_birth": "1960-01-01", "sex": "M",
                "timezone": "America/Chicago", "payer_type": "self_pay"}
EPISODE_JSON = {"title": "Neck pain", "start_date": "2026-03-02", "frequency_per_week": 2, "duration_weeks": 4,
                "diagnoses": ["M54.2"], "goals": [{"description": "Turn head fully"}]}


API_SCHEDULERS = ("admin", "therapist", "assistant")
VISIT_JSON = {"kind": "initial_evaluation", "modality": "in_clinic", "starts_at": "2026-03-05T10:00:00-06:00",
              "ends_at": "2026-03-05T10:45:00-06:00"}
CADENCE_JSON = {"modality_pattern": ["in_clinic", "video"], "preferred_weekdays": [0, 3], "preferred_start": "09:00"}
RECERT_JSON = {"certification_start": "2026-05-31", "certification_end": "2026-08-28",
               "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893"}


def _draft_visit(world):
    """A visit with the therapist's unsigned note (the visit helpers are with the page rows)."""
    from telerehab.careplans import operations as careplans

    scheduled = visit(world)
    careplans.save_note(Actor(world.therapist), scheduled.id, {"subjective": "Better"}, now=NOW)
    return scheduled


API_CASES = [
    Case("GET", "/api/v1/me", lambda w: "/api/v1/me", ALL),
    Case("GET", "/api/v1/tokens", lambda w: "/api/v1/tokens", ALL),
    Case("POST", "/api/v1/tokens", lambda w: "/api/v1/tokens", {r: 201 for r in ROLES}, body=lambda w: {"name": "x"}),
    Case("DELETE", "/api/v1/tokens/<id:token_id>", lambda w: "/api/v1/tokens/{own_token}",
         {r: 204 for r in ROLES}),
    Case("GET", "/api/v1/patients", lambda w: "/api/v1/patients", ALL),
    Case("POST", "/api/v1/patients", lambda w: "/api/v1/patients", {r: 201 for r in EDITORS},
         body=lambda w: {**PATIENT_JSON, "clinic_id": w.clinic.id}),
    Case("GET", "/api/v1/patients/<id:patient_id>", lambda w: f"/api/v1/patients/{w.patient.id}", ALL,
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}", other_allowed=("admin",)),
    Case("PATCH", "/api/v1/patients/<id:patient_id>", lambda w: f"/api/v1/patients/{w.patient.id}", EDITORS,
         body=lambda w: {"preferred_language": "es"},
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}", other_allowed=("admin",)),
    Case("GET", "/api/v1/patients/<id:patient_id>/consents",
         lambda w: f"/api/v1/patients/{w.patient.id}/consents", ALL,
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/consents", other_allowed=("admin",)),
    Case("POST", "/api/v1/patients/<id:patient_id>/consents",
         lambda w: f"/api/v1/patients/{w.patient.id}/consents", {r: 201 for r in EDITORS},
         body=lambda w: {"kind": "telehealth"},
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/consents", other_allowed=("admin",)),
    Case("POST", "/api/v1/consents/<id:consent_id>/revoke",
         lambda w: f"/api/v1/consents/{sms_consent(w).id}/revoke", EDITORS, body=lambda w: {},
         other_path=lambda w: f"/api/v1/consents/{other_sms_consent(w).id}/revoke", other_allowed=("admin",)),
    Case("GET", "/api/v1/episodes", lambda w: "/api/v1/episodes", ALL),
    Case("GET", "/api/v1/patients/<id:patient_id>/episodes",
         lambda w: f"/api/v1/patients/{w.patient.id}/episodes", ALL,
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/episodes", other_allowed=("admin",)),
    Case("POST", "/api/v1/patients/<id:patient_id>/episodes",
         lambda w: f"/api/v1/patients/{w.patient.id}/episodes", {"therapist": 201}, body=lambda w: EPISODE_JSON,
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/episodes"),
    Case("GET", "/api/v1/episodes/<id:episode_id>", lambda w: f"/api/v1/episodes/{w.episode.id}", ALL,
         other_path=lambda w: f"/api/v1/episodes/{w.other_episode.id}", other_allowed=("admin",)),
    Case("PATCH", "/api/v1/episodes/<id:episode_id>", lambda w: f"/api/v1/episodes/{w.episode.id}",
         {"therapist": 200}, body=lambda w: {"frequency_per_week": 3},
         other_path=lambda w: f"/api/v1/episodes/{w.other_episode.id}"),
    # Visits: cadence, scheduling, calendar, status, offers, notes, services, alerts, recertification.
    Case("POST", "/api/v1/episodes/<id:episode_id>/cadence/preview",
         lambda w: f"/api/v1/episodes/{w.episode.id}/cadence/preview", {r: 200 for r in API_SCHEDULERS},
         body=lambda w: CADENCE_JSON,
         other_path=lambda w: f"/api/v1/episodes/{w.other_episode.id}/cadence/preview", other_allowed=("admin",)),
    Case("POST", "/api/v1/episodes/<id:episode_id>/cadence/confirm",
         lambda w: f"/api/v1/episodes/{w.episode.id}/cadence/confirm", {r: 201 for r in API_SCHEDULERS},
         body=lambda w: {"visits": [VISIT_JSON]},
         other_path=lambda w: f"/api/v1/episodes/{w.other_episode.id}/cadence/confirm", other_allowed=("admin",)),
    Case("GET", "/api/v1/episodes/<id:episode_id>/visits", lambda w: f"/api/v1/episodes/{w.episode.id}/visits", ALL,
         other_path=lambda w: f"/api/v1/episodes/{w.other_episode.id}/visits", other_allowed=("admin",)),
    Case("POST", "/api/v1/episodes/<id:episode_id>/visits", lambda w: f"/api/v1/episodes/{w.episode.id}/visits",
         {r: 201 for r in API_SCHEDULERS}, body=lambda w: VISIT_JSON,
         other_path=lambda w: f"/api/v1/episodes/{w.other_episode.id}/visits", other_allowed=("admin",)),
    Case("GET", "/api/v1/visits",
         lambda w: "/api/v1/visits?start=2026-03-02T00:00:00Z&end=2026-03-09T00:00:00Z", ALL),
    Case("GET", "/api/v1/visits/<id:visit_id>", lambda w: f"/api/v1/visits/{visit(w).id}", ALL,
         other_path=lambda w: f"/api/v1/visits/{visit(w, other=True).id}", other_allowed=("admin",)),
    Case("POST", "/api/v1/visits/<id:visit_id>/reschedule", lambda w: f"/api/v1/visits/{visit(w).id}/reschedule",
         {r: 200 for r in API_SCHEDULERS},
         body=lambda w: {"starts_at": "2026-03-04T10:00:00-06:00", "ends_at": "2026-03-04T10:45:00-06:00"},
         other_path=lambda w: f"/api/v1/visits/{visit(w, other=True).id}/reschedule", other_allowed=("admin",)),
    Case("POST", "/api/v1/visits/<id:visit_id>/status", lambda w: f"/api/v1/visits/{visit(w).id}/status",
         {r: 200 for r in API_SCHEDULERS}, body=lambda w: {"status": "checked_in"},
         other_path=lambda w: f"/api/v1/visits/{visit(w, other=True).id}/status", other_allowed=("admin",)),
    Case("GET", "/api/v1/patients/<id:patient_id>/visits/upcoming",
         lambda w: f"/api/v1/patients/{w.patient.id}/visits/upcoming", ALL,
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/visits/upcoming", other_allowed=("admin",)),
    Case("GET", "/api/v1/patients/<id:patient_id>/offers", lambda w: f"/api/v1/patients/{w.patient.id}/offers", ALL,
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/offers", other_allowed=("admin",)),
    Case("POST", "/api/v1/offers/<id:offer_id>/accept", lambda w: f"/api/v1/offers/{_offer(w)[0].id}/accept",
         {r: 201 for r in (*API_SCHEDULERS, "patient")}, body=lambda w: {},
         other_path=lambda w: f"/api/v1/offers/{_offer(w, other=True)[0].id}/accept", other_allowed=("admin",)),
    Case("GET", "/api/v1/visits/<id:visit_id>/note",
         lambda w: f"/api/v1/visits/{_signed_visit(w, w.therapist).id}/note", {"therapist": 200, "assistant": 200},
         other_path=lambda w: f"/api/v1/visits/{visit(w, other=True).id}/note"),
    Case("PUT", "/api/v1/visits/<id:visit_id>/note", lambda w: f"/api/v1/visits/{visit(w).id}/note",
         {"therapist": 200, "assistant": 200}, body=lambda w: {"subjective": "Better"},
         other_path=lambda w: f"/api/v1/visits/{visit(w, other=True).id}/note"),
    Case("POST", "/api/v1/visits/<id:visit_id>/note/sign", lambda w: f"/api/v1/visits/{_draft_visit(w).id}/note/sign",
         {"therapist": 200}, body=lambda w: {},  # the author signs
         other_path=lambda w: f"/api/v1/visits/{visit(w, other=True).id}/note/sign"),
    Case("POST", "/api/v1/visits/<id:visit_id>/note/cosign",
         lambda w: f"/api/v1/visits/{_signed_visit(w, w.assistant).id}/note/cosign", {"therapist": 200},
         body=lambda w: {}, other_path=lambda w: f"/api/v1/visits/{visit(w, other=True).id}/note/cosign"),
    Case("POST", "/api/v1/visits/<id:visit_id>/note/addenda",
         lambda w: f"/api/v1/visits/{_signed_visit(w, w.therapist).id}/note/addenda",
         {"therapist": 201, "assistant": 201}, body=lambda w: {"text": "Pain rose that evening"},
         other_path=lambda w: f"/api/v1/visits/{visit(w, other=True).id}/note/addenda"),
    Case("PUT", "/api/v1/visits/<id:visit_id>/services",
         lambda w: f"/api/v1/visits/{_completed_visit(w).id}/services", {"therapist": 200, "assistant": 200},
         body=lambda w: {"lines": [{"cpt_code": "97110", "minutes": 30}]},
         other_path=lambda w: f"/api/v1/visits/{visit(w, other=True).id}/services"),
    Case("GET", "/api/v1/episodes/<id:episode_id>/alerts", lambda w: f"/api/v1/episodes/{w.episode.id}/alerts", ALL,
         other_path=lambda w: f"/api/v1/episodes/{w.other_episode.id}/alerts", other_allowed=("admin",)),
    Case("POST", "/api/v1/episodes/<id:episode_id>/recertifications",
         lambda w: f"/api/v1/episodes/{w.episode.id}/recertifications", {"therapist": 201},
         body=lambda w: RECERT_JSON, other_path=lambda w: f"/api/v1/episodes/{w.other_episode.id}/recertifications"),
]


# ---------------------------------------------------------------- pages

def _patient_form(world, **overrides):
    return {"first_name": "Dana", "last_name": "Evans", "date_of_birth": "1948-07-01", "sex": "F",
            "timezone": "America/Chicago", "preferred_language": "en", "payer_type": "self_pay",
            "clinic_id": str(world.clinic.id), **overrides}


def _episode_form(world):
    return {"title": "Neck pain", "status": "active", "start_date": "2026-03-02", "frequency_per_week": "2",
            "duration_weeks": "4", "diagnoses": "M54.2", "goals": "Turn the head fully"}


def _patient_without_sign_in(world, other=False):
    therapist = world.other_therapist if other else world.therapist
    from .conftest import patient_data

    return accounts.create_patient(Actor(therapist), patient_data(first_name="Nopo"), now=NOW)


def _completed_visit(world):
    from telerehab.careplans import operations as careplans

    scheduled = visit(world)
    for status in ("checked_in", "in_progress", "completed"):
        careplans.change_visit_status(Actor(world.therapist), scheduled.id, status, now=NOW)
    return scheduled


def _signed_visit(world, author):
    from telerehab.careplans import operations as careplans

    scheduled = visit(world, clinician=author)
    careplans.save_note(Actor(author), scheduled.id, {"subjective": "Better"}, now=NOW)
    careplans.sign_note(Actor(author), scheduled.id, now=NOW)
    return scheduled


def _offer(world, other=False):
    """A video-slot offer after a cancelled clinic visit next week: the pages read the real clock,
    so the offer must still be open today. Returns (offer, one-tap token)."""
    from datetime import UTC, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from telerehab.careplans import operations as careplans
    from telerehab.careplans.models import VideoSlotOffer
    from telerehab.extensions import db

    from .conftest import episode_data

    therapist = world.other_therapist if other else world.therapist
    patient = world.other_patient if other else world.patient
    zone = ZoneInfo(patient.clinic.timezone)
    now = datetime.now(UTC)
    today = now.astimezone(zone).date()
    episode = careplans.create_episode(Actor(therapist), patient.id, episode_data(start_date=today), now=now)
    tuesday = today + timedelta(days=8 - today.weekday())  # next week's
    start = datetime.combine(tuesday, time(10), zone).astimezone(UTC)
    scheduled = careplans.schedule_visit(Actor(therapist), episode.id, {
        "kind": "treatment", "modality": "in_clinic", "starts_at": start, "ends_at": start + timedelta(minutes=45),
    }, now=now)
    _, token = careplans.change_visit_status(Actor(therapist), scheduled.id, "cancelled", reason="Snow", now=now)
    offer = db.session.scalar(select(VideoSlotOffer).where(VideoSlotOffer.cancelled_visit_id == scheduled.id))
    return offer, token


SCHEDULERS = {"admin": 302, "therapist": 302, "assistant": 302}
DOCUMENTERS = {"therapist": 302, "assistant": 302}
STAFF_PAGE = {"admin": 200, "therapist": 200, "assistant": 200, "billing": 200}
VISIT_FORM = {"kind": "treatment", "modality": "in_clinic", "clinician_id": "", "date": "2026-03-10",
              "time": "09:00", "minutes": "45", "room": ""}
CADENCE_FORM = {"step": "preview", "preferred_start": "09:00", "pattern": "in_clinic", "weekdays": "0"}
RECERT_FORM = {"certification_start": "2026-05-31", "certification_end": "2026-08-28",
               "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893"}


FOUND = {role: 200 for role in ROLES}
PAGE_EDITORS = {"admin": 302, "therapist": 302, "assistant": 302}

PAGE_CASES = [
    Case("GET", "/", lambda w: "/", {r: 302 for r in ROLES}),
    Case("GET", "/account", lambda w: "/account", FOUND),
    Case("POST", "/account", lambda w: "/account", FOUND, body=lambda w: {"form": "new_token", "name": "phone"}),
    Case("GET", "/patients", lambda w: "/patients", FOUND),
    Case("GET", "/patients/new", lambda w: "/patients/new", {"admin": 200, "therapist": 200, "assistant": 200}),
    Case("POST", "/patients/new", lambda w: "/patients/new", PAGE_EDITORS, body=_patient_form),
    Case("GET", "/patients/<id:patient_id>", lambda w: f"/patients/{w.patient.id}", FOUND,
         other_path=lambda w: f"/patients/{w.other_patient.id}", other_allowed=("admin",)),
    Case("GET", "/patients/<id:patient_id>/edit", lambda w: f"/patients/{w.patient.id}/edit",
         {"admin": 200, "therapist": 200, "assistant": 200},
         other_path=lambda w: f"/patients/{w.other_patient.id}/edit", other_allowed=("admin",)),
    Case("POST", "/patients/<id:patient_id>/edit", lambda w: f"/patients/{w.patient.id}/edit", PAGE_EDITORS,
         body=lambda w: _patient_form(w, first_name="Ana"),
         other_path=lambda w: f"/patients/{w.other_patient.id}/edit", other_allowed=("admin",)),
    Case("POST", "/patients/<id:patient_id>/consents", lambda w: f"/patients/{w.patient.id}/consents",
         PAGE_EDITORS, body=lambda w: {"kind": "rtm", "method": "verbal"},
         other_path=lambda w: f"/patients/{w.other_patient.id}/consents", other_allowed=("admin",)),
    Case("POST", "/consents/<id:consent_id>/revoke", lambda w: f"/consents/{sms_consent(w).id}/revoke",
         PAGE_EDITORS, body=lambda w: {},
         other_path=lambda w: f"/consents/{other_sms_consent(w).id}/revoke", other_allowed=("admin",)),
    Case("POST", "/patients/<id:patient_id>/portal-access",
         lambda w: f"/patients/{_patient_without_sign_in(w).id}/portal-access", PAGE_EDITORS,
         body=lambda w: {"username": "nopo", "password": "a-long-temporary-pass"},
         other_path=lambda w: f"/patients/{_patient_without_sign_in(w, other=True).id}/portal-access",
         other_allowed=("admin",)),
    Case("GET", "/admin/users", lambda w: "/admin/users", {"admin": 200}),
    Case("POST", "/admin/users", lambda w: "/admin/users", {"admin": 302},
         body=lambda w: {"form": "deactivate", "user_id": str(w.therapist2.id)}),
    Case("GET", "/admin/clinics", lambda w: "/admin/clinics", {"admin": 200}),
    Case("POST", "/admin/clinics", lambda w: "/admin/clinics", {"admin": 302}, body=lambda w: {
        "name": "North", "timezone": "America/Chicago", "address_line1": "9 North Ave", "city": "Chicago",
        "state": "IL", "postal_code": "60614", "npi": "1234567893", "tin": "12-3456789"}),
    Case("GET", "/my-plan", lambda w: "/my-plan", {"patient": 200}),
    Case("GET", "/patients/<id:patient_id>/episodes/new", lambda w: f"/patients/{w.patient.id}/episodes/new",
         {"therapist": 200}, other_path=lambda w: f"/patients/{w.other_patient.id}/episodes/new"),
    Case("POST", "/patients/<id:patient_id>/episodes/new", lambda w: f"/patients/{w.patient.id}/episodes/new",
         {"therapist": 302}, body=_episode_form,
         other_path=lambda w: f"/patients/{w.other_patient.id}/episodes/new"),
    Case("GET", "/episodes/<id:episode_id>", lambda w: f"/episodes/{w.episode.id}", FOUND,
         other_path=lambda w: f"/episodes/{w.other_episode.id}", other_allowed=("admin",)),
    Case("GET", "/episodes/<id:episode_id>/edit", lambda w: f"/episodes/{w.episode.id}/edit", {"therapist": 200},
         other_path=lambda w: f"/episodes/{w.other_episode.id}/edit"),
    Case("POST", "/episodes/<id:episode_id>/edit", lambda w: f"/episodes/{w.episode.id}/edit", {"therapist": 302},
         body=_episode_form, other_path=lambda w: f"/episodes/{w.other_episode.id}/edit"),
    # Visits: calendar, timeline, cadence, the visit page and its actions, offers, calendar feed.
    Case("GET", "/calendar", lambda w: "/calendar", {**STAFF_PAGE, "patient": 302}),
    Case("GET", "/my-visits", lambda w: "/my-visits",
         {"patient": 200, "admin": 302, "therapist": 302, "assistant": 302, "billing": 302}),
    Case("GET", "/patients/<id:patient_id>/visits", lambda w: f"/patients/{w.patient.id}/visits",
         {**STAFF_PAGE, "patient": 302},
         other_path=lambda w: f"/patients/{w.other_patient.id}/visits", other_allowed=("admin",)),
    Case("GET", "/episodes/<id:episode_id>/visits", lambda w: f"/episodes/{w.episode.id}/visits", FOUND,
         other_path=lambda w: f"/episodes/{w.other_episode.id}/visits", other_allowed=("admin",)),
    Case("POST", "/episodes/<id:episode_id>/visits", lambda w: f"/episodes/{w.episode.id}/visits", SCHEDULERS,
         body=lambda w: VISIT_FORM,
         other_path=lambda w: f"/episodes/{w.other_episode.id}/visits", other_allowed=("admin",)),
    Case("GET", "/episodes/<id:episode_id>/cadence", lambda w: f"/episodes/{w.episode.id}/cadence",
         {"admin": 200, "therapist": 200, "assistant": 200},
         other_path=lambda w: f"/episodes/{w.other_episode.id}/cadence", other_allowed=("admin",)),
    Case("POST", "/episodes/<id:episode_id>/cadence", lambda w: f"/episodes/{w.episode.id}/cadence",
         {"admin": 200, "therapist": 200, "assistant": 200}, body=lambda w: CADENCE_FORM,
         other_path=lambda w: f"/episodes/{w.other_episode.id}/cadence", other_allowed=("admin",)),
    Case("POST", "/episodes/<id:episode_id>/recertifications",
         lambda w: f"/episodes/{w.episode.id}/recertifications", {"therapist": 302}, body=lambda w: RECERT_FORM,
         other_path=lambda w: f"/episodes/{w.other_episode.id}/recertifications"),
    Case("GET", "/visits/<id:visit_id>", lambda w: f"/visits/{visit(w).id}", FOUND,
         other_path=lambda w: f"/visits/{visit(w, other=True).id}", other_allowed=("admin",)),
    Case("POST", "/visits/<id:visit_id>/status", lambda w: f"/visits/{visit(w).id}/status", SCHEDULERS,
         body=lambda w: {"status": "checked_in"},
         other_path=lambda w: f"/visits/{visit(w, other=True).id}/status", other_allowed=("admin",)),
    Case("POST", "/visits/<id:visit_id>/reschedule", lambda w: f"/visits/{visit(w).id}/reschedule", SCHEDULERS,
         body=lambda w: {"new_date": "2026-03-04", "new_start": "10:00", "new_end": "10:45"},
         other_path=lambda w: f"/visits/{visit(w, other=True).id}/reschedule", other_allowed=("admin",)),
    Case("POST", "/visits/<id:visit_id>/note", lambda w: f"/visits/{visit(w).id}/note", DOCUMENTERS,
         body=lambda w: {"subjective": "Better", "action": "save"},
         other_path=lambda w: f"/visits/{visit(w, other=True).id}/note"),
    Case("POST", "/visits/<id:visit_id>/note/cosign",
         lambda w: f"/visits/{_signed_visit(w, w.assistant).id}/note/cosign", {"therapist": 302},
         other_path=lambda w: f"/visits/{visit(w, other=True).id}/note/cosign"),
    Case("POST", "/visits/<id:visit_id>/addenda", lambda w: f"/visits/{_signed_visit(w, w.therapist).id}/addenda",
         DOCUMENTERS, body=lambda w: {"text": "Pain rose that evening"},
         other_path=lambda w: f"/visits/{visit(w, other=True).id}/addenda"),
    Case("POST", "/visits/<id:visit_id>/services", lambda w: f"/visits/{_completed_visit(w).id}/services",
         DOCUMENTERS, body=lambda w: {"service_count": "1", "services-0-cpt_code": "97110",
                                      "services-0-minutes": "30", "services-0-assistant_minutes": ""},
         other_path=lambda w: f"/visits/{visit(w, other=True).id}/services"),
    Case("POST", "/offers/<id:offer_id>/accept", lambda w: f"/offers/{_offer(w)[0].id}/accept",
         {"patient": 302, **SCHEDULERS},
         other_path=lambda w: f"/offers/{_offer(w, other=True)[0].id}/accept", other_allowed=("admin",)),
    Case("GET", "/offers/accept/<token>", lambda w: f"/offers/accept/{_offer(w)[1]}", FOUND,
         other_path=lambda w: f"/offers/accept/{_offer(w, other=True)[1]}", other_allowed=("admin",)),
    Case("GET", "/account/calendar-feed", lambda w: "/account/calendar-feed", FOUND),
    Case("POST", "/account/calendar-feed", lambda w: "/account/calendar-feed", FOUND),
    Case("POST", "/account/calendar-feed/revoke", lambda w: "/account/calendar-feed/revoke",
         {r: 302 for r in ROLES}),
]

# Pages anyone may open, signed in or not.
PUBLIC_PAGES = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/api/v1/docs"),
                ("GET", "/static/<path:filename>"), ("GET", "/api/v1/openapi.json"),
                ("GET", "/calendar/feed/<token>.ics")}  # needs its secret token instead of a sign-in


# ---------------------------------------------------------------- every domain's rows, played

# The rows above, and those of tests/test_authorisation_<domain>.py: the tests below play them all.
DOMAIN_CASES, DOMAIN_PUBLIC = domain_tables()
ALL_API_CASES = API_CASES + [c for c in DOMAIN_CASES if c.is_api]
ALL_PAGE_CASES = PAGE_CASES + [c for c in DOMAIN_CASES if not c.is_api]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", ALL_API_CASES, ids=str)
def test_api_role_table(client, world, case, role):
    response = api_call(client, world, case, role, case.path)
    if role in case.allowed:
        assert response.status_code == case.allowed[role], response.get_data(as_text=True)
    else:
        assert response.status_code in REFUSED, response.get_data(as_text=True)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", [c for c in ALL_API_CASES if c.other_path], ids=str)
def test_api_other_clinic_patient(client, world, case, role):
    response = api_call(client, world, case, role, case.other_path)
    if role in case.other_allowed and role in case.allowed:
        assert response.status_code == case.allowed[role], response.get_data(as_text=True)
    else:
        assert response.status_code in REFUSED, response.get_data(as_text=True)


@pytest.mark.parametrize("case", ALL_API_CASES, ids=str)
def test_api_without_token_is_401(client, world, case):
    path = case.path(world).replace("{own_token}", "1")
    response = client.open(path, method=case.method, json=case.body(world) if case.body else None)
    assert response.status_code == 401


@pytest.mark.parametrize("case", [c for c in ALL_API_CASES if c.other_path], ids=str)
def test_api_foreign_organisation_is_refused_even_to_admin(client, world, case):
    """Org-wide staff stop at their organisation's edge."""
    foreign_admin = accounts.create_user(Actor(None), {
        "organisation_id": world.foreign_clinic.organisation_id, "username": "faradmin", "full_name": "Far",
        "role": "admin", "clinic_id": None, "password": PASSWORD}, now=NOW)
    response = client.open(case.path(world).replace("{own_token}", "1"), method=case.method,
                           json=case.body(world) if case.body else None, headers=bearer(foreign_admin))
    assert response.status_code in REFUSED


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", ALL_PAGE_CASES, ids=str)
def test_page_role_table(client, world, case, role):
    response = page_call(client, world, case, role, case.path)
    body = response.get_data()[:2000]  # bytes: some rows answer with an image
    if role in case.allowed:
        assert response.status_code == case.allowed[role], body
    elif case.rule == "/my-plan":
        assert response.status_code == 302  # staff are sent to their own home page
    else:
        assert response.status_code in REFUSED, body


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", [c for c in ALL_PAGE_CASES if c.other_path], ids=str)
def test_page_other_clinic_patient(client, world, case, role):
    response = page_call(client, world, case, role, case.other_path)
    if role in case.other_allowed and role in case.allowed:
        assert response.status_code == case.allowed[role]
    else:
        assert response.status_code in REFUSED


@pytest.mark.parametrize("case", ALL_PAGE_CASES, ids=str)
def test_pages_send_the_signed_out_to_sign_in(client, world, case):
    response = page_call(client, world, case, None, case.path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_every_route_is_in_a_table(app):
    covered = {(c.method, c.rule) for c in [*ALL_API_CASES, *ALL_PAGE_CASES]} | PUBLIC_PAGES | DOMAIN_PUBLIC
    routes = {(method, rule.rule) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == covered
