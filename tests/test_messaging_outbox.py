"""The outbox: queueing with its cause, consent and quiet hours, delivery with retries and backoff,
never twice (crashes between the provider and our commit), delivery-status callbacks, and the
therapist's manual message. Runs on SQLite and PostgreSQL, with the log backend or a scripted one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import AuditEntry
from telerehab.accounts.operations import Actor
from telerehab.errors import Forbidden, NotFound, ValidationFailed
from telerehab.extensions import db
from telerehab.messaging import operations as messaging
from telerehab.messaging.backends import LogBackend, ProviderMessage
from telerehab.messaging.models import OutboxMessage, SmsLogEntry
from telerehab.messaging.rules import DeliveryStatus

from .conftest import NOW, patient_data
from .test_messaging_support import (
    Crash,
    CrashAfterSend,
    CrashBeforeSend,
    ScriptedBackend,
    count,
    log_entries,
    permanent,
    retry,
    rows,
    sms_consent,
    uncertain,
)

NO_JITTER = lambda: 0.0  # noqa: E731 (the random source, fixed)
LEASE = timedelta(seconds=120)


def queue(world, key="test:1", *, now=NOW, body="Riverbend Downtown: hello", patient=None, **extra):
    message = messaging.enqueue_sms(patient or world.patient, kind="manual", body=body, idempotency_key=key,
                                    now=now, **extra)
    db.session.commit()
    return message


# ---------------------------------------------------------------- queueing


def test_nothing_is_queued_without_sms_consent(world):
    assert queue(world) is None
    assert count(OutboxMessage) == 0


def test_nothing_is_queued_without_a_mobile_number(world):
    sms_consent(world)
    accounts.update_patient(Actor(world.therapist), world.patient.id, {"phone": None}, now=NOW)
    assert queue(world) is None


def test_one_row_per_idempotency_key(world):
    sms_consent(world)
    first = queue(world, "visit:7:offer")
    again = queue(world, "visit:7:offer", body="something else")
    assert again.id == first.id
    assert [(m.idempotency_key, m.body) for m in rows()] == [("visit:7:offer", "Riverbend Downtown: hello")]


def test_the_outbox_row_commits_with_its_cause_or_not_at_all(world):
    """Queued in the caller's transaction: when the cause is rolled back, so is the text."""
    sms_consent(world)
    messaging.enqueue_sms(world.patient, kind="manual", body="x", idempotency_key="cause:1", now=NOW)
    db.session.rollback()
    assert count(OutboxMessage) == 0


def test_a_text_queued_in_quiet_hours_waits_for_their_end(world):
    sms_consent(world)
    evening = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)  # 22:00 in Chicago (CST)
    message = queue(world, now=evening)
    assert message.next_attempt_at == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # 08:00 CST


# ---------------------------------------------------------------- delivery (log backend)


def test_log_backend_sends_once(app, world):
    sms_consent(world)
    queue(world)
    run = messaging.deliver_due(now=NOW)
    assert run.sent == 1
    [message] = rows()
    assert message.status == DeliveryStatus.SENT and message.attempts == 1 and message.sent_at == NOW
    [entry] = log_entries()
    assert (entry.to_phone, entry.body, entry.sid) == ("+13125550101", "Riverbend Downtown: hello",
                                                       message.provider_sid)
    again = messaging.deliver_due(now=NOW + timedelta(minutes=5))
    assert again.sent == 0
    assert count(SmsLogEntry) == 1


def test_delivery_is_audited(world):
    sms_consent(world)
    queue(world)
    messaging.deliver_due(now=NOW)
    entries = [e for e in rows(AuditEntry) if e.record_type == "sms_outbox"]
    assert [(e.action, e.patient_id, e.actor_id) for e in entries] == [("sms_sent", world.patient.id, None)]


def test_not_yet_due_is_not_sent(world):
    sms_consent(world)
    queue(world, not_before=NOW + timedelta(hours=1))
    assert messaging.deliver_due(now=NOW).sent == 0
    assert messaging.deliver_due(now=NOW + timedelta(hours=1)).sent == 1


def test_delivery_waits_out_quiet_hours(world):
    """A text whose send time (after a backoff, say) falls in quiet hours waits for their end."""
    sms_consent(world)
    queue(world)
    night = datetime(2026, 3, 3, 5, 30, tzinfo=UTC)  # 23:30 CST
    run = messaging.deliver_due(now=night)
    assert (run.sent, run.held) == (0, 1)
    [message] = rows()
    assert message.status == DeliveryStatus.QUEUED and message.attempts == 0
    assert message.next_attempt_at == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    assert count(SmsLogEntry) == 0
    assert messaging.deliver_due(now=datetime(2026, 3, 3, 13, 59, tzinfo=UTC)).sent == 0
    assert messaging.deliver_due(now=datetime(2026, 3, 3, 14, 0, tzinfo=UTC)).sent == 1


def test_consent_revoked_after_queueing_cancels_the_text(world):
    consent = sms_consent(world)
    queue(world)
    accounts.revoke_consent(Actor(world.therapist), consent.id, note=None, now=NOW)
    run = messaging.deliver_due(now=NOW)
    assert (run.sent, run.cancelled) == (0, 1)
    [message] = rows()
    assert message.status == DeliveryStatus.CANCELLED and "consent" in message.last_error
    assert count(SmsLogEntry) == 0


def test_an_expired_text_is_cancelled(world):
    sms_consent(world)
    queue(world, expires_at=NOW + timedelta(minutes=1))
    assert messaging.deliver_due(now=NOW + timedelta(minutes=1)).cancelled == 1
    assert count(SmsLogEntry) == 0


def test_a_changed_number_is_used_for_the_next_attempt(world):
    sms_consent(world)
    queue(world)
    accounts.update_patient(Actor(world.therapist), world.patient.id, {"phone": "+13125550177"}, now=NOW)
    messaging.deliver_due(now=NOW)
    assert [e.to_phone for e in log_entries()] == ["+13125550177"]


# ---------------------------------------------------------------- retries and failures


def test_429_is_retried_with_exponential_backoff_then_sent(world):
    sms_consent(world)
    queue(world)
    backend = ScriptedBackend(script=[retry(), retry(), retry()])
    now = NOW
    expected_waits = [30, 60, 120]
    for wait in expected_waits:
        run = messaging.deliver_due(now=now, backend=backend, rand=NO_JITTER)
        assert run.retried == 1
        [message] = rows()
        assert message.status == DeliveryStatus.QUEUED and message.last_error == "HTTP 429"
        assert message.next_attempt_at == now + timedelta(seconds=wait)
        assert messaging.deliver_due(now=now + timedelta(seconds=wait - 1), backend=backend).retried == 0
        now += timedelta(seconds=wait)
    assert messaging.deliver_due(now=now, backend=backend, rand=NO_JITTER).sent == 1
    [message] = rows()
    assert message.status == DeliveryStatus.SENT and message.attempts == 4
    assert len(backend.sent) == 1
    assert backend.looked_up == []  # a 429 is a certain "not sent": no need to ask before retrying


def test_jitter_stretches_the_wait_within_its_bound(app, world, monkeypatch):
    sms_consent(world)
    queue(world)
    monkeypatch.setitem(app.config, "OUTBOX_BACKOFF_JITTER", 0.5)
    messaging.deliver_due(now=NOW, backend=ScriptedBackend(script=[retry()]), rand=lambda: 0.5)
    assert rows()[0].next_attempt_at == NOW + timedelta(seconds=30 * 1.25)


def test_permanent_4xx_is_recorded_as_failed_and_never_retried(world):
    sms_consent(world)
    queue(world)
    backend = ScriptedBackend(script=[permanent()])
    assert messaging.deliver_due(now=NOW, backend=backend).failed == 1
    [message] = rows()
    assert message.status == DeliveryStatus.FAILED and "21211" in message.last_error
    assert messaging.deliver_due(now=NOW + timedelta(days=1), backend=backend).failed == 0
    assert backend.sent == []


def test_gives_up_after_the_attempt_limit(app, world, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOX_MAX_ATTEMPTS", 3)
    sms_consent(world)
    queue(world)
    backend = ScriptedBackend(script=[retry(), retry(), retry(), "ok"])
    now = NOW
    for _ in range(5):
        messaging.deliver_due(now=now, backend=backend, rand=NO_JITTER)
        now += timedelta(hours=2)
    [message] = rows()
    assert message.status == DeliveryStatus.FAILED and message.attempts == 3
    assert "gave up after 3 attempts" in message.last_error
    assert backend.sent == []


def test_5xx_asks_the_provider_before_sending_again(world):
    """A 5xx (or a timeout) may follow a request the provider acted on: the next run looks the text
    up, and sends it again only if the provider has no record."""
    sms_consent(world)
    queue(world)
    backend = ScriptedBackend(script=[uncertain(), "ok"], lookups=[None])
    run = messaging.deliver_due(now=NOW, backend=backend, rand=NO_JITTER)
    assert run.uncertain == 1
    [message] = rows()
    assert message.status == DeliveryStatus.SENDING and message.next_attempt_at == NOW + timedelta(seconds=30)
    assert messaging.deliver_due(now=NOW + timedelta(seconds=30), backend=backend, rand=NO_JITTER).sent == 1
    assert len(backend.looked_up) == 1 and len(backend.sent) == 1
    assert rows()[0].attempts == 2


def test_5xx_after_the_provider_took_it_is_not_sent_twice(world):
    sms_consent(world)
    queue(world)
    backend = ScriptedBackend(script=[uncertain()], lookups=[ProviderMessage("SM" + "7" * 32, "sent")])
    messaging.deliver_due(now=NOW, backend=backend, rand=NO_JITTER)
    run = messaging.deliver_due(now=NOW + timedelta(minutes=1), backend=backend, rand=NO_JITTER)
    assert run.recovered == 1
    [message] = rows()
    assert (message.status, message.provider_sid, message.attempts) == (DeliveryStatus.SENT, "SM" + "7" * 32, 1)
    assert backend.sent == []


def test_a_failed_lookup_keeps_the_row_sending_and_waits(world):
    sms_consent(world)
    queue(world)
    backend = ScriptedBackend(script=[uncertain()], lookups=[retry("lookup: HTTP 500")])
    messaging.deliver_due(now=NOW, backend=backend, rand=NO_JITTER)
    run = messaging.deliver_due(now=NOW + timedelta(minutes=1), backend=backend, rand=NO_JITTER)
    assert run.uncertain == 1
    [message] = rows()
    assert message.status == DeliveryStatus.SENDING and "checking an earlier attempt" in message.last_error
    assert backend.sent == []


# ---------------------------------------------------------------- crashes between send and commit


def test_a_crash_between_send_and_commit_does_not_double_send(world):
    sms_consent(world)
    queue(world)
    log = LogBackend()
    with pytest.raises(Crash):
        messaging.deliver_due(now=NOW, backend=CrashAfterSend(log))
    db.session.rollback()
    [message] = rows()
    assert message.status == DeliveryStatus.SENDING and message.provider_sid is None
    assert count(SmsLogEntry) == 1  # the provider has it
    # The restarted job leaves the row alone while the attempt could still be in flight ...
    assert messaging.deliver_due(now=NOW + timedelta(seconds=60), backend=log).sent == 0
    # ... then asks the provider, finds the text, and records it as sent without sending again.
    run = messaging.deliver_due(now=NOW + LEASE, backend=log)
    assert (run.sent, run.recovered) == (0, 1)
    [message] = rows()
    assert message.status == DeliveryStatus.SENT and message.provider_sid == log_entries()[0].sid
    assert count(SmsLogEntry) == 1


def test_a_crash_before_the_provider_heard_of_it_sends_it_once(world):
    sms_consent(world)
    queue(world)
    log = LogBackend()
    with pytest.raises(Crash):
        messaging.deliver_due(now=NOW, backend=CrashBeforeSend(log))
    db.session.rollback()
    assert rows()[0].status == DeliveryStatus.SENDING
    assert count(SmsLogEntry) == 0
    run = messaging.deliver_due(now=NOW + LEASE, backend=log)
    assert run.sent == 1
    assert rows()[0].attempts == 2
    assert count(SmsLogEntry) == 1


def test_the_log_backend_keeps_one_copy_per_key(world):
    sms_consent(world)
    message = queue(world)
    log = LogBackend()
    from telerehab.messaging.backends import OutgoingSms

    outgoing = OutgoingSms(idempotency_key=message.idempotency_key, to_phone="+13125550101", body="x",
                           attempt_at=NOW, first_attempt_at=NOW)
    first = log.send(outgoing)
    assert log.send(outgoing) == first
    assert count(SmsLogEntry) == 1


def test_two_deliverers_at_once_send_once(app, world):
    """The claim is a compare-and-set on status and attempts: the loser skips the row."""
    sms_consent(world)
    queue(world)
    backend = ScriptedBackend()
    # The second deliverer read the row as queued before the first one claimed it.
    stale = db.session.get(OutboxMessage, rows()[0].id)
    messaging.deliver_due(now=NOW, backend=backend)
    messaging._deliver_one(stale.id, backend=backend, now=NOW, rand=NO_JITTER, run=messaging.DeliveryRun())
    assert len(backend.sent) == 1


# ---------------------------------------------------------------- delivery status callbacks


def sent_message(world):
    sms_consent(world)
    queue(world)
    messaging.deliver_due(now=NOW)
    return rows()[0]


def test_status_callback_moves_forward_never_back(world):
    message = sent_message(world)
    later = NOW + timedelta(seconds=5)
    messaging.apply_status_callback({"MessageSid": message.provider_sid, "MessageStatus": "delivered"},
                                    outbox_id=message.id, now=later)
    assert rows()[0].status == DeliveryStatus.DELIVERED
    messaging.apply_status_callback({"MessageSid": message.provider_sid, "MessageStatus": "sent"},
                                    outbox_id=message.id, now=later)
    assert (rows()[0].status, rows()[0].provider_status) == (DeliveryStatus.DELIVERED, "sent")


def test_status_callback_records_undelivered_as_failed(world):
    message = sent_message(world)
    messaging.apply_status_callback({"MessageSid": message.provider_sid, "MessageStatus": "undelivered",
                                     "ErrorCode": "30003"}, outbox_id=None, now=NOW)
    [message] = rows()
    assert message.status == DeliveryStatus.FAILED and message.last_error == "Twilio error 30003"


def test_status_callback_for_an_unknown_sid_changes_nothing(world):
    sent_message(world)
    assert messaging.apply_status_callback({"MessageSid": "SMnope", "MessageStatus": "failed"},
                                           outbox_id=None, now=NOW) is None
    assert rows()[0].status == DeliveryStatus.SENT


def test_status_callback_rescues_a_send_whose_answer_was_lost(world):
    """A crash right after the provider took the text: Twilio's callback names our row (?o=id)."""
    sms_consent(world)
    queue(world)
    with pytest.raises(Crash):
        messaging.deliver_due(now=NOW, backend=CrashAfterSend(ScriptedBackend()))
    db.session.rollback()
    [message] = rows()
    messaging.apply_status_callback({"MessageSid": "SM" + "9" * 32, "MessageStatus": "sent"},
                                    outbox_id=message.id, now=NOW)
    [message] = rows()
    assert (message.status, message.provider_sid) == (DeliveryStatus.SENT, "SM" + "9" * 32)
    assert messaging.deliver_due(now=NOW + LEASE).sent == 0  # nothing is sent again


# ---------------------------------------------------------------- the therapist's message


def manual(world, user=None, body="See you Thursday at 10.", request_id="0f0e0d0c-0b0a-4000-8000-000000000001",
           patient=None):
    return messaging.send_manual_message(Actor(user or world.therapist), (patient or world.patient).id,
                                         {"body": body, "request_id": request_id}, now=NOW)


def test_manual_message_goes_through_the_outbox(world):
    sms_consent(world)
    message = manual(world)
    assert (message.kind, message.status, message.body) == ("manual", "queued",
                                                            "Downtown: See you Thursday at 10.")
    assert message.created_by_id == world.therapist.id
    assert messaging.deliver_due(now=NOW).sent == 1
    audit = [e for e in rows(AuditEntry) if e.action == "queue_sms"]
    assert [(e.actor_id, e.patient_id) for e in audit] == [(world.therapist.id, world.patient.id)]


def test_a_form_submitted_twice_queues_one_text(world):
    sms_consent(world)
    manual(world)
    manual(world)
    assert count(OutboxMessage) == 1
    manual(world, request_id="0f0e0d0c-0b0a-4000-8000-000000000002")
    assert count(OutboxMessage) == 2


def test_manual_message_needs_sms_consent(world):
    with pytest.raises(ValidationFailed) as error:
        manual(world)
    assert "consent" in error.value.errors["body"][0]


def test_manual_message_refuses_clinical_detail(world):
    sms_consent(world)
    for body in ("About your M17.11 exercises", "How is the right knee OA?", "re m1711"):
        with pytest.raises(ValidationFailed) as error:
            manual(world, body=body)
        assert "not private" in error.value.errors["body"][0]
    assert count(OutboxMessage) == 0


@pytest.mark.parametrize("body", ["", "   ", "x" * 300])
def test_manual_message_body_is_checked(world, body):
    sms_consent(world)
    with pytest.raises(ValidationFailed):
        manual(world, body=body)


def test_assistant_may_send_billing_and_patients_may_not(world):
    sms_consent(world)
    manual(world, user=world.assistant)
    for user in (world.billing, world.patient_user, world.admin):
        with pytest.raises(Forbidden):
            manual(world, user=user, request_id="0f0e0d0c-0b0a-4000-8000-00000000000f")


def test_another_clinics_patient_is_not_found(world):
    sms_consent(world, world.other_patient)
    with pytest.raises(NotFound):
        manual(world, patient=world.other_patient)


def test_patients_sharing_a_number_get_their_own_texts(world):
    spouse = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Bo"), now=NOW)
    sms_consent(world)
    sms_consent(world, spouse)
    manual(world)
    manual(world, patient=spouse, request_id="0f0e0d0c-0b0a-4000-8000-000000000003")
    messaging.deliver_due(now=NOW)
    assert count(SmsLogEntry) == 2
