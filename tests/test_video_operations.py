"""Video visit use cases on both databases: the waiting room, guests' one-time links, signaling
sequence numbers, call segments and minutes (to the note, or as RTM management time), recording
consent and the media worker's sessions."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.errors import Forbidden, NotFound, ValidationFailed
from telerehab.video import operations as video
from telerehab.video.models import MediaSession, SignalMessage

from .authorisation_support import visit as _scheduled
from .conftest import NOW


def _visit(world, modality="video", *, week=0):
    """A video visit of the world's patient with their therapist, `week` weeks after the first."""
    if not week:
        return _scheduled(world, modality=modality)
    start = datetime(2026, 3, 3, 15, 0, tzinfo=UTC) + timedelta(weeks=week)
    return careplans.schedule_visit(Actor(world.therapist), world.episode.id, {
        "kind": "treatment", "modality": modality, "starts_at": start, "ends_at": start + timedelta(minutes=45),
        "clinician_id": world.therapist.id}, now=NOW)

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"


def later(seconds: float):
    return NOW + timedelta(seconds=seconds)


@pytest.fixture
def call(world):
    """A video visit whose therapist is in the room and whose patient has been admitted."""
    visit = _visit(world, modality="video")
    patient = video.enter_room(Actor(world.patient_user), visit.id, now=NOW).participant
    therapist = video.enter_room(Actor(world.therapist), visit.id, now=NOW).participant
    video.admit(therapist, patient.id, now=NOW)
    return visit, patient, therapist


def _messages(participant, after=0):
    return video.signals_after(participant, after, now=NOW)


def _connect(patient, therapist, seconds_from: float, seconds_to: float | None):
    video.report_connection(patient, therapist.id, "connected", {}, now=later(seconds_from))
    video.report_connection(therapist, patient.id, "connected", {}, now=later(seconds_from))
    if seconds_to is not None:
        video.report_connection(patient, therapist.id, "disconnected", {}, now=later(seconds_to))


# ---------------------------------------------------------------- waiting room


def test_the_patient_waits_until_the_therapist_admits_them(world):
    visit = _visit(world, modality="video")
    therapist = video.enter_room(Actor(world.therapist), visit.id, now=NOW)
    patient = video.enter_room(Actor(world.patient_user), visit.id, now=later(5))
    assert therapist.participant.state == "admitted" and patient.participant.state == "waiting"
    assert patient.roster == []  # nobody to call before being let in
    room = therapist.participant.room
    assert video.waiting_participants(room, now=later(10)) == [
        {"participant_id": patient.participant.id, "role": "patient", "name": "Ana Alvarez"}]
    assert video.waiting_visit_ids([visit.id], now=later(10)) == {visit.id}
    # The therapist hears of the arrival; a waiting patient cannot signal anyone.
    assert [m["kind"] for m in _messages(therapist.participant)] == ["waiting"]
    with pytest.raises(Forbidden):
        video.post_signal(patient.participant, therapist.participant.id, "offer", {"sdp": SDP, "session": "s"},
                          now=later(6))
    # Only a clinician admits.
    with pytest.raises(Forbidden):
        video.admit(patient.participant, patient.participant.id, now=later(7))
    video.admit(therapist.participant, patient.participant.id, now=later(8))
    admitted = _messages(patient.participant, patient.after_seq)
    assert admitted[0]["kind"] == "admitted"
    assert admitted[0]["body"]["roster"] == [
        {"participant_id": therapist.participant.id, "role": "clinician", "name": "Therapist"}]
    assert video.waiting_visit_ids([visit.id], now=later(10)) == set()
    # Someone not heard from for a while is no longer shown as waiting.
    other = _visit(world, week=1)
    video.enter_room(Actor(world.patient_user), other.id, now=NOW)
    assert video.waiting_visit_ids([other.id], now=later(video.PRESENCE_SECONDS + 1)) == set()


def test_rejoining_keeps_the_place_and_starts_after_old_messages(call):
    visit, patient, therapist = call
    video.post_signal(therapist, patient.id, "offer", {"sdp": SDP, "session": "old"}, now=later(1))
    entry = video.enter_room(Actor(patient.user), visit.id, now=later(2))
    assert entry.participant.id == patient.id and entry.participant.state == "admitted"
    assert entry.roster and entry.roster[0]["participant_id"] == therapist.id
    assert _messages(patient, entry.after_seq) == []  # the reloaded page does not replay the old offer


def test_every_message_of_a_room_gets_the_next_number(call):
    _, patient, therapist = call
    seqs = [video.post_signal(patient, therapist.id, "candidate", {"candidate": None, "session": "s"},
                              now=later(i)) for i in range(5)]
    stored = [m.seq for m in SignalMessage.query.filter_by(room_id=patient.room_id).order_by(SignalMessage.seq)]
    assert stored == list(range(1, len(stored) + 1))  # no gap, no repeat: the room row hands them out
    assert seqs == stored[-5:]
    assert [m["seq"] for m in _messages(therapist, seqs[1])] == seqs[2:]
    assert all(m["from"] == patient.id for m in _messages(therapist, seqs[0]))


@pytest.mark.parametrize(("to", "kind", "body", "field"), [
    ("self", "offer", {"sdp": SDP, "session": "s"}, "to"),
    (None, "offer", {"sdp": SDP, "session": "s"}, "to"),
    (10**6, "offer", {"sdp": SDP, "session": "s"}, "to"),
    ("therapist", "admitted", {"session": "s"}, "kind"),
    ("therapist", "offer", {"sdp": "nope", "session": "s"}, "body.sdp"),
])
def test_bad_signals_are_refused_naming_the_field(call, to, kind, body, field):
    _, patient, therapist = call
    recipient = {"self": patient.id, "therapist": therapist.id}.get(to, to)
    with pytest.raises(ValidationFailed) as refused:
        video.post_signal(patient, recipient, kind, body, now=later(1))
    assert field in refused.value.errors


def test_a_participant_of_another_room_is_not_a_recipient(call, world):
    _, patient, _ = call
    other = _visit(world, week=1)
    stranger = video.enter_room(Actor(world.therapist), other.id, now=NOW).participant
    with pytest.raises(ValidationFailed):
        video.post_signal(patient, stranger.id, "offer", {"sdp": SDP, "session": "s"}, now=later(1))


def test_closed_and_cancelled_visits_have_no_open_room(world):
    visit = _visit(world, modality="video")
    entry = video.enter_room(Actor(world.patient_user), visit.id, now=NOW)
    careplans.change_visit_status(Actor(world.therapist), visit.id, "cancelled", reason="Ill", now=NOW)
    with pytest.raises(ValidationFailed):
        video.enter_room(Actor(world.patient_user), visit.id, now=later(1))
    with pytest.raises(video.TokenRefused):
        video.authenticate(visit.id, entry.token, now=later(1))


# ---------------------------------------------------------------- guests


def test_a_guest_link_works_once(call, world):
    visit, patient, therapist = call
    link, guest = video.invite_guest(Actor(world.therapist), visit.id, "interpreter", " Ines Ortega ", now=NOW)
    assert guest.display_name == "Ines Ortega" and guest.invite_hash != link
    entry = video.enter_with_invite(link, now=later(1), returning_participant_id=None)
    assert entry.participant.id == guest.id and entry.participant.state == "waiting"
    # The same browser session may come back (a reload); anyone else with the link may not.
    assert video.enter_with_invite(link, now=later(2), returning_participant_id=guest.id).participant.id == guest.id
    with pytest.raises(NotFound, match="already been used"):
        video.enter_with_invite(link, now=later(3), returning_participant_id=None)
    video.admit(therapist, guest.id, now=later(4))
    assert {m["kind"] for m in _messages(patient)} >= {"present"}  # the patient hears the guest arrive


def test_a_guest_link_expires_and_only_clinicians_invite(call, world):
    visit, _patient, _ = call
    link, _ = video.invite_guest(Actor(world.therapist), visit.id, "caregiver", "Cara", now=NOW)
    after_end = visit.ends_at + timedelta(hours=2, seconds=1)
    with pytest.raises(NotFound, match="expired"):
        video.enter_with_invite(link, now=after_end, returning_participant_id=None)
    with pytest.raises(NotFound):
        video.enter_with_invite("vg_made-up", now=NOW, returning_participant_id=None)
    with pytest.raises(Forbidden):
        video.invite_guest(Actor(world.patient_user), visit.id, "caregiver", "Cara", now=NOW)
    with pytest.raises(ValidationFailed) as refused:
        video.invite_guest(Actor(world.therapist), visit.id, "cousin", "", now=NOW)
    assert set(refused.value.errors) == {"role", "name"}


# ---------------------------------------------------------------- connection and minutes


def test_minutes_count_while_both_are_connected(call):
    _, patient, therapist = call
    room = patient.room
    video.report_connection(patient, therapist.id, "connected", {}, now=later(0))
    assert video.call_time(room, now=later(60)).seconds == 0  # one side alone does not count
    video.report_connection(therapist, patient.id, "connected", {}, now=later(10))
    video.report_connection(patient, therapist.id, "disconnected", {}, now=later(130))
    video.report_connection(patient, therapist.id, "connected", {}, now=later(140))  # ICE restart healed it
    spent = video.call_time(room, now=later(200))
    assert spent.seconds == 120 + 60 and spent.minutes == 3
    assert spent.first_connected == later(10)


def test_a_page_that_vanishes_stops_the_minutes_when_last_heard(call):
    _, patient, therapist = call
    _connect(patient, therapist, 0, None)
    video.mark_seen(therapist, now=later(5))
    # The patient's page is never heard from again; the therapist's poll notices.
    video.mark_seen(therapist, now=later(video.PRESENCE_SECONDS + 30))
    spent = video.call_time(patient.room, now=later(600))
    assert spent.seconds == 0 and spent.last_connected == later(0)


def test_guest_connections_do_not_count(call, world):
    visit, patient, _therapist = call
    _, guest = video.invite_guest(Actor(world.therapist), visit.id, "caregiver", "Cara", now=NOW)
    video.report_connection(guest, patient.id, "connected", {}, now=later(0))
    video.report_connection(patient, guest.id, "connected", {}, now=later(0))
    assert video.call_time(patient.room, now=later(300)).seconds == 0


def test_quality_comes_back_with_each_report_and_bad_figures_are_refused(call):
    _, patient, therapist = call
    quality = video.report_connection(patient, therapist.id, "connected",
                                      {"rtt_ms": 450, "loss_percent": 0.5, "fps": 24}, now=NOW)
    assert quality.level == "poor" and "late" in quality.words
    with pytest.raises(ValidationFailed) as refused:
        video.report_connection(patient, therapist.id, "sideways", {"rtt_ms": "fast", "fps": -1}, now=NOW)
    assert set(refused.value.errors) == {"state", "rtt_ms", "fps"}


def test_one_click_logs_the_minutes_to_the_draft_note_once(call, world):
    visit, patient, therapist = call
    careplans.save_note(Actor(world.therapist), visit.id, {"objective": "Knee flexion 110."}, now=NOW)
    _connect(patient, therapist, 0, 23 * 60 + 40)
    assert video.log_minutes_to_note(Actor(world.therapist), visit.id, now=later(3600)) == 23
    note = careplans.get_note(Actor(world.therapist), visit.id, now=later(3600))
    assert note.objective.startswith("Knee flexion 110.\nVideo visit: patient and clinician connected for 23 minutes")
    with pytest.raises(ValidationFailed, match="already logged"):
        video.log_minutes_to_note(Actor(world.therapist), visit.id, now=later(3700))


def test_a_signed_note_gets_the_minutes_as_an_addendum(call, world):
    visit, patient, therapist = call
    careplans.save_note(Actor(world.therapist), visit.id, {"subjective": "Better"}, now=NOW)
    careplans.sign_note(Actor(world.therapist), visit.id, now=NOW)
    _connect(patient, therapist, 0, 61)
    assert video.log_minutes_to_note(Actor(world.therapist), visit.id, now=later(100)) == 1
    note = careplans.get_note(Actor(world.therapist), visit.id, now=later(100))
    assert [a.text for a in note.addenda] == [
        "Video visit: patient and clinician connected for 1 minute (15:00 to 15:01 UTC)."]


def test_minutes_need_a_whole_minute_and_the_visits_clinician(call, world):
    visit, patient, therapist = call
    _connect(patient, therapist, 0, 59)
    with pytest.raises(ValidationFailed, match="whole minute"):
        video.log_minutes_to_note(Actor(world.therapist), visit.id, now=later(100))
    with pytest.raises(Forbidden):
        video.log_minutes_to_note(Actor(world.patient_user), visit.id, now=later(100))
    with pytest.raises(NotFound):
        video.log_minutes_to_note(Actor(world.assistant), visit.id, now=later(100))
    assert video.room_of_visit(visit.id).minutes_logged_at is None  # nothing half-written


def test_an_rtm_call_logs_interactive_management_time(call, world):
    monitoring = pytest.importorskip("telerehab.monitoring.operations",
                                     reason="the RTM engine (telerehab.monitoring) is not installed")
    visit, patient, therapist = call
    _connect(patient, therapist, 0, 21 * 60)
    with pytest.raises(ValidationFailed, match="not enrolled"):
        video.log_minutes_as_management_time(Actor(world.therapist), visit.id, now=later(1500))
    accounts.record_consent(Actor(world.therapist), world.patient.id, "rtm", method="verbal", note=None, now=NOW)
    monitoring.enrol(Actor(world.therapist), world.episode.id, {
        "device_name": "telerehab app", "cost_sharing_notice_shown_at": NOW,
        "monitoring_start": NOW.date()}, now=NOW)
    assert video.is_rtm_call(visit)
    assert video.log_minutes_as_management_time(Actor(world.therapist), visit.id, now=later(1500)) == 21
    entry = monitoring.ManagementTimeEntry.query.one()
    assert (entry.minutes, entry.activity, entry.interactive, entry.channel, entry.linked_visit_id) == (
        21, "video", True, "video", visit.id)
    assert entry.service_date == NOW.date()  # 09:00 in Chicago


# ---------------------------------------------------------------- consent, capture, recording


def test_recording_needs_this_visits_consent_and_stops_when_it_is_withdrawn(call, world):
    visit, patient, therapist = call
    with pytest.raises(ValidationFailed, match="consent"):
        video.ask_worker(therapist, "record", now=NOW)
    with pytest.raises(Forbidden):
        video.record_recording_consent(Actor(world.patient_user), visit.id, "verbal", now=NOW)
    with pytest.raises(ValidationFailed):
        video.record_recording_consent(Actor(world.therapist), visit.id, "telepathy", now=NOW)
    video.record_recording_consent(Actor(world.therapist), visit.id, "verbal", now=NOW)
    media = video.ask_worker(therapist, "record", now=later(1))
    request = next(m for m in _messages(patient) if m["kind"] == "media-request")["body"]
    assert request["media_session_id"] == media.id and request["kind"] == "record"
    assert video.media_session_for(media.id, request["token"], now=later(2)).id == media.id
    with pytest.raises(ValidationFailed, match="under way"):
        video.ask_worker(therapist, "record", now=later(2))
    # A session its worker never finished (a crash) stops blocking once it expires.
    assert video.ask_worker(therapist, "capture", now=later(2)).kind == "capture"
    assert video.ask_worker(therapist, "capture", now=later(3700)).kind == "capture"
    assert not video.worker_should_stop(media.id, now=later(3))
    # Consent is per visit: another visit of the same patient is not covered.
    other = _visit(world, week=1)
    assert video.recording_consent(other.id) is None
    video.revoke_recording_consent(Actor(world.therapist), visit.id, now=later(4))
    assert video.worker_should_stop(media.id, now=later(5))


def test_the_worker_claims_an_offer_once_and_answers_it(world):
    token, check = video.start_device_check(Actor(world.patient_user), now=NOW)
    session = video.media_session_for(check.id, token, now=NOW)
    with pytest.raises(video.TokenRefused):
        video.media_session_for(check.id, token + "x", now=NOW)
    with pytest.raises(video.TokenRefused):
        video.media_session_for(check.id, token, now=later(3600))
    assert video.claim_offered("w1", now=NOW) is None  # no offer yet
    video.submit_offer(session, SDP, now=NOW)
    with pytest.raises(ValidationFailed):
        video.submit_offer(session, SDP, now=NOW)
    claimed = video.claim_offered("w1", now=later(1))
    assert claimed.id == check.id and video.claim_offered("w2", now=later(1)) is None
    video.worker_answer(check.id, SDP, now=later(2))
    video.worker_finish(check.id, result={"findings": []}, error=None, now=later(3))
    state = video.media_session_json(video.db.session.get(MediaSession, check.id))
    assert (state["status"], state["answer"], state["result"]) == ("finished", SDP, {"findings": []})
    assert json.loads(video.db.session.get(MediaSession, check.id).result) == {"findings": []}


def test_a_capture_needs_the_patient_in_the_call(world):
    visit = _visit(world, modality="video")
    therapist = video.enter_room(Actor(world.therapist), visit.id, now=NOW).participant
    with pytest.raises(ValidationFailed, match="not in the call"):
        video.ask_worker(therapist, "capture", now=NOW)


def test_concurrent_senders_get_distinct_consecutive_numbers(app, call, database_url):
    """Web workers posting into one room at the same moment: the room row's UPDATE serialises them."""
    if not database_url.startswith("postgresql"):
        pytest.skip("needs a database that several connections share (PostgreSQL)")
    _, patient, therapist = call
    senders = {"patient": (patient.id, therapist.id), "therapist": (therapist.id, patient.id)}
    errors: list[Exception] = []

    def send(name: str) -> None:
        sender_id, recipient_id = senders[name]
        with app.app_context():
            try:
                sender = video.db.session.get(type(patient), sender_id)
                for n in range(15):
                    video.post_signal(sender, recipient_id, "candidate", {"candidate": None, "session": f"{n}"},
                                      now=later(n))
            except Exception as error:  # surfaced by the assertion below
                errors.append(error)
            finally:
                video.db.session.remove()

    threads = [threading.Thread(target=send, args=(name,)) for name in ("patient", "therapist") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    video.db.session.expire_all()
    seqs = [m.seq for m in SignalMessage.query.filter_by(room_id=patient.room_id).order_by(SignalMessage.seq)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 90
