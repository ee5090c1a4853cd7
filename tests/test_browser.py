"""Headless Chromium against the app served for real (CSRF on, file SQLite), through the pages.

A therapist signs in, registers a patient and a plan of care (each after one refused field),
finds them on the patient list, gives the patient portal access and signs out; the patient signs
in on a phone-sized screen and sees only their own plan. Every request stays on 127.0.0.1 and the
content security policy blocks nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import SYSTEM, Actor
from telerehab.careplans import operations as careplans
from telerehab.extensions import db

from .browser_support import Recorder, browser_app, playwright_or_skip, served, sign_in
from .conftest import NOW, PASSWORD, clinic_data, episode_data, make_user, patient_data

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The app on a free port of 127.0.0.1, with CSRF enforced, over a file SQLite database."""
    app = browser_app(tmp_path_factory, "browser")
    with app.app_context():
        organisation = accounts.create_organisation("Riverbend")
        clinic = accounts.create_clinic(SYSTEM, clinic_data(organisation.id, "Downtown"), now=NOW)
        other_clinic = accounts.create_clinic(
            SYSTEM, clinic_data(organisation.id, "Eastside", timezone="America/New_York"), now=NOW)
        therapist = make_user(organisation.id, "therapist", "therapist", clinic.id)
        east_therapist = make_user(organisation.id, "eastpt", "therapist", other_clinic.id)
        # Someone else's patients: one in the therapist's own clinic, one in the other clinic.
        ana = accounts.create_patient(Actor(therapist), patient_data(primary_therapist_id=therapist.id), now=NOW)
        careplans.create_episode(Actor(therapist), ana.id, episode_data(title="Ana's knee plan"), now=NOW)
        ben = accounts.create_patient(Actor(east_therapist), patient_data(first_name="Ben", last_name="Brooks"),
                                      now=NOW)
        ids = SimpleNamespace(ana=ana.id, ben=ben.id)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids, app=app)


def test_therapist_registers_a_patient_and_plan_then_the_patient_sees_only_their_plan(live_server, browser):
    base, expect = live_server.url, sync_api.expect
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)

    # ---- the therapist signs in and lands on their patient list
    sign_in(page, base, "therapist", PASSWORD)
    expect(page).to_have_url(f"{base}/patients")
    expect(page.get_by_role("heading", name="My patients")).to_be_visible()
    expect(page.get_by_text("Alvarez, Ana")).to_be_visible()

    # ---- a new patient: first with a wrong phone number, shown beside the field
    page.get_by_role("button", name="New patient").click()  # Pico: a link styled role="button"
    expect(page.get_by_role("heading", name="New patient")).to_be_visible()
    page.fill("#first_name", "Zoe")
    page.fill("#last_name", "Quinn")
    page.fill("#date_of_birth", "1955-06-15")
    page.select_option("#sex", "F")
    page.fill("#phone", "555-0142")
    page.fill("#email", "zoe@example.org")
    expect(page.locator("#timezone")).to_have_value("America/Chicago")  # the clinic's, prefilled
    page.select_option("#payer_type", "medicare")
    page.fill("#member_id", "1EG4-TE5-MK73")
    page.get_by_role("button", name="Register patient").click()
    expect(page.locator("#phone-error")).to_contain_text("international form")
    expect(page.locator("#phone")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#phone")).to_have_attribute("aria-describedby", "phone-error")
    expect(page.locator("#phone")).to_have_value("555-0142")  # the input is kept
    expect(page.locator("#first_name")).to_have_value("Zoe")
    assert page.locator(".field-error").count() == 1
    page.fill("#phone", "+13125550142")
    page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_text("Zoe Quinn is registered.")).to_be_visible()
    expect(page.get_by_role("heading", name="Zoe Quinn")).to_be_visible()
    zoe_path = urlsplit(page.url).path

    # ---- a plan of care: first with a malformed ICD-10 code
    page.get_by_role("button", name="New episode").first.click()
    expect(page.get_by_role("heading", name="New episode of care")).to_be_visible()
    page.fill("#title", "Left hip osteoarthritis")
    page.fill("#start_date", "2026-03-02")
    page.fill("#frequency_per_week", "2")
    page.fill("#duration_weeks", "8")
    page.fill("#diagnoses", "M16.12\nHIP1")
    page.fill("#goals", "Walk 2 km without a cane | 2026-04-27\nPut on socks standing")
    page.fill("#certification_start", "2026-03-02")
    page.fill("#certification_end", "2026-05-30")
    page.fill("#certifying_physician_name", "Dr. Robin Hale")
    page.fill("#certifying_physician_npi", "1234567893")
    page.fill("#certification_signed_on", "2026-03-04")
    page.fill("#plan_notes", "Hip abductor weakness; hybrid clinic and video plan.")
    page.get_by_role("button", name="Create episode").click()
    expect(page.locator("#diagnoses-error")).to_contain_text("'HIP1' is not an ICD-10-CM code")
    expect(page.locator("#diagnoses")).to_have_value("M16.12\nHIP1")
    page.fill("#diagnoses", "M16.12")
    page.get_by_role("button", name="Create episode").click()
    expect(page.get_by_text("“Left hip osteoarthritis” is saved")).to_be_visible()
    expect(page.locator("ol.goals")).to_contain_text("Walk 2 km without a cane")
    expect(page.locator("ol.diagnoses")).to_contain_text("M16.12")

    # ---- both are on the patient list, and the search box narrows it without a reload
    page.get_by_role("banner").get_by_role("link", name="Patients").click()
    row = page.locator("#patient-rows tr", has_text="Quinn, Zoe")
    expect(row).to_contain_text("Left hip osteoarthritis")
    expect(row.locator(".badge")).to_have_text("Active")
    page.locator("#patient-q").press_sequentially("quin", delay=40)  # typed: keyup events
    expect(page.locator(".result-count")).to_have_text("1 patient matching “quin”")
    expect(page.get_by_text("Alvarez, Ana")).to_have_count(0)
    expect(page).to_have_url(f"{base}/patients?q=quin&mine=0&mine=1")  # pushed: reload and back work
    page.fill("#patient-q", "nobody-by-this-name")  # pasted: an input event
    expect(page.get_by_text("No patients match")).to_be_visible()

    # ---- portal access for Zoe, then sign out
    page.goto(base + zoe_path)
    page.fill("#username", "zoe.quinn")
    page.fill("#password", "zoe-temporary-42")
    page.get_by_role("button", name="Give portal access").click()
    expect(page.get_by_text("signs in as zoe.quinn")).to_be_visible()
    expect(page.get_by_role("button", name="Give portal access")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    recorder.assert_offline_and_clean()
    context.close()

    # ---- Zoe, on a phone, sees her own plan and nothing of anyone else's
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = phone.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "zoe.quinn", "zoe-temporary-42")
    expect(page).to_have_url(f"{base}/my-plan")
    expect(page.get_by_role("heading", name="My plan")).to_be_visible()
    expect(page.get_by_role("heading", name="Left hip osteoarthritis")).to_be_visible()
    expect(page.get_by_text("Walk 2 km without a cane")).to_be_visible()
    expect(page.get_by_text("2 visits a week for 8 weeks")).to_be_visible()
    body = page.locator("body").inner_text()
    for absent in ("Alvarez", "Ana", "Brooks", "Ana's knee plan", "Hip abductor weakness"):
        assert absent not in body
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "wider than a phone"

    for other in (live_server.ids.ana, live_server.ids.ben):
        response = page.goto(f"{base}/patients/{other}")
        assert response.status == 404
        expect(page.get_by_text("No such patient.")).to_be_visible()
        assert "Alvarez" not in page.content() and "Brooks" not in page.content()
    recorder.assert_offline_and_clean()
    phone.close()
