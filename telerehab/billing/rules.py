"""Pure billing rules for remote therapeutic monitoring (RTM), CY 2026: which code a 30-day
period or a calendar month earns, its modifiers and its date of service.

No Flask, no SQLAlchemy: plain values in, plain values out. The source is
reference/rtm-billing-2026.md; every point the sources disagree on is a field of `RtmPolicy`
(one per payer), whose defaults are the reference's recommendations. Thresholds the sources
agree on (the 2/16 day bands, the 10/20/40 minute tiers, the 10% de minimis) are constants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta
from enum import StrEnum

from telerehab.accounts.rules import member_id_problem, npi_problem


class MonitoredSystem(StrEnum):
    MUSCULOSKELETAL = "musculoskeletal"
    RESPIRATORY = "respiratory"
    CBT = "cbt"


SETUP_CODE = "98975"
# (2-15 days, 16-30 days) device-supply codes per monitored system (§1.1, §1.2 item 5).
DEVICE_CODES = {
    MonitoredSystem.MUSCULOSKELETAL: ("98985", "98977"),
    MonitoredSystem.RESPIRATORY: ("98984", "98976"),
    MonitoredSystem.CBT: ("98986", "98978"),
}
DEVICE_SUPPLY_CODES = frozenset(code for pair in DEVICE_CODES.values() for code in pair)
MANAGEMENT_FIRST_10 = "98979"
MANAGEMENT_FIRST_20 = "98980"
MANAGEMENT_EACH_20 = "98981"

LOW_BAND_MIN_DAYS = 2
HIGH_BAND_MIN_DAYS = 16
TIER_MINUTES = (10, 20, 40)  # 98979; 98980; 98980 + the first 98981
ADDON_BLOCK_MINUTES = 20
DE_MINIMIS_PERCENT = 10  # CQ when an assistant furnished MORE than this share (§2)

THERAPY_MODIFIER = "GP"
ASSISTANT_MODIFIER = "CQ"
THRESHOLD_MODIFIER = "KX"


class DeviceDos(StrEnum):
    PERIOD_END = "period_end"  # or the discharge date when the period is cut short
    LAST_DATA_DAY = "last_data_day"  # NGS's RPM practice


class ManagementDos(StrEnum):
    MONTH_END = "month_end"  # or the discharge date in the month of discharge
    THRESHOLD_MET_DATE = "threshold_met_date"


class SetupDos(StrEnum):
    SETUP_DATE = "setup_date"
    THRESHOLD_MET_DATE = "threshold_met_date"


class SetupRebill(StrEnum):
    PER_EPISODE = "per_episode"  # a new episode (a new plan of care) may bill 98975 again
    ONCE_PER_PATIENT = "once_per_patient"


class CqAttribution(StrEnum):
    CHRONOLOGICAL = "chronological"
    THERAPIST_FIRST = "therapist_first"


class RpmOverlap(StrEnum):
    HOLD = "hold"
    ALLOW = "allow"


@dataclass(frozen=True)
class RtmPolicy:
    """A payer's answers to the questions the sources leave open (reference §6 item 6)."""

    setup_min_days: int = LOW_BAND_MIN_DAYS  # vendors: 2 days in 2026; historically 16 (§1.1)
    setup_rebill: SetupRebill = SetupRebill.PER_EPISODE  # §1.2 item 10
    async_message_is_interactive: bool = False  # §1.2 item 7: synchronous contact only by default
    addon_unit_cap: int | None = None  # 98981 MUE not found (§1.2 item 6)
    addon_needs_own_interaction: bool = False  # [R7b]'s uncorroborated claim (§1.4)
    device_dos: DeviceDos = DeviceDos.PERIOD_END  # §1.6
    management_dos: ManagementDos = ManagementDos.MONTH_END
    setup_dos: SetupDos = SetupDos.SETUP_DATE
    cq_attribution: CqAttribution = CqAttribution.CHRONOLOGICAL  # §2, "low-medium" confidence
    rpm_overlap: RpmOverlap = RpmOverlap.HOLD  # §3
    kx_threshold_cents: int = 248_000  # 2026 PT/SLP threshold (§2)
    place_of_service: str = "11"  # §2, per payer

    def as_evidence(self) -> dict:
        return {key: (value.value if isinstance(value, StrEnum) else value) for key, value in asdict(self).items()}


# ---------------------------------------------------------------- code selection


def device_code(system: MonitoredSystem, data_days: int) -> str | None:
    """The one device-supply code a 30-day period with `data_days` earns, or None (0-1 days)."""
    low, high = DEVICE_CODES[MonitoredSystem(system)]
    if data_days >= HIGH_BAND_MIN_DAYS:
        return high
    if data_days >= LOW_BAND_MIN_DAYS:
        return low
    return None


def management_codes(minutes: int, *, addon_unit_cap: int | None = None) -> list[tuple[str, int]]:
    """(code, units) a calendar month's counted minutes earn, given its interactive communication:
    10-19 -> 98979; 20-39 -> 98980; 40+ -> 98980 and one 98981 per further full 20 minutes.
    98979 never comes with 98980/98981."""
    if minutes < TIER_MINUTES[0]:
        return []
    if minutes < TIER_MINUTES[1]:
        return [(MANAGEMENT_FIRST_10, 1)]
    addons = (minutes - TIER_MINUTES[1]) // ADDON_BLOCK_MINUTES
    if addon_unit_cap is not None:
        addons = min(addons, addon_unit_cap)
    return [(MANAGEMENT_FIRST_20, 1)] + ([(MANAGEMENT_EACH_20, addons)] if addons else [])


def next_tier(minutes: int) -> int | None:
    """The next minute tier above `minutes` (10, 20, 40, then each further 20), for the forecast."""
    for tier in TIER_MINUTES:
        if minutes < tier:
            return tier
    return TIER_MINUTES[-1] + ((minutes - TIER_MINUTES[-1]) // ADDON_BLOCK_MINUTES + 1) * ADDON_BLOCK_MINUTES


# ---------------------------------------------------------------- CQ: the assistant's share


@dataclass(frozen=True)
class Minutes:
    """Minutes of one time entry, in the order they were spent, and who spent them."""

    entry_id: int
    minutes: int
    by_assistant: bool


def management_blocks(total: int, *, addons: int) -> list[int]:
    """The minutes each billed management line stands for, in order: the 98979/98980 line, then
    each 98981 unit. Minutes past the last full block belong to the last line."""
    if addons == 0:
        return [total]
    blocks = [TIER_MINUTES[1]] + [ADDON_BLOCK_MINUTES] * addons
    blocks[-1] += total - sum(blocks)
    return blocks


def assistant_minutes_per_block(minutes: list[Minutes], blocks: list[int], attribution: CqAttribution) -> list[int]:
    """How many of each block's minutes an assistant furnished. Chronological: minutes fill the
    blocks in the order spent; therapist-first: the therapist's minutes fill the first blocks."""
    ordered = list(minutes)
    if attribution == CqAttribution.THERAPIST_FIRST:
        ordered.sort(key=lambda m: m.by_assistant)  # stable: keeps the time order within each group
    stream = [m.by_assistant for m in ordered for _ in range(m.minutes)]
    result, position = [], 0
    for size in blocks:
        result.append(sum(stream[position:position + size]))
        position += size
    return result


def exceeds_de_minimis(assistant_minutes: int, total_minutes: int) -> bool:
    """More than 10% of the service furnished by an assistant (exactly 10% is not)."""
    return total_minutes > 0 and assistant_minutes * 100 > DE_MINIMIS_PERCENT * total_minutes


# ---------------------------------------------------------------- modifiers and dates of service


def modifiers(code: str, *, assistant_over_de_minimis: bool, ytd_therapy_cents: int | None,
              policy: RtmPolicy) -> tuple[str, ...]:
    """GP always; CQ past de minimis except on device-supply codes; KX once the patient's
    year-to-date therapy amount is past the payer's threshold."""
    result = [THERAPY_MODIFIER]
    if assistant_over_de_minimis and code not in DEVICE_SUPPLY_CODES:
        result.append(ASSISTANT_MODIFIER)
    if ytd_therapy_cents is not None and ytd_therapy_cents > policy.kx_threshold_cents:
        result.append(THRESHOLD_MODIFIER)
    return tuple(result)


def device_service_date(period_end: date, data_days: list[date], policy: RtmPolicy) -> date:
    """`period_end` is already cut at discharge, so period end "or discharge" is one value."""
    if policy.device_dos == DeviceDos.LAST_DATA_DAY and data_days:
        return max(data_days)
    return period_end


def management_service_date(month_end: date, threshold_met: date | None, policy: RtmPolicy) -> date:
    """`month_end` is already cut at discharge."""
    if policy.management_dos == ManagementDos.THRESHOLD_MET_DATE and threshold_met is not None:
        return threshold_met
    return month_end


def setup_service_date(setup_date: date, threshold_met: date, policy: RtmPolicy) -> date:
    return threshold_met if policy.setup_dos == SetupDos.THRESHOLD_MET_DATE else setup_date


# ---------------------------------------------------------------- workbench: line statuses and holds


class LineStatus(StrEnum):
    READY = "ready"
    HELD = "held"
    APPROVED = "approved"
    EXPORTED = "exported"
    SUBMITTED = "submitted"
    PAID = "paid"
    DENIED = "denied"
    VOID = "void"
    WITHDRAWN = "withdrawn"  # the engine no longer bills it (its RTM line became not billable) before approval


OPEN_STATUSES = frozenset({LineStatus.READY, LineStatus.HELD})  # collection may still refresh these from their source
LIVE_STATUSES = frozenset(LineStatus) - {LineStatus.VOID, LineStatus.WITHDRAWN}

TRANSITIONS: dict[LineStatus, frozenset[LineStatus]] = {
    LineStatus.READY: frozenset({LineStatus.APPROVED, LineStatus.HELD, LineStatus.WITHDRAWN}),
    LineStatus.HELD: frozenset({LineStatus.READY, LineStatus.APPROVED, LineStatus.WITHDRAWN}),
    LineStatus.APPROVED: frozenset({LineStatus.READY, LineStatus.HELD, LineStatus.EXPORTED}),
    # exported -> approved: the batch was cancelled before it reached the payer.
    LineStatus.EXPORTED: frozenset({LineStatus.APPROVED, LineStatus.SUBMITTED, LineStatus.VOID}),
    # A claim sent, paid or denied is corrected by a replacement claim (its lines exported again) or
    # a void (their end).
    LineStatus.SUBMITTED: frozenset({LineStatus.PAID, LineStatus.DENIED, LineStatus.VOID, LineStatus.EXPORTED}),
    LineStatus.DENIED: frozenset({LineStatus.SUBMITTED, LineStatus.VOID, LineStatus.EXPORTED}),
    LineStatus.PAID: frozenset({LineStatus.VOID, LineStatus.EXPORTED}),
    LineStatus.VOID: frozenset(),
    LineStatus.WITHDRAWN: frozenset({LineStatus.READY, LineStatus.HELD}),
}


def transition_problem(current: str, new: str) -> str | None:
    """Why a line cannot go from `current` to `new`, or None. Staying in the same status is not a
    transition (a re-hold, or a release that leaves other holds): callers skip the check then."""
    for value in (current, new):
        if value not in frozenset(LineStatus):  # a StrEnum member equals and hashes as its value
            return f"{value!r} is not a line status."
    if current == new:
        return f"Line is already {current}."
    if LineStatus(new) not in TRANSITIONS[LineStatus(current)]:
        return f"A line that is {current} cannot become {new}."
    return None


class LineAction(StrEnum):
    """What billing staff do to selected lines on the workbench."""

    APPROVE = "approve"
    HOLD = "hold"
    RELEASE = "release"
    UNAPPROVE = "unapprove"
    MARK_SUBMITTED = "mark_submitted"
    MARK_PAID = "mark_paid"
    MARK_DENIED = "mark_denied"


ACTION_RESULT: dict[LineAction, LineStatus] = {
    LineAction.APPROVE: LineStatus.APPROVED,
    LineAction.HOLD: LineStatus.HELD,
    LineAction.RELEASE: LineStatus.READY,
    LineAction.UNAPPROVE: LineStatus.READY,
    LineAction.MARK_SUBMITTED: LineStatus.SUBMITTED,
    LineAction.MARK_PAID: LineStatus.PAID,
    LineAction.MARK_DENIED: LineStatus.DENIED,
}

# The statuses each action starts from, and how a clerk reads that rule.
_ACTION_FROM: dict[LineAction, tuple[frozenset[LineStatus], str]] = {
    LineAction.APPROVE: (frozenset({LineStatus.READY, LineStatus.HELD}), "approve only lines that are ready"),
    LineAction.HOLD: (frozenset({LineStatus.READY, LineStatus.HELD, LineStatus.APPROVED}),
                      "hold only lines that are ready or approved"),
    LineAction.RELEASE: (frozenset({LineStatus.HELD}), "release only lines that are held"),
    LineAction.UNAPPROVE: (frozenset({LineStatus.APPROVED}), "unapprove only lines that are approved"),
    LineAction.MARK_SUBMITTED: (frozenset({LineStatus.EXPORTED, LineStatus.DENIED}),
                                "mark as submitted only lines that are exported (or denied, to resubmit)"),
    LineAction.MARK_PAID: (frozenset({LineStatus.SUBMITTED}), "mark as paid only lines that are submitted"),
    LineAction.MARK_DENIED: (frozenset({LineStatus.SUBMITTED}), "mark as denied only lines that are submitted"),
}


def action_problem(action: str, status: str, *, holds: int) -> str | None:
    """Why billing staff cannot apply `action` to a line in `status`, or None.

    `holds` counts the line's blocking holds: every hold but the manual one (see `line_holds`).
    A line held only by hand is approved directly; a blocking hold must be resolved first.
    Holding a held line again is allowed (it updates the reason); releasing clears only the manual
    hold, so it is allowed while other holds remain (the line then stays held).
    """
    if action not in frozenset(LineAction):
        return f"{action!r} is not a workbench action."
    if status not in frozenset(LineStatus):
        return f"{status!r} is not a line status."
    allowed, rule = _ACTION_FROM[LineAction(action)]
    if LineStatus(status) not in allowed:
        return f"Line is {status}: {rule}."
    if action == LineAction.APPROVE and holds > 0:
        if holds == 1:
            return "Line has a hold that blocks billing: release it first, then approve."
        return f"Line has {holds} holds that block billing: release them first, then approve."
    return None


class HoldKind(StrEnum):
    MANUAL = "manual"
    ENGINE = "engine"
    CERTIFICATION = "certification"
    NOTE_SIGNATURE = "note_signature"
    CONSENT = "consent"
    RENDERING_NPI = "rendering_npi"
    MEMBER_ID = "member_id"
    ADDRESS = "address"  # the patient's postal address: the 837P's subscriber loop requires it
    DIAGNOSIS = "diagnosis"
    FEE = "fee"
    SELF_PAY = "self_pay"


@dataclass(frozen=True)
class Hold:
    """Why a line cannot be billed yet, and what would release it."""

    kind: HoldKind
    reason: str  # why, in a sentence
    release: str  # what would release it, in a sentence naming the page or action


@dataclass(frozen=True)
class CertificationPeriod:
    """The plan of care's certification, or a recertification."""

    start: date
    end: date
    signed_on: date | None  # the physician's (or NPP's) signature date


@dataclass(frozen=True)
class ConsentSpan:
    granted_on: date  # local dates
    revoked_on: date | None  # the day it was revoked: no longer in force that day


@dataclass(frozen=True)
class LineFacts:
    """What the holds of one billable line depend on."""

    source: str  # "rtm" or "visit"
    code: str
    service_from: date
    service_to: date
    payer_type: str  # medicare, medicare_advantage, medicaid, commercial, workers_comp, self_pay
    member_id: str | None
    diagnosis_count: int  # the episode's diagnoses
    rendering_npi: str | None  # the rendering PT's NPI
    certification_periods: tuple[CertificationPeriod, ...] = ()  # the plan of care's and its recertifications
    consent_kind: str | None = None  # "rtm" / "telehealth" when the line needs consent, else None
    consents: tuple[ConsentSpan, ...] = ()  # every grant of that kind for the patient
    awaiting_cosign: bool = False  # visit note signed by an assistant, co-signature required and missing
    engine_hold: str | None = None  # the RTM engine's hold reason (RPM overlap), None when it is ready
    fee_cents: int | None = None  # the payer's fee for the code; None: no fee on the schedule
    manual_hold: str | None = None  # billing staff's own hold reason
    has_address: bool = True  # the patient's street, city, state and ZIP are all recorded


SELF_PAY = "self_pay"
MEDICARE = "medicare"
CONSENT_NAMES = {"rtm": "remote therapeutic monitoring", "telehealth": "telehealth (video visits)"}


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def _spans(days: list[date]) -> str:
    """Sorted days as "2026-03-01 to 2026-03-05, 2026-03-09"."""
    runs: list[list[date]] = []
    for day in days:
        if runs and day - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(f"{run[0]:%Y-%m-%d}" if len(run) == 1 else f"{run[0]:%Y-%m-%d} to {run[-1]:%Y-%m-%d}"
                     for run in runs)


def _certification_hold(facts: LineFacts) -> Hold | None:
    """Every service day under a signed certification or recertification (an RTM period or month
    may span a recertification, so the periods' union counts)."""
    uncovered, unsigned = [], []
    for day in _days(facts.service_from, facts.service_to):
        covering = [p for p in facts.certification_periods if p.start <= day <= p.end]
        if not covering:
            uncovered.append(day)
        elif all(p.signed_on is None for p in covering):
            unsigned.append(day)
    if not uncovered and not unsigned:
        return None
    reasons = []
    if uncovered:
        reasons.append(f"no Medicare plan of care certification or recertification covers {_spans(uncovered)}")
    if unsigned:
        reasons.append(f"the certification covering {_spans(unsigned)} is not signed by the physician yet")
    reason = "; ".join(reasons)
    return Hold(HoldKind.CERTIFICATION, reason[0].upper() + reason[1:] + ".",
                f"Record the physician's signature date on the plan of care or a recertification covering "
                f"{_spans(sorted(uncovered + unsigned))}, on the patient's plan of care page.")


def _consent_hold(facts: LineFacts) -> Hold | None:
    """One grant in force on every service day (RTM: the whole period or month; a video visit: its day)."""
    if facts.consent_kind is None or any(
            span.granted_on <= facts.service_from and (span.revoked_on is None or span.revoked_on > facts.service_to)
            for span in facts.consents):
        return None
    name = CONSENT_NAMES.get(facts.consent_kind, facts.consent_kind)
    dates = _spans(_days(facts.service_from, facts.service_to))
    reason = (f"The patient's consent to {name} does not cover every service day ({dates})." if facts.consents
              else f"The patient has no recorded consent to {name}.")
    return Hold(HoldKind.CONSENT, reason,
                f"Record the patient's consent to {name} on the patient's consent page, given on or before "
                f"{facts.service_from:%Y-%m-%d} and not revoked through {facts.service_to:%Y-%m-%d}.")


def manual_hold(reason: str) -> Hold:
    """Billing staff's own hold, which they release on the workbench."""
    return Hold(HoldKind.MANUAL, reason, "Release the hold on the billing workbench.")


def line_holds(facts: LineFacts) -> list[Hold]:
    """Every reason the line cannot be billed yet, one per failing check, in `HoldKind` order
    (manual first, then the engine's, then the checks). No holds: the line is ready."""
    holds: dict[HoldKind, Hold] = {}
    if facts.manual_hold:
        holds[HoldKind.MANUAL] = manual_hold(facts.manual_hold)
    if facts.engine_hold:
        holds[HoldKind.ENGINE] = Hold(
            HoldKind.ENGINE, facts.engine_hold,
            "End or correct the RPM period on the patient's RTM panel; an administrator may instead set the payer's "
            "RPM overlap policy to \"allow\" on the RTM settings page.")
    # Medicare Part B only: therapy, RTM included, must be under a plan of care that a physician or
    # NPP certified (rtm-billing-2026.md §2 "Plan of care"; clinical-assessments.md §6.1 cert_duration,
    # recert). Other payers set their own authorisation rules, which this platform does not model.
    if facts.payer_type == MEDICARE:
        certification = _certification_hold(facts)
        if certification:
            holds[HoldKind.CERTIFICATION] = certification
    if facts.awaiting_cosign:
        holds[HoldKind.NOTE_SIGNATURE] = Hold(
            HoldKind.NOTE_SIGNATURE,
            "The visit note was signed by an assistant and still needs the supervising therapist's co-signature.",
            "The supervising therapist co-signs the note on the visit's page.")
    consent = _consent_hold(facts)
    if consent:
        holds[HoldKind.CONSENT] = consent
    npi = facts.rendering_npi
    npi_issue = "The rendering therapist has no NPI on file." if npi is None else (
        f"The rendering therapist's NPI {npi} is not valid: {npi_problem(npi)}" if npi_problem(npi) else None)
    if npi_issue:
        holds[HoldKind.RENDERING_NPI] = Hold(HoldKind.RENDERING_NPI, npi_issue,
                                             "Record the therapist's NPI on their staff profile.")
    if facts.payer_type != SELF_PAY:
        member_issue = member_id_problem(facts.payer_type, facts.member_id) or (
            None if (facts.member_id or "").strip() else "The patient has no member id for this payer.")
        if member_issue:
            holds[HoldKind.MEMBER_ID] = Hold(
                HoldKind.MEMBER_ID, member_issue,
                "Record the patient's member id (the MBI for Medicare) on the patient's insurance details.")
        if not facts.has_address:
            holds[HoldKind.ADDRESS] = Hold(
                HoldKind.ADDRESS, "The patient's postal address is incomplete: a claim needs street, city, state "
                                  "and ZIP code.", "Complete the patient's address on the patient's details page.")
    if facts.diagnosis_count == 0:
        holds[HoldKind.DIAGNOSIS] = Hold(
            HoldKind.DIAGNOSIS, "The episode has no diagnosis: a claim needs at least one ICD-10-CM code.",
            "Add the diagnosis to the patient's plan of care.")
    if facts.fee_cents is None:
        holds[HoldKind.FEE] = Hold(HoldKind.FEE, f"The payer's fee schedule has no amount for {facts.code}.",
                                   f"Add {facts.code} to the payer's fee schedule on the payer settings page.")
    if facts.payer_type == SELF_PAY:
        holds[HoldKind.SELF_PAY] = Hold(HoldKind.SELF_PAY, "The patient is self-pay: there is no claim to file.",
                                        "Record the patient's insurance on their insurance details.")
    return [holds[kind] for kind in HoldKind if kind in holds]


def charge_cents(fee_cents: int | None, units: int) -> int | None:
    """The line's charge: the payer's fee times the units; None while the fee is missing."""
    return None if fee_cents is None else fee_cents * units
