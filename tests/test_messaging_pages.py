"""The messaging pages through the test client: the clinic's inbox of texts that need a person,
mark as read, a patient's texts page with the manual message and reminder settings forms."""

from __future__ import annotations

import html as html_lib
import re
import uuid
from datetime import time

import pytest

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import AuditEntry
from telerehab.accounts.operations import Actor
from telerehab.extensions import db
from telerehab.messaging import operations as messaging
from telerehab.messaging.models import InboundMessage, OutboxMessage

from .conftest import NOW, login
from .test_messaging_support import count, rows, sms_consent


@pytest.fixture(autouse=True)
def own_numbers(world):
    for patient, user, phone in ((world.other_patient, world.other_therapist, "+13125550102"),
                                 (world.foreign_patient, world.foreign_therapist, "+13125550103")):
        accounts.update_patient(Actor(user), patient.id, {"phone": phone}, now=NOW)


def text_in(body: str, phone: str = "+13125550101") -> InboundMessage:
    return messaging.receive_sms(Actor(None, "127.0.0.1"), {
        "MessageSid": "SM" + uuid.uuid4().hex, "From": phone, "To": "+13125550000", "Body": body}, now=NOW)


def field_error(page: str, name: str) -> str:
    match = re.search(rf'<p class="field-error" id="{name}-error">(.*?)</p>', page, re.S)
    assert match, f"no error shown beside {name}"
    return html_lib.unescape(match.group(1))


def test_the_inbox_lists_unread_texts_and_marks_them_read(client, world):
    sms_consent(world)
    message = text_in("Is my visit at 10 or 11?")
    text_in("DONE 7")  # handled in full: not in the inbox
    text_in("what?", phone="+13125550102")  # another clinic's patient
    login(client, "therapist")
    page = client.get("/messages").get_data(as_text=True)
    assert "Is my visit at 10 or 11?" in page and "Not understood" in page
    assert f"/patients/{world.patient.id}/messages" in page
    assert "DONE 7" not in page and "what?" not in page
    response = client.post(f"/messages/{message.id}/read", data={"back": "inbox"})
    assert response.status_code == 302 and response.headers["Location"] == "/messages"
    assert "Is my visit at 10 or 11?" not in client.get("/messages").get_data(as_text=True)
    everything = client.get("/messages?all=1").get_data(as_text=True)
    assert "Is my visit at 10 or 11?" in everything and "by Therapist" in everything
    assert "DONE 7" in everything


def test_reading_the_inbox_is_audited(client, world):
    message = text_in("hello?")
    login(client, "assistant")
    client.get("/messages")
    reads = [e for e in rows(AuditEntry) if e.record_type == "sms_inbound" and e.action == "read"]
    assert [(e.record_id, e.actor_id, e.patient_id) for e in reads] == [
        (message.id, world.assistant.id, world.patient.id)]


def test_marking_read_twice_is_harmless(client, world):
    message = text_in("hello?")
    login(client, "therapist")
    client.post(f"/messages/{message.id}/read")
    client.post(f"/messages/{message.id}/read")
    [stored] = rows(InboundMessage)
    assert stored.read_by_id == world.therapist.id
    assert len([e for e in rows(AuditEntry) if e.action == "mark_read"]) == 1


def test_marking_read_from_the_patients_page_returns_there(client, world):
    message = text_in("hello?")
    login(client, "therapist")
    response = client.post(f"/messages/{message.id}/read", data={"back": "patient"})
    assert response.headers["Location"] == f"/patients/{world.patient.id}/messages#incoming"


def test_a_texts_body_is_shown_escaped(client, world):
    text_in('<script>alert("x")</script>')
    login(client, "therapist")
    for path in ("/messages", f"/patients/{world.patient.id}/messages"):
        page = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_the_patients_page_warns_without_consent_and_disables_sending(client, world):
    login(client, "therapist")
    page = client.get(f"/patients/{world.patient.id}/messages").get_data(as_text=True)
    assert "No SMS consent is in force" in page
    assert re.search(r"<button type=\"submit\" disabled>Queue the text", page)


def test_a_manual_message_from_the_patients_page(client, world):
    sms_consent(world)
    login(client, "therapist")
    page = client.get(f"/patients/{world.patient.id}/messages").get_data(as_text=True)
    request_id = re.search(r'name="request_id" value="([0-9a-f-]{36})"', page).group(1)
    form = {"body": "See you Thursday at 10.", "request_id": request_id}
    response = client.post(f"/patients/{world.patient.id}/messages", data=form)
    assert response.status_code == 302
    assert client.post(f"/patients/{world.patient.id}/messages", data=form).status_code == 302  # double click
    [message] = rows(OutboxMessage)
    assert (message.body, message.status, message.created_by_id) == (
        "Downtown: See you Thursday at 10.", "queued", world.therapist.id)
    page = client.get(f"/patients/{world.patient.id}/messages").get_data(as_text=True)
    assert "Downtown: See you Thursday at 10." in page and "Queued" in page


@pytest.mark.parametrize(("body", "message"), [
    ("", "Missing data"),
    ("   ", "Missing data"),
    ("About your M17.11", "not private"),
    ("x" * 300, "Keep it under"),
    ("x" * 400, "Length must be between 1 and 320"),
])
def test_a_refused_message_is_shown_beside_the_field(client, world, body, message):
    sms_consent(world)
    login(client, "therapist")
    response = client.post(f"/patients/{world.patient.id}/messages",
                           data={"body": body, "request_id": str(uuid.uuid4())})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message.lower() in field_error(page, "body").lower()
    assert count(OutboxMessage) == 0


def test_a_message_without_consent_is_refused_with_the_reason(client, world):
    login(client, "therapist")
    response = client.post(f"/patients/{world.patient.id}/messages",
                           data={"body": "hi", "request_id": str(uuid.uuid4())})
    assert response.status_code == 422
    assert "no SMS consent" in field_error(response.get_data(as_text=True), "body")


def test_a_missing_request_id_is_refused(client, world):
    sms_consent(world)
    login(client, "therapist")
    response = client.post(f"/patients/{world.patient.id}/messages", data={"body": "hi"})
    assert response.status_code == 422
    assert count(OutboxMessage) == 0


def test_reminder_settings_are_saved(client, world):
    login(client, "assistant")
    response = client.post(f"/patients/{world.patient.id}/sms-settings", data={"reminder_time": "19:15"})
    assert response.status_code == 302
    settings = messaging.sms_settings(world.patient.id)
    assert (settings.reminder_time, settings.reminders_enabled) == (time(19, 15), False)
    client.post(f"/patients/{world.patient.id}/sms-settings", data={"reminder_time": "19:15", "reminders_enabled": "1"})
    db.session.expire_all()
    assert messaging.sms_settings(world.patient.id).reminders_enabled is True
    page = client.get(f"/patients/{world.patient.id}/messages").get_data(as_text=True)
    assert 'value="19:15"' in page


@pytest.mark.parametrize(("value", "message"), [
    ("22:30", "quiet hours"), ("", "Missing data"), ("25:00", "Not a valid time"), ("soon", "Not a valid time"),
])
def test_a_refused_reminder_time_is_shown_beside_the_field(client, world, value, message):
    login(client, "therapist")
    response = client.post(f"/patients/{world.patient.id}/sms-settings",
                           data={"reminder_time": value, "reminders_enabled": "1"})
    assert response.status_code == 422
    assert message.lower() in field_error(response.get_data(as_text=True), "reminder_time").lower()
