"""The video pages through the test client: what the therapist's and the patient's call pages
carry, guests' one-time links, the side panels htmx swaps (never the call element), the
calendar's waiting badge, and the signaling endpoints' answers to bad input."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.db_types import utc_now
from telerehab.video import operations as video

from .authorisation_support import visit as _visit
from .conftest import NOW, PASSWORD, login, new_client

HTMX = {"HX-Request": "true"}


@pytest.fixture
def visit(world):
    return _visit(world, modality="video")


def _room_html(client, visit) -> str:
    response = client.get(f"/visits/{visit.id}/room")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_therapists_call_page_has_the_tools(app, client, world, visit):
    login(client, "therapist")
    html = _room_html(client, visit)
    call = re.search(r'<section id="call".*?</section>', html, re.S).group(0)
    assert f'data-join-url="/visits/{visit.id}/room/join"' in call and 'data-role="clinician"' in call
    assert 'hx-preserve="true"' in call  # no htmx swap replaces the call, whatever it targets
    for control in ("join-button", "mute-button", "camera-button", "switch-camera-button", "share-button",
                    "leave-button", "remote-video", "local-video", "call-quality"):
        assert f'id="{control}"' in call
    for panel in ("waiting-panel", "minutes-panel", "worker-panel", "invite-panel"):
        assert f'id="{panel}"' in html and f'id="{panel}"' not in call  # htmx targets sit outside the call
    assert 'type="module" src="/static/video/call.js"' in html and "<script>" not in html
    # The goniometry still button is there exactly when the assessments' upload route is.
    upload = any(rule.rule == "/visits/<id:visit_id>/goniometry/stills" for rule in app.url_map.iter_rules())
    assert ('id="still-button"' in call) == upload
    assert (f'data-goniometry-url="/visits/{visit.id}/goniometry/stills"' in call) == upload


def test_the_patients_call_page_is_plain(client, world, visit):
    login(client, "ana")
    html = _room_html(client, visit)
    assert 'data-role="patient"' in html and 'id="share-button"' not in html
    assert 'id="still-button"' not in html and 'id="waiting-panel"' not in html and 'id="invite-panel"' not in html
    assert 'href="/video/device-check"' in html


def test_the_therapist_is_told_when_telehealth_consent_is_not_in_force(client, world, visit):
    login(client, "therapist")
    banner = re.search(r'<p[^>]*id="telehealth-consent-missing".*?</p>', _room_html(client, visit), re.S)
    assert banner and f'href="/patients/{world.patient.id}#consent"' in banner.group(0)
    consent = accounts.record_consent(Actor(world.therapist), world.patient.id, "telehealth", method="verbal",
                                      note=None, now=NOW)
    assert 'id="telehealth-consent-missing"' not in _room_html(client, visit)
    accounts.revoke_consent(Actor(world.therapist), consent.id, note=None, now=NOW)
    assert 'id="telehealth-consent-missing"' in _room_html(client, visit)


def test_the_patient_is_not_shown_the_consent_banner(client, world, visit):
    login(client, "ana")
    assert "telehealth consent" not in _room_html(client, visit)


def test_join_buttons_lead_to_the_room_and_the_calendar_shows_who_waits(client, world, visit, monkeypatch):
    soon = visit.starts_at - timedelta(minutes=5)  # the page's clock: just before the visit
    monkeypatch.setattr("telerehab.video.views.utc_now", lambda: soon)
    login(client, "therapist")
    url = "/calendar?view=day&date=2026-03-03"
    html = client.get(url).get_data(as_text=True)
    assert f'href="/visits/{visit.id}/room"' in html and "Waiting in the video room" not in html
    video.enter_room(Actor(world.patient_user), visit.id, now=soon)
    html = client.get(url).get_data(as_text=True)
    card = re.search(rf'<li class="visit-card[^"]*" data-visit-id="{visit.id}">.*?</li>', html, re.S).group(0)
    assert "Waiting in the video room" in card


def test_a_guest_link_opens_the_room_once(client, app, world, visit):
    login(client, "therapist")
    response = client.post(f"/visits/{visit.id}/room/invites", data={"role": "interpreter", "name": "Ines"},
                           headers=HTMX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html  # a partial for the invite panel
    link = re.search(r'value="(http://localhost/video/join/vg_[^"]+)"', html).group(1)
    guest = new_client(app)
    page = guest.get(link)
    assert page.status_code == 200
    entry = re.search(r"data-entry='([^']+)'", page.get_data(as_text=True)).group(1)
    assert '"role": "interpreter"' in entry.replace("&#34;", '"') or '"role":"interpreter"' in entry
    assert guest.get(link).status_code == 200  # a reload in the same browser
    assert new_client(app).get(link).status_code == 404  # anyone else: used
    refused = client.post(f"/visits/{visit.id}/room/invites", data={"role": "friend", "name": ""}, headers=HTMX)
    assert refused.status_code == 422 and 'id="name-error"' in refused.get_data(as_text=True)


def test_one_click_logs_the_minutes_from_the_panel(client, world, visit):
    patient = video.enter_room(Actor(world.patient_user), visit.id, now=utc_now()).participant
    therapist = video.enter_room(Actor(world.therapist), visit.id, now=utc_now()).participant
    video.admit(therapist, patient.id, now=utc_now())
    start = utc_now() - timedelta(minutes=30)
    video.report_connection(patient, therapist.id, "connected", {}, now=start)
    video.report_connection(therapist, patient.id, "connected", {}, now=start)
    video.report_connection(patient, therapist.id, "closed", {}, now=start + timedelta(minutes=23, seconds=5))
    login(client, "therapist")
    assert "<strong>23 min</strong>" in _room_html(client, visit)
    response = client.post(f"/visits/{visit.id}/room/minutes", data={"target": "note"}, headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "23 minutes logged to the visit note." in html and "<html" not in html
    assert "Log minutes to the visit note" not in html  # once
    again = client.post(f"/visits/{visit.id}/room/minutes", data={"target": "note"}, headers=HTMX)
    assert again.status_code == 422 and "already logged" in again.get_data(as_text=True)


def test_consent_to_record_from_the_panel(client, world, visit):
    login(client, "therapist")
    assert 'id="record-button"' not in _room_html(client, visit)
    response = client.post(f"/visits/{visit.id}/room/consent", data={"method": "verbal"}, headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "given (verbal)" in html and 'id="record-button"' in html
    bad = client.post(f"/visits/{visit.id}/room/consent", data={"method": "nod"}, headers=HTMX)
    assert bad.status_code == 422 and "Choose verbal" in bad.get_data(as_text=True)
    withdrawn = client.post(f"/visits/{visit.id}/room/consent", data={"action": "revoke"}, headers=HTMX)
    assert "Consent withdrawn" in withdrawn.get_data(as_text=True) and video.recording_consent(visit.id) is None


@pytest.mark.parametrize(("query", "field"), [
    ("after=-1", "after"), ("after=abc", "after"), ("wait=1000", "wait"), ("wait=-1", "wait"),
])
def test_signal_polling_refuses_bad_parameters_naming_them(client, world, visit, query, field):
    entry = video.enter_room(Actor(world.patient_user), visit.id, now=utc_now())
    response = client.get(f"/video/rooms/{visit.id}/signals?{query}", headers={"X-Room-Token": entry.token})
    assert response.status_code == 422
    assert response.content_type == "application/problem+json" and field in response.get_json()["errors"]["json"]


def test_a_long_poll_holds_until_its_wait_runs_out(client, world, visit):
    entry = video.enter_room(Actor(world.patient_user), visit.id, now=utc_now())
    started = time.monotonic()
    response = client.get(f"/video/rooms/{visit.id}/signals?after={entry.after_seq}&wait=0.4",
                          headers={"X-Room-Token": entry.token})
    assert response.get_json() == {"messages": [], "state": "waiting"}
    assert time.monotonic() - started >= 0.4


def test_bad_signals_get_problem_json(client, world, visit):
    entry = video.enter_room(Actor(world.therapist), visit.id, now=utc_now())
    headers = {"X-Room-Token": entry.token}
    response = client.post(f"/video/rooms/{visit.id}/signals", headers=headers, data="not json",
                           content_type="application/json")
    assert response.status_code == 422 and "body" in response.get_json()["errors"]["json"]
    response = client.post(f"/video/rooms/{visit.id}/signals", headers=headers,
                           json={"to": entry.participant.id, "kind": "offer", "body": {"sdp": "x"}})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]["json"]) == {"body.sdp", "to"}


def test_device_check_page(client, world):
    login(client, "ana", PASSWORD)
    html = client.get("/video/device-check").get_data(as_text=True)
    assert 'data-start-url="/video/device-check"' in html and "/static/video/device-check.js" in html


def test_the_calendar_asks_about_waiting_rooms_only_around_now(client, world, visit, monkeypatch):
    late = visit.starts_at + timedelta(hours=13)
    video.enter_room(Actor(world.patient_user), visit.id, now=late)  # waiting, but half a day late
    monkeypatch.setattr("telerehab.video.views.utc_now", lambda: late)
    login(client, "therapist")
    assert "Waiting in the video room" not in client.get("/calendar?view=day&date=2026-03-03").get_data(as_text=True)


def test_the_room_shows_who_waits_before_the_therapist_joins(client, world, visit):
    video.enter_room(Actor(world.patient_user), visit.id, now=utc_now())
    login(client, "therapist")
    waiting = re.search(r'<ul id="waiting-list".*?</ul>', _room_html(client, visit), re.S).group(0)
    assert "Ana Alvarez (patient)" in waiting and "Join to let them in" in waiting


def test_an_rtm_episode_offers_management_time(client, world, visit):
    monitoring = pytest.importorskip("telerehab.monitoring.operations",
                                     reason="the RTM engine (telerehab.monitoring) is not installed")
    login(client, "therapist")
    assert "Log as RTM management time" not in _room_html(client, visit)
    accounts.record_consent(Actor(world.therapist), world.patient.id, "rtm", method="verbal", note=None, now=NOW)
    monitoring.enrol(Actor(world.therapist), world.episode.id, {
        "device_name": "telerehab app", "cost_sharing_notice_shown_at": NOW, "monitoring_start": NOW.date()}, now=NOW)
    assert "Log as RTM management time" in _room_html(client, visit)
