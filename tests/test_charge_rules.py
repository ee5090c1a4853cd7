"""Table and property tests for the charge rules in telerehab.careplans.rules.

The 8-minute rule follows ../shared/reference/rtm-billing-2026.md §4.3: the band table, each of
its allocation rules and its CMS example are cases below. POS and modifiers follow §4.2 and §2.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telerehab.careplans.rules import (
    UNTIMED_CODES,
    Modality,
    ServiceMinutes,
    line_modifiers,
    place_of_service,
    timed_units,
    units_for_total_minutes,
)

CLINIC = Modality.IN_CLINIC
VIDEO = Modality.VIDEO


def services(*lines: tuple[str, int]) -> list[ServiceMinutes]:
    return [ServiceMinutes(code, minutes) for code, minutes in lines]


# ---------------------------------------------------------------- §4.3 band table


@pytest.mark.parametrize(("total", "units"), [
    (0, 0), (1, 0), (7, 0),
    (8, 1), (15, 1), (22, 1),
    (23, 2), (37, 2),
    (38, 3), (52, 3),
    (53, 4), (67, 4),
    (68, 5), (82, 5),
    (83, 6), (97, 6),
    (98, 7), (112, 7),
    (113, 8), (127, 8),
    # "The pattern continues beyond 2 hours."
    (128, 9), (142, 9), (143, 10), (240, 16),
], ids=lambda v: str(v))
def test_band_table(total, units):
    assert units_for_total_minutes(total) == units
    # One timed service of that length earns the whole band.
    assert timed_units(services(("97110", total))) == {"97110": units}


# ---------------------------------------------------------------- §4.3 allocation rules and example


@pytest.mark.parametrize(("lines", "expected"), [
    # CMS example: 33 min 97110 + 7 min 97140 = 40 min -> 3 units, 97110 x2 + 97140 x1.
    ((("97110", 33), ("97140", 7)), {"97110": 2, "97140": 1}),
    # "With a single timed service, do not bill under 8 minutes."
    ((("97110", 7),), {"97110": 0}),
    # "Several services each ran <=7 minutes but together total >=8: 1 unit of the service with the most minutes."
    ((("97110", 5), ("97140", 4)), {"97110": 1, "97140": 0}),
    ((("97110", 7), ("97112", 6), ("97140", 2)), {"97110": 1, "97112": 0, "97140": 0}),
    ((("97110", 3), ("97140", 5)), {"97110": 0, "97140": 1}),
    ((("97110", 7), ("97112", 7), ("97530", 7), ("97140", 1)), {"97110": 1, "97112": 0, "97140": 0, "97530": 0}),
    # Short services can add up past 22 minutes: 23 minutes -> 2 units, to two of them.
    ((("97110", 7), ("97112", 7), ("97530", 7), ("97140", 2)), {"97110": 1, "97112": 1, "97140": 0, "97530": 0}),
    ((("97110", 4), ("97140", 3)), {"97110": 0, "97140": 0}),
    # "A service performed for >=15 minutes must get at least 1 unit": 22 min -> 1 unit, to 97110.
    ((("97140", 7), ("97110", 15)), {"97110": 1, "97140": 0}),
    # "Give each code its full 15-minute units", then "remaining units to the most remaining minutes".
    ((("97110", 24), ("97140", 23)), {"97110": 2, "97140": 1}),
    ((("97110", 30), ("97140", 8)), {"97110": 2, "97140": 1}),
    ((("97110", 30), ("97140", 7)), {"97110": 2, "97140": 0}),
    ((("97110", 29), ("97140", 8)), {"97110": 2, "97140": 0}),
    ((("97110", 20), ("97112", 20), ("97140", 20)), {"97110": 2, "97112": 1, "97140": 1}),
    ((("97110", 38), ("97112", 23)), {"97110": 3, "97112": 1}),
    ((("97110", 10), ("97112", 10), ("97140", 10)), {"97110": 1, "97112": 1, "97140": 0}),
    ((("97110", 45), ("97140", 15)), {"97110": 3, "97140": 1}),
    ((("97110", 60),), {"97110": 4}),
], ids=[
    "cms-example-33-and-7", "single-under-8", "two-short-total-9", "three-short-most-minutes",
    "two-short-second-longer", "four-short-tie", "four-short-total-23", "two-short-total-7", "fifteen-gets-a-unit",
    "24-and-23", "30-and-8", "30-and-7", "29-and-8", "three-20s", "38-and-23", "three-10s",
    "45-and-15", "one-hour",
])
def test_allocation(lines, expected):
    assert timed_units(services(*lines)) == expected


# Ties in minutes left over: the code with more minutes in all, then the lower code number.
@pytest.mark.parametrize(("lines", "expected"), [
    ((("97140", 7), ("97110", 7), ("97112", 7)), {"97110": 1, "97112": 0, "97140": 0}),
    ((("97140", 22), ("97110", 7)), {"97110": 0, "97140": 2}),
    ((("97110", 7), ("97140", 22)), {"97110": 0, "97140": 2}),
    ((("97140", 8), ("97110", 8), ("97530", 8), ("97112", 8)), {"97110": 1, "97112": 1, "97140": 0, "97530": 0}),
], ids=["equal-minutes-lower-code", "equal-leftover-more-minutes", "same-reversed", "four-8s"])
def test_tie_breaking(lines, expected):
    assert timed_units(services(*lines)) == expected


@pytest.mark.parametrize(("lines", "expected"), [
    ((("97161", 20),), {"97161": 1}),
    ((("97162", 30),), {"97162": 1}),
    ((("97163", 45),), {"97163": 1}),
    ((("97164", 20),), {"97164": 1}),
    ((("97163", 0),), {"97163": 1}),
    ((("97163", 120),), {"97163": 1}),
    # Evaluation minutes do not count toward the timed total: 45 + 7 still leaves 7 timed minutes.
    ((("97163", 45), ("97110", 7)), {"97110": 0, "97163": 1}),
    ((("97161", 20), ("97110", 20)), {"97110": 1, "97161": 1}),
    ((("97164", 25), ("97110", 33), ("97140", 7)), {"97110": 2, "97140": 1, "97164": 1}),
    ((("97161", 10), ("97161", 15)), {"97161": 1}),
], ids=["97161", "97162", "97163", "97164", "zero-minutes", "long", "eval-minutes-not-timed",
        "eval-plus-20", "reeval-plus-cms-example", "same-eval-twice"])
def test_untimed_codes(lines, expected):
    assert timed_units(services(*lines)) == expected


def test_a_clinic_may_add_untimed_codes():
    lines = services(("97150", 30), ("97110", 7))
    assert timed_units(lines) == {"97110": 0, "97150": 2}
    assert timed_units(lines, untimed_codes=UNTIMED_CODES | {"97150"}) == {"97110": 0, "97150": 1}


@pytest.mark.parametrize(("lines", "expected"), [
    ((("97110", 5), ("97110", 5)), {"97110": 1}),
    ((("97110", 20), ("97140", 4), ("97110", 3)), {"97110": 2, "97140": 0}),
    ((), {}),
], ids=["same-code-twice", "same-code-split", "nothing"])
def test_lines_with_the_same_code_are_one_service(lines, expected):
    assert timed_units(services(*lines)) == expected


@pytest.mark.parametrize("line", [
    ServiceMinutes("97110", -1),
    ServiceMinutes("97110", 10, assistant_minutes=11),
    ServiceMinutes("97110", 10, assistant_minutes=-1),
], ids=["negative-minutes", "assistant-more-than-all", "negative-assistant"])
def test_bad_minutes(line):
    with pytest.raises(ValueError, match="97110"):
        timed_units([line])


# ---------------------------------------------------------------- §4.3 properties

TIMED_POOL = ["97110", "97112", "97116", "97140", "97530", "97535", "97750"]
SERVICE_LINES = st.lists(
    st.builds(
        ServiceMinutes,
        code=st.sampled_from([*TIMED_POOL, *sorted(UNTIMED_CODES)]),
        minutes=st.integers(min_value=0, max_value=150),
    ),
    max_size=8,
)


def _timed_minutes(lines: list[ServiceMinutes]) -> dict[str, int]:
    minutes: dict[str, int] = {}
    for line in lines:
        if line.code not in UNTIMED_CODES:
            minutes[line.code] = minutes.get(line.code, 0) + line.minutes
    return minutes


@given(SERVICE_LINES)
def test_units_follow_the_band_and_never_exceed_total_over_8(lines):
    minutes = _timed_minutes(lines)
    total = sum(minutes.values())
    units = timed_units(lines)
    timed = sum(units[code] for code in minutes)
    assert timed == units_for_total_minutes(total)
    assert timed == (0 if total < 8 else (total + 7) // 15)
    assert timed <= total // 8


@given(SERVICE_LINES)
def test_each_code_gets_its_full_units_and_at_most_one_more(lines):
    minutes = _timed_minutes(lines)
    units = timed_units(lines)
    for code, code_minutes in minutes.items():
        assert code_minutes // 15 <= units[code] <= math.ceil(code_minutes / 15)
        if code_minutes >= 15:
            assert units[code] >= 1


@given(SERVICE_LINES)
def test_extra_units_go_to_the_most_minutes_left_over(lines):
    minutes = _timed_minutes(lines)
    units = timed_units(lines)
    got_extra = [code for code in minutes if units[code] > minutes[code] // 15]
    missed = [code for code in minutes if units[code] == minutes[code] // 15]
    for winner in got_extra:
        assert minutes[winner] % 15 > 0
        for loser in missed:
            assert (minutes[winner] % 15, minutes[winner], -int(winner)) > (
                minutes[loser] % 15, minutes[loser], -int(loser)
            )


@given(SERVICE_LINES)
def test_untimed_codes_get_one_unit_and_change_nothing_else(lines):
    units = timed_units(lines)
    for code in {line.code for line in lines} & UNTIMED_CODES:
        assert units[code] == 1
    without_untimed = [line for line in lines if line.code not in UNTIMED_CODES]
    assert {c: u for c, u in units.items() if c not in UNTIMED_CODES} == timed_units(without_untimed)


@given(SERVICE_LINES, st.randoms(use_true_random=False))
def test_result_never_depends_on_input_order(lines, shuffler):
    shuffled = list(lines)
    shuffler.shuffle(shuffled)
    assert list(timed_units(shuffled).items()) == list(timed_units(lines).items())


@given(SERVICE_LINES)
def test_every_code_given_is_answered_in_code_order(lines):
    units = timed_units(lines)
    assert list(units) == sorted({line.code for line in lines})
    assert all(u >= 0 for u in units.values())


# ---------------------------------------------------------------- §4.2 place of service


@pytest.mark.parametrize(("modality", "patient_at_home", "pos"), [
    (CLINIC, False, "11"),
    (CLINIC, True, "11"),
    (VIDEO, True, "10"),
    (VIDEO, False, "02"),
], ids=["clinic", "clinic-home-flag-ignored", "video-home", "video-elsewhere"])
def test_place_of_service(modality, patient_at_home, pos):
    assert place_of_service(modality, patient_at_home) == pos


# ---------------------------------------------------------------- §4.2 and §2 modifiers


@pytest.mark.parametrize(("minutes", "assistant_minutes", "modality", "payer_95", "audio_only", "expected"), [
    (30, 0, CLINIC, True, False, ["GP"]),
    (30, 0, CLINIC, False, False, ["GP"]),
    (30, 0, VIDEO, True, False, ["GP", "95"]),
    (30, 0, VIDEO, False, False, ["GP"]),
    (30, 0, VIDEO, True, True, ["GP", "95", "93"]),
    (30, 0, VIDEO, False, True, ["GP", "93"]),
    # CQ: more than 10% of the service's minutes by the assistant; exactly 10% is not more.
    (30, 3, CLINIC, True, False, ["GP"]),
    (30, 4, CLINIC, True, False, ["GP", "CQ"]),
    (10, 1, CLINIC, True, False, ["GP"]),
    (11, 1, CLINIC, True, False, ["GP"]),
    (9, 1, CLINIC, True, False, ["GP", "CQ"]),
    (7, 1, CLINIC, True, False, ["GP", "CQ"]),
    (100, 10, CLINIC, True, False, ["GP"]),
    (100, 11, CLINIC, True, False, ["GP", "CQ"]),
    (30, 30, CLINIC, True, False, ["GP", "CQ"]),
    (0, 0, CLINIC, True, False, ["GP"]),
    (30, 30, VIDEO, True, False, ["GP", "CQ", "95"]),
    (30, 4, VIDEO, True, True, ["GP", "CQ", "95", "93"]),
    (30, 3, VIDEO, True, True, ["GP", "95", "93"]),
    (30, 4, VIDEO, False, True, ["GP", "CQ", "93"]),
], ids=[
    "clinic", "clinic-payer-no-95", "video", "video-payer-no-95", "audio-only", "audio-only-payer-no-95",
    "assistant-exactly-10pct", "assistant-13pct", "assistant-1-of-10", "assistant-1-of-11",
    "assistant-1-of-9", "assistant-1-of-7", "assistant-10-of-100", "assistant-11-of-100",
    "assistant-all", "no-minutes", "video-assistant", "all-four", "audio-only-10pct", "all-but-95",
])
def test_line_modifiers(minutes, assistant_minutes, modality, payer_95, audio_only, expected):
    line = ServiceMinutes("97110", minutes, assistant_minutes=assistant_minutes)
    assert line_modifiers(line, modality=modality, payer_wants_modifier_95=payer_95, audio_only=audio_only) == expected


def test_an_evaluation_line_carries_gp_too():
    assert line_modifiers(ServiceMinutes("97163", 45), modality=CLINIC, payer_wants_modifier_95=True) == ["GP"]


def test_audio_only_needs_a_telehealth_visit():
    with pytest.raises(ValueError, match="audio-only"):
        line_modifiers(ServiceMinutes("97110", 30), modality=CLINIC, payer_wants_modifier_95=True, audio_only=True)


@given(st.integers(min_value=1, max_value=600), st.data())
def test_cq_exactly_when_the_assistant_share_exceeds_10_percent(minutes, data):
    assistant_minutes = data.draw(st.integers(min_value=0, max_value=minutes))
    line = ServiceMinutes("97110", minutes, assistant_minutes=assistant_minutes)
    modifiers = line_modifiers(line, modality=CLINIC, payer_wants_modifier_95=True)
    assert ("CQ" in modifiers) == (Fraction(assistant_minutes, minutes) > Fraction(1, 10))
    assert modifiers[0] == "GP"
