"""Headless Chromium through the edit pages of a patient and of a plan of care, and the account
page, against the app served for real (CSRF on, file SQLite): each edit first refused on one field
(shown beside it, the rest kept), then saved and shown; a changed password ends the user's other
sessions and is the only one that signs in afterwards. Every request stays on 127.0.0.1 and the
CSP blocks nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from types import SimpleNamespace

import pytest

from telerehab.accounts.models import Patient
from telerehab.careplans.models import Episode
from telerehab.extensions import db

from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import PASSWORD

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "records-browser")
    with app.app_context():
        _, _, _, ana, episode = riverbend(staff=("assistant",))
        ids = SimpleNamespace(patient=ana.id, episode=episode.id)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids, app=app)


def test_the_therapist_edits_a_patient_and_their_plan_of_care(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)

    # ---- the patient's details: a phone number that is not one, then a good one
    page.goto(f"{base}/patients/{ids.patient}")
    page.get_by_role("button", name="Edit details").click()  # Pico: a link styled role="button"
    expect(page.get_by_role("heading", name="Edit Ana Alvarez")).to_be_visible()
    expect(page.locator("#phone")).to_have_value("+13125550101")  # the stored details, prefilled
    expect(page.locator("#date_of_birth")).to_have_value("1950-04-02")
    page.fill("#phone", "call me")
    page.fill("#preferred_language", "es")
    page.select_option("#payer_type", "commercial")
    page.fill("#payer_name", "Aetna")
    page.fill("#member_id", "W123456789")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#phone-error")).to_contain_text("international form")
    expect(page.locator("#phone")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#payer_name")).to_have_value("Aetna")
    expect(page.locator(".field-error")).to_have_count(1)
    page.fill("#phone", "+13125550199")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Ana Alvarez's details are saved.")).to_be_visible()
    expect(page).to_have_url(f"{base}/patients/{ids.patient}")
    facts = page.locator("dl.facts")
    expect(facts.first).to_contain_text("+13125550199")
    expect(facts.first).to_contain_text("es")
    expect(facts.nth(1)).to_contain_text("Aetna")
    expect(facts.nth(1)).to_contain_text("W123456789")

    # ---- the plan of care: a certification longer than 90 days, then a denser, shorter plan
    page.get_by_role("link", name="Right knee OA").click()
    page.get_by_role("button", name="Edit plan").click()
    expect(page.get_by_role("heading", name="Edit plan of care")).to_be_visible()
    expect(page.locator("#frequency_per_week")).to_have_value("2")
    expect(page.locator("#goals")).to_have_value("Climb 12 stairs with one rail")
    page.fill("#frequency_per_week", "3")
    page.fill("#duration_weeks", "6")
    page.fill("#goals", "Climb 12 stairs with one rail\nWalk 1 km without pain | 2026-04-10")
    page.fill("#certification_end", "2026-06-15")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#certification_end-error")).to_contain_text(
        "A certification covers at most 90 days from the first treatment: the last day can be 2026-05-30.")
    expect(page.locator("#frequency_per_week")).to_have_value("3")
    expect(page.locator("#goals")).to_have_value("Climb 12 stairs with one rail\nWalk 1 km without pain | 2026-04-10")
    page.fill("#certification_end", "2026-04-12")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("The plan of care “Right knee OA” is updated.")).to_be_visible()
    expect(page).to_have_url(f"{base}/episodes/{ids.episode}")
    expect(page.get_by_text("3 visits a week for 6 weeks")).to_be_visible()
    expect(page.locator("#certification")).to_contain_text("2026-03-02 to 2026-04-12")
    expect(page.locator("ol.goals")).to_contain_text("Walk 1 km without pain")
    recorder.assert_offline_and_clean()
    context.close()

    with live_server.app.app_context():
        patient = db.session.get(Patient, ids.patient)
        assert (patient.phone, patient.preferred_language, patient.payer_type, patient.payer_name,
                patient.first_name) == ("+13125550199", "es", "commercial", "Aetna", "Ana")
        episode = db.session.get(Episode, ids.episode)
        assert (episode.frequency_per_week, episode.duration_weeks, episode.certification_end) == (
            3, 6, date(2026, 4, 12))
        assert [(g.description, g.target_date) for g in episode.goals] == [
            ("Climb 12 stairs with one rail", None), ("Walk 1 km without pain", date(2026, 4, 10))]
        assert episode.diagnosis_codes == ["M17.11"]  # what the form did not change stays
        db.session.remove()


def test_a_changed_password_signs_out_other_sessions_and_is_the_one_that_works(live_server, browser):
    base, expect = live_server.url, sync_api.expect
    new_password = "a-longer-passphrase-2026"
    elsewhere = browser.new_context()  # the same user, signed in on another device
    other_device = elsewhere.new_page()
    sign_in(other_device, base, "assistant", PASSWORD)
    expect(other_device).to_have_url(f"{base}/patients")

    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "assistant", PASSWORD)
    page.get_by_role("banner").get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.fill("#current_password", PASSWORD)
    page.fill("#new_password", new_password)
    page.fill("#confirm_password", new_password + "x")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#confirm_password-error")).to_have_text("The two new passwords differ.")
    page.fill("#current_password", PASSWORD)
    page.fill("#new_password", new_password)
    page.fill("#confirm_password", new_password)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password is changed. Other sessions are signed out.")).to_be_visible()
    page.get_by_role("banner").get_by_role("link", name="Patients").click()  # this session goes on
    expect(page).to_have_url(f"{base}/patients")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, base, "assistant", PASSWORD)
    expect(page.get_by_text("Wrong username or password")).to_be_visible()
    sign_in(page, base, "assistant", new_password)
    expect(page).to_have_url(f"{base}/patients")
    recorder.assert_offline_and_clean()
    context.close()

    other_device.goto(f"{base}/patients")
    expect(other_device).to_have_url(re.compile(r"/login\?next="))
    elsewhere.close()
