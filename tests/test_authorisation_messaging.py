"""Who may use the messaging pages: every route against every role and against another clinic's
patient. Texts may carry clinical content, so only clinicians (therapists and assistants) read and
send them. The Twilio webhooks are public routes authenticated by their signature, not a session."""

from __future__ import annotations

import uuid

import pytest

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.messaging import operations as messaging

from .authorisation_support import ROLES, Case, other_sms_consent, sms_consent
from .conftest import NOW, PASSWORD

CLINICIANS_200 = {"therapist": 200, "assistant": 200}
CLINICIANS_302 = {"therapist": 302, "assistant": 302}


def _text_from(world, patient, user) -> int:
    """An inbound text, not understood, from `patient` (given a number of their own)."""
    phone = "+13125550101" if patient.id == world.patient.id else "+13125550102"
    if patient.id != world.patient.id:
        accounts.update_patient(Actor(user), patient.id, {"phone": phone}, now=NOW)
    accounts.update_patient(Actor(world.foreign_therapist), world.foreign_patient.id, {"phone": "+13125550103"},
                            now=NOW)
    message = messaging.receive_sms(Actor(None, "127.0.0.1"), {
        "MessageSid": "SM" + uuid.uuid4().hex, "From": phone, "To": "+13125550000", "Body": "what time?"}, now=NOW)
    return message.id


def _own_text(world) -> int:
    if world.other_patient.phone == "+13125550101":
        accounts.update_patient(Actor(world.other_therapist), world.other_patient.id, {"phone": "+13125550102"},
                                now=NOW)
    return _text_from(world, world.patient, world.therapist)


def _other_text(world) -> int:
    return _text_from(world, world.other_patient, world.other_therapist)


def _message_form(world) -> dict:
    return {"body": "See you Thursday", "request_id": str(uuid.uuid4())}


MESSAGING_PAGE_CASES = [
    Case("GET", "/messages", lambda w: "/messages", CLINICIANS_200),
    Case("POST", "/messages/<id:message_id>/read", lambda w: f"/messages/{_own_text(w)}/read", CLINICIANS_302,
         body=lambda w: {"back": "inbox"}, other_path=lambda w: f"/messages/{_other_text(w)}/read"),
    Case("GET", "/patients/<id:patient_id>/messages", lambda w: f"/patients/{w.patient.id}/messages",
         CLINICIANS_200, other_path=lambda w: f"/patients/{w.other_patient.id}/messages"),
    Case("POST", "/patients/<id:patient_id>/messages",
         lambda w: (sms_consent(w), f"/patients/{w.patient.id}/messages")[1], CLINICIANS_302, body=_message_form,
         other_path=lambda w: (other_sms_consent(w), f"/patients/{w.other_patient.id}/messages")[1]),
    Case("POST", "/patients/<id:patient_id>/sms-settings", lambda w: f"/patients/{w.patient.id}/sms-settings",
         CLINICIANS_302, body=lambda w: {"reminder_time": "18:30", "reminders_enabled": "1"},
         other_path=lambda w: f"/patients/{w.other_patient.id}/sms-settings"),
]

# Twilio's webhooks: no session, authenticated by the X-Twilio-Signature header instead.
PUBLIC_WEBHOOKS = {("POST", "/twilio/sms/inbound"), ("POST", "/twilio/sms/status")}


@pytest.mark.parametrize("role", [None, *ROLES])
@pytest.mark.parametrize(("method", "rule"), sorted(PUBLIC_WEBHOOKS))
def test_webhooks_refuse_everyone_without_a_signature_signed_in_or_not(app, client, world, monkeypatch, role,
                                                                      method, rule):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", "a-token")
    if role is not None:
        client.post("/login", data={"username": world.user(role).username, "password": PASSWORD})
    response = client.open(rule, method=method, data={"MessageSid": "SM1", "From": "+13125550101", "Body": "STOP"})
    assert response.status_code == 403
