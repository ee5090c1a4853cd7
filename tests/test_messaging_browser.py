"""Headless Chromium through the text-message pages, against the app served for real (CSRF on,
file SQLite, the real clock): the therapist finds a patient's question in the clinic inbox, opens
the patient's texts, marks it read and answers by hand (after a refusal for naming the plan of
care); the answer waits in the outbox and the delivery job hands it to the log backend, after
which the page shows it sent. Every request stays on 127.0.0.1 and the CSP blocks nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from telerehab.accounts.operations import Actor
from telerehab.extensions import db
from telerehab.messaging import operations as messaging
from telerehab.messaging.models import InboundMessage, OutboxMessage, SmsLogEntry

from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import NOW, PASSWORD

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser

QUESTION = "Is my visit at 10 or 11?"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "messaging-browser")
    with app.app_context():
        ana = riverbend(consents=("sms",)).patient
        messaging.receive_sms(Actor(None, "127.0.0.1"), {
            "MessageSid": "SM" + uuid.uuid4().hex, "From": ana.phone, "To": "+13125550000", "Body": QUESTION},
            now=NOW)
        ids = SimpleNamespace(patient=ana.id)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids, app=app)


def test_the_therapist_reads_a_text_and_answers_it_through_the_outbox(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)

    # ---- the clinic inbox holds the question the system could not answer itself
    page.get_by_role("banner").get_by_role("link", name="Messages").click()
    expect(page.get_by_role("heading", name="Text messages")).to_be_visible()
    row = page.locator("table.sms-inbox tbody tr", has_text=QUESTION)
    expect(row).to_contain_text("Not understood")
    row.get_by_role("link", name="Ana Alvarez").click()
    expect(page).to_have_url(f"{base}/patients/{ids.patient}/messages")
    expect(page.locator("#incoming")).to_contain_text(QUESTION)
    page.locator("#incoming").get_by_role("button", name="Mark as read").click()
    expect(page).to_have_url(f"{base}/patients/{ids.patient}/messages#incoming")
    expect(page.locator("#incoming").get_by_role("button", name="Mark as read")).to_have_count(0)

    # ---- an answer that names the plan of care is refused: texts are not private
    page.fill("#body", "Hi Ana, about your right knee OA: the visit is at 10.")
    page.get_by_role("button", name="Queue the text").click()
    expect(page.locator("#body-error")).to_be_visible()
    expect(page.locator("#body")).to_have_value("Hi Ana, about your right knee OA: the visit is at 10.")
    expect(page.locator("#outgoing")).to_contain_text("No texts sent to this patient yet.")
    page.fill("#body", "Hi Ana, your visit is at 10:00. See you then!")
    page.get_by_role("button", name="Queue the text").click()
    expect(page.get_by_text("The message is queued")).to_be_visible()
    outgoing = page.locator("#outgoing tbody tr")
    expect(outgoing).to_have_count(1)
    expect(outgoing).to_contain_text("Downtown: Hi Ana, your visit is at 10:00. See you then!")
    expect(outgoing).to_contain_text("by Therapist")
    expect(outgoing.locator(".badge")).to_have_text("Queued")

    # ---- the delivery job sends it when it is due (the patient's quiet hours may hold it)
    with live_server.app.app_context():
        (queued,) = db.session.scalars(select(OutboxMessage)).all()
        assert (queued.kind, queued.status, queued.patient_id) == ("manual", "queued", ids.patient)
        run = messaging.deliver_due(now=queued.next_attempt_at)
        assert run.sent == 1
        (logged,) = db.session.scalars(select(SmsLogEntry)).all()
        assert (logged.to_phone, logged.body) == ("+13125550101", "Downtown: Hi Ana, your visit is at 10:00. See you then!")
        assert db.session.scalar(select(InboundMessage.read_at)) is not None
        db.session.remove()
    page.reload()
    expect(page.locator("#outgoing tbody tr .badge")).to_have_text("Sent")

    # ---- the inbox is empty now, and the question is still under "Show all"
    page.get_by_role("button", name="Clinic inbox").click()
    expect(page.get_by_text("No unread texts.")).to_be_visible()
    page.get_by_role("button", name="Show all").click()
    expect(page.locator("table.sms-inbox tbody tr", has_text=QUESTION)).to_contain_text("by Therapist")
    recorder.assert_offline_and_clean()
    context.close()
