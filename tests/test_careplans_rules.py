"""Exhaustive table tests for telerehab.careplans.rules: ICD-10-CM, certification, discharge, and
the telehealth-consent plan alert.

Dates are hand-counted literals (not recomputed with the code's own arithmetic): the certification
covers 90 calendar days counted from the first treatment, that day included (MBPM ch.15 §220.1.2).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from telerehab.careplans.rules import (
    CERTIFICATION_DUE_DAYS,
    MAX_CERTIFICATION_DAYS,
    DischargeReason,
    EpisodeStatus,
    PlanAlert,
    PlanFacts,
    VisitKind,
    VisitStatus,
    certification_is_late,
    certification_problems,
    diagnoses_problem,
    discharge_problems,
    icd10_problem,
    last_certifiable_day,
    normalise_icd10,
    plan_alerts,
)

START = date(2026, 3, 2)


def day(n: int) -> date:
    """Calendar day n of the episode, where day 1 is START (the first treatment)."""
    return START + timedelta(days=n - 1)


# ---------------------------------------------------------------- ICD-10-CM format


@pytest.mark.parametrize(("code", "normalised"), [
    ("M17.11", "M17.11"),
    ("S83.511A", "S83.511A"),
    ("M1A.0110", "M1A.0110"),
    ("C4A.9", "C4A.9"),
    ("Z96.651", "Z96.651"),
    ("M54.2", "M54.2"),
    ("M545", "M54.5"),
    ("M1711", "M17.11"),
    ("S83511A", "S83.511A"),
    ("M1A0110", "M1A.0110"),
    ("m17.11", "M17.11"),
    ("s83.511a", "S83.511A"),
    ("m545", "M54.5"),
    ("M17", "M17"),
    ("U07.1", "U07.1"),
    ("Z3A.20", "Z3A.20"),
    ("T84.84XA", "T84.84XA"),
    (" M17.11 ", "M17.11"),
    ("\tM54.5\n", "M54.5"),
], ids=["M17.11", "S83.511A", "M1A.0110", "C4A.9", "Z96.651", "M54.2", "M545-dotless", "M1711-dotless",
        "S83511A-dotless", "M1A0110-dotless", "lower", "lower-7th-char", "lower-dotless", "category-only",
        "U-chapter", "Z3A", "placeholder-X", "outer-spaces", "outer-whitespace"])
def test_valid_icd10_codes_and_their_normal_form(code, normalised):
    assert icd10_problem(code) is None
    assert normalise_icd10(code) == normalised


@pytest.mark.parametrize("code", [
    "17.11", "MM17", "M17.", "M17.12345", "M1712345", "M17-11", "", "M17 .11", "M 17.11", "M17.1 1",
    "M17.\u00a011", "M17\u00a011", "M1", "M", "M17..11", "M17.1.1", ".M17", "1M7.11", "M17.1!", "M\u00dc7.11",
    "M17.11;", "\u041c17.11",
], ids=["no-letter", "two-letters", "trailing-dot", "five-after-dot", "eight-chars-dotless", "dash", "empty",
        "space-before-dot", "space-after-letter", "inner-space", "nbsp-after-dot", "nbsp-instead-of-dot",
        "two-chars", "one-char", "double-dot", "two-dots", "leading-dot", "digit-first", "punctuation",
        "umlaut", "semicolon", "cyrillic-M"])
def test_invalid_icd10_codes(code):
    problem = icd10_problem(code)
    assert problem is not None
    assert "ICD-10-CM" in problem


def test_icd10_none_is_refused_not_crashing():
    assert icd10_problem(None) is not None


def test_icd10_problem_names_the_code_as_typed():
    assert "'M17-11'" in icd10_problem("M17-11")


# ---------------------------------------------------------------- diagnoses list

THIRTEEN = ["M17.11", "M17.12", "M25.561", "M25.562", "M54.5", "M54.2", "S83.511A", "Z96.651",
            "M1A.0110", "C4A.9", "M79.604", "R26.2", "M62.81"]


@pytest.mark.parametrize(("codes", "fragment"), [
    (["M17.11"], None),
    (THIRTEEN[:12], None),
    (["M17.11", "M545", "s83.511a"], None),
    ([], "principal"),
    (THIRTEEN, "12"),
    (["M17.11", "M17.11"], "twice"),
    (["M54.5", "M545"], "twice"),
    (["M54.5", "m54.5"], "twice"),
    (["M17.11", " m1711 "], "twice"),
    (["M17.11", "M17.12", "M17-13", "M25.561"], "'M17-13'"),
    (["M17-11"], "'M17-11'"),
    (["M17.11", ""], "ICD-10-CM"),
], ids=["one", "twelve", "mixed-forms", "empty", "thirteen", "exact-duplicate", "duplicate-dotless",
        "duplicate-lower", "duplicate-spaced-dotless", "one-bad-among-good", "only-bad", "blank-among-good"])
def test_diagnoses_problem(codes, fragment):
    problem = diagnoses_problem(codes)
    if fragment is None:
        assert problem is None
    else:
        assert problem is not None
        assert fragment in problem


def test_twelve_distinct_codes_are_really_distinct():
    assert len({normalise_icd10(c) for c in THIRTEEN}) == 13
    assert all(icd10_problem(c) is None for c in THIRTEEN)


# ---------------------------------------------------------------- certification period


def test_constants():
    assert MAX_CERTIFICATION_DAYS == 90
    assert CERTIFICATION_DUE_DAYS == 30


@pytest.mark.parametrize(("first_treatment", "last_day"), [
    (date(2026, 3, 2), date(2026, 5, 30)),
    (date(2026, 1, 1), date(2026, 3, 31)),
    (date(2024, 1, 1), date(2024, 3, 30)),  # leap year: February has 29 days
    (date(2025, 11, 15), date(2026, 2, 12)),  # across the year end
    (date(2026, 12, 31), date(2027, 3, 30)),
    (date(2028, 2, 29), date(2028, 5, 28)),
], ids=["2026-03-02", "2026-01-01", "leap-2024", "year-end", "dec-31", "from-feb-29"])
def test_last_certifiable_day_is_day_90(first_treatment, last_day):
    assert last_certifiable_day(first_treatment) == last_day
    # day 1 .. day 90 inclusive
    assert (last_day - first_treatment).days + 1 == 90


@pytest.mark.parametrize(("cert_start", "cert_end", "signed", "expected"), [
    (day(1), day(90), day(1), set()),
    (day(1), day(90), None, set()),
    (day(1), day(91), day(1), {"certification_end"}),
    (day(1), day(120), None, {"certification_end"}),
    (day(1), day(1), day(1), set()),
    (day(1), day(89), day(5), set()),
    (day(10), day(9), None, {"certification_end"}),
    (day(0), day(60), None, {"certification_start"}),
    (day(-30), day(59), day(1), {"certification_start"}),
    (day(0), day(91), None, {"certification_start", "certification_end"}),
    (day(1), day(90), day(0), {"certification_signed_on"}),
    (day(5), day(60), day(4), {"certification_signed_on"}),
    (day(1), day(90), day(95), set()),  # a late signature is a timing matter, not a period error
    (day(91), day(180), day(91), set()),  # a recertification: 90 days from its own first day
    (day(91), day(181), day(91), {"certification_end"}),
    (None, None, None, set()),
    (None, None, day(1), {"certification_end"}),
    (day(1), None, None, {"certification_end"}),
    (day(1), None, day(1), {"certification_end"}),
    (None, day(90), None, {"certification_start"}),
    (None, day(90), day(1), {"certification_start"}),
], ids=["exactly-90-days", "exactly-90-unsigned", "91-days", "120-days", "one-day", "89-days-signed-later",
        "end-before-start", "cert-starts-before-episode", "cert-long-before-episode",
        "before-episode-and-too-long", "signed-before-cert-start", "signed-day-before-later-start",
        "signed-after-end", "recert-90", "recert-91", "none", "signed-without-period", "only-start",
        "only-start-signed", "only-end", "only-end-signed"])
def test_certification_problems(cert_start, cert_end, signed, expected):
    problems = certification_problems(start_date=START, certification_start=cert_start,
                                      certification_end=cert_end, certification_signed_on=signed)
    assert set(problems) == expected
    assert all(isinstance(m, str) and m for m in problems.values())


def test_too_long_certification_names_the_last_allowed_day():
    problems = certification_problems(start_date=START, certification_start=START,
                                      certification_end=day(91), certification_signed_on=None)
    assert "2026-05-30" in problems["certification_end"]
    assert "90" in problems["certification_end"]


def test_end_before_start_is_not_reported_as_too_long():
    problems = certification_problems(start_date=START, certification_start=day(10),
                                      certification_end=day(1), certification_signed_on=None)
    assert "before" in problems["certification_end"]


# ---------------------------------------------------------------- certification timing


@pytest.mark.parametrize(("signed_after", "today_after", "late"), [
    (0, 0, False),
    (29, 29, False),
    (30, 30, False),  # 30 days after the first treatment: still on time
    (31, 31, True),
    (60, 60, True),
    (30, 200, False),  # a timely signature stays timely
    (None, 0, False),
    (None, 29, False),
    (None, 30, False),
    (None, 31, True),
    (None, 365, True),
], ids=["signed-same-day", "signed-29", "signed-30", "signed-31", "signed-60", "signed-30-viewed-later",
        "unsigned-today-0", "unsigned-today-29", "unsigned-today-30", "unsigned-today-31", "unsigned-a-year"])
def test_certification_is_late(signed_after, today_after, late):
    signed = None if signed_after is None else START + timedelta(days=signed_after)
    today = START + timedelta(days=today_after)
    assert certification_is_late(START, signed, today=today) is late


def test_late_signature_does_not_depend_on_today():
    signed = START + timedelta(days=31)
    assert certification_is_late(START, signed, today=START) is True


# ---------------------------------------------------------------- discharge


D = EpisodeStatus.DISCHARGED
REASON = DischargeReason.GOALS_MET


@pytest.mark.parametrize(("status", "discharge_date", "reason", "expected"), [
    (D, day(40), REASON, set()),
    (D, day(1), REASON, set()),
    (D, None, REASON, {"discharge_date"}),
    (D, day(40), None, {"discharge_reason"}),
    (D, day(40), "", {"discharge_reason"}),
    (D, None, None, {"discharge_date", "discharge_reason"}),
    (D, day(0), REASON, {"discharge_date"}),
    (D, day(-10), None, {"discharge_date", "discharge_reason"}),
    ("discharged", day(40), "plateau", set()),
    (EpisodeStatus.ACTIVE, None, None, set()),
    (EpisodeStatus.ACTIVE, day(40), None, {"discharge_date"}),
    (EpisodeStatus.PLANNED, day(40), None, {"discharge_date"}),
    (EpisodeStatus.ON_HOLD, day(40), None, {"discharge_date"}),
    (EpisodeStatus.ACTIVE, day(0), None, {"discharge_date"}),
], ids=["discharged-ok", "discharged-on-first-day", "no-date", "no-reason", "empty-reason", "neither",
        "date-before-start", "before-start-and-no-reason", "plain-strings", "active", "active-with-date",
        "planned-with-date", "on-hold-with-date", "active-date-before-start"])
def test_discharge_problems(status, discharge_date, reason, expected):
    problems = discharge_problems(status=status, start_date=START, discharge_date=discharge_date,
                                  discharge_reason=reason)
    assert set(problems) == expected


def test_discharge_before_start_message_wins_over_status_message():
    problems = discharge_problems(status=EpisodeStatus.ACTIVE, start_date=START, discharge_date=day(0),
                                  discharge_reason=None)
    assert "before the episode starts" in problems["discharge_date"]


# ---------------------------------------------------------------- telehealth consent alert

TODAY = day(20)
SCHEDULED, CHECKED_IN, CANCELLED = VisitStatus.SCHEDULED, VisitStatus.CHECKED_IN, VisitStatus.CANCELLED


def consent_facts(video_visits, *, consent: bool) -> PlanFacts:
    """A signed, current plan with nothing else to flag, so only the consent alert can show."""
    return PlanFacts(first_treatment=START, certified_until=day(90), certification_signed_on=START,
                     completed_kinds=(VisitKind.INITIAL_EVALUATION,), planned_dates=(),
                     video_visits=tuple(video_visits), telehealth_consent_in_force=consent)


@pytest.mark.parametrize(("video_visits", "consent", "first_named"), [
    ((), False, None),
    (((day(3), VisitStatus.COMPLETED), (day(19), SCHEDULED)), False, None),
    (((day(22), SCHEDULED), (day(27), SCHEDULED)), False, day(22)),
    (((day(22), SCHEDULED),), True, None),
    (((day(22), CANCELLED),), False, None),
    (((day(21), CANCELLED), (day(25), SCHEDULED), (day(23), SCHEDULED)), False, day(23)),
    (((TODAY, CHECKED_IN),), False, TODAY),
    (((day(22), VisitStatus.NO_SHOW), (day(22), VisitStatus.IN_PROGRESS)), False, None),
], ids=["no-video-visits", "video-visits-only-in-the-past", "consent-revoked-or-never-given", "consent-in-force",
        "cancelled-video-visit-only", "first-planned-date-named-whatever-the-order", "checked-in-today",
        "neither-planned-nor-ahead"])
def test_telehealth_consent_missing(video_visits, consent, first_named):
    alerts = plan_alerts(consent_facts(video_visits, consent=consent), today=TODAY)
    if first_named is None:
        assert alerts == []
    else:
        [alert] = alerts
        assert alert.kind == PlanAlert.TELEHEALTH_CONSENT_MISSING
        assert f"from {first_named:%Y-%m-%d}" in alert.message
        assert "record the patient's telehealth consent" in alert.message
