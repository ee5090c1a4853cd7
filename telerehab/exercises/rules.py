"""Pure rules for home exercise and check-ins: local dates, the upload window, program versions,
library search, the month calendar of data days.

No Flask, no SQLAlchemy: plain values in, plain values out; time is always a parameter.

The RTM data day (reference/rtm-billing-2026.md §1.2 item 4) is the calendar date in the
patient's own IANA timezone at the moment the device recorded the check-in (`recorded_at`), not
the moment the server received it. It is computed once, when the check-in is stored, and kept.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class BodyRegion(StrEnum):
    NECK = "neck"
    SHOULDER = "shoulder"
    ELBOW_WRIST_HAND = "elbow_wrist_hand"
    TRUNK = "trunk"  # upper and lower back, core
    HIP = "hip"
    KNEE = "knee"
    ANKLE_FOOT = "ankle_foot"
    BALANCE = "balance"


REGION_LABELS = {
    BodyRegion.NECK: "Neck",
    BodyRegion.SHOULDER: "Shoulder",
    BodyRegion.ELBOW_WRIST_HAND: "Elbow, wrist and hand",
    BodyRegion.TRUNK: "Back and core",
    BodyRegion.HIP: "Hip",
    BodyRegion.KNEE: "Knee",
    BodyRegion.ANKLE_FOOT: "Ankle and foot",
    BodyRegion.BALANCE: "Balance",
}


class Difficulty(StrEnum):
    EASY = "easy"
    OK = "ok"
    HARD = "hard"


class CheckInSource(StrEnum):
    WEB = "web"
    API = "api"
    SMS = "sms"


# ---------------------------------------------------------------- limits

PAIN_MIN, PAIN_MAX = 0, 10  # NPRS
SETS_RANGE = (1, 20)
REPS_RANGE = (1, 200)
HOLD_SECONDS_RANGE = (0, 600)
TIMES_PER_DAY_RANGE = (1, 6)
DAYS_PER_WEEK_RANGE = (1, 7)
SETS_DONE_RANGE = (0, 50)
REPS_DONE_RANGE = (0, 1000)
MAX_PROGRAM_ITEMS = 30
# How far ahead a new program version may be dated.
MAX_EFFECTIVE_AHEAD_DAYS = 365

# A phone's clock may run a little fast; beyond this, a future `recorded_at` is refused.
CLOCK_SKEW = timedelta(minutes=5)
# Offline phones upload late: accepted up to this many days after recording, unless the clinic
# chose otherwise (exercises.models.CheckInSettings).
DEFAULT_LATE_UPLOAD_DAYS = 7
LATE_UPLOAD_DAYS_RANGE = (1, 30)


# ---------------------------------------------------------------- time

def local_date_of(recorded_at: datetime, timezone: str) -> date:
    """The date in `timezone` at the instant `recorded_at`: the RTM data day of a check-in."""
    if recorded_at.tzinfo is None or recorded_at.utcoffset() is None:
        raise ValueError("recorded_at must be timezone-aware")
    return recorded_at.astimezone(ZoneInfo(timezone)).date()


def possible_local_dates(recorded_at: datetime) -> tuple[date, date]:
    """The first and last date that any timezone (UTC-12:00 to UTC+14:00) shows at the aware instant
    `recorded_at`: its local date is one of them or between, whoever the patient is."""
    instant = recorded_at.astimezone(UTC)
    return (instant - timedelta(hours=12)).date(), (instant + timedelta(hours=14)).date()


def recorded_at_problem(
    recorded_at: datetime, *, received_at: datetime, late_upload_days: int, skew: timedelta = CLOCK_SKEW
) -> str | None:
    """Why a check-in recorded at `recorded_at` and received at `received_at` is refused, or None.

    Both edges are inclusive: exactly `skew` ahead is accepted, and so is exactly
    `late_upload_days` x 24 hours late.
    """
    if recorded_at.tzinfo is None or recorded_at.utcoffset() is None:
        return "Give recorded_at with its timezone offset, e.g. 2026-03-02T08:30:00-06:00."
    if recorded_at - received_at > skew:
        minutes = int(skew.total_seconds() // 60)
        return (f"recorded_at is in the future (more than {minutes} minutes ahead of the server's clock); "
                "check the device's date and time.")
    if received_at - recorded_at > timedelta(days=late_upload_days):
        return (f"recorded_at is more than {late_upload_days} days ago: the clinic accepts late check-ins "
                f"for {late_upload_days} days.")
    return None


# ---------------------------------------------------------------- program versions

def version_in_force(versions: Iterable[tuple[int, date]], day: date) -> int | None:
    """The number of the program version in force on `day`, from (version, effective_from) pairs.

    A version is in force from its effective date until a later version takes effect. Two
    versions effective on the same day (an edit, then a correction) resolve to the later one.
    """
    candidates = [(effective, number) for number, effective in versions if effective <= day]
    return max(candidates)[1] if candidates else None


def item_in_force(start: date, end: date | None, day: date) -> bool:
    """Whether a program item dated start..end (both inclusive; no end: open) applies on `day`."""
    return start <= day and (end is None or day <= end)


def effective_from_problem(effective_from: date, *, today: date, previous: date | None) -> str | None:
    """A new version takes effect today or later (history is never rewritten), and not before the
    version it replaces."""
    if effective_from < today:
        return "A program change takes effect today or later; earlier days keep the program they had."
    if previous is not None and effective_from < previous:
        return f"The current version takes effect on {previous.isoformat()}; date this one on or after it."
    if effective_from > today + timedelta(days=MAX_EFFECTIVE_AHEAD_DAYS):
        return "Date the change within a year."
    return None


def item_dates_problem(start: date, end: date | None) -> str | None:
    if end is not None and end < start:
        return "The end date is before the start date."
    return None


# ---------------------------------------------------------------- check-in content

def empty_checkin_problem(*, exercises: int, pain: int | None, difficulty: str | None, note: str | None,
                          all_done: bool) -> str | None:
    if exercises or all_done or pain is not None or difficulty or (note or "").strip():
        return None
    return "Tick an exercise you did, or give your pain or how hard it was."


# ---------------------------------------------------------------- the library

@dataclass(frozen=True)
class Dosage:
    sets: int
    reps: int
    hold_seconds: int = 0
    times_per_day: int = 1
    days_per_week: int = 7


@dataclass(frozen=True)
class Exercise:
    """One exercise of the library, ours (clinic_id None) or a clinic's own."""

    key: str  # library slug, or "clinic:<id>"
    name: str
    body_region: str
    instructions: str
    equipment: tuple[str, ...]
    media: str  # a path under the media store, or "" when there is no picture or clip yet
    dosage: Dosage
    clinic_id: int | None = None
    words: str = field(default="", compare=False, repr=False)

    @property
    def region_label(self) -> str:
        return REGION_LABELS.get(self.body_region, self.body_region)


CLINIC_KEY = re.compile(r"^clinic:([1-9][0-9]{0,9})$")
LIBRARY_KEY = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MEDIA_PATH = re.compile(r"^(?:[A-Za-z0-9_-]+/)*[A-Za-z0-9_-]+\.(?:png|jpg|jpeg|webp|gif|mp4|webm)$")


def clinic_exercise_key(exercise_id: int) -> str:
    return f"clinic:{exercise_id}"


def clinic_exercise_id(key: str) -> int | None:
    match = CLINIC_KEY.match(key or "")
    return int(match.group(1)) if match else None


def normalise_equipment(items: Iterable[str]) -> tuple[str, ...]:
    """Lower case, single spaces, no duplicates, in the order given."""
    seen: list[str] = []
    for item in items:
        cleaned = " ".join(item.lower().split())
        if cleaned and cleaned not in seen:
            seen.append(cleaned)
    return tuple(seen)


def media_problem(path: str) -> str | None:
    if path == "" or MEDIA_PATH.match(path):
        return None
    return "A relative path to an image or clip (png, jpg, webp, gif, mp4 or webm), or empty."


def search_words(exercise: Exercise) -> str:
    return " ".join([exercise.name, exercise.body_region.replace("_", " "), exercise.region_label,
                     *exercise.equipment]).lower()


NO_EQUIPMENT = "none"


def search_exercises(
    exercises: Sequence[Exercise], *, query: str | None = None, region: str | None = None,
    equipment: str | None = None,
) -> list[Exercise]:
    """Exercises matching every word of `query` (in the name, region or equipment), of `region`,
    and needing `equipment` ("none": exercises that need nothing), sorted by name."""
    words = (query or "").lower().split()
    wanted = " ".join((equipment or "").lower().split())
    found = []
    for exercise in exercises:
        if region and exercise.body_region != region:
            continue
        if wanted == NO_EQUIPMENT and exercise.equipment:
            continue
        if wanted and wanted != NO_EQUIPMENT and not any(wanted in item for item in exercise.equipment):
            continue
        haystack = exercise.words or search_words(exercise)
        if all(word in haystack for word in words):
            found.append(exercise)
    return sorted(found, key=lambda e: (e.name.lower(), e.key))


def library_problems(exercises: Sequence[Exercise]) -> list[str]:
    """Problems across the whole library that a per-entry schema cannot see."""
    problems = []
    keys: set[str] = set()
    names: set[str] = set()
    for exercise in exercises:
        if exercise.key in keys:
            problems.append(f"{exercise.key}: the id is used twice")
        if exercise.name.lower() in names:
            problems.append(f"{exercise.key}: the name {exercise.name!r} is used twice")
        keys.add(exercise.key)
        names.add(exercise.name.lower())
    return problems


# ---------------------------------------------------------------- the calendar of data days

def month_grid(year: int, month: int) -> list[list[date | None]]:
    """The weeks of a month, Monday first; days outside the month are None."""
    return [[day if day.month == month else None for day in week]
            for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month)]


def parse_month(value: str | None) -> tuple[int, int] | None:
    """'2026-03' as (2026, 3); None for anything else."""
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", value or "")
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not (1 <= month <= 12 and 1900 <= year <= 9999):
        return None
    return year, month


def month_bounds(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def adjacent_month(year: int, month: int, step: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + step
    return index // 12, index % 12 + 1
