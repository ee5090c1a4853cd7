"""API and form schemas for episodes of care, visits, notes and services."""

import re
from datetime import UTC, date, datetime, time, timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from telerehab.accounts.rules import npi_problem
from telerehab.accounts.schemas import NPI_DOC, PageSchema, TherapistRefSchema
from telerehab.api.validation import ROW_ID, checked_by
from telerehab.careplans.rules import (
    DischargeReason,
    EpisodeStatus,
    Modality,
    PlanAlert,
    VisitFlag,
    VisitKind,
    VisitStatus,
    diagnoses_problem,
    icd10_problem,
    interval_problem,
)


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


# ================================================================ visits
#
# Times go in and out as ISO 8601 with their UTC offset: a time without one is refused, never
# guessed. Out, every time is UTC (`+00:00`); `timezone` names the clinic's zone for display.

EARLIEST_VISIT_YEAR, LATEST_VISIT_YEAR = 2000, 2099
AWARE_DOC = {"description": "ISO 8601 with a UTC offset, e.g. 2026-03-03T09:00:00-06:00 or 2026-03-03T15:00:00Z"}
NAIVE_MESSAGE = ("Give the time with its UTC offset, e.g. 2026-03-03T09:00:00-06:00 or 2026-03-03T15:00:00Z; "
                 "a time without one is ambiguous.")
_WALL_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class AwareTime(fields.AwareDateTime):
    """An ISO 8601 date-time with its offset, returned in UTC, within the years a visit may have."""

    default_error_messages = {
        "invalid_awareness": NAIVE_MESSAGE,
        "range": f"Give a time between {EARLIEST_VISIT_YEAR} and {LATEST_VISIT_YEAR}.",
    }

    def __init__(self, **kwargs):
        super().__init__(format="iso", **kwargs)
        self.metadata = {**AWARE_DOC, **self.metadata}

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            raise self.make_error("range") from None
        if not EARLIEST_VISIT_YEAR <= moment.year <= LATEST_VISIT_YEAR:
            raise self.make_error("range")
        return moment


class PlanDate(fields.Date):
    """A calendar date within the years a plan of care may cover."""

    default_error_messages = {"range": f"Give a date between {EARLIEST_VISIT_YEAR} and {LATEST_VISIT_YEAR}."}

    def _deserialize(self, value, attr, data, **kwargs) -> date:
        day = super()._deserialize(value, attr, data, **kwargs)
        if not EARLIEST_VISIT_YEAR <= day.year <= LATEST_VISIT_YEAR:
            raise self.make_error("range")
        return day


class WallTime(fields.Time):
    """A local wall-clock time, HH:MM, without a date or an offset."""

    default_error_messages = {"invalid": "Give a local time as HH:MM (24-hour), without a timezone."}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.metadata = {"pattern": _WALL_TIME.pattern, "description": "local wall time in the clinic's timezone, HH:MM",
                         **self.metadata}

    def _deserialize(self, value, attr, data, **kwargs) -> time:
        if not isinstance(value, str) or not _WALL_TIME.match(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.strftime("%H:%M")


def _distinct(values: list) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("List each value once.")


MODALITIES = [m.value for m in Modality]
VISIT_KINDS = [k.value for k in VisitKind]
VISIT_STATUSES = [s.value for s in VisitStatus]
ROOM = fields.String(allow_none=True, validate=validate.Length(min=1, max=50),
                     metadata={"description": "clinic visits only"})


class PersonRefSchema(Schema):
    id = fields.Integer()
    full_name = fields.String()


class CadenceOptionsSchema(Schema):
    modality_pattern = fields.List(
        fields.String(validate=validate.OneOf(MODALITIES)), required=True,
        validate=validate.Length(min=1, max=14),
        metadata={"description": "repeats over the treatment visits, e.g. [in_clinic, video, video]"})
    preferred_weekdays = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=0, max=6)), required=True,
        validate=[validate.Length(min=1, max=7), _distinct],
        metadata={"description": "0 = Monday .. 6 = Sunday", "uniqueItems": True})
    preferred_start = WallTime(required=True)
    visit_minutes = fields.Integer(strict=True, validate=validate.Range(min=15, max=240),
                                   metadata={"description": "default: the clinic's visit length"})
    clinician_id = fields.Integer(strict=True, validate=ROW_ID,
                                  metadata={"description": "default: the episode's therapist"})
    start_date = PlanDate(metadata={"description": "default: the episode's start, or today if later"})


class ProposedVisitSchema(Schema):
    kind = fields.String(metadata={"enum": VISIT_KINDS})
    modality = fields.String(metadata={"enum": MODALITIES})
    starts_at = fields.DateTime(attribute="start")
    ends_at = fields.DateTime(attribute="end")
    flags = fields.List(fields.String(metadata={"enum": [f.value for f in VisitFlag]}))


class CadenceProposalSchema(Schema):
    visits = fields.List(fields.Nested(ProposedVisitSchema), metadata={
        "description": "in time order; send them (edited or not) to the confirm endpoint"})
    problems = fields.List(fields.String(), metadata={"description": "what could not be planned, in sentences"})


class VisitSlotSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(VISIT_KINDS))
    modality = fields.String(required=True, validate=validate.OneOf(MODALITIES))
    starts_at = AwareTime(required=True)
    ends_at = AwareTime(required=True)
    room = ROOM

    @validates_schema(skip_on_field_errors=True)
    def _interval(self, data, **kwargs):
        if "starts_at" in data and "ends_at" in data:
            problem = interval_problem(data["starts_at"], data["ends_at"])
            if problem:
                raise ValidationError(problem, "ends_at")

    @validates_schema(skip_on_field_errors=True)
    def _room_in_clinic(self, data, **kwargs):
        if data.get("room") is not None and data.get("modality") == Modality.VIDEO:
            raise ValidationError("A video visit has no room.", "room")


class ProposedVisitInSchema(VisitSlotSchema):
    """A visit of the series to confirm: as previewed (its flags are accepted and ignored) or edited."""

    flags = fields.List(fields.String(validate=validate.OneOf([f.value for f in VisitFlag])),
                        load_only=True, metadata={"description": "as previewed; ignored"})


class CadenceConfirmSchema(Schema):
    clinician_id = fields.Integer(strict=True, validate=ROW_ID,
                                  metadata={"description": "default: the episode's therapist"})
    visits = fields.List(fields.Nested(ProposedVisitInSchema), required=True,
                         validate=validate.Length(min=1, max=7 * 52))


class VisitWriteSchema(VisitSlotSchema):
    clinician_id = fields.Integer(strict=True, validate=ROW_ID,
                                  metadata={"description": "default: the episode's therapist"})


class ServiceLineSchema(Schema):
    cpt_code = fields.String(required=True, validate=validate.Regexp(
        r"^[0-9]{5}$", error="A CPT code is 5 digits, e.g. 97110."))
    minutes = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=480))
    assistant_minutes = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=480),
                                       metadata={"description": "the part of `minutes` an assistant furnished"})
    units = fields.Integer(dump_only=True, metadata={"description": "by the 8-minute rule over the day"})
    place_of_service = fields.String(dump_only=True, metadata={"description": "11 clinic, 10 home, 02 elsewhere"})
    modifiers = fields.Method("_modifiers", dump_only=True,
                              metadata={"type": "array", "items": {"type": "string"},
                                        "description": "in claim order: GP, CQ, 95, 93"})

    def _modifiers(self, line) -> list[str]:
        return line.modifiers.split()

    @validates_schema(skip_on_field_errors=True)
    def _assistant_within_total(self, data, **kwargs):
        if data.get("assistant_minutes", 0) > data.get("minutes", 0):
            raise ValidationError("The assistant's minutes are part of the total: at most `minutes`.",
                                  "assistant_minutes")


class ServicesWriteSchema(Schema):
    audio_only = fields.Boolean(load_default=False, metadata={"description": "a video visit held by audio only (93)"})
    lines = fields.List(fields.Nested(ServiceLineSchema), required=True, validate=validate.Length(max=20))

    @validates_schema(skip_on_field_errors=True)
    def _codes_once(self, data, **kwargs):
        codes = [line["cpt_code"] for line in data["lines"]]
        if len(set(codes)) != len(codes):
            raise ValidationError("List each CPT code once, with its total minutes.", "lines")


class VisitServicesSchema(Schema):
    visit_id = fields.Integer()
    lines = fields.List(fields.Nested(ServiceLineSchema))


class VisitSchema(Schema):
    """A visit, without its note: notes are read only through the note endpoints."""

    id = fields.Integer()
    episode_id = fields.Integer()
    patient = fields.Nested(PersonRefSchema)
    clinic_id = fields.Integer()
    timezone = fields.String(attribute="clinic.timezone", metadata={
        "description": "the clinic's IANA timezone, for showing the times"})
    clinician = fields.Nested(TherapistRefSchema)
    modality = fields.String(metadata={"enum": MODALITIES})
    kind = fields.String(metadata={"enum": VISIT_KINDS})
    status = fields.String(metadata={"enum": VISIT_STATUSES})
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    room = fields.String(allow_none=True)
    beyond_certification = fields.Boolean()
    cancel_reason = fields.String(allow_none=True)
    status_changed_at = fields.DateTime()
    rescheduled_from_id = fields.Integer(allow_none=True, metadata={"description": "the visit this one replaces"})
    created_at = fields.DateTime()


class VisitDetailSchema(VisitSchema):
    services = fields.List(fields.Nested(ServiceLineSchema))


class VisitStatusWriteSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(VISIT_STATUSES))
    reason = fields.String(allow_none=True, validate=validate.Length(max=2000),
                           metadata={"description": "required when cancelling"})


class OfferSchema(Schema):
    id = fields.Integer()
    cancelled_visit_id = fields.Integer()
    modality = fields.Constant(Modality.VIDEO.value, metadata={"type": "string", "enum": [Modality.VIDEO.value]})
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    expires_at = fields.DateTime()
    accept_url = fields.String(metadata={"description": "POST {} here (as the patient or the care team) to accept"})


class NewOfferSchema(OfferSchema):
    token = fields.String(metadata={"description": "the one-tap secret for the patient's link; shown only here"})
    one_tap_url = fields.String(metadata={"description": "the page the patient opens with one tap (the SMS link)"})


class VisitStatusResultSchema(VisitSchema):
    offer = fields.Nested(NewOfferSchema, allow_none=True, metadata={
        "description": "the nearest free video slot that week, when a clinic visit was cancelled"})


class RescheduleSchema(Schema):
    starts_at = AwareTime(required=True)
    ends_at = AwareTime(required=True)

    @validates_schema(skip_on_field_errors=True)
    def _interval(self, data, **kwargs):
        problem = interval_problem(data["starts_at"], data["ends_at"])
        if problem:
            raise ValidationError(problem, "ends_at")


MAX_CALENDAR_DAYS = 42


class CalendarArgsSchema(Schema):
    start = AwareTime(required=True, metadata={"description": "ISO 8601 with offset; write + as %2B in a URL"})
    end = AwareTime(required=True, metadata={"description": f"after start, at most {MAX_CALENDAR_DAYS} days on"})
    clinician_id = fields.Integer(strict=False, validate=ROW_ID)

    @validates_schema(skip_on_field_errors=True)
    def _range(self, data, **kwargs):
        if data["end"] <= data["start"]:
            raise ValidationError("The end comes after the start.", "end")
        if data["end"] - data["start"] > timedelta(days=MAX_CALENDAR_DAYS):
            raise ValidationError(f"Ask for at most {MAX_CALENDAR_DAYS} days at a time.", "end")


class EmptySchema(Schema):
    """The body of an action that takes no values: `{}`."""


class NoteWriteSchema(Schema):
    """The whole draft: a field left out is empty."""

    subjective = fields.String(load_default="", validate=validate.Length(max=20000))
    objective = fields.String(load_default="", validate=validate.Length(max=20000))
    assessment = fields.String(load_default="", validate=validate.Length(max=20000))
    plan = fields.String(load_default="", validate=validate.Length(max=20000))


class AddendumWriteSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=20000))


class AddendumSchema(Schema):
    id = fields.Integer()
    author = fields.Nested(TherapistRefSchema)
    text = fields.String()
    created_at = fields.DateTime()


class NoteSchema(Schema):
    visit_id = fields.Integer()
    author = fields.Nested(TherapistRefSchema)
    subjective = fields.String()
    objective = fields.String()
    assessment = fields.String()
    plan = fields.String()
    updated_at = fields.DateTime()
    signed_at = fields.DateTime(allow_none=True, metadata={"description": "set once signed: the note is locked"})
    needs_cosign = fields.Boolean(metadata={"description": "an assistant's note the supervising PT co-signs"})
    cosigned_at = fields.DateTime(allow_none=True)
    cosigned_by = fields.Nested(TherapistRefSchema, allow_none=True)
    addenda = fields.List(fields.Nested(AddendumSchema))


class AlertSchema(Schema):
    kind = fields.String(metadata={"enum": [a.value for a in PlanAlert]})
    message = fields.String()


class RecertificationWriteSchema(Schema):
    certification_start = PlanDate(required=True)
    certification_end = PlanDate(required=True)
    certifying_physician_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    certifying_physician_npi = fields.String(required=True, validate=checked_by(npi_problem), metadata=NPI_DOC)
    certification_signed_on = PlanDate(allow_none=True)


class RecertificationSchema(RecertificationWriteSchema):
    id = fields.Integer(dump_only=True)
    episode_id = fields.Integer(dump_only=True)
    recorded_by_id = fields.Integer(dump_only=True)
    recorded_at = fields.DateTime(dump_only=True)
