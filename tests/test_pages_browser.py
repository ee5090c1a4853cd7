"""Headless Chromium through the assessment list pages and the video room's guest invitation,
against the app served for real (CSRF on, file SQLite): the patient's trends list one card per
test with its latest result, a visit lists what was recorded at it; the therapist makes a one-time
link for a caregiver (after one refused field), the caregiver enters the waiting room with it, and
nobody can use it again. Every request stays on 127.0.0.1 and the CSP blocks nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from telerehab.accounts.operations import Actor
from telerehab.assessments import operations as assessments
from telerehab.careplans import operations as careplans
from telerehab.extensions import db
from telerehab.video.models import RoomParticipant

from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import NOW, PASSWORD

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "pages-browser")
    with app.app_context():
        _, _, therapist, ana, episode = riverbend(consents=("telehealth",))
        visits = {}
        for name, modality, day in (("clinic", "in_clinic", 3), ("video", "video", 5)):
            start = datetime(2026, 3, day, 15, tzinfo=UTC)
            visits[name] = careplans.schedule_visit(Actor(therapist), episode.id, {
                "kind": "treatment", "modality": modality, "starts_at": start,
                "ends_at": start + timedelta(minutes=45)}, now=NOW).id
        record = [
            (visits["clinic"], "perf_30s_chair_stand", {"stands": 10}, {}),
            (visits["clinic"], "perf_tug", {"seconds": 12.5, "aid": "none"}, {}),
            (visits["video"], "perf_30s_chair_stand", {"stands": 13}, {"checklist": {"helper_present": True}}),
        ]
        for visit_id, protocol_id, inputs, extra in record:
            assessments.record_result(Actor(therapist), ana.id, {
                "protocol_id": protocol_id, "visit_id": visit_id, "inputs": inputs, **extra}, now=NOW)
        ids = SimpleNamespace(patient=ana.id, episode=episode.id, **visits)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids, app=app)


def test_the_trends_list_and_a_visits_results(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)

    page.goto(f"{base}/episodes/{ids.episode}")
    page.get_by_role("button", name="Assessment trends").click()  # Pico: a link styled role="button"
    expect(page).to_have_url(f"{base}/patients/{ids.patient}/assessments")
    cards = page.locator("article.measure-card")
    expect(cards).to_have_count(2)
    chair = cards.filter(has_text="30-Second Chair Stand Test")
    expect(chair).to_contain_text("13 stands")  # the latest result: the one from the video visit
    expect(chair).to_contain_text("2 results")
    expect(chair.locator(".badge")).to_contain_text("Video")
    tug = cards.filter(has_text="Timed Up and Go")
    expect(tug).to_contain_text("12.5")
    expect(tug).to_contain_text("1 result")
    chair.get_by_role("link").click()
    expect(page).to_have_url(f"{base}/patients/{ids.patient}/assessments/perf_30s_chair_stand")
    expect(page.locator("tr.trend-row")).to_have_count(2)

    page.goto(f"{base}/visits/{ids.clinic}/assessments")
    expect(page.get_by_role("heading", name="Recorded (2)")).to_be_visible()
    rows = page.locator("table.results-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="30-Second Chair Stand Test")).to_contain_text("10 stands")
    expect(rows.filter(has_text="Timed Up and Go")).to_contain_text("12.5")
    expect(page.locator("table.results-table")).not_to_contain_text("13 stands")  # the video visit's
    page.get_by_role("button", name="All trends").click()
    expect(page).to_have_url(f"{base}/patients/{ids.patient}/assessments")
    recorder.assert_offline_and_clean()
    context.close()


def test_a_caregiver_enters_the_waiting_room_with_a_one_time_link(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)
    page.goto(f"{base}/visits/{ids.video}/room")
    panel = page.locator("#invite-panel")
    expect(panel.get_by_text("Invite a caregiver or interpreter")).to_be_visible()
    expect(page.locator("#waiting-list")).to_have_text("Nobody is waiting.")

    # ---- no name: refused in the panel (htmx swaps it; the call element stays)
    panel.get_by_role("button", name="Make a one-time link").click()
    expect(panel.locator("#name-error")).to_have_text("Give the guest's name (up to 200 characters).")
    expect(page.locator("#invite-link")).to_have_count(0)
    panel.locator("#guest-name").fill("Maria Alvarez")
    panel.locator("#guest-role").select_option("caregiver")
    panel.get_by_role("button", name="Make a one-time link").click()
    expect(panel.get_by_text("Send this link to Maria Alvarez.")).to_be_visible()
    expect(page).to_have_url(f"{base}/visits/{ids.video}/room")  # swapped in place, no navigation
    link = page.locator("#invite-link").input_value()
    assert re.fullmatch(rf"{re.escape(base)}/video/join/\S+", link), link
    recorder.assert_offline_and_clean()

    # ---- the caregiver, without an account, opens the link: the room, waiting for Join
    guest = browser.new_context()
    guest_page = guest.new_page()
    guest_recorder = Recorder(guest_page)
    guest_page.goto(link)
    expect(guest_page.get_by_role("heading", name="Video visit")).to_be_visible()
    expect(guest_page.get_by_text("with Therapist")).to_be_visible()
    expect(guest_page.locator("#join-button")).to_be_enabled()
    expect(guest_page.locator("#invite-panel")).to_have_count(0)  # the care team's tools are not shown
    guest_recorder.assert_offline_and_clean()
    guest.close()

    page.reload()
    expect(page.locator("#waiting-list")).to_contain_text("Maria Alvarez (caregiver)")
    context.close()

    # ---- the link works once: someone else who gets hold of it is refused
    stranger = browser.new_context()
    stranger_page = stranger.new_page()
    response = stranger_page.goto(link)
    assert response.status == 404
    expect(stranger_page.get_by_text("This invitation link has already been used.")).to_be_visible()
    stranger.close()

    with live_server.app.app_context():
        (stored,) = db.session.scalars(select(RoomParticipant).where(RoomParticipant.role == "caregiver")).all()
        assert (stored.display_name, stored.state) == ("Maria Alvarez", "waiting")
        assert stored.invite_used_at is not None
        assert stored.invite_hash not in link  # only a hash of the token is kept
        db.session.remove()
