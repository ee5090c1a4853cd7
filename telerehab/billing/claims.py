"""Claim assembly: approved lines of an export batch become the `x12.Claim`s that the 837P and CSV
writers take.

No Flask, no SQLAlchemy. Deterministic: the same items in any order give the same claims, so
exporting the same batch again gives the same file.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import groupby

from telerehab.billing import x12
from telerehab.billing.x12 import ClaimDataError

MAX_CLAIM_NUMBER = x12.MAX_PATIENT_CONTROL_NUMBER - x12.SPLIT_SUFFIX_ROOM  # CLM01 with room for "-<part>"


@dataclass(frozen=True)
class ClaimItem:
    """One approved line with what its claim needs."""

    line_id: int
    patient_id: int
    subscriber: x12.Subscriber
    payer: x12.Payer
    diagnoses: tuple[str, ...]  # the line's episode diagnoses, principal first
    code: str
    modifiers: tuple[str, ...]
    units: int
    charge_cents: int
    service_from: date
    service_to: date
    place_of_service: str
    rendering: x12.Provider


@dataclass(frozen=True)
class AssembledClaim:
    claim: x12.Claim
    line_ids: tuple[int, ...]  # in the claim's line order
    claim_numbers: tuple[str, ...]  # per line: the CLM01 of the (split) part that carries it


def claim_number(batch_reference: str, patient_id: int, payer_rank: int = 0) -> str:
    """CLM01, echoed on the remittance: the batch and the patient, short enough that a split's
    "-<part>" still fits its 38 characters. A patient billed to several payers in one batch (a
    change of insurance within the month) gets B, C, ... on the claims to the second, third, ...
    payer (`payer_rank` 1, 2, ..., in payer id order), so that CLM01 stays unique in the file."""
    if not 0 <= payer_rank < len(string.ascii_uppercase):
        raise ClaimDataError("items", f"patient {patient_id} has more payers than one batch can number.")
    number = f"{batch_reference}-{patient_id}" + (string.ascii_uppercase[payer_rank] if payer_rank else "")
    if len(number) > MAX_CLAIM_NUMBER:
        raise ClaimDataError("batch_reference", f"{number!r} is longer than the {MAX_CLAIM_NUMBER} characters "
                                                "a claim number may have.")
    return number


def _claim_key(item: ClaimItem) -> tuple[int, str]:
    return item.patient_id, item.payer.id


def _line_key(item: ClaimItem) -> tuple:
    return item.service_from, item.service_to, item.code, item.line_id


def _diagnosis_key(code: str) -> str:
    return code.replace(".", "")  # M54.50 and M5450 are one diagnosis (as x12.check_claim sees it)


def _assemble(number: str, items: list[ClaimItem], path: str, frequency: x12.Frequency,
              original_claim_number: str | None) -> AssembledClaim:
    first = items[0]
    for index, item in enumerate(items):
        for name in ("subscriber", "payer"):  # one claim carries one of each: its lines must agree
            if getattr(item, name) != getattr(first, name):
                raise ClaimDataError(f"{path}.{name}", f"line {item.line_id} of patient {item.patient_id} has other "
                                     f"{name} details than line {first.line_id}.")
        if not item.diagnoses:
            raise ClaimDataError(f"{path}.lines[{index}].diagnoses", f"line {item.line_id} has no diagnosis.")
    positions: dict[str, int] = {}  # diagnosis key -> 1-based position in the claim
    diagnoses: list[str] = []
    for item in items:
        for code in item.diagnoses:
            if _diagnosis_key(code) not in positions:
                diagnoses.append(code)
                positions[_diagnosis_key(code)] = len(diagnoses)
    if len(diagnoses) > x12.MAX_DIAGNOSES:
        raise ClaimDataError(f"{path}.diagnoses", f"patient {first.patient_id}'s lines have {len(diagnoses)} "
                             f"diagnoses; a claim carries at most {x12.MAX_DIAGNOSES}.")
    lines = tuple(
        x12.ClaimLine(code=item.code, modifiers=item.modifiers, units=item.units, charge_cents=item.charge_cents,
                      service_from=item.service_from, service_to=item.service_to,
                      diagnosis_pointers=tuple(positions[_diagnosis_key(code)]
                                               for code in item.diagnoses[:x12.MAX_POINTERS]),
                      place_of_service=item.place_of_service, rendering=item.rendering)
        for item in items)
    claim = x12.Claim(patient_control_number=number, subscriber=first.subscriber, payer=first.payer,
                      diagnoses=tuple(diagnoses), lines=lines, rendering=first.rendering,
                      place_of_service=first.place_of_service, frequency=frequency,
                      original_claim_number=original_claim_number)
    claim_numbers = tuple(part.patient_control_number for part in x12.split_claim(claim) for _ in part.lines)
    return AssembledClaim(claim, tuple(item.line_id for item in items), claim_numbers)


def assemble_claims(batch_reference: str, items: Sequence[ClaimItem], *,
                    frequency: x12.Frequency = x12.Frequency.ORIGINAL,
                    original_claim_number: str | None = None) -> list[AssembledClaim]:
    """One claim per patient and payer, ordered by patient then payer id; lines by service dates,
    code and line id. Diagnoses: the lines' episode diagnoses in order of first appearance, each
    line pointing at its own (at most 4, principal first).

    A replacement (7) or void (8) stands for the one original claim the payer numbered
    `original_claim_number`, so its items must all be one patient with one payer.
    Raises ClaimDataError naming the field; the writers check everything else."""
    if not items:
        raise ClaimDataError("items", "a batch needs at least one line.")
    if frequency == x12.Frequency.ORIGINAL:
        if original_claim_number is not None:
            raise ClaimDataError("original_claim_number", "is only for a replacement or void claim.")
    else:
        if not original_claim_number:
            raise ClaimDataError("original_claim_number", "a replacement or void claim needs the payer's claim "
                                                          "number of the original.")
        if len({_claim_key(item) for item in items}) > 1:
            raise ClaimDataError("items", "a replacement or void claim corrects one claim: its lines must all be "
                                          "one patient's, with one payer.")
    ordered = sorted(items, key=lambda item: (_claim_key(item), _line_key(item)))
    assembled: list[AssembledClaim] = []
    previous_patient, payer_rank = None, 0
    for index, ((patient_id, _payer_id), group) in enumerate(groupby(ordered, key=_claim_key)):
        payer_rank = payer_rank + 1 if patient_id == previous_patient else 0
        previous_patient = patient_id
        assembled.append(_assemble(claim_number(batch_reference, patient_id, payer_rank), list(group),
                                   f"claims[{index}]", frequency, original_claim_number))
    return assembled


_TITLES = frozenset({"dr", "mr", "mrs", "ms", "mx", "prof"})


def provider_name(full_name: str) -> tuple[str, str]:
    """(last, first) for NM103/NM104 from a staff member's one display name: a title before it
    ("Dr.") and credentials after a comma (", PT, DPT") are not part of the name."""
    words = full_name.split(",")[0].split()
    while len(words) > 1 and words[0].rstrip(".").lower() in _TITLES:
        words = words[1:]
    if not words:
        return "", ""
    return words[-1], " ".join(words[:-1]) or words[-1]
