"""API schemas for protocols, results and trends (strict: unknown fields are refused)."""

from marshmallow import Schema, fields, validate

from telerehab.api.validation import ROW_ID
from telerehab.assessments.rules import MAX_AMENDMENT_REASON, MAX_OVERRIDE_REASON, Variant

VARIANTS = [v.value for v in Variant]


class ProtocolSummarySchema(Schema):
    id = fields.String()
    version = fields.Integer()
    name = fields.String()
    kind = fields.String(metadata={"description": "rom, performance or prom"})
    body_region = fields.String()
    units = fields.String()
    direction = fields.String(metadata={"description": "higher_better or higher_worse"})
    video_available = fields.Boolean()
    comparability = fields.String(attribute="comparability.status",
                                  metadata={"description": "interchangeable, comparable_with_offset or not_comparable"})


class ProtocolSchema(Schema):
    """A whole protocol document as in protocols/<id>.json (see protocols/protocol.schema.json)."""

    id = fields.String()
    version = fields.Integer()
    name = fields.String()
    kind = fields.String()
    body_region = fields.String()
    units = fields.String()
    units_note = fields.String()
    direction = fields.String()
    summary = fields.String()
    inputs = fields.List(fields.Dict())
    scoring = fields.Dict()
    variants = fields.Dict()
    comparability = fields.Dict()
    reliability = fields.Dict()
    sem = fields.Dict()
    mdc = fields.Dict()
    mcid = fields.Dict()
    norms = fields.Dict()
    cut_offs = fields.String()
    goniometry = fields.Dict()
    licence = fields.Dict()
    sources = fields.List(fields.String())


def _inputs(**options) -> fields.Dict:
    return fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=40)), values=fields.Raw(allow_none=True),
                       validate=validate.Length(max=60), **options)


def _checklist() -> fields.Dict:
    return fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=40)), values=fields.Boolean(),
                       allow_none=True, validate=validate.Length(max=30),
                       metadata={"description": "camera checklist item id -> ticked (video variant)"})


def _amendment_reason(description: str) -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=5, max=MAX_AMENDMENT_REASON),
                         metadata={"description": description})


class ResultWriteSchema(Schema):
    protocol_id = fields.String(required=True, validate=validate.Length(min=1, max=60))
    visit_id = fields.Integer(strict=True, allow_none=True, validate=ROW_ID,
                              metadata={"description": "the visit it was taken at; its modality sets the default variant"})
    episode_id = fields.Integer(strict=True, allow_none=True, validate=ROW_ID,
                                metadata={"description": "the plan of care, when not taken at a visit"})
    variant = fields.String(allow_none=True, validate=validate.OneOf(VARIANTS),
                            metadata={"description": "default: the visit's modality; required without a visit"})
    override_reason = fields.String(allow_none=True, validate=validate.Length(max=MAX_OVERRIDE_REASON),
                                    metadata={"description": "required when the variant differs from the visit's modality"})
    inputs = _inputs(required=True, metadata={"description": "input id -> value, as the protocol's inputs define"})
    checklist = _checklist()


class CorrectionSchema(Schema):
    reason = _amendment_reason("what was wrong with the result being corrected")
    inputs = _inputs(allow_none=True, metadata={
        "description": "the whole set of inputs, as when recording; default: the original's"})
    variant = fields.String(allow_none=True, validate=validate.OneOf(VARIANTS),
                            metadata={"description": "default: the original's"})
    override_reason = fields.String(allow_none=True, validate=validate.Length(max=MAX_OVERRIDE_REASON),
                                    metadata={"description": "default: the original's"})
    checklist = _checklist()


class WithdrawalSchema(Schema):
    reason = _amendment_reason("why the result was entered in error")


class ResultSchema(Schema):
    id = fields.Integer()
    patient_id = fields.Integer()
    episode_id = fields.Integer()
    visit_id = fields.Integer(allow_none=True)
    protocol_id = fields.String()
    protocol_version = fields.Integer()
    variant = fields.String()
    modality = fields.String(allow_none=True)
    override_reason = fields.String(allow_none=True)
    series_key = fields.String()
    inputs = fields.Dict()
    checklist = fields.Dict(allow_none=True)
    score = fields.Float()
    units = fields.String()
    method = fields.String()
    recorded_by_id = fields.Integer()
    recorded_at = fields.DateTime(metadata={"description": "when the test was taken (a correction keeps it)"})
    in_force = fields.Boolean(metadata={"description": "neither superseded by a correction nor withdrawn"})
    superseded_by_id = fields.Integer(allow_none=True, metadata={"description": "the result that corrects this one"})
    superseded_at = fields.DateTime(allow_none=True)
    superseded_by_user_id = fields.Integer(allow_none=True)
    superseded_reason = fields.String(allow_none=True)
    withdrawn_at = fields.DateTime(allow_none=True)
    withdrawn_by_id = fields.Integer(allow_none=True)
    withdrawn_reason = fields.String(allow_none=True)


class ResultListArgsSchema(Schema):
    protocol_id = fields.String(validate=validate.Length(min=1, max=60))


class ChangeSchema(Schema):
    delta = fields.Float(allow_none=True)
    comparable = fields.Boolean()
    offset_applied = fields.Boolean()
    mdc = fields.Float(allow_none=True)
    mcid = fields.Float(allow_none=True)
    beyond_mdc = fields.Boolean(allow_none=True)
    beyond_mcid = fields.Boolean(allow_none=True)
    better = fields.Boolean(allow_none=True)
    summary = fields.String()


class NormSchema(Schema):
    position = fields.String()
    label = fields.String()


class TrendPointSchema(Schema):
    result_id = fields.Integer()
    recorded_at = fields.DateTime()
    value = fields.Float()
    variant = fields.String()
    since_baseline = fields.Nested(ChangeSchema, allow_none=True)
    since_last = fields.Nested(ChangeSchema, allow_none=True)
    norm = fields.Nested(NormSchema, allow_none=True)


class TrendSeriesSchema(Schema):
    key = fields.String()
    label = fields.String()
    not_comparable_steps = fields.Integer()
    points = fields.List(fields.Nested(TrendPointSchema))


class TrendSchema(Schema):
    patient_id = fields.Integer()
    protocol_id = fields.String()
    protocol_version = fields.Integer()
    units = fields.String()
    direction = fields.String()
    comparability = fields.String()
    series = fields.List(fields.Nested(TrendSeriesSchema))
