"""Who may use the assessment pages and API: every route against every role and against another
clinic's patient. Results, trends and stills are clinical records: billing staff and admins never
see them; clinicians (PT, PTA) record; a patient reads their own trends. Protocols are not patient
data: anyone signed in may read them."""

from __future__ import annotations

import io

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.assessments import operations

from .authorisation_support import ROLES, Case, visit
from .conftest import NOW
from .test_assessments_rules import png

CLINICIANS_200 = {"therapist": 200, "assistant": 200}
CLINICIANS_302 = {"therapist": 302, "assistant": 302}
READERS_200 = {"therapist": 200, "assistant": 200, "patient": 200}
ALL_200 = {role: 200 for role in ROLES}


def _capture(world, other=False):
    therapist = world.other_therapist if other else world.therapist
    patient = world.other_patient if other else world.patient
    accounts.record_consent(Actor(therapist), patient.id, "telehealth", method="written", note=None, now=NOW)
    return operations.upload_still(Actor(therapist), visit(world, other).id, png(64, 48), now=NOW)


def _still_form(world):
    return {"image": (io.BytesIO(png(64, 48)), "still.png")}


def _consented_visit(world, other=False):
    therapist = world.other_therapist if other else world.therapist
    patient = world.other_patient if other else world.patient
    accounts.record_consent(Actor(therapist), patient.id, "telehealth", method="written", note=None, now=NOW)
    return visit(world, other)


def _result(world, other=False):
    """A pain score of the patient, recorded by their own clinic's therapist (for the amendment rows)."""
    therapist = world.other_therapist if other else world.therapist
    patient = world.other_patient if other else world.patient
    episode = world.other_episode if other else world.episode
    return operations.record_result(Actor(therapist), patient.id, {
        "protocol_id": "prom_nprs", "episode_id": episode.id, "variant": "video",
        "inputs": {"recall": "now", "pain": 3}}, now=NOW)


CORRECTION_FORM = {"input-recall": "now", "input-pain": "5", "variant": "video", "reason": "Typed 3 for 5"}

MARK_FORM = {"axis_x": "30", "axis_y": "24", "stationary_x": "2", "stationary_y": "24", "moving_x": "40",
             "moving_y": "45", "input-side": "left", "input-motion": "active", "input-position": "supine"}

ASSESSMENT_PAGE_CASES = [
    Case("GET", "/visits/<id:visit_id>/assessments", lambda w: f"/visits/{visit(w).id}/assessments", CLINICIANS_200,
         other_path=lambda w: f"/visits/{visit(w, True).id}/assessments"),
    Case("GET", "/visits/<id:visit_id>/assessments/new",
         lambda w: f"/visits/{visit(w).id}/assessments/new?protocol=perf_30s_chair_stand", CLINICIANS_200,
         other_path=lambda w: f"/visits/{visit(w, True).id}/assessments/new?protocol=perf_30s_chair_stand"),
    Case("POST", "/visits/<id:visit_id>/assessments/new",
         lambda w: f"/visits/{visit(w).id}/assessments/new?protocol=perf_30s_chair_stand", CLINICIANS_302,
         body=lambda w: {"input-stands": "12"},
         other_path=lambda w: f"/visits/{visit(w, True).id}/assessments/new?protocol=perf_30s_chair_stand"),
    Case("POST", "/visits/<id:visit_id>/goniometry/stills",
         lambda w: f"/visits/{_consented_visit(w).id}/goniometry/stills", CLINICIANS_302, body=_still_form,
         other_path=lambda w: f"/visits/{_consented_visit(w, True).id}/goniometry/stills"),
    Case("GET", "/goniometry/<id:capture_id>", lambda w: f"/goniometry/{_capture(w).id}", CLINICIANS_200,
         other_path=lambda w: f"/goniometry/{_capture(w, True).id}"),
    Case("POST", "/goniometry/<id:capture_id>", lambda w: f"/goniometry/{_capture(w).id}?protocol=rom_knee_flexion",
         CLINICIANS_302, body=lambda w: MARK_FORM,
         other_path=lambda w: f"/goniometry/{_capture(w, True).id}?protocol=rom_knee_flexion"),
    Case("POST", "/goniometry/<id:capture_id>/proposal", lambda w: f"/goniometry/{_capture(w).id}/proposal",
         CLINICIANS_302, body=lambda w: {"protocol": "rom_knee_flexion", "side": "left"},
         other_path=lambda w: f"/goniometry/{_capture(w, True).id}/proposal"),
    Case("GET", "/goniometry/<id:capture_id>/image", lambda w: f"/goniometry/{_capture(w).id}/image", CLINICIANS_200,
         other_path=lambda w: f"/goniometry/{_capture(w, True).id}/image"),
    Case("GET", "/assessment-results/<id:result_id>", lambda w: f"/assessment-results/{_result(w).id}", READERS_200,
         other_path=lambda w: f"/assessment-results/{_result(w, True).id}"),
    Case("GET", "/assessment-results/<id:result_id>/correction",
         lambda w: f"/assessment-results/{_result(w).id}/correction", CLINICIANS_200,
         other_path=lambda w: f"/assessment-results/{_result(w, True).id}/correction"),
    Case("POST", "/assessment-results/<id:result_id>/correction",
         lambda w: f"/assessment-results/{_result(w).id}/correction", CLINICIANS_302, body=lambda w: CORRECTION_FORM,
         other_path=lambda w: f"/assessment-results/{_result(w, True).id}/correction"),
    Case("GET", "/assessment-results/<id:result_id>/withdrawal",
         lambda w: f"/assessment-results/{_result(w).id}/withdrawal", CLINICIANS_200,
         other_path=lambda w: f"/assessment-results/{_result(w, True).id}/withdrawal"),
    Case("POST", "/assessment-results/<id:result_id>/withdrawal",
         lambda w: f"/assessment-results/{_result(w).id}/withdrawal", CLINICIANS_302,
         body=lambda w: {"reason": "Entered in the wrong chart"},
         other_path=lambda w: f"/assessment-results/{_result(w, True).id}/withdrawal"),
    Case("GET", "/patients/<id:patient_id>/assessments", lambda w: f"/patients/{w.patient.id}/assessments",
         READERS_200, other_path=lambda w: f"/patients/{w.other_patient.id}/assessments"),
    Case("GET", "/patients/<id:patient_id>/assessments/<protocol_id>",
         lambda w: f"/patients/{w.patient.id}/assessments/perf_tug", READERS_200,
         other_path=lambda w: f"/patients/{w.other_patient.id}/assessments/perf_tug"),
]

ASSESSMENT_API_CASES = [
    Case("GET", "/api/v1/protocols", lambda w: "/api/v1/protocols", ALL_200),
    Case("GET", "/api/v1/protocols/<protocol_id>", lambda w: "/api/v1/protocols/perf_tug", ALL_200),
    Case("GET", "/api/v1/patients/<id:patient_id>/assessments", lambda w: f"/api/v1/patients/{w.patient.id}/assessments",
         READERS_200, other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/assessments"),
    Case("POST", "/api/v1/patients/<id:patient_id>/assessments",
         lambda w: f"/api/v1/patients/{w.patient.id}/assessments", {"therapist": 201, "assistant": 201},
         body=lambda w: {"protocol_id": "prom_nprs", "episode_id": w.episode.id, "variant": "video",
                         "inputs": {"recall": "now", "pain": 3}},
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/assessments"),
    Case("POST", "/api/v1/assessment-results/<id:result_id>/corrections",
         lambda w: f"/api/v1/assessment-results/{_result(w).id}/corrections", {"therapist": 201, "assistant": 201},
         body=lambda w: {"inputs": {"recall": "now", "pain": 5}, "reason": "Typed 3 for 5"},
         other_path=lambda w: f"/api/v1/assessment-results/{_result(w, True).id}/corrections"),
    Case("POST", "/api/v1/assessment-results/<id:result_id>/withdrawal",
         lambda w: f"/api/v1/assessment-results/{_result(w).id}/withdrawal", CLINICIANS_200,
         body=lambda w: {"reason": "Entered in the wrong chart"},
         other_path=lambda w: f"/api/v1/assessment-results/{_result(w, True).id}/withdrawal"),
    Case("GET", "/api/v1/assessment-results/<id:result_id>/history",
         lambda w: f"/api/v1/assessment-results/{_result(w).id}/history", READERS_200,
         other_path=lambda w: f"/api/v1/assessment-results/{_result(w, True).id}/history"),
    Case("GET", "/api/v1/patients/<id:patient_id>/assessments/<protocol_id>/trend",
         lambda w: f"/api/v1/patients/{w.patient.id}/assessments/perf_tug/trend", READERS_200,
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/assessments/perf_tug/trend"),
]

# The pages' stylesheet and marking script, open to anyone like the other static files.
PUBLIC_ASSESSMENT_ASSETS = {("GET", "/assessments/static/<path:filename>")}


def test_the_assets_are_served_to_anyone(client):
    for name in ("assessments.css", "marking.js"):
        assert client.get(f"/assessments/static/{name}").status_code == 200
