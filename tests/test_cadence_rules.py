"""Table tests for the visit rules in telerehab.careplans.rules: status transitions and cadence.

Expected dates, weekdays and UTC offsets are hand-written literals, not recomputed with the
code's own arithmetic. America/Chicago is UTC-6 (CST) until 2026-03-08 02:00, UTC-5 (CDT) until
2026-11-01 02:00, then UTC-6 again. Plans are written compactly: E evaluation, T treatment,
P progress, D discharge; c in the clinic, v on video.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telerehab.careplans.rules import (
    FINAL_VISIT_STATUSES,
    VISIT_TRANSITIONS,
    CadencePolicy,
    CadenceProposal,
    CadenceRequest,
    Modality,
    VisitFlag,
    VisitKind,
    VisitStatus,
    cadence_request_problems,
    propose_cadence,
    transition_problem,
)

CHICAGO = ZoneInfo("America/Chicago")
CLINIC = Modality.IN_CLINIC
VIDEO = Modality.VIDEO
S, CI, IP, C, X, NS = (
    VisitStatus.SCHEDULED,
    VisitStatus.CHECKED_IN,
    VisitStatus.IN_PROGRESS,
    VisitStatus.COMPLETED,
    VisitStatus.CANCELLED,
    VisitStatus.NO_SHOW,
)

# ---------------------------------------------------------------- status transitions

CLINIC_ALLOWED = {(S, CI), (S, X), (S, NS), (CI, IP), (CI, X), (CI, NS), (IP, C)}
VIDEO_ALLOWED = CLINIC_ALLOWED | {(S, IP)}
ALLOWED = {CLINIC: CLINIC_ALLOWED, VIDEO: VIDEO_ALLOWED}


def _expected_problem(current: VisitStatus, new: VisitStatus, modality: Modality) -> str | None:
    if (current, new) in ALLOWED[modality]:
        return None
    if current == new:
        return f"The visit is already {current.value}."
    if current in {C, X, NS}:
        return f"The visit is {current.value}, which is final."
    if modality == CLINIC and (current, new) == (S, IP):
        return "Check the patient in before starting a clinic visit."
    return f"A visit cannot go from {current.value} to {new.value}."


@pytest.mark.parametrize(
    ("modality", "current", "new"),
    [(m, a, b) for m in Modality for a in VisitStatus for b in VisitStatus],
    ids=lambda v: v.value,
)
def test_every_status_pair(modality, current, new):
    assert transition_problem(current, new, modality=modality) == _expected_problem(current, new, modality)


def test_transition_table_as_data():
    for modality, allowed in ALLOWED.items():
        table = VISIT_TRANSITIONS[modality]
        assert set(table) == set(VisitStatus)
        assert {(a, b) for a, targets in table.items() for b in targets} == allowed


def test_final_statuses_lead_nowhere():
    assert {C, X, NS} == FINAL_VISIT_STATUSES
    for modality in Modality:
        for status in FINAL_VISIT_STATUSES:
            assert VISIT_TRANSITIONS[modality][status] == frozenset()


# ---------------------------------------------------------------- cadence: helpers

WEEKDAY_HOURS = {weekday: ((time(8), time(17)),) for weekday in range(5)}  # Mon-Fri 08:00-17:00

BASE = CadenceRequest(
    start_date=date(2026, 3, 2),  # a Monday
    frequency_per_week=3,
    duration_weeks=4,
    certification_end=None,
    recertification_recorded=False,
    modality_pattern=(CLINIC, VIDEO, VIDEO),
    preferred_weekdays=(0, 2, 4),
    preferred_start=time(9),
    visit_minutes=45,
    clinic_timezone="America/Chicago",
    working_hours=WEEKDAY_HOURS,
)

KIND_LETTER = {
    VisitKind.INITIAL_EVALUATION: "E",
    VisitKind.TREATMENT: "T",
    VisitKind.PROGRESS: "P",
    VisitKind.DISCHARGE: "D",
}
MODALITY_LETTER = {CLINIC: "c", VIDEO: "v"}
FLAG_MARK = {
    VisitFlag.LATER_THAN_PREFERRED_TIME: "later",
    VisitFlag.NOT_A_PREFERRED_DAY: "other-day",
    VisitFlag.BEYOND_CERTIFICATION: "beyond-cert",
}


def request(**changes) -> CadenceRequest:
    return replace(BASE, **changes)


def chicago(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHICAGO)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def plan(proposal: CadenceProposal) -> str:
    return " ".join(KIND_LETTER[v.kind] + MODALITY_LETTER[v.modality] for v in proposal.visits)


def when(proposal: CadenceProposal) -> list[str]:
    """Each visit's clinic-local start, with its flags in brackets."""
    rows = []
    for visit in proposal.visits:
        row = f"{visit.start.astimezone(CHICAGO):%a %Y-%m-%d %H:%M}"
        if visit.flags:
            row += " [" + ",".join(FLAG_MARK[f] for f in visit.flags) + "]"
        rows.append(row)
    return rows


def busy(start: datetime, end: datetime) -> tuple[tuple[datetime, datetime], ...]:
    return ((start, end),)


# ---------------------------------------------------------------- cadence: kinds and modalities

# The evaluation is day 1 of the first reporting period, a progress visit closes each period on
# its 10th treatment day (visits 10, 20, ...), the last visit is the discharge.
@pytest.mark.parametrize(("frequency", "weeks", "expected"), [
    (1, 1, "Ec"),
    (1, 2, "Ec Dc"),
    (2, 1, "Ec Dc"),
    (3, 1, "Ec Tc Dc"),
    (5, 2, "Ec Tc Tv Tv Tc Tv Tv Tc Tv Dc"),
    (1, 11, "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pc Dc"),
    (3, 4, "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pc Tv Dc"),
    (5, 4, "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pc Tv Tc Tv Tv Tc Tv Tv Tc Tv Dc"),
    (3, 7, "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pc Tv Tc Tv Tv Tc Tv Tv Tc Tv Pc Dc"),
    (5, 5, "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pc Tv Tc Tv Tv Tc Tv Tv Tc Tv Pc Tv Tc Tv Tv Dc"),
], ids=lambda v: str(v) if isinstance(v, int) else None)
def test_visit_kinds_by_plan_size(frequency, weeks, expected):
    proposal = propose_cadence(request(
        frequency_per_week=frequency, duration_weeks=weeks, preferred_weekdays=(0, 1, 2, 3, 4)
    ))
    assert plan(proposal) == expected
    assert len(proposal.visits) == frequency * weeks
    assert proposal.problems == ()


@pytest.mark.parametrize(("pattern", "expected"), [
    ((CLINIC,), "Ec Tc Tc Tc Tc Dc"),
    ((VIDEO,), "Ec Tv Tv Tv Tv Dc"),
    ((CLINIC, VIDEO), "Ec Tc Tv Tc Tv Dc"),
    ((VIDEO, CLINIC, CLINIC), "Ec Tv Tc Tc Tv Dc"),
    ((VIDEO, VIDEO, VIDEO, CLINIC), "Ec Tv Tv Tv Tc Dc"),
    # Longer than the 4 treatment visits: the rest is cut.
    ((VIDEO, VIDEO, VIDEO, CLINIC, CLINIC, CLINIC, VIDEO, VIDEO, CLINIC), "Ec Tv Tv Tv Tc Dc"),
], ids=["clinic", "video", "alternate", "video-clinic-clinic", "exactly-the-plan", "longer-than-plan"])
def test_modality_pattern_covers_treatment_visits(pattern, expected):
    proposal = propose_cadence(request(duration_weeks=2, modality_pattern=pattern))
    assert plan(proposal) == expected


@pytest.mark.parametrize(("policy", "expected"), [
    (CadencePolicy(), "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pc Tv Dc"),
    (CadencePolicy(initial_evaluation_in_clinic=False), "Ev Tc Tv Tv Tc Tv Tv Tc Tv Pc Tv Dc"),
    (CadencePolicy(progress_in_clinic=False), "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pv Tv Dc"),
    (CadencePolicy(discharge_in_clinic=False), "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pc Tv Dv"),
    (CadencePolicy(progress_every_treatment_visits=5), "Ec Tc Tv Tv Pc Tc Tv Tv Tc Pc Tv Dc"),
    (CadencePolicy(progress_every_treatment_visits=2), "Ec Pc Tc Pc Tv Pc Tv Pc Tc Pc Tv Dc"),
    (CadencePolicy(progress_every_treatment_visits=12), "Ec Tc Tv Tv Tc Tv Tv Tc Tv Tv Tc Dc"),
], ids=["defaults", "evaluation-on-video", "progress-on-video", "discharge-on-video",
        "progress-every-5", "progress-every-2", "progress-period-longer-than-plan"])
def test_policy_settings(policy, expected):
    assert plan(propose_cadence(request(policy=policy))) == expected


# ---------------------------------------------------------------- cadence: placement in one week

MON_WED_FRI = ["Mon 2026-03-02 09:00", "Wed 2026-03-04 09:00", "Fri 2026-03-06 09:00"]
ALL_DAY_MONDAY = busy(chicago(2026, 3, 2, 8), chicago(2026, 3, 2, 17))


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, MON_WED_FRI),
    ({"frequency_per_week": 1}, ["Mon 2026-03-02 09:00"]),
    ({"frequency_per_week": 2}, ["Mon 2026-03-02 09:00", "Wed 2026-03-04 09:00"]),
    ({"frequency_per_week": 4}, [
        "Mon 2026-03-02 09:00", "Tue 2026-03-03 09:00 [other-day]", "Wed 2026-03-04 09:00",
        "Fri 2026-03-06 09:00",
    ]),
    ({"frequency_per_week": 5}, [
        "Mon 2026-03-02 09:00", "Tue 2026-03-03 09:00 [other-day]", "Wed 2026-03-04 09:00",
        "Thu 2026-03-05 09:00 [other-day]", "Fri 2026-03-06 09:00",
    ]),
    ({"frequency_per_week": 5, "preferred_weekdays": (0, 1, 2, 3, 4)}, [
        "Mon 2026-03-02 09:00", "Tue 2026-03-03 09:00", "Wed 2026-03-04 09:00",
        "Thu 2026-03-05 09:00", "Fri 2026-03-06 09:00",
    ]),
    # More preferred days than the frequency: the first ones of the week.
    ({"frequency_per_week": 2, "preferred_weekdays": (0, 1, 2, 3, 4)}, [
        "Mon 2026-03-02 09:00", "Tue 2026-03-03 09:00",
    ]),
    ({"preferred_weekdays": (4, 0, 2)}, MON_WED_FRI),
    # Week 1 runs from the start date: Thursday to Wednesday.
    ({"start_date": date(2026, 3, 5)}, [
        "Fri 2026-03-06 09:00", "Mon 2026-03-09 09:00", "Wed 2026-03-11 09:00",
    ]),
    ({"preferred_weekdays": ()}, [
        "Mon 2026-03-02 09:00 [other-day]", "Tue 2026-03-03 09:00 [other-day]",
        "Wed 2026-03-04 09:00 [other-day]",
    ]),
    ({"preferred_weekdays": (5,), "frequency_per_week": 1,
      "working_hours": {**WEEKDAY_HOURS, 5: ((time(9), time(13)),)}}, ["Sat 2026-03-07 09:00"]),
    # Preferred Saturday, but the therapist does not work Saturdays.
    ({"preferred_weekdays": (5,), "frequency_per_week": 1}, ["Mon 2026-03-02 09:00 [other-day]"]),
    ({"closures": frozenset({date(2026, 3, 4)})}, [
        "Mon 2026-03-02 09:00", "Tue 2026-03-03 09:00 [other-day]", "Fri 2026-03-06 09:00",
    ]),
    ({"patient_visit_dates": frozenset({date(2026, 3, 4)})}, [
        "Mon 2026-03-02 09:00", "Tue 2026-03-03 09:00 [other-day]", "Fri 2026-03-06 09:00",
    ]),
    ({"patient_visit_dates": frozenset({date(2026, 3, 4)}),
      "policy": CadencePolicy(one_visit_per_patient_per_day=False)}, MON_WED_FRI),
    ({"working_hours": {0: ((time(8), time(17)),), 1: ((time(8), time(17)),), 4: ((time(8), time(17)),)}}, [
        "Mon 2026-03-02 09:00", "Tue 2026-03-03 09:00 [other-day]", "Fri 2026-03-06 09:00",
    ]),
    ({"therapist_busy": busy(chicago(2026, 3, 2, 9), chicago(2026, 3, 2, 9, 30))}, [
        "Mon 2026-03-02 09:30 [later]", "Wed 2026-03-04 09:00", "Fri 2026-03-06 09:00",
    ]),
    # Half-open intervals: the visit may start when the busy time ends, or end when it starts.
    ({"therapist_busy": busy(chicago(2026, 3, 2, 8), chicago(2026, 3, 2, 9))}, MON_WED_FRI),
    ({"therapist_busy": busy(chicago(2026, 3, 2, 9, 45), chicago(2026, 3, 2, 11))}, MON_WED_FRI),
    ({"therapist_busy": busy(chicago(2026, 3, 2, 9, 44), chicago(2026, 3, 2, 9, 46))}, [
        "Mon 2026-03-02 10:00 [later]", "Wed 2026-03-04 09:00", "Fri 2026-03-06 09:00",
    ]),
    # Busy times in UTC: 15:00Z-16:00Z is 09:00-10:00 CST.
    ({"therapist_busy": busy(utc(2026, 3, 2, 15), utc(2026, 3, 2, 16))}, [
        "Mon 2026-03-02 10:00 [later]", "Wed 2026-03-04 09:00", "Fri 2026-03-06 09:00",
    ]),
    # Monday fully booked: the other preferred days, then the first free working day.
    ({"therapist_busy": ALL_DAY_MONDAY}, [
        "Tue 2026-03-03 09:00 [other-day]", "Wed 2026-03-04 09:00", "Fri 2026-03-06 09:00",
    ]),
    ({"therapist_busy": (*ALL_DAY_MONDAY, *busy(chicago(2026, 3, 3, 8), chicago(2026, 3, 3, 16, 15)))}, [
        "Tue 2026-03-03 16:15 [later,other-day]", "Wed 2026-03-04 09:00", "Fri 2026-03-06 09:00",
    ]),
    ({"preferred_start": time(7)}, [
        "Mon 2026-03-02 08:00 [later]", "Wed 2026-03-04 08:00 [later]", "Fri 2026-03-06 08:00 [later]",
    ]),
    ({"preferred_start": time(16, 15)}, [
        "Mon 2026-03-02 16:15", "Wed 2026-03-04 16:15", "Fri 2026-03-06 16:15",
    ]),
    ({"preferred_start": time(11, 30), "working_hours": {
        d: ((time(8), time(12)), (time(13), time(17))) for d in range(5)}}, [
        "Mon 2026-03-02 13:00 [later]", "Wed 2026-03-04 13:00 [later]", "Fri 2026-03-06 13:00 [later]",
    ]),
    ({"working_hours": {d: ((time(9), time(9, 45)),) for d in range(5)}}, MON_WED_FRI),
], ids=[
    "defaults", "frequency-1", "frequency-2", "frequency-4", "frequency-5", "frequency-5-all-preferred",
    "frequency-below-preferred-days", "preferred-days-unordered", "start-midweek", "no-preferred-days",
    "saturday-worked", "saturday-not-worked", "closure", "patient-visit-that-day",
    "patient-visit-that-day-allowed", "therapist-off-wednesday", "busy-forces-later-time",
    "busy-ends-at-start", "busy-starts-at-end", "busy-inside-visit", "busy-in-utc",
    "busy-all-day-monday", "busy-until-late-tuesday", "preferred-before-hours",
    "visit-ends-at-closing", "lunch-break", "hours-exactly-fit",
])
def test_placement_in_one_week(changes, expected):
    proposal = propose_cadence(request(duration_weeks=1, **changes))
    assert when(proposal) == expected
    assert proposal.problems == ()


@pytest.mark.parametrize("changes", [
    {"preferred_start": time(16, 30)},  # 16:30 + 45 min ends after 17:00; only later times are tried
    {"working_hours": {d: ((time(8), time(8, 30)),) for d in range(5)}},
    {"working_hours": {}},
    {"closures": frozenset(date(2026, 3, 2) + timedelta(days=n) for n in range(7))},
    {"therapist_busy": busy(chicago(2026, 3, 2, 0), chicago(2026, 3, 7, 0))},
], ids=["preferred-too-late", "hours-too-short", "no-working-hours", "closed-all-week", "busy-all-week"])
def test_nothing_fits(changes):
    proposal = propose_cadence(request(duration_weeks=1, **changes))
    assert proposal.visits == ()
    assert proposal.problems == tuple(
        f"Could not place visit {n} of 3 in week 1 (2026-03-02 to 2026-03-08)." for n in (1, 2, 3)
    )


def test_two_free_days_for_three_visits():
    proposal = propose_cadence(request(duration_weeks=1, working_hours={0: WEEKDAY_HOURS[0], 4: WEEKDAY_HOURS[4]}))
    assert when(proposal) == ["Mon 2026-03-02 09:00", "Fri 2026-03-06 09:00"]
    assert plan(proposal) == "Ec Dc"
    assert proposal.problems == ("Could not place visit 3 of 3 in week 1 (2026-03-02 to 2026-03-08).",)


def test_a_lost_week_renumbers_the_kinds_over_the_visits_placed():
    proposal = propose_cadence(request(
        duration_weeks=2, therapist_busy=busy(chicago(2026, 3, 9, 0), chicago(2026, 3, 14, 0))
    ))
    assert when(proposal) == MON_WED_FRI
    assert plan(proposal) == "Ec Tc Dc"
    assert proposal.problems == tuple(
        f"Could not place visit {n} of 6 in week 2 (2026-03-09 to 2026-03-15)." for n in (4, 5, 6)
    )


def test_proposed_visits_do_not_overlap_each_other_or_the_busy_times():
    proposal = propose_cadence(request(
        frequency_per_week=5,
        preferred_weekdays=(0, 1, 2, 3, 4),
        therapist_busy=busy(chicago(2026, 3, 3, 9, 30), chicago(2026, 3, 3, 10)),
    ))
    starts = [v.start for v in proposal.visits]
    assert starts == sorted(starts)
    for earlier, later in pairwise(proposal.visits):
        assert earlier.end <= later.start
    assert "Tue 2026-03-03 10:00 [later]" in when(proposal)


# ---------------------------------------------------------------- cadence: calendar edges


@pytest.mark.parametrize(("changes", "expected"), [
    ({"start_date": date(2026, 1, 29), "duration_weeks": 2}, [
        "Fri 2026-01-30 09:00", "Mon 2026-02-02 09:00", "Wed 2026-02-04 09:00",
        "Fri 2026-02-06 09:00", "Mon 2026-02-09 09:00", "Wed 2026-02-11 09:00",
    ]),
    ({"start_date": date(2026, 2, 26)}, [
        "Fri 2026-02-27 09:00", "Mon 2026-03-02 09:00", "Wed 2026-03-04 09:00",
    ]),
    ({"start_date": date(2028, 2, 28), "frequency_per_week": 2, "preferred_weekdays": (1, 3)}, [
        "Tue 2028-02-29 09:00", "Thu 2028-03-02 09:00",
    ]),
    ({"start_date": date(2026, 4, 30), "preferred_weekdays": (3, 4, 0)}, [
        "Thu 2026-04-30 09:00", "Fri 2026-05-01 09:00", "Mon 2026-05-04 09:00",
    ]),
    ({"start_date": date(2026, 12, 30)}, [
        "Wed 2026-12-30 09:00", "Fri 2027-01-01 09:00", "Mon 2027-01-04 09:00",
    ]),
    ({"start_date": date(2026, 12, 30), "closures": frozenset({date(2027, 1, 1)})}, [
        "Wed 2026-12-30 09:00", "Thu 2026-12-31 09:00 [other-day]", "Mon 2027-01-04 09:00",
    ]),
], ids=["january-into-february", "february-into-march", "leap-day", "april-into-may",
        "year-end", "year-end-closed-new-year"])
def test_month_and_year_ends(changes, expected):
    assert when(propose_cadence(request(**{"duration_weeks": 1, **changes}))) == expected


@pytest.mark.parametrize(("start_date", "expected_utc"), [
    # CST before the change on Sunday 2026-03-08, CDT after: 09:00 local moves from 15:00Z to 14:00Z.
    (date(2026, 3, 2), [
        utc(2026, 3, 2, 15), utc(2026, 3, 4, 15), utc(2026, 3, 6, 15),
        utc(2026, 3, 9, 14), utc(2026, 3, 11, 14), utc(2026, 3, 13, 14),
    ]),
    # CDT before the change on Sunday 2026-11-01, CST after: 09:00 local moves from 14:00Z to 15:00Z.
    (date(2026, 10, 26), [
        utc(2026, 10, 26, 14), utc(2026, 10, 28, 14), utc(2026, 10, 30, 14),
        utc(2026, 11, 2, 15), utc(2026, 11, 4, 15), utc(2026, 11, 6, 15),
    ]),
], ids=["march-spring-forward", "november-fall-back"])
def test_daylight_saving_keeps_the_local_wall_time(start_date, expected_utc):
    proposal = propose_cadence(request(start_date=start_date, duration_weeks=2))
    assert [v.start for v in proposal.visits] == expected_utc
    assert all(v.start.tzinfo is UTC and v.end.tzinfo is UTC for v in proposal.visits)
    assert all(v.end - v.start == timedelta(minutes=45) for v in proposal.visits)
    assert {v.start.astimezone(CHICAGO).time() for v in proposal.visits} == {time(9)}


SUNDAY_NIGHT = {6: ((time(1), time(5)),)}


@pytest.mark.parametrize(("start_date", "preferred_start", "minutes", "expected_start", "flags"), [
    # 02:00-02:59 does not exist on 2026-03-08: the first later step that exists is 03:00 CDT.
    (date(2026, 3, 8), time(2), 30, utc(2026, 3, 8, 8), (VisitFlag.LATER_THAN_PREFERRED_TIME,)),
    (date(2026, 3, 8), time(1), 30, utc(2026, 3, 8, 7), ()),
    # A visit across the change lasts its real length: 01:30 CST + 60 min is 03:30 CDT.
    (date(2026, 3, 8), time(1, 30), 60, utc(2026, 3, 8, 7, 30), ()),
    # 01:30 happens twice on 2026-11-01: the first one, still CDT (UTC-5).
    (date(2026, 11, 1), time(1, 30), 30, utc(2026, 11, 1, 6, 30), ()),
    (date(2026, 11, 1), time(3), 30, utc(2026, 11, 1, 9), ()),
], ids=["march-skipped-hour", "march-before-change", "march-across-change", "november-repeated-hour",
        "november-after-change"])
def test_daylight_saving_night(start_date, preferred_start, minutes, expected_start, flags):
    proposal = propose_cadence(request(
        start_date=start_date, frequency_per_week=1, duration_weeks=1, preferred_weekdays=(6,),
        preferred_start=preferred_start, visit_minutes=minutes, working_hours=SUNDAY_NIGHT,
    ))
    (visit,) = proposal.visits
    assert (visit.start, visit.end - visit.start, visit.flags) == (expected_start, timedelta(minutes=minutes), flags)


# ---------------------------------------------------------------- cadence: certification

LAST_THREE = [
    ("10", "progress", "2026-03-23"),
    ("11", "treatment", "2026-03-25"),
    ("12", "discharge", "2026-03-27"),
]


def test_visits_after_the_certification_end_are_not_proposed():
    proposal = propose_cadence(request(certification_end=date(2026, 3, 20)))
    assert plan(proposal) == "Ec Tc Tv Tv Tc Tv Tv Tc Tv"
    assert when(proposal)[-1] == "Fri 2026-03-20 09:00"
    assert proposal.problems == tuple(
        f"Visit {n} ({kind}) on {day} falls after the certification end (2026-03-20): "
        "not proposed; record a recertification to plan it."
        for n, kind, day in LAST_THREE
    )


def test_a_visit_on_the_certification_end_is_certified():
    proposal = propose_cadence(request(certification_end=date(2026, 3, 23)))
    assert plan(proposal) == "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pc"
    assert len(proposal.problems) == 2


@pytest.mark.parametrize("changes", [
    {"recertification_recorded": True},
    {"policy": CadencePolicy(allow_beyond_certification=True)},
], ids=["recertification-recorded", "clinic-allows"])
def test_visits_after_the_certification_end_are_flagged(changes):
    proposal = propose_cadence(request(certification_end=date(2026, 3, 20), **changes))
    assert plan(proposal) == "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pc Tv Dc"
    assert [v.flags for v in proposal.visits] == [()] * 9 + [(VisitFlag.BEYOND_CERTIFICATION,)] * 3
    assert proposal.problems == tuple(
        f"Visit {n} ({kind}) on {day} falls after the certification end (2026-03-20): proposed and flagged."
        for n, kind, day in LAST_THREE
    )


def test_without_a_certification_the_90_day_limit_applies():
    # Mondays from 2026-03-02: day 90 is 2026-05-30, so the 14th Monday (2026-06-01) is beyond it.
    proposal = propose_cadence(request(frequency_per_week=1, duration_weeks=14, preferred_weekdays=(0,)))
    assert when(proposal)[-1] == "Mon 2026-05-25 09:00"
    assert plan(proposal) == "Ec Tc Tv Tv Tc Tv Tv Tc Tv Pc Tv Tc Tv"
    assert proposal.problems == (
        "Visit 14 (discharge) on 2026-06-01 falls after the 90-day certification limit (2026-05-30): "
        "not proposed; record a recertification to plan it.",
    )


def test_the_90_day_limit_counts_from_the_evaluation_not_the_episode_start():
    # Start Thursday 2026-03-05, Wednesdays only: the evaluation is Wednesday 2026-03-11, so day 90
    # is 2026-06-08 (from the start date it would be 2026-06-02) and the 13th Wednesday is certifiable.
    proposal = propose_cadence(request(
        start_date=date(2026, 3, 5), frequency_per_week=1, duration_weeks=13, preferred_weekdays=(2,)
    ))
    assert when(proposal)[0] == "Wed 2026-03-11 09:00"
    assert when(proposal)[-1] == "Wed 2026-06-03 09:00"
    assert proposal.problems == ()


# ---------------------------------------------------------------- cadence: bad requests


@pytest.mark.parametrize(("changes", "field"), [
    ({"frequency_per_week": 0}, "frequency_per_week"),
    ({"frequency_per_week": 8}, "frequency_per_week"),
    ({"duration_weeks": 0}, "duration_weeks"),
    ({"duration_weeks": 53}, "duration_weeks"),
    ({"modality_pattern": ()}, "modality_pattern"),
    ({"modality_pattern": ("video",)}, "modality_pattern"),
    ({"preferred_weekdays": (7,)}, "preferred_weekdays"),
    ({"preferred_weekdays": (-1,)}, "preferred_weekdays"),
    ({"preferred_weekdays": (0, 0)}, "preferred_weekdays"),
    ({"preferred_start": time(9, tzinfo=UTC)}, "preferred_start"),
    ({"visit_minutes": 0}, "visit_minutes"),
    ({"visit_minutes": 24 * 60 + 1}, "visit_minutes"),
    ({"clinic_timezone": "Mars/Olympus"}, "clinic_timezone"),
    ({"clinic_timezone": ""}, "clinic_timezone"),
    ({"working_hours": {7: ((time(8), time(17)),)}}, "working_hours"),
    ({"working_hours": {0: ((time(17), time(8)),)}}, "working_hours"),
    ({"working_hours": {0: ((time(8), time(8)),)}}, "working_hours"),
    ({"therapist_busy": ((datetime(2026, 3, 2, 9), datetime(2026, 3, 2, 10)),)}, "therapist_busy"),
    ({"therapist_busy": busy(utc(2026, 3, 2, 10), utc(2026, 3, 2, 9))}, "therapist_busy"),
    ({"policy": CadencePolicy(progress_every_treatment_visits=1)}, "policy.progress_every_treatment_visits"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_requests_name_the_field(changes, field):
    bad = request(**changes)
    assert list(cadence_request_problems(bad)) == [field]
    with pytest.raises(ValueError, match=field):
        propose_cadence(bad)


@pytest.mark.parametrize("frequency", [1, 2, 3, 4, 5, 6, 7])
def test_good_frequencies_have_no_problems(frequency):
    assert cadence_request_problems(request(frequency_per_week=frequency)) == {}


# ---------------------------------------------------------------- cadence: determinism and properties


def test_the_same_request_gives_the_same_proposal_whatever_the_input_order():
    busy_times = (
        (chicago(2026, 3, 2, 9), chicago(2026, 3, 2, 10)),
        (chicago(2026, 3, 11, 8), chicago(2026, 3, 11, 17)),
        (chicago(2026, 3, 16, 9, 15), chicago(2026, 3, 16, 9, 45)),
    )
    closures = [date(2026, 3, 6), date(2026, 3, 20)]
    first = propose_cadence(request(therapist_busy=busy_times, closures=frozenset(closures)))
    again = propose_cadence(request(
        therapist_busy=tuple(reversed(busy_times)), closures=frozenset(reversed(closures))
    ))
    assert first == again
    assert len(first.visits) == 12


WEEKDAYS = st.integers(min_value=0, max_value=6)
QUARTER_HOURS = st.integers(min_value=6 * 4, max_value=19 * 4).map(lambda q: time(q // 4, q % 4 * 15))


@st.composite
def cadence_requests(draw):
    start = date(2026, 1, 1) + timedelta(days=draw(st.integers(min_value=0, max_value=400)))
    weeks = draw(st.integers(min_value=1, max_value=4))
    days = [start + timedelta(days=n) for n in range(7 * weeks)]
    hours = {}
    for weekday in draw(st.sets(WEEKDAYS, max_size=7)):
        opens = draw(st.integers(min_value=6, max_value=14))
        hours[weekday] = ((time(opens), time(opens + draw(st.integers(min_value=1, max_value=9)))),)
    busy_times = []
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        begin = datetime.combine(draw(st.sampled_from(days)), draw(QUARTER_HOURS), tzinfo=CHICAGO)
        busy_times.append((begin, begin + timedelta(minutes=draw(st.integers(min_value=5, max_value=300)))))
    return CadenceRequest(
        start_date=start,
        frequency_per_week=draw(st.integers(min_value=1, max_value=5)),
        duration_weeks=weeks,
        certification_end=None,
        recertification_recorded=False,
        modality_pattern=tuple(draw(st.lists(st.sampled_from(list(Modality)), min_size=1, max_size=4))),
        preferred_weekdays=tuple(draw(st.sets(WEEKDAYS, max_size=5))),
        preferred_start=draw(QUARTER_HOURS),
        visit_minutes=draw(st.sampled_from([30, 45, 60])),
        clinic_timezone="America/Chicago",
        working_hours=hours,
        therapist_busy=tuple(busy_times),
        patient_visit_dates=frozenset(draw(st.sets(st.sampled_from(days), max_size=4))),
        closures=frozenset(draw(st.sets(st.sampled_from(days), max_size=4))),
    )


@settings(max_examples=300, deadline=None)
@given(cadence_requests(), st.randoms(use_true_random=False))
def test_cadence_properties(cadence, shuffler: random.Random):
    proposal = propose_cadence(cadence)
    visits = proposal.visits
    # Every planned visit is either proposed or reported (28 days stay inside the 90-day limit).
    assert len(visits) + len(proposal.problems) == cadence.frequency_per_week * cadence.duration_weeks
    assert all(p.startswith("Could not place visit") for p in proposal.problems)
    local_days = [v.start.astimezone(CHICAGO).date() for v in visits]
    assert len(set(local_days)) == len(local_days)
    assert [v.start for v in visits] == sorted(v.start for v in visits)
    last_day = cadence.start_date + timedelta(days=7 * cadence.duration_weeks - 1)
    for visit, day in zip(visits, local_days, strict=True):
        local = visit.start.astimezone(CHICAGO)
        wall_end = local.replace(tzinfo=None) + timedelta(minutes=cadence.visit_minutes)
        assert visit.start.tzinfo is UTC
        assert visit.end - visit.start == timedelta(minutes=cadence.visit_minutes)
        assert cadence.start_date <= day <= last_day
        assert day not in cadence.closures and day not in cadence.patient_visit_dates
        assert any(
            datetime.combine(day, opens) <= local.replace(tzinfo=None) and wall_end <= datetime.combine(day, closes)
            for opens, closes in cadence.working_hours[day.weekday()]
        )
        assert not any(visit.start < end and begin < visit.end for begin, end in cadence.therapist_busy)
        assert local.time() >= cadence.preferred_start
        assert (local.time() != cadence.preferred_start) == (VisitFlag.LATER_THAN_PREFERRED_TIME in visit.flags)
        assert (day.weekday() not in cadence.preferred_weekdays) == (VisitFlag.NOT_A_PREFERRED_DAY in visit.flags)
    for earlier, later in pairwise(visits):
        assert earlier.end <= later.start
    if visits:
        assert visits[0].kind == VisitKind.INITIAL_EVALUATION
        assert visits[0].modality == CLINIC
    if len(visits) > 1:
        assert (visits[-1].kind, visits[-1].modality) == (VisitKind.DISCHARGE, CLINIC)
    # No reporting period runs past 10 visits.
    since_report = 0
    for visit in visits:
        since_report += 1
        assert since_report <= 10
        if visit.kind in (VisitKind.PROGRESS, VisitKind.DISCHARGE):
            since_report = 0
    busy_times = list(cadence.therapist_busy)
    shuffler.shuffle(busy_times)
    assert propose_cadence(replace(cadence, therapist_busy=tuple(busy_times))) == proposal
