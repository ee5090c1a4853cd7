"""Headless Chromium: a therapist opens the RTM panel, sees the period strip, starts the timer (the
elapsed time ticks in the page), stops it into an entry, and logs minutes by hand. Served for real
(CSRF on, file SQLite, the real clock); every request stays on 127.0.0.1 and the CSP blocks nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from telerehab.accounts.operations import Actor
from telerehab.db_types import utc_now
from telerehab.extensions import db
from telerehab.monitoring import operations as monitoring
from telerehab.monitoring.models import ManagementTimeEntry

from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import PASSWORD
from .test_monitoring_support import add_checkins, days_from

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "rtm-browser")
    with app.app_context():
        _, _, therapist, patient, episode = riverbend(consents=("rtm",))
        today = monitoring.local_today(patient.timezone, utc_now())
        start = today - timedelta(days=6)
        monitoring.enrol(Actor(therapist), episode.id, {
            "device_name": "telerehab app", "cost_sharing_notice_shown_at": utc_now(), "monitoring_start": start,
            "setup_date": start, "setup_minutes": 20, "setup_by_id": therapist.id}, now=utc_now())
        add_checkins(patient, episode, days_from(start, 3))
        ids = SimpleNamespace(episode=episode.id)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids, app=app)


def test_the_therapist_times_and_logs_minutes_on_the_panel(live_server, browser):
    base, expect = live_server.url, sync_api.expect
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)
    page.goto(f"{base}/episodes/{live_server.ids.episode}/rtm")
    expect(page.get_by_role("heading", name="Remote therapeutic monitoring")).to_be_visible()
    expect(page.locator(".rtm-timeline .rtm-day")).to_have_count(30)
    expect(page.locator(".rtm-timeline .rtm-day-data")).to_have_count(3)

    page.locator("#timer-start").click()
    elapsed = page.locator(".rtm-elapsed")
    expect(elapsed).to_have_text(re.compile(r"^0:\d\d$"))
    first = elapsed.text_content()
    page.wait_for_timeout(2100)
    assert elapsed.text_content() != first, "the timer does not tick"
    page.select_option("#rtm-timer select[name=activity]", "call")
    page.select_option("#rtm-timer select[name=channel]", "phone")
    page.check("#rtm-timer input[name=interactive]")
    page.locator("#timer-stop").click()
    expect(page.get_by_text("1 minutes logged from the timer.")).to_be_visible()

    page.get_by_text("Log minutes by hand").click()
    page.fill("#rtm-time-entry #minutes", "9")
    page.get_by_role("button", name="Log minutes").click()
    expect(page.get_by_text("Minutes logged.")).to_be_visible()
    expect(page.locator(".rtm-total strong")).to_have_text("10")
    expect(page.get_by_text("Interactive communication done")).to_be_visible()
    recorder.assert_offline_and_clean()
    with live_server.app.app_context():
        assert db.session.scalar(select(func.sum(ManagementTimeEntry.minutes))) == 10
