"""Form schemas for the messaging pages (marshmallow, strict: unknown fields refused)."""

from marshmallow import Schema, fields, validate

from telerehab.messaging.rules import MAX_BODY_CHARS


class ManualMessageSchema(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=MAX_BODY_CHARS))
    # Made when the form is shown: a form submitted twice queues one text.
    request_id = fields.UUID(required=True)


class SmsSettingsSchema(Schema):
    reminder_time = fields.Time(required=True, metadata={"description": "HH:MM, the patient's local time"})
    reminders_enabled = fields.Boolean(load_default=False)

