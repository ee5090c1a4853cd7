"""Headless Chromium through the visit pages, against the app served for real (CSRF on, file SQLite).

The therapist plans a hybrid series (clinic, video, video), edits one row of the preview and
confirms it; the week calendar tells the two modalities apart; the therapist cancels a clinic
visit with a reason. The patient, on a phone, accepts the offered video slot with one tap and sees
it among their upcoming visits. Every request stays on 127.0.0.1 and the CSP blocks nothing.

The pages read the clock through `telerehab.careplans.views.utc_now`, fixed here at NOW (Monday
2 March 2026, 09:00 in Chicago).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

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
    """The app on a free port of 127.0.0.1, CSRF enforced, file SQLite, the pages' clock at NOW."""
    app = browser_app(tmp_path_factory, "visit-browser")
    with app.app_context():
        organisation = accounts.create_organisation("Riverbend")
        clinic = accounts.create_clinic(SYSTEM, clinic_data(organisation.id, "Downtown"), now=NOW)
        therapist = make_user(organisation.id, "therapist", "therapist", clinic.id)
        ana = accounts.create_patient(Actor(therapist), patient_data(primary_therapist_id=therapist.id), now=NOW)
        accounts.give_portal_access(Actor(therapist), ana.id, "ana", PASSWORD, now=NOW)
        episode = careplans.create_episode(Actor(therapist), ana.id, episode_data(title="Ana's knee plan"), now=NOW)
        ids = SimpleNamespace(episode=episode.id)
        db.session.remove()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("telerehab.careplans.views.utc_now", lambda: NOW)
        with served(app) as url:
            yield SimpleNamespace(url=url, ids=ids)


def test_hybrid_cadence_cancel_and_one_tap_video_offer(live_server, browser):
    base, expect = live_server.url, sync_api.expect
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)

    # ---- the therapist plans the series from the episode page
    sign_in(page, base, "therapist", PASSWORD)
    page.goto(f"{base}/episodes/{live_server.ids.episode}")
    page.get_by_role("button", name="Plan visits").click()  # Pico: a link styled role="button"
    expect(page.get_by_role("heading", name="Plan visits", exact=True)).to_be_visible()
    # The hybrid pattern and the plan's two weekdays are the defaults.
    expect(page.locator("#pattern-1")).to_have_value("in_clinic")
    expect(page.locator("#pattern-2")).to_have_value("video")
    expect(page.locator("#pattern-3")).to_have_value("video")
    expect(page.locator("#weekday-0")).to_be_checked()
    expect(page.locator("#weekday-3")).to_be_checked()
    page.fill("#preferred_start", "09:00")
    page.get_by_role("button", name="Preview visits").click()
    expect(page.locator("#preview-heading")).to_contain_text("Proposed visits (16)")
    rows = page.locator("tr.cadence-row")
    expect(rows).to_have_count(16)
    expect(page.locator("#visits-0-date")).to_have_value("2026-03-02")
    expect(page.locator("#visits-1-modality")).to_have_value("in_clinic")
    expect(page.locator("#visits-2-modality")).to_have_value("video")
    expect(page.locator("#visits-4-modality")).to_have_value("in_clinic")  # the pattern repeats

    # ---- one row edited: Thursday's visit goes to video and moves to 10:30
    page.select_option("#visits-1-modality", "video")
    expect(page.locator("#row-1")).to_have_class("cadence-row visit-video")  # restyled at once (visits.js)
    page.fill("#visits-1-time", "10:30")
    page.get_by_role("button", name="Confirm visits").click()
    expect(page).to_have_url(f"{base}/episodes/{live_server.ids.episode}/visits")
    expect(page.get_by_text("16 visits scheduled.")).to_be_visible()
    expect(page.locator("li.timeline-item")).to_have_count(16)

    # ---- the week calendar tells the two apart: colour, edge, icon and label
    page.get_by_role("banner").get_by_role("link", name="Calendar").click()
    expect(page.locator(".calendar-range")).to_contain_text("Week of Mon 02 Mar \N{EN DASH} Sun 08 Mar 2026")
    clinic_card = page.locator(".visit-card.visit-clinic")
    video_card = page.locator(".visit-card.visit-video")
    expect(clinic_card).to_have_count(1)
    expect(video_card).to_have_count(1)
    expect(clinic_card).to_contain_text("Initial evaluation")
    expect(clinic_card.locator(".badge.modality")).to_have_text("In clinic")
    expect(clinic_card.locator("svg")).to_have_count(1)
    expect(video_card).to_contain_text("10:30")
    expect(video_card.locator(".badge.modality")).to_have_text("Video")
    expect(video_card.get_by_role("button", name="Join")).to_be_visible()
    expect(clinic_card.get_by_role("button", name="Join")).to_have_count(0)
    styles = page.evaluate("""() => [".visit-card.visit-clinic", ".visit-card.visit-video"].map((s) => {
        const style = getComputedStyle(document.querySelector(s));
        return [style.borderLeftStyle, style.borderLeftColor, style.backgroundColor];
    })""")
    assert styles[0][0] == "solid" and styles[1][0] == "dashed"
    assert styles[0][1] != styles[1][1] and styles[0][2] != styles[1][2]

    # ---- two weeks on (htmx swaps the calendar and pushes the address), cancel the clinic visit
    page.get_by_role("button", name="Next week →").click()
    expect(page.locator(".calendar-range")).to_contain_text("Week of Mon 09 Mar")
    page.get_by_role("button", name="Next week →").click()
    expect(page.locator(".calendar-range")).to_contain_text("Week of Mon 16 Mar")
    expect(page).to_have_url(f"{base}/calendar?view=week&date=2026-03-16")
    page.locator(".visit-card.visit-clinic").get_by_role("link", name="Ana Alvarez").click()
    expect(page.get_by_role("heading", name="Treatment")).to_be_visible()
    page.get_by_text("Cancel visit…").click()
    page.fill("#reason", "Snowstorm: the roads are closed")
    page.get_by_role("button", name="Cancel visit", exact=True).click()
    expect(page.get_by_text("The visit is now cancelled. A video visit in the same week is offered")).to_be_visible()
    expect(page.locator("#offer")).to_contain_text("video visit on Monday 16 March, 09:00")
    expect(page.get_by_text("Snowstorm: the roads are closed")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    recorder.assert_offline_and_clean()
    context.close()

    # ---- the patient, on a phone, accepts the video slot with one tap
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = phone.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "ana", PASSWORD)
    expect(page).to_have_url(f"{base}/my-plan")
    page.get_by_role("banner").get_by_role("link", name="My visits").click()
    offer = page.locator(".offer-card")
    expect(offer).to_contain_text("Your clinic visit on Monday 16 March at 09:00 was cancelled.")
    expect(offer).to_contain_text("video visit on Monday 16 March at 09:00")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "wider than a phone"
    offer.get_by_role("button", name="Accept video visit").tap()
    expect(page.get_by_text("Your video visit on Monday 16 March at 09:00 is booked.")).to_be_visible()
    expect(page.locator(".offer-card")).to_have_count(0)
    booked = page.locator(".upcoming-visit.visit-video", has_text="Monday 16 March")
    expect(booked).to_have_count(1)
    expect(booked.locator(".badge.modality")).to_have_text("Video")
    expect(booked.get_by_role("button", name="Join")).to_be_visible()
    body = page.locator("body").inner_text()
    assert "M17.11" not in body and "Clinical reasoning" not in body
    recorder.assert_offline_and_clean()
    phone.close()
