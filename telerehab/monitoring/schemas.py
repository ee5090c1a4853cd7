"""API and form schemas for RTM enrolment, management time and the RTM status (strict fields)."""

from marshmallow import Schema, fields, validate

from telerehab.api.validation import ROW_ID
from telerehab.billing.rules import (
    CqAttribution,
    DeviceDos,
    ManagementDos,
    MonitoredSystem,
    RpmOverlap,
    SetupDos,
    SetupRebill,
)
from telerehab.monitoring.rules import Activity, Channel

SYSTEMS = [s.value for s in MonitoredSystem]
ACTIVITIES = [a.value for a in Activity]
CHANNELS = [c.value for c in Channel]


class EnrolmentWriteSchema(Schema):
    monitored_system = fields.String(load_default=MonitoredSystem.MUSCULOSKELETAL.value,
                                     validate=validate.OneOf(SYSTEMS))
    device_name = fields.String(required=True, validate=validate.Length(min=2, max=120))
    device_identifier = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=80))
    cost_sharing_notice_shown_at = fields.AwareDateTime(required=True)
    monitoring_start = fields.Date(load_default=None, allow_none=True)
    baseline_pain = fields.Integer(strict=True, load_default=None, allow_none=True, validate=validate.Range(0, 10))
    setup_date = fields.Date(load_default=None, allow_none=True)
    setup_minutes = fields.Integer(strict=True, load_default=None, allow_none=True, validate=validate.Range(1, 240))
    setup_by_id = fields.Integer(strict=True, load_default=None, allow_none=True, validate=ROW_ID)


class SetupWriteSchema(Schema):
    setup_date = fields.Date(required=True)
    setup_minutes = fields.Integer(strict=True, required=True, validate=validate.Range(1, 240))
    setup_by_id = fields.Integer(strict=True, required=True, validate=ROW_ID)


class EndWriteSchema(Schema):
    reason = fields.String(load_default="opted_out", validate=validate.OneOf(["opted_out", "ended"]))
    end_date = fields.Date(load_default=None, allow_none=True)


class EnrolmentSchema(Schema):
    id = fields.Integer()
    episode_id = fields.Integer()
    patient_id = fields.Integer()
    status = fields.String()
    monitored_system = fields.String()
    device_name = fields.String()
    device_identifier = fields.String(allow_none=True)
    cost_sharing_notice_shown_at = fields.DateTime()
    consent_id = fields.Integer()
    setup_date = fields.Date(allow_none=True)
    setup_minutes = fields.Integer(allow_none=True)
    setup_by_id = fields.Integer(allow_none=True)
    setup_by_role = fields.String(allow_none=True)
    monitoring_start = fields.Date()
    monitoring_end = fields.Date(allow_none=True)
    end_reason = fields.String(allow_none=True)


class TimeEntryWriteSchema(Schema):
    service_date = fields.Date(required=True)
    minutes = fields.Integer(strict=True, required=True, validate=validate.Range(1, 600))
    activity = fields.String(required=True, validate=validate.OneOf(ACTIVITIES))
    interactive = fields.Boolean(required=True)
    channel = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CHANNELS))
    linked_visit_id = fields.Integer(strict=True, load_default=None, allow_none=True, validate=ROW_ID)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class TimeEntrySchema(Schema):
    id = fields.Integer()
    service_date = fields.Date()
    minutes = fields.Integer()
    activity = fields.String()
    staff_id = fields.Integer()
    staff_role = fields.String()
    interactive = fields.Boolean()
    channel = fields.String(allow_none=True)
    linked_visit_id = fields.Integer(allow_none=True)
    voided_at = fields.DateTime(allow_none=True)


class TimerStopSchema(Schema):
    activity = fields.String(required=True, validate=validate.OneOf(ACTIVITIES))
    interactive = fields.Boolean(load_default=False)
    channel = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CHANNELS))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class WindowSchema(Schema):
    key = fields.String()
    start = fields.Date()
    end = fields.Date()


class TierSchema(Schema):
    tier = fields.Integer()
    code = fields.String()
    needed = fields.Integer()
    days_left = fields.Integer()
    reachable = fields.Boolean()


class MinutesSchema(Schema):
    minutes = fields.Integer()
    next_tier = fields.Integer(allow_none=True)
    to_next_tier = fields.Integer()
    interactive_done = fields.Boolean()


class DecisionSchema(Schema):
    slot = fields.String()
    period_key = fields.String()
    period_start = fields.Date()
    period_end = fields.Date()
    status = fields.String()
    code = fields.String(allow_none=True)
    units = fields.Integer()
    modifiers = fields.List(fields.String())
    service_date = fields.Date(allow_none=True)
    reason = fields.String()
    evidence = fields.Dict()


class RtmStatusSchema(Schema):
    episode_id = fields.Function(lambda status: status.episode.id)
    enrolment = fields.Nested(EnrolmentSchema, allow_none=True)
    today = fields.Date(allow_none=True)
    period = fields.Nested(WindowSchema, allow_none=True)
    data_days = fields.Function(lambda status: [d.day.isoformat() for d in status.timeline if d.has_data])
    day_forecast = fields.List(fields.Nested(TierSchema))
    month = fields.Nested(WindowSchema, allow_none=True)
    minutes = fields.Nested(MinutesSchema, allow_none=True)
    decisions = fields.List(fields.Nested(DecisionSchema))


def _choice(enum, **kwargs) -> fields.String:
    return fields.String(required=True, validate=validate.OneOf([e.value for e in enum]), **kwargs)


class RtmPolicySchema(Schema):
    """A payer's RTM choices (rtm-billing-2026.md §6 item 6)."""

    setup_min_days = fields.Integer(strict=True, required=True, validate=validate.Range(1, 30))
    setup_rebill = _choice(SetupRebill)
    async_message_is_interactive = fields.Boolean(required=True)
    addon_unit_cap = fields.Integer(strict=True, load_default=None, allow_none=True, validate=validate.Range(0, 20))
    addon_needs_own_interaction = fields.Boolean(required=True)
    device_dos = _choice(DeviceDos)
    management_dos = _choice(ManagementDos)
    setup_dos = _choice(SetupDos)
    cq_attribution = _choice(CqAttribution)
    rpm_overlap = _choice(RpmOverlap)
    place_of_service = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{2}$"))
    kx_threshold_cents = fields.Integer(strict=True, required=True, validate=validate.Range(0, 10_000_000))


class AlertThresholdsSchema(Schema):
    pain_at_or_above = fields.Integer(strict=True, required=True, validate=validate.Range(1, 10))
    rise_over_baseline = fields.Integer(strict=True, required=True, validate=validate.Range(1, 10))
    rise_days = fields.Integer(strict=True, required=True, validate=validate.Range(1, 7))
    no_checkin_days = fields.Integer(strict=True, required=True, validate=validate.Range(1, 30))
    at_risk_slack_days = fields.Integer(strict=True, required=True, validate=validate.Range(0, 15))


class RpmPeriodWriteSchema(Schema):
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    source = fields.String(load_default="attestation", validate=validate.OneOf(["attestation", "denial", "other"]))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class RpmPeriodSchema(Schema):
    id = fields.Integer()
    patient_id = fields.Integer()
    start_date = fields.Date()
    end_date = fields.Date()
    source = fields.String()
    note = fields.String(allow_none=True)


class TherapyAmountWriteSchema(Schema):
    year = fields.Integer(strict=True, required=True, validate=validate.Range(2000, 2100))
    amount_cents = fields.Integer(strict=True, required=True, validate=validate.Range(0, 100_000_000))
    as_of = fields.Date(required=True)


class TherapyAmountSchema(Schema):
    id = fields.Integer()
    patient_id = fields.Integer()
    year = fields.Integer()
    amount_cents = fields.Integer()
    as_of = fields.Date()
