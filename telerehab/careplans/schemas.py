"""API and form schemas for episodes of care."""

from marshmallow import Schema, fields, validate

from telerehab.accounts.rules import npi_problem
from telerehab.accounts.schemas import NPI_DOC, PageSchema, TherapistRefSchema
from telerehab.api.validation import checked_by
from telerehab.careplans.rules import DischargeReason, EpisodeStatus, diagnoses_problem, icd10_problem


class GoalSchema(Schema):
    description = fields.String(required=True, validate=validate.Length(min=3, max=1000))
    target_date = fields.Date(allow_none=True)


class EpisodeWriteSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200),
                          metadata={"description": "e.g. Right knee OA"})
    status = fields.String(validate=validate.OneOf([s.value for s in EpisodeStatus]))
    therapist_id = fields.Integer(strict=True, validate=validate.Range(min=1))
    start_date = fields.Date(required=True, metadata={"description": "first treatment (the evaluation)"})
    frequency_per_week = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=7))
    duration_weeks = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=52))
    diagnoses = fields.List(
        fields.String(validate=checked_by(icd10_problem)), required=True,
        validate=checked_by(diagnoses_problem),
        metadata={"description": "ICD-10-CM codes, principal first"},
    )
    goals = fields.List(fields.Nested(GoalSchema), required=True, validate=validate.Length(
        min=1, max=20, error="Give 1 to 20 measurable goals."))
    certification_start = fields.Date(allow_none=True)
    certification_end = fields.Date(allow_none=True)
    certifying_physician_name = fields.String(allow_none=True, validate=validate.Length(max=200))
    certifying_physician_npi = fields.String(allow_none=True, validate=checked_by(npi_problem), metadata=NPI_DOC)
    certification_signed_on = fields.Date(allow_none=True)
    discharge_date = fields.Date(allow_none=True)
    discharge_reason = fields.String(allow_none=True, validate=validate.OneOf([r.value for r in DischargeReason]))
    plan_notes = fields.String(allow_none=True, validate=validate.Length(max=20000))


class EpisodeSchema(EpisodeWriteSchema):
    id = fields.Integer(dump_only=True)
    patient_id = fields.Integer(dump_only=True)
    clinic_id = fields.Integer(dump_only=True)
    therapist = fields.Nested(TherapistRefSchema, dump_only=True)
    diagnoses = fields.List(fields.String(), attribute="diagnosis_codes", dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class EpisodeListArgsSchema(Schema):
    q = fields.String(validate=validate.Length(max=100))
    status = fields.String(validate=validate.OneOf([s.value for s in EpisodeStatus]))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    page_size = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class EpisodePageSchema(PageSchema):
    items = fields.List(fields.Nested(EpisodeSchema))
