"""Headless Chromium through the RTM triage inbox and the RTM settings, against the app served for
real (CSRF on, file SQLite, the real clock). A monitored patient short of data days is at risk and
gets a one-click reminder; the admin changes a payer's RTM billing choices (after one refused
field) and lowers the clinic's no-check-in threshold, so that the alert job flags the patient's
two silent days, which the therapist then marks as seen. Every request stays on 127.0.0.1 and the
CSP blocks nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from telerehab.accounts.operations import Actor
from telerehab.careplans.models import PayerSettings
from telerehab.db_types import utc_now
from telerehab.extensions import db
from telerehab.messaging.models import OutboxMessage
from telerehab.monitoring import operations as monitoring
from telerehab.monitoring.models import MonitoringSettings, RtmAlert

from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import PASSWORD
from .test_monitoring_support import add_checkins

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser

# Seven data days in the first three weeks of the period, the last one three days ago.
CHECKIN_DAYS_AGO = (20, 18, 15, 12, 9, 6, 3)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "rtm-inbox-browser")
    with app.app_context():
        organisation, clinic, therapist, patient, episode = riverbend(consents=("rtm", "sms"), staff=("admin",))
        today = monitoring.local_today(patient.timezone, utc_now())
        start = today - timedelta(days=max(CHECKIN_DAYS_AGO))
        monitoring.enrol(Actor(therapist), episode.id, {
            "device_name": "telerehab app", "cost_sharing_notice_shown_at": utc_now(), "monitoring_start": start,
            "setup_date": start, "setup_minutes": 20, "setup_by_id": therapist.id}, now=utc_now())
        add_checkins(patient, episode, [today - timedelta(days=n) for n in CHECKIN_DAYS_AGO])
        # The alert job has run: two silent days are fewer than the default threshold of three.
        assert monitoring.raise_alerts(now=utc_now()).raised == 0
        ids = SimpleNamespace(patient=patient.id, clinic=clinic.id, organisation=organisation.id)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids, app=app)


def test_triage_flags_the_patient_and_a_lowered_threshold_raises_a_no_checkin_alert(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids

    # ---- the therapist's inbox: the patient is at risk of missing the data-day tier
    therapist = browser.new_context()
    page = therapist.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)
    page.get_by_role("banner").get_by_role("link", name="Monitoring").click()
    expect(page.get_by_role("heading", name="Monitoring triage")).to_be_visible()
    row = page.locator(f"#triage-{ids.patient}")
    expect(row.get_by_role("link", name="Ana Alvarez")).to_be_visible()
    expect(row.locator(".rtm-reasons")).to_contain_text("at risk")
    expect(row.locator(".rtm-reasons")).to_contain_text("more data days needed in")
    expect(row.locator(".rtm-alert")).to_have_count(0)
    row.get_by_role("button", name="Send reminder").click()
    expect(page.get_by_text("Reminder queued (one a day at most).")).to_be_visible()
    recorder.assert_offline_and_clean()

    # ---- the admin: commercial payers' RTM choices, then the clinic's alert thresholds
    admin = browser.new_context()
    admin_page = admin.new_page()
    admin_recorder = Recorder(admin_page)
    sign_in(admin_page, base, "admin", PASSWORD)
    admin_page.get_by_role("banner").get_by_role("link", name="Monitoring").click()
    expect(admin_page.get_by_role("heading", name="Remote monitoring settings")).to_be_visible()
    admin_page.select_option("select[name=payer_type]", "commercial")
    admin_page.get_by_role("button", name="Show").first.click()
    save_policy = admin_page.get_by_role("button", name="Save for commercial")
    expect(save_policy).to_be_visible()
    expect(admin_page.locator("#setup_min_days")).to_have_value("2")  # the recommended default
    admin_page.fill("#setup_min_days", "16")
    admin_page.select_option("#rpm_overlap", "allow")
    admin_page.get_by_label("Asynchronous messages count as interactive communication").check()
    admin_page.fill("#place_of_service", "2")
    save_policy.click()
    expect(admin_page.locator("#place_of_service-error")).to_be_visible()
    expect(admin_page.locator("#setup_min_days")).to_have_value("16")  # the rest of the form is kept
    expect(admin_page.locator("#rpm_overlap")).to_have_value("allow")
    expect(admin_page.get_by_label("Asynchronous messages count as interactive communication")).to_be_checked()
    admin_page.fill("#place_of_service", "02")
    admin_page.get_by_role("button", name="Save for commercial").click()
    expect(admin_page.get_by_text("RTM billing choices saved.")).to_be_visible()
    expect(admin_page.locator("#setup_min_days")).to_have_value("16")

    alerts = admin_page.locator("#rtm-alerts")
    expect(alerts.locator("#no_checkin_days")).to_have_value("3")
    alerts.locator("#no_checkin_days").fill("0")
    alerts.get_by_role("button", name="Save thresholds").click()
    expect(admin_page.locator("#no_checkin_days-error")).to_be_visible()
    admin_page.locator("#no_checkin_days").fill("2")
    admin_page.get_by_role("button", name="Save thresholds").click()
    expect(admin_page.get_by_text("Alert thresholds saved.")).to_be_visible()
    expect(admin_page.locator("#no_checkin_days")).to_have_value("2")
    admin_recorder.assert_offline_and_clean()
    admin.close()

    with live_server.app.app_context():
        commercial = db.session.scalar(select(PayerSettings).where(
            PayerSettings.organisation_id == ids.organisation, PayerSettings.payer_type == "commercial"))
        assert (commercial.rtm_setup_min_days, commercial.rtm_rpm_overlap, commercial.rtm_async_message_is_interactive,
                commercial.rtm_place_of_service) == (16, "allow", True, "02")
        medicare = db.session.scalar(select(PayerSettings).where(PayerSettings.payer_type == "medicare"))
        assert medicare is None or medicare.rtm_setup_min_days == 2  # another payer's choices are untouched
        settings = db.session.scalar(select(MonitoringSettings).where(MonitoringSettings.clinic_id == ids.clinic))
        assert settings.no_checkin_days == 2
        (reminder,) = db.session.scalars(select(OutboxMessage)).all()
        assert (reminder.kind, reminder.patient_id) == ("reminder", ids.patient)
        assert monitoring.raise_alerts(now=utc_now()).raised == 1  # the job, under the new threshold
        db.session.remove()

    # ---- the therapist sees the silence, and marks it seen
    page.reload()
    alert = page.locator(f"#triage-{ids.patient} .rtm-alert")
    expect(alert).to_have_count(1)
    expect(alert.locator(".badge")).to_have_text("no check-in")
    expect(alert).to_contain_text(": 2 days")
    alert.get_by_role("button", name="Seen").click()
    expect(page).to_have_url(f"{base}/rtm/triage")
    expect(page.locator(f"#triage-{ids.patient} .rtm-alert")).to_have_count(0)
    expect(page.locator(f"#triage-{ids.patient}")).to_contain_text("at risk")  # still short of data days
    recorder.assert_offline_and_clean()
    therapist.close()

    with live_server.app.app_context():
        (stored,) = db.session.scalars(select(RtmAlert)).all()
        assert stored.kind == "no_checkin" and stored.acknowledged_at is not None
        db.session.remove()
