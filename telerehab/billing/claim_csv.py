"""Claim lines as CSV, for clearinghouses that take a spreadsheet instead of an 837P.

The same input as `x12.write_837p` (a batch and its claims), checked the same way, split the same
way (the claim column is the 837P's CLM01), one row per line, columns in a fixed order.
Cells are made safe to open in a spreadsheet: a cell that would start a formula gets a leading '.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from telerehab.billing.x12 import Batch, Claim, check_batch, check_claims, dollars, member_id, split_claim

COLUMNS = (
    "batch", "claim", "frequency", "original_claim_number", "patient_last_name", "patient_first_name",
    "patient_birth_date", "payer", "payer_id", "member_id", "line", "service_from", "service_to", "code",
    "modifiers", "units", "charge", "diagnosis_pointers", "diagnoses", "rendering_npi", "billing_npi",
    "place_of_service",
)
# A spreadsheet runs a cell starting with these as a formula (OWASP "CSV injection"); tab and
# carriage return are on OWASP's list too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def claim_rows(batch: Batch, claims: Sequence[Claim]) -> list[tuple[str, ...]]:
    rows = []
    for claim in claims:
        subscriber = claim.subscriber
        for part in split_claim(claim):
            for number, line in enumerate(part.lines, start=1):
                rows.append((
                    batch.id, part.patient_control_number, part.frequency.value, part.original_claim_number or "",
                    subscriber.last_name, subscriber.first_name, subscriber.birth_date.isoformat(),
                    claim.payer.name, claim.payer.id, member_id(claim),
                    str(number), line.service_from.isoformat(), line.service_to.isoformat(), line.code,
                    " ".join(line.modifiers), str(line.units), dollars(line.charge_cents),
                    " ".join(str(p) for p in line.diagnosis_pointers), " ".join(claim.diagnoses),
                    line.rendering.npi, batch.billing_provider.npi, line.place_of_service,
                ))
    return rows


def write_claim_csv(batch: Batch, claims: Sequence[Claim]) -> str:
    """The CSV text (header first, CRLF line ends as RFC 4180 says), or ClaimDataError."""
    check_batch(batch)
    check_claims(claims)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(tuple(safe_cell(cell) for cell in row) for row in claim_rows(batch, claims))
    return out.getvalue()
