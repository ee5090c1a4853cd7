"""Pure rules for accounts and patients: identifiers, contact details, sign-in throttling.

No Flask, no SQLAlchemy: plain values in, plain values out; time is always a parameter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import available_timezones

import phonenumbers


class Role(StrEnum):
    ADMIN = "admin"
    THERAPIST = "therapist"  # PT, carries an NPI
    ASSISTANT = "assistant"  # PTA
    BILLING = "billing"
    PATIENT = "patient"


STAFF_ROLES = frozenset({Role.ADMIN, Role.THERAPIST, Role.ASSISTANT, Role.BILLING})
CLINICAL_ROLES = frozenset({Role.THERAPIST, Role.ASSISTANT})


class Sex(StrEnum):
    # X12 DMG03 codes: the claim needs exactly these.
    FEMALE = "F"
    MALE = "M"
    UNKNOWN = "U"


class ConsentKind(StrEnum):
    TELEHEALTH = "telehealth"
    RTM = "rtm"
    SMS = "sms"


# ---------------------------------------------------------------- NPI

def npi_check_digit(first_nine: str) -> int:
    """Luhn check digit of an NPI, computed over the prefix 80840 plus the first nine digits."""
    total = 24  # the constant contribution of the 80840 prefix, per CMS's NPI check-digit note
    for position, char in enumerate(reversed(first_nine)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def npi_problem(value: str) -> str | None:
    """Why `value` is not a valid NPI, or None when it is."""
    if not re.fullmatch(r"[0-9]{10}", value or ""):
        return "An NPI is exactly 10 digits."
    if value[0] not in "12":
        return "An NPI starts with 1 or 2."
    if npi_check_digit(value[:9]) != int(value[9]):
        return "This NPI's check digit is wrong; check for a mistyped digit."
    return None


# ---------------------------------------------------------------- Medicare Beneficiary Identifier

# CMS MBI format: positions 1..11 are C A AN N A AN N A A N N, where A excludes S, L, O, I, B, Z
# and C (position 1) is a digit 1-9.
_MBI_ALPHA = "ACDEFGHJKMNPQRTUVWXY"
_MBI_PATTERN = re.compile(
    "^[1-9]"
    f"[{_MBI_ALPHA}]"
    f"[{_MBI_ALPHA}0-9]"
    "[0-9]"
    f"[{_MBI_ALPHA}]"
    f"[{_MBI_ALPHA}0-9]"
    "[0-9]"
    f"[{_MBI_ALPHA}]"
    f"[{_MBI_ALPHA}]"
    "[0-9][0-9]$"
)


def normalise_mbi(value: str) -> str:
    """MBIs are printed as 1EG4-TE5-MK73; stored and sent as 11 upper-case characters."""
    return (value or "").replace("-", "").replace(" ", "").upper()


def mbi_problem(value: str) -> str | None:
    mbi = normalise_mbi(value)
    if len(mbi) != 11:
        return "A Medicare MBI has 11 characters (dashes optional)."
    if not _MBI_PATTERN.match(mbi):
        return "This is not a valid Medicare MBI (letters S, L, O, I, B and Z are never used)."
    return None


def member_id_problem(payer_type: str | None, member_id: str | None) -> str | None:
    """Medicare claims carry the MBI as the member id, so a Medicare patient must have a valid one."""
    if payer_type != "medicare":
        return None
    if not member_id:
        return "Medicare patients need their MBI."
    return mbi_problem(member_id)


# ---------------------------------------------------------------- phone, timezone, TIN

def normalise_phone(value: str) -> str | None:
    """The E.164 form of a phone number written in E.164 (leading +), or None if invalid.

    Only ASCII digits and separators: phonenumbers would turn letters into vanity digits, so an
    O typed for a 0 would silently become another person's number.
    """
    if not re.fullmatch(r"\+[0-9][0-9 ().-]*", value or ""):
        return None
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_problem(value: str) -> str | None:
    if normalise_phone(value) is None:
        return "Give the phone number in international form, e.g. +15035550123."
    return None


# Names zoneinfo lists that are not places: 'localtime' follows the server's own clock.
_NOT_TIMEZONES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1)
def known_timezones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_TIMEZONES


def timezone_problem(value: str) -> str | None:
    if value not in known_timezones():
        return "Unknown timezone: use an IANA name such as America/New_York."
    return None


def tin_problem(value: str) -> str | None:
    if not re.fullmatch(r"[0-9]{9}", (value or "").replace("-", "")):
        return "A TIN (EIN) is 9 digits, e.g. 12-3456789."
    return None


def normalise_tin(value: str) -> str:
    return value.replace("-", "")


# ---------------------------------------------------------------- passwords

MIN_PASSWORD_LENGTH = 12


def password_problem(password: str, *, username: str) -> str | None:
    # NIST 800-63B: length over composition rules.
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if username and username.lower() in password.lower():
        return "The password may not contain the username."
    return None


# ---------------------------------------------------------------- sign-in throttling

@dataclass(frozen=True)
class ThrottleVerdict:
    allowed: bool
    retry_after: timedelta = timedelta(0)

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.retry_after.total_seconds() / 60))
        return (
            "Too many failed sign-ins. For your security, sign-in is paused; "
            f"try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )


def throttle_verdict(
    failures: list[datetime], *, now: datetime, max_failures: int, window: timedelta
) -> ThrottleVerdict:
    """Refuse once `max_failures` failures fall inside the sliding `window` before `now`.

    `failures` are the times of failed attempts for one account or one address. The pause lasts
    until the oldest failure that counts leaves the window.
    """
    recent = sorted(t for t in failures if now - window < t <= now)
    if len(recent) < max_failures:
        return ThrottleVerdict(allowed=True)
    oldest_counted = recent[-max_failures]
    return ThrottleVerdict(allowed=False, retry_after=oldest_counted + window - now)


# ---------------------------------------------------------------- home address

ADDRESS_FIELDS = ("address_line1", "address_line2", "city", "state", "postal_code")
REQUIRED_ADDRESS_FIELDS = ("address_line1", "city", "state", "postal_code")


def address_gaps(values: dict) -> dict[str, str]:
    """Field -> message for each required part of an address that is missing when another part is
    given (absent, None and blank count as not given). No part at all is no address: no gaps."""
    given = {name for name in ADDRESS_FIELDS if isinstance(values.get(name), str) and values[name].strip()}
    if not given:
        return {}
    return {name: "A home address needs a first line, city, state and ZIP code: give this one too."
            for name in REQUIRED_ADDRESS_FIELDS if name not in given}
