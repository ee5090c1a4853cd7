"""Renewing a room token mid-call (POST /video/rooms/<visit>/token): the current, still-valid token
buys a new one with a later expiry and fresh TURN credentials, for the same participant, as long as
they may still be in the room; the old token stays good until its own expiry. The browser side (the
call page refreshing before expiry and signalling on) is in test_video_browser.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from telerehab.accounts.models import AuditEntry
from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.db_types import utc_now
from telerehab.errors import Forbidden
from telerehab.extensions import db
from telerehab.video import operations as video
from telerehab.video import rules
from telerehab.video.rules import ParticipantState

from .authorisation_support import visit as _scheduled

TURN = {"TURN_URLS": ["turn:127.0.0.1:3478"], "TURN_SHARED_SECRET": "turn-secret"}


@pytest.fixture
def visit(world):
    return _scheduled(world, modality="video")


@pytest.fixture
def with_turn(app, monkeypatch):
    for name, value in TURN.items():
        monkeypatch.setitem(app.config, name, value)


def _claims(app, token: str, visit_id: int, now):
    return rules.read_room_token(app.config["SECRET_KEY"], token, visit_id=visit_id, now=now)


def _refresh(client, visit_id: int, token: str):
    return client.post(f"/video/rooms/{visit_id}/token", headers={"X-Room-Token": token})


def _signals_status(client, visit_id: int, token: str) -> int:
    return client.get(f"/video/rooms/{visit_id}/signals?after=0", headers={"X-Room-Token": token}).status_code


# ---------------------------------------------------------------- operations


def test_a_refresh_gives_the_same_participant_a_later_token_and_fresh_turn_credentials(app, world, visit,
                                                                                        with_turn):
    entered_at = utc_now() - timedelta(minutes=50)
    entry = video.enter_room(Actor(world.patient_user), visit.id, now=entered_at)
    refreshed_at = entered_at + timedelta(minutes=45)
    renewal = video.refresh_token(visit.id, entry.token, ip_address="127.0.0.1", now=refreshed_at)
    lifetime = timedelta(seconds=app.config["VIDEO_TOKEN_SECONDS"])
    assert renewal.expires_at == refreshed_at + lifetime > entry.expires_at
    claims = _claims(app, renewal.token, visit.id, refreshed_at)
    assert (claims.participant_id, claims.expires_at) == (entry.participant.id, renewal.expires_at.replace(microsecond=0))
    # TURN credentials expire with the token they came with: the new ones outlive the old.
    [old_turn], [new_turn] = entry.ice_servers, renewal.ice_servers
    assert new_turn["username"] != old_turn["username"] and new_turn["credential"] != old_turn["credential"]
    assert new_turn["username"] == f"{int(renewal.expires_at.timestamp())}:room{entry.participant.room_id}-p{claims.participant_id}"
    # The old token still works until its own expiry, the new one after it.
    just_before = entry.expires_at - timedelta(seconds=1)
    assert video.authenticate(visit.id, entry.token, now=just_before).id == entry.participant.id
    with pytest.raises(video.TokenRefused, match="expired"):
        video.authenticate(visit.id, entry.token, now=entry.expires_at)
    assert video.authenticate(visit.id, renewal.token, now=entry.expires_at).id == entry.participant.id


def test_refreshes_are_audited_like_entries(world, visit):
    now = utc_now()
    entry = video.enter_room(Actor(world.patient_user), visit.id, now=now)
    video.refresh_token(visit.id, entry.token, ip_address="10.0.0.7", now=now + timedelta(minutes=1))
    entered, refreshed = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action.in_(("enter_room", "refresh_room_token"))).order_by(AuditEntry.id)).all()
    assert (refreshed.action, refreshed.record_type, refreshed.record_id, refreshed.patient_id, refreshed.actor_id) == (
        "refresh_room_token", entered.record_type, entered.record_id, entered.patient_id, entered.actor_id)
    assert (refreshed.record_type, refreshed.actor_id, refreshed.ip_address) == ("visit", world.patient_user.id,
                                                                                  "10.0.0.7")


def test_a_guest_refreshes_until_their_invitation_runs_out(world, visit):
    now = utc_now()
    video.enter_room(Actor(world.therapist), visit.id, now=now)
    link, guest = video.invite_guest(Actor(world.therapist), visit.id, "interpreter", "Ines", now=now)
    entry = video.enter_with_invite(link, now=now, returning_participant_id=None)
    renewal = video.refresh_token(visit.id, entry.token, ip_address=None, now=now + timedelta(minutes=1))
    assert video.authenticate(visit.id, renewal.token, now=now + timedelta(minutes=2)).id == guest.id
    audited = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "refresh_room_token")).one()
    assert (audited.record_type, audited.record_id, audited.detail, audited.actor_id) == (
        "room_participant", guest.id, "interpreter", None)
    # A token still valid when the invitation expires buys no more time.
    guest.invite_expires_at = now + timedelta(minutes=3)
    db.session.commit()
    with pytest.raises(Forbidden, match="invitation to this call has expired"):
        video.refresh_token(visit.id, renewal.token, ip_address=None, now=now + timedelta(minutes=3))


def test_a_removed_participant_or_a_closed_room_gets_no_new_token(world, visit):
    now = utc_now()
    patient = video.enter_room(Actor(world.patient_user), visit.id, now=now)
    therapist = video.enter_room(Actor(world.therapist), visit.id, now=now)
    patient.participant.state = ParticipantState.REMOVED
    db.session.commit()
    with pytest.raises(video.TokenRefused, match="removed"):
        video.refresh_token(visit.id, patient.token, ip_address=None, now=now)
    careplans.change_visit_status(Actor(world.therapist), visit.id, "cancelled", reason="Ill", now=now)
    with pytest.raises(video.TokenRefused, match="closed"):
        video.refresh_token(visit.id, therapist.token, ip_address=None, now=now)
    assert not db.session.scalars(select(AuditEntry).where(AuditEntry.action == "refresh_room_token")).all()


def test_a_clinician_taken_off_the_visit_gets_no_new_token(world):
    assistants_visit = _scheduled(world, modality="video", clinician=world.assistant)
    now = utc_now()
    entry = video.enter_room(Actor(world.assistant), assistants_visit.id, now=now)
    assert video.refresh_token(assistants_visit.id, entry.token, ip_address=None, now=now).token
    assistants_visit.clinician_id = world.therapist.id  # the visit handed to the therapist
    db.session.commit()
    with pytest.raises(Forbidden, match="no longer take part"):
        video.refresh_token(assistants_visit.id, entry.token, ip_address=None, now=now)


# ---------------------------------------------------------------- the route


def test_the_route_answers_with_a_token_that_works_on_the_signals_route(app, client, world, visit):
    entry = video.enter_room(Actor(world.patient_user), visit.id, now=utc_now() - timedelta(minutes=5))
    response = _refresh(client, visit.id, entry.token)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"token", "expires_at", "expires_in", "ice_servers"}
    assert body["expires_in"] == app.config["VIDEO_TOKEN_SECONDS"] and body["ice_servers"] == []
    claims = _claims(app, body["token"], visit.id, utc_now())
    assert claims.participant_id == entry.participant.id and claims.expires_at > entry.expires_at
    assert _signals_status(client, visit.id, body["token"]) == 200
    assert _signals_status(client, visit.id, entry.token) == 200  # the old one is good until it expires


def _refusal(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["detail"]


def test_the_route_refuses_bad_tokens_naming_the_problem(app, client, world, visit):
    entry = video.enter_room(Actor(world.patient_user), visit.id, now=utc_now())
    therapist = video.enter_room(Actor(world.therapist), visit.id, now=utc_now())
    secret = app.config["SECRET_KEY"]
    expired = rules.sign_room_token(secret, rules.RoomClaims(visit.id, entry.participant.id,
                                                             utc_now() - timedelta(seconds=1)))
    # The patient's token rewritten to name the therapist: the signature no longer matches.
    payload, _, mac = entry.token.partition(".")
    as_therapist, _, _ = rules.sign_room_token(secret, rules.RoomClaims(
        visit.id, therapist.participant.id, entry.expires_at)).partition(".")
    other_visit = careplans.schedule_visit(Actor(world.therapist), world.episode.id, {
        "kind": "treatment", "modality": "video", "starts_at": visit.starts_at + timedelta(days=7),
        "ends_at": visit.ends_at + timedelta(days=7), "clinician_id": world.therapist.id}, now=utc_now())
    cases = {
        expired: "The room token has expired: reopen the visit page.",
        f"{as_therapist}.{mac}": "The room token is not valid.",
        f"{payload}.{mac[::-1]}": "The room token is not valid.",
        "": "The room token is not valid.",
    }
    for token, detail in cases.items():
        assert _refusal(_refresh(client, visit.id, token)) == (401, detail), token
    assert _refusal(_refresh(client, other_visit.id, entry.token)) == (401, "The room token is for another visit.")


def test_the_route_refuses_whoever_may_no_longer_be_in_the_room(client, world, visit):
    entry = video.enter_room(Actor(world.patient_user), visit.id, now=utc_now())
    world.patient_user.is_active_account = False  # the portal account closed mid-call
    db.session.commit()
    assert _refusal(_refresh(client, visit.id, entry.token)) == (403, "You may no longer take part in this visit's call.")
    world.patient_user.is_active_account = True
    entry.participant.state = ParticipantState.REMOVED
    db.session.commit()
    assert _refusal(_refresh(client, visit.id, entry.token)) == (401, "You were removed from this call.")
