"""X12 837P (005010X222A1) professional claims: plain frozen dataclasses in, the file's text out.

No Flask, no SQLAlchemy, no clock: the batch carries its own timestamp and control numbers (the
caller allocates those from a database sequence so that they never repeat). Layout and field
meanings: reference/rtm-billing-2026.md §5.1 (segment outline) and §5.2 (CMS-1500 mapping).

Every input is checked before the first segment is built, so the writer either returns a whole
file or raises `ClaimDataError` naming the field; it never emits a file the separators would break.
`check_837p` re-reads a file for what pyx12's structural validation does not check (claim totals,
counts, control numbers, modifiers per code).

Simplification: the patient is always the subscriber (SBR02 18, no 2000C loop), which Medicare
requires and which the platform's one member id per patient implies for other payers too.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import NoReturn

from telerehab.accounts.rules import member_id_problem, normalise_mbi, npi_problem
from telerehab.billing.rules import (
    DEVICE_SUPPLY_CODES,
    MANAGEMENT_EACH_20,
    MANAGEMENT_FIRST_10,
    MANAGEMENT_FIRST_20,
    SETUP_CODE,
)
from telerehab.careplans.rules import (
    ASSISTANT_MODIFIER,
    POS_TELEHEALTH_ELSEWHERE,
    POS_TELEHEALTH_HOME,
    TELEHEALTH_MODIFIER,
    THERAPY_MODIFIER,
)

ELEMENT_SEPARATOR = "*"
COMPONENT_SEPARATOR = ":"
REPETITION_SEPARATOR = "^"
SEGMENT_TERMINATOR = "~"
SEPARATORS = frozenset(ELEMENT_SEPARATOR + COMPONENT_SEPARATOR + REPETITION_SEPARATOR + SEGMENT_TERMINATOR)

IMPLEMENTATION_GUIDE = "005010X222A1"
MAX_LINES_PER_CLAIM = 50  # loop 2400 repeat (§5.1)
MAX_CLAIMS_PER_SUBSCRIBER = 100  # loop 2300 repeat per subscriber HL (§5.1)
MAX_DIAGNOSES = 12  # HI01..HI12
MAX_POINTERS = 4  # SV107-1..4
MAX_MODIFIERS = 4  # SV101-3..6
MAX_CONTROL_NUMBER = 999_999_999  # ISA13 is 9 digits; GS06 at most 9
MAX_PATIENT_CONTROL_NUMBER = 38  # CLM01
SPLIT_SUFFIX_ROOM = len(f"-{MAX_CLAIMS_PER_SUBSCRIBER}")  # what split_claim may append
RTM_CODES = frozenset({SETUP_CODE, MANAGEMENT_FIRST_10, MANAGEMENT_FIRST_20, MANAGEMENT_EACH_20}) | DEVICE_SUPPLY_CODES
TELEHEALTH_PLACES = frozenset({POS_TELEHEALTH_HOME, POS_TELEHEALTH_ELSEWHERE})
PT_TAXONOMY = "225100000X"  # physical therapist (PRV03)


class ClaimDataError(ValueError):
    """Input the claim file cannot carry; `field` is the dotted path of the culprit."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PayerType(StrEnum):
    MEDICARE = "medicare"
    MEDICARE_ADVANTAGE = "medicare_advantage"
    MEDICAID = "medicaid"
    COMMERCIAL = "commercial"
    WORKERS_COMP = "workers_comp"


# SBR09 claim filing indicator per payer type (self-pay patients have no claim to file).
CLAIM_FILING_INDICATOR = {
    PayerType.MEDICARE: "MB",  # Medicare Part B
    PayerType.MEDICARE_ADVANTAGE: "16",  # HMO Medicare risk
    PayerType.MEDICAID: "MC",
    PayerType.COMMERCIAL: "CI",
    PayerType.WORKERS_COMP: "WC",
}


class Frequency(StrEnum):
    """CLM05-3: CMS-1500 item 22 resubmission code."""

    ORIGINAL = "1"
    REPLACEMENT = "7"
    VOID = "8"


class Usage(StrEnum):
    TEST = "T"
    PRODUCTION = "P"


class Sex(StrEnum):
    FEMALE = "F"
    MALE = "M"
    UNKNOWN = "U"


@dataclass(frozen=True)
class Address:
    line1: str
    city: str
    state: str  # two letters
    postal_code: str  # 5 or 9 digits (the billing provider's must be 9)
    line2: str = ""


@dataclass(frozen=True)
class Submitter:
    name: str
    id: str  # also ISA06 / GS02, so at most 15 characters
    contact_name: str
    contact_phone: str  # 10 digits


@dataclass(frozen=True)
class Receiver:
    name: str
    id: str  # also ISA08 / GS03


@dataclass(frozen=True)
class BillingProvider:
    name: str  # an organisation
    npi: str
    tin: str  # 9-digit employer identification number
    address: Address
    taxonomy: str = PT_TAXONOMY


@dataclass(frozen=True)
class Provider:
    """A rendering physical therapist."""

    last_name: str
    first_name: str
    npi: str


@dataclass(frozen=True)
class Payer:
    name: str
    id: str
    type: PayerType


@dataclass(frozen=True)
class Subscriber:
    """The patient, who is always the subscriber here (SBR02 18)."""

    last_name: str
    first_name: str
    birth_date: date
    sex: Sex
    address: Address
    member_id: str  # the MBI for Medicare


@dataclass(frozen=True)
class ClaimLine:
    code: str
    modifiers: tuple[str, ...]
    units: int
    charge_cents: int
    service_from: date
    service_to: date
    diagnosis_pointers: tuple[int, ...]  # 1-based into Claim.diagnoses
    place_of_service: str
    rendering: Provider


@dataclass(frozen=True)
class Claim:
    patient_control_number: str  # CLM01, echoed back on the remittance
    subscriber: Subscriber
    payer: Payer
    diagnoses: tuple[str, ...]  # ICD-10-CM, principal first
    lines: tuple[ClaimLine, ...]
    rendering: Provider
    place_of_service: str
    frequency: Frequency = Frequency.ORIGINAL
    original_claim_number: str | None = None  # the payer's claim number, for replacement and void


@dataclass(frozen=True)
class Batch:
    id: str
    created_at: datetime  # UTC-aware
    interchange_control_number: int
    group_control_number: int
    usage: Usage
    submitter: Submitter
    receiver: Receiver
    billing_provider: BillingProvider


# ---------------------------------------------------------------- input checks


def _fail(field: str, message: str) -> NoReturn:
    raise ClaimDataError(field, message)


def _ascii(text: str) -> str:
    """Accents dropped (José -> Jose): payers take the X12 character set, not Unicode."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


# The separators, and the control characters (Unicode category Cc) such as line breaks.
_UNSAFE_CHARACTER = re.compile(r"[*:~^\x00-\x1f\x7f-\x9f]")


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


def _check_strings(value, path: str) -> None:
    """Every text field of every dataclass, recursively: no separator, no control character."""
    if isinstance(value, str):
        if _UNSAFE_CHARACTER.search(value):
            bad = SEPARATORS.intersection(value)
            if bad:
                _fail(path, f"contains the X12 separator character(s) {' '.join(sorted(bad))}.")
            _fail(path, "contains a control character (e.g. a line break).")
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            _check_strings(item, f"{path}[{index}]")
    elif hasattr(type(value), "__dataclass_fields__"):
        for name in _field_names(type(value)):
            field_value = getattr(value, name)
            if not isinstance(field_value, int | date | None):  # nothing to check: skip the path
                _check_strings(field_value, f"{path}.{name}")


def _require_text(value: str, path: str, *, max_length: int, min_length: int = 1) -> None:
    if not isinstance(value, str) or not min_length <= len(_ascii(value).strip()) <= max_length:
        _fail(path, f"must be {min_length} to {max_length} characters of the Latin alphabet (accents are dropped).")


def _require_match(pattern: str, value, path: str, message: str) -> None:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        _fail(path, message)


_cached_npi_problem = functools.lru_cache(maxsize=4096)(npi_problem)  # the same few NPIs on every line


def _check_npi(value: str, path: str) -> None:
    problem = _cached_npi_problem(value)
    if problem:
        _fail(path, problem)


def _check_control_number(value, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONTROL_NUMBER:
        _fail(path, f"must be a whole number from 1 to {MAX_CONTROL_NUMBER}.")


def _check_address(address: Address, path: str, *, nine_digit_zip: bool = False) -> None:
    _require_text(address.line1, f"{path}.line1", max_length=55)
    if address.line2:
        _require_text(address.line2, f"{path}.line2", max_length=55)
    _require_text(address.city, f"{path}.city", max_length=30, min_length=2)
    _require_match(r"[A-Z]{2}", address.state, f"{path}.state", "must be a two-letter state code.")
    zip_pattern = r"[0-9]{9}" if nine_digit_zip else r"[0-9]{5}([0-9]{4})?"
    _require_match(zip_pattern, address.postal_code, f"{path}.postal_code",
                   "must be 9 digits (ZIP+4)." if nine_digit_zip else "must be 5 or 9 digits.")


def _check_provider(provider: Provider, path: str) -> None:
    _require_text(provider.last_name, f"{path}.last_name", max_length=60)
    _require_text(provider.first_name, f"{path}.first_name", max_length=35)
    _check_npi(provider.npi, f"{path}.npi")


def check_batch(batch: Batch) -> None:
    _check_strings(batch, "batch")
    _require_text(batch.id, "batch.id", max_length=50)
    if not isinstance(batch.created_at, datetime) or batch.created_at.utcoffset() != timedelta(0):
        _fail("batch.created_at", "must be a UTC-aware date and time.")
    _check_control_number(batch.interchange_control_number, "batch.interchange_control_number")
    _check_control_number(batch.group_control_number, "batch.group_control_number")
    if batch.usage not in tuple(Usage):
        _fail("batch.usage", "must be T (test) or P (production).")
    submitter, receiver, billing = batch.submitter, batch.receiver, batch.billing_provider
    _require_text(submitter.name, "batch.submitter.name", max_length=60)
    _require_match(r"[A-Za-z0-9]{2,15}", submitter.id, "batch.submitter.id", "must be 2 to 15 letters or digits.")
    _require_text(submitter.contact_name, "batch.submitter.contact_name", max_length=60)
    _require_match(r"[0-9]{10}", submitter.contact_phone, "batch.submitter.contact_phone", "must be 10 digits.")
    _require_text(receiver.name, "batch.receiver.name", max_length=60)
    _require_match(r"[A-Za-z0-9]{2,15}", receiver.id, "batch.receiver.id", "must be 2 to 15 letters or digits.")
    _require_text(billing.name, "batch.billing_provider.name", max_length=60)
    _check_npi(billing.npi, "batch.billing_provider.npi")
    _require_match(r"[0-9]{9}", billing.tin, "batch.billing_provider.tin", "must be the 9-digit EIN, no dash.")
    _require_match(r"[0-9]{9}[A-Z]", billing.taxonomy, "batch.billing_provider.taxonomy",
                   "must be a 10-character taxonomy code.")
    _check_address(billing.address, "batch.billing_provider.address", nine_digit_zip=True)


def modifier_problem(code: str, modifiers: Sequence[str], place_of_service: str) -> str | None:
    """The modifiers a PT line may carry (§2, §4.2, §6 item 5): GP always; CQ never on a
    device-supply code; 95 only on a telehealth visit (POS 02/10), never on RTM."""
    if THERAPY_MODIFIER not in modifiers:
        return f"{code} billed by a physical therapist needs the {THERAPY_MODIFIER} modifier."
    if ASSISTANT_MODIFIER in modifiers and code in DEVICE_SUPPLY_CODES:
        return f"{code} is a device-supply code: it never carries {ASSISTANT_MODIFIER}."
    if TELEHEALTH_MODIFIER in modifiers and code in RTM_CODES:
        return f"{code} is remote monitoring, not telehealth: it never carries {TELEHEALTH_MODIFIER}."
    if TELEHEALTH_MODIFIER in modifiers and place_of_service not in TELEHEALTH_PLACES:
        return f"{TELEHEALTH_MODIFIER} goes only with a telehealth place of service (02 or 10)."
    return None


def _check_line(line: ClaimLine, path: str, diagnosis_count: int) -> None:
    _require_match(r"[0-9A-Z][0-9]{3}[0-9A-Z]", line.code, f"{path}.code", "must be a 5-character CPT/HCPCS code.")
    if not isinstance(line.modifiers, tuple) or len(line.modifiers) > MAX_MODIFIERS:
        _fail(f"{path}.modifiers", f"must be a tuple of at most {MAX_MODIFIERS} modifiers.")
    for index, modifier in enumerate(line.modifiers):
        _require_match(r"[0-9A-Z]{2}", modifier, f"{path}.modifiers[{index}]", "must be 2 letters or digits.")
    if len(set(line.modifiers)) != len(line.modifiers):
        _fail(f"{path}.modifiers", "lists a modifier twice.")
    if isinstance(line.units, bool) or not isinstance(line.units, int) or not 1 <= line.units <= 9999:
        _fail(f"{path}.units", "must be a whole number from 1 to 9999.")
    if isinstance(line.charge_cents, bool) or not isinstance(line.charge_cents, int) or line.charge_cents <= 0:
        _fail(f"{path}.charge_cents", "must be a positive whole number of cents.")
    for name in ("service_from", "service_to"):
        value = getattr(line, name)
        if not isinstance(value, date) or isinstance(value, datetime):
            _fail(f"{path}.{name}", "must be a date.")
    if line.service_to < line.service_from:
        _fail(f"{path}.service_to", "is before service_from.")
    pointers = line.diagnosis_pointers
    if not isinstance(pointers, tuple) or not 1 <= len(pointers) <= MAX_POINTERS:
        _fail(f"{path}.diagnosis_pointers", f"must hold 1 to {MAX_POINTERS} pointers.")
    if len(set(pointers)) != len(pointers) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= diagnosis_count for p in pointers):
        _fail(f"{path}.diagnosis_pointers", f"must point, once each, at diagnoses 1 to {diagnosis_count}.")
    _require_match(r"[0-9]{2}", line.place_of_service, f"{path}.place_of_service", "must be 2 digits.")
    _check_provider(line.rendering, f"{path}.rendering")
    problem = modifier_problem(line.code, line.modifiers, line.place_of_service)
    if problem:
        _fail(f"{path}.modifiers", problem)


ICD10_PATTERN = r"[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?"


def check_claim(claim: Claim, path: str) -> None:
    _check_strings(claim, path)
    _require_text(claim.patient_control_number, f"{path}.patient_control_number",
                  max_length=MAX_PATIENT_CONTROL_NUMBER - SPLIT_SUFFIX_ROOM)
    subscriber = claim.subscriber
    _require_text(subscriber.last_name, f"{path}.subscriber.last_name", max_length=60)
    _require_text(subscriber.first_name, f"{path}.subscriber.first_name", max_length=35)
    if not isinstance(subscriber.birth_date, date):
        _fail(f"{path}.subscriber.birth_date", "must be a date.")
    if subscriber.sex not in tuple(Sex):
        _fail(f"{path}.subscriber.sex", "must be F, M or U.")
    _check_address(subscriber.address, f"{path}.subscriber.address")
    if claim.payer.type not in tuple(PayerType):
        _fail(f"{path}.payer.type", f"must be one of {', '.join(PayerType)} (self-pay has no claim).")
    _require_text(claim.payer.name, f"{path}.payer.name", max_length=60)
    _require_match(r"[A-Za-z0-9]{2,80}", claim.payer.id, f"{path}.payer.id", "must be 2 to 80 letters or digits.")
    _require_match(r"[A-Za-z0-9-]{1,80}", subscriber.member_id, f"{path}.subscriber.member_id",
                   "must be 1 to 80 letters, digits or dashes.")
    problem = member_id_problem(claim.payer.type, subscriber.member_id)
    if problem:
        _fail(f"{path}.subscriber.member_id", problem)
    if not isinstance(claim.diagnoses, tuple) or not 1 <= len(claim.diagnoses) <= MAX_DIAGNOSES:
        _fail(f"{path}.diagnoses", f"must hold 1 to {MAX_DIAGNOSES} ICD-10 codes, principal first.")
    for index, code in enumerate(claim.diagnoses):
        _require_match(ICD10_PATTERN, code, f"{path}.diagnoses[{index}]", "is not an ICD-10-CM code.")
    if len({code.replace(".", "") for code in claim.diagnoses}) != len(claim.diagnoses):
        _fail(f"{path}.diagnoses", "lists a diagnosis twice.")
    _require_match(r"[0-9]{2}", claim.place_of_service, f"{path}.place_of_service", "must be 2 digits.")
    _check_provider(claim.rendering, f"{path}.rendering")
    if claim.frequency not in tuple(Frequency):
        _fail(f"{path}.frequency", "must be 1 (original), 7 (replacement) or 8 (void).")
    if claim.frequency == Frequency.ORIGINAL:
        if claim.original_claim_number is not None:
            _fail(f"{path}.original_claim_number", "is only for a replacement or void claim.")
    else:
        _require_text(claim.original_claim_number or "", f"{path}.original_claim_number", max_length=50)
    if not isinstance(claim.lines, tuple) or not claim.lines:
        _fail(f"{path}.lines", "a claim needs at least one line.")
    if claim.frequency != Frequency.ORIGINAL and len(claim.lines) > MAX_LINES_PER_CLAIM:
        _fail(f"{path}.lines", f"a replacement or void claim stands for one claim: at most {MAX_LINES_PER_CLAIM} lines.")
    if len(claim.lines) > MAX_LINES_PER_CLAIM * MAX_CLAIMS_PER_SUBSCRIBER:
        _fail(f"{path}.lines", f"at most {MAX_LINES_PER_CLAIM * MAX_CLAIMS_PER_SUBSCRIBER} lines per patient.")
    for index, line in enumerate(claim.lines):
        _check_line(line, f"{path}.lines[{index}]", len(claim.diagnoses))


def member_id(claim: Claim) -> str:
    """As sent: an MBI without its printed dashes; other payers' ids as given."""
    if claim.payer.type == PayerType.MEDICARE:
        return normalise_mbi(claim.subscriber.member_id)
    return claim.subscriber.member_id


def _patient_key(claim: Claim) -> tuple[str, str]:
    return claim.payer.id, member_id(claim)


def check_claims(claims: Sequence[Claim]) -> None:
    """Each claim's fields, then one original claim per patient per batch."""
    if not claims:
        _fail("claims", "a batch needs at least one claim.")
    originals: set[tuple[str, str]] = set()
    numbers: set[str] = set()
    for index, claim in enumerate(claims):
        path = f"claims[{index}]"
        check_claim(claim, path)
        parts = [part.patient_control_number for part in split_claim(claim)]
        if numbers.intersection(parts):
            _fail(f"{path}.patient_control_number", "is used twice in this batch (parts of a split claim count).")
        numbers.update(parts)
        if claim.frequency == Frequency.ORIGINAL:
            if _patient_key(claim) in originals:
                _fail(path, "a second original claim for the same patient and payer: merge its lines into one claim.")
            originals.add(_patient_key(claim))


# ---------------------------------------------------------------- splitting


def split_claim(claim: Claim) -> list[Claim]:
    """At most 50 lines per claim: beyond that, parts numbered <control number>-1, -2, ...
    (the workbench records each line's part to match the remittance)."""
    if len(claim.lines) <= MAX_LINES_PER_CLAIM:
        return [claim]
    return [
        dataclasses.replace(claim, patient_control_number=f"{claim.patient_control_number}-{part}",
                            lines=claim.lines[start:start + MAX_LINES_PER_CLAIM])
        for part, start in enumerate(range(0, len(claim.lines), MAX_LINES_PER_CLAIM), start=1)
    ]


# ---------------------------------------------------------------- writing


def dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _name(text: str) -> str:
    return _ascii(text).strip().upper()


def _segment(*elements: str) -> str:
    """Trailing empty elements are dropped, as X12 requires."""
    values = list(elements)
    while values and values[-1] == "":
        values.pop()
    return ELEMENT_SEPARATOR.join(values) + SEGMENT_TERMINATOR


def _address_segments(address: Address) -> Iterator[str]:
    yield _segment("N3", _name(address.line1), _name(address.line2))
    yield _segment("N4", _name(address.city), address.state, address.postal_code)


def _dtp(line: ClaimLine) -> str:
    if line.service_from == line.service_to:
        return _segment("DTP", "472", "D8", f"{line.service_from:%Y%m%d}")
    return _segment("DTP", "472", "RD8", f"{line.service_from:%Y%m%d}-{line.service_to:%Y%m%d}")


def _rendering_segments(provider: Provider) -> Iterator[str]:
    yield _segment("NM1", "82", "1", _name(provider.last_name), _name(provider.first_name), "", "", "", "XX",
                   provider.npi)
    yield _segment("PRV", "PE", "PXC", PT_TAXONOMY)


def _claim_segments(claim: Claim, billing_npi: str) -> Iterator[str]:
    total = sum(line.charge_cents for line in claim.lines)
    frequency = COMPONENT_SEPARATOR.join((claim.place_of_service, "B", claim.frequency))
    # CLM06 provider signature on file, CLM07 assignment accepted, CLM08 benefits assigned,
    # CLM09 release of information on file.
    yield _segment("CLM", claim.patient_control_number, dollars(total), "", "", frequency, "Y", "A", "Y", "Y")
    if claim.original_claim_number is not None:
        yield _segment("REF", "F8", claim.original_claim_number)
    yield _segment("HI", *(
        COMPONENT_SEPARATOR.join(("ABK" if index == 0 else "ABF", code.replace(".", "")))
        for index, code in enumerate(claim.diagnoses)))
    if claim.rendering.npi != billing_npi:
        yield from _rendering_segments(claim.rendering)
    for number, line in enumerate(claim.lines, start=1):
        yield _segment("LX", str(number))
        procedure = COMPONENT_SEPARATOR.join(("HC", line.code, *line.modifiers))
        place = "" if line.place_of_service == claim.place_of_service else line.place_of_service
        pointers = COMPONENT_SEPARATOR.join(str(p) for p in line.diagnosis_pointers)
        yield _segment("SV1", procedure, dollars(line.charge_cents), "UN", str(line.units), place, "", pointers)
        yield _dtp(line)
        if line.rendering.npi != claim.rendering.npi:
            yield from _rendering_segments(line.rendering)  # loop 2420A


def _transaction_segments(batch: Batch, claims: Sequence[Claim]) -> Iterator[str]:
    created = batch.created_at
    submitter, receiver, billing = batch.submitter, batch.receiver, batch.billing_provider
    yield _segment("BHT", "0019", "00", batch.id, f"{created:%Y%m%d}", f"{created:%H%M}", "CH")
    yield _segment("NM1", "41", "2", _name(submitter.name), "", "", "", "", "46", submitter.id)
    yield _segment("PER", "IC", _name(submitter.contact_name), "TE", submitter.contact_phone)
    yield _segment("NM1", "40", "2", _name(receiver.name), "", "", "", "", "46", receiver.id)
    yield _segment("HL", "1", "", "20", "1")
    yield _segment("PRV", "BI", "PXC", billing.taxonomy)
    yield _segment("NM1", "85", "2", _name(billing.name), "", "", "", "", "XX", billing.npi)
    yield from _address_segments(billing.address)
    yield _segment("REF", "EI", billing.tin)
    for number, claim in enumerate(claims, start=2):
        subscriber = claim.subscriber
        yield _segment("HL", str(number), "1", "22", "0")
        yield _segment("SBR", "P", "18", "", "", "", "", "", "", CLAIM_FILING_INDICATOR[claim.payer.type])
        yield _segment("NM1", "IL", "1", _name(subscriber.last_name), _name(subscriber.first_name), "", "", "",
                       "MI", member_id(claim))
        yield from _address_segments(subscriber.address)
        yield _segment("DMG", "D8", f"{subscriber.birth_date:%Y%m%d}", subscriber.sex)
        yield _segment("NM1", "PR", "2", _name(claim.payer.name), "", "", "", "", "PI", claim.payer.id)
        for part in split_claim(claim):
            yield from _claim_segments(part, billing.npi)


TRANSACTION_CONTROL_NUMBER = "0001"  # one transaction per group: unique within it


def write_837p(batch: Batch, claims: Sequence[Claim]) -> str:
    """The whole interchange (one group, one transaction) for `claims`, or ClaimDataError."""
    check_batch(batch)
    check_claims(claims)
    created = batch.created_at
    submitter_id, receiver_id = batch.submitter.id, batch.receiver.id
    interchange = f"{batch.interchange_control_number:09d}"
    group = str(batch.group_control_number)
    body = list(_transaction_segments(batch, claims))
    segments = [
        _segment("ISA", "00", " " * 10, "00", " " * 10, "ZZ", f"{submitter_id:<15}", "ZZ", f"{receiver_id:<15}",
                 f"{created:%y%m%d}", f"{created:%H%M}", REPETITION_SEPARATOR, "00501", interchange, "0",
                 batch.usage, COMPONENT_SEPARATOR),
        _segment("GS", "HC", submitter_id, receiver_id, f"{created:%Y%m%d}", f"{created:%H%M}", group, "X",
                 IMPLEMENTATION_GUIDE),
        _segment("ST", "837", TRANSACTION_CONTROL_NUMBER, IMPLEMENTATION_GUIDE),
        *body,
        _segment("SE", str(len(body) + 2), TRANSACTION_CONTROL_NUMBER),
        _segment("GE", "1", group),
        _segment("IEA", "1", interchange),
    ]
    return "\n".join(segments) + "\n"


# ---------------------------------------------------------------- our own checks


_AMOUNT = re.compile(r"[0-9]{1,15}(\.[0-9]{1,2})?")
_ISA_ELEMENTS = 17  # the longest segment read here; shorter ones are padded so no index is missing


def _cents(amount: str) -> int | None:
    if not _AMOUNT.fullmatch(amount):
        return None
    whole, _, fraction = amount.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])


def check_837p(text: str) -> list[str]:
    """What pyx12 does not check (§5.1 negative tests): control numbers and counts of every
    envelope, each claim's total against its lines, lines per claim, and modifiers per code.
    Any text gets an answer (a list of problems), never an exception."""
    if not text.startswith("ISA") or len(text) < 106:
        return ["The file does not start with an ISA segment."]
    element, component, terminator = text[3], text[104], text[105]
    problems: list[str] = []
    stack: list[list[str]] = []  # open envelopes: ISA, GS, ST
    counts = {"ISA": 0, "GS": 0, "ST": 0}  # children of the open envelope
    segments_in_transaction = 0
    claim: dict | None = None

    def close_claim() -> None:
        if claim is not None:
            if claim["total"] != claim["lines_total"]:
                problems.append(f"Claim {claim['id']}: total {dollars(claim['total'])} is not the sum of its "
                                f"lines {dollars(claim['lines_total'])}.")
            if claim["lines"] > MAX_LINES_PER_CLAIM:
                problems.append(f"Claim {claim['id']}: {claim['lines']} lines, at most {MAX_LINES_PER_CLAIM}.")

    for raw in text.split(terminator):
        if not raw.strip():
            continue
        elements = raw.strip().split(element)
        elements += [""] * (_ISA_ELEMENTS - len(elements))
        tag = elements[0]
        if stack and stack[-1][0] == "ST":
            segments_in_transaction += 1
        if tag in ("ISA", "GS", "ST"):
            if stack:
                counts[stack[-1][0]] += 1
            stack.append(elements)
            counts[tag] = 0
            segments_in_transaction = 1 if tag == "ST" else segments_in_transaction
        elif tag in ("IEA", "GE", "SE"):
            opener = {"IEA": "ISA", "GE": "GS", "SE": "ST"}[tag]
            if not stack or stack[-1][0] != opener:
                problems.append(f"{tag} without its {opener}.")
                continue
            opened = stack.pop()
            control = {"ISA": 13, "GS": 6, "ST": 2}[opener]
            if not elements[2] or elements[2] != opened[control]:
                problems.append(f"{tag}02 control number does not match {opener}{control:02d}.")
            if opener == "ST":
                close_claim()
                claim = None
                expected = segments_in_transaction
            else:
                expected = counts[opener]
            if elements[1] != str(expected):
                problems.append(f"{tag}01 says {elements[1] or 'nothing'}, the count is {expected}.")
        elif tag == "CLM":
            close_claim()
            claim = None
            total = _cents(elements[2])
            if total is None:
                problems.append(f"Claim {elements[1]}: CLM02 {elements[2]!r} is not an amount.")
                continue
            place = elements[5].split(component)[0]
            claim = {"id": elements[1], "total": total, "lines_total": 0, "lines": 0, "place": place}
        elif tag == "HL":
            close_claim()
            claim = None
        elif tag == "SV1" and claim is not None:
            procedure = [*elements[1].split(component), ""]
            code, modifiers = procedure[1], [m for m in procedure[2:] if m]
            claim["lines"] += 1
            charge = _cents(elements[2])
            if charge is None:
                problems.append(f"Claim {claim['id']} line {claim['lines']}: SV102 {elements[2]!r} is not an amount.")
            else:
                claim["lines_total"] += charge
            problem = modifier_problem(code, modifiers, elements[5] or claim["place"])
            if problem:
                problems.append(f"Claim {claim['id']} line {claim['lines']}: {problem}")
    for opened in stack:
        problems.append(f"{opened[0]} is never closed.")
    return problems
