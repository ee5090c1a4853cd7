"""Headless Chromium through the administration pages, against the app served for real (CSRF on,
file SQLite): the admin adds a user (after one refused field) and deactivates another, whose open
session ends at once; adds a clinic; sets a clinic's scheduling rules and a closure, a therapist's
working hours and which payers want modifier 95. Every request stays on 127.0.0.1 and the CSP
blocks nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, time
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import Clinic, User
from telerehab.accounts.operations import SYSTEM
from telerehab.careplans.models import CareSettings, ClinicClosure, PayerSettings, WorkingHours
from telerehab.extensions import db

from .browser_support import Recorder, browser_app, playwright_or_skip, served, sign_in
from .conftest import NOW, PASSWORD, clinic_data, make_user

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "admin-browser")
    with app.app_context():
        organisation = accounts.create_organisation("Riverbend")
        clinic = accounts.create_clinic(SYSTEM, clinic_data(organisation.id, "Downtown"), now=NOW)
        make_user(organisation.id, "admin", "admin", None)
        therapist = make_user(organisation.id, "therapist", "therapist", clinic.id)
        leaving = make_user(organisation.id, "leaving", "assistant", clinic.id, full_name="Lee Leaving")
        ids = SimpleNamespace(clinic=clinic.id, therapist=therapist.id, leaving=leaving.id)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids, app=app)


def test_the_admin_adds_a_user_and_deactivates_another_whose_session_ends(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    # The assistant who is about to leave is signed in elsewhere.
    elsewhere = browser.new_context()
    leaver_page = elsewhere.new_page()
    sign_in(leaver_page, base, "leaving", PASSWORD)
    expect(leaver_page).to_have_url(f"{base}/patients")

    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "admin", PASSWORD)
    expect(page).to_have_url(f"{base}/admin/users")  # the admin's home
    expect(page.get_by_role("heading", name="Users")).to_be_visible()

    # ---- a therapist without an NPI is refused, the field named; the rest of the form is kept
    page.get_by_role("button", name="Add a user").click()  # Pico: a link styled role="button"
    page.fill("#full_name", "Pat Rivera")
    page.fill("#username", "privera")
    page.select_option("#role", "therapist")
    page.select_option("#clinic_id", str(ids.clinic))
    page.fill("#password", "temporary-pass-4821")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator("#npi-error")).to_have_text("A therapist needs an NPI.")
    expect(page.locator("#npi")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#full_name")).to_have_value("Pat Rivera")
    expect(page.locator("#clinic_id")).to_have_value(str(ids.clinic))
    page.fill("#npi", "1245319599")
    page.fill("#password", "temporary-pass-4821")  # a password is never re-shown
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_text("Pat Rivera can now sign in as privera")).to_be_visible()
    new_row = page.locator("table.users tr", has_text="Pat Rivera")
    expect(new_row).to_contain_text("Physical therapist (PT)")
    expect(new_row).to_contain_text("Downtown")
    expect(new_row.locator(".badge")).to_have_text("Active")

    # ---- deactivate the assistant: the row says so, and their open session is over
    row = page.locator(f"#user-{ids.leaving}")
    row.get_by_role("button", name="Deactivate").click()
    expect(page.get_by_text("Lee Leaving is deactivated and signed out everywhere.")).to_be_visible()
    expect(page.locator(f"#user-{ids.leaving} .badge")).to_have_text("Deactivated")
    expect(page.locator(f"#user-{ids.leaving}").get_by_role("button", name="Reactivate")).to_be_visible()
    expect(page.locator("tr", has_text="Admin")).to_contain_text("You")  # no button to deactivate oneself
    recorder.assert_offline_and_clean()
    context.close()

    leaver_page.goto(f"{base}/patients")
    expect(leaver_page).to_have_url(re.compile(r"/login\?next="))
    sign_in(leaver_page, base, "leaving", PASSWORD)
    expect(leaver_page.get_by_text("Wrong username or password, or the account is inactive.")).to_be_visible()
    elsewhere.close()

    # ---- the new therapist signs in with the temporary password
    fresh = browser.new_context()
    page = fresh.new_page()
    sign_in(page, base, "privera", "temporary-pass-4821")
    expect(page).to_have_url(f"{base}/patients")
    fresh.close()

    with live_server.app.app_context():
        added = db.session.scalar(select(User).where(User.username == "privera"))
        assert (added.role, added.clinic_id, added.npi, added.is_active_account) == (
            "therapist", ids.clinic, "1245319599", True)
        assert db.session.get(User, ids.leaving).is_active_account is False
        db.session.remove()


def test_the_admin_adds_a_clinic_and_sets_its_rules_closures_and_payers(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "admin", PASSWORD)

    # ---- a new clinic, first with a timezone that does not exist
    page.get_by_role("banner").get_by_role("link", name="Clinics").click()
    expect(page.get_by_role("heading", name="Clinics")).to_be_visible()
    page.fill("#name", "Northside")
    page.fill("#timezone", "Mars/Olympus")
    page.fill("#address_line1", "9 Lake Rd")
    page.fill("#city", "Evanston")
    page.fill("#state", "IL")
    page.fill("#postal_code", "60201")
    page.fill("#npi", "1234567893")
    page.fill("#tin", "98-7654321")
    page.get_by_role("button", name="Add clinic").click()
    expect(page.locator("#timezone-error")).to_be_visible()
    expect(page.locator("#name")).to_have_value("Northside")
    page.fill("#timezone", "America/Denver")
    page.get_by_role("button", name="Add clinic").click()
    expect(page.get_by_text("Northside is added.")).to_be_visible()
    row = page.locator("table.clinics tr", has_text="Northside")
    expect(row).to_contain_text("9 Lake Rd, Evanston, IL 60201")
    expect(row).to_contain_text("America/Denver")
    expect(row).to_contain_text("98-7654321")

    # ---- Downtown's scheduling rules: a progress interval Medicare would refuse, then a good one
    page.locator("table.clinics tr", has_text="Downtown").get_by_role("link", name="Scheduling rules").click()
    expect(page.get_by_role("heading", name="Scheduling rules")).to_be_visible()
    expect(page.locator("#visit_minutes")).to_have_value("45")  # the defaults before any change
    expect(page.get_by_label("Progress visits")).to_be_checked()
    page.get_by_label("Progress visits").uncheck()
    page.fill("#progress_every_treatment_visits", "12")
    page.fill("#visit_minutes", "60")
    page.get_by_role("button", name="Save the rules").click()
    expect(page.locator("#progress_every_treatment_visits-error")).to_contain_text("at least every 10 treatment days")
    expect(page.get_by_label("Progress visits")).not_to_be_checked()  # the choices are kept
    expect(page.locator("#visit_minutes")).to_have_value("60")
    page.fill("#progress_every_treatment_visits", "8")
    page.get_by_role("button", name="Save the rules").click()
    expect(page.get_by_text("The scheduling rules are saved.")).to_be_visible()
    expect(page.locator("#progress_every_treatment_visits")).to_have_value("8")
    expect(page.get_by_label("Progress visits")).not_to_be_checked()

    page.fill("#day", "2026-12-25")
    page.fill("#reason", "Christmas Day")
    page.get_by_role("button", name="Add the closure").click()
    expect(page.get_by_text("The clinic is closed on 2026-12-25.")).to_be_visible()
    expect(page.locator("#closures table")).to_contain_text("Fri 25 Dec 2026")
    expect(page.locator("#closures table")).to_contain_text("Christmas Day")

    # ---- payer settings: commercial payers want no modifier 95 on telehealth lines
    page.get_by_role("link", name="Clinics").first.click()  # the breadcrumb back
    page.get_by_role("button", name="Payer settings").click()
    expect(page.get_by_role("heading", name="Payer settings")).to_be_visible()
    commercial = page.get_by_label("Commercial")
    expect(commercial).to_be_checked()  # every payer wants it until told otherwise
    commercial.uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("The payer settings are saved.")).to_be_visible()
    expect(page.get_by_label("Commercial")).not_to_be_checked()
    expect(page.get_by_label("Medicare", exact=True)).to_be_checked()
    recorder.assert_offline_and_clean()
    context.close()

    with live_server.app.app_context():
        northside = db.session.scalar(select(Clinic).where(Clinic.name == "Northside"))
        assert (northside.timezone, northside.tin, northside.state) == ("America/Denver", "987654321", "IL")
        rules = db.session.scalar(select(CareSettings).where(CareSettings.clinic_id == ids.clinic))
        assert (rules.progress_every_treatment_visits, rules.visit_minutes, rules.progress_in_clinic,
                rules.initial_evaluation_in_clinic) == (8, 60, False, True)
        closure = db.session.scalar(select(ClinicClosure))
        assert (closure.clinic_id, closure.day, closure.reason) == (ids.clinic, date(2026, 12, 25), "Christmas Day")
        modifier_95 = dict(db.session.execute(select(PayerSettings.payer_type, PayerSettings.telehealth_modifier_95)).all())
        assert modifier_95["commercial"] is False and modifier_95["medicare"] is True
        db.session.remove()


def test_the_admin_sets_a_therapists_working_hours(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "admin", PASSWORD)
    page.locator(f"#user-{ids.therapist}").get_by_role("link", name="Working hours").click()
    expect(page.get_by_role("heading", name="Working hours")).to_be_visible()
    expect(page.get_by_text("No hours are recorded yet")).to_be_visible()
    expect(page.locator("input[name=start_0_0]")).to_have_value("08:00")  # the assumed week, prefilled

    # ---- a split Monday whose two halves overlap is refused, the day named
    page.fill("input[name=end_0_0]", "12:30")
    page.fill("input[name=start_0_1]", "12:00")
    page.fill("input[name=end_0_1]", "16:30")
    page.fill("input[name=start_4_0]", "")  # Fridays off
    page.fill("input[name=end_4_0]", "")
    page.get_by_role("button", name="Save the hours").click()
    expect(page.locator("#hours-error")).to_have_text("Monday: two intervals overlap.")
    expect(page.locator("input[name=start_0_1]")).to_have_value("12:00")
    page.fill("input[name=start_0_1]", "13:30")
    page.get_by_role("button", name="Save the hours").click()
    expect(page.get_by_text("The working hours are saved.")).to_be_visible()
    expect(page.get_by_text("No hours are recorded yet")).to_have_count(0)
    expect(page.locator("input[name=start_0_1]")).to_have_value("13:30")
    expect(page.locator("input[name=start_4_0]")).to_have_value("")
    recorder.assert_offline_and_clean()
    context.close()

    with live_server.app.app_context():
        rows = db.session.scalars(select(WorkingHours).where(WorkingHours.user_id == ids.therapist)).all()
        week = sorted((r.weekday, r.starts, r.ends) for r in rows)
        assert week == [(0, time(8), time(12, 30)), (0, time(13, 30), time(16, 30)),
                        *[(day, time(8), time(18)) for day in (1, 2, 3)]]
        db.session.remove()
