"""API, form and data-file schemas for the exercise library, programs and check-ins (strict)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from telerehab.accounts.schemas import PageSchema
from telerehab.api.validation import ROW_ID, checked_by
from telerehab.exercises.rules import (
    DAYS_PER_WEEK_RANGE,
    HOLD_SECONDS_RANGE,
    LATE_UPLOAD_DAYS_RANGE,
    LIBRARY_KEY,
    MAX_PROGRAM_ITEMS,
    PAIN_MAX,
    PAIN_MIN,
    REPS_DONE_RANGE,
    REPS_RANGE,
    SETS_DONE_RANGE,
    SETS_RANGE,
    TIMES_PER_DAY_RANGE,
    BodyRegion,
    Difficulty,
    media_problem,
)

REGIONS = [r.value for r in BodyRegion]
DIFFICULTIES = [d.value for d in Difficulty]


def _int(bounds: tuple[int, int], **kwargs) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(*bounds), **kwargs)


# ---------------------------------------------------------------- the library

class DosageSchema(Schema):
    sets = _int(SETS_RANGE, required=True)
    reps = _int(REPS_RANGE, required=True)
    hold_seconds = _int(HOLD_SECONDS_RANGE, load_default=0)
    times_per_day = _int(TIMES_PER_DAY_RANGE, load_default=1)
    days_per_week = _int(DAYS_PER_WEEK_RANGE, load_default=7)


class LibraryEntrySchema(Schema):
    """One exercise of library.json, checked at start-up."""

    id = fields.String(required=True, validate=[validate.Length(max=40), validate.Regexp(LIBRARY_KEY)])
    name = fields.String(required=True, validate=validate.Length(min=2, max=120))
    body_region = fields.String(required=True, validate=validate.OneOf(REGIONS))
    equipment = fields.List(fields.String(validate=validate.Length(min=1, max=40)), required=True)
    media = fields.String(required=True, validate=checked_by(media_problem))
    instructions = fields.String(required=True, validate=validate.Length(min=40, max=2000))
    dosage = fields.Nested(DosageSchema, required=True)


class LibraryFileSchema(Schema):
    version = fields.Integer(strict=True, required=True, validate=validate.Range(min=1))
    exercises = fields.List(fields.Nested(LibraryEntrySchema), required=True,
                            validate=validate.Length(min=40))


class ExerciseSchema(Schema):
    key = fields.String(metadata={"description": "library id, or clinic:<id> for a clinic's own"})
    name = fields.String()
    body_region = fields.String()
    region_label = fields.String()
    instructions = fields.String()
    equipment = fields.List(fields.String())
    media = fields.String(metadata={"description": "path of an image or clip; empty when none"})
    dosage = fields.Nested(DosageSchema)
    clinic_id = fields.Integer(allow_none=True)


class ExerciseSearchArgsSchema(Schema):
    q = fields.String(validate=validate.Length(max=100), metadata={"description": "words of the name, region or equipment"})
    region = fields.String(validate=validate.OneOf(REGIONS))
    equipment = fields.String(validate=validate.Length(min=1, max=40),
                              metadata={"description": "needs this equipment; `none` for none at all"})
    clinic_id = fields.Integer(validate=ROW_ID,
                               metadata={"description": "whose own exercises to include (default: yours)"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class ExercisePageSchema(PageSchema):
    items = fields.List(fields.Nested(ExerciseSchema))


class ClinicExerciseWriteSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=2, max=120))
    body_region = fields.String(required=True, validate=validate.OneOf(REGIONS))
    instructions = fields.String(required=True, validate=validate.Length(min=10, max=2000))
    equipment = fields.List(fields.String(validate=validate.Length(min=1, max=40)), load_default=list,
                            validate=validate.Length(max=10))
    media = fields.String(load_default="", validate=checked_by(media_problem))
    clinic_id = fields.Integer(strict=True, validate=ROW_ID)
    sets = _int(SETS_RANGE, required=True)
    reps = _int(REPS_RANGE, required=True)
    hold_seconds = _int(HOLD_SECONDS_RANGE, load_default=0)
    times_per_day = _int(TIMES_PER_DAY_RANGE, load_default=1)
    days_per_week = _int(DAYS_PER_WEEK_RANGE, load_default=7)


# ---------------------------------------------------------------- programs

class ProgramItemWriteSchema(Schema):
    exercise_key = fields.String(required=True, validate=validate.Length(min=1, max=40),
                                 metadata={"description": "a library id, or clinic:<id>"})
    sets = _int(SETS_RANGE, metadata={"description": "default: the exercise's"})
    reps = _int(REPS_RANGE, metadata={"description": "default: the exercise's"})
    hold_seconds = _int(HOLD_SECONDS_RANGE)
    load = fields.String(allow_none=True, validate=validate.Length(max=40),
                         metadata={"description": "e.g. 2 kg, red band"})
    times_per_day = _int(TIMES_PER_DAY_RANGE)
    days_per_week = _int(DAYS_PER_WEEK_RANGE)
    notes = fields.String(allow_none=True, validate=validate.Length(max=1000))
    start_date = fields.Date(allow_none=True, metadata={"description": "default: when the version takes effect"})
    end_date = fields.Date(allow_none=True)

    @validates_schema
    def _dates_in_order(self, data, **kwargs):
        start, end = data.get("start_date"), data.get("end_date")
        if start and end and end < start:
            raise ValidationError("The end date is before the start date.", "end_date")


class ProgramWriteSchema(Schema):
    effective_from = fields.Date(metadata={"description": "the patient's local date it takes effect; default today"})
    change_note = fields.String(allow_none=True, validate=validate.Length(max=1000))
    items = fields.List(fields.Nested(ProgramItemWriteSchema), required=True,
                        validate=validate.Length(max=MAX_PROGRAM_ITEMS))


class UserRefSchema(Schema):
    id = fields.Integer()
    full_name = fields.String()


class ProgramItemSchema(Schema):
    id = fields.Integer()
    position = fields.Integer()
    exercise_key = fields.String()
    exercise_name = fields.String()
    sets = fields.Integer()
    reps = fields.Integer()
    hold_seconds = fields.Integer()
    load = fields.String(allow_none=True)
    times_per_day = fields.Integer()
    days_per_week = fields.Integer()
    notes = fields.String(allow_none=True)
    start_date = fields.Date()
    end_date = fields.Date(allow_none=True)


class ProgramSchema(Schema):
    id = fields.Integer()
    episode_id = fields.Integer()
    version = fields.Integer()
    effective_from = fields.Date()
    change_note = fields.String(allow_none=True)
    created_at = fields.DateTime()
    created_by = fields.Nested(UserRefSchema)
    items = fields.List(fields.Nested(ProgramItemSchema))


class ProgramDaySchema(Schema):
    """The version in force on a day, and which of its items apply that day."""

    date = fields.Date()
    program = fields.Nested(ProgramSchema)
    items = fields.List(fields.Nested(ProgramItemSchema))


class ProgramArgsSchema(Schema):
    on = fields.Date(metadata={"description": "the patient's local date; default today"})


# ---------------------------------------------------------------- check-ins

class CheckInExerciseWriteSchema(Schema):
    program_item_id = fields.Integer(strict=True, required=True, validate=ROW_ID)
    sets = _int(SETS_DONE_RANGE, required=True)
    reps = _int(REPS_DONE_RANGE, required=True)


class CheckInWriteSchema(Schema):
    client_id = fields.UUID(required=True, metadata={"description": "made by the client; a retry sends the same"})
    recorded_at = fields.AwareDateTime(required=True, metadata={"description": "the device's time, with offset"})
    pain = fields.Integer(strict=True, allow_none=True, load_default=None,
                          validate=validate.Range(PAIN_MIN, PAIN_MAX), metadata={"description": "NPRS 0-10"})
    difficulty = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(DIFFICULTIES))
    note = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=2000))
    exercises = fields.List(fields.Nested(CheckInExerciseWriteSchema), load_default=list,
                            validate=validate.Length(max=MAX_PROGRAM_ITEMS))
    all_done = fields.Boolean(load_default=False, metadata={
        "description": "every exercise of the day done as prescribed (those not listed in `exercises`)"})


class CheckInExerciseSchema(Schema):
    program_item_id = fields.Integer()
    exercise_name = fields.String(attribute="program_item.exercise_name")
    sets = fields.Integer(attribute="sets_done")
    reps = fields.Integer(attribute="reps_done")


class CheckInSchema(Schema):
    id = fields.Integer()
    client_id = fields.UUID()
    patient_id = fields.Integer()
    episode_id = fields.Integer()
    program_id = fields.Integer(allow_none=True)
    recorded_at = fields.DateTime()
    received_at = fields.DateTime()
    local_date = fields.Date(metadata={"description": "the data day: the date in `timezone` at recorded_at"})
    timezone = fields.String()
    source = fields.String()
    pain = fields.Integer(allow_none=True)
    difficulty = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    exercises = fields.List(fields.Nested(CheckInExerciseSchema))


class CheckInListArgsSchema(Schema):
    date_from = fields.Date(data_key="from", metadata={"description": "first local date (inclusive)"})
    date_to = fields.Date(data_key="to", metadata={"description": "last local date (inclusive)"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    page_size = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))

    @validates_schema
    def _range_in_order(self, data, **kwargs):
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            raise ValidationError("`to` is before `from`.", "to")


class CheckInPageSchema(PageSchema):
    items = fields.List(fields.Nested(CheckInSchema))


class CheckInSettingsSchema(Schema):
    late_upload_days = _int(LATE_UPLOAD_DAYS_RANGE, required=True)
