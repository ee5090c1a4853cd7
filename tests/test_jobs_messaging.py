"""The messaging jobs' service functions, as the scheduler calls them: daily reminders (one per
patient per local day, only when due and still useful) and delivery. Every job run twice, or
stopped halfway and run again, leaves the same result as one clean run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.errors import ValidationFailed
from telerehab.exercises import operations as exercises
from telerehab.extensions import db
from telerehab.messaging import operations as messaging
from telerehab.messaging.models import OutboxMessage, SmsLogEntry

from .conftest import NOW, patient_data
from .test_messaging_support import count, log_entries, rows, sms_consent

# Chicago is UTC-6 until 2026-03-08. The default reminder time is 18:00 local = 00:00 UTC.
BEFORE_DUE = datetime(2026, 3, 2, 23, 59, tzinfo=UTC)
DUE = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
LATE_EVENING = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)  # 22:00 local: quiet hours
MORNING = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # 08:00 local: quiet hours end


def remind(at):
    return messaging.enqueue_daily_reminders(now=at)


def reminders():
    return [m for m in rows() if m.kind == "reminder"]


def check_in(world, at, patient=None, user=None):
    exercises.record_checkin(Actor(user or world.patient_user), (patient or world.patient).id, {
        "client_id": uuid.uuid4(), "recorded_at": at, "pain": 3, "difficulty": None, "note": None, "exercises": [],
    }, source="web", now=at)


def test_no_reminder_before_the_patients_reminder_time(world):
    sms_consent(world)
    assert remind(BEFORE_DUE).queued == 0
    assert count(OutboxMessage) == 0


def test_one_reminder_per_patient_per_local_day(world):
    sms_consent(world)
    assert remind(DUE).queued == 1
    assert remind(DUE).queued == 0  # the same run again
    assert remind(DUE + timedelta(minutes=5)).already_queued == 1
    assert remind(LATE_EVENING).queued == 0
    [reminder] = reminders()
    assert reminder.idempotency_key == f"reminder:{world.patient.id}:2026-03-02"
    assert reminder.next_attempt_at == DUE
    assert remind(DUE + timedelta(days=1)).queued == 1  # the next local day
    assert [r.idempotency_key for r in reminders()] == [
        f"reminder:{world.patient.id}:2026-03-02", f"reminder:{world.patient.id}:2026-03-03"]


def test_reminder_bodies_carry_no_diagnosis_or_plan(world):
    sms_consent(world)
    spouse = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Bo"), now=NOW)
    careplans.create_episode(Actor(world.therapist), spouse.id, {
        "title": "Low back pain after lifting", "start_date": NOW.date(), "frequency_per_week": 2,
        "duration_weeks": 6, "diagnoses": ["M54.50", "S39.012A"], "goals": [{"description": "Lift 10 kg"}]},
        now=NOW)
    sms_consent(world, spouse)
    remind(DUE)
    sent = reminders()
    assert len(sent) == 2
    forbidden = ["M17.11", "M1711", "Right knee OA", "knee", "M54.50", "M5450", "S39.012A", "Low back pain",
                 "back", "lifting"]
    for reminder in sent:
        for term in forbidden:
            assert term.lower() not in reminder.body.lower(), (term, reminder.body)
    messaging.deliver_due(now=DUE)
    for entry in log_entries():
        assert not any(term.lower() in entry.body.lower() for term in forbidden)


def test_a_patient_who_checked_in_today_gets_no_reminder(world):
    sms_consent(world)
    check_in(world, NOW)  # 09:00 local on the 2nd
    run = remind(DUE)
    assert (run.queued, run.checked_in) == (0, 1)
    # Yesterday's check-in does not count for today.
    assert remind(DUE + timedelta(days=1)).queued == 1


def test_a_late_evening_check_in_counts_for_its_local_day(world):
    """23:30 in Chicago is already the next day in UTC; the check-in is the local day's."""
    sms_consent(world)
    late = datetime(2026, 3, 3, 5, 30, tzinfo=UTC)  # 23:30 local on the 2nd
    check_in(world, late)
    run = remind(late + timedelta(minutes=1))  # the job, late: the 2nd's reminder is still due
    assert (run.queued, run.checked_in) == (0, 1)
    assert remind(DUE + timedelta(days=1)).queued == 1  # the 3rd has no check-in yet


@pytest.mark.parametrize("case", ["no consent", "revoked", "discharged", "on hold", "no phone", "disabled"])
def test_who_gets_no_reminder(world, case):
    consent = sms_consent(world) if case != "no consent" else None
    if case == "revoked":
        accounts.revoke_consent(Actor(world.therapist), consent.id, note=None, now=NOW)
    elif case in ("discharged", "on hold"):
        data = {"status": "on_hold"} if case == "on hold" else {
            "status": "discharged", "discharge_date": NOW.date(), "discharge_reason": "goals_met"}
        careplans.update_episode(Actor(world.therapist), world.episode.id, data, now=NOW)
    elif case == "no phone":
        accounts.update_patient(Actor(world.therapist), world.patient.id, {"phone": None}, now=NOW)
    elif case == "disabled":
        messaging.update_sms_settings(Actor(world.therapist), world.patient.id,
                                      {"reminder_time": time(18), "reminders_enabled": False}, now=NOW)
    assert remind(DUE).queued == 0
    assert count(OutboxMessage) == 0


def test_each_patient_has_their_own_reminder_time(world):
    sms_consent(world)
    messaging.update_sms_settings(Actor(world.assistant), world.patient.id,
                                  {"reminder_time": time(12, 30), "reminders_enabled": True}, now=NOW)
    assert remind(datetime(2026, 3, 2, 18, 29, tzinfo=UTC)).queued == 0
    assert remind(datetime(2026, 3, 2, 18, 30, tzinfo=UTC)).queued == 1


def test_a_reminder_time_inside_quiet_hours_is_refused(world):
    for at in (time(21, 30), time(6, 0), time(0, 0)):
        with pytest.raises(ValidationFailed) as error:
            messaging.update_sms_settings(Actor(world.therapist), world.patient.id,
                                          {"reminder_time": at, "reminders_enabled": True}, now=NOW)
        assert "quiet hours" in error.value.errors["reminder_time"][0]


def test_reminders_follow_the_patients_timezone_across_dst(world):
    sms_consent(world)
    # 2026-03-08: Chicago springs forward; 18:00 CDT is 23:00 UTC.
    assert remind(datetime(2026, 3, 8, 22, 59, tzinfo=UTC)).queued == 0
    assert remind(datetime(2026, 3, 8, 23, 0, tzinfo=UTC)).queued == 1
    # A patient in Honolulu (no DST): 18:00 HST is 04:00 UTC the next day.
    accounts.update_patient(Actor(world.therapist), world.patient.id, {"timezone": "Pacific/Honolulu"}, now=NOW)
    assert remind(datetime(2026, 3, 10, 3, 59, tzinfo=UTC)).queued == 0
    assert remind(datetime(2026, 3, 10, 4, 0, tzinfo=UTC)).queued == 1
    assert reminders()[-1].idempotency_key.endswith("2026-03-09")


def test_a_reminder_due_in_quiet_hours_waits_for_their_end(world):
    """The job was down at 18:00 and runs at 22:00 local: the reminder waits until 08:00."""
    sms_consent(world)
    assert remind(LATE_EVENING).queued == 1
    [reminder] = reminders()
    assert reminder.next_attempt_at == MORNING
    assert messaging.deliver_due(now=LATE_EVENING).sent == 0
    assert messaging.deliver_due(now=MORNING - timedelta(seconds=1)).sent == 0
    assert count(SmsLogEntry) == 0
    assert messaging.deliver_due(now=MORNING).sent == 1


def test_quiet_hours_come_from_the_settings(app, world, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_QUIET_HOURS", "17:00-09:00")
    sms_consent(world)
    remind(DUE)
    assert reminders()[0].next_attempt_at == datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 09:00 CST


def test_an_unsent_reminder_expires_when_the_next_one_is_due(world):
    sms_consent(world)
    remind(DUE)
    next_due = DUE + timedelta(days=1)
    remind(next_due)
    run = messaging.deliver_due(now=next_due)
    assert (run.sent, run.cancelled) == (1, 1)  # yesterday's is dropped, today's goes
    assert [r.status for r in reminders()] == ["cancelled", "sent"]


def test_the_reminder_job_stopped_halfway_finishes_on_the_next_run(world, monkeypatch):
    spouse = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Bo"), now=NOW)
    careplans.create_episode(Actor(world.therapist), spouse.id, {
        "title": "Neck pain", "start_date": NOW.date(), "frequency_per_week": 2, "duration_weeks": 6,
        "diagnoses": ["M54.2"], "goals": [{"description": "Turn the head"}]}, now=NOW)
    sms_consent(world)
    sms_consent(world, spouse)
    real = messaging.enqueue_sms
    calls = {"n": 0}

    def dies_on_the_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(messaging, "enqueue_sms", dies_on_the_second)
    with pytest.raises(RuntimeError):
        remind(DUE)
    db.session.rollback()
    assert len(reminders()) == 1
    monkeypatch.setattr(messaging, "enqueue_sms", real)
    assert remind(DUE).queued == 1
    assert remind(DUE).queued == 0
    assert sorted(r.patient_id for r in reminders()) == sorted([world.patient.id, spouse.id])


def test_the_delivery_job_run_twice_gives_the_same_result(world):
    sms_consent(world)
    remind(DUE)
    first = messaging.deliver_due(now=DUE)
    second = messaging.deliver_due(now=DUE)
    assert (first.sent, second.sent) == (1, 0)
    assert [(r.status, r.attempts) for r in reminders()] == [("sent", 1)]
    assert count(SmsLogEntry) == 1


def test_the_whole_day_run_twice_gives_the_same_result(world):
    """Every 5 minutes and every 30 seconds through an evening, twice over: one reminder sent."""
    sms_consent(world)
    at = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    for _ in range(2):
        moment = at
        while moment < at + timedelta(hours=3):
            remind(moment)
            messaging.deliver_due(now=moment)
            moment += timedelta(seconds=150)
    assert [(r.status, r.attempts) for r in reminders()] == [("sent", 1)]
    assert count(SmsLogEntry) == 1
