"""Pure rules for episodes of care (Medicare plan of care).

Source: ../shared/reference/clinical-assessments.md §6.1 (cert_duration, cert_timing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import cycle, pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# A certification covers at most 90 calendar days counted from the first treatment (the
# evaluation included), so the last certified day is the first treatment day + 89.
MAX_CERTIFICATION_DAYS = 90
# Certification is due "as soon as possible": within 30 days of the first treatment.
CERTIFICATION_DUE_DAYS = 30


class EpisodeStatus(StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    DISCHARGED = "discharged"


class DischargeReason(StrEnum):
    GOALS_MET = "goals_met"
    PLATEAU = "plateau"
    PATIENT_CHOICE = "patient_choice"
    NON_ATTENDANCE = "non_attendance"
    REFERRED_ON = "referred_on"
    MEDICAL = "medical"
    OTHER = "other"


# ICD-10-CM: a letter, a digit, then a digit or letter (C4A, M1A, Z3A), optionally a dot and one
# to four further characters. The dot is stored; 837P HI segments strip it on export.
_ICD10_PATTERN = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?$")


def normalise_icd10(code: str) -> str:
    code = (code or "").strip().upper()
    if "." not in code and len(code) > 3:
        code = f"{code[:3]}.{code[3:]}"
    return code


def icd10_problem(code: str) -> str | None:
    if not _ICD10_PATTERN.match(normalise_icd10(code)):
        return f"'{code}' is not an ICD-10-CM code (e.g. M17.11 or S83.511A)."
    return None


def diagnoses_problem(codes: list[str]) -> str | None:
    """The principal diagnosis comes first; codes are unique; a claim carries at most 12."""
    if not codes:
        return "Give at least the principal diagnosis."
    if len(codes) > 12:
        return "At most 12 diagnoses fit on a claim."
    for code in codes:
        problem = icd10_problem(code)
        if problem:
            return problem
    normalised = [normalise_icd10(c) for c in codes]
    if len(set(normalised)) != len(normalised):
        return "A diagnosis is listed twice."
    return None


def last_certifiable_day(first_treatment: date) -> date:
    return first_treatment + timedelta(days=MAX_CERTIFICATION_DAYS - 1)


def certification_problems(
    *,
    start_date: date,
    certification_start: date | None,
    certification_end: date | None,
    certification_signed_on: date | None,
) -> dict[str, str]:
    """Field name -> problem, for the certification dates of one plan of care."""
    problems: dict[str, str] = {}
    if certification_start is None and certification_end is None:
        if certification_signed_on is not None:
            problems["certification_end"] = "A signed certification needs its period."
        return problems
    if certification_start is None:
        problems["certification_start"] = "Give the first day the certification covers."
        return problems
    if certification_end is None:
        problems["certification_end"] = "Give the last day the certification covers."
        return problems
    if certification_start < start_date:
        problems["certification_start"] = "The certification cannot start before the episode."
    if certification_end < certification_start:
        problems["certification_end"] = "The certification ends before it starts."
    elif certification_end > last_certifiable_day(certification_start):
        problems["certification_end"] = (
            f"A certification covers at most {MAX_CERTIFICATION_DAYS} days from the first "
            f"treatment: the last day can be {last_certifiable_day(certification_start):%Y-%m-%d}."
        )
    if certification_signed_on is not None and certification_signed_on < certification_start:
        # The plan is written at the evaluation, the first certified day: nothing to sign before it.
        problems["certification_signed_on"] = "The plan cannot be signed before it starts."
    return problems


def certification_is_late(first_treatment: date, signed_on: date | None, *, today: date) -> bool:
    """True once the 30-day window for the physician's signature has passed without one."""
    due = first_treatment + timedelta(days=CERTIFICATION_DUE_DAYS)
    if signed_on is None:
        return today > due
    return signed_on > due


def discharge_problems(
    *, status: str, start_date: date, discharge_date: date | None, discharge_reason: str | None
) -> dict[str, str]:
    problems: dict[str, str] = {}
    if status == EpisodeStatus.DISCHARGED:
        if discharge_date is None:
            problems["discharge_date"] = "A discharged episode needs its discharge date."
        if not discharge_reason:
            problems["discharge_reason"] = "A discharged episode needs a discharge reason."
    elif discharge_date is not None:
        problems["discharge_date"] = "Only a discharged episode has a discharge date."
    if discharge_date is not None and discharge_date < start_date:
        problems["discharge_date"] = "Discharge cannot come before the episode starts."
    return problems


# ---------------------------------------------------------------- visits: vocabulary and status


class Modality(StrEnum):
    IN_CLINIC = "in_clinic"
    VIDEO = "video"


class VisitKind(StrEnum):
    INITIAL_EVALUATION = "initial_evaluation"
    TREATMENT = "treatment"
    PROGRESS = "progress"
    # Never proposed by the cadence: Medicare pays a re-evaluation only for a significant
    # unanticipated change (clinical-assessments.md §6.2 re_eval_97164), not on a schedule.
    RE_EVALUATION = "re_evaluation"
    DISCHARGE = "discharge"


class VisitStatus(StrEnum):
    SCHEDULED = "scheduled"
    CHECKED_IN = "checked_in"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


# A visit that happened, was cancelled or was missed is a fact: a correction is a new visit or
# an addendum to the note, never a change of status.
FINAL_VISIT_STATUSES = frozenset({VisitStatus.COMPLETED, VisitStatus.CANCELLED, VisitStatus.NO_SHOW})
# A visit still to be held: booked, or the patient checked in.
PLANNED_VISIT_STATUSES = frozenset({VisitStatus.SCHEDULED, VisitStatus.CHECKED_IN})

_CLINIC_VISIT_TRANSITIONS: dict[VisitStatus, frozenset[VisitStatus]] = {
    VisitStatus.SCHEDULED: frozenset({VisitStatus.CHECKED_IN, VisitStatus.CANCELLED, VisitStatus.NO_SHOW}),
    VisitStatus.CHECKED_IN: frozenset({VisitStatus.IN_PROGRESS, VisitStatus.CANCELLED, VisitStatus.NO_SHOW}),
    VisitStatus.IN_PROGRESS: frozenset({VisitStatus.COMPLETED}),
    VisitStatus.COMPLETED: frozenset(),
    VisitStatus.CANCELLED: frozenset(),
    VisitStatus.NO_SHOW: frozenset(),
}

# Modality -> current status -> the statuses it may move to. A clinic patient is checked in at
# the front desk before the visit starts; a video visit may start as soon as both sides join.
VISIT_TRANSITIONS: dict[Modality, dict[VisitStatus, frozenset[VisitStatus]]] = {
    Modality.IN_CLINIC: _CLINIC_VISIT_TRANSITIONS,
    Modality.VIDEO: {
        **_CLINIC_VISIT_TRANSITIONS,
        VisitStatus.SCHEDULED: _CLINIC_VISIT_TRANSITIONS[VisitStatus.SCHEDULED] | {VisitStatus.IN_PROGRESS},
    },
}


def transition_problem(current: VisitStatus, new: VisitStatus, *, modality: Modality) -> str | None:
    """Why a visit of `modality` cannot go from `current` to `new`, or None when it may."""
    if new == current:
        return f"The visit is already {current.value}."
    if current in FINAL_VISIT_STATUSES:
        return f"The visit is {current.value}, which is final."
    if new not in VISIT_TRANSITIONS[modality][current]:
        if modality == Modality.IN_CLINIC and new == VisitStatus.IN_PROGRESS:
            return "Check the patient in before starting a clinic visit."
        return f"A visit cannot go from {current.value} to {new.value}."
    return None


# ---------------------------------------------------------------- cadence generation
#
# Sources: clinical-assessments.md §6.1 (cert_duration, recert), §6.2 (progress_report_interval,
# discharge_note) and §8.3 (which visits are in person), issue 3 (the clinic's defaults).

# Later start times are tried in these steps when the preferred time is taken.
SLOT_STEP = timedelta(minutes=15)
# A plan of care longer than a year is not a plan: it bounds the work a request can cause.
MAX_DURATION_WEEKS = 52


@dataclass(frozen=True)
class CadencePolicy:
    """A clinic's cadence rules; the defaults are issue 3's."""

    initial_evaluation_in_clinic: bool = True
    # The progress report is due on or before the 10th treatment day of each reporting period
    # (clinical-assessments.md §6.2 progress_report_interval).
    progress_every_treatment_visits: int = 10
    progress_in_clinic: bool = True
    discharge_in_clinic: bool = True
    one_visit_per_patient_per_day: bool = True
    allow_beyond_certification: bool = False


@dataclass(frozen=True)
class CadenceRequest:
    start_date: date
    frequency_per_week: int
    duration_weeks: int
    certification_end: date | None
    recertification_recorded: bool
    # Repeats over the treatment visits, in order; the surplus of a longer pattern is unused.
    modality_pattern: tuple[Modality, ...]
    preferred_weekdays: tuple[int, ...]  # 0 = Monday .. 6 = Sunday
    preferred_start: time  # local wall time in the clinic's timezone
    visit_minutes: int
    clinic_timezone: str  # IANA name
    # Weekday -> the therapist's working intervals that day, as local wall times.
    working_hours: Mapping[int, tuple[tuple[time, time], ...]]
    # Timezone-aware (start, end) intervals, half-open: a visit may start when another ends.
    therapist_busy: tuple[tuple[datetime, datetime], ...] = ()
    patient_visit_dates: frozenset[date] = frozenset()  # clinic-local dates
    closures: frozenset[date] = frozenset()
    policy: CadencePolicy = field(default_factory=CadencePolicy)


class VisitFlag(StrEnum):
    BEYOND_CERTIFICATION = "beyond_certification"
    LATER_THAN_PREFERRED_TIME = "later_than_preferred_time"
    NOT_A_PREFERRED_DAY = "not_a_preferred_day"


@dataclass(frozen=True)
class ProposedVisit:
    kind: VisitKind
    modality: Modality
    start: datetime  # aware, UTC
    end: datetime  # aware, UTC
    flags: tuple[VisitFlag, ...] = ()


@dataclass(frozen=True)
class CadenceProposal:
    visits: tuple[ProposedVisit, ...]  # in time order
    problems: tuple[str, ...]  # sentences for the therapist who previews the proposal


@dataclass(frozen=True)
class _Slot:
    day: date  # clinic-local
    start: datetime  # UTC
    end: datetime  # UTC
    flags: tuple[VisitFlag, ...]


def cadence_request_problems(request: CadenceRequest) -> dict[str, str]:
    """Field name -> problem, for a cadence request that cannot be planned as given."""
    problems: dict[str, str] = {}
    if not 1 <= request.frequency_per_week <= 7:
        problems["frequency_per_week"] = "Give 1 to 7 visits a week."
    if not 1 <= request.duration_weeks <= MAX_DURATION_WEEKS:
        problems["duration_weeks"] = f"Give a duration of 1 to {MAX_DURATION_WEEKS} weeks."
    if not request.modality_pattern:
        problems["modality_pattern"] = "Give at least one modality."
    elif any(not isinstance(m, Modality) for m in request.modality_pattern):
        problems["modality_pattern"] = "Each entry is in_clinic or video."
    weekdays = request.preferred_weekdays
    if any(not 0 <= d <= 6 for d in weekdays) or len(set(weekdays)) != len(weekdays):
        problems["preferred_weekdays"] = "Give distinct weekdays from 0 (Monday) to 6 (Sunday)."
    if request.preferred_start.tzinfo is not None:
        problems["preferred_start"] = "Give the preferred start as a local wall time, without a timezone."
    if not 1 <= request.visit_minutes <= 24 * 60:
        problems["visit_minutes"] = "A visit lasts from 1 minute to 24 hours."
    try:
        ZoneInfo(request.clinic_timezone)
    except (ValueError, ZoneInfoNotFoundError):
        problems["clinic_timezone"] = f"'{request.clinic_timezone}' is not an IANA timezone."
    for weekday, intervals in request.working_hours.items():
        if not 0 <= weekday <= 6:
            problems["working_hours"] = "Working hours are keyed by weekday, 0 (Monday) to 6 (Sunday)."
        elif any(opens >= closes for opens, closes in intervals):
            problems["working_hours"] = "Each working interval ends after it starts, on the same day."
    for busy_start, busy_end in request.therapist_busy:
        if busy_start.utcoffset() is None or busy_end.utcoffset() is None:
            problems["therapist_busy"] = "Busy intervals need timezone-aware start and end."
            break
        if busy_end <= busy_start:
            problems["therapist_busy"] = "A busy interval ends after it starts."
            break
    if request.policy.progress_every_treatment_visits < 2:
        # The evaluation is day 1 of the first reporting period, so a period has at least 2 days.
        problems["policy.progress_every_treatment_visits"] = "A reporting period has at least 2 visits."
    return problems


def propose_cadence(request: CadenceRequest) -> CadenceProposal:
    """The whole series of visits for one plan of care, and what could not be planned.

    Raises ValueError for a request with cadence_request_problems.
    """
    request_problems = cadence_request_problems(request)
    if request_problems:
        raise ValueError("; ".join(f"{name}: {text}" for name, text in request_problems.items()))
    policy = request.policy
    total = request.frequency_per_week * request.duration_weeks
    # The series never puts two of its own visits on one day, so they cannot overlap one another
    # and only the therapist's other commitments need checking. The patient's other visits block
    # a day only under the one-visit-per-day policy.
    blocked_days = set(request.closures)
    if policy.one_visit_per_patient_per_day:
        blocked_days |= request.patient_visit_dates
    problems: list[str] = []
    slots: list[_Slot] = []
    for week in range(request.duration_weeks):
        # Week 1 starts on the episode's start date, so every week can hold the full frequency.
        week_days = [request.start_date + timedelta(days=7 * week + offset) for offset in range(7)]
        for visit_in_week in range(request.frequency_per_week):
            slot = _place_visit(request, week_days, blocked_days)
            if slot is None:
                number = week * request.frequency_per_week + visit_in_week + 1
                problems.append(
                    f"Could not place visit {number} of {total} in week {week + 1} "
                    f"({week_days[0]:%Y-%m-%d} to {week_days[-1]:%Y-%m-%d})."
                )
                continue
            slots.append(slot)
            blocked_days.add(slot.day)
    # A fallback day can come before a preferred one in the same week: number visits by time.
    slots.sort(key=lambda s: s.start)
    kinds = _visit_kinds(len(slots), policy.progress_every_treatment_visits)
    modalities = _visit_modalities(kinds, request.modality_pattern, policy)

    visits: list[ProposedVisit] = []
    may_go_beyond = request.recertification_recorded or policy.allow_beyond_certification
    first_visit = slots[0].day if slots else request.start_date
    certified_until, limit = _certified_until(request.certification_end, first_visit=first_visit)
    for number, (slot, kind, modality) in enumerate(zip(slots, kinds, modalities, strict=True), start=1):
        flags = slot.flags
        if slot.day > certified_until:
            where = (
                f"Visit {number} ({kind.value.replace('_', ' ')}) on {slot.day:%Y-%m-%d} falls after "
                f"{limit} ({certified_until:%Y-%m-%d})"
            )
            if not may_go_beyond:
                problems.append(f"{where}: not proposed; record a recertification to plan it.")
                continue
            problems.append(f"{where}: proposed and flagged.")
            flags = (*flags, VisitFlag.BEYOND_CERTIFICATION)
        visits.append(ProposedVisit(kind, modality, slot.start, slot.end, flags))
    return CadenceProposal(visits=tuple(visits), problems=tuple(problems))


def _certified_until(certification_end: date | None, *, first_visit: date) -> tuple[date, str]:
    """The last day visits may fall on without a recertification, and how to name that day."""
    if certification_end is not None:
        return certification_end, "the certification end"
    # Not certified yet: no certification can cover more than 90 days from the first treatment.
    return last_certifiable_day(first_visit), f"the {MAX_CERTIFICATION_DAYS}-day certification limit"


def _place_visit(request: CadenceRequest, week_days: list[date], blocked_days: set[date]) -> _Slot | None:
    """The first free slot in the week: preferred days in date order, then any working day."""
    preferred = [d for d in week_days if d.weekday() in request.preferred_weekdays]
    others = [d for d in week_days if d.weekday() not in request.preferred_weekdays]
    for day in preferred + others:
        if day in blocked_days:
            continue
        found = _first_free_start(request, day)
        if found is None:
            continue
        wall_start, start = found
        flags: list[VisitFlag] = []
        if wall_start.time() != request.preferred_start:
            flags.append(VisitFlag.LATER_THAN_PREFERRED_TIME)
        if day not in preferred:
            flags.append(VisitFlag.NOT_A_PREFERRED_DAY)
        return _Slot(day, start, start + timedelta(minutes=request.visit_minutes), tuple(flags))
    return None


def _first_free_start(request: CadenceRequest, day: date) -> tuple[datetime, datetime] | None:
    """The preferred local time or the first later 15-minute step that fits: (wall time, UTC)."""
    return next(free_starts(
        day, from_time=request.preferred_start, minutes=request.visit_minutes,
        timezone=request.clinic_timezone, working_hours=request.working_hours, busy=request.therapist_busy,
    ), None)


def free_starts(
    day: date, *, from_time: time, minutes: int, timezone: str,
    working_hours: Mapping[int, tuple[tuple[time, time], ...]],
    busy: Iterable[tuple[datetime, datetime]],
) -> Iterator[tuple[datetime, datetime]]:
    """Every start from `from_time` on, in 15-minute steps, where a visit of `minutes` fits the
    working hours of `day` and no busy interval: (local wall time, UTC)."""
    zone = ZoneInfo(timezone)
    length = timedelta(minutes=minutes)
    busy = tuple(busy)
    working = [
        (datetime.combine(day, opens), datetime.combine(day, closes))
        for opens, closes in working_hours.get(day.weekday(), ())
    ]
    wall_start = datetime.combine(day, from_time)
    while wall_start.date() == day:
        fits_hours = any(opens <= wall_start and wall_start + length <= closes for opens, closes in working)
        # fold=0: a wall time that occurs twice (the November change) means its first occurrence.
        start = wall_start.replace(tzinfo=zone).astimezone(UTC)
        # A wall time skipped by the March change does not survive the round trip: no such slot.
        exists = start.astimezone(zone).replace(tzinfo=None) == wall_start
        if fits_hours and exists and not any(overlaps(start, start + length, b, e) for b, e in busy):
            yield wall_start, start
        wall_start += SLOT_STEP


def nearest_free_slot(
    original_start: datetime, *, minutes: int, timezone: str,
    working_hours: Mapping[int, tuple[tuple[time, time], ...]],
    busy: Iterable[tuple[datetime, datetime]], blocked_days: frozenset[date], not_before: datetime,
) -> tuple[datetime, datetime] | None:
    """The free slot in the same Monday-to-Sunday week closest in time to `original_start`, and
    not before `not_before`: (start, end) in UTC, or None. Used to offer a video visit in place
    of a cancelled clinic visit."""
    zone = ZoneInfo(timezone)
    original_day = original_start.astimezone(zone).date()
    monday = original_day - timedelta(days=original_day.weekday())
    busy = tuple(busy)
    candidates = [
        start
        for day in (monday + timedelta(days=offset) for offset in range(7))
        if day not in blocked_days
        for _, start in free_starts(day, from_time=time(0, 0), minutes=minutes, timezone=timezone,
                                    working_hours=working_hours, busy=busy)
        if start >= not_before
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda start: (abs(start - original_start), start))
    return best, best + timedelta(minutes=minutes)


def _visit_kinds(count: int, progress_every: int) -> list[VisitKind]:
    """First the evaluation, last the discharge, a progress visit closing each reporting period.

    The evaluation is day 1 of the first reporting period; a period ends with its progress visit
    on its `progress_every`-th treatment day, and the next period starts with the next visit
    (clinical-assessments.md §6.2). The discharge note is itself a progress report, so the last
    visit is the discharge even where a progress visit would fall.
    """
    kinds: list[VisitKind] = []
    days_in_period = 0
    for position in range(count):
        days_in_period += 1
        if position == 0:
            kind = VisitKind.INITIAL_EVALUATION
        elif position == count - 1:
            kind = VisitKind.DISCHARGE
        elif days_in_period == progress_every:
            kind = VisitKind.PROGRESS
            days_in_period = 0
        else:
            kind = VisitKind.TREATMENT
        kinds.append(kind)
    return kinds


def _visit_modalities(
    kinds: list[VisitKind], pattern: tuple[Modality, ...], policy: CadencePolicy
) -> list[Modality]:
    """Treatment visits follow the pattern; the others go to the clinic when the policy says so
    and are on video otherwise."""
    in_clinic = {
        VisitKind.INITIAL_EVALUATION: policy.initial_evaluation_in_clinic,
        VisitKind.PROGRESS: policy.progress_in_clinic,
        VisitKind.DISCHARGE: policy.discharge_in_clinic,
    }
    repeating = cycle(pattern)
    return [
        next(repeating)
        if kind == VisitKind.TREATMENT
        else (Modality.IN_CLINIC if in_clinic[kind] else Modality.VIDEO)
        for kind in kinds
    ]


# ---------------------------------------------------------------- the 8-minute rule
#
# Source: rtm-billing-2026.md §4.3 (Medicare Claims Processing Manual ch.5 §20.2).

# Untimed codes bill 1 unit whatever their minutes, and their minutes do not count toward the
# timed total: the evaluations and the re-evaluation (§4.3; clinical-assessments.md §6.3, §6.4).
UNTIMED_CODES = frozenset({"97161", "97162", "97163", "97164"})
UNIT_MINUTES = 15
MINIMUM_TIMED_MINUTES = 8


@dataclass(frozen=True)
class ServiceMinutes:
    code: str  # CPT
    minutes: int
    assistant_minutes: int = 0  # the part of `minutes` a PTA furnished (for CQ)


def units_for_total_minutes(total_minutes: int) -> int:
    """Units billable for one day's total timed minutes: 8-22 -> 1, 23-37 -> 2, ... (§4.3 table)."""
    if total_minutes < MINIMUM_TIMED_MINUTES:
        return 0
    return (total_minutes + 7) // UNIT_MINUTES


def timed_units(
    services: Iterable[ServiceMinutes], *, untimed_codes: frozenset[str] = UNTIMED_CODES
) -> dict[str, int]:
    """CPT code -> units for one patient, day and discipline, by the 8-minute rule (§4.3).

    The total timed minutes set the total units. Each code first gets its full 15-minute units;
    the units left go, one each, to the codes with the most minutes left over. Between codes with
    equal minutes left over, the code with the most minutes wins (§4.3: "bill 1 unit of the
    service with the most minutes"), then the lower code number, so that the answer never depends
    on the order of the lines. Lines with the same code are one service: their minutes add up.
    Every code given is in the answer, in code order, with 0 when it earns no unit.
    """
    minutes_by_code: dict[str, int] = {}
    for service in services:
        if service.minutes < 0 or not 0 <= service.assistant_minutes <= service.minutes:
            raise ValueError(f"{service.code}: minutes must be >= 0 and include the assistant's minutes.")
        minutes_by_code[service.code] = minutes_by_code.get(service.code, 0) + service.minutes
    timed = {code: m for code, m in minutes_by_code.items() if code not in untimed_codes}
    units = {code: m // UNIT_MINUTES for code, m in timed.items()}
    units_left = units_for_total_minutes(sum(timed.values())) - sum(units.values())
    # At most one extra unit per code: the leftovers are under 15 minutes each, so the units they
    # add up to never outnumber the codes that have some.
    by_leftover = sorted(timed, key=lambda code: (-(timed[code] % UNIT_MINUTES), -timed[code], code))
    for code in by_leftover[:units_left]:
        units[code] += 1
    units.update({code: 1 for code in minutes_by_code if code in untimed_codes})
    return dict(sorted(units.items()))


# ---------------------------------------------------------------- place of service and modifiers
#
# Source: rtm-billing-2026.md §4.2 (telehealth POS and modifiers) and §2 (GP, CQ de minimis).

POS_OFFICE = "11"
POS_TELEHEALTH_HOME = "10"
POS_TELEHEALTH_ELSEWHERE = "02"
THERAPY_MODIFIER = "GP"  # every line under a PT plan of care
ASSISTANT_MODIFIER = "CQ"
TELEHEALTH_MODIFIER = "95"
AUDIO_ONLY_MODIFIER = "93"
# CQ applies when the assistant furnished more than this share of a service (the de minimis rule).
ASSISTANT_DE_MINIMIS_PERCENT = 10


def place_of_service(modality: Modality, patient_at_home: bool) -> str:
    """11 in the clinic; 10 on video with the patient at home, 02 on video from anywhere else."""
    if modality == Modality.IN_CLINIC:
        return POS_OFFICE
    return POS_TELEHEALTH_HOME if patient_at_home else POS_TELEHEALTH_ELSEWHERE


def line_modifiers(
    service: ServiceMinutes,
    *,
    modality: Modality,
    payer_wants_modifier_95: bool,
    audio_only: bool = False,
) -> list[str]:
    """The modifiers of one PT claim line, in §4.2's order: GP, CQ, 95, then 93."""
    if audio_only and modality != Modality.VIDEO:
        raise ValueError("Only a telehealth visit can be audio-only.")
    modifiers = [THERAPY_MODIFIER]
    # Integer arithmetic: exactly 10% is not more than 10%.
    if service.assistant_minutes * 100 > ASSISTANT_DE_MINIMIS_PERCENT * service.minutes:
        modifiers.append(ASSISTANT_MODIFIER)
    if modality == Modality.VIDEO and payer_wants_modifier_95:
        modifiers.append(TELEHEALTH_MODIFIER)
    if audio_only:
        modifiers.append(AUDIO_ONLY_MODIFIER)
    return modifiers


# ---------------------------------------------------------------- who may furnish which visit

# Evaluations, re-evaluations, progress reports and the discharge summary are the PT's own work;
# an assistant furnishes treatment only (clinical-assessments.md §6.2 progress_report_author).
THERAPIST_ONLY_KINDS = frozenset({
    VisitKind.INITIAL_EVALUATION, VisitKind.PROGRESS, VisitKind.RE_EVALUATION, VisitKind.DISCHARGE,
})


def clinician_problem(kind: VisitKind, clinician_role: str) -> str | None:
    if clinician_role not in {"therapist", "assistant"}:
        return "A visit is furnished by a therapist or an assistant."
    if clinician_role == "assistant" and kind in THERAPIST_ONLY_KINDS:
        return f"A {kind.value.replace('_', ' ')} visit needs a physical therapist, not an assistant."
    return None


def interval_problem(start: datetime, end: datetime) -> str | None:
    if start.utcoffset() is None or end.utcoffset() is None:
        return "Give times with their timezone."
    if end <= start:
        return "The visit ends before it starts."
    if end - start > timedelta(hours=4):
        return "A visit lasts at most 4 hours."
    return None


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open intervals: a visit may start when the previous one ends."""
    return a_start < b_end and b_start < a_end


# ---------------------------------------------------------------- plan-of-care tracking

CERTIFICATION_ENDING_DAYS = 7


class PlanAlert(StrEnum):
    CERTIFICATION_ENDING = "certification_ending"
    CERTIFICATION_UNSIGNED = "certification_unsigned"
    PROGRESS_REPORT_DUE = "progress_report_due"
    VISITS_BEYOND_CERTIFICATION = "visits_beyond_certification"
    TELEHEALTH_CONSENT_MISSING = "telehealth_consent_missing"


@dataclass(frozen=True)
class PlanFacts:
    """What the tracking rules need of one active episode."""

    first_treatment: date
    certified_until: date | None  # the end of the latest certification or recertification
    certification_signed_on: date | None
    # Kinds of the episode's completed visits, in time order.
    completed_kinds: tuple[VisitKind, ...]
    # Local dates of visits still planned (scheduled or checked in).
    planned_dates: tuple[date, ...]
    progress_every: int = 10
    # Local date and status of each of the episode's video visits.
    video_visits: tuple[tuple[date, VisitStatus], ...] = ()
    telehealth_consent_in_force: bool = False


@dataclass(frozen=True)
class Alert:
    kind: PlanAlert
    message: str


def plan_alerts(facts: PlanFacts, *, today: date) -> list[Alert]:
    """The plan-of-care problems a therapist must act on, most urgent first."""
    alerts: list[Alert] = []
    if certification_is_late(facts.first_treatment, facts.certification_signed_on, today=today) \
            and facts.certification_signed_on is None:
        alerts.append(Alert(PlanAlert.CERTIFICATION_UNSIGNED,
                            "The plan of care is not certified, and 30 days have passed since the first treatment."))
    if facts.certified_until is not None:
        days_left = (facts.certified_until - today).days
        if 0 <= days_left <= CERTIFICATION_ENDING_DAYS:
            alerts.append(Alert(PlanAlert.CERTIFICATION_ENDING,
                                f"The certification ends on {facts.certified_until:%Y-%m-%d} "
                                f"({days_left} day{'s' if days_left != 1 else ''} left): recertify to continue."))
        beyond = [d for d in facts.planned_dates if d > facts.certified_until]
        if beyond:
            alerts.append(Alert(PlanAlert.VISITS_BEYOND_CERTIFICATION,
                                f"{len(beyond)} planned visit{'s' if len(beyond) != 1 else ''} fall after the "
                                f"certified period ({facts.certified_until:%Y-%m-%d})."))
    visits_in_period = progress_period_visits(facts.completed_kinds)
    if visits_in_period >= facts.progress_every - 1:
        alerts.append(Alert(PlanAlert.PROGRESS_REPORT_DUE,
                            f"A progress report is due: {visits_in_period} treatment days since the last report; "
                            f"it must be written on or before day {facts.progress_every}."))
    consent = telehealth_consent_alert(facts.video_visits, consent_in_force=facts.telehealth_consent_in_force,
                                       today=today)
    if consent is not None:
        alerts.append(consent)
    return alerts


def telehealth_consent_alert(
    video_visits: Iterable[tuple[date, VisitStatus]], *, consent_in_force: bool, today: date
) -> Alert | None:
    """An alert when planned video visits lie ahead (today included) and the patient's telehealth
    consent is not in force. Scheduling is not refused: clinics often record consent at the first call."""
    upcoming = [day for day, status in video_visits if status in PLANNED_VISIT_STATUSES and day >= today]
    if consent_in_force or not upcoming:
        return None
    return Alert(PlanAlert.TELEHEALTH_CONSENT_MISSING,
                 f"Video visits are planned from {min(upcoming):%Y-%m-%d}, but the patient's telehealth consent "
                 "is not in force: record the patient's telehealth consent before the first video visit.")


def progress_period_visits(completed_kinds: tuple[VisitKind, ...]) -> int:
    """Treatment days in the current reporting period: the evaluation (or a re-evaluation) is day
    1 of a period, and a progress visit closes one (clinical-assessments.md §6.2)."""
    count = 0
    for kind in completed_kinds:
        if kind == VisitKind.PROGRESS:
            count = 0
        elif kind in {VisitKind.INITIAL_EVALUATION, VisitKind.RE_EVALUATION}:
            count = 1
        else:
            count += 1
    return count


# Hours assumed for a clinician who has not recorded their own: Monday to Friday, 8:00 to 18:00.
DEFAULT_WORKING_HOURS: dict[int, tuple[tuple[time, time], ...]] = {
    weekday: ((time(8, 0), time(18, 0)),) for weekday in range(5)
}


WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def working_hours_problems(intervals: list[tuple[int, time, time]]) -> list[str]:
    """What is wrong with a week of working intervals: bad weekdays, reversed or overlapping times."""
    problems = []
    by_day: dict[int, list[tuple[time, time]]] = {}
    for weekday, starts, ends in intervals:
        if not 0 <= weekday <= 6:
            problems.append("A weekday is 0 (Monday) to 6 (Sunday).")
            continue
        if ends <= starts:
            problems.append(f"{WEEKDAY_NAMES[weekday]}: the hours end before they start.")
            continue
        by_day.setdefault(weekday, []).append((starts, ends))
    for weekday, day_intervals in sorted(by_day.items()):
        day_intervals.sort()
        if any(later[0] < earlier[1] for earlier, later in pairwise(day_intervals)):
            problems.append(f"{WEEKDAY_NAMES[weekday]}: two intervals overlap.")
    return problems
