"""Twilio's webhooks through the test client: signatures (valid, tampered, missing, wrong URL),
replays keyed by MessageSid, check-ins by SMS, STOP and its synonyms, HELP, text not understood
(kept unread for the clinic), TwiML answers, and delivery-status callbacks."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import AuditEntry, Consent
from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.exercises.models import CheckIn
from telerehab.extensions import db
from telerehab.messaging import operations as messaging
from telerehab.messaging import rules
from telerehab.messaging.models import InboundMessage, OutboxMessage
from telerehab.messaging.operations import SMS_CHECKIN_NAMESPACE

from .conftest import NOW, login, patient_data
from .test_messaging_support import AUTH_TOKEN, FROM_NUMBER, count, rows, sms_consent

# The webhooks read the clock; they see this (09:00 in Chicago, a day into the episode).
WEBHOOK_NOW = NOW + timedelta(days=1)
INBOUND = "/twilio/sms/inbound"
STATUS = "/twilio/sms/status"
PUBLIC = "https://clinic.example"


@pytest.fixture(autouse=True)
def own_numbers(world):
    """The world's patients of other clinics get numbers of their own (shared numbers are tested
    on purpose below)."""
    for patient, user, phone in ((world.other_patient, world.other_therapist, "+13125550102"),
                                 (world.foreign_patient, world.foreign_therapist, "+13125550103")):
        accounts.update_patient(Actor(user), patient.id, {"phone": phone}, now=NOW)


@pytest.fixture(autouse=True)
def signed_webhooks(app, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", PUBLIC)
    monkeypatch.setattr("telerehab.messaging.views.utc_now", lambda: WEBHOOK_NOW)


def sign(path: str, params: dict, *, base: str = PUBLIC, token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(base + path, params)


def inbound_params(body: str, *, sid: str | None = None, sender: str = "+13125550101") -> dict:
    return {"MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32, "From": sender,
            "To": FROM_NUMBER, "Body": body, "NumMedia": "0"}


def post_inbound(client, body: str, **kwargs):
    params = inbound_params(body, **kwargs)
    return client.post(INBOUND, data=params, headers={"X-Twilio-Signature": sign(INBOUND, params)})


def twiml_messages(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data(as_text=True))  # noqa: S314 (our own app's answer)
    assert root.tag == "Response"
    return [element.text for element in root.findall("Message")]


def inbound() -> list[InboundMessage]:
    return rows(InboundMessage)


def checkins() -> list[CheckIn]:
    return rows(CheckIn)


# ---------------------------------------------------------------- signatures


def test_a_signed_checkin_is_recorded_and_answered(client, world):
    sms_consent(world)
    response = post_inbound(client, "done 6", sid="SM" + "a" * 32)
    assert twiml_messages(response) == ["Thanks! Your check-in for today is recorded, with pain 6/10."]
    [checkin] = checkins()
    assert (checkin.patient_id, checkin.source, checkin.pain, checkin.note) == (world.patient.id, "sms", 6, "done 6")
    assert checkin.client_id == uuid.uuid5(SMS_CHECKIN_NAMESPACE, "SM" + "a" * 32)
    assert checkin.local_date == WEBHOOK_NOW.date() and checkin.recorded_by_id is None
    [message] = inbound()
    assert (message.intent, message.outcome, message.checkin_id, message.is_unread) == (
        "checkin", "checkin_recorded", checkin.id, False)


def test_pain_alone_is_a_checkin_without_done(client, world):
    sms_consent(world)
    assert twiml_messages(post_inbound(client, "PAIN 4")) == [rules.checkin_reply(4)]
    [checkin] = checkins()
    assert checkin.pain == 4


def test_the_signature_is_checked_against_the_public_url(app, client, world, monkeypatch):
    params = inbound_params("DONE")
    headers = {"X-Twilio-Signature": sign(INBOUND, params, base="http://localhost")}
    assert client.post(INBOUND, data=params, headers=headers).status_code == 403  # not the URL Twilio called
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", None)  # no proxy: the request's own URL
    assert client.post(INBOUND, data=params, headers=headers).status_code == 200


@pytest.mark.parametrize("tamper", ["body", "sender", "extra", "signature", "token", "missing", "empty"])
def test_unsigned_or_tampered_requests_are_refused(client, world, tamper):
    sms_consent(world)
    params = inbound_params("DONE 2")
    signature = sign(INBOUND, params)
    if tamper == "body":
        params["Body"] = "STOP"
    elif tamper == "sender":
        params["From"] = "+13125550199"
    elif tamper == "extra":
        params["Injected"] = "1"
    elif tamper == "signature":
        signature = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    elif tamper == "token":
        signature = sign(INBOUND, params, token="another-accounts-token")
    headers = {} if tamper == "missing" else {"X-Twilio-Signature": "" if tamper == "empty" else signature}
    response = client.post(INBOUND, data=params, headers=headers)
    assert response.status_code == 403
    assert count(InboundMessage) == 0 and count(CheckIn) == 0
    assert db.session.scalar(select(Consent.revoked_at).where(Consent.kind == "sms")) is None


def test_without_an_auth_token_every_webhook_is_refused(app, client, world, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", None)
    assert post_inbound(client, "DONE").status_code == 403


def test_a_shared_key_signature_is_checked_with_its_own_secret(app, client, world, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_WEBHOOK_SHARED_KEY", "shared-secret")
    params = inbound_params("DONE")
    validator = RequestValidator("shared-secret")
    good = validator.compute_signature(PUBLIC + INBOUND, params, "HMAC_SHA256")
    settings = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    headers = {"X-Twilio-Signature": good, "X-Twilio-Webhooks-Signature-Settings": settings}
    assert client.post(INBOUND, data=params, headers=headers).status_code == 200
    forged = {"X-Twilio-Signature": sign(INBOUND, params), "X-Twilio-Webhooks-Signature-Settings": settings}
    assert client.post(INBOUND, data=params, headers=forged).status_code == 403


def test_webhooks_need_no_csrf_token_but_pages_still_do(app, client, world, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    sms_consent(world)
    assert post_inbound(client, "what time is my visit").status_code == 200
    [message] = inbound()
    login(client, "therapist")
    assert client.post(f"/messages/{message.id}/read").status_code == 400  # no token: refused


# ---------------------------------------------------------------- replays


def test_a_replayed_message_sid_is_stored_once(client, world):
    sms_consent(world)
    params = inbound_params("DONE 3", sid="SM" + "b" * 32)
    headers = {"X-Twilio-Signature": sign(INBOUND, params)}
    first = client.post(INBOUND, data=params, headers=headers)
    again = client.post(INBOUND, data=params, headers=headers)
    assert twiml_messages(first) == twiml_messages(again) == [rules.checkin_reply(3)]
    assert count(InboundMessage) == 1 and count(CheckIn) == 1


def test_a_replay_after_a_crash_mid_processing_finishes_the_work_once(client, world, monkeypatch):
    """The message row was stored, then the process died before the check-in: the retried webhook
    finishes it (the check-in's client id comes from the MessageSid, so it is made once)."""
    sms_consent(world)
    params = inbound_params("DONE", sid="SM" + "c" * 32)
    headers = {"X-Twilio-Signature": sign(INBOUND, params)}

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(messaging, "_process", crash)
    with pytest.raises(RuntimeError):
        client.post(INBOUND, data=params, headers=headers)
    monkeypatch.undo()
    monkeypatch.setitem(client.application.config, "TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setitem(client.application.config, "PUBLIC_BASE_URL", PUBLIC)
    monkeypatch.setattr("telerehab.messaging.views.utc_now", lambda: WEBHOOK_NOW)
    assert count(InboundMessage) == 1 and inbound()[0].processed_at is None
    assert twiml_messages(client.post(INBOUND, data=params, headers=headers)) == [rules.checkin_reply(None)]
    assert twiml_messages(client.post(INBOUND, data=params, headers=headers)) == [rules.checkin_reply(None)]
    assert count(InboundMessage) == 1 and count(CheckIn) == 1


# ---------------------------------------------------------------- opting out and in


def sms_consent_of(patient_id) -> Consent:
    db.session.expire_all()
    return db.session.scalars(select(Consent).where(Consent.patient_id == patient_id, Consent.kind == "sms")
                              .order_by(Consent.id.desc())).first()


@pytest.mark.parametrize("word", ["STOP", "stop", "Stop.", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT",
                                  "REVOKE", "OPTOUT", "stop all"])
def test_stop_and_its_synonyms_revoke_sms_consent_at_once(client, world, word):
    sms_consent(world)
    messaging.enqueue_sms(world.patient, kind="manual", body="x", idempotency_key="queued:1", now=NOW)
    db.session.commit()
    response = post_inbound(client, word)
    assert twiml_messages(response) == []  # Twilio confirms its own keywords
    consent = sms_consent_of(world.patient.id)
    assert consent.revoked_at == WEBHOOK_NOW and consent.revoked_by_id is None
    assert word.strip(".").upper() in consent.revocation_note.upper()
    assert [m.status for m in rows(OutboxMessage)] == ["cancelled"]
    audit = [e for e in rows(AuditEntry) if e.action == "revoke_consent"]
    assert [(e.record_id, e.patient_id, e.actor_id) for e in audit] == [(consent.id, world.patient.id, None)]
    [message] = inbound()
    assert (message.intent, message.outcome, message.is_unread) == ("opt_out", "opted_out", True)
    # No reminder, no message, after that.
    assert messaging.enqueue_sms(world.patient, kind="manual", body="y", idempotency_key="after", now=NOW) is None


def test_stop_with_more_words_is_confirmed_by_us(client, world):
    sms_consent(world)
    assert twiml_messages(post_inbound(client, "Stop texting me please")) == [rules.OPT_OUT_CONFIRMATION]
    assert sms_consent_of(world.patient.id).revoked_at == WEBHOOK_NOW


def test_stop_twice_is_harmless(client, world):
    sms_consent(world)
    post_inbound(client, "STOP")
    assert post_inbound(client, "STOP").status_code == 200
    assert count(InboundMessage) == 2
    assert len([e for e in rows(AuditEntry) if e.action == "revoke_consent"]) == 1


def test_start_asks_the_care_team_to_record_consent_again(client, world):
    sms_consent(world)
    post_inbound(client, "STOP")
    assert twiml_messages(post_inbound(client, "START")) == []
    start = inbound()[-1]
    assert (start.intent, start.outcome, start.is_unread) == ("opt_in", "opt_in_request", True)
    assert "record SMS consent" in start.outcome_detail
    assert sms_consent_of(world.patient.id).revoked_at is not None  # a person records consent again


# ---------------------------------------------------------------- help and what is not understood


def test_help_is_answered_with_the_clinics_details(client, world):
    sms_consent(world)
    [reply] = twiml_messages(post_inbound(client, "help"))
    assert reply.startswith("Downtown:") and "STOP" in reply and "DONE" in reply
    assert inbound()[0].is_unread


@pytest.mark.parametrize(("text", "hint"), [
    ("My knee hurts after the stairs", None),
    ("DONE 11", rules.PAIN_HINT),
    ("pain 4.5", rules.PAIN_HINT),
    ("Cancel Thursday", None),
])
def test_what_is_not_understood_gets_help_and_waits_unread_for_the_clinic(client, world, text, hint):
    sms_consent(world)
    [reply] = twiml_messages(post_inbound(client, text))
    assert "DONE" in reply and (hint is None or reply.startswith(hint))
    assert count(CheckIn) == 0
    [message] = inbound()
    assert (message.body, message.outcome, message.patient_id, message.clinic_id, message.is_unread) == (
        text, "not_understood", world.patient.id, world.clinic.id, True)
    assert [m.id for m in messaging.inbox(Actor(world.therapist), include_read=False, now=NOW)] == [message.id]
    assert messaging.inbox(Actor(world.other_therapist), include_read=False, now=NOW) == []
    assert messaging.unread_count(Actor(world.assistant)) == 1


def test_a_reply_never_repeats_clinical_detail(client, world):
    sms_consent(world)
    for text in ("DONE 4", "HELP", "what?", "DONE 40", "STOP texting"):
        for reply in twiml_messages(post_inbound(client, text)):
            assert rules.clinical_detail_problem(reply, ["M17.11", "Right knee OA"]) is None


def test_an_unknown_number_is_kept_and_answered_generically(client, world):
    [reply] = twiml_messages(post_inbound(client, "DONE", sender="+14155550123"))
    assert reply == rules.UNKNOWN_SENDER_REPLY
    [message] = inbound()
    assert (message.patient_id, message.clinic_id, message.outcome) == (None, None, "unknown_sender")
    assert count(CheckIn) == 0


def test_a_shared_number_goes_to_the_one_patient_with_sms_consent(client, world):
    spouse = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Bo"), now=NOW)
    sms_consent(world)
    post_inbound(client, "DONE")
    assert [c.patient_id for c in checkins()] == [world.patient.id]
    sms_consent(world, spouse)
    [reply] = twiml_messages(post_inbound(client, "DONE 2"))
    assert count(CheckIn) == 1  # two consenting patients: no guessing
    message = inbound()[-1]
    assert (message.patient_id, message.clinic_id, message.outcome, message.is_unread) == (
        None, world.clinic.id, "ambiguous_sender", True)
    assert "Downtown" in reply


def test_a_number_shared_across_clinics_is_not_guessed_at(client, world):
    accounts.update_patient(Actor(world.other_therapist), world.other_patient.id, {"phone": "+13125550101"}, now=NOW)
    post_inbound(client, "DONE")
    [message] = inbound()
    assert (message.patient_id, message.clinic_id, message.outcome) == (None, None, "unknown_sender")
    assert count(CheckIn) == 0


def test_start_after_stop_from_a_shared_number_finds_the_patient_who_had_consent(client, world):
    spouse = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Bo"), now=NOW)
    sms_consent(world)
    post_inbound(client, "STOP")
    post_inbound(client, "START")
    message = inbound()[-1]
    assert (message.patient_id, message.outcome) == (world.patient.id, "opt_in_request")
    assert spouse.id != message.patient_id


def test_stop_from_a_shared_number_stops_texts_to_each_patient(client, world):
    spouse = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Bo"), now=NOW)
    sms_consent(world)
    sms_consent(world, spouse)
    post_inbound(client, "STOP")
    assert sms_consent_of(world.patient.id).revoked_at is not None
    assert sms_consent_of(spouse.id).revoked_at is not None


def test_a_checkin_the_exercises_domain_refuses_is_kept_for_the_clinic(client, world):
    sms_consent(world)
    careplans.update_episode(Actor(world.therapist), world.episode.id,
                             {"status": "discharged", "discharge_date": NOW.date(), "discharge_reason": "goals_met"},
                             now=NOW)
    [reply] = twiml_messages(post_inbound(client, "DONE 5"))
    assert reply == rules.checkin_refused_reply()
    [message] = inbound()
    assert (message.outcome, message.is_unread) == ("checkin_refused", True)
    assert "plan of care" in message.outcome_detail
    assert count(CheckIn) == 0


def test_each_inbound_text_is_audited(client, world):
    sms_consent(world)
    post_inbound(client, "DONE")
    entries = [e for e in rows(AuditEntry) if e.action == "receive_sms"]
    assert [(e.patient_id, e.actor_id, e.ip_address) for e in entries] == [(world.patient.id, None, "127.0.0.1")]


# ---------------------------------------------------------------- delivery status callbacks


def post_status(client, params: dict, query: str = ""):
    path = STATUS + (f"?{query}" if query else "")
    return client.post(path, data=params, headers={"X-Twilio-Signature": sign(path, params)})


def test_a_signed_status_callback_updates_the_row(client, world):
    sms_consent(world)
    messaging.enqueue_sms(world.patient, kind="manual", body="x", idempotency_key="k", now=NOW)
    db.session.commit()
    messaging.deliver_due(now=NOW)
    [message] = rows(OutboxMessage)
    params = {"MessageSid": message.provider_sid, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    response = post_status(client, params, f"o={message.id}")
    assert response.status_code == 204
    assert rows(OutboxMessage)[0].status == "delivered"


def test_an_unsigned_status_callback_is_refused(client, world):
    sms_consent(world)
    messaging.enqueue_sms(world.patient, kind="manual", body="x", idempotency_key="k", now=NOW)
    db.session.commit()
    messaging.deliver_due(now=NOW)
    [message] = rows(OutboxMessage)
    params = {"MessageSid": message.provider_sid, "MessageStatus": "failed"}
    assert client.post(STATUS, data=params).status_code == 403
    signed_for_another_row = {"X-Twilio-Signature": sign(STATUS + "?o=1", params)}
    assert client.post(STATUS + f"?o={message.id + 1}", data=params, headers=signed_for_another_row).status_code == 403
    assert rows(OutboxMessage)[0].status == "sent"


def test_webhooks_only_take_post(client):
    assert client.get(INBOUND).status_code == 405
    assert client.get(STATUS).status_code == 405


def test_missing_message_sid_is_a_400(client, world):
    params = {"From": "+13125550101", "Body": "DONE"}
    response = client.post(INBOUND, data=params, headers={"X-Twilio-Signature": sign(INBOUND, params)})
    assert response.status_code == 400



def test_the_same_webhook_delivered_concurrently_stores_one_message(app, client, world):
    """Twilio retries a slow webhook while the first delivery is still being handled."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("concurrent requests need PostgreSQL (the SQLite test database is one connection)")
    import threading

    from .conftest import new_client

    sms_consent(world)
    params = inbound_params("DONE 5", sid="SM" + "d" * 32)
    headers = {"X-Twilio-Signature": sign(INBOUND, params)}
    answers: list = []
    barrier = threading.Barrier(10)

    def deliver_webhook():
        barrier.wait()
        answers.append(new_client(app).post(INBOUND, data=params, headers=headers))

    threads = [threading.Thread(target=deliver_webhook) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 10
    assert {tuple(twiml_messages(a)) for a in answers} == {(rules.checkin_reply(5),)}
    assert count(InboundMessage) == 1 and count(CheckIn) == 1
