"""RTM operations on both databases: enrolment, management time (the call page's entry point),
the set-based evaluation and its lines, idempotence, alerts, the panel and the triage inbox."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import event, select

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.careplans.models import Episode, PayerSettings
from telerehab.errors import NotFound, ValidationFailed
from telerehab.extensions import db
from telerehab.jobs.models import JobCursor
from telerehab.messaging.models import OutboxMessage
from telerehab.monitoring import operations as monitoring
from telerehab.monitoring.models import ManagementTimeEntry, RtmAlert, RtmBillableLine, RtmEnrolment

from .conftest import NOW, episode_data, patient_data
from .test_messaging_support import sms_consent
from .test_monitoring_support import START, add_checkins, days_from, enrol, line_content, lines, rtm_consent

APRIL_2 = NOW.replace(month=4, day=2)


def call_minutes(world, minutes, day=date(2026, 3, 10), *, user=None, **overrides):
    data = {"service_date": day.isoformat(), "minutes": minutes, "activity": "call", "interactive": True,
            "channel": "phone", **overrides}
    return monitoring.record_management_time(Actor(user or world.therapist), world.episode.id, data,
                                             now=NOW + timedelta(days=20))


# ---------------------------------------------------------------- enrolment


def test_enrolment_needs_rtm_consent_and_the_notice(world):
    data = {"device_name": "app", "cost_sharing_notice_shown_at": NOW, "monitoring_start": START}
    with pytest.raises(ValidationFailed) as refused:
        monitoring.enrol(Actor(world.therapist), world.episode.id, data, now=NOW)
    assert "consent" in refused.value.errors
    rtm_consent(world)
    with pytest.raises(ValidationFailed) as refused:
        monitoring.enrol(Actor(world.therapist), world.episode.id, {**data, "cost_sharing_notice_shown_at": None},
                         now=NOW)
    assert set(refused.value.errors) == {"cost_sharing_notice_shown_at"}
    enrolment = monitoring.enrol(Actor(world.therapist), world.episode.id, data, now=NOW)
    assert (enrolment.status, enrolment.monitored_system, enrolment.setup_date) == ("active", "musculoskeletal", None)
    with pytest.raises(ValidationFailed):
        monitoring.enrol(Actor(world.therapist), world.episode.id, data, now=NOW)


def test_one_active_monitoring_per_patient(world):
    enrol(world)
    second = accounts_episode(world)
    with pytest.raises(ValidationFailed) as refused:
        monitoring.enrol(Actor(world.therapist), second.id, {
            "device_name": "app", "cost_sharing_notice_shown_at": NOW, "monitoring_start": START}, now=NOW)
    assert "another episode" in refused.value.errors["episode"][0]


def accounts_episode(world):
    from telerehab.careplans import operations as careplans

    return careplans.create_episode(Actor(world.therapist), world.patient.id,
                                    episode_data(title="Left shoulder", diagnoses=["M75.112"]), now=NOW)


def test_other_clinics_and_assistants_cannot_enrol(world):
    rtm_consent(world)
    data = {"device_name": "app", "cost_sharing_notice_shown_at": NOW}
    with pytest.raises(NotFound):
        monitoring.enrol(Actor(world.other_therapist), world.episode.id, data, now=NOW)
    with pytest.raises(Exception, match="permission"):
        monitoring.enrol(Actor(world.assistant), world.episode.id, data, now=NOW)


def test_opting_out_stops_monitoring_and_keeps_the_data(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 25))
    monitoring.end_monitoring(Actor(world.therapist), world.episode.id,
                              {"reason": "opted_out", "end_date": date(2026, 3, 20)}, now=NOW + timedelta(days=20))
    monitoring.evaluate(now=APRIL_2)
    by_slot = {line.slot: line for line in lines()}
    device = by_slot["device"]
    assert by_slot["management"].status == "not_billable" and "0 minutes" in by_slot["management"].reason
    assert device.evidence["count"] == 19 and device.code == "98977" and device.service_date == date(2026, 3, 20)
    assert db.session.scalar(select(RtmEnrolment.status)) == "opted_out"


# ---------------------------------------------------------------- management time


def test_record_management_time_for_the_call_page(world):
    enrol(world)
    entry = call_minutes(world, 12, linked_visit_id=None, note="went over pain log")
    assert (entry.minutes, entry.staff_role, entry.interactive, entry.channel) == (12, "therapist", True, "phone")
    entry = call_minutes(world, 5, user=world.assistant, activity="message", interactive=False, channel=None)
    assert entry.staff_role == "assistant"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"service_date": "2026-13-01"}, "service_date"),
    ({"service_date": "2026-03-01"}, "service_date"),  # before monitoring started
    ({"service_date": "2026-09-01"}, "service_date"),  # in the future
    ({"minutes": 0}, "minutes"), ({"minutes": "12"}, "minutes"), ({"minutes": 601}, "minutes"),
    ({"activity": "lunch"}, "activity"), ({"interactive": "yes"}, "interactive"),
    ({"channel": "pigeon"}, "channel"), ({"channel": None}, "channel"),
    ({"interactive": False, "channel": "phone"}, "channel"),
    ({"linked_visit_id": 999}, "linked_visit_id"),
])
def test_bad_time_entries_name_the_field(world, overrides, field):
    enrol(world)
    data = {"service_date": "2026-03-10", "minutes": 12, "activity": "call", "interactive": True, "channel": "phone",
            **overrides}
    with pytest.raises(ValidationFailed) as refused:
        monitoring.record_management_time(Actor(world.therapist), world.episode.id, data, now=NOW + timedelta(days=20))
    assert field in refused.value.errors
    assert db.session.scalar(select(ManagementTimeEntry.id)) is None


def test_time_cannot_be_logged_for_an_episode_not_enrolled(world):
    with pytest.raises(ValidationFailed) as refused:
        call_minutes(world, 12)
    assert "not enrolled" in refused.value.errors["episode"][0]


def test_the_timer_logs_its_minutes(world):
    enrol(world)
    monitoring.start_timer(Actor(world.therapist), world.episode.id, now=NOW)
    entry = monitoring.stop_timer(Actor(world.therapist), world.episode.id,
                                  {"activity": "data_review", "interactive": False},
                                  now=NOW + timedelta(minutes=7, seconds=5))
    assert entry.minutes == 8 and entry.service_date == date(2026, 3, 2)
    with pytest.raises(ValidationFailed):
        monitoring.stop_timer(Actor(world.therapist), world.episode.id, {"activity": "data_review",
                                                                          "interactive": False}, now=NOW)


def test_a_timer_left_running_is_discarded_not_logged(world):
    enrol(world)
    monitoring.start_timer(Actor(world.assistant), world.episode.id, now=NOW)
    with pytest.raises(ValidationFailed) as refused:
        monitoring.stop_timer(Actor(world.assistant), world.episode.id, {"activity": "data_review",
                                                                          "interactive": False},
                              now=NOW + timedelta(hours=11))
    assert "10 hours" in refused.value.errors["timer"][0]
    assert monitoring.running_timer(Actor(world.assistant)) is None
    assert db.session.scalar(select(ManagementTimeEntry.id)) is None


def test_a_voided_entry_no_longer_counts(world):
    enrol(world)
    entry = call_minutes(world, 25)
    monitoring.evaluate(now=APRIL_2)
    assert next(line for line in lines() if line.slot == "management").code == "98980"
    monitoring.void_management_time(Actor(world.therapist), entry.id, now=APRIL_2)
    monitoring.evaluate(now=APRIL_2)
    management = next(line for line in lines() if line.slot == "management")
    assert (management.status, management.code) == ("not_billable", None)
    with pytest.raises(NotFound):
        monitoring.void_management_time(Actor(world.other_therapist), entry.id, now=APRIL_2)


def test_fewer_minutes_withdraw_an_add_on_unit(world):
    enrol(world)
    call_minutes(world, 30)
    extra = call_minutes(world, 15, day=date(2026, 3, 11))
    monitoring.evaluate(now=APRIL_2)
    assert [line.code for line in lines() if line.period_key == "2026-03"] == ["98981", "98980"]
    monitoring.void_management_time(Actor(world.therapist), extra.id, now=APRIL_2)
    monitoring.evaluate(now=APRIL_2)
    addon = next(line for line in lines() if line.slot == "addon:1")
    assert addon.status == "not_billable" and addon.reason.startswith("no longer earned")


def test_payer_settings_become_the_policy():
    settings = PayerSettings(organisation_id=1, payer_type="medicare", rtm_setup_min_days=16,
                             rtm_setup_rebill="once_per_patient", rtm_async_message_is_interactive=True,
                             rtm_addon_unit_cap=2, rtm_addon_needs_own_interaction=True,
                             rtm_device_dos="last_data_day", rtm_management_dos="threshold_met_date",
                             rtm_setup_dos="threshold_met_date", rtm_cq_attribution="therapist_first",
                             rtm_rpm_overlap="allow", rtm_place_of_service="10", kx_threshold_cents=100)
    policy = monitoring.policy_of(settings)
    assert policy.as_evidence() == {
        "setup_min_days": 16, "setup_rebill": "once_per_patient", "async_message_is_interactive": True,
        "addon_unit_cap": 2, "addon_needs_own_interaction": True, "device_dos": "last_data_day",
        "management_dos": "threshold_met_date", "setup_dos": "threshold_met_date",
        "cq_attribution": "therapist_first", "rpm_overlap": "allow", "kx_threshold_cents": 100,
        "place_of_service": "10"}
    assert monitoring.policy_of(None) == monitoring.RtmPolicy()


def test_a_second_episode_bills_setup_again_once_the_first_is_discharged(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 5))
    episode = db.session.get(Episode, world.episode.id)
    episode.status, episode.discharge_date = "discharged", date(2026, 3, 10)
    db.session.commit()
    monitoring.evaluate(now=NOW.replace(day=12))
    second = accounts_episode(world)
    monitoring.enrol(Actor(world.therapist), second.id, {
        "device_name": "app", "cost_sharing_notice_shown_at": NOW, "monitoring_start": date(2026, 3, 12),
        "setup_date": date(2026, 3, 12), "setup_minutes": 20, "setup_by_id": world.therapist.id}, now=NOW.replace(day=12))
    add_checkins(world.patient, second, days_from(date(2026, 3, 12), 3))
    monitoring.evaluate(now=NOW.replace(day=20))
    setups = [(line.episode_id, line.code, line.status) for line in lines() if line.slot == "setup"]
    assert setups == [(world.episode.id, "98975", "ready"), (second.id, "98975", "ready")]
    data_days = next(line for line in lines() if line.slot == "device" and line.episode_id == world.episode.id)
    assert data_days.evidence["count"] == 5 and data_days.period_end == date(2026, 3, 10)


# ---------------------------------------------------------------- evaluation and lines


def test_evaluation_writes_closed_periods_and_months(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 16) + days_from(date(2026, 4, 1), 3))
    call_minutes(world, 15)
    call_minutes(world, 10, day=date(2026, 3, 12), user=world.assistant)
    run = monitoring.evaluate(now=APRIL_2)
    assert run.enrolments == 1 and run.inserted == 3
    by_slot = {(line.slot, line.period_key): line for line in lines()}
    assert set(by_slot) == {("setup", "episode"), ("device", "2026-03-02"), ("management", "2026-03")}
    setup = by_slot["setup", "episode"]
    assert (setup.code, setup.service_date, setup.modifiers, setup.status) == ("98975", START, "GP", "ready")
    device = by_slot["device", "2026-03-02"]
    assert (device.code, device.service_date, device.evidence["count"]) == ("98977", date(2026, 3, 31), 16)
    management = by_slot["management", "2026-03"]
    # 25 minutes, 10 of them by the assistant: CQ; the place of service is the payer's.
    assert (management.code, management.modifiers, management.place_of_service) == ("98980", "GP CQ", "11")
    assert [e["minutes"] for e in management.evidence["entries"]] == [15, 10]


def test_running_twice_writes_nothing_more(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 20))
    call_minutes(world, 25)
    monitoring.evaluate(now=APRIL_2)
    before = line_content()
    again = monitoring.evaluate(now=APRIL_2)
    assert (again.enrolments, again.evaluated, again.inserted, again.updated) == (1, 0, 0, 0)  # inputs unchanged
    assert line_content() == before
    add_checkins(world.patient, world.episode, [date(2026, 4, 1)])  # the running period: nothing written changes
    assert monitoring.evaluate(now=APRIL_2).evaluated == 0
    monitoring.record_rpm_period(Actor(world.therapist), world.patient.id,
                                 {"start_date": date(2026, 6, 1), "end_date": date(2026, 6, 30)}, now=NOW)
    forced = monitoring.evaluate(now=APRIL_2)  # a changed context is evaluated again, to the same lines
    assert (forced.evaluated, forced.inserted, forced.updated, forced.unchanged) == (1, 0, 0, 3)
    assert line_content() == before


def test_a_late_upload_updates_a_ready_line_but_never_a_line_billing_took(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 15))
    monitoring.evaluate(now=APRIL_2)
    device = next(line for line in lines() if line.slot == "device")
    assert device.code == "98985"
    add_checkins(world.patient, world.episode, [date(2026, 3, 30)])  # an offline phone catching up
    assert monitoring.evaluate(now=APRIL_2).updated == 1
    device = next(line for line in lines() if line.slot == "device")
    assert device.code == "98977" and device.evidence["count"] == 16
    device.status = "approved"
    db.session.commit()
    add_checkins(world.patient, world.episode, [date(2026, 3, 31)])
    run = monitoring.evaluate(now=APRIL_2)
    assert run.frozen == 1 and next(line for line in lines() if line.slot == "device").evidence["count"] == 16


def test_check_ins_staff_entered_for_the_patient_make_no_data_day(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 2))
    add_checkins(world.patient, world.episode, days_from(START + timedelta(days=2), 14), self_reported=False)
    monitoring.evaluate(now=APRIL_2)
    device = next(line for line in lines() if line.slot == "device")
    assert (device.code, device.evidence["count"]) == ("98985", 2)  # 16 check-in days, 2 of them data days


def test_the_database_refuses_a_second_line_for_a_slot(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 16))
    monitoring.evaluate(now=APRIL_2)
    line = next(line for line in lines() if line.slot == "device")
    copy = RtmBillableLine(**{c.key: getattr(line, c.key) for c in RtmBillableLine.__table__.columns if c.key != "id"})
    copy.code = "98985"
    db.session.add(copy)
    with pytest.raises(Exception, match=r"(?i)unique"):
        db.session.flush()
    db.session.rollback()


def test_discharge_ends_monitoring_and_cuts_the_period(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 30))  # data after discharge too
    episode = db.session.get(Episode, world.episode.id)
    episode.status, episode.discharge_date = "discharged", date(2026, 3, 12)
    db.session.commit()
    run = monitoring.evaluate(now=NOW.replace(day=14))
    assert run.ended == 1
    device = next(line for line in lines() if line.slot == "device")
    assert (device.code, device.evidence["count"], device.service_date) == ("98985", 11, date(2026, 3, 12))


def test_rpm_overlap_holds_the_line(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 20))
    monitoring.record_rpm_period(Actor(world.therapist), world.patient.id,
                                 {"start_date": date(2026, 3, 20), "end_date": date(2026, 4, 19)}, now=NOW)
    monitoring.evaluate(now=APRIL_2)
    device = next(line for line in lines() if line.slot == "device")
    assert device.status == "held" and "RPM" in device.reason


def test_payer_policy_changes_the_decision(world):
    enrol(world)
    db.session.add(PayerSettings(organisation_id=world.clinic.organisation_id, payer_type="medicare",
                                 rtm_setup_min_days=16, rtm_device_dos="last_data_day"))
    db.session.commit()
    add_checkins(world.patient, world.episode, days_from(START, 10))
    monitoring.evaluate(now=APRIL_2)
    by_slot = {line.slot: line for line in lines()}
    assert "setup" not in by_slot  # threshold of 16 not met, and the enrolment runs on
    assert by_slot["device"].service_date == date(2026, 3, 11)


def test_kx_from_the_year_to_date_amount(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 3))
    monitoring.record_therapy_amount(Actor(world.billing), world.patient.id,
                                     {"year": 2026, "amount_cents": 260_000, "as_of": START}, now=NOW)
    monitoring.evaluate(now=APRIL_2)
    assert {line.slot: line.modifiers for line in lines() if line.code} == {"setup": "GP KX", "device": "GP KX"}


def test_evaluation_is_set_based(world, app):
    """The number of queries does not grow with the number of enrolled patients."""
    from telerehab.careplans import operations as careplans

    from .conftest import patient_data

    def queries_for_run() -> int:
        statements = []
        listener = lambda *args: statements.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            monitoring.evaluate(now=APRIL_2)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(statements)

    def forget_lines():
        db.session.execute(RtmBillableLine.__table__.delete())
        db.session.execute(RtmEnrolment.__table__.update().values(evaluated_signature=None))
        db.session.commit()

    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 20))
    forget_lines()
    one = queries_for_run()
    for n in range(4):
        patient = accounts.create_patient(Actor(world.therapist), patient_data(first_name=f"P{n}"), now=NOW)
        episode = careplans.create_episode(Actor(world.therapist), patient.id, episode_data(), now=NOW)
        enrol(world, episode=episode)
        add_checkins(patient, episode, days_from(START, 5 + n))
    forget_lines()
    assert queries_for_run() == one


# ---------------------------------------------------------------- dirty patients, alerts


def test_the_dirty_job_evaluates_patients_with_new_check_ins(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 16))
    run = monitoring.evaluate_dirty(now=APRIL_2)
    assert run.enrolments == 1 and run.inserted == 3  # set-up, device, and the month without minutes
    later = APRIL_2 + timedelta(minutes=5)
    assert monitoring.evaluate_dirty(now=later).enrolments == 0  # the cursor moved past them
    call_minutes(world, 30)
    assert monitoring.evaluate_dirty(now=later + timedelta(days=30)).enrolments == 1



def test_the_nightly_run_counts_only_where_data_days_may_have_changed(world, monkeypatch):
    """Days are counted for an enrolment never evaluated, one whose period closed since, and one
    with check-ins no run has read yet; the others are judged by their signature alone."""
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 20))
    other = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Other"), now=NOW)
    other_episode = careplans.create_episode(Actor(world.therapist), other.id, episode_data(), now=NOW)
    enrol(world, episode=other_episode)
    add_checkins(other, other_episode, days_from(START, 5))
    counted = []
    real = monitoring._count_days
    monkeypatch.setattr(monitoring, "_count_days", lambda subjects, *args, **kwargs: (
        counted.append(sorted(s.row.patient_id for s in subjects)), real(subjects, *args, **kwargs))[1])

    monitoring.evaluate(now=APRIL_2)  # never evaluated: both counted; the check-ins are read
    monitoring.evaluate(now=APRIL_2 + timedelta(hours=1))  # nothing new, nothing closed
    add_checkins(other, other_episode, [date(2026, 3, 20)])  # a late upload into a closed period
    late = monitoring.evaluate(now=APRIL_2 + timedelta(hours=2))
    monitoring.evaluate(now=APRIL_2 + timedelta(hours=3))  # read by the run before
    assert counted == [sorted([world.patient.id, other.id]), [], [other.id], []]
    assert (late.evaluated, late.updated) == (1, 1)  # the device line now counts 6 days
    assert [line.evidence["count"] for line in lines() if line.slot == "device" and line.patient_id == other.id] == [6]

    counted.clear()
    monitoring.evaluate(now=NOW.replace(month=5, day=2))  # the second period closed for both
    assert counted == [sorted([world.patient.id, other.id])]


def test_the_check_in_cursor_moves_forward_only(world):
    """The nightly run and the every-few-minutes job share it, and either may finish first."""
    monitoring._move_cursor(monitoring.CHECKINS_CURSOR, 40, NOW)
    monitoring._move_cursor(monitoring.CHECKINS_CURSOR, 25, NOW)
    db.session.commit()
    cursor = db.session.get(JobCursor, monitoring.CHECKINS_CURSOR)
    assert cursor.position == 40
    monitoring._move_cursor(monitoring.CHECKINS_CURSOR, 41, NOW)
    db.session.commit()
    db.session.refresh(cursor)
    assert cursor.position == 41

def test_alerts_are_raised_once(world):
    enrol(world, baseline_pain=2)
    add_checkins(world.patient, world.episode, [date(2026, 3, 5)], pain=4)
    add_checkins(world.patient, world.episode, [date(2026, 3, 6)], pain=8)
    now = NOW.replace(day=7, hour=18)
    run = monitoring.raise_alerts(now=now)
    assert run.raised == 2
    kinds = sorted((a.kind, a.day) for a in db.session.scalars(select(RtmAlert)))
    assert kinds == [("pain_high", date(2026, 3, 6)), ("pain_rise", date(2026, 3, 6))]
    assert monitoring.raise_alerts(now=now).raised == 0
    silence = monitoring.raise_alerts(now=NOW.replace(day=10, hour=18))
    assert silence.raised == 1


# ---------------------------------------------------------------- the panel and triage


def test_rtm_status_shows_the_period_minutes_and_forecast(world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 5))
    call_minutes(world, 12)
    status = monitoring.rtm_status(Actor(world.assistant), world.episode.id, now=NOW.replace(day=21))
    assert len(status.timeline) == 30 and sum(d.has_data for d in status.timeline) == 5
    low, high = status.day_forecast
    assert (low.needed, high.needed, high.days_left) == (0, 11, 11)
    assert (status.minutes.minutes, status.minutes.to_next_tier, status.minutes.interactive_done) == (12, 8, True)
    with pytest.raises(NotFound):
        monitoring.rtm_status(Actor(world.other_therapist), world.episode.id, now=NOW)


def test_triage_lists_at_risk_patients_and_the_reminder_is_sent_once(world):
    enrol(world)
    sms_consent(world)
    add_checkins(world.patient, world.episode, days_from(START, 8))
    items = monitoring.triage(Actor(world.therapist), now=NOW.replace(day=21, hour=15))
    [item] = items
    assert item.at_risk and item.interactive_missing and item.patient.id == world.patient.id
    assert monitoring.triage(Actor(world.other_therapist), now=NOW.replace(day=21)) == []
    assert monitoring.send_reminder(Actor(world.therapist), world.patient.id, now=NOW.replace(day=21, hour=15))
    assert monitoring.send_reminder(Actor(world.therapist), world.patient.id, now=NOW.replace(day=21, hour=16))
    assert len(list(db.session.scalars(select(OutboxMessage)))) == 1
    accounts.revoke_consent(Actor(world.therapist), world.patient.consents[0].id, note=None, now=NOW)
