"""Exhaustive table tests for telerehab.accounts.rules: identifiers, contact details, passwords, throttling.

Expected values are computed here by other means than the code under test (Luhn over the full
"80840" string, hand-counted dates and minutes), so that a wrong rule cannot agree with itself.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import available_timezones

import pytest

from telerehab.accounts.rules import (
    MIN_PASSWORD_LENGTH,
    ThrottleVerdict,
    mbi_problem,
    normalise_mbi,
    normalise_phone,
    normalise_tin,
    npi_check_digit,
    npi_problem,
    password_problem,
    phone_problem,
    throttle_verdict,
    timezone_problem,
    tin_problem,
)

# ---------------------------------------------------------------- independent Luhn


def luhn_valid(number: str) -> bool:
    """Textbook Luhn over the whole string: from the right, double every second digit."""
    total = 0
    for index, char in enumerate(reversed(number)):
        value = int(char)
        if index % 2 == 1:
            value = sum(divmod(value * 2, 10))
        total += value
    return total % 10 == 0


def reference_check_digit(first_nine: str) -> int:
    """The one digit that makes "80840" + nine digits + digit pass Luhn (CMS NPI rule)."""
    (digit,) = [d for d in range(10) if luhn_valid(f"80840{first_nine}{d}")]
    return digit


def valid_npi(first_nine: str) -> str:
    return f"{first_nine}{reference_check_digit(first_nine)}"


_rng = random.Random(20260302)
NINE_DIGIT_PREFIXES = [
    "123456789", "124531959", "100000000", "199999999", "200000000", "299999999",
    "111111111", "222222222", "987654321", "135792468", "102030405", "250000001",
] + [str(_rng.randint(100_000_000, 299_999_999)) for _ in range(12)]


# ---------------------------------------------------------------- NPI


def test_reference_luhn_agrees_with_published_examples():
    # CMS's worked example: 123456789 has check digit 3; 1245319599 is a published valid NPI.
    assert reference_check_digit("123456789") == 3
    assert reference_check_digit("124531959") == 9


@pytest.mark.parametrize("first_nine", NINE_DIGIT_PREFIXES, ids=NINE_DIGIT_PREFIXES)
def test_npi_check_digit_matches_luhn_over_the_full_80840_string(first_nine):
    assert npi_check_digit(first_nine) == reference_check_digit(first_nine)


VALID_PREFIXES = [p for p in NINE_DIGIT_PREFIXES if p[0] in "12"]


@pytest.mark.parametrize("first_nine", VALID_PREFIXES, ids=VALID_PREFIXES)
def test_npi_built_with_reference_check_digit_is_valid(first_nine):
    assert npi_problem(valid_npi(first_nine)) is None


@pytest.mark.parametrize("npi", ["1234567893", "1245319599", "1003000126", "1497758544"],
                         ids=lambda v: v)
def test_known_valid_npis(npi):
    assert luhn_valid("80840" + npi)  # the table itself is right
    assert npi_problem(npi) is None


@pytest.mark.parametrize("last", [d for d in "0123456789" if d != "3"], ids=lambda d: f"1234567893->{d}")
def test_every_wrong_check_digit_is_refused(last):
    problem = npi_problem("123456789" + last)
    assert problem is not None
    assert "check digit" in problem


@pytest.mark.parametrize("first", "03456789", ids=lambda d: f"starts-{d}")
def test_npi_must_start_with_1_or_2_even_with_a_good_check_digit(first):
    npi = valid_npi(first + "23456789")
    assert luhn_valid("80840" + npi)  # only the first digit is wrong
    problem = npi_problem(npi)
    assert problem is not None
    assert "1 or 2" in problem


@pytest.mark.parametrize(
    "value",
    ["123456789", "12345678931", "", "123456789a", "12345 67893", "1234-567893", "ABCDEFGHIJ",
     " 1234567893", "1234567893 ", "1234567893\n", "+234567893", "123456789.3"],
    ids=["9-digits", "11-digits", "empty", "letter", "space", "dash", "all-letters",
         "leading-space", "trailing-space", "trailing-newline", "plus", "dot"],
)
def test_npi_not_ten_digits_is_refused(value):
    problem = npi_problem(value)
    assert problem is not None
    assert "10 digits" in problem


def test_npi_none_is_refused_not_crashing():
    assert npi_problem(None) is not None


@pytest.mark.parametrize("value", [
    "1\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff13",
    "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff13",
    "123456789\u0663",
], ids=["ascii-1-then-fullwidth", "all-fullwidth", "arabic-indic-check-digit"])
def test_npi_only_ascii_digits(value):
    # An NPI goes verbatim into the 837P NM109 element: only ASCII 0-9 may pass.
    assert npi_problem(value) is not None


# ---------------------------------------------------------------- MBI

VALID_MBI = "1EG4TE5MK73"
MBI_ALLOWED_LETTERS = "ACDEFGHJKMNPQRTUVWXY"
MBI_EXCLUDED_LETTERS = "SLOIBZ"
# CMS layout, 1-based: C A AN N A AN N A A N N
MBI_LAYOUT = {1: "C", 2: "A", 3: "AN", 4: "N", 5: "A", 6: "AN", 7: "N", 8: "A", 9: "A", 10: "N", 11: "N"}
ALPHA_POSITIONS = [p for p, kind in MBI_LAYOUT.items() if "A" in kind]


def replace_at(value: str, position: int, char: str) -> str:
    return value[: position - 1] + char + value[position:]


@pytest.mark.parametrize(
    "value",
    ["1EG4-TE5-MK73", "1EG4TE5MK73", "1eg4-te5-mk73", "1eg4te5mk73", "1EG4 TE5 MK73",
     "9AA0AA0AA00", "1A00A00AA99", "1Y99Y99YY99", "5XW7PN2QR81"],
    ids=["dashed", "plain", "lower-dashed", "lower", "spaced", "digits-in-AN-nine", "digits-in-AN-one",
         "last-letter", "mixed"],
)
def test_valid_mbis(value):
    assert mbi_problem(value) is None


@pytest.mark.parametrize(("value", "expected"), [
    ("1EG4-TE5-MK73", "1EG4TE5MK73"), ("1eg4-te5-mk73", "1EG4TE5MK73"), (" 1EG4 TE5 MK73 ", "1EG4TE5MK73"),
    ("", ""), (None, ""),
], ids=["dashes", "lower", "spaces", "empty", "none"])
def test_normalise_mbi(value, expected):
    assert normalise_mbi(value) == expected


@pytest.mark.parametrize("letter", MBI_ALLOWED_LETTERS, ids=lambda c: f"pos2-{c}")
def test_every_allowed_letter_is_accepted_in_an_alphabetic_position(letter):
    assert mbi_problem(replace_at(VALID_MBI, 2, letter)) is None


@pytest.mark.parametrize(
    ("position", "letter"),
    [(p, c) for p in ALPHA_POSITIONS for c in MBI_EXCLUDED_LETTERS],
    ids=[f"pos{p}-{c}" for p in ALPHA_POSITIONS for c in MBI_EXCLUDED_LETTERS],
)
def test_excluded_letters_are_refused_in_every_alphabetic_position(position, letter):
    for candidate in (letter, letter.lower()):
        value = replace_at(VALID_MBI, position, candidate)
        assert len(value) == 11
        assert mbi_problem(value) is not None, value


def wrong_class_cases():
    cases = []
    for position, kind in MBI_LAYOUT.items():
        if kind == "C":
            wrong = ["0", "A", "#"]
        elif kind == "A":
            wrong = ["1", "0", "#"]
        elif kind == "AN":
            wrong = ["#", "*", "\u00c9"]
        else:  # N
            wrong = ["A", "E", "#"]
        cases += [pytest.param(position, char, id=f"pos{position}-{kind}-{char!r}") for char in wrong]
    return cases


@pytest.mark.parametrize(("position", "char"), wrong_class_cases())
def test_wrong_character_class_is_refused_at_every_position(position, char):
    value = replace_at(VALID_MBI, position, char)
    problem = mbi_problem(value)
    assert problem is not None
    assert "not a valid Medicare MBI" in problem  # the length is right: the class is what fails


@pytest.mark.parametrize("value", ["1EG4TE5MK7", "1EG4TE5MK733", "", "1EG4-TE5-MK7", "1EG4-TE5-MK733"],
                         ids=["10", "12", "empty", "10-dashed", "12-dashed"])
def test_mbi_wrong_length_is_refused(value):
    problem = mbi_problem(value)
    assert problem is not None
    assert "11 characters" in problem


def test_mbi_digit_zero_in_first_position_is_refused():
    assert mbi_problem("0EG4TE5MK73") is not None


@pytest.mark.parametrize("digit", "123456789", ids=lambda d: f"pos1-{d}")
def test_mbi_first_position_accepts_1_to_9(digit):
    assert mbi_problem(replace_at(VALID_MBI, 1, digit)) is None


# ---------------------------------------------------------------- phone


@pytest.mark.parametrize(("value", "e164"), [
    ("+13125550101", "+13125550101"),
    ("+1 312 555 0101", "+13125550101"),
    ("+1 (312) 555-0101", "+13125550101"),
    ("+1-312-555-0101", "+13125550101"),
    ("+442079460958", "+442079460958"),
    ("+44 20 7946 0958", "+442079460958"),
    ("+4915123456789", "+4915123456789"),
    ("+61491570156", "+61491570156"),
    ("+33142685300", "+33142685300"),
    ("+81312345678", "+81312345678"),
], ids=["us", "us-spaced", "us-parens", "us-dashes", "uk", "uk-spaced", "de-mobile", "au-mobile", "fr", "jp"])
def test_valid_international_numbers_normalise_to_e164(value, e164):
    assert normalise_phone(value) == e164
    assert phone_problem(value) is None


@pytest.mark.parametrize("value", [
    "13125550101", "3125550101", "(312) 555-0101", "020 7946 0958", "07946 0958",
    "+1312555010", "+1", "+", "", "+00000000000", "+999123456789",
    "+1312555O1O1", "phone", "+1 312 555 01O1 ext",
], ids=["missing-plus", "us-national", "us-national-format", "uk-national", "uk-short-national",
        "too-short", "country-code-only", "plus-only", "empty", "zero-country", "unassigned-country",
        "two-letters", "word", "letters-and-words"])
def test_invalid_phone_numbers(value):
    assert normalise_phone(value) is None
    assert phone_problem(value) is not None


def test_phone_none_is_refused_not_crashing():
    assert phone_problem(None) is not None


@pytest.mark.parametrize("value", [
    "+1 312 555 OlOl", "+1312555CALL", "+1 800 FLOWERS", "+44 20 7946 ABCD", "+1312555O1O1",
], ids=["letter-O-and-l-typos", "vanity-letters", "vanity-word", "uk-letters", "two-letters"])
def test_letters_are_refused_in_a_phone_number(value):
    # phonenumbers would turn 3+ letters into vanity digits: an O typed for a 0 would become
    # another person's number.
    assert normalise_phone(value) is None
    assert phone_problem(value) is not None


# ---------------------------------------------------------------- timezone

ZONES = available_timezones()


@pytest.mark.parametrize("value", ["America/New_York", "America/Chicago", "Europe/London", "Asia/Kolkata",
                                   "Australia/Lord_Howe", "Pacific/Chatham", "UTC", "America/Argentina/Buenos_Aires"],
                         ids=lambda v: v)
def test_iana_timezones_are_accepted(value):
    assert value in ZONES
    assert timezone_problem(value) is None


@pytest.mark.parametrize("value", ["EST5EDT", "US/Eastern", "Etc/GMT+5", "GMT"], ids=lambda v: v)
def test_legacy_names_follow_available_timezones(value):
    # Whatever the installed tz database lists is accepted, and nothing it does not list.
    assert (timezone_problem(value) is None) == (value in ZONES)


@pytest.mark.parametrize("value", [
    "Mars/Olympus", "", "america/new_york", "AMERICA/NEW_YORK", "America/New York", "America/New_York ",
    " America/New_York", "Europe/london", "EST+5", "+05:00", "UTC+1", "New_York", "America/",
], ids=["mars", "empty", "lower", "upper", "space-for-underscore", "trailing-space", "leading-space",
        "lower-city", "posix-ish", "offset", "utc-offset", "city-only", "area-only"])
def test_unknown_timezones_are_refused(value):
    problem = timezone_problem(value)
    assert problem is not None
    assert "IANA" in problem


def test_timezone_none_is_refused():
    assert timezone_problem(None) is not None


@pytest.mark.parametrize("value", ["localtime", "posixrules", "Factory"], ids=lambda v: v)
def test_zoneinfo_names_that_are_not_places_are_refused(value):
    # 'localtime' (a symlink to the server's /etc/localtime on Debian) would make a patient's zone
    # follow the server; refused whether or not this machine's zoneinfo lists it.
    assert timezone_problem(value) is not None


# ---------------------------------------------------------------- TIN


@pytest.mark.parametrize(("value", "normalised"), [("12-3456789", "123456789"), ("123456789", "123456789"),
                                                   ("00-0000000", "000000000")],
                         ids=["ein-dashed", "plain", "zeros"])
def test_valid_tins(value, normalised):
    assert tin_problem(value) is None
    assert normalise_tin(value) == normalised


@pytest.mark.parametrize("value", ["12345678", "1234567890", "", "12-345678a", "12 3456789", "AB-CDEFGHI",
                                   "12-34567", "123-45-678"],
                         ids=["8-digits", "10-digits", "empty", "letter", "space", "letters", "short-dashed",
                              "ssn-shaped-8"])
def test_invalid_tins(value):
    problem = tin_problem(value)
    assert problem is not None
    assert "9 digits" in problem


def test_tin_none_is_refused():
    assert tin_problem(None) is not None


def test_tin_only_ascii_digits():
    # The TIN goes verbatim into the 837P REF*EI segment: fullwidth digits must not pass.
    assert tin_problem("\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19") is not None


# ---------------------------------------------------------------- passwords


@pytest.mark.parametrize(("password", "username", "ok"), [
    ("a" * 11, "ana", False),
    ("a" * 12, "ana", True),
    ("a" * 13, "ana", True),
    ("", "ana", False),
    ("correct-horse-battery", "therapist", True),
    ("therapist-2026!", "therapist", False),
    ("THERAPIST-2026!", "therapist", False),
    ("my-Therapist-pw", "THERAPIST", False),
    ("xxxxxtherapist", "Therapist", False),
    ("therapis-t-2026", "therapist", True),
    ("abcdefghijkl", "", True),
    ("ana-is-12-long", "bob", True),
], ids=["11-chars", "12-chars", "13-chars", "empty", "good", "contains-username", "contains-username-upper",
        "contains-username-mixed", "ends-with-username", "username-broken-up", "no-username", "other-username"])
def test_password_problem(password, username, ok):
    assert (password_problem(password, username=username) is None) is ok


def test_short_password_message_names_the_minimum():
    assert MIN_PASSWORD_LENGTH == 12
    assert "12" in password_problem("a" * 11, username="x")


def test_length_is_checked_before_username():
    # Both rules broken: the length message comes first (short passwords are the common mistake).
    assert "12" in password_problem("ana", username="ana")


# ---------------------------------------------------------------- sign-in throttling

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def ago(**kwargs) -> datetime:
    return NOW - timedelta(**kwargs)


@pytest.mark.parametrize(("failures", "allowed", "retry_after"), [
    ([], True, timedelta(0)),
    ([ago(minutes=m) for m in (1, 2, 3, 4)], True, timedelta(0)),
    ([ago(minutes=m) for m in (1, 2, 3, 4, 5)], False, timedelta(minutes=10)),
    ([ago(minutes=m) for m in (14, 10, 5, 2, 1)], False, timedelta(minutes=1)),
    # six in the window: the pause lasts until the 5th most recent (13 min ago) leaves, not the oldest
    ([ago(minutes=m) for m in (20, 14, 13, 10, 5, 2, 1)], False, timedelta(minutes=2)),
    ([ago(minutes=m) for m in (5, 1, 14, 2, 10)], False, timedelta(minutes=1)),  # unsorted input
    # the window edge is exclusive: a failure exactly `window` ago no longer counts
    ([ago(minutes=15)] + [ago(minutes=m) for m in (1, 2, 3, 4)], True, timedelta(0)),
    ([ago(minutes=15) - timedelta(microseconds=-1)] + [ago(minutes=m) for m in (1, 2, 3, 4)],
     False, timedelta(microseconds=1)),
    ([ago(minutes=16), ago(hours=1), ago(days=1), ago(minutes=15), ago(minutes=30)], True, timedelta(0)),
    # failures at `now` count; failures recorded after `now` do not
    ([NOW] * 5, False, WINDOW),
    ([NOW + timedelta(seconds=1)] * 5, True, timedelta(0)),
    ([NOW + timedelta(seconds=1)] * 2 + [ago(minutes=m) for m in (1, 2, 3)], True, timedelta(0)),
    ([ago(seconds=1)] * 5, False, WINDOW - timedelta(seconds=1)),
], ids=["none", "four", "exactly-five", "oldest-counts", "fifth-most-recent-counts", "unsorted",
        "at-window-edge-excluded", "just-inside-window-edge", "all-old", "five-at-now", "future-ignored",
        "future-not-filling-up", "five-same-instant"])
def test_throttle_verdict(failures, allowed, retry_after):
    verdict = throttle_verdict(failures, now=NOW, max_failures=5, window=WINDOW)
    assert verdict.allowed is allowed
    assert verdict.retry_after == retry_after


def test_pause_ends_exactly_when_the_counted_failure_leaves_the_window():
    failures = [ago(minutes=m) for m in (14, 10, 5, 2, 1)]
    verdict = throttle_verdict(failures, now=NOW, max_failures=5, window=WINDOW)
    resume = NOW + verdict.retry_after
    assert not throttle_verdict(failures, now=resume - timedelta(microseconds=1), max_failures=5,
                                window=WINDOW).allowed
    assert throttle_verdict(failures, now=resume, max_failures=5, window=WINDOW).allowed


@pytest.mark.parametrize(("max_failures", "count", "allowed"), [
    (1, 0, True), (1, 1, False), (3, 2, True), (3, 3, False), (10, 9, True), (10, 10, False),
], ids=["max1-0", "max1-1", "max3-2", "max3-3", "max10-9", "max10-10"])
def test_throttle_threshold_follows_max_failures(max_failures, count, allowed):
    failures = [ago(seconds=10 * i + 1) for i in range(count)]
    assert throttle_verdict(failures, now=NOW, max_failures=max_failures, window=WINDOW).allowed is allowed


@pytest.mark.parametrize(("retry_after", "text"), [
    (timedelta(minutes=15), "try again in 15 minutes."),
    (timedelta(minutes=2), "try again in 2 minutes."),
    (timedelta(minutes=1), "try again in 1 minute."),
    (timedelta(seconds=61), "try again in 2 minutes."),
    (timedelta(seconds=119), "try again in 2 minutes."),
    (timedelta(seconds=121), "try again in 3 minutes."),
    (timedelta(seconds=59), "try again in 1 minute."),
    (timedelta(seconds=1), "try again in 1 minute."),
    (timedelta(microseconds=1), "try again in 1 minute."),
    (timedelta(minutes=14, seconds=59), "try again in 15 minutes."),
    # sub-second remainders round up too: "14 minutes" here would send the user back too early
    (timedelta(minutes=14, milliseconds=500), "try again in 15 minutes."),
    (timedelta(minutes=1, microseconds=1), "try again in 2 minutes."),
], ids=["15min", "2min", "1min", "61s", "119s", "121s", "59s", "1s", "1us", "14min59s", "14min-0.5s",
        "1min-1us"])
def test_throttle_message_rounds_minutes_up_with_plural(retry_after, text):
    message = ThrottleVerdict(allowed=False, retry_after=retry_after).message
    assert message.endswith(text)
