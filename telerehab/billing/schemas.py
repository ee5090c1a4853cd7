"""The billing pages' forms: workbench filters, bulk actions, notes, export, corrections, the fee
schedule and the claim settings. Strict about what a claim can carry: a form that passes here is
not refused by the 837P writer for its format."""

from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from telerehab.accounts.schemas import PAYER_TYPES
from telerehab.api.validation import ROW_ID, Dollars, x12_text
from telerehab.billing.rules import LineAction, LineStatus

MAX_FEE_CENTS = 10_000_000  # $100,000 a unit: far above any fee, far below the column's limit
MONTH_ERROR = "Give the month as YYYY-MM, for example 2026-03."
_month = validate.Regexp(r"^[0-9]{4}-(0[1-9]|1[0-2])$", error=MONTH_ERROR)
_code = validate.Regexp(r"^[0-9A-Z][0-9]{3}[0-9A-Z]$", error="A code is 5 characters, for example 98977.")
# The X12 separators (and line breaks) never reach a claim's text fields.
_claim_text = x12_text(1, 60)
_exchange_id = validate.Regexp(r"^[A-Za-z0-9]{2,15}$", error="2 to 15 letters or digits.")


# A fee per unit: a blank one is no fee; a typo is refused in the fee table's own words.
FEE_TYPO = "Give the amount in dollars, with at most 2 decimals, for example 45.10."
_FEE_ERRORS = {"invalid": FEE_TYPO, "negative": FEE_TYPO}
_FEE_RANGE = [validate.Range(min=1, error="The amount must be more than $0.00; leave it blank for no fee."),
              validate.Range(max=MAX_FEE_CENTS, error="At most $100,000.00 per unit.")]


class FilterSchema(Schema):
    """The workbench's query string."""

    month = fields.String(validate=_month)
    clinic = fields.Integer(allow_none=True, validate=ROW_ID, error_messages={
        "invalid": "Choose a clinic from the list."})
    therapist = fields.Integer(allow_none=True, validate=ROW_ID, error_messages={
        "invalid": "Choose a therapist from the list."})
    payer = fields.String(allow_none=True, validate=validate.OneOf(PAYER_TYPES, error="Choose a kind of payer."))
    code = fields.String(allow_none=True, validate=_code)
    status = fields.String(allow_none=True, validate=validate.OneOf(
        [status.value for status in LineStatus], error="Choose a status from the list."))
    page = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=100_000), error_messages={
        "invalid": "A page is a whole number."})


class MonthSchema(Schema):
    month = fields.String(validate=_month)


class EvidencePackSchema(MonthSchema):
    """A claim by its number, or a patient's lines of a month."""

    claim = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9-]{1,38}$", error="No such claim number."))
    patient = fields.Integer(validate=ROW_ID, error_messages={"invalid": "Choose a patient."})


class _Selection(Schema):
    """Lines ticked on the workbench, or every line the filters select."""

    line = fields.List(fields.Integer(validate=ROW_ID), load_default=list)
    apply_all = fields.Boolean(load_default=False)


class BulkActionSchema(_Selection):
    action = fields.String(required=True, validate=validate.OneOf(
        [action.value for action in LineAction], error="Choose what to do with the lines."),
        error_messages={"required": "Choose what to do with the lines."})
    reason = fields.String(allow_none=True, validate=validate.Length(max=500))

    @validates_schema
    def _something_selected(self, data, **kwargs):
        if not data["line"] and not data["apply_all"]:
            raise ValidationError("Tick the lines, or apply to all matching lines.", "line")
        if data["action"] == LineAction.HOLD and not (data.get("reason") or "").strip():
            raise ValidationError("Say why the lines are held: the reason stays on each line.", "reason")


class BatchCreateSchema(_Selection):
    month = fields.String(required=True, validate=_month, error_messages={"required": MONTH_ERROR})


class NoteSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=2000, error="A note is 1 to 2,000 "
                                                                                        "characters."),
                         error_messages={"required": "Write the note."})


class CorrectionSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(("replace", "void"), error="Choose replace or void."),
                         error_messages={"required": "Choose replace or void."})
    payer_claim_number = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9-]{1,50}$", error="The payer's claim number (ICN): 1 to 50 letters, digits or dashes."),
        error_messages={"required": "Give the payer's claim number (ICN) from the remittance."})
    remove = fields.List(fields.Integer(validate=ROW_ID), load_default=list)


class _FeeSchema(Schema):
    new_code = fields.String(allow_none=True, validate=_code)
    new_amount = Dollars(allow_none=True, validate=_FEE_RANGE, error_messages=_FEE_ERRORS)

    @validates_schema
    def _new_code_has_amount(self, data, **kwargs):
        if bool(data.get("new_code")) != bool(data.get("new_amount")):
            raise ValidationError("Give both the code and its amount.",
                                  "new_amount" if data.get("new_code") else "new_code")


def fee_schema(codes: list[str]) -> Schema:
    """One amount per code (field "fee_<code>"; blank: no fee), and a new code with its amount."""
    return _FeeSchema.from_dict({f"fee_{code}": Dollars(allow_none=True, validate=_FEE_RANGE, error_messages=_FEE_ERRORS)
                              for code in codes}, name="FeeSchema")()


class ClaimSettingsSchema(Schema):
    """The payer on claims, the submitter and the receiver (blank: not set yet; export asks for them)."""

    claim_payer_name = fields.String(allow_none=True, validate=_claim_text)
    claim_payer_id = fields.String(allow_none=True, validate=validate.Regexp(
        r"^[A-Za-z0-9]{2,80}$", error="2 to 80 letters or digits, as the clearinghouse lists the payer."))
    submitter_name = fields.String(allow_none=True, validate=_claim_text)
    submitter_id = fields.String(allow_none=True, validate=_exchange_id)
    submitter_contact_name = fields.String(allow_none=True, validate=_claim_text)
    submitter_contact_phone = fields.String(allow_none=True, validate=validate.Regexp(
        r"^[0-9]{10}$", error="10 digits, area code first, for example 3125550101."))
    receiver_name = fields.String(allow_none=True, validate=_claim_text)
    receiver_id = fields.String(allow_none=True, validate=_exchange_id)
    claim_usage = fields.String(required=True, validate=validate.OneOf(("T", "P"), error="Choose test or production."),
                                error_messages={"required": "Choose test or production."})

    @pre_load
    def _phone_digits(self, data, **kwargs):
        """"(312) 555-0101" and "+1 312 555 0101" are typed as often as 3125550101."""
        phone = data.get("submitter_contact_phone")
        if isinstance(phone, str) and re.fullmatch(r"[0-9 ()+.-]+", phone):
            digits = re.sub(r"[^0-9]", "", phone)
            data = {**data, "submitter_contact_phone": digits[1:] if len(digits) == 11 and digits[0] == "1" else digits}
        return data
