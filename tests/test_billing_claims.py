"""Claim assembly: approved lines become one claim per patient and payer, the same batch always
gives the same claims, and every assembled batch is written as an 837P that pyx12 and our own
checks accept."""

from __future__ import annotations

import ast
import dataclasses
import random
from datetime import date, timedelta
from pathlib import Path

import pytest

from telerehab.billing.claims import (
    AssembledClaim,
    ClaimItem,
    assemble_claims,
    claim_number,
    provider_name,
)
from telerehab.billing.x12 import ClaimDataError, Frequency, check_837p, write_837p
from tests.test_billing_x12 import (
    COMMERCIAL,
    COVERING_THERAPIST,
    MEDICARE,
    THERAPIST,
    make_batch,
    make_subscriber,
    segments,
)
from tests.x12_support import pyx12_errors

BATCH = "B-2026-03"
BACK = ("M54.50", "M25.561")  # an episode's diagnoses, principal first
KNEE = ("S83.511A", "M25.561")


def item(line_id: int, patient_id: int = 1, **changes) -> ClaimItem:
    """Different codes and dates per line id so that the ordering is not trivial."""
    code, modifiers = [("98977", ("GP",)), ("98980", ("GP", "CQ")), ("98981", ("GP",)), ("98975", ("GP",))][line_id % 4]
    day = date(2026, 3, 1) + timedelta(days=line_id % 28)
    base = ClaimItem(line_id=line_id, patient_id=patient_id, subscriber=make_subscriber(), payer=MEDICARE,
                     diagnoses=BACK, code=code, modifiers=modifiers, units=1, charge_cents=4000 + line_id,
                     service_from=day, service_to=day, place_of_service="11", rendering=THERAPIST)
    return dataclasses.replace(base, **changes)


def validated(assembled: list[AssembledClaim]) -> str:
    """Every assembled batch is written, then must pass pyx12 and our own checks."""
    text = write_837p(make_batch(), [a.claim for a in assembled])
    assert pyx12_errors(text) == []
    assert check_837p(text) == []
    return text


def commercial(patient_id: int) -> dict:
    return {"payer": COMMERCIAL, "subscriber": make_subscriber(member_id=f"XYZ{patient_id:05d}")}


def two_patients_two_payers() -> list[ClaimItem]:
    return [
        item(1, 2), item(2, 2, **commercial(2)), item(3, 1, **commercial(1)), item(4, 1),
        item(5, 2), item(6, 1, **commercial(1)),
        # patient 2 is another person: another Medicare subscriber
    ]


def _patient_two(items: list[ClaimItem]) -> list[ClaimItem]:
    return [dataclasses.replace(i, subscriber=make_subscriber(first_name="Ann", member_id="1EG4TE5MK74"))
            if i.patient_id == 2 and i.payer == MEDICARE else i for i in items]


# ---------------------------------------------------------------- grouping and order


def test_one_claim_per_patient_and_payer_ordered_by_patient_then_payer():
    assembled = assemble_claims(BATCH, _patient_two(two_patients_two_payers()))
    assert [(a.claim.patient_control_number, a.claim.payer.id, a.line_ids) for a in assembled] == [
        ("B-2026-03-1", "00952", (4,)),
        ("B-2026-03-1B", "ACME01", (3, 6)),  # the patient's second payer: CLM01 stays unique
        ("B-2026-03-2", "00952", (1, 5)),
        ("B-2026-03-2B", "ACME01", (2,)),
    ]
    assert assembled[1].claim.subscriber.member_id == "XYZ00001"
    assert assembled[1].claim_numbers == ("B-2026-03-1B", "B-2026-03-1B")
    text = validated(assembled)
    assert [s[1] for s in segments(text, "CLM")] == ["B-2026-03-1", "B-2026-03-1B", "B-2026-03-2", "B-2026-03-2B"]
    assert len(segments(text, "HL")) == 5  # the billing provider and one subscriber loop per claim


def test_lines_are_ordered_by_dates_then_code_then_line_id():
    day = date(2026, 3, 5)
    items = [
        item(10, service_from=day, service_to=day, code="98981", modifiers=("GP",)),
        item(11, service_from=day, service_to=day, code="98980", modifiers=("GP",)),
        item(12, service_from=day, service_to=day, code="98980", modifiers=("GP",)),
        item(13, service_from=date(2026, 3, 1), service_to=date(2026, 3, 30), code="98977", modifiers=("GP",)),
        item(14, service_from=date(2026, 3, 1), service_to=date(2026, 3, 1), code="98975", modifiers=("GP",)),
    ]
    (assembled,) = assemble_claims(BATCH, items)
    assert assembled.line_ids == (14, 13, 11, 12, 10)
    assert [line.code for line in assembled.claim.lines] == ["98975", "98977", "98980", "98980", "98981"]
    assert assembled.claim.lines[1].charge_cents == 4013
    validated([assembled])


@pytest.mark.parametrize("seed", range(5))
def test_the_same_items_in_any_order_give_the_same_claims_and_file(seed):
    items = _patient_two(two_patients_two_payers()) + [item(n, 3 + n % 2, subscriber=make_subscriber(
        member_id=f"1EG4TE5MK{70 + n % 2}")) for n in range(20, 40)]
    expected = assemble_claims(BATCH, items)
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    assert assemble_claims(BATCH, shuffled) == expected
    assert validated(assemble_claims(BATCH, shuffled)) == validated(expected)


def test_claim_rendering_and_place_come_from_the_first_line_and_other_lines_name_theirs():
    items = [item(1, service_from=date(2026, 3, 1), service_to=date(2026, 3, 1), rendering=COVERING_THERAPIST,
                  place_of_service="10"),
             item(2, service_from=date(2026, 3, 2), service_to=date(2026, 3, 2))]
    (assembled,) = assemble_claims(BATCH, items)
    assert assembled.claim.rendering == COVERING_THERAPIST
    assert assembled.claim.place_of_service == "10"
    text = validated([assembled])
    assert [s[9] for s in segments(text, "NM1") if s[1] == "82"] == [COVERING_THERAPIST.npi, THERAPIST.npi]
    assert segments(text, "SV1")[1][5] == "11"  # the second line's own place of service


# ---------------------------------------------------------------- diagnoses and pointers


def test_pointers_map_each_lines_episode_into_the_claims_diagnoses():
    items = [item(1, diagnoses=BACK), item(2, diagnoses=KNEE), item(3, diagnoses=("M5450",))]
    (assembled,) = assemble_claims(BATCH, items)
    assert assembled.claim.diagnoses == ("M54.50", "M25.561", "S83.511A")  # first appearance, in line order
    assert [line.diagnosis_pointers for line in assembled.claim.lines] == [(1, 2), (3, 2), (1,)]
    text = validated([assembled])
    assert segments(text, "HI")[0][1:] == ["ABK:M5450", "ABF:M25561", "ABF:S83511A"]
    assert [s[7] for s in segments(text, "SV1")] == ["1:2", "3:2", "1"]


def test_first_appearance_follows_the_claims_line_order_not_the_input_order():
    late = item(1, diagnoses=KNEE, service_from=date(2026, 3, 20), service_to=date(2026, 3, 20))
    early = item(2, diagnoses=BACK, service_from=date(2026, 3, 2), service_to=date(2026, 3, 2))
    (assembled,) = assemble_claims(BATCH, [late, early])
    assert assembled.claim.diagnoses == ("M54.50", "M25.561", "S83.511A")
    assert [line.diagnosis_pointers for line in assembled.claim.lines] == [(1, 2), (3, 2)]


def test_a_line_points_at_most_at_four_of_its_diagnoses_principal_first():
    five = ("M17.11", "M25.561", "M62.81", "R26.89", "Z96.651")
    (assembled,) = assemble_claims(BATCH, [item(1, diagnoses=BACK), item(2, diagnoses=five)])
    assert assembled.claim.diagnoses == ("M54.50", "M25.561", "M17.11", "M62.81", "R26.89", "Z96.651")
    assert assembled.claim.lines[1].diagnosis_pointers == (3, 2, 4, 5)
    validated([assembled])


def _codes(count: int, start: int = 0) -> tuple[str, ...]:
    return tuple(f"M{60 + (start + n) // 10}.{(start + n) % 10}" for n in range(count))


def test_twelve_diagnoses_fit_one_claim():
    (assembled,) = assemble_claims(BATCH, [item(1, diagnoses=_codes(4)), item(2, diagnoses=_codes(4, 4)),
                                           item(3, diagnoses=_codes(4, 8))])
    assert len(assembled.claim.diagnoses) == 12
    assert assembled.claim.lines[2].diagnosis_pointers == (9, 10, 11, 12)
    text = validated([assembled])
    assert len(segments(text, "HI")[0]) == 13


def test_thirteen_diagnoses_are_refused_naming_the_claim_and_patient():
    items = [item(1, 7), item(2, 8, diagnoses=_codes(4)), item(3, 8, diagnoses=_codes(4, 4)),
             item(4, 8, diagnoses=_codes(5, 8))]
    with pytest.raises(ClaimDataError) as error:
        assemble_claims(BATCH, items)
    assert error.value.field == "claims[1].diagnoses"
    assert "patient 8" in error.value.message and "13 diagnoses" in error.value.message


# ---------------------------------------------------------------- claim numbers and splits


@pytest.mark.parametrize(("count", "parts"), [(50, [50]), (51, [50, 1]), (101, [50, 50, 1])])
def test_claim_numbers_follow_the_split_beyond_fifty_lines(count, parts):
    (assembled,) = assemble_claims(BATCH, [item(n) for n in range(count)])
    expected = ([BATCH + "-1"] * count if len(parts) == 1
                else [f"{BATCH}-1-{part}" for part, size in enumerate(parts, start=1) for _ in range(size)])
    assert list(assembled.claim_numbers) == expected
    assert len(assembled.line_ids) == count
    text = validated([assembled])
    clms = segments(text, "CLM")
    assert [c[1] for c in clms] == list(dict.fromkeys(expected))
    # every line's claim number is the CLM01 of the part whose SV1 lines carry it
    sv1_per_part = [text.split(f"CLM*{c[1]}*")[1].split("CLM*")[0].count("SV1*") for c in clms]
    assert sv1_per_part == parts


def test_claim_number_is_batch_then_patient_and_leaves_room_for_a_split():
    assert claim_number("B-2026-03", 17) == "B-2026-03-17"
    longest = "B" * 31  # + "-17" = 34 characters, + "-2" fits CLM01's 38
    (assembled,) = assemble_claims(longest, [item(n, 17) for n in range(51)])
    assert assembled.claim_numbers[-1] == longest + "-17-2"
    validated([assembled])
    with pytest.raises(ClaimDataError) as error:
        claim_number("B" * 32, 17)
    assert error.value.field == "batch_reference"
    assert claim_number("B-2026-03", 17, payer_rank=2) == "B-2026-03-17C"
    with pytest.raises(ClaimDataError):
        claim_number("B" * 31, 17, payer_rank=1)  # the letter would leave no room for a split


def test_a_patients_second_payer_claim_splits_under_its_own_number():
    items = [item(n, 5) for n in range(3)] + [item(n, 5, **commercial(5)) for n in range(10, 61)]
    first, second = assemble_claims(BATCH, items)
    assert set(first.claim_numbers) == {"B-2026-03-5"}
    assert second.claim_numbers == ("B-2026-03-5B-1",) * 50 + ("B-2026-03-5B-2",)
    validated([first, second])


# ---------------------------------------------------------------- corrections


@pytest.mark.parametrize("frequency", [Frequency.REPLACEMENT, Frequency.VOID])
def test_replacement_and_void_reference_the_payers_claim_number(frequency):
    items = [item(1), item(2, diagnoses=KNEE)]
    (assembled,) = assemble_claims(BATCH, items, frequency=frequency, original_claim_number="22026123456789")
    assert assembled.claim.frequency == frequency
    assert assembled.claim.original_claim_number == "22026123456789"
    text = validated([assembled])
    (clm,) = segments(text, "CLM")
    assert clm[5] == f"11:B:{frequency}"
    assert ["REF", "F8", "22026123456789"] in segments(text, "REF")


@pytest.mark.parametrize(("items", "frequency", "original", "field"), [
    ([item(1, 1), item(2, 2)], Frequency.REPLACEMENT, "2202612", "items"),  # two patients
    ([item(1, 1), item(2, 1, **commercial(1))], Frequency.VOID, "2202612", "items"),  # two payers
    ([item(1)], Frequency.REPLACEMENT, None, "original_claim_number"),
    ([item(1)], Frequency.VOID, "", "original_claim_number"),
    ([item(1)], Frequency.ORIGINAL, "2202612", "original_claim_number"),
    ([], Frequency.ORIGINAL, None, "items"),
])
def test_corrections_stand_for_one_claim(items, frequency, original, field):
    with pytest.raises(ClaimDataError) as error:
        assemble_claims(BATCH, items, frequency=frequency, original_claim_number=original)
    assert error.value.field == field


def test_lines_of_one_claim_must_agree_on_subscriber_and_payer():
    items = [item(1), item(2, subscriber=make_subscriber(last_name="Smith"))]
    with pytest.raises(ClaimDataError) as error:
        assemble_claims(BATCH, items)
    assert error.value.field == "claims[0].subscriber"
    assert error.value.message == "line 2 of patient 1 has other subscriber details than line 1."
    renamed = dataclasses.replace(MEDICARE, name="Medicare IL")
    with pytest.raises(ClaimDataError) as error:
        assemble_claims(BATCH, [item(1), item(2, payer=renamed)])
    assert error.value.field == "claims[0].payer"


def test_a_line_without_diagnosis_is_refused_naming_it():
    with pytest.raises(ClaimDataError) as error:
        assemble_claims(BATCH, [item(1, 3), item(1, 4), item(2, 4, diagnoses=())])
    assert error.value.field == "claims[1].lines[1].diagnoses"
    assert error.value.message == "line 2 has no diagnosis."


@pytest.mark.parametrize("module", ["telerehab/billing/claims.py", "telerehab/billing/rules.py"])
def test_the_assembly_and_rules_are_pure(module):
    tree = ast.parse((Path(__file__).resolve().parents[1] / module).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"flask", "sqlalchemy", "flask_sqlalchemy", "time"}


@pytest.mark.parametrize("full_name, expected", [
    ("Anna Smith", ("Smith", "Anna")),
    ("Dr. Taylor Reed, PT", ("Reed", "Taylor")),
    ("Dr Jordan Park, PT, DPT", ("Park", "Jordan")),
    ("Madonna", ("Madonna", "Madonna")),
    ("Dr.", ("Dr.", "Dr.")),
    ("  ", ("", "")),
])
def test_a_provider_name_drops_titles_and_credentials(full_name, expected):
    assert provider_name(full_name) == expected
