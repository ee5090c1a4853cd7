"""Headless Chromium: a patient signs in on a phone-sized screen (390x844) and checks in; then their
therapist sees the data day on the patient's calendar. The app is served for real (CSRF on, file
SQLite, the real clock); every request stays on 127.0.0.1 and the content security policy blocks
nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.db_types import utc_now
from telerehab.exercises import operations as exercises
from telerehab.exercises.models import CheckIn
from telerehab.extensions import db

from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import NOW, PASSWORD

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
THUMB = 44  # CSS pixels: the smallest comfortable touch target


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "checkin-browser")
    with app.app_context():
        _, _, therapist, patient, episode = riverbend()
        accounts.give_portal_access(Actor(therapist), patient.id, "ana", PASSWORD, now=NOW)
        program = exercises.create_program_version(Actor(therapist), episode.id, {"items": [
            {"exercise_key": "glute-bridge"}, {"exercise_key": "heel-raise", "reps": 12},
            {"exercise_key": "single-leg-stance"}]}, now=utc_now())
        ids = SimpleNamespace(patient=patient.id, items=[i.id for i in program.items])
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids, app=app)


def test_a_patient_checks_in_on_a_phone_and_the_therapist_sees_the_data_day(live_server, browser):
    base, expect = live_server.url, sync_api.expect
    bridge, heel, stance = live_server.ids.items

    phone = browser.new_context(**PHONE)
    page = phone.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "ana", PASSWORD)
    page.goto(f"{base}/check-in")
    started = time.monotonic()
    expect(page.get_by_role("heading", name="Today's check-in")).to_be_visible()

    # ---- today's exercises, with the dose prefilled, on a screen no wider than the phone
    for name in ("Bridge", "Heel raise", "Stand on one leg"):
        expect(page.get_by_text(name, exact=True)).to_be_visible()
    expect(page.locator(f"#sets-{bridge}")).to_have_value("3")
    expect(page.locator(f"#reps-{heel}")).to_have_value("12")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "wider than a phone"

    # ---- one hand: big targets, and the submit always within the thumb's reach
    submit = page.get_by_role("button", name="Save check-in")
    expect(submit).to_be_in_viewport()
    for locator in (page.locator(f"label[for='done-{bridge}']"), page.locator(".pain label").first,
                    page.locator(".difficulty label").first, submit):
        box = locator.bounding_box()
        assert box["height"] >= THUMB and box["width"] >= THUMB, box
    checkbox = page.locator(f"#done-{bridge}").bounding_box()
    assert checkbox["width"] >= 32 and checkbox["height"] >= 32, checkbox

    # ---- tick two exercises (one with fewer reps than prescribed), pain 4, OK, a note, save
    page.get_by_text("Bridge", exact=True).tap()
    page.locator(f"label[for='done-{heel}']").tap()
    expect(page.locator(f"#done-{bridge}")).to_be_checked()
    expect(page.locator(f"#done-{heel}")).to_be_checked()
    expect(page.locator(f"#done-{stance}")).not_to_be_checked()
    page.fill(f"#reps-{heel}", "8")
    page.get_by_role("radio", name="Pain 4").tap()
    expect(page.get_by_role("radio", name="Pain 4")).to_be_checked()
    page.get_by_role("radio", name="OK").tap()
    page.fill("#note", "Calf tight after the heel raises")
    expect(submit).to_be_in_viewport()
    submit.tap()

    expect(page.get_by_text("Done for today")).to_be_visible()
    expect(page.get_by_text("your check-in is saved")).to_be_visible()
    expect(page.locator(".done-today")).to_contain_text("2 exercises · pain 4/10 · OK")
    expect(page.get_by_role("button", name="Save check-in")).to_have_count(0)
    assert time.monotonic() - started < 30
    recorder.assert_offline_and_clean()
    phone.close()

    with live_server.app.app_context():
        (row,) = db.session.scalars(select(CheckIn)).all()
        assert (row.source, row.pain, row.difficulty, row.note) == ("web", 4, "ok", "Calf tight after the heel raises")
        assert sorted((e.program_item_id, e.sets_done, e.reps_done) for e in row.exercises) == [
            (bridge, 3, 10), (heel, 3, 8)]
        local_date = row.local_date
        db.session.remove()

    # ---- the therapist finds the data day on the patient's calendar
    desk = browser.new_context()
    page = desk.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)
    page.goto(f"{base}/patients/{live_server.ids.patient}")
    page.get_by_role("button", name="Check-ins and home program").click()
    expect(page.get_by_role("heading", name="Check-ins", exact=True)).to_be_visible()
    day = page.locator(f"td[data-date='{local_date.isoformat()}']")
    expect(day).to_have_class("data-day")
    expect(day).to_have_attribute("aria-label", f"{local_date.isoformat()}: 1 check-in")
    expect(page.locator(".data-day-count")).to_have_text("1 data day")
    expect(page.locator("table.checkins")).to_contain_text("Bridge (3\N{MULTIPLICATION SIGN}10), Heel raise (3\N{MULTIPLICATION SIGN}8)")
    expect(page.locator("table.checkins")).to_contain_text("Calf tight after the heel raises")
    page.get_by_role("button", name="Home program: Right knee OA").click()
    expect(page.locator("#in-force")).to_contain_text("Stand on one leg")
    recorder.assert_offline_and_clean()
    desk.close()
