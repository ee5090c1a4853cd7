"""API and form schemas for accounts and patients (marshmallow, strict: unknown fields refused)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from telerehab.accounts.rules import (
    ConsentKind,
    Role,
    Sex,
    address_gaps,
    known_timezones,
    member_id_problem,
    npi_problem,
    phone_problem,
    timezone_problem,
    tin_problem,
)
from telerehab.api.validation import checked_by, x12_text

PAYER_TYPES = ("medicare", "medicare_advantage", "medicaid", "commercial", "workers_comp", "self_pay")
CONSENT_METHODS = ("written", "verbal", "electronic")

# What the OpenAPI document says of fields checked in rules.py (check digits it cannot say).
PHONE_DOC = {"pattern": r"^\+[1-9][0-9]{6,14}$", "description": "E.164, e.g. +15035550123"}
NPI_DOC = {"pattern": r"^[12][0-9]{9}$", "description": "10-digit NPI with a valid check digit"}
TIMEZONE_DOC = {"enum": sorted(known_timezones()), "description": "IANA name, e.g. America/Chicago"}

# USPS codes of the states, DC and the territories (N402 takes no other).
US_STATE_CODES = frozenset((
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC",
    "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
    "AS", "GU", "MP", "PR", "VI",
))
POSTAL_CODE_PATTERN = r"^[0-9]{5}(-?[0-9]{4})?$"


class PatientWriteSchema(Schema):
    first_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    last_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    date_of_birth = fields.Date(required=True)
    sex = fields.String(required=True, validate=validate.OneOf([s.value for s in Sex]))
    phone = fields.String(allow_none=True, validate=checked_by(phone_problem), metadata=PHONE_DOC)
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    timezone = fields.String(required=True, validate=checked_by(timezone_problem), metadata=TIMEZONE_DOC)
    preferred_language = fields.String(
        load_default="en", validate=validate.Regexp(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
                                                    error="Use a language tag such as en or es-MX."))
    clinic_id = fields.Integer(strict=True, validate=validate.Range(min=1))
    primary_therapist_id = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1))
    payer_type = fields.String(required=True, validate=validate.OneOf(PAYER_TYPES))
    payer_name = fields.String(allow_none=True, validate=validate.Length(max=200))
    member_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=40))
    address_line1 = fields.String(allow_none=True, validate=x12_text(1, 55))
    address_line2 = fields.String(allow_none=True, validate=x12_text(0, 55))
    city = fields.String(allow_none=True, validate=x12_text(2, 30))
    state = fields.String(allow_none=True, validate=validate.OneOf(
        sorted(US_STATE_CODES), error="Give the USPS code in capitals, e.g. IL (a state, DC or a territory)."))
    postal_code = fields.String(allow_none=True, validate=validate.Regexp(
        POSTAL_CODE_PATTERN, error="A ZIP code is 5 digits, or ZIP+4: 62701-1234 or 627011234."))

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _address_whole_or_none(self, data, original_data, partial, **kwargs):
        # The input as sent, so that a part refused for its format does not also count as missing.
        if partial or not isinstance(original_data, dict):
            return  # an update is checked against the stored address by the operation
        gaps = address_gaps(original_data)
        if gaps:
            raise ValidationError({name: [message] for name, message in gaps.items()})

    @validates_schema(skip_on_field_errors=False)
    def _medicare_needs_mbi(self, data, partial, **kwargs):
        if partial:
            return  # an update is checked against the stored record by the operation
        message = member_id_problem(data.get("payer_type"), data.get("member_id"))
        if message:
            raise ValidationError(message, "member_id")

    @validates_schema
    def _birth_date_in_past(self, data, **kwargs):
        born = data.get("date_of_birth")
        if born is not None and born.year < 1900:
            raise ValidationError("The date of birth is before 1900.", "date_of_birth")


class TherapistRefSchema(Schema):
    id = fields.Integer()
    full_name = fields.String()


class ConsentSchema(Schema):
    id = fields.Integer(dump_only=True)
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in ConsentKind]))
    method = fields.String(load_default="written", validate=validate.OneOf(CONSENT_METHODS))
    note = fields.String(allow_none=True, validate=validate.Length(max=2000))
    granted_at = fields.DateTime(dump_only=True)
    recorded_by = fields.Pluck(TherapistRefSchema, "full_name", dump_only=True)
    revoked_at = fields.DateTime(dump_only=True, allow_none=True)
    revoked_by = fields.Pluck(TherapistRefSchema, "full_name", dump_only=True, allow_none=True)
    is_active = fields.Boolean(dump_only=True)


class ConsentRevokeSchema(Schema):
    note = fields.String(allow_none=True, validate=validate.Length(max=2000))


class PatientSchema(PatientWriteSchema):
    id = fields.Integer(dump_only=True)
    full_name = fields.String(dump_only=True)
    primary_therapist = fields.Nested(TherapistRefSchema, dump_only=True, allow_none=True)
    has_portal_access = fields.Function(lambda p: p.user_id is not None, dump_only=True)
    consents = fields.List(fields.Nested(ConsentSchema), dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class PageArgsSchema(Schema):
    q = fields.String(validate=validate.Length(max=100), metadata={"description": "search text"})
    page = fields.Integer(strict=False, load_default=1, validate=validate.Range(min=1, max=100000))
    page_size = fields.Integer(strict=False, load_default=25, validate=validate.Range(min=1, max=100))


class PageSchema(Schema):
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()
    pages = fields.Integer()


class PatientPageSchema(PageSchema):
    items = fields.List(fields.Nested(PatientSchema))


class UserCreateSchema(Schema):
    username = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9._-]{3,80}$", error="3-80 letters, digits, dots, dashes or underscores."))
    full_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(allow_none=True)
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role if r != Role.PATIENT]))
    clinic_id = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1))
    npi = fields.String(allow_none=True, validate=checked_by(npi_problem), metadata=NPI_DOC)
    password = fields.String(required=True, load_only=True)


class UserSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()
    role = fields.String()
    clinic_id = fields.Integer(allow_none=True)


class ClinicSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    timezone = fields.String(required=True, validate=checked_by(timezone_problem), metadata=TIMEZONE_DOC)
    address_line1 = fields.String(required=True, validate=validate.Length(min=1, max=200))
    address_line2 = fields.String(allow_none=True, validate=validate.Length(max=200))
    city = fields.String(required=True, validate=validate.Length(min=1, max=100))
    state = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="Two capital letters."))
    postal_code = fields.String(required=True, validate=validate.Regexp(
        r"^\d{5}(\d{4})?$", error="5 or 9 digits (ZIP or ZIP+4, without the dash)."))
    phone = fields.String(allow_none=True, validate=checked_by(phone_problem), metadata=PHONE_DOC)
    npi = fields.String(required=True, validate=checked_by(npi_problem), metadata=NPI_DOC)
    tin = fields.String(required=True, validate=checked_by(tin_problem),
                        metadata={"pattern": r"^[0-9]{2}-?[0-9]{7}$", "description": "EIN, e.g. 12-3456789"})


class TokenCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    expires_in_days = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=366))


class TokenSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class NewTokenSchema(TokenSchema):
    token = fields.String(metadata={"description": "shown once; store it now"})
