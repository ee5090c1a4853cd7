"""Assessment rules, table by table: input checks, each instrument's scoring with its missing-item
rule (all minimum, all maximum, missing at and past the limit), interpretation against MDC, MCID,
comparability and norms, goniometry angles in any screen orientation, still headers and the
trend chart's geometry. The protocols are the shipped files, read once."""

from __future__ import annotations

import copy
import math
import struct
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from telerehab.assessments import rules
from telerehab.assessments.protocols import PROTOCOLS_DIR, load_directory
from telerehab.assessments.rules import InputProblems, Point

PROTOCOLS = load_directory(Path(PROTOCOLS_DIR))


def scored(protocol_id: str, raw: dict) -> float:
    protocol = PROTOCOLS[protocol_id]
    return rules.score(protocol, rules.parse_inputs(protocol, raw))


def refused(protocol_id: str, raw: dict) -> dict[str, str]:
    with pytest.raises(InputProblems) as caught:
        scored(protocol_id, raw)
    return caught.value.errors


def items(values, start: int = 1) -> dict:
    return {f"item_{i}": v for i, v in enumerate(values, start) if v is not None}


# ---------------------------------------------------------------- questionnaires

PROM_CASES = [
    # (protocol, item values (None = missing), expected score or None when refused)
    ("prom_lefs", [0] * 20, 0),
    ("prom_lefs", [4] * 20, 80),
    ("prom_lefs", [2] * 10 + [3] * 10, 50),
    ("prom_lefs", [4] * 19 + [None], None),  # no rule for missing items: refused
    ("prom_quickdash", [1] * 11, 0),
    ("prom_quickdash", [5] * 11, 100),
    ("prom_quickdash", [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 3], 50),  # mean 3 -> (3 - 1) x 25
    ("prom_quickdash", [3] * 10 + [None], 50),  # one missing: at the limit, scored over 10
    ("prom_quickdash", [2] * 10 + [None], 25),
    ("prom_quickdash", [5] * 9 + [None, None], None),  # two missing: past the limit
    ("prom_odi", [0] * 10, 0),
    ("prom_odi", [5] * 10, 100),
    ("prom_odi", [2, 2, 2, 2, 2, 2, 1, 1, 1, 1], 32),  # 16/50 = 32% (the scoring sheet's example)
    ("prom_odi", [2, 2, 2, 2, 2, 2, 1, 1, 2, None], 35.56),  # 16/45 = 35.5%
    ("prom_odi", [5] * 9 + [None], 100),
    ("prom_odi", [5] * 8 + [None, None], None),
    ("prom_ndi", [0] * 10, 0),
    ("prom_ndi", [5] * 10, 50),
    ("prom_ndi", [2] * 9 + [None], 20),  # the skipped section takes the average of the others
    ("prom_ndi", [1, 2, 3, 4, 5, 0, 1, 2, None, 0], 20),  # 18 over 9 sections, prorated to 10
    ("prom_ndi", [3] * 8 + [None, None], None),
    ("prom_koos_jr", [0] * 7, 0),
    ("prom_koos_jr", [4] * 7, 28),
    ("prom_koos_jr", [4] * 6 + [None], None),
    ("prom_hoos_jr", [0] * 6, 0),
    ("prom_hoos_jr", [4] * 6, 24),
    ("prom_hoos_jr", [None] + [1] * 5, None),
]


@pytest.mark.parametrize(("protocol_id", "values", "expected"), PROM_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(PROM_CASES)])
def test_questionnaire_scoring(protocol_id, values, expected):
    if expected is None:
        errors = refused(protocol_id, items(values))
        missing = sum(v is None for v in values)
        assert f"{missing} missing" in errors["items"]
        assert "no score" in errors["items"]
    else:
        assert scored(protocol_id, items(values)) == expected


def test_an_empty_questionnaire_is_refused_and_says_why():
    for protocol_id in ("prom_lefs", "prom_quickdash", "prom_odi", "prom_ndi", "prom_koos_jr", "prom_hoos_jr"):
        assert "no score" in refused(protocol_id, {})["items"]


PSFS_CASES = [
    ({"score_1": 2, "score_2": 4, "score_3": 6}, 4),
    ({"score_1": 0, "score_2": 0, "score_3": 0}, 0),
    ({"score_1": 10, "score_2": 10, "score_3": 10, "score_4": 10, "score_5": 10}, 10),
    ({"score_1": 3, "score_2": 4, "score_3": 5, "score_4": 7}, 4.75),
    ({"score_1": 3, "score_2": 4}, None),  # fewer than 3 rated
]


@pytest.mark.parametrize(("scores", "expected"), PSFS_CASES)
def test_psfs_is_the_mean_of_three_to_five_rated_activities(scores, expected):
    raw = {"activity_1": "Stairs", "activity_2": "Kneeling", "activity_3": "Running", **scores}
    if expected is None:
        assert "at least 3" in refused("prom_psfs", raw)["items"]
    else:
        assert scored("prom_psfs", raw) == expected


@pytest.mark.parametrize(("pain", "expected"), [(0, 0), (10, 10), (7, 7), (11, None), (-1, None), (2.5, None)])
def test_nprs(pain, expected):
    raw = {"recall": "now", "pain": pain}
    if expected is None:
        assert "pain" in refused("prom_nprs", raw)
    else:
        assert scored("prom_nprs", raw) == expected


@pytest.mark.parametrize(("answered", "expected"), [(4, 41.3), (20, 41.3), (3, None), (0, None)])
def test_promis_needs_four_answered_items_for_a_score(answered, expected):
    raw = {"form": "sf6b", "items_answered": answered, "t_score": 41.3}
    if expected is None:
        assert "at least 4" in refused("prom_promis_pf", raw)["items_answered"]
    else:
        assert scored("prom_promis_pf", raw) == expected


# ---------------------------------------------------------------- performance and ROM scoring

PERFORMANCE_CASES = [
    ("perf_30s_chair_stand", {"stands": 12}, 12),
    ("perf_30s_chair_stand", {"stands": 0}, 0),
    ("perf_30s_chair_stand", {"stands": 9, "arms_used": True}, 0),  # arms needed: the test scores 0
    ("perf_30s_chair_stand", {"stands": 9, "arms_used": "1"}, 0),
    ("perf_30s_chair_stand", {"stands": 9, "arms_used": "0"}, 9),
    ("perf_single_leg_stance", {"side": "left", "eyes": "open", "trial_1": 5, "trial_2": 12.5, "trial_3": 8}, 12.5),
    ("perf_single_leg_stance", {"side": "left", "eyes": "open", "trial_1": 5}, 5),
    ("perf_four_square_step", {"trial_1": 11.2, "trial_2": 9.8}, 9.8),  # lower is better
    ("perf_grip_strength", {"side": "right", "device": "jamar", "trial_1": 30, "trial_2": 32, "trial_3": 31}, 31),
    ("rom_ankle_df_wblt", {"side": "left", "knee": "flexed", "trial_1": 38, "trial_2": 41.5}, 41.5),
    ("perf_5x_sit_to_stand", {"seconds": 12.34}, 12.34),
    ("rom_knee_flexion", {"side": "left", "motion": "active", "position": "supine",
                          "instrument": "universal_goniometer", "angle": 118}, 118),
    ("rom_knee_extension", {"side": "left", "motion": "passive", "instrument": "universal_goniometer", "angle": -5}, -5),
]


@pytest.mark.parametrize(("protocol_id", "raw", "expected"), PERFORMANCE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(PERFORMANCE_CASES)])
def test_performance_and_rom_scoring(protocol_id, raw, expected):
    assert scored(protocol_id, raw) == expected


INPUT_PROBLEMS = [
    ("perf_30s_chair_stand", {"stands": "many"}, "stands", "Must be a number."),
    ("perf_30s_chair_stand", {"stands": True}, "stands", "Must be a number."),
    ("perf_30s_chair_stand", {"stands": 12.5}, "stands", "Must be a whole number."),
    ("perf_30s_chair_stand", {"stands": 61}, "stands", "Must be between 0 and 60."),
    ("perf_30s_chair_stand", {}, "stands", "Required."),
    ("perf_30s_chair_stand", {"stands": " "}, "stands", "Required."),
    ("perf_30s_chair_stand", {"stands": float("nan")}, "stands", "Must be a number."),
    ("perf_30s_chair_stand", {"stands": 5, "speed": 3}, "speed", "Not an input of this assessment."),
    ("perf_30s_chair_stand", {"stands": 5, "arms_used": "maybe"}, "arms_used", "Must be true or false."),
    ("perf_tug", {"seconds": 9, "aid": "crutch"}, "aid", "Must be one of: none, cane, walker, other."),
    ("prom_psfs", {"activity_1": ["a"], "activity_2": "b", "activity_3": "c"}, "activity_1", "Must be text."),
    ("prom_psfs", {"activity_1": "x" * 201, "activity_2": "b", "activity_3": "c"}, "activity_1", "At most 200 characters."),
]


@pytest.mark.parametrize(("protocol_id", "raw", "field", "message"), INPUT_PROBLEMS,
                         ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(INPUT_PROBLEMS)])
def test_bad_inputs_are_refused_naming_the_input(protocol_id, raw, field, message):
    with pytest.raises(InputProblems) as caught:
        rules.parse_inputs(PROTOCOLS[protocol_id], raw)
    assert caught.value.errors[field] == message


def test_form_strings_are_read_as_numbers():
    protocol = PROTOCOLS["perf_tug"]
    assert rules.parse_inputs(protocol, {"seconds": " 9.5 ", "aid": "cane"}) == {"seconds": 9.5, "aid": "cane"}


def test_series_key_and_label_follow_the_series_inputs():
    protocol = PROTOCOLS["rom_knee_flexion"]
    values = {"side": "left", "motion": "active", "position": "supine", "instrument": "visual_estimate", "angle": 90}
    key = rules.series_key(protocol, values)
    assert key == "side=left;motion=active;position=supine"  # the instrument is recorded, not a series
    assert rules.series_label(protocol, key) == "Side: Left · Active or passive: Active · Position: Supine"
    assert rules.series_key(PROTOCOLS["perf_30s_chair_stand"], {"stands": 3}) == ""
    assert rules.series_label(PROTOCOLS["perf_30s_chair_stand"], "") == "All results"


# ---------------------------------------------------------------- interpretation

T0 = datetime(2026, 3, 2, 15, tzinfo=UTC)


def point(value, variant="in_clinic", days=0, result_id=None):
    return Point(result_id or days + 1, T0 + timedelta(days=days), value, variant)


def with_offset(offset: float) -> dict:
    protocol = copy.deepcopy(PROTOCOLS["perf_30s_chair_stand"])
    protocol["comparability"] = {"status": "comparable_with_offset", "offset": offset, "statement": "test", "sources": []}
    return protocol


CHANGE_CASES = [
    # (protocol, earlier, later, comparable, delta, beyond MDC, beyond MCID, better)
    (PROTOCOLS["perf_30s_chair_stand"], point(10), point(13, days=7), True, 3, True, None, True),
    (PROTOCOLS["perf_30s_chair_stand"], point(10), point(12.5, "video", 7), True, 2.5, True, None, True),  # at the MDC
    (PROTOCOLS["perf_30s_chair_stand"], point(10), point(12, "video", 7), True, 2, False, None, True),
    (PROTOCOLS["perf_30s_chair_stand"], point(10), point(7, days=7), True, -3, True, None, False),
    (PROTOCOLS["perf_30s_chair_stand"], point(10), point(10, days=7), True, 0, False, None, None),
    (PROTOCOLS["perf_tug"], point(12), point(10.5, days=7), True, -1.5, True, None, True),  # lower is better
    (PROTOCOLS["perf_tug"], point(12), point(11, days=7), True, -1, False, None, True),
    (PROTOCOLS["perf_tug"], point(12), point(9, "video", 7), False, None, None, None, None),
    (PROTOCOLS["perf_tug"], point(12, "video"), point(9, "video", 7), True, -3, True, None, True),
    (PROTOCOLS["prom_odi"], point(40), point(26, "video", 7), True, -14, True, True, True),
    (PROTOCOLS["prom_odi"], point(40), point(29, days=7), True, -11, True, False, True),
    (PROTOCOLS["prom_odi"], point(40), point(32, days=7), True, -8, False, False, True),
    (PROTOCOLS["rom_hip_flexion"], point(100), point(120, days=7), True, 20, None, None, True),  # no MDC known
    (with_offset(2), point(11), point(10, "video", 7), True, 1, False, None, True),  # video 10 reads 12 in clinic
    (with_offset(2), point(11, "video"), point(10, "video", 7), True, -1, False, None, False),
    (PROTOCOLS["perf_grip_strength"], point(30), point(32.55, days=7), True, 2.55, True, None, True),  # 8.5% of 30
    (PROTOCOLS["perf_grip_strength"], point(30), point(32.5, days=7), True, 2.5, False, None, True),
]


@pytest.mark.parametrize(("protocol", "earlier", "later", "is_comparable", "delta", "beyond_mdc", "beyond_mcid", "better"),
                         CHANGE_CASES, ids=[f"{c[0]['id']}-{i}" for i, c in enumerate(CHANGE_CASES)])
def test_change_against_mdc_mcid_and_comparability(protocol, earlier, later, is_comparable, delta, beyond_mdc,
                                                   beyond_mcid, better):
    change = rules.change_between(protocol, earlier, later, protocol["units"])
    assert (change.comparable, change.delta, change.beyond_mdc, change.beyond_mcid, change.better) == (
        is_comparable, delta, beyond_mdc, beyond_mcid, better)
    if not is_comparable:
        assert change.summary.startswith("Not comparable")


def test_the_video_variant_uses_its_own_mdc_where_the_protocol_gives_one():
    protocol = PROTOCOLS["rom_knee_flexion"]
    clinic = rules.change_between(protocol, point(100), point(111, days=7))
    video = rules.change_between(protocol, point(100, "video"), point(111, "video", 7))
    assert (clinic.mdc, clinic.beyond_mdc) == (10, True)
    assert (video.mdc, video.beyond_mdc) == (12, False)


def test_a_series_reads_each_point_against_baseline_and_the_one_before():
    protocol = PROTOCOLS["perf_tug"]
    readings = rules.interpret_series(protocol, [point(14), point(12, days=7), point(10, "video", 14)], "seconds")
    assert readings[0].since_baseline is None and readings[0].since_last is None
    assert readings[1].since_baseline.delta == -2 and readings[1].since_baseline.beyond_mdc
    assert not readings[2].since_last.comparable and not readings[2].since_baseline.comparable


NORM_CASES = [
    ("perf_30s_chair_stand", 11, 62, "F", {}, "below"),
    ("perf_30s_chair_stand", 12, 62, "F", {}, "within"),
    ("perf_30s_chair_stand", 17, 62, "F", {}, "within"),
    ("perf_30s_chair_stand", 18, 62, "F", {}, "above"),
    ("perf_30s_chair_stand", 13, 62, "M", {}, "below"),  # men 60-64: 14-19
    ("perf_30s_chair_stand", 13, 59, "F", {}, None),  # no band under 60
    ("perf_5x_sit_to_stand", 12.0, 65, "F", {}, "above"),  # slower than 11.4 s at 60-69
    ("perf_5x_sit_to_stand", 11.0, 65, "M", {}, "within"),
    ("perf_tug", 9.5, 75, "M", {}, "within"),
    ("perf_tug", 10.3, 75, "M", {}, "above"),
    ("perf_single_leg_stance", 10, 30, "F", {"eyes": "closed", "side": "left"}, "below"),  # 13.1 s mean
    ("perf_single_leg_stance", 45, 30, "F", {"eyes": "open", "side": "left"}, "above"),
    ("rom_knee_flexion", 150, 40, "M", {}, "above"),
    ("rom_shoulder_rotation", 80, 40, "M", {"position": "at_side"}, None),  # the norm is for 90 deg abduction
    ("rom_cervical", 50, 40, "M", {"direction": "flexion"}, None),  # no norms found
]


@pytest.mark.parametrize(("protocol_id", "value", "age", "sex", "series", "position"), NORM_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(NORM_CASES)])
def test_norms_by_age_sex_and_series(protocol_id, value, age, sex, series, position):
    verdict = rules.norm_verdict(PROTOCOLS[protocol_id], value, age=age, sex=sex, series=series)
    assert (verdict.position if verdict else None) == position
    if verdict:
        assert "[S" in verdict.label  # every norm names its source


@pytest.mark.parametrize(("born", "on", "age"), [
    (date(1950, 4, 2), date(2026, 4, 1), 75), (date(1950, 4, 2), date(2026, 4, 2), 76),
    (date(2000, 2, 29), date(2026, 2, 28), 25), (date(2000, 2, 29), date(2026, 3, 1), 26)])
def test_age_on(born, on, age):
    assert rules.age_on(born, on) == age


# ---------------------------------------------------------------- goniometry

def at(angle_degrees: float, length: float = 200.0) -> tuple[float, float]:
    radians = math.radians(angle_degrees)
    return (length * math.cos(radians), length * math.sin(radians))


ANGLE_CASES = [0.0, 0.01, 0.5, 1, 30, 45, 60, 89.99, 90, 90.01, 120, 135, 150, 179, 179.5, 179.99, 180.0]
TRANSFORMS = {
    "as_is": lambda x, y: (x, y),
    "screen_y_down": lambda x, y: (x, -y),
    "mirrored": lambda x, y: (-x, y),
    "rotated_73": lambda x, y: (x * math.cos(1.274) - y * math.sin(1.274), x * math.sin(1.274) + y * math.cos(1.274)),
    "shifted_into_the_image": lambda x, y: (x + 640, y + 360),
    "scaled_and_shifted": lambda x, y: (0.37 * x + 12, 0.37 * y + 900),
}


@pytest.mark.parametrize("transform", TRANSFORMS, ids=str)
@pytest.mark.parametrize("expected", ANGLE_CASES)
def test_landmark_angle_in_any_orientation_and_near_0_and_180(expected, transform):
    move = TRANSFORMS[transform]
    for base in (0.0, 17.0, 200.0, 333.0):  # where the stationary arm points on the screen
        axis = move(0.0, 0.0)
        stationary = move(*at(base))
        moving = move(*at(base + expected))
        angle = rules.landmark_angle(axis, stationary, moving)
        assert angle == pytest.approx(expected, abs=1e-6)
        # Swapping the arms, or sweeping the other way, reads the same angle.
        assert rules.landmark_angle(axis, moving, stationary) == pytest.approx(expected, abs=1e-6)
        assert rules.landmark_angle(axis, stationary, move(*at(base - expected))) == pytest.approx(expected, abs=1e-6)


def test_arm_length_does_not_change_the_angle():
    assert rules.landmark_angle((0, 0), at(10, 30), at(70, 900)) == pytest.approx(60)


@pytest.mark.parametrize(("stationary", "moving", "refused_point"), [
    ((0, 0), (100, 0), "stationary"), ((100, 0), (3, 3), "moving"), ((4, 0), (0, 100), "stationary")])
def test_a_point_on_the_axis_is_refused(stationary, moving, refused_point):
    with pytest.raises(InputProblems) as caught:
        rules.landmark_angle((0, 0), stationary, moving)
    assert set(caught.value.errors) == {refused_point}


@pytest.mark.parametrize(("interior", "reading", "expected"), [
    (180, "deviation_from_straight", 0), (62, "deviation_from_straight", 118), (0, "deviation_from_straight", 180),
    (155.555, "interior", 155.56), (90, "interior", 90)])
def test_goniometer_reading(interior, reading, expected):
    assert rules.goniometer_reading(interior, reading) == expected


def test_a_knee_still_reads_flexion_from_trochanter_knee_and_malleolus():
    # Screen coordinates (y down): thigh horizontal, shank hanging 60 degrees below it.
    trochanter, knee = (100.0, 300.0), (400.0, 300.0)
    malleolus = (knee[0] + 250 * math.cos(math.radians(60)), knee[1] + 250 * math.sin(math.radians(60)))
    interior = rules.landmark_angle(knee, trochanter, malleolus)
    assert rules.goniometer_reading(interior, PROTOCOLS["rom_knee_flexion"]["goniometry"]["reading"]) == 60


@pytest.mark.parametrize(("points", "problems"), [
    ({"axis": [1, 1], "stationary": [2, 2], "moving": [3, 3]}, set()),
    ({"axis": [0, 0], "stationary": [640, 480], "moving": [3, 3]}, set()),
    ({"axis": [641, 1], "stationary": [2, 2], "moving": [3, 3]}, {"axis"}),
    ({"axis": [1, -1], "stationary": [2, 2]}, {"axis", "moving"}),
    ({"axis": [1, None], "stationary": ["2", 2], "moving": [True, 3]}, {"axis", "stationary", "moving"}),
    ({"axis": [1, float("inf")], "stationary": [2], "moving": "3,3"}, {"axis", "stationary", "moving"}),
])
def test_landmark_problems(points, problems):
    assert set(rules.landmark_problems(points, 640, 480)) == problems


# ---------------------------------------------------------------- still images

def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg_header(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@pytest.mark.parametrize(("data", "expected"), [
    (png(4, 3), ("image/png", 4, 3)),
    (jpeg_header(1280, 720), ("image/jpeg", 1280, 720)),
    (b"GIF89a\x01\x00\x01\x00", None),
    (b"\x89PNG\r\n\x1a\n", None),
    (b"\xff\xd8\xff\xe0\x00", None),
    (b"", None),
])
def test_image_dimensions(data, expected):
    assert rules.image_dimensions(data) == expected


@pytest.mark.parametrize(("data", "problem"), [
    (b"", "Choose an image file."),
    (b"<svg/>", "Only PNG or JPEG images are accepted."),
    (jpeg_header(9000, 10), "The image is wider or taller than 8000 pixels."),
    (b"\xff\xd8" + b"\x00" * (8 * 1024 * 1024), "The image is larger than 8 MB."),
    (png(2, 2), None),
])
def test_still_problem(data, problem):
    assert rules.still_problem(data) == problem


# ---------------------------------------------------------------- trend chart

@pytest.mark.parametrize(("span", "step"), [(0, 1), (4, 1), (10, 2), (12, 2.5), (1, 0.2), (95, 20), (0.03, 0.01), (250, 50)])
def test_nice_step(span, step):
    assert rules.nice_step(span) == pytest.approx(step)


def test_the_chart_places_points_by_time_and_value_and_flags_pairs_that_are_not_comparable():
    protocol = PROTOCOLS["perf_tug"]
    chart = rules.trend_chart(protocol, [point(14), point(12, days=7), point(10, "video", 14), point(9, "video", 28)])
    xs = [p.x for p in chart.points]
    ys = [p.y for p in chart.points]
    assert xs == sorted(xs) and xs[3] - xs[2] == pytest.approx(2 * (xs[2] - xs[1]), abs=0.2)
    assert ys == sorted(ys)  # lower values sit lower on the screen (larger y)
    assert all(chart.top <= y <= chart.bottom for y in ys)
    assert [s.comparable for s in chart.segments] == [True, False, True]
    top, bottom = chart.band  # baseline 14 +/- 1.14 s
    assert top < chart.points[0].y < bottom
    labels = [float(label) for _, label in chart.y_ticks]
    assert labels[0] <= 9 and labels[-1] >= 14 + 1.14


def test_a_single_point_sits_in_the_middle_and_no_mdc_means_no_band():
    chart = rules.trend_chart(PROTOCOLS["rom_hip_flexion"], [point(100)])
    assert chart.points[0].x == (chart.left + chart.right) / 2
    assert chart.band is None and chart.segments == ()


def test_interchangeable_variants_join_with_an_ordinary_line():
    chart = rules.trend_chart(PROTOCOLS["perf_30s_chair_stand"], [point(10), point(11, "video", 7)])
    assert [s.comparable for s in chart.segments] == [True]


# ---------------------------------------------------------------- pose proposals

KNEE = PROTOCOLS["rom_knee_flexion"]["goniometry"]
SEEN = {23: (0.25, 0.5, 0.9), 25: (0.5, 0.5, 0.95), 27: (0.5, 0.9, 0.8),
        24: (0.3, 0.5, 0.9), 26: (0.6, 0.5, 0.3), 28: (0.6, 0.9, 0.9)}


@pytest.mark.parametrize(("goniometry", "side", "pose", "expected"), [
    (KNEE, "left", SEEN, {"axis": [320.0, 240.0], "stationary": [160.0, 240.0], "moving": [320.0, 432.0]}),
    (KNEE, "right", SEEN, None),  # the right knee's visibility is 0.3
    (KNEE, "left", {23: (0.25, 0.5, 0.9), 25: (0.5, 0.5, 0.95)}, None),  # no ankle
    (KNEE, "left", {23: (-0.1, 0.5, 0.9), 25: (0.5, 0.5, 0.5), 27: (1.2, 1.05, 0.9)},
     {"axis": [320.0, 240.0], "stationary": [0.0, 240.0], "moving": [640.0, 480.0]}),  # clamped to the image
    (KNEE, "middle", SEEN, None),
    (PROTOCOLS["rom_shoulder_flexion"]["goniometry"], "left", {11: (0.5, 0.2, 0.9), 23: (0.5, 0.6, 0.9), 13: (0.7, 0.1, 0.9)},
     {"axis": [320.0, 96.0], "stationary": [320.0, 288.0], "moving": [448.0, 48.0]}),
])
def test_propose_landmarks(goniometry, side, pose, expected):
    assert rules.propose_landmarks(goniometry, side, pose, 640, 480) == expected


@pytest.mark.parametrize(("proposed", "final", "source"), [
    (None, {"axis": [1, 1], "stationary": [50, 1], "moving": [1, 50]}, "manual"),
    ({"axis": [1, 1], "stationary": [50, 1], "moving": [1, 50]}, {"axis": [1, 1], "stationary": [50, 1], "moving": [1, 50]}, "auto"),
    ({"axis": [1, 1], "stationary": [50, 1], "moving": [1, 50]}, {"axis": [1.5, 1.5], "stationary": [50, 1], "moving": [1, 50]}, "auto"),
    ({"axis": [1, 1], "stationary": [50, 1], "moving": [1, 50]}, {"axis": [1, 1], "stationary": [50, 2], "moving": [1, 50]}, "auto_adjusted"),
])
def test_landmark_source(proposed, final, source):
    assert rules.landmark_source(proposed, final) == source
