"""Pure billing rules for remote therapeutic monitoring (RTM), CY 2026: which code a 30-day
period or a calendar month earns, its modifiers and its date of service.

No Flask, no SQLAlchemy: plain values in, plain values out. The source is
reference/rtm-billing-2026.md; every point the sources disagree on is a field of `RtmPolicy`
(one per payer), whose defaults are the reference's recommendations. Thresholds the sources
agree on (the 2/16 day bands, the 10/20/40 minute tiers, the 10% de minimis) are constants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from enum import StrEnum


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
