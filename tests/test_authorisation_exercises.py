"""Every exercise, program and check-in route against every role, another clinic's patient, another
organisation, and no credentials at all. tests/test_authorisation.py checks that every route of the
app is in some table; these are the rows for telerehab/exercises."""

from __future__ import annotations

import uuid

from telerehab.db_types import utc_now

from .authorisation_support import ROLES, Case
from .test_exercises_operations import make_program

CLINICIANS = ("therapist", "assistant")
PROGRAM_READERS = ("admin", "therapist", "assistant", "patient")


def _own_program(world):
    make_program(world)
    return f"/api/v1/episodes/{world.episode.id}/program"


def _other_program(world):
    make_program(world, episode=world.other_episode, who=world.other_therapist)
    return f"/api/v1/episodes/{world.other_episode.id}/program"


def _checkin_body(world):
    # The API judges recorded_at against the real clock.
    return {"client_id": str(uuid.uuid4()), "recorded_at": utc_now().isoformat(), "pain": 3}


EXERCISE_BODY = {"name": "Step-over drill", "body_region": "balance",
                 "instructions": "Step over the cones slowly.", "sets": 2, "reps": 8}

API_CASES_EXERCISES = [
    Case("GET", "/api/v1/exercises", lambda w: "/api/v1/exercises?q=bridge",
         {r: 200 for r in ("admin", *CLINICIANS)}),
    Case("POST", "/api/v1/exercises", lambda w: "/api/v1/exercises", {r: 201 for r in CLINICIANS},
         body=lambda w: EXERCISE_BODY),
    Case("GET", "/api/v1/episodes/<id:episode_id>/program", _own_program, {r: 200 for r in PROGRAM_READERS},
         other_path=_other_program, other_allowed=("admin",)),
    Case("POST", "/api/v1/episodes/<id:episode_id>/program",
         lambda w: f"/api/v1/episodes/{w.episode.id}/program", {r: 201 for r in CLINICIANS},
         body=lambda w: {"items": [{"exercise_key": "glute-bridge"}]},
         other_path=lambda w: f"/api/v1/episodes/{w.other_episode.id}/program"),
    Case("GET", "/api/v1/episodes/<id:episode_id>/program/versions",
         lambda w: f"/api/v1/episodes/{w.episode.id}/program/versions", {r: 200 for r in PROGRAM_READERS},
         other_path=lambda w: f"/api/v1/episodes/{w.other_episode.id}/program/versions", other_allowed=("admin",)),
    Case("GET", "/api/v1/patients/<id:patient_id>/checkins",
         lambda w: f"/api/v1/patients/{w.patient.id}/checkins", {r: 200 for r in ROLES},
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/checkins", other_allowed=("admin",)),
    Case("POST", "/api/v1/patients/<id:patient_id>/checkins",
         lambda w: f"/api/v1/patients/{w.patient.id}/checkins", {r: 201 for r in ("patient", *CLINICIANS)},
         body=_checkin_body, other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/checkins"),
]


# ---------------------------------------------------------------- pages

def _own_program_page(world):
    make_program(world)
    return f"/episodes/{world.episode.id}/program"


def _other_program_page(world):
    make_program(world, episode=world.other_episode, who=world.other_therapist)
    return f"/episodes/{world.other_episode.id}/program"


STAFF_SENT_HOME = {"admin": 302, "therapist": 302, "assistant": 302, "billing": 302}

PAGE_CASES_EXERCISES = [
    # Staff have no check-in of their own: they are sent to their home page.
    Case("GET", "/check-in", lambda w: "/check-in", {"patient": 200, **STAFF_SENT_HOME}),
    Case("POST", "/check-in", lambda w: "/check-in", {"patient": 302, **STAFF_SENT_HOME},
         body=lambda w: {"client_id": str(uuid.uuid4()), "pain": "3"}),
    Case("GET", "/patients/<id:patient_id>/check-ins", lambda w: f"/patients/{w.patient.id}/check-ins",
         {r: 200 for r in ROLES},
         other_path=lambda w: f"/patients/{w.other_patient.id}/check-ins", other_allowed=("admin",)),
    Case("GET", "/episodes/<id:episode_id>/program", _own_program_page, {r: 200 for r in PROGRAM_READERS},
         other_path=_other_program_page, other_allowed=("admin",)),
    Case("GET", "/episodes/<id:episode_id>/program/edit", lambda w: f"/episodes/{w.episode.id}/program/edit",
         {r: 200 for r in CLINICIANS}, other_path=lambda w: f"/episodes/{w.other_episode.id}/program/edit"),
    Case("POST", "/episodes/<id:episode_id>/program/edit", lambda w: f"/episodes/{w.episode.id}/program/edit",
         {r: 302 for r in CLINICIANS}, body=lambda w: {"items-0-exercise_key": "glute-bridge"},
         other_path=lambda w: f"/episodes/{w.other_episode.id}/program/edit"),
    Case("GET", "/exercises", lambda w: "/exercises", {r: 200 for r in ("admin", *CLINICIANS)}),
    Case("POST", "/exercises", lambda w: "/exercises", {r: 302 for r in CLINICIANS}, body=lambda w: {
        "name": "Step-over drill", "body_region": "balance", "instructions": "Step over the cones slowly.",
        "sets": "2", "reps": "8"}),
    Case("GET", "/clinics/<id:clinic_id>/check-in-settings", lambda w: f"/clinics/{w.clinic.id}/check-in-settings",
         {"admin": 200}, other_path=lambda w: f"/clinics/{w.other_clinic.id}/check-in-settings",
         other_allowed=("admin",)),
    Case("POST", "/clinics/<id:clinic_id>/check-in-settings", lambda w: f"/clinics/{w.clinic.id}/check-in-settings",
         {"admin": 302}, body=lambda w: {"late_upload_days": "5"},
         other_path=lambda w: f"/clinics/{w.other_clinic.id}/check-in-settings", other_allowed=("admin",)),
]

# The pages' stylesheet, open to anyone like the other static files.
PUBLIC_EXERCISE_ASSETS = {("GET", "/exercises/static/<path:filename>")}


def test_the_stylesheet_is_served_to_anyone(client):
    response = client.get("/exercises/static/exercises.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
