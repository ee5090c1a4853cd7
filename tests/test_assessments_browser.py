"""Headless Chromium through the assessment pages, against the app served for real (CSRF on, file
SQLite): a 30-second chair stand recorded at a clinic visit and again at a video visit, both on
the trend with their own markers; a knee flexion measured by clicking the three landmarks on an
uploaded still. Every request stays on 127.0.0.1 and the CSP blocks nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.extensions import db

from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import NOW, PASSWORD
from .test_assessments_rules import png

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "assessment-browser")
    with app.app_context():
        _, _, therapist, ana, episode = riverbend(consents=("telehealth",))
        visits = {}
        for name, modality, day in (("clinic", "in_clinic", 3), ("video", "video", 5)):
            start = datetime(2026, 3, day, 15, tzinfo=UTC)
            visits[name] = careplans.schedule_visit(Actor(therapist), episode.id, {
                "kind": "treatment", "modality": modality, "starts_at": start,
                "ends_at": start + timedelta(minutes=45)}, now=NOW).id
        ids = SimpleNamespace(patient=ana.id, **visits)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids)


def record_chair_stand(page, base, visit_id, stands):
    page.goto(f"{base}/visits/{visit_id}")
    page.get_by_role("button", name="Record assessment").click()  # Pico: a link styled role="button"
    page.get_by_role("link", name="30-Second Chair Stand Test").click()
    page.fill("#input-stands", str(stands))
    page.get_by_role("button", name="Save result").click()


def test_chair_stand_in_clinic_and_on_video_on_one_trend(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)

    record_chair_stand(page, base, ids.clinic, 10)
    expect(page).to_have_url(f"{base}/patients/{ids.patient}/assessments/perf_30s_chair_stand")
    expect(page.get_by_text("30-Second Chair Stand Test: 10 stands recorded.")).to_be_visible()

    page.goto(f"{base}/visits/{ids.video}")
    page.get_by_role("button", name="Record assessment").click()
    page.get_by_role("link", name="30-Second Chair Stand Test").click()
    expect(page.locator("#variant-video")).to_be_checked()  # the video visit's variant by default
    expect(page.locator("#variant-in_clinic")).not_to_be_checked()
    page.get_by_text("How to take it").click()
    expect(page.get_by_text("About 8\N{EN DASH}10 ft back").first).to_be_visible()
    page.fill("#input-stands", "13")
    page.check("#checklist-helper_present")
    page.get_by_role("button", name="Save result").click()
    expect(page).to_have_url(f"{base}/patients/{ids.patient}/assessments/perf_30s_chair_stand")

    chart = page.locator("svg.trend-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("circle.marker-clinic")).to_have_count(1)
    expect(chart.locator("path.marker-video")).to_have_count(1)
    expect(chart.locator("rect.mdc-band")).to_have_count(1)
    expect(chart.locator("line.trend-line")).to_have_count(1)  # interchangeable: joined by a plain line
    expect(chart.locator(".not-comparable-warning")).to_have_count(0)
    colours = page.evaluate("""() => ["circle.marker-clinic", "path.marker-video"].map(
        (s) => getComputedStyle(document.querySelector(s)).fill)""")
    assert colours[0] != colours[1]
    clinic_box = chart.locator("circle.marker-clinic").bounding_box()
    video_box = chart.locator("path.marker-video").bounding_box()
    assert video_box["x"] > clinic_box["x"] and video_box["y"] < clinic_box["y"]  # later and higher
    expect(page.locator("tr.trend-row")).to_have_count(2)
    expect(page.locator("tr.trend-row").nth(1)).to_contain_text("+3 stands (better); beyond the MDC of 2.5")
    expect(page.locator(".trend-legend")).to_contain_text("Baseline ± MDC")
    recorder.assert_offline_and_clean()
    context.close()


def test_knee_flexion_from_landmarks_clicked_on_an_uploaded_still(live_server, browser, tmp_path):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    still = tmp_path / "knee.png"
    still.write_bytes(png(640, 480))
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)
    page.goto(f"{base}/visits/{ids.video}/assessments")
    page.set_input_files("#image", str(still))
    page.get_by_role("button", name="Upload and mark").click()
    expect(page.get_by_role("heading", name="Mark the landmarks")).to_be_visible()
    expect(page.locator("#protocol")).to_have_value("rom_hip_flexion")  # the first measure by name
    page.select_option("#protocol", "rom_knee_flexion")  # reloads the page for the knee (marking.js)
    expect(page.get_by_text("Greater trochanter (along the femur)")).to_be_visible()

    overlay = page.locator("#overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()

    def click_at(x: float, y: float) -> None:
        page.mouse.click(box["x"] + x * box["width"] / 640, box["y"] + y * box["height"] / 480)

    click_at(400, 300)  # axis: the knee
    click_at(100, 300)  # stationary: toward the greater trochanter
    click_at(400, 450)  # moving: toward the lateral malleolus, the shank at a right angle
    expect(overlay.locator("circle")).to_have_count(3)
    expect(overlay.locator("line")).to_have_count(2)
    assert abs(float(page.input_value("#axis_x")) - 400) < 2 and abs(float(page.input_value("#moving_y")) - 450) < 2
    page.select_option("#input-side", "right")
    page.select_option("#input-motion", "active")
    page.select_option("#input-position", "side_lying")
    page.check("#checklist-perpendicular")
    page.check("#checklist-joint_height")
    page.get_by_role("button", name="Compute and save the angle").click()
    expect(page).to_have_url(f"{base}/patients/{ids.patient}/assessments/rom_knee_flexion")
    row = page.locator("tr.trend-row")
    expect(row).to_have_count(1)
    value = float(row.locator("td").nth(2).locator("strong").inner_text())
    assert 88.5 <= value <= 91.5
    expect(page.locator("svg.trend-chart path.marker-video")).to_have_count(1)
    recorder.assert_offline_and_clean()
    context.close()
