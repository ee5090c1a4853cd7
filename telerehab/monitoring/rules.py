"""Pure rules of remote therapeutic monitoring (RTM): 30-day periods, data days, management
minutes per calendar month, the decisions they lead to (with reason and evidence), the forecast
the therapist sees, and the clinic's alerts.

No Flask, no SQLAlchemy: plain values in, plain values out; "today" is always a parameter (the
patient's local date). A data day is a date in the patient's own timezone, as stored on the
check-in (reference/rtm-billing-2026.md §1.2 item 4). Code selection, modifiers and dates of
service are telerehab.billing.rules; this module applies them period by period and month by month.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from telerehab.billing import rules as billing
from telerehab.billing.rules import MonitoredSystem, RpmOverlap, RtmPolicy, SetupRebill

PERIOD_DAYS = 30


class Activity(StrEnum):
    DATA_REVIEW = "data_review"
    PROGRAM_CHANGE = "program_change"
    CALL = "call"
    VIDEO = "video"
    MESSAGE = "message"
    CARE_COORDINATION = "care_coordination"


class Channel(StrEnum):
    PHONE = "phone"
    VIDEO = "video"
    IN_PERSON = "in_person"


class Status(StrEnum):
    READY = "ready"  # billable: a line for billing staff
    HELD = "held"  # would be billable, but needs a person (an RPM overlap)
    NOT_BILLABLE = "not_billable"  # closed, and earns nothing (kept: the reason is evidence too)
    OPEN = "open"  # the period or month is still running: nothing is written yet


class Slot(StrEnum):
    """What a billable line stands for; one line per episode, slot and period at most."""

    SETUP = "setup"
    DEVICE = "device"
    MANAGEMENT = "management"  # 98979 or 98980
    ADDON = "addon"  # one 98981 unit: slot key "addon:<n>"


SETUP_PERIOD_KEY = "episode"


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Enrolment:
    id: int
    episode_id: int
    system: MonitoredSystem
    monitoring_start: date
    monitoring_end: date | None  # discharge, opt-out or end of monitoring: the last monitored day
    setup_date: date | None = None
    setup_by_assistant: bool = False


@dataclass(frozen=True)
class TimeEntry:
    id: int
    service_date: date
    minutes: int
    activity: Activity
    by_assistant: bool
    interactive: bool
    channel: Channel | None = None
    linked_visit_id: int | None = None  # a separately billed visit: its minutes never count here


# ---------------------------------------------------------------- periods and months


class Window(NamedTuple):
    """A 30-day period or a calendar month, clipped to the monitored days. (A named tuple: the
    nightly run makes tens of thousands, and a frozen dataclass is several times slower to make.)"""

    key: str  # "2026-03-02" for a period (its first day), "2026-03" for a month
    start: date
    end: date  # inclusive
    cut: bool = False  # ended early by the end of monitoring

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    def closed(self, today: date) -> bool:
        return today > self.end

    def days_left(self, today: date) -> int:
        """Days from today (inclusive) to the end; 0 once closed."""
        return max(0, (self.end - today).days + 1)


def periods(start: date, end: date | None, today: date) -> list[Window]:
    """Consecutive 30-day periods from the start of monitoring, cut at its end, up to the one
    that holds `today` (or the last one, once monitoring has ended)."""
    last = end if end is not None and end < today else today
    result, first = [], start
    while first <= last:
        full_end = first + timedelta(days=PERIOD_DAYS - 1)
        cut = end is not None and end < full_end
        result.append(Window(first.isoformat(), first, end if cut else full_end, cut))
        first = full_end + timedelta(days=1)
    return result


def month_start(start: date, index: int) -> date:
    """The first day of the `index`-th calendar month of monitoring that began on `start`."""
    years, month = divmod(start.month - 1 + index, 12)
    return date(start.year + years, month + 1, 1)


def months(start: date, end: date | None, today: date, *, skip: int = 0) -> list[Window]:
    """The calendar months the monitoring touches up to `today`, each clipped to monitored days
    (all but the first `skip` of them)."""
    last = end if end is not None and end < today else today
    if last < start:  # not started yet, or ended before it started (an opt-out before day one)
        return []
    first = month_start(start, skip)
    result, year, month = [], first.year, first.month
    while date(year, month, 1) <= last:
        following = (year + 1, 1) if month == 12 else (year, month + 1)
        month_last = date(*following, 1) - timedelta(days=1)
        cut = end is not None and end < month_last
        result.append(Window(f"{year:04d}-{month:02d}", max(start, date(year, month, 1)),
                             end if cut else month_last, cut))
        year, month = following
    return result


def data_days(ordered_days: list[date], window: Window) -> list[date]:
    """The data days inside `window` (so none after the end of monitoring), from the patient's
    distinct data days in order."""
    return ordered_days[bisect_left(ordered_days, window.start):bisect_right(ordered_days, window.end)]


def overlapping(window: Window, rpm_periods: Iterable[tuple[date, date]]) -> list[tuple[date, date]]:
    return [(s, e) for s, e in rpm_periods if s <= window.end and e >= window.start]


# ---------------------------------------------------------------- management minutes


def is_interactive(entry: TimeEntry, policy: RtmPolicy) -> bool:
    """Real-time interactive communication with the patient or caregiver. Asynchronous messages
    count only where the payer says so; contact inside a separately billed visit never does,
    since that visit's time belongs to the visit."""
    if not entry.interactive or entry.linked_visit_id is not None:
        return False
    if entry.channel is not None:
        return True
    return entry.activity == Activity.MESSAGE and policy.async_message_is_interactive


@dataclass(frozen=True)
class MonthTally:
    counted: list[TimeEntry]
    excluded: list[tuple[TimeEntry, str]]
    interactive: list[TimeEntry]
    minutes: int


def tally_month(entries: Iterable[TimeEntry], month: Window, policy: RtmPolicy) -> MonthTally:
    """The month's minutes: entries dated inside it (minutes never carry over), less those
    already counted toward another billed service."""
    counted, excluded = [], []
    for entry in sorted(entries, key=lambda e: (e.service_date, e.id)):
        if not month.contains(entry.service_date):
            continue
        if entry.linked_visit_id is not None:
            excluded.append((entry, f"counted toward visit {entry.linked_visit_id}, billed separately"))
        else:
            counted.append(entry)
    interactive = [e for e in counted if is_interactive(e, policy)]
    return MonthTally(counted, excluded, interactive, sum(e.minutes for e in counted))


def _entry_evidence(entry: TimeEntry) -> dict:
    return {"id": entry.id, "date": entry.service_date.isoformat(), "minutes": entry.minutes,
            "activity": str(entry.activity), "assistant": entry.by_assistant, "interactive": entry.interactive,
            "channel": str(entry.channel) if entry.channel else None}


def _minutes_reached_on(entries: list[TimeEntry], minutes: int) -> date | None:
    running = 0
    for entry in entries:
        running += entry.minutes
        if running >= minutes:
            return entry.service_date
    return None


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    slot: str  # Slot value, "addon:<n>" for the n-th 98981 unit
    period_key: str
    period_start: date
    period_end: date
    status: Status
    reason: str
    evidence: dict
    code: str | None = None
    units: int = 0
    modifiers: tuple[str, ...] = ()
    service_date: date | None = None

    @property
    def written(self) -> bool:
        """Closed decisions (and a met set-up threshold) are written as lines; open ones are not."""
        return self.status != Status.OPEN


@dataclass(frozen=True)
class Context:
    """Everything about the patient beyond the enrolment that a decision depends on."""

    policy: RtmPolicy = field(default_factory=RtmPolicy)
    rpm_periods: tuple[tuple[date, date], ...] = ()
    ytd_therapy_cents: dict[int, int] = field(default_factory=dict)  # year -> amount, from the MAC
    setup_billed_on_episode: int | None = None  # another episode of the patient that billed 98975


def _hold_or_ready(window: Window, context: Context, evidence: dict) -> tuple[Status, str | None]:
    overlaps = overlapping(window, context.rpm_periods)
    if not overlaps:
        return Status.READY, None
    evidence["rpm_overlap"] = [[s.isoformat(), e.isoformat()] for s, e in overlaps]
    if context.policy.rpm_overlap == RpmOverlap.HOLD:
        return Status.HELD, "held for review: remote physiologic monitoring (RPM) is recorded for an overlapping period"
    return Status.READY, "RPM overlap recorded; this payer allows both"


def _modifiers(code: str, assistant: bool, service_date: date, context: Context) -> tuple[str, ...]:
    return billing.modifiers(code, assistant_over_de_minimis=assistant,
                             ytd_therapy_cents=context.ytd_therapy_cents.get(service_date.year),
                             policy=context.policy)


def device_decision(enrolment: Enrolment, period: Window, days: list[date], today: date,
                    context: Context) -> Decision:
    evidence = {"data_days": [d.isoformat() for d in days], "count": len(days),
                "period": [period.start.isoformat(), period.end.isoformat()], "cut_at_end": period.cut}
    code = billing.device_code(enrolment.system, len(days))
    base = {"slot": Slot.DEVICE.value, "period_key": period.key, "period_start": period.start,
            "period_end": period.end, "evidence": evidence}
    if not period.closed(today):
        return Decision(status=Status.OPEN, reason=f"period running: {len(days)} data days so far", **base)
    if code is None:
        return Decision(status=Status.NOT_BILLABLE, reason=(
            f"{len(days)} data day{'s' if len(days) != 1 else ''} in the period; "
            f"{billing.LOW_BAND_MIN_DAYS} are needed for a device-supply code"), **base)
    band = "16-30" if len(days) >= billing.HIGH_BAND_MIN_DAYS else "2-15"
    status, note = _hold_or_ready(period, context, evidence)
    service_date = billing.device_service_date(period.end, days, context.policy)
    reason = f"{len(days)} data days in the period ({band} band): {code}" + (f"; {note}" if note else "")
    return Decision(status=status, reason=reason, code=code, units=1, service_date=service_date,
                    modifiers=_modifiers(code, False, service_date, context), **base)


def setup_decision(enrolment: Enrolment, period_days: list[tuple[Window, list[date]]], today: date,
                   context: Context) -> Decision:
    """98975 once per episode: when a period first reaches the set-up threshold of data days."""
    policy = context.policy
    first_start = period_days[0][0].start if period_days else enrolment.monitoring_start
    last_end = period_days[-1][0].end if period_days else enrolment.monitoring_start
    base = {"slot": Slot.SETUP.value, "period_key": SETUP_PERIOD_KEY, "period_start": first_start,
            "period_end": last_end}
    evidence: dict = {"setup_date": enrolment.setup_date.isoformat() if enrolment.setup_date else None,
                      "setup_by_assistant": enrolment.setup_by_assistant, "threshold_days": policy.setup_min_days}
    ended = enrolment.monitoring_end is not None and today > enrolment.monitoring_end
    if enrolment.setup_date is None:
        return Decision(status=Status.NOT_BILLABLE if ended else Status.OPEN, evidence=evidence,
                        reason="no set-up and education session is recorded", **base)
    if context.setup_billed_on_episode is not None and policy.setup_rebill == SetupRebill.ONCE_PER_PATIENT:
        evidence["billed_on_episode"] = context.setup_billed_on_episode
        return Decision(status=Status.NOT_BILLABLE, evidence=evidence, reason=(
            f"98975 was billed on episode {context.setup_billed_on_episode}; this payer allows it once per patient"),
            **base)
    for period, days in period_days:
        if len(days) >= policy.setup_min_days:
            met_on = days[policy.setup_min_days - 1]
            evidence.update(period=period.key, data_days=[d.isoformat() for d in days[:policy.setup_min_days]],
                            threshold_met_on=met_on.isoformat())
            status, note = _hold_or_ready(period, context, evidence)
            service_date = billing.setup_service_date(enrolment.setup_date, met_on, policy)
            return Decision(
                status=status, evidence=evidence, code=billing.SETUP_CODE, units=1, service_date=service_date,
                modifiers=_modifiers(billing.SETUP_CODE, enrolment.setup_by_assistant, service_date, context),
                reason=f"set-up threshold of {policy.setup_min_days} data days met on {met_on.isoformat()}"
                + (f"; {note}" if note else ""), **base)
    best = max((len(days) for _, days in period_days), default=0)
    return Decision(status=Status.NOT_BILLABLE if ended else Status.OPEN, evidence=evidence, reason=(
        f"set-up threshold of {policy.setup_min_days} data days in a period not met (best: {best})"), **base)


def management_decisions(month: Window, tally: MonthTally, today: date, context: Context) -> list[Decision]:
    """The month's 98979, or 98980 with its 98981 units; each line carries the entries behind it."""
    policy = context.policy
    evidence = {"minutes": tally.minutes, "entries": [_entry_evidence(e) for e in tally.counted],
                "excluded": [{**_entry_evidence(e), "why": why} for e, why in tally.excluded],
                "interactive": [e.id for e in tally.interactive],
                "month": [month.start.isoformat(), month.end.isoformat()]}
    base = {"period_key": month.key, "period_start": month.start, "period_end": month.end}
    head = {"slot": Slot.MANAGEMENT.value, **base}
    if not month.closed(today):
        return [Decision(status=Status.OPEN, evidence=evidence, reason=(
            f"month running: {tally.minutes} minutes so far"), **head)]
    if tally.minutes < billing.TIER_MINUTES[0]:
        return [Decision(status=Status.NOT_BILLABLE, evidence=evidence, reason=(
            f"{tally.minutes} minutes counted; {billing.TIER_MINUTES[0]} are needed"), **head)]
    if not tally.interactive:
        asynchronous = [e.id for e in tally.counted if e.interactive or e.activity == Activity.MESSAGE]
        evidence["asynchronous"] = asynchronous
        return [Decision(status=Status.NOT_BILLABLE, evidence=evidence, reason=(
            "no real-time interactive communication with the patient or caregiver this month"
            + (" (asynchronous messages do not count for this payer)" if asynchronous else "")), **head)]
    codes = billing.management_codes(tally.minutes, addon_unit_cap=policy.addon_unit_cap)
    addons = codes[1][1] if len(codes) > 1 else 0
    if policy.addon_needs_own_interaction:
        addons = min(addons, len(tally.interactive) - 1)
    blocks = billing.management_blocks(tally.minutes, addons=addons)
    assistant = billing.assistant_minutes_per_block(
        [billing.Minutes(e.id, e.minutes, e.by_assistant) for e in tally.counted], blocks, policy.cq_attribution)
    status, note = _hold_or_ready(month, context, evidence)
    billed_minutes = billing.TIER_MINUTES[0] if codes[0][0] == billing.MANAGEMENT_FIRST_10 else (
        billing.TIER_MINUTES[1] + addons * billing.ADDON_BLOCK_MINUTES)
    reached = _minutes_reached_on(tally.counted, billed_minutes)
    first_contact = tally.interactive[0].service_date
    service_date = billing.management_service_date(month.end, max(reached, first_contact), policy)
    decisions = []
    for index, (size, by_assistant) in enumerate(zip(blocks, assistant, strict=True)):
        code = codes[0][0] if index == 0 else billing.MANAGEMENT_EACH_20
        over = billing.exceeds_de_minimis(by_assistant, size)
        line_evidence = {**evidence, "block_minutes": size, "assistant_minutes": by_assistant}
        reason = (f"{tally.minutes} minutes with real-time interactive communication: {code}"
                  + (f" unit {index}" if index else "")
                  + (f"; assistant furnished {by_assistant} of {size} minutes" if by_assistant else "")
                  + (f"; {note}" if note else ""))
        decisions.append(Decision(
            slot=Slot.MANAGEMENT.value if index == 0 else f"{Slot.ADDON.value}:{index}", status=status,
            evidence=line_evidence, reason=reason, code=code, units=1, service_date=service_date,
            modifiers=_modifiers(code, over, service_date, context), **base))
    return decisions


@dataclass(frozen=True)
class Evaluation:
    periods: list[tuple[Window, list[date]]]
    months: list[tuple[Window, MonthTally]]
    decisions: list[Decision]
    decided_months: frozenset[str] = frozenset()  # month keys whose management lines were decided
    inputs: dict[tuple[str, str], str] = field(default_factory=dict)  # (slot, key) -> digest of its inputs


def digest(*parts) -> str:
    """A short stable digest of plain values (their repr)."""
    return hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()


@lru_cache(maxsize=256)
def _policy_digest(policy: RtmPolicy) -> str:
    return digest(sorted(policy.as_evidence().items()))  # a few policies serve thousands of patients


def context_digest(enrolment: Enrolment, context: Context) -> str:
    """Everything about the enrolment and the patient that every window's decision depends on.
    (Digests take plain values: a dataclass's repr is many times slower, and this runs for every
    enrolment every night.)"""
    return digest(
        (enrolment.id, enrolment.episode_id, str(enrolment.system), enrolment.monitoring_start,
         enrolment.monitoring_end, enrolment.setup_date, enrolment.setup_by_assistant),
        _policy_digest(context.policy), context.rpm_periods, sorted(context.ytd_therapy_cents.items()),
        context.setup_billed_on_episode)


def _window_items(window: Window) -> tuple:
    return window.key, window.start, window.end, window.cut


def _entry_items(entry: TimeEntry) -> tuple:
    return (entry.id, entry.service_date, entry.minutes, str(entry.activity), entry.by_assistant, entry.interactive,
            entry.channel and str(entry.channel), entry.linked_visit_id)


def closed_windows(start: date, end: date | None, today: date) -> tuple[int, int]:
    """How many 30-day periods and calendar months of `periods` and `months` have closed by
    `today`, by arithmetic (the nightly run asks this of every enrolment)."""
    if start > today:
        return 0, 0
    if end is not None and end < today:  # everything up to the end of monitoring has closed
        if end < start:
            return 0, 0
        return (end - start).days // PERIOD_DAYS + 1, (end.year - start.year) * 12 + end.month - start.month + 1
    last = today - timedelta(days=1)  # windows ending yesterday or earlier have closed
    if last < start:
        return 0, 0
    periods_closed = (today - start).days // PERIOD_DAYS
    months_closed = (last.year - start.year) * 12 + last.month - start.month + 1
    if end is not None and end == last:
        periods_closed = (end - start).days // PERIOD_DAYS + 1  # cut short yesterday: closed too
    elif (last.year, last.month) == (today.year, today.month):
        months_closed -= 1  # yesterday's month is still running
    return periods_closed, months_closed


def evaluate(enrolment: Enrolment, *, days: Iterable[date] | None, entries: Iterable[TimeEntry] | None,
             today: date, context: Context, known: Mapping[tuple[str, str], str] | None = None,
             months_standing: int = 0, context_key: str | None = None) -> Evaluation:
    """Every decision of an enrolment as of `today` (the patient's local date).

    With `known` (the input digests of the lines already written, by (slot, period key)), only
    what may need writing is decided: running windows are left out, and so is a closed period or
    month whose inputs are those its line was written from. The caller may know more, and say so:
    `days=None` leaves the set-up code and the 30-day periods undecided, `entries=None` the months,
    and `months_standing` the first months (their inputs stand). `context_key`: the enrolment's
    `context_digest`, when the caller has it."""
    incremental = known is not None
    base = (context_key or context_digest(enrolment, context)) if incremental else None
    inputs: dict[tuple[str, str], str] = {}
    decisions = []
    period_days = []
    if days is not None:
        ordered = sorted(set(days))  # ten check-ins on one day are one data day
        period_days = [(p, data_days(ordered, p))
                       for p in periods(enrolment.monitoring_start, enrolment.monitoring_end, today)]
        decisions += _period_decisions(enrolment, period_days, today, context, known, base, inputs)
    month_tallies, decided = [], set()
    if entries is not None:
        entries = sorted(entries, key=lambda e: (e.service_date, e.id))
        for month in months(enrolment.monitoring_start, enrolment.monitoring_end, today, skip=months_standing):
            if incremental:
                if not month.closed(today):
                    continue
                inside = [_entry_items(e) for e in entries if month.start <= e.service_date <= month.end]
                window_digest = inputs[Slot.MANAGEMENT.value, month.key] = digest(base, _window_items(month), inside)
                if known.get((Slot.MANAGEMENT.value, month.key)) == window_digest:
                    continue
            tally = tally_month(entries, month, context.policy)
            month_tallies.append((month, tally))
            decided.add(month.key)
            decisions += management_decisions(month, tally, today, context)
    return Evaluation(period_days, month_tallies, decisions, frozenset(decided), inputs)


def _period_decisions(enrolment: Enrolment, period_days: list[tuple[Window, list[date]]], today: date,
                      context: Context, known: Mapping[tuple[str, str], str] | None, base: str | None,
                      inputs: dict[tuple[str, str], str]) -> list[Decision]:
    """The set-up code and each period's device code (see `evaluate`; digests go to `inputs`)."""
    decisions = []
    met = next(((p, d) for p, d in period_days if len(d) >= context.policy.setup_min_days), None)
    if known is not None and met is not None:  # once met, only the days that met it (or the context) matter
        window_digest = inputs[Slot.SETUP.value, SETUP_PERIOD_KEY] = digest(
            base, met[0].key, met[1][:context.policy.setup_min_days])
        if known.get((Slot.SETUP.value, SETUP_PERIOD_KEY)) != window_digest:
            decisions.append(setup_decision(enrolment, period_days, today, context))
    else:
        decisions.append(setup_decision(enrolment, period_days, today, context))
    for period, days_in in period_days:
        if known is not None:
            if not period.closed(today):
                continue
            window_digest = inputs[Slot.DEVICE.value, period.key] = digest(base, _window_items(period), len(days_in))
            if known.get((Slot.DEVICE.value, period.key)) == window_digest:
                continue
        decisions.append(device_decision(enrolment, period, days_in, today, context))
    return decisions


# ---------------------------------------------------------------- forecast


@dataclass(frozen=True)
class DayTierForecast:
    tier: int  # data days the tier needs
    code: str
    needed: int  # further data days still needed
    days_left: int  # days left in the period on which data can still come
    reachable: bool


def day_forecast(system: MonitoredSystem, days: list[date], period: Window, today: date) -> list[DayTierForecast]:
    """For each device tier: data days still needed and days left to get them."""
    left = period.days_left(today) - (1 if today in days else 0)
    low, high = billing.DEVICE_CODES[MonitoredSystem(system)]
    result = []
    for tier, code in ((billing.LOW_BAND_MIN_DAYS, low), (billing.HIGH_BAND_MIN_DAYS, high)):
        needed = max(0, tier - len(days))
        result.append(DayTierForecast(tier, code, needed, left, needed <= left))
    return result


def at_risk(forecast: DayTierForecast, slack_days: int) -> bool:
    """Still reachable, but with no more than `slack_days` days to spare."""
    return forecast.needed > 0 and forecast.reachable and forecast.days_left - forecast.needed <= slack_days


@dataclass(frozen=True)
class MinuteForecast:
    minutes: int
    next_tier: int | None
    to_next_tier: int
    interactive_done: bool
    codes_if_closed_now: list[tuple[str, int]]


def minute_forecast(tally: MonthTally, policy: RtmPolicy) -> MinuteForecast:
    tier = billing.next_tier(tally.minutes)
    codes = billing.management_codes(tally.minutes, addon_unit_cap=policy.addon_unit_cap) if tally.interactive else []
    return MinuteForecast(tally.minutes, tier, (tier - tally.minutes) if tier else 0, bool(tally.interactive), codes)


# ---------------------------------------------------------------- alerts


@dataclass(frozen=True)
class AlertThresholds:
    """A clinic's choices (defaults from the issue)."""

    pain_at_or_above: int = 7
    rise_over_baseline: int = 2
    rise_days: int = 2  # consecutive days
    no_checkin_days: int = 3
    at_risk_slack_days: int = 3


class AlertKind(StrEnum):
    PAIN_HIGH = "pain_high"
    PAIN_RISE = "pain_rise"
    NO_CHECKIN = "no_checkin"


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    day: date  # what makes it unique per enrolment: the day it is about
    detail: dict


def pain_alerts(daily_pain: dict[date, int], baseline: int | None, thresholds: AlertThresholds) -> list[Alert]:
    """`daily_pain`: the highest pain reported on each data day. High pain on a day; or pain at
    least `rise_over_baseline` above the baseline on `rise_days` consecutive days (raised on the
    last of them)."""
    alerts = []
    for day in sorted(daily_pain):
        pain = daily_pain[day]
        if pain >= thresholds.pain_at_or_above:
            alerts.append(Alert(AlertKind.PAIN_HIGH, day, {"pain": pain, "threshold": thresholds.pain_at_or_above}))
        if baseline is None:
            continue
        run = [day - timedelta(days=i) for i in range(thresholds.rise_days)]
        limit = baseline + thresholds.rise_over_baseline
        if all(d in daily_pain and daily_pain[d] >= limit for d in run):
            alerts.append(Alert(AlertKind.PAIN_RISE, day, {
                "baseline": baseline, "days": {d.isoformat(): daily_pain[d] for d in sorted(run)}}))
    return alerts


def no_checkin_alert(last_data_day: date | None, monitoring_start: date, today: date,
                     thresholds: AlertThresholds) -> Alert | None:
    """Raised once `no_checkin_days` whole days (before today) passed without a check-in; keyed by
    the last data day, so one silence raises one alert."""
    since = last_data_day or monitoring_start - timedelta(days=1)
    missed = (today - since).days - 1
    if missed < thresholds.no_checkin_days:
        return None
    return Alert(AlertKind.NO_CHECKIN, since, {"last_data_day": last_data_day.isoformat() if last_data_day else None,
                                               "days_without": missed})
