"""RTM periods, data days, management minutes and the decisions they lead to
(telerehab/monitoring/rules.py), as tables of cases at every edge the issue names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from telerehab.billing.rules import MonitoredSystem, RpmOverlap, RtmPolicy, SetupRebill
from telerehab.exercises.rules import local_date_of
from telerehab.monitoring import rules
from telerehab.monitoring.rules import (
    Activity,
    AlertKind,
    AlertThresholds,
    Channel,
    Context,
    Enrolment,
    Status,
    TimeEntry,
)

START = date(2026, 3, 2)  # period 1: Mar 2 - Mar 31 (it spans no month end); period 2: Apr 1 - Apr 30
MSK = MonitoredSystem.MUSCULOSKELETAL


def enrolment(**overrides) -> Enrolment:
    values = {"id": 1, "episode_id": 10, "system": MSK, "monitoring_start": START, "monitoring_end": None,
              "setup_date": START, "setup_by_assistant": False}
    return Enrolment(**{**values, **overrides})


def days_from(first: date, count: int, step: int = 1) -> list[date]:
    return [first + timedelta(days=i * step) for i in range(count)]


def entry(id, day, minutes, *, activity=Activity.DATA_REVIEW, assistant=False, interactive=False, channel=None,
          visit=None) -> TimeEntry:
    return TimeEntry(id, day, minutes, activity, assistant, interactive, channel, visit)


def call(id, day, minutes, **kw) -> TimeEntry:
    return entry(id, day, minutes, activity=Activity.CALL, interactive=True, channel=Channel.PHONE, **kw)


def decisions(slot_prefix, *, days=(), entries=(), today=date(2026, 6, 1), context=None, open_too=False, **enrol):
    """The decisions of one kind (slot prefix); running periods and months only when asked."""
    result = rules.evaluate(enrolment(**enrol), days=days, entries=entries, today=today,
                            context=context or Context())
    return [d for d in result.decisions if d.slot.startswith(slot_prefix) and (open_too or d.written)]


# ---------------------------------------------------------------- periods and months


def test_periods_are_consecutive_30_days_cut_at_the_end_of_monitoring():
    found = rules.periods(START, None, date(2026, 4, 15))
    assert [(p.start, p.end, p.cut) for p in found] == [
        (date(2026, 3, 2), date(2026, 3, 31), False), (date(2026, 4, 1), date(2026, 4, 30), False)]
    cut = rules.periods(START, date(2026, 4, 10), date(2026, 6, 1))
    assert [(p.start, p.end, p.cut) for p in cut] == [
        (date(2026, 3, 2), date(2026, 3, 31), False), (date(2026, 4, 1), date(2026, 4, 10), True)]
    assert rules.periods(START, None, START - timedelta(days=1)) == []


def test_a_period_spanning_two_months_counts_days_of_both():
    start = date(2026, 3, 20)  # Mar 20 - Apr 18
    days = days_from(date(2026, 3, 25), 8) + days_from(date(2026, 4, 5), 8)
    device = decisions("device", days=days, monitoring_start=start, setup_date=start, today=date(2026, 4, 19))[0]
    assert (device.code, device.evidence["count"], device.service_date) == ("98977", 16, date(2026, 4, 18))


def test_months_are_clipped_to_the_monitored_days():
    found = rules.months(START, date(2026, 4, 10), date(2026, 6, 1))
    assert [(m.key, m.start, m.end, m.cut) for m in found] == [
        ("2026-03", date(2026, 3, 2), date(2026, 3, 31), False), ("2026-04", date(2026, 4, 1), date(2026, 4, 10), True)]
    over_new_year = rules.months(date(2026, 12, 20), None, date(2027, 1, 3))
    assert [m.key for m in over_new_year] == ["2026-12", "2027-01"]


@pytest.mark.parametrize("start", [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 2), date(2026, 12, 15)])
@pytest.mark.parametrize("end_offset", [None, -3, 0, 1, 29, 30, 45, 59, 60, 200])
def test_closed_windows_by_arithmetic_agree_with_the_windows(start, end_offset):
    end = None if end_offset is None else start + timedelta(days=end_offset)
    for today in (start - timedelta(days=1), *(start + timedelta(days=n) for n in range(0, 130, 1))):
        expected = (sum(p.closed(today) for p in rules.periods(start, end, today)),
                    sum(m.closed(today) for m in rules.months(start, end, today)))
        assert rules.closed_windows(start, end, today) == expected, (start, end, today)


# ---------------------------------------------------------------- device supply per period


@pytest.mark.parametrize(("count", "status", "code"), [
    (0, Status.NOT_BILLABLE, None), (1, Status.NOT_BILLABLE, None), (2, Status.READY, "98985"),
    (15, Status.READY, "98985"), (16, Status.READY, "98977"), (30, Status.READY, "98977"),
])
def test_device_code_edges(count, status, code):
    days = days_from(START, count)
    [first] = decisions("device", days=days, today=date(2026, 4, 2))
    assert (first.status, first.code, first.evidence["count"]) == (status, code, count)
    assert first.evidence["data_days"] == [d.isoformat() for d in days]
    assert first.reason.startswith(f"{count} data day")
    if code:
        assert first.modifiers == ("GP",) and first.service_date == date(2026, 3, 31)


def test_ten_check_ins_on_one_day_are_one_data_day():
    [device] = decisions("device", days=[START] * 10 + [START + timedelta(days=1)], today=date(2026, 4, 1))[:1]
    assert device.evidence["count"] == 2 and device.code == "98985"


def test_a_running_period_is_open_and_not_written():
    [device] = decisions("device", days=days_from(START, 20), today=date(2026, 3, 31), open_too=True)
    assert device.status == Status.OPEN and not device.written and device.code is None


def test_discharge_mid_period_cuts_it_and_ignores_data_after_it():
    discharge = date(2026, 3, 20)
    days = days_from(START, 30)  # data every day, also after discharge
    [device] = decisions("device", days=days, monitoring_end=discharge, today=date(2026, 3, 21))
    assert device.evidence["count"] == 19 and device.code == "98977"  # Mar 2..20
    assert device.service_date == discharge and device.evidence["cut_at_end"] is True
    assert max(device.evidence["data_days"]) == discharge.isoformat()
    still = decisions("device", days=days, monitoring_end=discharge, today=discharge, open_too=True)
    assert still[0].status == Status.OPEN  # the discharge day itself can still bring data


@pytest.mark.parametrize(("system", "low", "high"), [
    (MonitoredSystem.RESPIRATORY, "98984", "98976"), (MonitoredSystem.CBT, "98986", "98978")])
def test_other_systems_use_their_codes(system, low, high):
    assert decisions("device", days=days_from(START, 2), system=system, today=date(2026, 4, 1))[0].code == low
    assert decisions("device", days=days_from(START, 16), system=system, today=date(2026, 4, 1))[0].code == high


# ---------------------------------------------------------------- 98975 set-up


@pytest.mark.parametrize(("count", "status"), [(0, Status.OPEN), (1, Status.OPEN), (2, Status.READY)])
def test_setup_code_once_the_threshold_is_met(count, status):
    [setup] = decisions("setup", days=days_from(START + timedelta(days=3), count), today=date(2026, 3, 20),
                        open_too=True)
    assert setup.status == status
    if status == Status.READY:
        assert (setup.code, setup.service_date, setup.period_key) == ("98975", START, "episode")
        assert setup.evidence["threshold_met_on"] == "2026-03-06"


def test_setup_threshold_is_a_policy():
    context = Context(policy=RtmPolicy(setup_min_days=16))
    [setup] = decisions("setup", days=days_from(START, 15), context=context, open_too=True)
    assert setup.status == Status.OPEN
    assert "16 data days" in setup.reason
    [setup] = decisions("setup", days=days_from(START, 16), context=context)
    assert setup.status == Status.READY and setup.evidence["threshold_met_on"] == "2026-03-17"


def test_setup_needs_a_recorded_session_and_an_assistant_session_carries_cq():
    [setup] = decisions("setup", days=days_from(START, 5), setup_date=None, monitoring_end=date(2026, 4, 1))
    assert setup.status == Status.NOT_BILLABLE and "no set-up" in setup.reason
    [setup] = decisions("setup", days=days_from(START, 5), setup_by_assistant=True)
    assert setup.modifiers == ("GP", "CQ")


@pytest.mark.parametrize(("rebill", "status"), [(SetupRebill.PER_EPISODE, Status.READY),
                                               (SetupRebill.ONCE_PER_PATIENT, Status.NOT_BILLABLE)])
def test_a_second_episode_bills_setup_again_unless_the_payer_says_once(rebill, status):
    context = Context(policy=RtmPolicy(setup_rebill=rebill), setup_billed_on_episode=9)
    [setup] = decisions("setup", days=days_from(START, 5), episode_id=10, context=context)
    assert setup.status == status
    if status == Status.NOT_BILLABLE:
        assert setup.evidence["billed_on_episode"] == 9


# ---------------------------------------------------------------- management time per month

MARCH = date(2026, 3, 10)


@pytest.mark.parametrize(("minutes", "codes"), [
    (9, []), (10, ["98979"]), (19, ["98979"]), (20, ["98980"]), (39, ["98980"]), (40, ["98980", "98981"]),
    (59, ["98980", "98981"]), (60, ["98980", "98981", "98981"]),
])
def test_management_minute_edges(minutes, codes):
    found = decisions("", entries=[call(1, MARCH, 5), entry(2, MARCH, minutes - 5)], today=date(2026, 4, 1))
    months = [d for d in found if d.period_key == "2026-03" and d.slot != "device"]
    billed = [d.code for d in months if d.status == Status.READY]
    assert billed == codes
    if not codes:
        assert months[0].status == Status.NOT_BILLABLE and f"{minutes} minutes" in months[0].reason
    for line in months:
        assert line.evidence["minutes"] == minutes and [e["id"] for e in line.evidence["entries"]] == [1, 2]


def test_minutes_do_not_carry_over_to_the_next_month():
    entries = [call(1, date(2026, 3, 30), 6), call(2, date(2026, 4, 2), 6)]
    found = decisions("management", entries=entries, today=date(2026, 5, 1))
    assert [(d.period_key, d.status, d.evidence["minutes"]) for d in found] == [
        ("2026-03", Status.NOT_BILLABLE, 6), ("2026-04", Status.NOT_BILLABLE, 6)]


@pytest.mark.parametrize(("entries", "policy", "billable"), [
    ([entry(1, MARCH, 25)], RtmPolicy(), False),  # no communication at all
    ([entry(1, MARCH, 20), entry(2, MARCH, 5, activity=Activity.MESSAGE, interactive=True)], RtmPolicy(), False),
    ([entry(1, MARCH, 20), entry(2, MARCH, 5, activity=Activity.MESSAGE, interactive=True)],
     RtmPolicy(async_message_is_interactive=True), True),
    ([entry(1, MARCH, 20), entry(2, MARCH, 5, activity=Activity.MESSAGE)],  # a message not sent live
     RtmPolicy(async_message_is_interactive=True), False),
    ([entry(1, MARCH, 20), call(2, MARCH, 5)], RtmPolicy(), True),
    ([entry(1, MARCH, 20), entry(2, MARCH, 5, activity=Activity.VIDEO, interactive=True, channel=Channel.VIDEO)],
     RtmPolicy(), True),
    # the only call was inside a separately billed visit: neither its minutes nor its contact count
    ([entry(1, MARCH, 25), call(2, MARCH, 30, visit=7)], RtmPolicy(), False),
])
def test_interactive_communication_is_required(entries, policy, billable):
    [head, *_] = decisions("management", entries=entries, today=date(2026, 4, 1), context=Context(policy=policy))
    assert (head.status == Status.READY) is billable
    if not billable:
        assert "interactive communication" in head.reason


def test_time_counted_toward_a_billed_visit_is_excluded():
    entries = [call(1, MARCH, 15), entry(2, MARCH, 10, visit=7)]
    [head] = decisions("management", entries=entries, today=date(2026, 4, 1))
    assert head.code == "98979" and head.evidence["minutes"] == 15
    assert head.evidence["excluded"][0]["id"] == 2 and "visit 7" in head.evidence["excluded"][0]["why"]


@pytest.mark.parametrize(("assistant_minutes", "modifiers"), [(0, ("GP",)), (2, ("GP",)), (3, ("GP", "CQ"))])
def test_assistant_share_at_and_past_ten_percent(assistant_minutes, modifiers):
    entries = [call(1, MARCH, 20 - assistant_minutes)]
    if assistant_minutes:
        entries.append(entry(2, MARCH + timedelta(days=1), assistant_minutes, assistant=True))
    [head] = decisions("management", entries=entries, today=date(2026, 4, 1))
    assert head.code == "98980" and head.modifiers == modifiers


def test_cq_is_decided_per_block_of_the_add_on():
    # PT 30 minutes first, then PTA 12: 98980 [PT 20], 98981 [PT 10 + PTA 12 -> CQ].
    entries = [call(1, MARCH, 30), entry(2, MARCH + timedelta(days=2), 12, assistant=True)]
    found = decisions("", entries=entries, today=date(2026, 4, 1))
    lines = {d.slot: d for d in found if d.period_key == "2026-03" and d.slot != "device"}
    assert lines["management"].modifiers == ("GP",)
    assert lines["addon:1"].code == "98981" and lines["addon:1"].modifiers == ("GP", "CQ")
    assert lines["addon:1"].evidence["assistant_minutes"] == 12


def test_add_on_cap_and_per_unit_interaction_are_policies():
    entries = [call(1, MARCH, 50), entry(2, MARCH, 50)]
    codes = lambda policy: [d.code for d in decisions(  # noqa: E731
        "", entries=entries, today=date(2026, 4, 1), context=Context(policy=policy)) if d.period_key == "2026-03"
        and d.code and d.slot != "device"]
    assert codes(RtmPolicy()) == ["98980", "98981", "98981", "98981", "98981"]
    assert codes(RtmPolicy(addon_unit_cap=2)) == ["98980", "98981", "98981"]
    assert codes(RtmPolicy(addon_needs_own_interaction=True)) == ["98980"]


def test_management_date_of_service():
    entries = [call(1, date(2026, 3, 5), 12), entry(2, date(2026, 3, 9), 10)]
    [head] = decisions("management", entries=entries, today=date(2026, 4, 1))
    assert head.service_date == date(2026, 3, 31)
    from telerehab.billing.rules import ManagementDos
    policy = RtmPolicy(management_dos=ManagementDos.THRESHOLD_MET_DATE)
    [head] = decisions("management", entries=entries, today=date(2026, 4, 1), context=Context(policy=policy))
    assert head.service_date == date(2026, 3, 9)  # 20 minutes reached on the 9th
    [head] = decisions("management", entries=entries, monitoring_end=date(2026, 3, 20), today=date(2026, 4, 1))
    assert head.service_date == date(2026, 3, 20)  # discharged that month


# ---------------------------------------------------------------- RPM overlap, KX


@pytest.mark.parametrize(("overlap", "policy", "status"), [
    ((date(2026, 3, 25), date(2026, 4, 24)), RtmPolicy(), Status.HELD),
    ((date(2026, 4, 1), date(2026, 4, 30)), RtmPolicy(), Status.READY),  # after period 1
    ((date(2026, 3, 25), date(2026, 4, 24)), RtmPolicy(rpm_overlap=RpmOverlap.ALLOW), Status.READY),
])
def test_rpm_overlap_is_held_for_review(overlap, policy, status):
    context = Context(policy=policy, rpm_periods=(overlap,))
    [first, _] = decisions("device", days=days_from(START, 20), today=date(2026, 5, 1), context=context)
    assert first.status == status and first.code == "98977"
    if overlap[0] <= first.period_end:
        assert first.evidence["rpm_overlap"] == [[overlap[0].isoformat(), overlap[1].isoformat()]]
    [head] = [d for d in decisions("management", entries=[call(1, MARCH, 25)], today=date(2026, 4, 1),
                                   context=context)]
    assert head.status == status


def test_kx_uses_the_amount_for_the_year_of_service():
    context = Context(ytd_therapy_cents={2026: 250_000})
    [head] = decisions("management", entries=[call(1, MARCH, 25)], today=date(2026, 4, 1), context=context)
    assert head.modifiers == ("GP", "KX")
    context = Context(ytd_therapy_cents={2025: 900_000})
    [head] = decisions("management", entries=[call(1, MARCH, 25)], today=date(2026, 4, 1), context=context)
    assert head.modifiers == ("GP",)


# ---------------------------------------------------------------- timezones at the date line


def test_a_period_closes_on_the_patients_own_date():
    instant = datetime(2026, 3, 31, 11, 0, tzinfo=UTC)
    kiritimati, pago_pago = local_date_of(instant, "Pacific/Kiritimati"), local_date_of(instant, "Pacific/Pago_Pago")
    assert (kiritimati, pago_pago) == (date(2026, 4, 1), date(2026, 3, 31))
    days = days_from(START, 16)
    assert decisions("device", days=days, today=kiritimati)[0].status == Status.READY
    assert decisions("device", days=days, today=pago_pago, open_too=True)[0].status == Status.OPEN


def test_a_check_in_counts_on_the_local_date_across_the_date_line():
    instant = datetime(2026, 3, 31, 10, 30, tzinfo=UTC)  # Mar 31 in UTC
    day = local_date_of(instant, "Pacific/Kiritimati")  # already Apr 1 there: period 2
    found = decisions("device", days=[*days_from(START, 15), day], today=date(2026, 5, 1))
    assert [d.evidence["count"] for d in found] == [15, 1]
    assert found[0].code == "98985"  # not 98977: the 16th day is in the next period


# ---------------------------------------------------------------- forecast


def test_day_forecast_counts_days_still_needed_and_days_left():
    period = rules.periods(START, None, date(2026, 3, 21))[0]
    days = days_from(START, 10)
    low, high = rules.day_forecast(MSK, days, period, date(2026, 3, 21))
    assert (low.needed, high.needed, high.days_left, high.reachable) == (0, 6, 11, True)
    assert rules.at_risk(high, slack_days=3) is False
    assert rules.at_risk(rules.day_forecast(MSK, days, period, date(2026, 3, 25))[1], slack_days=3) is True
    late = rules.day_forecast(MSK, days, period, date(2026, 3, 28))[1]
    assert (late.days_left, late.reachable) == (4, False)
    with_today = rules.day_forecast(MSK, [*days, date(2026, 3, 28)], period, date(2026, 3, 28))[1]
    assert (with_today.needed, with_today.days_left) == (5, 3)  # today's data counted, today not left


def test_minute_forecast():
    month = rules.months(START, None, date(2026, 3, 15))[0]
    tally = rules.tally_month([call(1, MARCH, 12)], month, RtmPolicy())
    forecast = rules.minute_forecast(tally, RtmPolicy())
    assert (forecast.minutes, forecast.next_tier, forecast.to_next_tier, forecast.interactive_done) == (12, 20, 8, True)
    assert forecast.codes_if_closed_now == [("98979", 1)]
    tally = rules.tally_month([entry(1, MARCH, 45)], month, RtmPolicy())
    assert rules.minute_forecast(tally, RtmPolicy()).codes_if_closed_now == []


# ---------------------------------------------------------------- alerts


@pytest.mark.parametrize(("pain", "baseline", "kinds"), [
    ({date(2026, 3, 5): 6}, None, []),
    ({date(2026, 3, 5): 7}, None, [AlertKind.PAIN_HIGH]),
    ({date(2026, 3, 5): 4, date(2026, 3, 6): 4}, 3, []),  # 1 above
    ({date(2026, 3, 5): 5, date(2026, 3, 6): 4}, 3, []),  # only one day 2 above
    ({date(2026, 3, 5): 5, date(2026, 3, 7): 5}, 3, []),  # not consecutive
    ({date(2026, 3, 5): 5, date(2026, 3, 6): 5}, 3, [AlertKind.PAIN_RISE]),
    ({date(2026, 3, 5): 5, date(2026, 3, 6): 8}, 3, [AlertKind.PAIN_HIGH, AlertKind.PAIN_RISE]),
])
def test_pain_alerts(pain, baseline, kinds):
    assert [a.kind for a in rules.pain_alerts(pain, baseline, AlertThresholds())] == kinds


def test_pain_alert_thresholds_are_the_clinics():
    thresholds = AlertThresholds(pain_at_or_above=5, rise_over_baseline=3, rise_days=3)
    assert [a.kind for a in rules.pain_alerts({date(2026, 3, 5): 5}, None, thresholds)] == [AlertKind.PAIN_HIGH]
    three = {date(2026, 3, 4): 5, date(2026, 3, 5): 5, date(2026, 3, 6): 5}
    assert [a.day for a in rules.pain_alerts(three, 2, thresholds) if a.kind == AlertKind.PAIN_RISE] == [
        date(2026, 3, 6)]


@pytest.mark.parametrize(("last", "today", "raised"), [
    (date(2026, 3, 10), date(2026, 3, 13), False),  # 11, 12 missed
    (date(2026, 3, 10), date(2026, 3, 14), True),  # 11, 12, 13 missed
    (None, START + timedelta(days=2), False),
    (None, START + timedelta(days=3), True),
])
def test_no_checkin_alert(last, today, raised):
    alert = rules.no_checkin_alert(last, START, today, AlertThresholds())
    assert (alert is not None) is raised
    if alert:
        assert alert.kind == AlertKind.NO_CHECKIN and alert.detail["days_without"] == 3


# ---------------------------------------------------------------- incremental evaluation


def test_incremental_evaluation_decides_only_what_changed():
    days = days_from(START, 20) + days_from(date(2026, 4, 1), 10)
    entries = [call(1, MARCH, 25), entry(2, date(2026, 4, 3), 12)]
    today = date(2026, 5, 2)
    full = rules.evaluate(enrolment(), days=days, entries=entries, today=today, context=Context())
    first = rules.evaluate(enrolment(), days=days, entries=entries, today=today, context=Context(), known={})
    written = [d for d in full.decisions if d.written]
    assert first.decisions == written  # with nothing known, the same decisions (running windows left out)
    known = dict(first.inputs)
    assert set(known) == {("setup", "episode"), ("device", "2026-03-02"), ("device", "2026-04-01"),
                          ("management", "2026-03"), ("management", "2026-04")}
    again = rules.evaluate(enrolment(), days=days, entries=entries, today=today, context=Context(), known=known)
    assert again.decisions == [] and again.inputs == known
    late = rules.evaluate(enrolment(), days=[*days, date(2026, 4, 20)], entries=entries, today=today,
                          context=Context(), known=known)  # a late upload into period 2
    assert [(d.slot, d.period_key) for d in late.decisions] == [("device", "2026-04-01")]
    voided = rules.evaluate(enrolment(), days=days, entries=entries[:1], today=today, context=Context(), known=known)
    assert [(d.slot, d.period_key) for d in voided.decisions] == [("management", "2026-04")]
    other_payer = Context(policy=RtmPolicy(kx_threshold_cents=1))
    assert len(rules.evaluate(enrolment(), days=days, entries=entries, today=today, context=other_payer,
                              known=known).decisions) == len(written)
