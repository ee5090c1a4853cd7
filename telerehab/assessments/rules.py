"""Assessment rules: inputs, scoring with missing-item rules, interpretation against MDC, MCID and
norms, goniometry angles, still-image headers and the trend chart's geometry.

Pure: protocol documents (plain dicts, already checked against protocols/protocol.schema.json) and
plain values in, plain values out. No Flask, no SQLAlchemy, no clock.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class Variant(StrEnum):
    IN_CLINIC = "in_clinic"
    VIDEO = "video"


class Comparability(StrEnum):
    INTERCHANGEABLE = "interchangeable"
    WITH_OFFSET = "comparable_with_offset"
    NOT_COMPARABLE = "not_comparable"


class LandmarkSource(StrEnum):
    MANUAL = "manual"  # the therapist placed all three points
    AUTO = "auto"  # proposed by a pose model and accepted as proposed
    AUTO_ADJUSTED = "auto_adjusted"  # proposed, then moved by the therapist


VARIANT_LABELS = {Variant.IN_CLINIC: "In clinic", Variant.VIDEO: "Video"}
LANDMARKS = ("axis", "stationary", "moving")
MAX_TEXT_INPUT = 200
MAX_OVERRIDE_REASON = 500
MAX_AMENDMENT_REASON = 500  # why a result was corrected or withdrawn


class InputProblems(Exception):
    """Inputs refused: input id (or "items" for a questionnaire as a whole) -> message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# ---------------------------------------------------------------- protocol checks beyond the schema

def protocol_problems(doc: Mapping) -> list[str]:
    """Cross-field rules JSON Schema cannot state; each message starts with the field's path."""
    problems: list[str] = []
    inputs = {item["id"]: item for item in doc["inputs"]}
    if len(inputs) != len(doc["inputs"]):
        problems.append("inputs: two inputs share an id")
    for item in doc["inputs"]:
        if item["type"] in ("number", "integer") and item["min"] > item["max"]:
            problems.append(f"inputs.{item['id']}.min: greater than max")
    scoring = doc["scoring"]
    named = [scoring["input"]] if "input" in scoring else list(scoring.get("inputs", ()))
    named += [scoring[key] for key in ("zero_if", "answered_input") if key in scoring]
    for name in named:
        if name not in inputs:
            problems.append(f"scoring: names {name!r}, which is not one of the inputs")
    for name in ([scoring["input"]] if "input" in scoring else scoring.get("inputs", [])):
        if name in inputs and inputs[name]["type"] not in ("number", "integer"):
            problems.append(f"scoring: input {name!r} is not a number")
    if "zero_if" in scoring and inputs.get(scoring["zero_if"], {}).get("type") not in (None, "boolean"):
        problems.append("scoring.zero_if: must name a boolean input")
    goniometry = doc.get("goniometry")
    if goniometry and goniometry["input"] != scoring.get("input"):
        problems.append("goniometry.input: must be the scored input")
    if goniometry and goniometry.get("pose") and "side" not in inputs:
        problems.append("goniometry.pose: needs a side input to know which side's joints to use")
    series = {i["id"]: {c[0] for c in i.get("choices", ())} for i in doc["inputs"] if i.get("series")}
    for index, entry in enumerate(doc["norms"]["entries"]):
        if entry["age_min"] > entry["age_max"]:
            problems.append(f"norms.entries.{index}.age_min: greater than age_max")
        for key, value in entry.get("series", {}).items():
            if key not in series:
                problems.append(f"norms.entries.{index}.series: {key!r} is not a series input")
            elif value not in series[key]:
                problems.append(f"norms.entries.{index}.series.{key}: {value!r} is not one of its choices")
    return problems


# ---------------------------------------------------------------- inputs

_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no"}


def parse_inputs(protocol: Mapping, raw: Mapping[str, object]) -> dict[str, object]:
    """The protocol's inputs from `raw` (JSON values, or form strings), checked; raises InputProblems.

    Blank values count as not given. Unknown names are refused rather than silently kept.
    """
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    known = {item["id"] for item in protocol["inputs"]}
    for name in raw:
        if name not in known:
            errors[str(name)[:40]] = "Not an input of this assessment."
    for item in protocol["inputs"]:
        value = raw.get(item["id"])
        if value is None or (isinstance(value, str) and not value.strip()):
            if item["type"] == "boolean":
                values[item["id"]] = False
            elif item.get("required"):
                errors[item["id"]] = "Required."
            continue
        try:
            values[item["id"]] = _parse_value(item, value)
        except ValueError as error:
            errors[item["id"]] = str(error)
    if errors:
        raise InputProblems(errors)
    return values


def _parse_value(item: Mapping, value: object) -> object:
    kind = item["type"]
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("Must be true or false.")
    if kind == "choice":
        allowed = [c[0] for c in item["choices"]]
        if value not in allowed:
            raise ValueError("Must be one of: " + ", ".join(allowed) + ".")
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise ValueError("Must be text.")
        if len(value.strip()) > MAX_TEXT_INPUT:
            raise ValueError(f"At most {MAX_TEXT_INPUT} characters.")
        return value.strip()
    number = _number(value, integer=kind == "integer")
    if not item["min"] <= number <= item["max"]:
        raise ValueError(f"Must be between {_fmt(item['min'])} and {_fmt(item['max'])}.")
    return number


def _number(value: object, *, integer: bool) -> float | int:
    if isinstance(value, bool):
        raise ValueError("Must be a number.")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("Must be a number.") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("Must be a number.")
    if integer:
        if value != int(value):
            raise ValueError("Must be a whole number.")
        return int(value)
    return float(value)


def _fmt(number: float) -> str:
    return f"{number:g}"


def series_values(protocol: Mapping, values: Mapping[str, object]) -> dict[str, str]:
    """The values of the series inputs (side, direction, device...): results trend per combination."""
    return {i["id"]: str(values[i["id"]]) for i in protocol["inputs"] if i.get("series") and i["id"] in values}


def series_key(protocol: Mapping, values: Mapping[str, object]) -> str:
    return ";".join(f"{k}={v}" for k, v in series_values(protocol, values).items())


def series_label(protocol: Mapping, key: str) -> str:
    """`side=left;motion=active` as `Side: Left · Active or passive: Active` (the protocol's labels)."""
    if not key:
        return "All results"
    inputs = {i["id"]: i for i in protocol["inputs"]}
    parts = []
    for pair in key.split(";"):
        name, _, value = pair.partition("=")
        item = inputs.get(name, {"label": name})
        parts.append(f"{item['label']}: {dict(map(tuple, item.get('choices', ()))).get(value, value)}")
    return " · ".join(parts)


# ---------------------------------------------------------------- scoring

def score(protocol: Mapping, values: Mapping[str, object]) -> float:
    """The result, exactly as the protocol's scoring rule defines it; raises InputProblems to refuse."""
    scoring = protocol["scoring"]
    method = scoring["method"]
    if method == "single":
        return _score_single(scoring, values)
    present = [values[name] for name in scoring["inputs"] if values.get(name) is not None]
    if method in ("best", "mean"):
        if not present:
            raise InputProblems({scoring["inputs"][0]: "Required."})
        if method == "mean":
            return _round(sum(present) / len(present))
        return _round(max(present) if scoring["better"] == "higher" else min(present))
    _check_missing(scoring, len(scoring["inputs"]), len(present))
    total = sum(present)
    if method == "sum":
        return _round(total)
    if method == "mean_item_minus_one_times_25":
        return _round((total / len(present) - 1) * 25)
    if method == "percent_of_answered":
        return _round(total / (scoring["item_max"] * len(present)) * 100)
    if method == "prorated_sum":
        return _round(total * len(scoring["inputs"]) / len(present))
    if method == "mean_of_rated":
        return _round(total / len(present))
    raise ValueError(f"unknown scoring method {method!r}")


def _score_single(scoring: Mapping, values: Mapping[str, object]) -> float:
    if "answered_input" in scoring:
        answered = values.get(scoring["answered_input"], 0)
        if answered < scoring["min_answered"]:
            raise InputProblems({scoring["answered_input"]: (
                f"{answered} items answered: at least {scoring['min_answered']} are needed for a score. "
                + scoring.get("missing_rule", ""))})
    if scoring.get("zero_if") and values.get(scoring["zero_if"]):
        return 0.0
    value = values.get(scoring["input"])
    if value is None:
        raise InputProblems({scoring["input"]: "Required."})
    return _round(value)


def _check_missing(scoring: Mapping, expected: int, answered: int) -> None:
    missing = expected - answered
    max_missing = scoring.get("max_missing")
    min_answered = scoring.get("min_answered", 1)
    if (max_missing is not None and missing > max_missing) or answered < min_answered:
        if max_missing is not None:
            limit = f"at most {max_missing} may be missing" if max_missing else "every item must be answered"
        else:
            limit = f"at least {min_answered} must be answered"
        raise InputProblems({"items": (
            f"{answered} of {expected} answered, {missing} missing: {limit}, so there is no score. "
            + scoring["missing_rule"])})


def _round(value: float) -> float:
    return round(float(value), 2) + 0.0  # + 0.0 turns -0.0 into 0.0


# ---------------------------------------------------------------- interpretation

@dataclass(frozen=True)
class Point:
    """One result in a series, as interpretation needs it."""

    result_id: int
    recorded_at: datetime
    value: float
    variant: str


@dataclass(frozen=True)
class Change:
    delta: float | None  # later minus earlier, on the in-clinic scale; None when not comparable
    comparable: bool
    offset_applied: bool
    mdc: float | None
    mcid: float | None
    beyond_mdc: bool | None  # None: no MDC known
    beyond_mcid: bool | None
    better: bool | None  # None: no change or not comparable
    summary: str


@dataclass(frozen=True)
class NormVerdict:
    position: str  # below, within, above
    label: str


@dataclass(frozen=True)
class Reading:
    point: Point
    since_baseline: Change | None
    since_last: Change | None


def comparable(protocol: Mapping, first: str, second: str) -> bool:
    return first == second or protocol["comparability"]["status"] != Comparability.NOT_COMPARABLE


def on_clinic_scale(protocol: Mapping, value: float, variant: str) -> float:
    """A video result read on the in-clinic scale, where the protocol gives an offset."""
    comparability = protocol["comparability"]
    if variant == Variant.VIDEO and comparability["status"] == Comparability.WITH_OFFSET:
        return value + comparability["offset"]
    return value


def _threshold(figure: Mapping | None, reference: float) -> float | None:
    if not figure or figure.get("value") is None:
        return None
    if figure.get("relative"):
        return abs(reference) * figure["value"] / 100
    return float(figure["value"])


def mdc_figure(protocol: Mapping, variant: str) -> Mapping:
    """The variant's own MDC where the protocol gives one (instruments differ), else the protocol's."""
    variant_doc = protocol["variants"].get(variant) or {}
    return variant_doc.get("mdc") or protocol["mdc"]


def change_between(protocol: Mapping, earlier: Point, later: Point, units: str = "") -> Change:
    if not comparable(protocol, earlier.variant, later.variant):
        return Change(None, False, False, None, None, None, None, None,
                      f"Not comparable: {VARIANT_LABELS[Variant(earlier.variant)].lower()} and "
                      f"{VARIANT_LABELS[Variant(later.variant)].lower()} results of this test do not agree "
                      "well enough to compare.")
    start = on_clinic_scale(protocol, earlier.value, earlier.variant)
    end = on_clinic_scale(protocol, later.value, later.variant)
    offset_applied = (start, end) != (earlier.value, later.value)
    delta = _round(end - start)
    mdc = _threshold(mdc_figure(protocol, later.variant), start)
    mcid = _threshold(protocol["mcid"], start)
    beyond_mdc = None if mdc is None else abs(delta) >= mdc
    beyond_mcid = None if mcid is None else abs(delta) >= mcid
    better = None if delta == 0 else (delta > 0) == (protocol["direction"] == "higher_better")
    return Change(delta, True, offset_applied, mdc, mcid, beyond_mdc, beyond_mcid, better,
                  _summary(delta, better, mdc, mcid, beyond_mdc, beyond_mcid, units))


def _summary(delta, better, mdc, mcid, beyond_mdc, beyond_mcid, units) -> str:
    if delta == 0:
        return "No change."
    way = "better" if better else "worse"
    text = f"{delta:+g} {units}".rstrip() + f" ({way})"
    if beyond_mdc is None:
        text += "; no MDC known, so real change cannot be judged"
    elif beyond_mdc:
        text += f"; beyond the MDC of {mdc:g}: a real change"
    else:
        text += f"; within the MDC of {mdc:g}: may be measurement error"
    if beyond_mcid is not None:
        text += f"; {'reaches' if beyond_mcid else 'below'} the MCID of {mcid:g}"
    return text + "."


def interpret_series(protocol: Mapping, points: Sequence[Point], units: str = "") -> list[Reading]:
    """Each point against the series' baseline (its first point) and against the point before it."""
    readings = []
    for index, point in enumerate(points):
        if index == 0:
            readings.append(Reading(point, None, None))
            continue
        readings.append(Reading(point, change_between(protocol, points[0], point, units),
                                change_between(protocol, points[index - 1], point, units)))
    return readings


def norm_verdict(protocol: Mapping, value: float, *, age: int, sex: str,
                 series: Mapping[str, str]) -> NormVerdict | None:
    """Where the value sits against the first norm that fits the patient's age, sex and series."""
    for entry in protocol["norms"]["entries"]:
        if entry["sex"] not in ("any", sex) or not entry["age_min"] <= age <= entry["age_max"]:
            continue
        if any(series.get(k) != v for k, v in entry.get("series", {}).items()):
            continue
        if "mean" in entry:
            position = "above" if value > entry["mean"] else "below" if value < entry["mean"] else "within"
        elif "low" in entry and value < entry["low"]:
            position = "below"
        elif "high" in entry and value > entry["high"]:
            position = "above"
        else:
            position = "within"
        return NormVerdict(position, entry["label"])
    return None


# ---------------------------------------------------------------- goniometry

MIN_ARM_LENGTH = 5.0  # pixels: shorter arms give a meaningless direction


def landmark_angle(axis: tuple[float, float], stationary: tuple[float, float],
                   moving: tuple[float, float]) -> float:
    """The angle at `axis` between the stationary and the moving arm, 0 to 180 degrees.

    atan2 of the cross and dot products stays exact near 0 and 180 degrees, where acos of a
    normalised dot product loses precision; its absolute cross product makes the answer the same
    whichever way the screen's y axis points or the limb faces.
    """
    ax, ay = stationary[0] - axis[0], stationary[1] - axis[1]
    bx, by = moving[0] - axis[0], moving[1] - axis[1]
    for name, (x, y) in (("stationary", (ax, ay)), ("moving", (bx, by))):
        if math.hypot(x, y) < MIN_ARM_LENGTH:
            raise InputProblems({name: f"The {name} point is on the axis: place it along the limb segment."})
    return math.degrees(math.atan2(abs(ax * by - ay * bx), ax * bx + ay * by))


def goniometer_reading(interior: float, reading: str) -> float:
    """The protocol's reading of the angle: as is, or 180 minus it (0 when the limb is straight)."""
    return _round(interior if reading == "interior" else 180.0 - interior)


def landmark_problems(points: Mapping[str, object], width: int, height: int) -> dict[str, str]:
    """Each landmark must be a pair of numbers inside the image."""
    problems = {}
    for name in LANDMARKS:
        point = points.get(name)
        if (not isinstance(point, list | tuple) or len(point) != 2
                or not all(isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) for c in point)):
            problems[name] = "Place this point on the image."
        elif not (0 <= point[0] <= width and 0 <= point[1] <= height):
            problems[name] = "This point is outside the image."
    return problems


# MediaPipe Pose (BlazePose) landmark numbers of each joint, per side of the body.
POSE_JOINTS = {
    "left": {"shoulder": 11, "elbow": 13, "wrist": 15, "hip": 23, "knee": 25, "ankle": 27},
    "right": {"shoulder": 12, "elbow": 14, "wrist": 16, "hip": 24, "knee": 26, "ankle": 28},
}
MIN_POSE_VISIBILITY = 0.5
SAME_POINT_PIXELS = 1.0  # a proposed point moved less than this was accepted as proposed


def propose_landmarks(goniometry: Mapping, side: str, pose: Mapping[int, tuple[float, float, float]],
                      width: int, height: int) -> dict[str, list[float]] | None:
    """The three landmarks in image pixels from a pose model's normalised joints (x, y, visibility),
    or None when the protocol names no joints or one of them is not clearly visible."""
    joints = goniometry.get("pose")
    if joints is None or side not in POSE_JOINTS:
        return None
    points = {}
    for name in LANDMARKS:
        found = pose.get(POSE_JOINTS[side][joints[name]])
        if found is None or found[2] < MIN_POSE_VISIBILITY:
            return None
        x, y = min(max(found[0], 0.0), 1.0) * width, min(max(found[1], 0.0), 1.0) * height
        points[name] = [round(x, 1), round(y, 1)]
    return points


def landmark_source(proposed: Mapping[str, Sequence[float]] | None,
                    final: Mapping[str, Sequence[float]]) -> LandmarkSource:
    """Manual without a proposal; auto when every point stayed where the model put it; else adjusted."""
    if not proposed:
        return LandmarkSource.MANUAL
    moved = any(math.dist(proposed[name], final[name]) >= SAME_POINT_PIXELS for name in LANDMARKS)
    return LandmarkSource.AUTO_ADJUSTED if moved else LandmarkSource.AUTO


# ---------------------------------------------------------------- still images

MAX_STILL_BYTES = 8 * 1024 * 1024
MAX_STILL_SIDE = 8000


def image_dimensions(data: bytes) -> tuple[str, int, int] | None:
    """(content type, width, height) of a PNG or JPEG, read from its header; None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return ("image/png", width, height) if width and height else None
    if data[:2] == b"\xff\xd8":
        return _jpeg_dimensions(data)
    return None


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_dimensions(data: bytes) -> tuple[str, int, int] | None:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        length = struct.unpack(">H", data[index + 2:index + 4])[0]
        if marker in _SOF_MARKERS:
            if index + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[index + 5:index + 9])
            return ("image/jpeg", width, height) if width and height else None
        index += 2 + length
    return None


def still_problem(data: bytes) -> str | None:
    if not data:
        return "Choose an image file."
    if len(data) > MAX_STILL_BYTES:
        return f"The image is larger than {MAX_STILL_BYTES // (1024 * 1024)} MB."
    header = image_dimensions(data)
    if header is None:
        return "Only PNG or JPEG images are accepted."
    if max(header[1], header[2]) > MAX_STILL_SIDE:
        return f"The image is wider or taller than {MAX_STILL_SIDE} pixels."
    return None


# ---------------------------------------------------------------- trend chart geometry

@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    value: float
    variant: str
    when: datetime
    result_id: int


@dataclass(frozen=True)
class ChartSegment:
    x1: float
    y1: float
    x2: float
    y2: float
    comparable: bool

    @property
    def middle(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    points: tuple[ChartPoint, ...]
    segments: tuple[ChartSegment, ...]
    band: tuple[float, float] | None  # y of the band's top and bottom edge (MDC around the baseline)
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str], ...]


def nice_step(span: float, target_ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about `target_ticks` ticks."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def trend_chart(protocol: Mapping, points: Sequence[Point], *, width: int = 560, height: int = 260) -> Chart:
    """Where to draw each point, each line between points (flagged where the pair is not
    comparable), the MDC band around the baseline, and the axes' ticks."""
    left, top, right, bottom = 60.0, 16.0, width - 20.0, height - 40.0
    values = [p.value for p in points]
    band_values = None
    if points:
        mdc = _threshold(mdc_figure(protocol, points[0].variant), points[0].value)
        if mdc is not None:
            band_values = (points[0].value - mdc, points[0].value + mdc)
            values += list(band_values)
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high == low:
        low, high = low - 1, high + 1
    step = nice_step(high - low)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step

    def y_of(value: float) -> float:
        return round(bottom - (value - low) / (high - low) * (bottom - top), 1)

    times = [p.recorded_at.timestamp() for p in points]
    first, last = (min(times), max(times)) if times else (0.0, 0.0)

    def x_of(moment: float) -> float:
        if last == first:
            return round((left + right) / 2, 1)
        return round(left + 12 + (moment - first) / (last - first) * (right - left - 24), 1)

    chart_points = tuple(ChartPoint(x_of(t), y_of(p.value), p.value, p.variant, p.recorded_at, p.result_id)
                         for p, t in zip(points, times, strict=True))
    segments = tuple(
        ChartSegment(a.x, a.y, b.x, b.y, comparable(protocol, a.variant, b.variant))
        for a, b in itertools.pairwise(chart_points))
    ticks = []
    value = low
    while value <= high + step / 1000:
        ticks.append((y_of(value), f"{_round(value):g}"))
        value += step
    x_ticks = tuple((p.x, p.when.strftime("%d %b")) for p in chart_points)
    band = (y_of(band_values[1]), y_of(band_values[0])) if band_values else None
    return Chart(width, height, left, top, right, bottom, chart_points, segments, band, tuple(ticks), x_ticks)


def age_on(born: date, day: date) -> int:
    """Whole years of age on `day` (both dates)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))
