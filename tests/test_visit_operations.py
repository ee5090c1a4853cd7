"""Visit operations: scheduling checks, cadence confirmation, transitions, video-slot offers,
notes and signatures, derived charges, plan alerts, recertification and the calendar feed."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as care
from telerehab.careplans.models import ClinicClosure, VideoSlotOffer, Visit
from telerehab.careplans.rules import PlanAlert
from telerehab.errors import Forbidden, NotFound, ValidationFailed

from .conftest import NOW, episode_data, patient_data

# 2026-03-02 is a Monday; Chicago is UTC-6 until the 8 March change, then UTC-5.
MONDAY_9AM = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def slot(day_offset: int, hour_utc: int = 15, minutes: int = 45):
    start = MONDAY_9AM.replace(hour=hour_utc) + timedelta(days=day_offset)
    return start, start + timedelta(minutes=minutes)


def visit_data(day_offset=0, hour_utc=15, *, kind="treatment", modality="in_clinic", **extra):
    start, end = slot(day_offset, hour_utc)
    return {"kind": kind, "modality": modality, "starts_at": start, "ends_at": end, **extra}


def schedule(world, day_offset=0, hour_utc=15, actor=None, **kw):
    return care.schedule_visit(Actor(actor or world.therapist), world.episode.id,
                               visit_data(day_offset, hour_utc, **kw), now=NOW)


def second_episode(world):
    """Another patient of the same clinic and therapist, to test the therapist's own calendar."""
    patient = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Bo"), now=NOW)
    return care.create_episode(Actor(world.therapist), patient.id, episode_data(), now=NOW)


def count_visits(db) -> int:
    return db.session.scalar(select(func.count(Visit.id)))


# ---------------------------------------------------------------- scheduling rules

def test_a_therapist_cannot_be_in_two_places(db, world):
    first = schedule(world, 1)
    other = second_episode(world)
    with pytest.raises(ValidationFailed) as error:
        care.schedule_visit(Actor(world.therapist), other.id, visit_data(1, 15), now=NOW)
    assert "already has a visit at that time" in error.value.errors["starts_at"][0]
    # Half-open intervals: the next visit may start the minute the first one ends.
    touching = {"kind": "treatment", "modality": "video", "starts_at": first.ends_at,
                "ends_at": first.ends_at + timedelta(minutes=30)}
    assert care.schedule_visit(Actor(world.therapist), other.id, touching, now=NOW).starts_at == first.ends_at
    # Another therapist is free at the first visit's time.
    assert care.schedule_visit(Actor(world.therapist), other.id, visit_data(
        2, 15, clinician_id=world.therapist2.id), now=NOW).clinician_id == world.therapist2.id


def test_one_visit_per_patient_per_day(db, world):
    schedule(world, 1, 15)
    with pytest.raises(ValidationFailed) as error:
        schedule(world, 1, 20, actor=world.therapist)
    assert "patient already has a visit" in error.value.errors["starts_at"][0]


@pytest.mark.parametrize(("kind", "allowed"), [
    ("treatment", True), ("initial_evaluation", False), ("progress", False), ("re_evaluation", False),
    ("discharge", False),
])
def test_an_assistant_furnishes_treatment_only(db, world, kind, allowed):
    data = visit_data(1, kind=kind, clinician_id=world.assistant.id)
    if allowed:
        assert care.schedule_visit(Actor(world.therapist), world.episode.id, data, now=NOW).clinician_id == world.assistant.id
    else:
        with pytest.raises(ValidationFailed) as error:
            care.schedule_visit(Actor(world.therapist), world.episode.id, data, now=NOW)
        assert "physical therapist" in error.value.errors["clinician_id"][0]


def test_closures_and_the_certified_period_are_respected(db, world):
    db.session.add(ClinicClosure(clinic_id=world.clinic.id, day=date(2026, 3, 4), reason="Training day"))
    db.session.commit()
    with pytest.raises(ValidationFailed) as error:
        schedule(world, 2)
    assert "closed" in error.value.errors["starts_at"][0]
    with pytest.raises(ValidationFailed) as error:
        schedule(world, 90)  # day 91 counting the first treatment
    assert "certified period" in error.value.errors["starts_at"][0]
    assert schedule(world, 89).beyond_certification is False


def test_a_recertification_allows_and_flags_later_visits(db, world):
    care.record_recertification(Actor(world.therapist), world.episode.id, {
        "certification_start": date(2026, 5, 31), "certification_end": date(2026, 8, 28),
        "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893",
        "certification_signed_on": date(2026, 5, 31)}, now=NOW)
    visit = schedule(world, 95)
    assert visit.beyond_certification is False  # within the recertified period
    assert care.certified_until(world.episode) == date(2026, 8, 28)


def test_a_recertification_must_follow_the_current_period(db, world):
    with pytest.raises(ValidationFailed) as error:
        care.record_recertification(Actor(world.therapist), world.episode.id, {
            "certification_start": date(2026, 5, 1), "certification_end": date(2026, 7, 1),
            "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893"}, now=NOW)
    assert "certification_start" in error.value.errors


@pytest.mark.parametrize(("start_offset", "end_offset", "message"), [
    (timedelta(0), timedelta(0), "ends before it starts"),
    (timedelta(0), -timedelta(minutes=5), "ends before it starts"),
    (timedelta(0), timedelta(hours=5), "at most 4 hours"),
])
def test_bad_intervals(db, world, start_offset, end_offset, message):
    start = MONDAY_9AM + timedelta(days=1) + start_offset
    with pytest.raises(ValidationFailed) as error:
        care.schedule_visit(Actor(world.therapist), world.episode.id, {
            "kind": "treatment", "modality": "video", "starts_at": start, "ends_at": start + end_offset}, now=NOW)
    assert message in error.value.errors["ends_at"][0]


@pytest.mark.parametrize("role", ["billing", "patient"])
def test_only_the_care_team_schedules(db, world, role):
    with pytest.raises(Forbidden):
        care.schedule_visit(Actor(world.user(role)), world.episode.id, visit_data(1), now=NOW)


def test_another_clinics_episode_is_not_found(db, world):
    with pytest.raises(NotFound):
        care.schedule_visit(Actor(world.therapist), world.other_episode.id, visit_data(1), now=NOW)


# ---------------------------------------------------------------- cadence

def cadence_options(**overrides):
    return {"modality_pattern": ["in_clinic", "video", "video"], "preferred_weekdays": [0, 3],
            "preferred_start": time(9, 0), **overrides}


def test_preview_then_confirm_writes_the_whole_series(db, world):
    proposal = care.preview_cadence(Actor(world.therapist), world.episode.id, cadence_options(), now=NOW)
    assert len(proposal.visits) == 16  # 2 a week for 8 weeks
    assert proposal.visits[0].kind == "initial_evaluation" and proposal.visits[0].modality == "in_clinic"
    assert proposal.visits[-1].kind == "discharge" and proposal.visits[-1].modality == "in_clinic"
    assert proposal.visits[9].kind == "progress" and proposal.visits[9].modality == "in_clinic"
    treatment_modalities = [v.modality for v in proposal.visits if v.kind == "treatment"]
    assert treatment_modalities[:3] == ["in_clinic", "video", "video"]
    assert count_visits(db) == 0, "a preview writes nothing"
    rows = [{"kind": v.kind, "modality": v.modality, "starts_at": v.start, "ends_at": v.end} for v in proposal.visits]
    rows[2]["modality"] = "in_clinic"  # the therapist edits one row before confirming
    visits = care.confirm_cadence(Actor(world.therapist), world.episode.id, rows, clinician_id=None, now=NOW)
    assert len(visits) == 16 and visits[2].modality == "in_clinic"
    # The wall time stays 9:00 in Chicago across the 8 March clock change.
    assert visits[0].starts_at.hour == 15 and visits[3].starts_at.hour == 14


def test_a_second_preview_works_around_the_confirmed_series(db, world):
    first = care.preview_cadence(Actor(world.therapist), world.episode.id, cadence_options(), now=NOW)
    rows = [{"kind": v.kind, "modality": v.modality, "starts_at": v.start, "ends_at": v.end} for v in first.visits]
    care.confirm_cadence(Actor(world.therapist), world.episode.id, rows, clinician_id=None, now=NOW)
    other = second_episode(world)
    again = care.preview_cadence(Actor(world.therapist), other.id, cadence_options(), now=NOW)
    taken = [(v.starts_at, v.ends_at) for v in db.session.scalars(select(Visit))]
    assert again.visits and all(v.start >= e or v.end <= s for v in again.visits for s, e in taken)
    assert again.visits[0].start != first.visits[0].start  # 9:00 Monday is taken: a later start


def test_confirm_is_all_or_nothing(db, world):
    schedule(world, 3)  # Thursday is taken
    rows = [visit_data(0, kind="initial_evaluation"), visit_data(3), visit_data(7)]
    with pytest.raises(ValidationFailed) as error:
        care.confirm_cadence(Actor(world.therapist), world.episode.id, rows, clinician_id=None, now=NOW)
    assert list(error.value.errors) == ["visits.1.starts_at"]  # named by its place in the request
    assert count_visits(db) == 1


def test_confirm_refuses_two_rows_on_one_day(db, world):
    rows = [visit_data(1, 14), visit_data(1, 18)]
    with pytest.raises(ValidationFailed) as error:
        care.confirm_cadence(Actor(world.therapist), world.episode.id, rows, clinician_id=None, now=NOW)
    assert "visits.1.starts_at" in error.value.errors


def test_bad_cadence_options_name_the_field(db, world):
    with pytest.raises(ValidationFailed) as error:
        care.preview_cadence(Actor(world.therapist), world.episode.id,
                             cadence_options(preferred_weekdays=[7]), now=NOW)
    assert "preferred_weekdays" in error.value.errors


# ---------------------------------------------------------------- status and offers

def test_transitions_are_enforced(db, world):
    visit = schedule(world, 1)
    with pytest.raises(ValidationFailed) as error:
        care.change_visit_status(Actor(world.therapist), visit.id, "completed", now=NOW)
    assert "status" in error.value.errors
    for status in ("checked_in", "in_progress", "completed"):
        visit, token = care.change_visit_status(Actor(world.therapist), visit.id, status, now=NOW)
        assert visit.status == status and token is None
    with pytest.raises(ValidationFailed):
        care.change_visit_status(Actor(world.therapist), visit.id, "scheduled", now=NOW)
    # Repeating the last change is a no-op, so a retried request is harmless.
    assert care.change_visit_status(Actor(world.therapist), visit.id, "completed", now=NOW)[0].status == "completed"


def test_cancelling_needs_a_reason(db, world):
    visit = schedule(world, 1)
    with pytest.raises(ValidationFailed) as error:
        care.change_visit_status(Actor(world.therapist), visit.id, "cancelled", reason="  ", now=NOW)
    assert "reason" in error.value.errors


def test_a_cancelled_clinic_visit_offers_the_nearest_video_slot_that_week(db, world):
    visit = schedule(world, 2, 15)  # Wednesday 9:00 Chicago
    cancelled, token = care.change_visit_status(Actor(world.therapist), visit.id, "cancelled",
                                                reason="Car broke down", now=NOW)
    assert token and token.startswith("vso_")
    offer = care.offer_for_token(token, now=NOW)
    assert offer.cancelled_visit_id == cancelled.id
    # The therapist is free then, so the nearest slot is the same time on video.
    assert offer.starts_at == visit.starts_at and offer.ends_at == visit.ends_at
    assert [o.id for o in care.open_offers_for_patient(Actor(world.patient_user), world.patient.id, now=NOW)] == [offer.id]
    new = care.accept_offer(Actor(world.patient_user), offer.id, now=NOW)
    assert (new.modality, new.kind, new.rescheduled_from_id) == ("video", "treatment", cancelled.id)
    assert care.accept_offer(Actor(world.patient_user), offer.id, now=NOW).id == new.id  # a second tap
    assert care.open_offers_for_patient(Actor(world.patient_user), world.patient.id, now=NOW) == []


def test_a_video_visit_cancelled_gets_no_offer(db, world):
    visit = schedule(world, 2, modality="video")
    assert care.change_visit_status(Actor(world.therapist), visit.id, "cancelled", reason="Ill", now=NOW)[1] is None


def test_the_offer_avoids_the_therapists_other_visits(db, world):
    visit = schedule(world, 2, 15)
    other = second_episode(world)
    care.change_visit_status(Actor(world.therapist), visit.id, "cancelled", reason="Ill", now=NOW)
    busy = care.schedule_visit(Actor(world.therapist), other.id, visit_data(3, 15), now=NOW)
    offer = db.session.scalar(select(VideoSlotOffer))
    assert offer.starts_at == visit.starts_at  # Wednesday 9:00 is free again once the visit is cancelled
    assert not (offer.starts_at < busy.ends_at and busy.starts_at < offer.ends_at)


def test_another_patient_cannot_accept_an_offer(db, world):
    visit = schedule(world, 2)
    care.change_visit_status(Actor(world.therapist), visit.id, "cancelled", reason="Ill", now=NOW)
    offer = db.session.scalar(select(VideoSlotOffer))
    with pytest.raises(NotFound):
        care.accept_offer(Actor(world.other_therapist), offer.id, now=NOW)
    with pytest.raises(Forbidden):
        care.accept_offer(Actor(world.billing), offer.id, now=NOW)


def test_an_expired_offer_is_refused(db, world):
    visit = schedule(world, 2)
    care.change_visit_status(Actor(world.therapist), visit.id, "cancelled", reason="Ill", now=NOW)
    offer = db.session.scalar(select(VideoSlotOffer))
    with pytest.raises(ValidationFailed):
        care.accept_offer(Actor(world.patient_user), offer.id, now=offer.expires_at)


# ---------------------------------------------------------------- notes

def completed_visit(world, clinician=None, **kw):
    visit = schedule(world, 1, clinician_id=(clinician or world.therapist).id, **kw)
    for status in ("checked_in", "in_progress", "completed"):
        care.change_visit_status(Actor(world.therapist), visit.id, status, now=NOW)
    return visit


def test_a_signed_note_is_locked_and_takes_addenda(db, world):
    visit = completed_visit(world)
    actor = Actor(world.therapist)
    with pytest.raises(ValidationFailed):
        care.sign_note(actor, visit.id, now=NOW)  # nothing written yet
    care.save_note(actor, visit.id, {"subjective": "Knee better", "plan": "Progress squats"}, now=NOW)
    note = care.sign_note(actor, visit.id, now=NOW)
    assert note.signed_at == NOW
    with pytest.raises(ValidationFailed):
        care.save_note(actor, visit.id, {"plan": "changed"}, now=NOW)
    addendum = care.add_addendum(actor, visit.id, "Called patient: pain settled.", now=NOW + timedelta(hours=1))
    assert addendum.text == "Called patient: pain settled."


def test_an_assistants_note_needs_the_therapists_cosign(db, world):
    visit = completed_visit(world, clinician=world.assistant)
    care.save_note(Actor(world.assistant), visit.id, {"objective": "3x10 squats"}, now=NOW)
    with pytest.raises(ValidationFailed):
        care.cosign_note(Actor(world.therapist), visit.id, now=NOW)  # not signed yet
    care.sign_note(Actor(world.assistant), visit.id, now=NOW)
    with pytest.raises(Forbidden):
        care.cosign_note(Actor(world.assistant), visit.id, now=NOW)
    note = care.cosign_note(Actor(world.therapist), visit.id, now=NOW)
    assert note.cosigned_by_id == world.therapist.id


def test_only_the_author_changes_a_draft(db, world):
    visit = completed_visit(world)
    care.save_note(Actor(world.therapist), visit.id, {"subjective": "x"}, now=NOW)
    with pytest.raises(Forbidden):
        care.save_note(Actor(world.therapist2), visit.id, {"subjective": "y"}, now=NOW)


def test_billing_cannot_write_notes(db, world):
    visit = completed_visit(world)
    with pytest.raises(Forbidden):
        care.save_note(Actor(world.billing), visit.id, {"subjective": "x"}, now=NOW)


# ---------------------------------------------------------------- services and charges

def test_the_cms_example_in_the_clinic(db, world):
    visit = completed_visit(world)
    lines = care.set_services(Actor(world.therapist), visit.id, [
        {"cpt_code": "97110", "minutes": 33}, {"cpt_code": "97140", "minutes": 7}], now=NOW)
    assert {(line.cpt_code, line.units, line.place_of_service, line.modifiers) for line in lines} == {
        ("97110", 2, "11", "GP"), ("97140", 1, "11", "GP")}


def test_video_lines_carry_pos_10_and_95_and_cq_over_ten_percent(db, world):
    visit = completed_visit(world, modality="video")
    lines = care.set_services(Actor(world.therapist), visit.id, [
        {"cpt_code": "97110", "minutes": 30, "assistant_minutes": 4},
        {"cpt_code": "97530", "minutes": 10, "assistant_minutes": 1}], audio_only=True, now=NOW)
    by_code = {line.cpt_code: line for line in lines}
    assert by_code["97110"].place_of_service == "10"
    assert by_code["97110"].modifiers == "GP CQ 95 93"
    assert by_code["97530"].modifiers == "GP 95 93"  # exactly 10% is not more than 10%


def test_services_need_a_completed_visit_and_unique_codes(db, world):
    visit = schedule(world, 1)
    with pytest.raises(ValidationFailed):
        care.set_services(Actor(world.therapist), visit.id, [{"cpt_code": "97110", "minutes": 20}], now=NOW)
    for status in ("checked_in", "in_progress", "completed"):
        care.change_visit_status(Actor(world.therapist), visit.id, status, now=NOW)
    with pytest.raises(ValidationFailed):
        care.set_services(Actor(world.therapist), visit.id, [
            {"cpt_code": "97110", "minutes": 20}, {"cpt_code": "97110", "minutes": 5}], now=NOW)
    with pytest.raises(ValidationFailed):
        care.set_services(Actor(world.therapist), visit.id, [
            {"cpt_code": "97110", "minutes": 20, "assistant_minutes": 21}], now=NOW)


# ---------------------------------------------------------------- alerts

def test_alerts_for_certification_and_progress(db, world):
    episode = world.episode
    today = episode.certification_end - timedelta(days=3)
    kinds = {a.kind for a in care.episode_alerts(episode, now=datetime.combine(today, time(18), UTC))}
    assert kinds == {PlanAlert.CERTIFICATION_ENDING}
    eight_days_before = datetime.combine(episode.certification_end - timedelta(days=8), time(18), UTC)
    assert care.episode_alerts(episode, now=eight_days_before) == []


def test_caseload_alerts_list_only_episodes_needing_attention(db, world):
    late = NOW.replace(year=2026, month=5, day=28)
    result = care.caseload_alerts(Actor(world.therapist), therapist_id=world.therapist.id, now=late)
    assert [episode.id for episode, _ in result] == [world.episode.id]


def consent_alerts(episode, now=NOW) -> list[str]:
    return [a.message for a in care.episode_alerts(episode, now=now) if a.kind == PlanAlert.TELEHEALTH_CONSENT_MISSING]


def test_telehealth_consent_alert_follows_the_consent_history_and_the_video_visits(db, world):
    therapist = Actor(world.therapist)
    schedule(world, 1)  # a clinic visit needs no telehealth consent
    assert consent_alerts(world.episode) == []
    later, first = schedule(world, 9, modality="video"), schedule(world, 3, modality="video")
    [message] = consent_alerts(world.episode)
    assert "from 2026-03-05" in message  # the first video visit, not the first one booked
    consent = accounts.record_consent(therapist, world.patient.id, "telehealth", method="verbal", note=None, now=NOW)
    assert consent_alerts(world.episode) == []
    accounts.revoke_consent(therapist, consent.id, note="withdrawn", now=NOW)
    assert len(consent_alerts(world.episode)) == 1
    # Once the video visits are behind (or cancelled), there is nothing to consent to.
    assert consent_alerts(world.episode, now=later.ends_at + timedelta(days=1)) == []
    for visit in (first, later):
        care.change_visit_status(therapist, visit.id, "cancelled", reason="patient away", now=NOW)
    assert consent_alerts(world.episode) == []


def test_consent_of_another_patient_does_not_count(db, world):
    other = second_episode(world)
    care.schedule_visit(Actor(world.therapist), other.id, visit_data(2, modality="video"), now=NOW)
    schedule(world, 3, modality="video")
    accounts.record_consent(Actor(world.therapist), world.patient.id, "telehealth", method="written", note=None,
                            now=NOW)
    result = care.caseload_alerts(Actor(world.therapist), therapist_id=world.therapist.id, now=NOW)
    flagged = {episode.id for episode, alerts in result
               if PlanAlert.TELEHEALTH_CONSENT_MISSING in {a.kind for a in alerts}}
    assert flagged == {other.id}


def test_video_visits_are_scheduled_without_consent_and_the_preview_warns(db, world):
    proposal = care.preview_cadence(Actor(world.therapist), world.episode.id, cadence_options(), now=NOW)
    video_starts = [v.start for v in proposal.visits if v.modality == "video"]
    alert = care.video_consent_alert(world.episode, video_starts, now=NOW)
    local_first = min(video_starts).astimezone(ZoneInfo("America/Chicago")).date()
    assert alert.kind == PlanAlert.TELEHEALTH_CONSENT_MISSING and f"from {local_first:%Y-%m-%d}" in alert.message
    assert care.video_consent_alert(world.episode, [], now=NOW) is None
    rows = [{"kind": v.kind, "modality": v.modality, "starts_at": v.start, "ends_at": v.end} for v in proposal.visits]
    created = care.confirm_cadence(Actor(world.therapist), world.episode.id, rows, clinician_id=None, now=NOW)
    assert len(created) == len(rows)  # not refused
    assert len(consent_alerts(world.episode)) == 1


# ---------------------------------------------------------------- calendar feed

def test_calendar_feed_lifecycle(db, world):
    schedule(world, 1)
    token = care.create_calendar_feed(Actor(world.therapist), now=NOW)
    user, visits = care.feed_visits(token, now=NOW)
    assert user.id == world.therapist.id and len(visits) == 1
    patient_token = care.create_calendar_feed(Actor(world.patient_user), now=NOW)
    assert len(care.feed_visits(patient_token, now=NOW)[1]) == 1
    newer = care.create_calendar_feed(Actor(world.therapist), now=NOW)
    with pytest.raises(NotFound):
        care.feed_visits(token, now=NOW)  # a new address revokes the old
    care.revoke_calendar_feed(Actor(world.therapist), now=NOW)
    with pytest.raises(NotFound):
        care.feed_visits(newer, now=NOW)


def test_calendar_visits_are_scoped(db, world):
    schedule(world, 1)
    care.schedule_visit(Actor(world.other_therapist), world.other_episode.id, visit_data(
        2, clinician_id=world.other_therapist.id), now=NOW)
    start, end = MONDAY_9AM - timedelta(days=1), MONDAY_9AM + timedelta(days=7)
    mine = care.calendar_visits(Actor(world.therapist), clinician_id=None, start=start, end=end, now=NOW)
    theirs = care.calendar_visits(Actor(world.other_therapist), clinician_id=None, start=start, end=end, now=NOW)
    assert [v.patient_id for v in mine] == [world.patient.id]
    assert [v.patient_id for v in theirs] == [world.other_patient.id]
    admin_sees = care.calendar_visits(Actor(world.admin), clinician_id=None, start=start, end=end, now=NOW)
    assert len(admin_sees) == 2  # organisation-wide


def test_the_offer_is_texted_with_the_cancellation_when_the_patient_accepts_texts(db, world, app):
    from telerehab.messaging.models import OutboxMessage

    accounts.record_consent(Actor(world.therapist), world.patient.id, "sms", method="written", note=None, now=NOW)
    app.config["PUBLIC_BASE_URL"] = "https://clinic.example"
    try:
        visit = schedule(world, 2)
        _, token = care.change_visit_status(Actor(world.therapist), visit.id, "cancelled", reason="Ill", now=NOW)
    finally:
        app.config["PUBLIC_BASE_URL"] = None
    (message,) = db.session.scalars(select(OutboxMessage)).all()
    assert message.kind == "video_offer" and message.patient_id == world.patient.id
    assert f"https://clinic.example/offers/accept/{token}" in message.body
    assert "M17" not in message.body and "knee" not in message.body.lower()
    # Without SMS consent nothing is queued, but the offer stands on the patient's page.
    other = schedule(world, 3)
    accounts.revoke_consent(Actor(world.therapist), world.patient.consents[0].id, note=None, now=NOW)
    care.change_visit_status(Actor(world.therapist), other.id, "cancelled", reason="Ill", now=NOW)
    assert len(db.session.scalars(select(OutboxMessage)).all()) == 1
    assert len(care.open_offers_for_patient(Actor(world.patient_user), world.patient.id, now=NOW)) == 2
