"""The 837P writer: every file written here passes pyx12's 005010X222A1 validation (offline, its
bundled maps) and our own checks; bad input is refused with the field named."""

from __future__ import annotations

import ast
import dataclasses
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from telerehab.billing.x12 import (
    Address,
    Batch,
    BillingProvider,
    Claim,
    ClaimDataError,
    ClaimLine,
    Frequency,
    Payer,
    PayerType,
    Provider,
    Receiver,
    Sex,
    Submitter,
    Subscriber,
    Usage,
    check_837p,
    modifier_problem,
    split_claim,
    write_837p,
)
from tests.x12_support import npi, pyx12_errors


def wrong_check_digit(value: str) -> str:
    return value[:9] + str((int(value[9]) + 1) % 10)


THERAPIST = Provider("Smith", "Anna", npi("198765432"))
COVERING_THERAPIST = Provider("Doe", "José", npi("111111111"))
MBI = "1EG4-TE5-MK73"
MEDICARE = Payer("Medicare Illinois", "00952", PayerType.MEDICARE)
COMMERCIAL = Payer("Acme Health", "ACME01", PayerType.COMMERCIAL)


def make_batch(**changes) -> Batch:
    batch = Batch(
        id="B-2026-01", created_at=datetime(2026, 2, 3, 14, 5, tzinfo=UTC), interchange_control_number=17,
        group_control_number=23, usage=Usage.TEST,
        submitter=Submitter("Telerehab PT", "TRPT01", "Billing Desk", "2175550100"),
        receiver=Receiver("Clearing House", "CLR01"),
        billing_provider=BillingProvider("Telerehab PT LLC", npi("123456789"), "371234567",
                                         Address("1 Main St", "Springfield", "IL", "627011234", "Suite 2")),
    )
    return dataclasses.replace(batch, **changes)


def make_subscriber(**changes) -> Subscriber:
    subscriber = Subscriber("Jones", "Mary", date(1950, 3, 4), Sex.FEMALE,
                            Address("2 Oak Ave", "Peoria", "IL", "61602"), MBI)
    return dataclasses.replace(subscriber, **changes)


def make_line(index: int = 0, **changes) -> ClaimLine:
    """Lines with different codes, charges and dates so that totals and pointers are not trivial."""
    code, modifiers, cents = [("98977", ("GP",), 4008), ("98980", ("GP", "CQ"), 5411),
                              ("98981", ("GP", "KX"), 4175), ("98975", ("GP",), 2171)][index % 4]
    day = date(2026, 1, 1) + timedelta(days=index % 28)
    line = ClaimLine(code=code, modifiers=modifiers, units=1 + index % 3, charge_cents=cents + index,
                     service_from=day, service_to=day, diagnosis_pointers=(1,) if index % 2 else (2, 1),
                     place_of_service="11", rendering=THERAPIST)
    return dataclasses.replace(line, **changes)


def make_claim(line_count: int = 3, **changes) -> Claim:
    claim = Claim(patient_control_number="P100-2026-01", subscriber=make_subscriber(), payer=MEDICARE,
                  diagnoses=("M54.50", "M25.561"), lines=tuple(make_line(i) for i in range(line_count)),
                  rendering=THERAPIST, place_of_service="11")
    return dataclasses.replace(claim, **changes)


def written(batch: Batch, claims: list[Claim]) -> str:
    """Write, then require both pyx12 and our own checks to pass."""
    text = write_837p(batch, claims)
    assert pyx12_errors(text) == []
    assert check_837p(text) == []
    return text


def segments(text: str, tag: str) -> list[list[str]]:
    return [s.strip().split("*") for s in text.split("~") if s.strip().split("*")[0] == tag]


def cents(amount: str) -> int:
    whole, fraction = amount.split(".")
    return int(whole) * 100 + int(fraction)


# ---------------------------------------------------------------- the validator itself


def test_pyx12_validation_really_catches_a_broken_file():
    text = written(make_batch(), [make_claim()])
    broken = text.replace("DTP*472*D8*20260101~\n", "", 1)
    assert broken != text
    assert any("DTP" in message for message in pyx12_errors(broken))


# ---------------------------------------------------------------- subscribers and payers


@pytest.mark.parametrize(("payer", "member_id", "sent_member_id", "filing_indicator"), [
    (MEDICARE, MBI, "1EG4TE5MK73", "MB"),
    (MEDICARE, "1eg4te5mk73", "1EG4TE5MK73", "MB"),
    (COMMERCIAL, "XJ-4455", "XJ-4455", "CI"),
    (Payer("Acme Advantage", "ACMA", PayerType.MEDICARE_ADVANTAGE), "A123", "A123", "16"),
    (Payer("State Medicaid", "MCD77", PayerType.MEDICAID), "99887766", "99887766", "MC"),
    (Payer("Comp Co", "WC001", PayerType.WORKERS_COMP), "CLAIM5", "CLAIM5", "WC"),
])
def test_subscriber_is_the_patient_with_the_payers_filing_indicator(payer, member_id, sent_member_id,
                                                                    filing_indicator):
    claim = make_claim(payer=payer, subscriber=make_subscriber(member_id=member_id))
    text = written(make_batch(), [claim])
    (sbr,) = segments(text, "SBR")
    assert sbr[1:3] == ["P", "18"] and sbr[9] == filing_indicator
    (hl,) = [h for h in segments(text, "HL") if h[3] == "22"]
    assert hl[4] == "0"  # no dependent (2000C) loop: the patient is the subscriber
    (subscriber,) = [n for n in segments(text, "NM1") if n[1] == "IL"]
    assert subscriber[3:5] == ["JONES", "MARY"] and subscriber[8:10] == ["MI", sent_member_id]
    (payer_name,) = [n for n in segments(text, "NM1") if n[1] == "PR"]
    assert payer_name[8:10] == ["PI", payer.id]
    assert segments(text, "DMG") == [["DMG", "D8", "19500304", "F"]]


def test_a_medicare_claim_needs_a_valid_mbi():
    with pytest.raises(ClaimDataError) as error:
        write_837p(make_batch(), [make_claim(subscriber=make_subscriber(member_id="1EG4-TE5-MK7S"))])
    assert error.value.field == "claims[0].subscriber.member_id"


def test_several_patients_get_one_subscriber_loop_each_under_the_billing_provider():
    claims = [make_claim(),
              make_claim(patient_control_number="P200", payer=COMMERCIAL,
                         subscriber=make_subscriber(last_name="Brown", member_id="Z9"))]
    text = written(make_batch(), claims)
    assert [h[1:] for h in segments(text, "HL")] == [["1", "", "20", "1"], ["2", "1", "22", "0"],
                                                    ["3", "1", "22", "0"]]
    assert [c[1] for c in segments(text, "CLM")] == ["P100-2026-01", "P200"]


def test_one_original_claim_per_patient_per_batch():
    with pytest.raises(ClaimDataError) as error:
        write_837p(make_batch(), [make_claim(), make_claim(patient_control_number="P101")])
    assert error.value.field == "claims[1]"
    # The same patient may have this month's claim and a correction of an earlier one.
    replacement = make_claim(patient_control_number="P101", frequency=Frequency.REPLACEMENT,
                             original_claim_number="21126000123")
    written(make_batch(), [make_claim(), replacement])


# ---------------------------------------------------------------- lines and splitting


@pytest.mark.parametrize(("line_count", "claim_sizes"), [
    (1, [1]), (2, [2]), (49, [49]), (50, [50]), (51, [50, 1]), (100, [50, 50]), (101, [50, 50, 1]),
    (120, [50, 50, 20]),
])
def test_claims_are_split_beyond_50_lines_and_each_total_is_its_lines_sum(line_count, claim_sizes):
    claim = make_claim(line_count)
    text = written(make_batch(), [claim])
    claims = segments(text, "CLM")
    expected_numbers = ["P100-2026-01"] if len(claim_sizes) == 1 else [
        f"P100-2026-01-{part}" for part in range(1, len(claim_sizes) + 1)]
    assert [c[1] for c in claims] == expected_numbers
    assert [p.patient_control_number for p in split_claim(claim)] == expected_numbers
    # Lines are numbered 1.. within each claim, in the order given, none lost or repeated.
    numbers = [int(lx[1]) for lx in segments(text, "LX")]
    assert numbers == [n for size in claim_sizes for n in range(1, size + 1)]
    charges = [cents(sv1[2]) for sv1 in segments(text, "SV1")]
    assert charges == [line.charge_cents for line in claim.lines]
    start = 0
    for clm, size in zip(claims, claim_sizes, strict=True):
        assert cents(clm[2]) == sum(charges[start:start + size])
        start += size
    (se,) = segments(text, "SE")
    body = text[text.index("\nST*"):text.index("\nSE*")]
    assert int(se[1]) == body.count("~") + 1


def test_service_lines_carry_code_modifiers_units_pointers_and_dates():
    lines = (
        make_line(0, service_from=date(2026, 1, 5), service_to=date(2026, 2, 3)),  # a 30-day period
        make_line(1, code="97110", modifiers=("GP", "CQ", "95", "93"), units=2, charge_cents=6000,
                  place_of_service="10", diagnosis_pointers=(2, 1, 3, 4), rendering=COVERING_THERAPIST),
        make_line(2, service_from=date(2026, 1, 31), service_to=date(2026, 1, 31)),
    )
    claim = make_claim(lines=lines, diagnoses=("M54.50", "M25561", "S83.511A", "Z96.651"))
    text = written(make_batch(), [claim])
    assert segments(text, "SV1") == [
        ["SV1", "HC:98977:GP", "40.08", "UN", "1", "", "", "2:1"],
        ["SV1", "HC:97110:GP:CQ:95:93", "60.00", "UN", "2", "10", "", "2:1:3:4"],  # POS differs: SV105
        ["SV1", "HC:98981:GP:KX", "41.77", "UN", "3", "", "", "2:1"],
    ]
    dates = [d[2:] for d in segments(text, "DTP")]
    assert dates == [["RD8", "20260105-20260203"], ["D8", "20260102"], ["D8", "20260131"]]
    assert segments(text, "HI") == [["HI", "ABK:M5450", "ABF:M25561", "ABF:S83511A", "ABF:Z96651"]]
    assert segments(text, "CLM")[0][5] == "11:B:1"
    # The claim's rendering PT in 2310B; the covering PT on their own line only (2420A).
    rendering = [n[9] for n in segments(text, "NM1") if n[1] == "82"]
    assert rendering == [THERAPIST.npi, COVERING_THERAPIST.npi]
    covering = text.index(f"XX*{COVERING_THERAPIST.npi}")
    assert text.index("DTP*472*D8*20260102") < covering < text.index("LX*3")
    assert "*DOE*JOSE*" in text  # accents dropped for the X12 character set


# ---------------------------------------------------------------- modifiers


@pytest.mark.parametrize(("code", "modifiers", "place", "problem"), [
    ("98977", ("GP",), "11", None),
    ("98980", ("GP", "CQ", "KX"), "11", None),
    ("97110", ("GP", "95"), "10", None),
    ("97110", ("GP", "95"), "02", None),
    ("97110", ("GP", "CQ", "95", "93"), "10", None),
    ("98977", (), "11", "needs the GP"),
    ("97110", ("CQ",), "11", "needs the GP"),
    ("98976", ("GP", "CQ"), "11", "never carries CQ"),
    ("98977", ("GP", "CQ"), "11", "never carries CQ"),
    ("98978", ("GP", "CQ"), "11", "never carries CQ"),
    ("98984", ("GP", "CQ"), "11", "never carries CQ"),
    ("98985", ("GP", "CQ"), "11", "never carries CQ"),
    ("98986", ("GP", "CQ"), "11", "never carries CQ"),
    ("98975", ("GP", "CQ"), "11", None),
    ("98979", ("GP", "CQ"), "11", None),
    ("98981", ("GP", "CQ"), "11", None),
    ("98980", ("GP", "95"), "10", "never carries 95"),
    ("98975", ("GP", "95"), "02", "never carries 95"),
    ("98985", ("GP", "95"), "10", "never carries 95"),
    ("97110", ("GP", "95"), "11", "telehealth place of service"),
])
def test_modifiers_allowed_per_code(code, modifiers, place, problem):
    found = modifier_problem(code, modifiers, place)
    assert (found is None) if problem is None else (problem in found)
    line = make_line(code=code, modifiers=modifiers, place_of_service=place)
    claim = make_claim(lines=(line,))
    if problem is None:
        written(make_batch(), [claim])
    else:
        with pytest.raises(ClaimDataError) as error:
            write_837p(make_batch(), [claim])
        assert error.value.field == "claims[0].lines[0].modifiers"


# ---------------------------------------------------------------- corrections


@pytest.mark.parametrize("frequency", [Frequency.REPLACEMENT, Frequency.VOID])
def test_replacement_and_void_claims_reference_the_original(frequency):
    claim = make_claim(frequency=frequency, original_claim_number="21126000123")
    text = written(make_batch(), [claim])
    (clm,) = segments(text, "CLM")
    assert clm[5] == f"11:B:{frequency.value}"
    assert segments(text, "REF")[-1] == ["REF", "F8", "21126000123"]
    assert text.index("REF*F8") > text.index("CLM*") and text.index("REF*F8") < text.index("HI*")


@pytest.mark.parametrize(("changes", "field"), [
    ({"frequency": Frequency.REPLACEMENT}, "claims[0].original_claim_number"),
    ({"frequency": Frequency.VOID, "original_claim_number": ""}, "claims[0].original_claim_number"),
    ({"original_claim_number": "21126000123"}, "claims[0].original_claim_number"),
    ({"frequency": Frequency.REPLACEMENT, "original_claim_number": "2112",
      "lines": tuple(make_line(i) for i in range(51))}, "claims[0].lines"),
])
def test_corrections_are_refused_without_or_with_a_stray_original(changes, field):
    with pytest.raises(ClaimDataError) as error:
        write_837p(make_batch(), [make_claim(**changes)])
    assert error.value.field == field


def test_an_original_claim_carries_no_reference():
    text = written(make_batch(), [make_claim()])
    assert "REF*F8" not in text and segments(text, "CLM")[0][5] == "11:B:1"


# ---------------------------------------------------------------- envelopes and control numbers


def test_envelopes_carry_the_callers_control_numbers():
    batch = make_batch(interchange_control_number=987654321, group_control_number=4321, usage=Usage.PRODUCTION)
    text = written(batch, [make_claim()])
    isa = text.split("~")[0]
    assert len(isa) == 105  # ISA is fixed width: 106 characters with its terminator
    isa_elements = isa.split("*")
    assert isa_elements[13] == "987654321" and isa_elements[15] == "P" and isa_elements[11] == "^"
    assert isa_elements[16] == ":" and isa_elements[6] == "TRPT01".ljust(15)
    assert segments(text, "IEA") == [["IEA", "1", "987654321"]]
    (gs,) = segments(text, "GS")
    assert gs[6] == "4321" and gs[8] == "005010X222A1"
    assert segments(text, "GE") == [["GE", "1", "4321"]]
    assert segments(text, "ST")[0][2] == segments(text, "SE")[0][2]
    assert segments(text, "BHT") == [["BHT", "0019", "00", "B-2026-01", "20260203", "1405", "CH"]]


def test_small_control_numbers_are_zero_padded_in_isa13():
    text = written(make_batch(interchange_control_number=1), [make_claim()])
    assert text.split("~")[0].split("*")[13] == "000000001"
    assert segments(text, "IEA")[0][2] == "000000001"


def test_the_same_batch_written_twice_gives_the_same_bytes():
    claims = [make_claim(60), make_claim(patient_control_number="P2", payer=COMMERCIAL,
                                         subscriber=make_subscriber(member_id="Z1"))]
    first = write_837p(make_batch(), claims).encode()
    assert write_837p(make_batch(), list(claims)).encode() == first
    # ... and a different control number changes the envelope only.
    other = write_837p(make_batch(interchange_control_number=18), claims)
    assert other != first.decode()
    assert other.split("~", 1)[1].replace("000000018", "000000017") == first.decode().split("~", 1)[1]


# ---------------------------------------------------------------- refused input


def _with_name(claim: Claim, last_name: str) -> Claim:
    return dataclasses.replace(claim, subscriber=make_subscriber(last_name=last_name))


@pytest.mark.parametrize(("batch_changes", "claim_factory", "field"), [
    # separator characters, wherever they are
    ({}, lambda: _with_name(make_claim(), "O*Brien"), "claims[0].subscriber.last_name"),
    ({}, lambda: _with_name(make_claim(), "Smith~"), "claims[0].subscriber.last_name"),
    ({}, lambda: _with_name(make_claim(), "A:B"), "claims[0].subscriber.last_name"),
    ({}, lambda: _with_name(make_claim(), "A^B"), "claims[0].subscriber.last_name"),
    ({}, lambda: _with_name(make_claim(), "Line\nbreak"), "claims[0].subscriber.last_name"),
    ({}, lambda: make_claim(subscriber=make_subscriber(address=Address("1*A", "Peoria", "IL", "61602"))),
     "claims[0].subscriber.address.line1"),
    ({}, lambda: make_claim(patient_control_number="P~1"), "claims[0].patient_control_number"),
    ({}, lambda: make_claim(payer=Payer("Acme:Health", "A1", PayerType.COMMERCIAL)), "claims[0].payer.name"),
    ({}, lambda: make_claim(lines=(make_line(rendering=Provider("X^Y", "Z", THERAPIST.npi)),)),
     "claims[0].lines[0].rendering.last_name"),
    ({}, lambda: make_claim(frequency=Frequency.VOID, original_claim_number="12*3"),
     "claims[0].original_claim_number"),
    ({"id": "B*1"}, make_claim, "batch.id"),
    ({"submitter": Submitter("T~P", "TRPT01", "Desk", "2175550100")}, make_claim, "batch.submitter.name"),
    ({"receiver": Receiver("Clearing", "CL:R")}, make_claim, "batch.receiver.id"),
    # NPI check digits (the accounts rule)
    ({"billing_provider": BillingProvider("T", wrong_check_digit(npi("123456789")), "371234567",
                                          Address("1 Main", "Springfield", "IL", "627011234"))},
     make_claim, "batch.billing_provider.npi"),
    ({}, lambda: make_claim(rendering=Provider("S", "A", wrong_check_digit(THERAPIST.npi))),
     "claims[0].rendering.npi"),
    ({}, lambda: make_claim(lines=(make_line(rendering=Provider("S", "A", "12345")),)),
     "claims[0].lines[0].rendering.npi"),
    # control numbers
    ({"interchange_control_number": 0}, make_claim, "batch.interchange_control_number"),
    ({"interchange_control_number": 1_000_000_000}, make_claim, "batch.interchange_control_number"),
    ({"interchange_control_number": "000000017"}, make_claim, "batch.interchange_control_number"),
    ({"interchange_control_number": True}, make_claim, "batch.interchange_control_number"),
    ({"group_control_number": -5}, make_claim, "batch.group_control_number"),
    ({"group_control_number": 1_000_000_000}, make_claim, "batch.group_control_number"),
    # the rest of the batch
    ({"created_at": datetime(2026, 2, 3, 14, 5)}, make_claim, "batch.created_at"),
    ({"created_at": datetime(2026, 2, 3, 14, 5, tzinfo=timezone(timedelta(hours=-6)))}, make_claim,
     "batch.created_at"),
    ({"usage": "X"}, make_claim, "batch.usage"),
    ({"submitter": Submitter("T", "WAY-TOO-LONG-ID-1", "Desk", "2175550100")}, make_claim, "batch.submitter.id"),
    ({"billing_provider": BillingProvider("T", npi("123456789"), "37-1234567",
                                          Address("1 Main", "Springfield", "IL", "627011234"))},
     make_claim, "batch.billing_provider.tin"),
    ({"billing_provider": BillingProvider("T", npi("123456789"), "371234567",
                                          Address("1 Main", "Springfield", "IL", "62701"))},
     make_claim, "batch.billing_provider.address.postal_code"),
    # claims and lines
    ({}, lambda: make_claim(diagnoses=()), "claims[0].diagnoses"),
    ({}, lambda: make_claim(diagnoses=("M54.50", "M5450")), "claims[0].diagnoses"),
    ({}, lambda: make_claim(diagnoses=("U07.1", "54.50")), "claims[0].diagnoses[1]"),
    ({}, lambda: make_claim(diagnoses=("M54.50", "M5")), "claims[0].diagnoses[1]"),
    ({}, lambda: make_claim(diagnoses=("M54.505555",)), "claims[0].diagnoses[0]"),
    ({}, lambda: make_claim(diagnoses=tuple(f"M54.{n}" for n in range(13))), "claims[0].diagnoses"),
    ({}, lambda: make_claim(lines=()), "claims[0].lines"),
    ({}, lambda: make_claim(lines=(make_line(diagnosis_pointers=(3,)),)), "claims[0].lines[0].diagnosis_pointers"),
    ({}, lambda: make_claim(lines=(make_line(diagnosis_pointers=(1, 1)),)), "claims[0].lines[0].diagnosis_pointers"),
    ({}, lambda: make_claim(lines=(make_line(diagnosis_pointers=()),)), "claims[0].lines[0].diagnosis_pointers"),
    ({}, lambda: make_claim(lines=(make_line(diagnosis_pointers=(1, 2, 1, 2, 1)),)),
     "claims[0].lines[0].diagnosis_pointers"),
    ({}, lambda: make_claim(lines=(make_line(modifiers=("GP", "CQ", "KX", "95", "93")),)),
     "claims[0].lines[0].modifiers"),
    ({}, lambda: make_claim(lines=(make_line(modifiers=("GP", "GP")),)), "claims[0].lines[0].modifiers"),
    ({}, lambda: make_claim(lines=(make_line(modifiers=("GP", "g")),)), "claims[0].lines[0].modifiers[1]"),
    ({}, lambda: make_claim(lines=(make_line(units=0),)), "claims[0].lines[0].units"),
    ({}, lambda: make_claim(lines=(make_line(charge_cents=0),)), "claims[0].lines[0].charge_cents"),
    ({}, lambda: make_claim(lines=(make_line(charge_cents=40.08),)), "claims[0].lines[0].charge_cents"),
    ({}, lambda: make_claim(lines=(make_line(service_from=date(2026, 2, 1), service_to=date(2026, 1, 31)),)),
     "claims[0].lines[0].service_to"),
    ({}, lambda: make_claim(lines=(make_line(code="9897"),)), "claims[0].lines[0].code"),
    ({}, lambda: make_claim(lines=(make_line(code="G02831"),)), "claims[0].lines[0].code"),
    ({}, lambda: _with_name(make_claim(), "李"), "claims[0].subscriber.last_name"),
    ({}, lambda: make_claim(lines=(make_line(place_of_service="1"),)), "claims[0].lines[0].place_of_service"),
    ({}, lambda: make_claim(patient_control_number="P" * 35), "claims[0].patient_control_number"),
    ({}, lambda: make_claim(subscriber=make_subscriber(sex="X")), "claims[0].subscriber.sex"),
    ({}, lambda: make_claim(payer=Payer("Self", "SELF", "self_pay")), "claims[0].payer.type"),
])
def test_bad_input_is_refused_with_the_field_named(batch_changes, claim_factory, field):
    with pytest.raises(ClaimDataError) as error:
        write_837p(make_batch(**batch_changes), [claim_factory()])
    assert error.value.field == field
    assert str(error.value).startswith(field + ": ")


def test_an_empty_batch_is_refused():
    with pytest.raises(ClaimDataError) as error:
        write_837p(make_batch(), [])
    assert error.value.field == "claims"


def test_the_longest_control_number_a_split_leaves_room_for_fits_clm01():
    claim = make_claim(5000, patient_control_number="P" * 34)  # 100 parts: "-100" is the longest suffix
    text = write_837p(make_batch(), [claim])
    assert check_837p(text) == []
    numbers = [c[1] for c in segments(text, "CLM")]
    assert len(numbers) == 100 and numbers[-1] == "P" * 34 + "-100" and len(numbers[-1]) == 38
    with pytest.raises(ClaimDataError) as error:
        write_837p(make_batch(), [make_claim(5001)])
    assert error.value.field == "claims[0].lines"


def test_claim_numbers_are_unique_in_a_batch_split_parts_included():
    other = make_claim(1, patient_control_number="P100-2026-01-2", payer=COMMERCIAL,
                       subscriber=make_subscriber(member_id="Z1"))
    with pytest.raises(ClaimDataError) as error:
        write_837p(make_batch(), [make_claim(60), other])
    assert error.value.field == "claims[1].patient_control_number"
    with pytest.raises(ClaimDataError) as error:
        write_837p(make_batch(), [make_claim(1), dataclasses.replace(other, patient_control_number="P100-2026-01")])
    assert error.value.field == "claims[1].patient_control_number"


# ---------------------------------------------------------------- our own checks on a file


def _one_file() -> str:
    return written(make_batch(), [make_claim(4), make_claim(patient_control_number="P2", payer=COMMERCIAL,
                                                            subscriber=make_subscriber(member_id="Z1"))])


@pytest.mark.parametrize(("mutate", "problem"), [
    (lambda t: re.sub(r"CLM\*P2\*[0-9.]+", "CLM*P2*999.99", t), "Claim P2: total 999.99 is not the sum"),
    (lambda t: re.sub(r"SE\*[0-9]+", "SE*5", t), "SE01 says 5"),
    (lambda t: t.replace("GE*1*23", "GE*2*23"), "GE01 says 2, the count is 1"),
    (lambda t: t.replace("IEA*1*000000017", "IEA*1*000000018"), "IEA02 control number does not match ISA13"),
    (lambda t: t.replace("GE*1*23", "GE*1*24"), "GE02 control number does not match GS06"),
    (lambda t: re.sub(r"SE\*([0-9]+)\*0001", r"SE*\1*0002", t), "SE02 control number does not match ST02"),
    (lambda t: t.replace("HC:98977:GP*", "HC:98977:GP:CQ*", 1), "98977 is a device-supply code"),
    (lambda t: t.replace("HC:98975:GP*", "HC:98975*", 1), "98975 billed by a physical therapist needs"),
    (lambda t: t.replace("HC:98980:GP:CQ*", "HC:98980:GP:95*", 1), "never carries 95"),
    (lambda t: t[:t.index("IEA")], "ISA is never closed"),
    (lambda t: "GS" + t, "does not start with an ISA"),
])
def test_our_checks_catch_what_pyx12_does_not(mutate, problem):
    broken = mutate(_one_file())
    problems = check_837p(broken)
    assert any(problem in p for p in problems), problems


def test_our_checks_count_lines_per_claim():
    text = _one_file()
    lines = text.split("\n")
    first_lx = next(i for i, s in enumerate(lines) if s.startswith("LX*"))
    extra = lines[first_lx:first_lx + 3] * 47  # 4 + 47 = 51 lines in the first claim
    bloated = "\n".join(lines[:first_lx] + extra + lines[first_lx:])
    assert any("51 lines, at most 50" in p for p in check_837p(bloated))


@pytest.mark.parametrize(("code", "diagnoses"), [
    ("G0283", ("U07.1",)),  # HCPCS level II; U codes are ICD-10-CM too
    ("0362T", ("M17.11", "Z96.651")),  # CPT category III
    ("97110", ("S83.511A", "M25.561", "M62.81")),
])
def test_hcpcs_and_category_iii_codes_and_any_icd10_chapter_are_written(code, diagnoses):
    line = make_line(code=code, diagnosis_pointers=tuple(range(1, len(diagnoses) + 1)))
    text = written(make_batch(), [make_claim(lines=(line,), diagnoses=diagnoses)])
    assert segments(text, "SV1")[0][1] == f"HC:{code}:GP"


@pytest.mark.parametrize("module", ["telerehab/billing/x12.py", "telerehab/billing/claim_csv.py"])
def test_the_writers_are_pure(module):
    """No Flask, no SQLAlchemy, no clock: what the later workbench calls must stay testable alone."""
    source = (Path(__file__).resolve().parents[1] / module).read_text()
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"flask", "sqlalchemy", "flask_sqlalchemy", "time"}
    assert ".now(" not in source and ".today(" not in source


def test_our_checks_answer_any_text_without_raising():
    text = _one_file()
    for cut in range(0, len(text), 3):
        assert isinstance(check_837p(text[:cut]), list)
    garbled = text.replace("*40.08*", "*40,08*", 1).replace("CLM*P2*", "CLM*P2*x", 1)
    problems = check_837p(garbled)
    assert any("SV102 '40,08' is not an amount" in p for p in problems)
    assert any("CLM02 'x" in p for p in problems)
