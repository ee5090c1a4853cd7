"""Use cases for video visits: entering a room, the waiting room, signaling, call minutes,
recording consent, and the media worker's sessions (device check, capture, recording)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from telerehab.accounts.models import User
from telerehab.accounts.operations import Actor, audit, hash_token, new_secret_token
from telerehab.accounts.policy import Permission, has_permission, require_permission
from telerehab.careplans import operations as careplans
from telerehab.careplans.models import Visit
from telerehab.careplans.records import visit_for
from telerehab.careplans.rules import Modality, VisitStatus
from telerehab.errors import DomainError, Forbidden, NotFound, ValidationFailed
from telerehab.extensions import db
from telerehab.video import notify, rules
from telerehab.video.models import (
    CallSegment,
    CapturedStill,
    MediaSession,
    Recording,
    RecordingConsent,
    RoomParticipant,
    SignalMessage,
    VideoRoom,
)
from telerehab.video.rules import ParticipantState, RoomRole

OPEN_STATUSES = (VisitStatus.SCHEDULED, VisitStatus.CHECKED_IN, VisitStatus.IN_PROGRESS)
# A page long-polls at least this often; someone not heard from for longer has left.
PRESENCE_SECONDS = 40


class TokenRefused(DomainError):
    status = 401


def _config(name: str):
    return current_app.config[name]


# ---------------------------------------------------------------- entering a room


@dataclass(frozen=True)
class Entry:
    """What a page or peer needs to take part: its bearer token and where to start reading."""

    token: str
    expires_at: datetime
    participant: RoomParticipant
    ice_servers: list[dict]
    after_seq: int
    roster: list[dict]  # the admitted participants present, when this one is admitted

    def as_json(self) -> dict:
        return {**_credentials_json(self.token, self.expires_at, self.ice_servers),
                "participant_id": self.participant.id, "role": self.participant.role,
                "state": self.participant.state, "after": self.after_seq, "roster": self.roster}


@dataclass(frozen=True)
class Renewal:
    """A fresh token and TURN credentials for a participant already in the room."""

    token: str
    expires_at: datetime
    ice_servers: list[dict]

    def as_json(self) -> dict:
        return _credentials_json(self.token, self.expires_at, self.ice_servers)


def _credentials_json(token: str, expires_at: datetime, servers: list[dict]) -> dict:
    # `expires_in` lets the page time its refresh by its own clock, however far off the server's it is.
    return {"token": token, "expires_at": expires_at.isoformat(), "ice_servers": servers,
            "expires_in": _config("VIDEO_TOKEN_SECONDS")}


def room_role(user: User, visit: Visit) -> RoomRole | None:
    """The role `user` has in this visit's room, or None: they may not enter."""
    if not has_permission(user, Permission.JOIN_VIDEO_VISITS):
        return None
    if visit.patient.user_id == user.id:
        return RoomRole.PATIENT
    if has_permission(user, Permission.RUN_VIDEO_VISITS) and user.id in (visit.clinician_id,
                                                                            visit.episode.therapist_id):
        return RoomRole.CLINICIAN
    return None


def _open_visit(visit_id: int) -> Visit:
    visit = db.session.get(Visit, visit_id)
    if visit is None or visit.modality != Modality.VIDEO:
        raise NotFound("No such video visit.")
    return visit


def _require_open(visit: Visit) -> None:
    if visit.status not in OPEN_STATUSES:
        raise ValidationFailed({"visit": ["This visit is over or cancelled: its room is closed."]})


def _room(visit: Visit, now: datetime) -> VideoRoom:
    room = db.session.scalar(select(VideoRoom).where(VideoRoom.visit_id == visit.id))
    if room is not None:
        return room
    try:
        with db.session.begin_nested():
            room = VideoRoom(visit_id=visit.id, last_seq=0, created_at=now)
            db.session.add(room)
        return room
    except IntegrityError:  # another worker made it at the same moment
        return db.session.scalar(select(VideoRoom).where(VideoRoom.visit_id == visit.id))


def visit_for_room(actor: Actor, visit_id: int) -> tuple[Visit, RoomRole]:
    """The visit and the actor's role in its room; NotFound for anyone who may not enter."""
    visit = _open_visit(visit_id)
    role = room_role(actor.user, visit)
    if role is None:
        raise NotFound("No such video visit.")
    return visit, role


def open_room_page(actor: Actor, visit_id: int, *, now: datetime) -> tuple[Visit, RoomRole]:
    """The room page names the patient and the visit: its reading is audited like the visit's."""
    visit, role = visit_for_room(actor, visit_id)
    audit(actor, "read", "visit", visit.id, now=now, patient_id=visit.patient_id)
    db.session.commit()
    return visit, role


def _renewal(participant: RoomParticipant, room: VideoRoom, now: datetime) -> Renewal:
    expires_at = now + timedelta(seconds=_config("VIDEO_TOKEN_SECONDS"))
    token = rules.sign_room_token(current_app.config["SECRET_KEY"],
                                  rules.RoomClaims(room.visit_id, participant.id, expires_at))
    return Renewal(token, expires_at, ice_servers_for(f"room{room.id}-p{participant.id}", expires_at))


def _issue(participant: RoomParticipant, room: VideoRoom, now: datetime) -> Entry:
    renewal = _renewal(participant, room, now)
    roster = _roster(room, participant, now) if participant.state == ParticipantState.ADMITTED else []
    return Entry(renewal.token, renewal.expires_at, participant, renewal.ice_servers, room.last_seq, roster)


def _audit_presence(actor: Actor, action: str, participant: RoomParticipant, now: datetime) -> None:
    """Entering a room, or staying in it (a token refresh): a user is audited against the visit,
    a guest, who has no account, against their place in the room."""
    visit = participant.room.visit
    if participant.user_id is None:
        audit(actor, action, "room_participant", participant.id, now=now, patient_id=visit.patient_id,
              detail=participant.role)
    else:
        audit(actor, action, "visit", visit.id, now=now, patient_id=visit.patient_id)


def _invite_expired(guest: RoomParticipant, now: datetime) -> bool:
    return guest.invite_expires_at <= now


def ice_servers_for(participant_ref: str, expires_at: datetime) -> list[dict]:
    return rules.ice_servers(_config("STUN_URLS"), _config("TURN_URLS"), _config("TURN_SHARED_SECRET"),
                             participant_ref, expires_at)


def _roster(room: VideoRoom, me: RoomParticipant, now: datetime) -> list[dict]:
    since = now - timedelta(seconds=PRESENCE_SECONDS)
    return [_describe(p) for p in room.participants
            if p.id != me.id and p.state == ParticipantState.ADMITTED and p.last_seen_at and p.last_seen_at >= since]


def _describe(participant: RoomParticipant) -> dict:
    return {"participant_id": participant.id, "role": participant.role, "name": participant.display_name}


def enter_room(actor: Actor, visit_id: int, *, now: datetime) -> Entry:
    """The patient or a clinician of the visit enters; the patient waits to be admitted."""
    visit, role = visit_for_room(actor, visit_id)
    _require_open(visit)
    room = _room(visit, now)
    participant = db.session.scalar(select(RoomParticipant).where(
        RoomParticipant.room_id == room.id, RoomParticipant.user_id == actor.user.id))
    if participant is None:
        participant = RoomParticipant(room=room, user_id=actor.user.id, role=role, created_at=now,
                                      display_name=actor.user.full_name, state=rules.state_on_entry(role))
        db.session.add(participant)
    elif participant.state == ParticipantState.REMOVED:
        raise Forbidden("You were removed from this call.")
    participant.last_seen_at = now
    db.session.flush()
    _announce_arrival(room, participant, now)
    _audit_presence(actor, "enter_room", participant, now)
    db.session.commit()
    return _issue(participant, room, now)


def invite_guest(actor: Actor, visit_id: int, role: str, name: str, *, now: datetime) -> tuple[str, RoomParticipant]:
    """A one-time link for a caregiver or interpreter; only its hash is kept."""
    visit, my_role = visit_for_room(actor, visit_id)
    if my_role != RoomRole.CLINICIAN:
        raise Forbidden("Only the visit's clinician invites guests.")
    _require_open(visit)
    problems = {}
    if role not in rules.GUEST_ROLES:
        problems["role"] = ["Choose caregiver or interpreter."]
    if not name.strip() or len(name.strip()) > 200:
        problems["name"] = ["Give the guest's name (up to 200 characters)."]
    if problems:
        raise ValidationFailed(problems)
    room = _room(visit, now)
    token, token_hash = new_secret_token("vg_")
    guest = RoomParticipant(room=room, role=role, display_name=name.strip(), state=ParticipantState.WAITING,
                            invite_hash=token_hash, invited_by_id=actor.user.id, created_at=now,
                            invite_expires_at=max(visit.ends_at, now) + timedelta(hours=_config("VIDEO_INVITE_HOURS")))
    db.session.add(guest)
    db.session.flush()
    audit(actor, "invite_guest", "room_participant", guest.id, now=now, patient_id=visit.patient_id, detail=role)
    db.session.commit()
    return token, guest


def enter_with_invite(invite_token: str, *, now: datetime, returning_participant_id: int | None) -> Entry:
    """A guest's one-time link: it works once (and again only in the browser session that used it)."""
    guest = db.session.scalar(select(RoomParticipant).where(RoomParticipant.invite_hash == hash_token(invite_token)))
    if guest is None or guest.state == ParticipantState.REMOVED:
        raise NotFound("This invitation link is not valid.")
    if _invite_expired(guest, now):
        raise NotFound("This invitation link has expired.")
    visit = guest.room.visit
    _require_open(visit)
    # Taken with a conditional UPDATE, so that two people opening the link at once cannot both enter.
    first_use = db.session.execute(update(RoomParticipant).where(
        RoomParticipant.id == guest.id, RoomParticipant.invite_used_at.is_(None)).values(
        invite_used_at=now).execution_options(synchronize_session=False)).rowcount == 1
    if not first_use and guest.id != returning_participant_id:
        db.session.rollback()
        raise NotFound("This invitation link has already been used.")
    guest.last_seen_at = now
    _announce_arrival(guest.room, guest, now)
    _audit_presence(Actor(None), "enter_room", guest, now)
    db.session.commit()
    return _issue(guest, guest.room, now)


def authenticate(visit_id: int, token: str, *, now: datetime) -> RoomParticipant:
    """The participant a room token stands for; TokenRefused for any token that is not good."""
    try:
        claims = rules.read_room_token(current_app.config["SECRET_KEY"], token, visit_id=visit_id, now=now)
    except rules.TokenRefused as refused:
        raise TokenRefused(str(refused)) from None
    participant = db.session.get(RoomParticipant, claims.participant_id)
    if participant is None or participant.room.visit_id != visit_id:
        raise TokenRefused("The room token is not valid.")
    if participant.state == ParticipantState.REMOVED:
        raise TokenRefused("You were removed from this call.")
    if participant.room.visit.status not in OPEN_STATUSES:
        raise TokenRefused("This visit is over or cancelled: its room is closed.")
    return participant


def refresh_token(visit_id: int, token: str, *, ip_address: str | None, now: datetime) -> Renewal:
    """A new token and fresh TURN credentials for the holder of a still-valid room token, while
    they may still be in the room: besides the token's own checks (not removed, room open), a user
    must still be the visit's patient or clinician and a guest's invitation must not have run out.
    The old token stays good until its own expiry: requests already under way carry it."""
    participant = authenticate(visit_id, token, now=now)
    if participant.user_id is None:
        if _invite_expired(participant, now):
            raise Forbidden("Your invitation to this call has expired.")
        actor = Actor(None, ip_address)
    else:
        if room_role(participant.user, participant.room.visit) is None:
            raise Forbidden("You may no longer take part in this visit's call.")
        actor = Actor(participant.user, ip_address)
    _audit_presence(actor, "refresh_room_token", participant, now)
    db.session.commit()
    return _renewal(participant, participant.room, now)


# ---------------------------------------------------------------- signaling


def _send(room: VideoRoom, recipient_id: int, kind: str, body: dict, now: datetime,
          sender_id: int | None = None) -> int:
    """Store one message under the room's next sequence number (the UPDATE locks the room row);
    the room's long-polls are woken when the transaction commits."""
    seq = db.session.execute(update(VideoRoom).where(VideoRoom.id == room.id)
                             .values(last_seq=VideoRoom.last_seq + 1).returning(VideoRoom.last_seq)).scalar_one()
    db.session.add(SignalMessage(room_id=room.id, seq=seq, sender_id=sender_id, recipient_id=recipient_id,
                                 kind=kind, body=json.dumps(body), created_at=now))
    notify.announce(room.id)
    return seq


def _clinicians(room: VideoRoom) -> list[RoomParticipant]:
    return [p for p in room.participants if p.role == RoomRole.CLINICIAN and p.state == ParticipantState.ADMITTED]


def _announce_arrival(room: VideoRoom, participant: RoomParticipant, now: datetime) -> None:
    db.session.flush()
    if participant.state == ParticipantState.WAITING:
        for clinician in _clinicians(room):
            _send(room, clinician.id, "waiting", _describe(participant), now)
    elif participant.state == ParticipantState.ADMITTED:
        for other in room.participants:
            if other.id != participant.id and other.state == ParticipantState.ADMITTED:
                _send(room, other.id, "present", _describe(participant), now)


def post_signal(sender: RoomParticipant, recipient_id: object, kind: object, body: object, *, now: datetime) -> int:
    problems = rules.signal_problems(kind, body)
    room = sender.room
    recipient = db.session.get(RoomParticipant, recipient_id) if isinstance(recipient_id, int) else None
    if recipient is None or recipient.room_id != room.id or recipient.id == sender.id:
        problems["to"] = "Must be another participant of this room."
    if problems:
        raise ValidationFailed({name: [message] for name, message in problems.items()})
    if sender.state != ParticipantState.ADMITTED or recipient.state != ParticipantState.ADMITTED:
        raise Forbidden("Only admitted participants exchange media.")
    sender.last_seen_at = now
    seq = _send(room, recipient.id, kind, body, now, sender_id=sender.id)
    db.session.commit()
    return seq


def signals_after(participant: RoomParticipant, after: int, *, now: datetime) -> list[dict]:
    """Messages for `participant` numbered after `after`, oldest first; marks them present."""
    rows = db.session.scalars(select(SignalMessage).where(
        SignalMessage.room_id == participant.room_id, SignalMessage.recipient_id == participant.id,
        SignalMessage.seq > after).order_by(SignalMessage.seq).limit(100)).all()
    return [{"seq": m.seq, "from": m.sender_id, "kind": m.kind, "body": json.loads(m.body)} for m in rows]


def end_snapshot() -> None:
    """End the read transaction, so that the next query sees what other workers have committed."""
    db.session.rollback()


def mark_seen(participant: RoomParticipant, *, now: datetime) -> None:
    participant.last_seen_at = now
    _close_stale_segment(participant.room, now)
    db.session.commit()


def admit(clinician: RoomParticipant, participant_id: int, *, now: datetime) -> RoomParticipant:
    if clinician.role != RoomRole.CLINICIAN:
        raise Forbidden("Only the visit's clinician admits people.")
    guest = db.session.get(RoomParticipant, participant_id)
    if guest is None or guest.room_id != clinician.room_id:
        raise NotFound("No such participant.")
    if guest.state == ParticipantState.WAITING:
        guest.state = ParticipantState.ADMITTED
        guest.admitted_at = now
        guest.admitted_by_id = clinician.user_id
        db.session.flush()
        room = guest.room
        _send(room, guest.id, "admitted", {"roster": _roster(room, guest, now)}, now)
        _announce_arrival(room, guest, now)
        audit(Actor(clinician.user), "admit", "room_participant", guest.id, now=now,
              patient_id=room.visit.patient_id)
        db.session.commit()
    return guest


def waiting_participants(room: VideoRoom, *, now: datetime) -> list[dict]:
    since = now - timedelta(seconds=PRESENCE_SECONDS)
    return [_describe(p) for p in room.participants
            if p.state == ParticipantState.WAITING and p.last_seen_at and p.last_seen_at >= since]


def waiting_visit_ids(visit_ids: list[int], *, now: datetime) -> set[int]:
    """Which of these visits have someone in the waiting room now (one query, for the calendar)."""
    if not visit_ids:
        return set()
    since = now - timedelta(seconds=PRESENCE_SECONDS)
    return set(db.session.scalars(
        select(VideoRoom.visit_id).join(RoomParticipant, RoomParticipant.room_id == VideoRoom.id).where(
            VideoRoom.visit_id.in_(visit_ids), RoomParticipant.state == ParticipantState.WAITING,
            RoomParticipant.last_seen_at >= since)).all())


def leave(participant: RoomParticipant, *, now: datetime) -> None:
    participant.media_state = "closed"
    participant.media_state_at = now
    participant.last_seen_at = now - timedelta(seconds=PRESENCE_SECONDS + 1)
    _update_segments(participant.room, now)
    for other in participant.room.participants:
        if other.id != participant.id and other.state == ParticipantState.ADMITTED:
            _send(participant.room, other.id, "left", _describe(participant), now)
    db.session.commit()


# ---------------------------------------------------------------- connection and minutes

MEDIA_STATES = ("new", "connecting", "connected", "disconnected", "failed", "closed")


def _pair_connected(room: VideoRoom) -> bool:
    patient = any(p.role == RoomRole.PATIENT and p.media_state == "connected" for p in room.participants)
    clinician = any(p.role == RoomRole.CLINICIAN and p.media_state == "connected" for p in room.participants)
    return patient and clinician


def _open_segment(room: VideoRoom) -> CallSegment | None:
    return db.session.scalar(select(CallSegment).where(CallSegment.room_id == room.id,
                                                       CallSegment.ended_at.is_(None)))


def _update_segments(room: VideoRoom, now: datetime) -> None:
    db.session.flush()
    segment = _open_segment(room)
    if _pair_connected(room) and segment is None:
        db.session.add(CallSegment(room_id=room.id, started_at=now))
    elif not _pair_connected(room) and segment is not None:
        segment.ended_at = now


def _close_stale_segment(room: VideoRoom, now: datetime) -> None:
    """A page that vanished without saying so: its connection ended when it was last heard from."""
    segment = _open_segment(room)
    if segment is None:
        return
    stale = now - timedelta(seconds=PRESENCE_SECONDS)
    for p in room.participants:
        if p.role in (RoomRole.PATIENT, RoomRole.CLINICIAN) and p.media_state == "connected" and (
                p.last_seen_at is None or p.last_seen_at < stale):
            p.media_state = "disconnected"
            segment.ended_at = max(segment.started_at, p.last_seen_at or segment.started_at)
            return


def report_connection(participant: RoomParticipant, peer_id: object, state: object, stats: dict,
                      *, now: datetime) -> rules.Quality:
    """A page reports its peer connection: both sides connected opens a call segment."""
    problems = {}
    if state not in MEDIA_STATES:
        problems["state"] = [f"Must be one of: {', '.join(MEDIA_STATES)}."]
    numbers = {}
    for name in ("rtt_ms", "loss_percent", "fps"):
        value = stats.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            problems[name] = ["Must be a number, zero or more, or null."]
        numbers[name] = value
    peer = db.session.get(RoomParticipant, peer_id) if isinstance(peer_id, int) else None
    if peer is None or peer.room_id != participant.room_id:
        problems["peer"] = ["Must be another participant of this room."]
    if problems:
        raise ValidationFailed(problems)
    # Minutes are the patient-clinician connection's: a guest's link does not count.
    pair = {participant.role, peer.role}
    if pair == {RoomRole.PATIENT, RoomRole.CLINICIAN} and participant.media_state != state:
        participant.media_state = state
        participant.media_state_at = now
        _update_segments(participant.room, now)
    participant.last_seen_at = now
    db.session.commit()
    return rules.call_quality(numbers["rtt_ms"], numbers["loss_percent"], numbers["fps"])


@dataclass(frozen=True)
class CallTime:
    seconds: int
    minutes: int
    first_connected: datetime | None
    last_connected: datetime | None


def call_time(room: VideoRoom, *, now: datetime) -> CallTime:
    segments = db.session.scalars(select(CallSegment).where(CallSegment.room_id == room.id)
                                  .order_by(CallSegment.started_at)).all()
    seconds = rules.connected_seconds([(s.started_at, s.ended_at) for s in segments], until=now)
    last = max((s.ended_at or now for s in segments), default=None)
    return CallTime(seconds, rules.call_minutes(seconds), segments[0].started_at if segments else None, last)


def room_of_visit(visit_id: int) -> VideoRoom | None:
    return db.session.scalar(select(VideoRoom).where(VideoRoom.visit_id == visit_id))


def _room_for_logging(actor: Actor, visit_id: int, now: datetime) -> tuple[Visit, VideoRoom, CallTime]:
    visit, role = visit_for_room(actor, visit_id)
    if role != RoomRole.CLINICIAN:
        raise Forbidden("Only the visit's clinician logs its minutes.")
    room = room_of_visit(visit.id)
    if room is None:
        raise ValidationFailed({"minutes": ["Nobody has connected in this visit's room yet."]})
    if room.minutes_logged_at is not None:
        raise ValidationFailed({"minutes": [f"{room.minutes_logged} minutes were already logged."]})
    spent = call_time(room, now=now)
    if spent.minutes < 1:
        raise ValidationFailed({"minutes": ["Patient and clinician have not been connected for a whole minute."]})
    return visit, room, spent


def log_minutes_to_note(actor: Actor, visit_id: int, *, now: datetime) -> int:
    """One click: the connected minutes go into the note (the draft's objective, or an addendum
    of a signed note). Logged once per visit."""
    visit, room, spent = _room_for_logging(actor, visit_id, now)
    sentence = rules.minutes_sentence(spent.minutes, spent.first_connected, spent.last_connected, "UTC")
    room.minutes_logged, room.minutes_logged_at, room.minutes_logged_by_id = spent.minutes, now, actor.user.id
    try:
        note = visit.note
        if note is not None and note.signed_at is not None:
            careplans.add_addendum(actor, visit.id, sentence, now=now)
        else:
            objective = (note.objective + "\n" if note is not None and note.objective.strip() else "") + sentence
            careplans.save_note(actor, visit.id, {"objective": objective}, now=now)  # commits the room too
    except Exception:
        db.session.rollback()
        raise
    return spent.minutes


def _monitoring():
    """The RTM engine's operations, where that part of the app is installed."""
    try:
        from telerehab.monitoring import operations as monitoring
    except ImportError:
        return None
    return monitoring if hasattr(monitoring, "record_management_time") else None


def is_rtm_call(visit: Visit) -> bool:
    """A call of an episode enrolled in RTM: its minutes may count as interactive management time."""
    monitoring = _monitoring()
    return monitoring is not None and monitoring.enrolment_of(visit.episode_id) is not None


def log_minutes_as_management_time(actor: Actor, visit_id: int, *, now: datetime) -> int:
    """For an RTM call: the minutes count as interactive management time of the episode."""
    visit, room, spent = _room_for_logging(actor, visit_id, now)
    if not is_rtm_call(visit):
        raise ValidationFailed({"minutes": ["This plan of care is not enrolled in remote monitoring."]})
    room.minutes_logged, room.minutes_logged_at, room.minutes_logged_by_id = spent.minutes, now, actor.user.id
    service_date = spent.first_connected.astimezone(ZoneInfo(visit.clinic.timezone)).date()
    try:
        _monitoring().record_management_time(actor, visit.episode_id, {
            "service_date": service_date.isoformat(), "minutes": spent.minutes,
            "activity": "video", "interactive": True, "channel": "video", "linked_visit_id": visit.id,
            "note": rules.minutes_sentence(spent.minutes, spent.first_connected, spent.last_connected, "UTC"),
        }, now=now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return spent.minutes


# ---------------------------------------------------------------- recording consent


def recording_consent(visit_id: int) -> RecordingConsent | None:
    consent = db.session.scalar(select(RecordingConsent).where(RecordingConsent.visit_id == visit_id))
    return consent if consent is not None and consent.revoked_at is None else None


def record_recording_consent(actor: Actor, visit_id: int, method: str, *, now: datetime) -> RecordingConsent:
    visit, role = visit_for_room(actor, visit_id)
    if role != RoomRole.CLINICIAN:
        raise Forbidden("The clinician records the patient's consent.")
    if method not in ("verbal", "written", "electronic"):
        raise ValidationFailed({"method": ["Choose verbal, written or electronic."]})
    consent = db.session.scalar(select(RecordingConsent).where(RecordingConsent.visit_id == visit.id))
    if consent is None:
        consent = RecordingConsent(visit_id=visit.id)
        db.session.add(consent)
    consent.granted_at, consent.recorded_by_id, consent.method = now, actor.user.id, method
    consent.revoked_at = consent.revoked_by_id = None
    db.session.flush()
    audit(actor, "record_consent", "recording_consent", consent.id, now=now, patient_id=visit.patient_id)
    db.session.commit()
    return consent


def revoke_recording_consent(actor: Actor, visit_id: int, *, now: datetime) -> None:
    """Withdrawing consent also stops a recording under way."""
    visit, role = visit_for_room(actor, visit_id)
    if role != RoomRole.CLINICIAN:
        raise Forbidden("The clinician records the patient's withdrawal of consent.")
    consent = recording_consent(visit.id)
    if consent is None:
        return
    consent.revoked_at, consent.revoked_by_id = now, actor.user.id
    for session in _live_sessions(visit.id, "record", now):
        session.stop_requested_at = now
    audit(actor, "revoke_consent", "recording_consent", consent.id, now=now, patient_id=visit.patient_id)
    db.session.commit()


# ---------------------------------------------------------------- media worker sessions

MEDIA_KINDS = ("echo", "capture", "record")
LIVE = ("waiting_offer", "offered", "live")


def _new_media_session(kind: str, now: datetime, **values) -> tuple[str, MediaSession]:
    token, token_hash = new_secret_token("ms_")
    session = MediaSession(kind=kind, status="waiting_offer", token_hash=token_hash, created_at=now, updated_at=now,
                           expires_at=now + timedelta(seconds=_config("VIDEO_TOKEN_SECONDS")), **values)
    db.session.add(session)
    db.session.flush()
    return token, session


def start_device_check(actor: Actor, *, now: datetime) -> tuple[str, MediaSession]:
    require_permission(actor.user, Permission.JOIN_VIDEO_VISITS)
    token, session = _new_media_session("echo", now, user_id=actor.user.id)
    audit(actor, "device_check", "media_session", session.id, now=now)
    db.session.commit()
    return token, session


def _live_sessions(visit_id: int, kind: str, now: datetime) -> list[MediaSession]:
    """Sessions under way; one whose worker died stops counting when it expires."""
    return list(db.session.scalars(select(MediaSession).where(
        MediaSession.visit_id == visit_id, MediaSession.kind == kind, MediaSession.status.in_(LIVE),
        MediaSession.expires_at > now)).all())


def ask_worker(clinician: RoomParticipant, kind: str, *, now: datetime) -> MediaSession:
    """The worker joins as a receive-only peer of the patient: for stills, or to record (with the
    visit's consent). The patient's page gets the request and sends its camera to the worker."""
    if clinician.role != RoomRole.CLINICIAN:
        raise Forbidden("Only the visit's clinician asks for a capture or a recording.")
    if kind not in ("capture", "record"):
        raise ValidationFailed({"kind": ["Must be capture or record."]})
    room = clinician.room
    visit = room.visit
    if kind == "record" and recording_consent(visit.id) is None:
        raise ValidationFailed({"kind": ["Record the patient's consent to recording this visit first."]})
    if _live_sessions(visit.id, kind, now):
        raise ValidationFailed({"kind": [f"A {kind} is already under way."]})
    patient = next((p for p in room.participants
                    if p.role == RoomRole.PATIENT and p.state == ParticipantState.ADMITTED), None)
    if patient is None:
        raise ValidationFailed({"kind": ["The patient is not in the call."]})
    token, session = _new_media_session(kind, now, user_id=clinician.user_id, visit_id=visit.id,
                                        participant_id=patient.id)
    _send(room, patient.id, "media-request", {"media_session_id": session.id, "token": token, "kind": kind}, now)
    audit(Actor(clinician.user), f"request_{kind}", "media_session", session.id, now=now,
          patient_id=visit.patient_id)
    db.session.commit()
    return session


def stop_recording(clinician: RoomParticipant, *, now: datetime) -> int:
    if clinician.role != RoomRole.CLINICIAN:
        raise Forbidden("Only the visit's clinician stops a recording.")
    sessions = _live_sessions(clinician.room.visit_id, "record", now)
    for session in sessions:
        session.stop_requested_at = now
    db.session.commit()
    return len(sessions)


def media_session_for(session_id: int, token: str, *, now: datetime) -> MediaSession:
    session = db.session.get(MediaSession, session_id)
    if session is None or not token or hash_token(token) != session.token_hash:
        raise TokenRefused("The media session token is not valid.")
    if session.expires_at <= now:
        raise TokenRefused("The media session has expired.")
    return session


def submit_offer(session: MediaSession, sdp: object, *, now: datetime) -> None:
    problems = rules.signal_problems("offer", {"sdp": sdp, "session": "worker"})
    if problems:
        raise ValidationFailed({"sdp": list(problems.values())})
    if session.status != "waiting_offer":
        raise ValidationFailed({"sdp": ["This media session already has an offer."]})
    session.offer_sdp, session.status, session.updated_at = sdp, "offered", now
    db.session.commit()


def media_session_json(session: MediaSession) -> dict:
    result = json.loads(session.result) if session.result else None
    return {"id": session.id, "kind": session.kind, "status": session.status, "answer": session.answer_sdp,
            "result": result, "error": session.error}


# The worker's side. It runs the same operations in its own process, with its own app context.


def claim_offered(worker: str, *, now: datetime) -> MediaSession | None:
    """The oldest offered session no worker has taken; the conditional UPDATE makes two workers
    never take the same one."""
    candidates = db.session.scalars(select(MediaSession.id).where(
        MediaSession.status == "offered", MediaSession.expires_at > now).order_by(MediaSession.id).limit(5)).all()
    for session_id in candidates:
        taken = db.session.execute(update(MediaSession).where(
            MediaSession.id == session_id, MediaSession.status == "offered").values(
            status="live", worker=worker, updated_at=now))
        db.session.commit()
        if taken.rowcount == 1:
            return db.session.get(MediaSession, session_id, populate_existing=True)
    return None


def worker_answer(session_id: int, sdp: str, *, now: datetime) -> None:
    session = db.session.get(MediaSession, session_id)
    session.answer_sdp, session.updated_at = sdp, now
    db.session.commit()


def worker_should_stop(session_id: int, *, now: datetime) -> bool:
    db.session.rollback()  # a fresh snapshot: the stop is written by a web worker
    session = db.session.get(MediaSession, session_id)
    if session.kind == "record" and recording_consent(session.visit_id) is None:
        return True
    return session.stop_requested_at is not None or session.expires_at <= now


def worker_finish(session_id: int, *, result: dict | None, error: str | None, now: datetime) -> None:
    session = db.session.get(MediaSession, session_id)
    session.status = "failed" if error else "finished"
    session.result = json.dumps(result) if result is not None else None
    session.error = error
    session.updated_at = now
    db.session.commit()


def storage_path(relative: str) -> Path:
    return Path(current_app.config["STORAGE_DIR"]) / relative


def worker_save_still(session_id: int, jpeg: bytes, width: int, height: int, *, now: datetime) -> CapturedStill:
    session = db.session.get(MediaSession, session_id)
    index = db.session.scalar(select(func.count(CapturedStill.id)).where(
        CapturedStill.media_session_id == session_id)) + 1
    relative = f"stills/visit-{session.visit_id}/session-{session_id}-{index}.jpg"
    path = storage_path(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg)
    still = CapturedStill(visit_id=session.visit_id, media_session_id=session_id, path=relative,
                          width=width, height=height, captured_at=now)
    db.session.add(still)
    db.session.commit()
    return still


def _recording_relative_path(session: MediaSession) -> str:
    return f"recordings/visit-{session.visit_id}/session-{session.id}.webm"


def recording_path(session_id: int) -> Path:
    return storage_path(_recording_relative_path(db.session.get(MediaSession, session_id)))


def worker_save_recording(session_id: int, started_at: datetime, *, now: datetime) -> Recording:
    session = db.session.get(MediaSession, session_id)
    relative = _recording_relative_path(session)
    recording = Recording(visit_id=session.visit_id, media_session_id=session.id, path=relative,
                          started_at=started_at, ended_at=now, size_bytes=storage_path(relative).stat().st_size)
    db.session.add(recording)
    db.session.flush()
    audit(Actor(None), "record", "recording", recording.id, now=now,
          patient_id=db.session.get(Visit, session.visit_id).patient_id)
    db.session.commit()
    return recording


# ---------------------------------------------------------------- what the care team sees


def media_of_visit(actor: Actor, visit_id: int, *, now: datetime) -> tuple[list[Recording], list[CapturedStill]]:
    visit = visit_for(actor, visit_id, Permission.VIEW_RECORDINGS)
    recordings = list(db.session.scalars(select(Recording).where(Recording.visit_id == visit.id)
                                         .order_by(Recording.started_at)).all())
    stills = list(db.session.scalars(select(CapturedStill).where(CapturedStill.visit_id == visit.id)
                                     .order_by(CapturedStill.captured_at)).all())
    if recordings or stills:
        audit(actor, "read", "visit_media", visit.id, now=now, patient_id=visit.patient_id)
        db.session.commit()
    return recordings, stills


def media_file(actor: Actor, visit_id: int, kind: str, record_id: int, *, now: datetime) -> Path:
    visit = visit_for(actor, visit_id, Permission.VIEW_RECORDINGS)
    model = {"recording": Recording, "still": CapturedStill}[kind]
    row = db.session.get(model, record_id)
    if row is None or row.visit_id != visit.id:
        raise NotFound("No such file.")
    audit(actor, "download", kind, row.id, now=now, patient_id=visit.patient_id)
    db.session.commit()
    return storage_path(row.path)
