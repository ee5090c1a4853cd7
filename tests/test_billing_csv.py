"""The claim CSV: one row per line, a fixed column order, the 837P's claim numbers, and cells a
spreadsheet will not run as formulas."""

from __future__ import annotations

import csv
import dataclasses
import io

import pytest

from telerehab.billing.claim_csv import COLUMNS, safe_cell, write_claim_csv
from telerehab.billing.x12 import ClaimDataError, Frequency, Payer, PayerType, write_837p
from tests.test_billing_x12 import (
    COMMERCIAL,
    COVERING_THERAPIST,
    make_batch,
    make_claim,
    make_line,
    make_subscriber,
    segments,
    wrong_check_digit,
)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_header_is_the_fixed_column_order():
    text = write_claim_csv(make_batch(), [make_claim()])
    assert next(csv.reader(io.StringIO(text))) == list(COLUMNS)
    assert text.startswith(",".join(COLUMNS) + "\r\n")


def test_one_row_per_line_with_what_a_clearinghouse_needs():
    lines = (make_line(0), make_line(1, code="97110", modifiers=("GP", "95"), units=2, charge_cents=6000,
                                     place_of_service="10", rendering=COVERING_THERAPIST))
    claim = make_claim(lines=lines, diagnoses=("M54.50", "M25.561"))
    batch = make_batch()
    (first, second) = rows(write_claim_csv(batch, [claim]))
    assert first == {
        "batch": "B-2026-01", "claim": "P100-2026-01", "frequency": "1", "original_claim_number": "",
        "patient_last_name": "Jones", "patient_first_name": "Mary", "patient_birth_date": "1950-03-04",
        "payer": "Medicare Illinois", "payer_id": "00952", "member_id": "1EG4TE5MK73", "line": "1",
        "service_from": "2026-01-01", "service_to": "2026-01-01", "code": "98977", "modifiers": "GP",
        "units": "1", "charge": "40.08", "diagnosis_pointers": "2 1", "diagnoses": "M54.50 M25.561",
        "rendering_npi": claim.rendering.npi, "billing_npi": batch.billing_provider.npi, "place_of_service": "11",
    }
    assert (second["line"], second["code"], second["modifiers"], second["units"], second["charge"]) == (
        "2", "97110", "GP 95", "2", "60.00")
    assert (second["rendering_npi"], second["place_of_service"], second["diagnosis_pointers"]) == (
        COVERING_THERAPIST.npi, "10", "1")


@pytest.mark.parametrize("line_count", [1, 50, 51, 120])
def test_rows_carry_the_same_claim_numbers_and_charges_as_the_837p(line_count):
    claims = [make_claim(line_count),
              make_claim(2, patient_control_number="P2", payer=COMMERCIAL, subscriber=make_subscriber(member_id="Z1"),
                         frequency=Frequency.REPLACEMENT, original_claim_number="2112600")]
    batch = make_batch()
    table = rows(write_claim_csv(batch, claims))
    assert len(table) == line_count + 2
    x12 = write_837p(batch, claims)
    claim_numbers = [clm[1] for clm in segments(x12, "CLM")]
    assert list(dict.fromkeys(row["claim"] for row in table)) == claim_numbers
    assert [row["charge"] for row in table] == [sv1[2] for sv1 in segments(x12, "SV1")]
    assert [row["line"] for row in table] == [lx[1] for lx in segments(x12, "LX")]
    assert {(row["frequency"], row["original_claim_number"]) for row in table if row["claim"] == "P2"} == {
        ("7", "2112600")}


def test_the_same_batch_gives_the_same_bytes():
    claims = [make_claim(60)]
    assert write_claim_csv(make_batch(), claims).encode() == write_claim_csv(make_batch(), list(claims)).encode()


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+2", "'=1+2"),
    ("+1+2", "'+1+2"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"),
    ("Smith", "Smith"),
    ("O'Brien", "O'Brien"),
    ("a=b", "a=b"),
    ("", ""),
])
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


@pytest.mark.parametrize(("claim_changes", "column", "expected"), [
    ({"subscriber": make_subscriber(last_name="=1+2")}, "patient_last_name", "'=1+2"),
    ({"subscriber": make_subscriber(first_name="@SUM(A1)")}, "patient_first_name", "'@SUM(A1)"),
    ({"payer": Payer("+cmd|calc", "X1", PayerType.COMMERCIAL), "subscriber": make_subscriber(member_id="-1")},
     "payer", "'+cmd|calc"),
    ({"payer": COMMERCIAL, "subscriber": make_subscriber(member_id="-2-3")}, "member_id", "'-2-3"),
    ({"patient_control_number": "=HYPERLINK(1)"}, "claim", "'=HYPERLINK(1)"),
    ({"frequency": Frequency.VOID, "original_claim_number": "-1+1"}, "original_claim_number", "'-1+1"),
])
def test_cells_that_would_run_as_formulas_are_defused(claim_changes, column, expected):
    claim = dataclasses.replace(make_claim(1), **claim_changes)
    (row,) = rows(write_claim_csv(make_batch(), [claim]))
    assert row[column] == expected


def test_commas_and_quotes_stay_in_their_cell():
    claim = make_claim(1, subscriber=make_subscriber(last_name='Smith, "Jr"'))
    (row,) = rows(write_claim_csv(make_batch(), [claim]))
    assert row["patient_last_name"] == 'Smith, "Jr"' and row["code"] == "98977"


def test_bad_input_is_refused_with_the_field_named_as_for_the_837p():
    bad = make_claim(rendering=dataclasses.replace(COVERING_THERAPIST, npi=wrong_check_digit(COVERING_THERAPIST.npi)))
    with pytest.raises(ClaimDataError) as error:
        write_claim_csv(make_batch(), [bad])
    assert error.value.field == "claims[0].rendering.npi"
