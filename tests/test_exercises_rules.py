"""Exhaustive table tests for telerehab.exercises.rules: the data day, the upload window, program
versions on boundary dates, library search, the month calendar.

Instants and dates are hand-computed literals, never recomputed with the code's own arithmetic.
US daylight saving in 2026 starts Sunday 8 March (02:00 -> 03:00) and ends Sunday 1 November
(02:00 -> 01:00).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from telerehab.exercises.rules import (
    CLOCK_SKEW,
    DEFAULT_LATE_UPLOAD_DAYS,
    Dosage,
    Exercise,
    adjacent_month,
    clinic_exercise_id,
    clinic_exercise_key,
    effective_from_problem,
    empty_checkin_problem,
    item_dates_problem,
    item_in_force,
    library_problems,
    local_date_of,
    media_problem,
    month_bounds,
    month_grid,
    normalise_equipment,
    parse_month,
    possible_local_dates,
    recorded_at_problem,
    search_exercises,
    version_in_force,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---------------------------------------------------------------- the data day (local date)

LOCAL_DATES = [
    # zone, instant (UTC), local date, why
    ("America/Los_Angeles", "2026-03-03T07:30:00", date(2026, 3, 2), "23:30 PST: UTC is already the 3rd"),
    ("America/Los_Angeles", "2026-03-03T07:59:59", date(2026, 3, 2), "23:59:59 PST, last second of the 2nd"),
    ("America/Los_Angeles", "2026-03-03T08:00:00", date(2026, 3, 3), "00:00 PST, first second of the 3rd"),
    ("America/Los_Angeles", "2026-03-02T08:00:00", date(2026, 3, 2), "midnight PST"),
    # spring forward: 8 March 2026 has 23 hours in Los Angeles (08:00Z to 07:00Z next day)
    ("America/Los_Angeles", "2026-03-08T07:59:59", date(2026, 3, 7), "23:59:59 PST on the 7th"),
    ("America/Los_Angeles", "2026-03-08T08:00:00", date(2026, 3, 8), "00:00 PST on the 8th"),
    ("America/Los_Angeles", "2026-03-08T09:59:59", date(2026, 3, 8), "01:59:59 PST, just before the jump"),
    ("America/Los_Angeles", "2026-03-08T10:00:00", date(2026, 3, 8), "03:00 PDT, just after the jump"),
    ("America/Los_Angeles", "2026-03-09T06:30:00", date(2026, 3, 8), "23:30 PDT on the DST day"),
    ("America/Los_Angeles", "2026-03-09T06:59:59", date(2026, 3, 8), "23:59:59 PDT, the 23-hour day ends"),
    ("America/Los_Angeles", "2026-03-09T07:00:00", date(2026, 3, 9), "00:00 PDT on the 9th"),
    # fall back: 1 November 2026 has 25 hours in Los Angeles (07:00Z to 08:00Z next day)
    ("America/Los_Angeles", "2026-11-01T06:59:59", date(2026, 10, 31), "23:59:59 PDT on the 31st"),
    ("America/Los_Angeles", "2026-11-01T07:00:00", date(2026, 11, 1), "00:00 PDT on the 1st"),
    ("America/Los_Angeles", "2026-11-01T08:30:00", date(2026, 11, 1), "the first 01:30 (PDT)"),
    ("America/Los_Angeles", "2026-11-01T09:30:00", date(2026, 11, 1), "the second 01:30 (PST)"),
    ("America/Los_Angeles", "2026-11-02T07:30:00", date(2026, 11, 1), "23:30 PST on the 25-hour day"),
    ("America/Los_Angeles", "2026-11-02T07:59:59", date(2026, 11, 1), "23:59:59 PST, the 25-hour day ends"),
    ("America/Los_Angeles", "2026-11-02T08:00:00", date(2026, 11, 2), "00:00 PST on the 2nd"),
    # other zones west and east of UTC
    ("America/New_York", "2026-03-08T04:59:59", date(2026, 3, 7), "23:59:59 EST"),
    ("America/New_York", "2026-03-08T05:00:00", date(2026, 3, 8), "00:00 EST on the DST day"),
    ("America/New_York", "2026-03-09T03:59:59", date(2026, 3, 8), "23:59:59 EDT"),
    ("America/New_York", "2026-03-09T04:00:00", date(2026, 3, 9), "00:00 EDT"),
    ("America/Chicago", "2026-03-03T05:30:00", date(2026, 3, 2), "23:30 CST"),
    ("America/Chicago", "2026-11-02T05:30:00", date(2026, 11, 1), "23:30 CST after fall back"),
    ("America/Phoenix", "2026-03-09T06:59:59", date(2026, 3, 8), "MST all year: 23:59:59"),
    ("America/Phoenix", "2026-03-09T07:00:00", date(2026, 3, 9), "MST all year: 00:00"),
    ("Pacific/Honolulu", "2026-03-03T09:30:00", date(2026, 3, 2), "23:30 HST"),
    ("Pacific/Pago_Pago", "2026-03-03T10:59:59", date(2026, 3, 2), "UTC-11: 23:59:59"),
    ("Asia/Kolkata", "2026-03-02T18:29:59", date(2026, 3, 2), "UTC+5:30: 23:59:59"),
    ("Asia/Kolkata", "2026-03-02T18:30:00", date(2026, 3, 3), "UTC+5:30: already the 3rd"),
    ("Pacific/Auckland", "2026-03-02T10:59:59", date(2026, 3, 2), "NZDT +13: 23:59:59"),
    ("Pacific/Auckland", "2026-03-02T11:00:00", date(2026, 3, 3), "NZDT +13: midnight"),
    ("Pacific/Kiritimati", "2026-03-02T09:59:59", date(2026, 3, 2), "UTC+14: 23:59:59"),
    ("Pacific/Kiritimati", "2026-03-02T10:00:00", date(2026, 3, 3), "UTC+14: midnight"),
    ("Australia/Lord_Howe", "2026-03-02T12:59:59", date(2026, 3, 2), "half-hour DST, +11: 23:59:59"),
    ("Australia/Lord_Howe", "2026-03-02T13:00:00", date(2026, 3, 3), "half-hour DST, +11: midnight"),
    ("UTC", "2026-03-02T23:59:59", date(2026, 3, 2), "UTC itself"),
]


@pytest.mark.parametrize(("zone", "instant", "expected", "why"), LOCAL_DATES,
                         ids=[f"{z}-{i}" for z, i, _, _ in LOCAL_DATES])
def test_local_date_is_the_date_in_the_patients_zone(zone, instant, expected, why):
    assert local_date_of(utc(instant), zone) == expected, why


@pytest.mark.parametrize("offset_hours", [-8, -7, 0, 5.5, 14])
def test_local_date_does_not_depend_on_the_offset_the_device_sent(offset_hours):
    """The same instant written with any offset lands on the same data day."""
    instant = utc("2026-03-03T07:30:00")
    written = instant.astimezone(timezone(timedelta(hours=offset_hours)))
    assert local_date_of(written, "America/Los_Angeles") == date(2026, 3, 2)


@pytest.mark.parametrize(("zone", "instant", "expected", "why"), LOCAL_DATES,
                         ids=[f"{z}-{i}" for z, i, _, _ in LOCAL_DATES])
def test_the_possible_local_dates_hold_every_zones_date(zone, instant, expected, why):
    """The check-in look-up loads only the program versions of these dates: the data day is among them,
    whatever the patient's zone and whatever offset the device wrote."""
    earliest, latest = possible_local_dates(utc(instant).astimezone(timezone(timedelta(hours=-7))))
    assert earliest <= local_date_of(utc(instant), zone) <= latest, why


@pytest.mark.parametrize("instant", ["2026-03-02T00:00:00", "2026-03-02T11:59:59", "2026-03-02T12:00:00",
                                     "2026-03-02T23:59:59"])
def test_the_possible_local_dates_reach_the_zones_furthest_from_utc(instant):
    assert possible_local_dates(utc(instant)) == (local_date_of(utc(instant), "Etc/GMT+12"),
                                                  local_date_of(utc(instant), "Pacific/Kiritimati"))


def test_local_date_refuses_a_naive_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        local_date_of(datetime(2026, 3, 2, 23, 30), "America/Los_Angeles")


# ---------------------------------------------------------------- the upload window

RECEIVED = utc("2026-03-10T12:00:00")
SECOND = timedelta(seconds=1)
MICRO = timedelta(microseconds=1)


@pytest.mark.parametrize(("recorded", "late_days", "refused_with"), [
    (RECEIVED, 7, None),
    (RECEIVED - SECOND, 7, None),
    (RECEIVED + SECOND, 7, None),
    (RECEIVED + timedelta(minutes=4, seconds=59), 7, None),
    (RECEIVED + CLOCK_SKEW, 7, None),
    (RECEIVED + CLOCK_SKEW + MICRO, 7, "future"),
    (RECEIVED + CLOCK_SKEW + SECOND, 7, "future"),
    (RECEIVED + timedelta(hours=1), 7, "future"),
    (RECEIVED + timedelta(days=400), 7, "future"),
    (RECEIVED - timedelta(days=6, hours=23, minutes=59, seconds=59), 7, None),
    (RECEIVED - timedelta(days=7), 7, None),
    (RECEIVED - timedelta(days=7) - MICRO, 7, "more than 7 days"),
    (RECEIVED - timedelta(days=7) - SECOND, 7, "more than 7 days"),
    (RECEIVED - timedelta(days=8), 7, "more than 7 days"),
    (RECEIVED - timedelta(days=1), 1, None),
    (RECEIVED - timedelta(days=1) - SECOND, 1, "more than 1 days"),
    (RECEIVED - timedelta(days=30), 30, None),
    (RECEIVED - timedelta(days=30) - SECOND, 30, "more than 30 days"),
    (RECEIVED - timedelta(days=14), 14, None),
    (RECEIVED - timedelta(days=14), 7, "more than 7 days"),
], ids=["same-instant", "1s-ago", "1s-ahead", "4m59s-ahead", "exactly-skew-ahead", "skew+1us", "skew+1s",
        "1h-ahead", "400d-ahead", "6d23h59m59s-late", "exactly-7d-late", "7d+1us-late", "7d+1s-late",
        "8d-late", "1d-window-edge", "1d-window+1s", "30d-window-edge", "30d-window+1s", "14d-window-14d",
        "7d-window-14d"])
def test_recorded_at_window(recorded, late_days, refused_with):
    problem = recorded_at_problem(recorded, received_at=RECEIVED, late_upload_days=late_days)
    if refused_with is None:
        assert problem is None
    else:
        assert problem is not None and refused_with in problem
        assert "recorded_at" in problem or "days ago" in problem


def test_the_window_is_measured_between_instants_whatever_the_offsets():
    received = utc("2026-03-10T12:00:00")
    ahead = (received + CLOCK_SKEW).astimezone(timezone(timedelta(hours=-8)))
    assert recorded_at_problem(ahead, received_at=received, late_upload_days=7) is None
    assert recorded_at_problem(ahead + SECOND, received_at=received, late_upload_days=7) is not None


def test_a_naive_recorded_at_is_refused_naming_the_offset():
    problem = recorded_at_problem(datetime(2026, 3, 10, 12), received_at=RECEIVED, late_upload_days=7)
    assert "offset" in problem


def test_the_documented_defaults():
    assert CLOCK_SKEW.total_seconds() == 300
    assert DEFAULT_LATE_UPLOAD_DAYS == 7


# ---------------------------------------------------------------- program versions

VERSIONS = [(1, date(2026, 3, 2)), (2, date(2026, 3, 10)), (3, date(2026, 3, 10)), (4, date(2026, 3, 20))]


@pytest.mark.parametrize(("day", "expected"), [
    (date(2026, 1, 1), None),
    (date(2026, 3, 1), None),
    (date(2026, 3, 2), 1),
    (date(2026, 3, 3), 1),
    (date(2026, 3, 9), 1),
    (date(2026, 3, 10), 3),  # two versions that day: the later one
    (date(2026, 3, 11), 3),
    (date(2026, 3, 19), 3),
    (date(2026, 3, 20), 4),
    (date(2026, 12, 31), 4),
], ids=str)
def test_version_in_force_on_boundary_dates(day, expected):
    assert version_in_force(VERSIONS, day) == expected
    assert version_in_force(list(reversed(VERSIONS)), day) == expected  # order of the input is irrelevant


def test_no_versions_no_program():
    assert version_in_force([], date(2026, 3, 2)) is None


@pytest.mark.parametrize(("start", "end", "day", "expected"), [
    (date(2026, 3, 2), date(2026, 3, 10), date(2026, 3, 1), False),
    (date(2026, 3, 2), date(2026, 3, 10), date(2026, 3, 2), True),
    (date(2026, 3, 2), date(2026, 3, 10), date(2026, 3, 6), True),
    (date(2026, 3, 2), date(2026, 3, 10), date(2026, 3, 10), True),
    (date(2026, 3, 2), date(2026, 3, 10), date(2026, 3, 11), False),
    (date(2026, 3, 2), None, date(2030, 1, 1), True),
    (date(2026, 3, 2), None, date(2026, 3, 1), False),
    (date(2026, 3, 2), date(2026, 3, 2), date(2026, 3, 2), True),
], ids=["day-before", "start", "middle", "end", "day-after", "open-ended", "open-before-start", "one-day"])
def test_item_in_force(start, end, day, expected):
    assert item_in_force(start, end, day) is expected


@pytest.mark.parametrize(("effective", "previous", "problem"), [
    (date(2026, 3, 2), None, None),
    (date(2026, 3, 1), None, "today or later"),
    (date(2025, 3, 2), None, "today or later"),
    (date(2026, 3, 3), None, None),
    (date(2026, 3, 5), date(2026, 3, 5), None),
    (date(2026, 3, 4), date(2026, 3, 5), "on or after it"),
    (date(2026, 3, 2), date(2026, 2, 20), None),
    (date(2027, 3, 2), None, None),  # 365 days ahead
    (date(2027, 3, 3), None, "within a year"),
], ids=["today", "yesterday", "last-year", "tomorrow", "same-as-previous", "before-previous",
        "after-older-previous", "365-days-ahead", "366-days-ahead"])
def test_effective_from(effective, previous, problem):
    result = effective_from_problem(effective, today=date(2026, 3, 2), previous=previous)
    assert (result is None) if problem is None else (problem in result)


@pytest.mark.parametrize(("start", "end", "ok"), [
    (date(2026, 3, 2), None, True), (date(2026, 3, 2), date(2026, 3, 2), True),
    (date(2026, 3, 2), date(2026, 3, 1), False),
])
def test_item_dates(start, end, ok):
    assert (item_dates_problem(start, end) is None) is ok


# ---------------------------------------------------------------- check-in content

@pytest.mark.parametrize(("content", "empty"), [
    ({"exercises": 0, "pain": None, "difficulty": None, "note": None, "all_done": False}, True),
    ({"exercises": 0, "pain": None, "difficulty": None, "note": "   ", "all_done": False}, True),
    ({"exercises": 1, "pain": None, "difficulty": None, "note": None, "all_done": False}, False),
    ({"exercises": 0, "pain": 0, "difficulty": None, "note": None, "all_done": False}, False),  # 0 is an answer
    ({"exercises": 0, "pain": None, "difficulty": "hard", "note": None, "all_done": False}, False),
    ({"exercises": 0, "pain": None, "difficulty": None, "note": "sore", "all_done": False}, False),
    ({"exercises": 0, "pain": None, "difficulty": None, "note": None, "all_done": True}, False),
], ids=["nothing", "blank-note", "one-exercise", "pain-zero", "difficulty", "note", "all-done"])
def test_an_empty_check_in_is_refused(content, empty):
    assert (empty_checkin_problem(**content) is not None) is empty


# ---------------------------------------------------------------- the library

def exercise(key, name, region, equipment=()):
    return Exercise(key=key, name=name, body_region=region, instructions="x" * 40,
                    equipment=tuple(equipment), media="", dosage=Dosage(sets=3, reps=10))


CATALOGUE = [
    exercise("bridge", "Bridge", "hip", ["mat"]),
    exercise("clam", "Clamshell", "hip", ["mat"]),
    exercise("band-row", "Band row", "shoulder", ["resistance band"]),
    exercise("band-side-step", "Side steps with a band", "hip", ["resistance loop"]),
    exercise("chin-tuck", "Chin tuck", "neck"),
    exercise("calf", "Calf stretch at the wall", "ankle_foot", ["wall"]),
    exercise("side-neck", "Side neck stretch", "neck", ["chair"]),
    exercise("clinic:7", "Step-over drill", "balance", ["step", "cones"]),
]


@pytest.mark.parametrize(("kwargs", "keys"), [
    ({}, ["band-row", "bridge", "calf", "chin-tuck", "clam", "side-neck", "band-side-step", "clinic:7"]),
    ({"query": "bridge"}, ["bridge"]),
    ({"query": "BRIDGE"}, ["bridge"]),
    ({"query": "  side   stretch "}, ["side-neck"]),
    ({"query": "band"}, ["band-row", "band-side-step"]),
    ({"query": "neck"}, ["chin-tuck", "side-neck"]),  # the region counts as a word
    ({"query": "ankle"}, ["calf"]),  # ... in its label too
    ({"query": "resistance"}, ["band-row", "band-side-step"]),  # and the equipment
    ({"query": "zzz"}, []),
    ({"region": "hip"}, ["bridge", "clam", "band-side-step"]),
    ({"region": "hip", "query": "band"}, ["band-side-step"]),
    ({"equipment": "mat"}, ["bridge", "clam"]),
    ({"equipment": "Resistance  Band"}, ["band-row"]),
    ({"equipment": "none"}, ["chin-tuck"]),
    ({"equipment": "cones"}, ["clinic:7"]),
    ({"region": "knee"}, []),
], ids=["all", "name", "case", "spacing", "two", "region-word", "region-label", "equipment-word", "nothing",
        "region", "region-and-query", "equipment", "equipment-normalised", "no-equipment", "clinic-own",
        "empty-region"])
def test_search(kwargs, keys):
    assert [e.key for e in search_exercises(CATALOGUE, **kwargs)] == sorted(
        keys, key=lambda k: next(e.name.lower() for e in CATALOGUE if e.key == k))


def test_library_problems_name_duplicates():
    problems = library_problems([exercise("a", "Bridge", "hip"), exercise("a", "bridge", "hip")])
    assert problems == ["a: the id is used twice", "a: the name 'bridge' is used twice"]


@pytest.mark.parametrize(("items", "expected"), [
    (["Mat", " mat ", "Resistance   Band"], ("mat", "resistance band")),
    ([], ()), (["", "  "], ()),
])
def test_normalise_equipment(items, expected):
    assert normalise_equipment(items) == expected


@pytest.mark.parametrize(("path", "ok"), [
    ("", True), ("bridge.mp4", True), ("exercises/bridge.webm", True), ("a/b/c-d_e.png", True),
    ("../secret.png", False), ("/etc/passwd.png", False), ("bridge.exe", False), ("bridge", False),
    ("https://cdn.example/x.png", False),
])
def test_media_paths(path, ok):
    assert (media_problem(path) is None) is ok


@pytest.mark.parametrize(("key", "expected"), [
    ("clinic:1", 1), ("clinic:123", 123), ("clinic:0", None), ("clinic:", None), ("bridge", None),
    ("clinic:01", None), ("clinic:1x", None),
])
def test_clinic_exercise_keys(key, expected):
    assert clinic_exercise_id(key) == expected


def test_clinic_exercise_key_round_trip():
    assert clinic_exercise_id(clinic_exercise_key(42)) == 42


# ---------------------------------------------------------------- the month calendar

def test_month_grid_march_2026_starts_on_a_sunday():
    grid = month_grid(2026, 3)
    assert len(grid) == 6
    assert grid[0] == [None] * 6 + [date(2026, 3, 1)]
    assert grid[1][0] == date(2026, 3, 2)  # a Monday
    assert grid[-1] == [date(2026, 3, 30), date(2026, 3, 31)] + [None] * 5
    assert [d for week in grid for d in week if d] == [date(2026, 3, n) for n in range(1, 32)]


def test_month_grid_february_2026():
    grid = month_grid(2026, 2)
    assert len(grid) == 5
    assert sum(1 for week in grid for d in week if d) == 28


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-03", (2026, 3)), ("2026-12", (2026, 12)), ("2026-13", None), ("2026-00", None), ("2026-3", None),
    ("", None), (None, None), ("march", None), ("2026-03-01", None), ("0999-01", None),
])
def test_parse_month(text, expected):
    assert parse_month(text) == expected


@pytest.mark.parametrize(("year", "month", "step", "expected"), [
    (2026, 1, -1, (2025, 12)), (2026, 12, 1, (2027, 1)), (2026, 3, 1, (2026, 4)), (2026, 3, -1, (2026, 2)),
])
def test_adjacent_month(year, month, step, expected):
    assert adjacent_month(year, month, step) == expected


@pytest.mark.parametrize(("year", "month", "last"), [(2026, 2, 28), (2028, 2, 29), (2026, 4, 30), (2026, 12, 31)])
def test_month_bounds(year, month, last):
    assert month_bounds(year, month) == (date(year, month, 1), date(year, month, last))
