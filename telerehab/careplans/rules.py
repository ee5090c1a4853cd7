"""Pure rules for episodes of care (Medicare plan of care).

Source: ../shared/reference/clinical-assessments.md §6.1 (cert_duration, cert_timing).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from enum import StrEnum

# A certification covers at most 90 calendar days counted from the first treatment (the
# evaluation included), so the last certified day is the first treatment day + 89.
MAX_CERTIFICATION_DAYS = 90
# Certification is due "as soon as possible": within 30 days of the first treatment.
CERTIFICATION_DUE_DAYS = 30


class EpisodeStatus(StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    DISCHARGED = "discharged"


class DischargeReason(StrEnum):
    GOALS_MET = "goals_met"
    PLATEAU = "plateau"
    PATIENT_CHOICE = "patient_choice"
    NON_ATTENDANCE = "non_attendance"
    REFERRED_ON = "referred_on"
    MEDICAL = "medical"
    OTHER = "other"


# ICD-10-CM: a letter, a digit, then a digit or letter (C4A, M1A, Z3A), optionally a dot and one
# to four further characters. The dot is stored; 837P HI segments strip it on export.
_ICD10_PATTERN = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?$")


def normalise_icd10(code: str) -> str:
    code = (code or "").strip().upper()
    if "." not in code and len(code) > 3:
        code = f"{code[:3]}.{code[3:]}"
    return code


def icd10_problem(code: str) -> str | None:
    if not _ICD10_PATTERN.match(normalise_icd10(code)):
        return f"'{code}' is not an ICD-10-CM code (e.g. M17.11 or S83.511A)."
    return None


def diagnoses_problem(codes: list[str]) -> str | None:
    """The principal diagnosis comes first; codes are unique; a claim carries at most 12."""
    if not codes:
        return "Give at least the principal diagnosis."
    if len(codes) > 12:
        return "At most 12 diagnoses fit on a claim."
    for code in codes:
        problem = icd10_problem(code)
        if problem:
            return problem
    normalised = [normalise_icd10(c) for c in codes]
    if len(set(normalised)) != len(normalised):
        return "A diagnosis is listed twice."
    return None


def last_certifiable_day(first_treatment: date) -> date:
    return first_treatment + timedelta(days=MAX_CERTIFICATION_DAYS - 1)


def certification_problems(
    *,
    start_date: date,
    certification_start: date | None,
    certification_end: date | None,
    certification_signed_on: date | None,
) -> dict[str, str]:
    """Field name -> problem, for the certification dates of one plan of care."""
    problems: dict[str, str] = {}
    if certification_start is None and certification_end is None:
        if certification_signed_on is not None:
            problems["certification_end"] = "A signed certification needs its period."
        return problems
    if certification_start is None:
        problems["certification_start"] = "Give the first day the certification covers."
        return problems
    if certification_end is None:
        problems["certification_end"] = "Give the last day the certification covers."
        return problems
    if certification_start < start_date:
        problems["certification_start"] = "The certification cannot start before the episode."
    if certification_end < certification_start:
        problems["certification_end"] = "The certification ends before it starts."
    elif certification_end > last_certifiable_day(certification_start):
        problems["certification_end"] = (
            f"A certification covers at most {MAX_CERTIFICATION_DAYS} days from the first "
            f"treatment: the last day can be {last_certifiable_day(certification_start):%Y-%m-%d}."
        )
    if certification_signed_on is not None and certification_signed_on < certification_start:
        # The plan is written at the evaluation, the first certified day: nothing to sign before it.
        problems["certification_signed_on"] = "The plan cannot be signed before it starts."
    return problems


def certification_is_late(first_treatment: date, signed_on: date | None, *, today: date) -> bool:
    """True once the 30-day window for the physician's signature has passed without one."""
    due = first_treatment + timedelta(days=CERTIFICATION_DUE_DAYS)
    if signed_on is None:
        return today > due
    return signed_on > due


def discharge_problems(
    *, status: str, start_date: date, discharge_date: date | None, discharge_reason: str | None
) -> dict[str, str]:
    problems: dict[str, str] = {}
    if status == EpisodeStatus.DISCHARGED:
        if discharge_date is None:
            problems["discharge_date"] = "A discharged episode needs its discharge date."
        if not discharge_reason:
            problems["discharge_reason"] = "A discharged episode needs a discharge reason."
    elif discharge_date is not None:
        problems["discharge_date"] = "Only a discharged episode has a discharge date."
    if discharge_date is not None and discharge_date < start_date:
        problems["discharge_date"] = "Discharge cannot come before the episode starts."
    return problems
