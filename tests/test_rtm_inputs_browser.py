"""Headless Chromium on the RTM panel, against the app served for real (CSRF on, file SQLite, the
real clock): the therapist records an RPM period billed elsewhere (after an end before the start is
refused beside the field), and billing staff record the year's therapy amount (after an amount that
is not one), which passes the payer's KX threshold. Every request stays on 127.0.0.1 and the CSP
blocks nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from telerehab.accounts.operations import Actor
from telerehab.db_types import utc_now
from telerehab.extensions import db
from telerehab.monitoring import operations as monitoring
from telerehab.monitoring.models import RpmPeriod, TherapyAmount

from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import PASSWORD

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "rtm-inputs-browser")
    with app.app_context():
        _, _, therapist, patient, episode = riverbend(consents=("rtm",), staff=("billing",))
        today = monitoring.local_today(patient.timezone, utc_now())
        monitoring.enrol(Actor(therapist), episode.id, {
            "device_name": "telerehab app", "cost_sharing_notice_shown_at": utc_now(),
            "monitoring_start": today - timedelta(days=10)}, now=utc_now())
        ids = SimpleNamespace(patient=patient.id, episode=episode.id, today=today)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids, app=app)


def test_an_rpm_period_and_the_years_therapy_amount_recorded_on_the_panel(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    panel = f"{base}/episodes/{ids.episode}/rtm"
    start, end = ids.today - timedelta(days=5), ids.today + timedelta(days=24)

    # ---- the therapist: an RPM period, first with its end before its start
    therapist = browser.new_context()
    page = therapist.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)
    page.goto(panel)
    rpm = page.locator("#rtm-rpm")
    expect(rpm).to_contain_text("No RPM period recorded.")
    expect(rpm.locator(".rtm-rpm-effect")).to_contain_text("held for review")
    rpm.get_by_text("Record an RPM period").click()
    rpm.locator("#start_date").fill(start.isoformat())
    rpm.locator("#end_date").fill((start - timedelta(days=1)).isoformat())
    rpm.locator("#source").select_option("denial")
    rpm.get_by_label("Note").fill("Cardiology billed 99457")
    rpm.get_by_role("button", name="Record RPM period").click()
    expect(page.locator("#end_date-error")).to_have_text("The end is before the start.")
    expect(page.locator("#start_date")).to_have_value(start.isoformat())  # the form is kept
    expect(page.locator("#rpm_note")).to_have_value("Cardiology billed 99457")
    page.locator("#end_date").fill(end.isoformat())
    page.get_by_role("button", name="Record RPM period").click()
    expect(page.get_by_text(f"RPM period {start.isoformat()} to {end.isoformat()} recorded.")).to_be_visible()
    row = page.locator("#rtm-rpm tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Claim denial")
    expect(row).to_contain_text("Cardiology billed 99457")
    recorder.assert_offline_and_clean()
    therapist.close()

    # ---- billing staff: the year's amount, first one that is not an amount
    billing = browser.new_context()
    page = billing.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "billing", PASSWORD)
    page.goto(panel)
    expect(page.get_by_role("button", name="Record RPM period")).to_have_count(0)  # the PT's to record
    expect(page.locator("#rtm-rpm tbody tr")).to_have_count(1)
    amount = page.locator("#rtm-therapy-amount")
    expect(amount.locator(".rtm-kx-threshold")).to_have_text("$2,480.00")
    expect(amount.locator("#as_of")).to_have_value(ids.today.isoformat())
    amount.locator("#amount").fill("2.410,00")
    amount.get_by_role("button", name="Save the amount").click()
    expect(page.locator("#amount-error")).to_have_text("Give the amount in dollars and cents, for example 2,410.00.")
    expect(page.locator("#amount")).to_have_value("2.410,00")
    page.locator("#amount").fill("2,510.00")
    page.get_by_role("button", name="Save the amount").click()
    expect(page.get_by_text(f"Therapy amount for {ids.today.year} recorded: $2,510.00 as of "
                            f"{ids.today.isoformat()}.")).to_be_visible()
    year_row = page.locator(f"#therapy-amount-{ids.today.year}")
    expect(year_row).to_contain_text("$2,510.00")
    expect(year_row.locator(".badge")).to_have_text("passed: KX")
    recorder.assert_offline_and_clean()
    billing.close()

    with live_server.app.app_context():
        (period,) = db.session.scalars(select(RpmPeriod)).all()
        assert (period.patient_id, period.start_date, period.end_date, period.source) == (ids.patient, start, end,
                                                                                          "denial")
        (stored,) = db.session.scalars(select(TherapyAmount)).all()
        assert (stored.patient_id, stored.year, stored.amount_cents) == (ids.patient, ids.today.year, 251_000)
        db.session.remove()
