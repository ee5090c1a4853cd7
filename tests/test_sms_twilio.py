"""The real `twilio` client, pointed at local servers through TWILIO_BASE_URL:

(a) Prism serving Twilio's own OpenAPI document (../shared/vendor-specs/twilio/twilio_api_v2010.json):
    our requests are valid against the contract and we read its answers;
(b) a small fake of our own that fails on demand: success, 429 and 5xx retried with backoff,
    timeouts, permanent 4xx recorded as failed, and no duplicate send after a crash between the
    provider taking the message and our commit.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from telerehab.extensions import db
from telerehab.messaging import operations as messaging
from telerehab.messaging.backends import OutgoingSms, ProviderError, TwilioBackend, backend_from_config
from telerehab.messaging.rules import DeliveryStatus, Outcome

from .conftest import NOW, SHARED
from .test_messaging_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    Crash,
    CrashAfterSend,
    CrashBeforeSend,
    FakeTwilio,
    rows,
    sms_consent,
)

NO_JITTER = lambda: 0.0  # noqa: E731
REPO = Path(__file__).resolve().parents[1]
SPEC = SHARED / "vendor-specs" / "twilio" / "twilio_api_v2010.json"
TIMEOUT = 0.5


@pytest.fixture
def fake():
    server = FakeTwilio(delay_seconds=TIMEOUT * 3).start()
    server.clock = lambda: NOW
    yield server
    server.stop()


@pytest.fixture
def twilio(app, monkeypatch, fake):
    for key, value in {
        "SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_BASE_URL": fake.url, "TWILIO_TIMEOUT_SECONDS": TIMEOUT,
        "PUBLIC_BASE_URL": "https://clinic.example",
    }.items():
        monkeypatch.setitem(app.config, key, value)
    return fake


def queue(world, key="test:1", body="Downtown: see you Thursday"):
    sms_consent(world)
    message = messaging.enqueue_sms(world.patient, kind="manual", body=body, idempotency_key=key, now=NOW)
    db.session.commit()
    return message


def deliver(at=NOW, **kwargs):
    return messaging.deliver_due(now=at, rand=NO_JITTER, **kwargs)


# ---------------------------------------------------------------- (b) the fake that fails on demand


def test_success(twilio, world):
    message = queue(world)
    assert deliver().sent == 1
    [post] = twilio.posts
    assert post == {"To": "+13125550101", "From": FROM_NUMBER, "Body": "Downtown: see you Thursday",
                    "StatusCallback": f"https://clinic.example/twilio/sms/status?o={message.id}"}
    [row] = rows()
    assert (row.status, row.provider_sid, row.provider_status) == ("sent", twilio.messages[0]["sid"], "queued")


def test_429_is_retried_with_backoff(twilio, world):
    queue(world)
    twilio.fail_next = ["429", "429"]
    assert deliver().retried == 1
    [row] = rows()
    assert (row.status, row.attempts, row.next_attempt_at) == ("queued", 1, NOW + timedelta(seconds=30))
    assert "HTTP 429" in row.last_error and "20429" in row.last_error
    assert deliver(NOW + timedelta(seconds=29)).retried == 0  # not before its time
    assert deliver(NOW + timedelta(seconds=30)).retried == 1
    assert rows()[0].next_attempt_at == NOW + timedelta(seconds=90)  # 30 s later, then 60 s
    assert deliver(NOW + timedelta(seconds=90)).sent == 1
    assert len(twilio.posts) == 3 and len(twilio.messages) == 1
    assert twilio.gets == []  # a 429 is a certain "not sent": nothing to look up


def test_500_is_checked_with_the_provider_then_retried(twilio, world):
    queue(world)
    twilio.fail_next = ["500"]
    assert deliver().uncertain == 1
    [row] = rows()
    assert (row.status, row.next_attempt_at) == ("sending", NOW + timedelta(seconds=30))
    assert deliver(NOW + timedelta(seconds=30)).sent == 1
    assert len(twilio.gets) == 1 and twilio.gets[0]["To"] == "+13125550101"
    assert len(twilio.posts) == 2 and len(twilio.messages) == 1
    assert rows()[0].status == DeliveryStatus.SENT


def test_a_gateway_error_after_the_provider_took_it_does_not_double_send(twilio, world):
    queue(world)
    twilio.fail_next = ["503-created"]
    deliver()
    run = deliver(NOW + timedelta(seconds=30))
    assert run.recovered == 1 and run.sent == 0
    assert len(twilio.posts) == 1 and len(twilio.messages) == 1
    [row] = rows()
    assert (row.status, row.provider_sid, row.attempts) == ("sent", twilio.messages[0]["sid"], 1)


def test_a_timeout_with_nothing_sent_is_sent_once_later(twilio, world):
    queue(world)
    twilio.fail_next = ["timeout"]
    assert deliver().uncertain == 1
    assert "in time" in rows()[0].last_error
    assert deliver(NOW + timedelta(seconds=30)).sent == 1
    assert len(twilio.messages) == 1


def test_a_timeout_after_the_provider_took_it_is_not_sent_again(twilio, world):
    queue(world)
    twilio.fail_next = ["timeout-created"]
    assert deliver().uncertain == 1
    assert deliver(NOW + timedelta(seconds=30)).recovered == 1
    assert len(twilio.posts) == 1 and len(twilio.messages) == 1


def test_permanent_400_is_recorded_as_failed(twilio, world):
    queue(world)
    twilio.fail_next = ["400"]
    assert deliver().failed == 1
    [row] = rows()
    assert row.status == DeliveryStatus.FAILED and "21211" in row.last_error
    assert deliver(NOW + timedelta(days=1)).failed == 0
    assert len(twilio.posts) == 1


def test_a_crash_between_send_and_commit_does_not_double_send(app, twilio, world):
    queue(world)
    with pytest.raises(Crash):
        deliver(backend=CrashAfterSend(backend_from_config(app.config)))
    db.session.rollback()
    assert rows()[0].status == DeliveryStatus.SENDING and len(twilio.messages) == 1
    assert deliver(NOW + timedelta(seconds=119)).recovered == 0  # the attempt might still be in flight
    run = deliver(NOW + timedelta(seconds=120))
    assert (run.recovered, run.sent) == (1, 0)
    assert len(twilio.posts) == 1 and len(twilio.messages) == 1
    assert rows()[0].provider_sid == twilio.messages[0]["sid"]


def test_a_crash_before_the_provider_heard_of_it_sends_once(app, twilio, world):
    queue(world)
    with pytest.raises(Crash):
        deliver(backend=CrashBeforeSend(backend_from_config(app.config)))
    db.session.rollback()
    assert deliver(NOW + timedelta(seconds=120)).sent == 1
    assert len(twilio.messages) == 1


def test_the_lookup_ignores_older_copies_and_other_rows_copies(app, twilio, world):
    """Yesterday's identical reminder, and a copy another row already owns, are not ours."""
    queue(world, key="test:today", body="Downtown: same words")
    twilio.clock = lambda: NOW - timedelta(days=1)
    twilio._create({"To": "+13125550101", "From": FROM_NUMBER, "Body": "Downtown: same words"})
    twilio.clock = lambda: NOW
    with pytest.raises(Crash):
        deliver(backend=CrashBeforeSend(backend_from_config(app.config)))
    db.session.rollback()
    assert deliver(NOW + timedelta(seconds=120)).sent == 1
    assert len(twilio.messages) == 2
    # Another row whose copy would match in every other way:
    owner = twilio.messages[-1]["sid"]
    messaging.enqueue_sms(world.patient, kind="manual", body="Downtown: same words", idempotency_key="test:again",
                          now=NOW)
    db.session.commit()
    with pytest.raises(Crash):
        deliver(backend=CrashBeforeSend(backend_from_config(app.config)))
    db.session.rollback()
    assert deliver(NOW + timedelta(seconds=240)).sent == 1
    assert len(twilio.messages) == 3
    assert rows()[0].provider_sid == owner and rows()[1].provider_sid != owner


def test_connection_refused_is_a_plain_retry(app, monkeypatch, twilio, world):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setitem(app.config, "TWILIO_BASE_URL", f"http://127.0.0.1:{closed_port}")
    queue(world)
    assert deliver().retried == 1
    assert rows()[0].status == DeliveryStatus.QUEUED  # never reached Twilio: nothing to look up


def test_backend_needs_its_settings(app, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_BACKEND", "twilio")
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", None)
    with pytest.raises(RuntimeError, match="TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER"):
        backend_from_config(app.config)
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setitem(app.config, "TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setitem(app.config, "TWILIO_FROM_NUMBER", FROM_NUMBER)
    monkeypatch.setitem(app.config, "TWILIO_TIMEOUT_SECONDS", 60)
    with pytest.raises(RuntimeError, match="at least 3 x TWILIO_TIMEOUT_SECONDS"):
        backend_from_config(app.config)
    monkeypatch.setitem(app.config, "SMS_BACKEND", "pigeon")
    with pytest.raises(RuntimeError, match="log, twilio"):
        backend_from_config(app.config)


def test_the_twilio_client_does_not_log_patient_numbers(caplog, twilio, world):
    """At INFO, the level the processes log at, the Twilio library would log each request's URL and
    query (the patient's number, in a look-up); its logger is kept quiet."""
    queue(world)
    twilio.fail_next = ["500"]
    with caplog.at_level("INFO"):
        deliver()
        deliver(NOW + timedelta(seconds=30))
    assert "+13125550101" not in caplog.text and "5550101" not in caplog.text


# ---------------------------------------------------------------- (a) Prism on Twilio's OpenAPI document


def _prism_command() -> list[str] | None:
    local = REPO / "node_modules" / ".bin" / "prism"
    if local.exists():
        return [str(local)]
    found = shutil.which("prism")
    return [found] if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def prism():
    if not SPEC.exists():
        pytest.skip(f"Twilio's OpenAPI document is not at {SPEC} (../shared is absent): Prism tests skipped")
    command = _prism_command()
    if command is None:
        pytest.skip("Prism is not installed (run `npm ci` at the repository root): Prism tests skipped")
    port = _free_port()
    process = subprocess.Popen([*command, "mock", "-h", "127.0.0.1", "-p", str(port), str(SPEC)],  # noqa: S603
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Prism exited: {process.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.25)
    else:
        process.kill()
        pytest.fail("Prism did not start listening within 120 s")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def prism_backend(url: str) -> TwilioBackend:
    return TwilioBackend(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_phone=FROM_NUMBER, base_url=url,
                         timeout_seconds=10)


def outgoing(**overrides) -> OutgoingSms:
    return OutgoingSms(**{"idempotency_key": "test:prism", "to_phone": "+13125550101", "body": "Downtown: hello",
                          "attempt_at": NOW, "first_attempt_at": NOW,
                          "status_callback": "https://clinic.example/twilio/sms/status?o=1", **overrides})


def test_prism_accepts_our_send_request(prism):
    """Prism validates the request against Twilio's contract (path, basic auth, form fields) and
    answers with the document's example, which the client reads."""
    sent = prism_backend(prism).send(outgoing())
    assert sent.sid.startswith("SM") and len(sent.sid) == 34
    assert sent.status == "queued"


def test_prism_accepts_our_lookup_request(prism):
    """The message list call is valid too; the example's messages are not ours (other body)."""
    assert prism_backend(prism).find_sent(outgoing()) is None


def test_prism_example_is_found_when_it_is_ours(prism):
    example = prism_backend(prism).client.messages.list(to="+13125550101", limit=1)[0]
    found = prism_backend(prism).find_sent(outgoing(body=example.body, first_attempt_at=example.date_created))
    assert found is not None and found.sid == example.sid


def test_prism_refuses_an_invalid_request_and_it_is_a_permanent_failure(prism):
    """A request the contract refuses (a 4xx) is recorded as failed, never retried."""
    backend = prism_backend(prism)
    backend.client.api.base_url = prism + "/not-twilio"
    with pytest.raises(ProviderError) as error:
        backend.send(outgoing())
    assert error.value.outcome == Outcome.FAILED


def test_delivery_through_prism(app, monkeypatch, prism, world):
    for key, value in {"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                       "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_BASE_URL": prism,
                       "PUBLIC_BASE_URL": "https://clinic.example"}.items():
        monkeypatch.setitem(app.config, key, value)
    queue(world)
    assert deliver().sent == 1
    [row] = rows()
    assert row.status == DeliveryStatus.SENT and row.provider_sid.startswith("SM")
