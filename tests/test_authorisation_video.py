"""Who may use the video pages: the rows (tests/test_authorisation.py plays each against every role,
against another clinic's visit, and signed out), and the special cases. Only the visit's own patient and clinicians enter its room (the assistant of the same
clinic who is not on the visit does not); recordings and stills are for the care team only.

The signaling endpoints have no session: they take the room token (X-Room-Token) or a media
session's token (X-Media-Token), and refuse everyone without one, signed in or not.
"""

from __future__ import annotations

import pytest

from telerehab.accounts.operations import Actor
from telerehab.video import operations as video

from .authorisation_support import ROLES, Case, visit
from .conftest import NOW, PASSWORD


def _video_visit(world, other=False):
    return visit(world, other, modality="video")


def _still(world) -> tuple[int, int]:
    """A video visit with one captured still (a file in the storage folder)."""
    visit = _video_visit(world)
    video.enter_room(Actor(world.patient_user), visit.id, now=NOW)
    clinician = video.enter_room(Actor(world.therapist), visit.id, now=NOW).participant
    patient = next(p for p in clinician.room.participants if p.role == "patient")
    video.admit(clinician, patient.id, now=NOW)
    media = video.ask_worker(clinician, "capture", now=NOW)
    still = video.worker_save_still(media.id, b"a still (bytes)", 2, 2, now=NOW)
    return visit.id, still.id


def _still_path(world) -> str:
    visit_id, still_id = _still(world)
    return f"/visits/{visit_id}/media/still/{still_id}"


VISIT_CLINICIAN = {"therapist": 200}
IN_ROOM = {"patient": 200, "therapist": 200}

VIDEO_PAGE_CASES = [
    Case("GET", "/visits/<id:visit_id>/room", lambda w: f"/visits/{_video_visit(w).id}/room", IN_ROOM,
         other_path=lambda w: f"/visits/{_video_visit(w, other=True).id}/room"),
    Case("POST", "/visits/<id:visit_id>/room/join", lambda w: f"/visits/{_video_visit(w).id}/room/join", IN_ROOM,
         other_path=lambda w: f"/visits/{_video_visit(w, other=True).id}/room/join"),
    Case("POST", "/visits/<id:visit_id>/room/invites", lambda w: f"/visits/{_video_visit(w).id}/room/invites",
         VISIT_CLINICIAN, body=lambda w: {"role": "caregiver", "name": "Cara Alvarez"},
         other_path=lambda w: f"/visits/{_video_visit(w, other=True).id}/room/invites"),
    # Nobody has connected yet: the clinician is sent back to the room with the reason.
    Case("POST", "/visits/<id:visit_id>/room/minutes", lambda w: f"/visits/{_video_visit(w).id}/room/minutes",
         {"therapist": 302}, body=lambda w: {"target": "note"},
         other_path=lambda w: f"/visits/{_video_visit(w, other=True).id}/room/minutes"),
    Case("POST", "/visits/<id:visit_id>/room/consent", lambda w: f"/visits/{_video_visit(w).id}/room/consent",
         {"therapist": 302}, body=lambda w: {"method": "verbal"},
         other_path=lambda w: f"/visits/{_video_visit(w, other=True).id}/room/consent"),
    Case("GET", "/visits/<id:visit_id>/media/<any(recording, still):kind>/<id:record_id>", _still_path,
         {"therapist": 200, "assistant": 200}),
    Case("GET", "/video/device-check", lambda w: "/video/device-check",
         {"patient": 200, "therapist": 200, "assistant": 200}),
    Case("POST", "/video/device-check", lambda w: "/video/device-check",
         {"patient": 201, "therapist": 201, "assistant": 201}),
]

# No session: a room token, a media session token, or a guest's one-time link is the key.
PUBLIC_VIDEO_ROUTES = {
    ("GET", "/video/join/<token>"),
    ("GET", "/video/rooms/<id:visit_id>/signals"),
    ("POST", "/video/rooms/<id:visit_id>/signals"),
    ("POST", "/video/rooms/<id:visit_id>/connection"),
    ("POST", "/video/rooms/<id:visit_id>/admit/<id:participant_id>"),
    ("POST", "/video/rooms/<id:visit_id>/leave"),
    ("POST", "/video/rooms/<id:visit_id>/token"),  # a new room token for the current one
    ("POST", "/video/rooms/<id:visit_id>/worker"),
    ("POST", "/video/media-sessions/<id:session_id>/offer"),
    ("GET", "/video/media-sessions/<id:session_id>"),
    ("GET", "/static/video/<path:filename>"),  # the call page's script and stylesheet
}


def test_the_assistant_on_the_visit_enters_its_room(client, world):
    assistants_visit = visit(world, modality="video", clinician=world.assistant)
    client.post("/login", data={"username": "assistant", "password": PASSWORD})
    assert client.get(f"/visits/{assistants_visit.id}/room").status_code == 200
    # The plan's therapist (the assistant's supervising PT) may enter it too.
    client.post("/logout")
    client.post("/login", data={"username": "therapist", "password": PASSWORD})
    assert client.get(f"/visits/{assistants_visit.id}/room").status_code == 200


def test_an_in_clinic_visit_has_no_room(client, world):
    clinic_visit = visit(world)
    client.post("/login", data={"username": "therapist", "password": PASSWORD})
    assert client.get(f"/visits/{clinic_visit.id}/room").status_code == 404


def _concrete(rule: str, visit_id: int) -> str:
    return (rule.replace("<id:visit_id>", str(visit_id)).replace("<id:participant_id>", "1")
            .replace("<id:session_id>", "1").replace("<token>", "vg_not-a-real-link"))


@pytest.mark.parametrize("role", [None, *ROLES])
@pytest.mark.parametrize(("method", "rule"), sorted(r for r in PUBLIC_VIDEO_ROUTES if "/static/" not in r[1]))
def test_token_routes_refuse_everyone_without_a_token_signed_in_or_not(client, world, role, method, rule):
    video_visit = _video_visit(world)
    video.enter_room(Actor(world.patient_user), video_visit.id, now=NOW)
    video.start_device_check(Actor(world.patient_user), now=NOW)
    if role is not None:
        client.post("/login", data={"username": world.user(role).username, "password": PASSWORD})
    response = client.open(_concrete(rule, video_visit.id), method=method, json={})
    assert response.status_code in ({404} if rule == "/video/join/<token>" else {401})
