"""RTM code selection, modifiers and dates of service (telerehab/billing/rules.py), as tables of
cases at every threshold edge (reference/rtm-billing-2026.md §1-§2)."""

from __future__ import annotations

from datetime import date

import pytest

from telerehab.billing import rules
from telerehab.billing.rules import (
    CqAttribution,
    DeviceDos,
    ManagementDos,
    Minutes,
    MonitoredSystem,
    RtmPolicy,
    SetupDos,
)

MSK, RESP, CBT = MonitoredSystem.MUSCULOSKELETAL, MonitoredSystem.RESPIRATORY, MonitoredSystem.CBT


@pytest.mark.parametrize(("system", "days", "code"), [
    (MSK, 0, None), (MSK, 1, None), (MSK, 2, "98985"), (MSK, 15, "98985"), (MSK, 16, "98977"), (MSK, 30, "98977"),
    (RESP, 1, None), (RESP, 2, "98984"), (RESP, 15, "98984"), (RESP, 16, "98976"),
    (CBT, 1, None), (CBT, 2, "98986"), (CBT, 15, "98986"), (CBT, 16, "98978"),
])
def test_device_code_by_data_days(system, days, code):
    assert rules.device_code(system, days) == code


@pytest.mark.parametrize(("minutes", "cap", "codes"), [
    (0, None, []), (9, None, []),
    (10, None, [("98979", 1)]), (19, None, [("98979", 1)]),
    (20, None, [("98980", 1)]), (39, None, [("98980", 1)]),
    (40, None, [("98980", 1), ("98981", 1)]), (59, None, [("98980", 1), ("98981", 1)]),
    (60, None, [("98980", 1), ("98981", 2)]), (100, None, [("98980", 1), ("98981", 4)]),
    (100, 2, [("98980", 1), ("98981", 2)]), (100, 0, [("98980", 1)]),
])
def test_management_codes_by_minutes(minutes, cap, codes):
    result = rules.management_codes(minutes, addon_unit_cap=cap)
    assert result == codes
    billed = {code for code, _ in result}
    assert not ({"98979"} & billed and {"98980", "98981"} & billed)  # never together


@pytest.mark.parametrize(("minutes", "tier"), [(0, 10), (9, 10), (10, 20), (19, 20), (20, 40), (39, 40), (40, 60),
                                               (59, 60), (60, 80)])
def test_next_tier(minutes, tier):
    assert rules.next_tier(minutes) == tier


@pytest.mark.parametrize(("total", "addons", "blocks"), [
    (15, 0, [15]), (35, 0, [35]), (40, 1, [20, 20]), (45, 1, [20, 25]), (60, 2, [20, 20, 20]), (75, 2, [20, 20, 35]),
])
def test_management_blocks(total, addons, blocks):
    assert rules.management_blocks(total, addons=addons) == blocks
    assert sum(blocks) == total


@pytest.mark.parametrize(("assistant", "total", "over"), [
    (0, 20, False), (2, 20, False), (3, 20, True),  # exactly 10% is not "more than"
    (1, 10, False), (2, 19, True), (4, 40, False), (5, 40, True), (20, 20, True),
])
def test_de_minimis_edge(assistant, total, over):
    assert rules.exceeds_de_minimis(assistant, total) is over


def test_assistant_minutes_are_attributed_per_block_chronologically_or_therapist_first():
    # 10 PT, then 25 PTA, then 5 PT = 40 minutes: blocks 20 + 20.
    spent = [Minutes(1, 10, False), Minutes(2, 25, True), Minutes(3, 5, False)]
    blocks = [20, 20]
    assert rules.assistant_minutes_per_block(spent, blocks, CqAttribution.CHRONOLOGICAL) == [10, 15]
    assert rules.assistant_minutes_per_block(spent, blocks, CqAttribution.THERAPIST_FIRST) == [5, 20]


@pytest.mark.parametrize(("code", "assistant", "ytd", "expected"), [
    ("98977", False, None, ("GP",)),
    ("98977", True, None, ("GP",)),  # never CQ on device supply
    ("98985", True, None, ("GP",)),
    ("98984", True, None, ("GP",)),
    ("98975", True, None, ("GP", "CQ")),
    ("98980", True, None, ("GP", "CQ")),
    ("98979", False, 248_000, ("GP",)),  # at the threshold: not yet past it
    ("98979", False, 248_001, ("GP", "KX")),
    ("98981", True, 300_000, ("GP", "CQ", "KX")),
    ("98976", True, 300_000, ("GP", "KX")),
])
def test_modifiers(code, assistant, ytd, expected):
    assert rules.modifiers(code, assistant_over_de_minimis=assistant, ytd_therapy_cents=ytd,
                           policy=RtmPolicy()) == expected


def test_kx_threshold_is_the_payers():
    policy = RtmPolicy(kx_threshold_cents=100_000)
    assert rules.modifiers("98980", assistant_over_de_minimis=False, ytd_therapy_cents=100_001,
                           policy=policy) == ("GP", "KX")


def test_dates_of_service_follow_the_policy():
    end, days = date(2026, 3, 31), [date(2026, 3, 3), date(2026, 3, 20)]
    assert rules.device_service_date(end, days, RtmPolicy()) == end
    assert rules.device_service_date(end, days, RtmPolicy(device_dos=DeviceDos.LAST_DATA_DAY)) == date(2026, 3, 20)
    met = date(2026, 3, 12)
    assert rules.management_service_date(end, met, RtmPolicy()) == end
    assert rules.management_service_date(end, met, RtmPolicy(management_dos=ManagementDos.THRESHOLD_MET_DATE)) == met
    setup = date(2026, 3, 2)
    assert rules.setup_service_date(setup, met, RtmPolicy()) == setup
    assert rules.setup_service_date(setup, met, RtmPolicy(setup_dos=SetupDos.THRESHOLD_MET_DATE)) == met


def test_policy_defaults_are_the_references_recommendations():
    policy = RtmPolicy()
    assert (policy.setup_min_days, policy.async_message_is_interactive, policy.addon_unit_cap,
            policy.kx_threshold_cents) == (2, False, None, 248_000)
    assert policy.as_evidence()["device_dos"] == "period_end"
