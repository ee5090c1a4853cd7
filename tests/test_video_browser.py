"""Headless Chromium with a fake camera and microphone, through the pages, against the app served
for real (CSRF on) and the media worker running on 127.0.0.1.

- The therapist and the patient, in two browser contexts, join the same visit: the patient waits,
  the therapist admits them from the waiting list, and both see the other's video (frames decoded,
  from getStats), over 127.0.0.1 only, with the quality line filled in. The therapist grabs a
  still for goniometry and has the media worker take stills from the patient's page.
- The patient's device check: their picture comes back from the media worker, with a verdict.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import pytest

from telerehab.video.models import CapturedStill, Recording

from .browser_support import Recorder, browser_app, chromium, playwright_or_skip, served, sign_in
from .video_client import build_video_visit, running_worker

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser

FRAMES_DECODED = """async () => {
  let frames = 0;
  for (const peer of window.telerehabCall.peers.values()) {
    (await peer.pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
    });
  }
  return frames;
}"""

SELECTED_ADDRESSES = """async () => {
  const [peer] = [...window.telerehabCall.peers.values()];
  const stats = await peer.pc.getStats();
  const pairs = [...stats.values()].filter((s) => s.type === "candidate-pair" && s.nominated
    && s.state === "succeeded");
  // A peer-reflexive remote candidate (learnt from a check that beat the trickled one) has its
  // address hidden by Chromium: it is left out.
  return pairs.flatMap((p) => [stats.get(p.localCandidateId).address, stats.get(p.remoteCandidateId).address])
    .filter(Boolean);
}"""


# Chromium offers every interface's address as an ICE candidate, and prefers a real interface to
# loopback. So that media provably stays on 127.0.0.1, these tests run in a network namespace whose
# only interface is lo (`unshare -n`, re-running this module inside it); where namespaces are not
# allowed they run here, and the pair may then use another address of this same machine.
NETNS_FLAG = "TELEREHAB_VIDEO_NETNS"
INSIDE = os.environ.get(NETNS_FLAG) == "1"


UNSHARE = shutil.which("unshare")


def _namespaces_allowed() -> bool:
    return bool(UNSHARE) and subprocess.run([UNSHARE, "-n", "true"], capture_output=True).returncode == 0  # noqa: S603


OUTSIDE_WITH_NAMESPACE = not INSIDE and _namespaces_allowed()


@pytest.mark.skipif(not OUTSIDE_WITH_NAMESPACE, reason="already inside the namespace, or namespaces not allowed")
def test_the_browser_calls_run_in_a_loopback_only_network():
    command = (f"ip link set lo up && exec {shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider "
               f"{shlex.quote(__file__)} -k 'not loopback_only_network'")
    # The namespace cannot reach this host's PostgreSQL: these tests use a SQLite file anyway.
    env = {name: value for name, value in os.environ.items() if name != "TEST_DATABASE_URL"}
    run = subprocess.run([UNSHARE, "-n", "/bin/sh", "-c", command], env={**env, NETNS_FLAG: "1"},  # noqa: S603
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    assert re.search(r"\b4 passed", run.stdout), run.stdout[-3000:]


def run_here():
    if OUTSIDE_WITH_NAMESPACE:
        pytest.skip("run inside the loopback-only namespace by test_the_browser_calls_run_in_a_loopback_only_network")


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "video-browser")
    app.config.update(MEDIA_WORKER_HOST_ADDRESSES=["127.0.0.1"], DEVICE_CHECK_SECONDS=2.0, CAPTURE_STILLS=2)
    ids = build_video_visit(app)
    with served(app) as url, running_worker(app):
        yield SimpleNamespace(app=app, url=url, **vars(ids))


@pytest.fixture(scope="module")
def media_browser():
    with chromium(media=True) as browser:
        yield browser


def _wait_for_frames(page, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while (frames := page.evaluate(FRAMES_DECODED)) == 0 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    return frames


def _recordings(live) -> int:
    with live.app.app_context():
        return Recording.query.filter_by(visit_id=live.visit).count()


def _frames_decoded(page) -> int:
    return page.evaluate(FRAMES_DECODED)


def _stills(live) -> int:
    with live.app.app_context():
        return CapturedStill.query.filter_by(visit_id=live.visit).count()


def test_therapist_and_patient_see_each_other(live, media_browser):
    run_here()
    expect = sync_api.expect
    room = f"{live.url}/visits/{live.visit}/room"
    therapist_page = media_browser.new_context().new_page()
    patient_page = media_browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    recorders = [Recorder(therapist_page), Recorder(patient_page)]

    sign_in(therapist_page, live.url, "therapist", live.password)
    therapist_page.goto(room)
    therapist_page.get_by_role("button", name="Join").click()
    sign_in(patient_page, live.url, "ana", live.password)
    patient_page.goto(room)
    patient_page.get_by_role("button", name="Join").click()
    expect(patient_page.locator("#call-status")).to_contain_text("waiting room")

    waiting = therapist_page.locator("#waiting-list")
    expect(waiting).to_contain_text("Ana Alvarez (patient)")
    waiting.get_by_role("button", name="Admit").click()

    for page in (therapist_page, patient_page):
        assert _wait_for_frames(page) > 0
        if INSIDE:  # lo is the only interface: media went over 127.0.0.1
            assert set(page.evaluate(SELECTED_ADDRESSES)) == {"127.0.0.1"}
        # getStats turned into words every 3 seconds.
        expect(page.locator("#quality-words")).to_contain_text("connection", timeout=10_000)
    expect(patient_page.locator("#call-status")).to_have_text("")

    # The therapist grabs the patient's picture for goniometry (the assessments' upload), and asks
    # the media worker for stills: the patient's page sends its camera to the worker.
    therapist_page.get_by_role("button", name="Capture still for goniometry").click()
    expect(therapist_page.locator("#still-status")).to_contain_text("Still saved for goniometry")
    expect(therapist_page.locator("#still-status a")).to_have_attribute("href", re.compile(r"^/goniometry/\d+$"))
    therapist_page.get_by_role("button", name="Take stills of the patient").click()
    expect(therapist_page.locator("#worker-status")).to_have_text("Taking stills of the patient…")
    deadline = time.monotonic() + 20
    while _stills(live) < live.app.config["CAPTURE_STILLS"] and time.monotonic() < deadline:
        therapist_page.wait_for_timeout(250)
    assert _stills(live) == live.app.config["CAPTURE_STILLS"]

    # Consent recorded from the side panel (htmx swaps it, never the call); then a recording, which
    # the patient's page feeds to the media worker, until the therapist stops it.
    therapist_page.get_by_role("button", name="Record consent to recording").click()
    expect(therapist_page.locator("#recording-panel")).to_contain_text("given (verbal)")
    record = therapist_page.get_by_role("button", name="Start recording")
    expect(record).to_be_enabled()
    record.click()
    expect(therapist_page.locator("#worker-status")).to_have_text("Recording…")
    therapist_page.wait_for_timeout(2500)
    therapist_page.get_by_role("button", name="Stop recording").click()
    expect(therapist_page.locator("#worker-status")).to_have_text("Recording stopped.")
    deadline = time.monotonic() + 20
    while not _recordings(live) and time.monotonic() < deadline:
        therapist_page.wait_for_timeout(250)
    assert _recordings(live) == 1
    assert _frames_decoded(therapist_page) > 0  # the call went on meanwhile

    # The therapist shares their screen in place of the camera, then stops: the camera comes back.
    camera_label = therapist_page.evaluate("window.telerehabCall.cameraTrack.label")
    sent_label = """() => [...window.telerehabCall.peers.values()][0].pc.getSenders()
        .find((s) => s.track && s.track.kind === "video").track.label"""
    therapist_page.get_by_role("button", name="Share screen").click()
    expect(therapist_page.locator("#share-button")).to_have_attribute("aria-pressed", "true")
    assert therapist_page.evaluate(sent_label) != camera_label
    therapist_page.get_by_role("button", name="Stop sharing").click()
    expect(therapist_page.locator("#share-button")).to_have_attribute("aria-pressed", "false")
    assert therapist_page.evaluate(sent_label) == camera_label
    # Two fake cameras: switching sends the other one.
    first_camera = patient_page.evaluate("window.telerehabCall.cameraTrack.label")
    patient_page.get_by_role("button", name="Switch camera").click()
    patient_page.wait_for_function("(first) => window.telerehabCall.cameraTrack.label !== first", arg=first_camera)
    assert patient_page.evaluate(sent_label) == patient_page.evaluate("window.telerehabCall.cameraTrack.label")

    # Mute and camera off act on the local tracks.
    patient_page.get_by_role("button", name="Mute").click()
    assert patient_page.evaluate("window.telerehabCall.local.getAudioTracks()[0].enabled") is False
    expect(patient_page.locator("#mute-button")).to_have_attribute("aria-pressed", "true")
    patient_page.get_by_role("button", name="Camera off").click()
    assert patient_page.evaluate("window.telerehabCall.cameraTrack.enabled") is False
    # The patient has no screen sharing; the therapist does.
    assert patient_page.locator("#share-button").count() == 0
    expect(therapist_page.locator("#share-button")).to_be_enabled()

    patient_page.get_by_role("button", name="Leave").click()
    expect(patient_page.locator("#call-status")).to_have_text("You have left the call.")
    for recorder in recorders:
        recorder.assert_offline_and_clean()


PEER_STATES = "() => [...window.telerehabCall.peers.values()].map((peer) => peer.pc.connectionState)"


def _wait_for(page, script: str, accept, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not accept(value := page.evaluate(script)) and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    return value


SHORT_TOKEN_SECONDS = 20
FIRST_TURN_USERNAME = "() => [...window.telerehabCall.peers.values()][0].pc.getConfiguration().iceServers[0].username"


def test_the_call_goes_on_past_the_first_tokens_expiry(live, media_browser, monkeypatch):
    """Room tokens of 20 seconds: each page renews its own before it expires (the patient's first two
    attempts fail as if offline, and are retried), sends every later request with the new one, and
    hands the fresh TURN credentials to its connection; after the first tokens have expired the call
    is still connected and a signal still gets through."""
    run_here()
    expect = sync_api.expect
    for name, value in {"VIDEO_TOKEN_SECONDS": SHORT_TOKEN_SECONDS, "TURN_URLS": ["turn:127.0.0.1:3478"],
                        "TURN_SHARED_SECRET": "turn-secret"}.items():
        monkeypatch.setitem(live.app.config, name, value)
    room = f"{live.url}/visits/{live.visits[2]}/room"
    pages, recorders, entries = {}, {}, {}
    refresh_attempts = []

    def offline_twice(route):
        refresh_attempts.append(time.monotonic())
        if len(refresh_attempts) <= 2:
            route.abort("internetdisconnected")
        else:
            route.continue_()

    for username in ("therapist", "ana"):
        page = media_browser.new_context().new_page()
        recorders[username] = Recorder(page)
        if username == "ana":
            page.route("**/video/rooms/*/token", offline_twice)
        sign_in(page, live.url, username, live.password)
        page.goto(room)
        with page.expect_response(lambda response: response.url.endswith("/room/join")) as joined:
            page.get_by_role("button", name="Join").click()
        entries[username] = joined.value.json()
        pages[username] = page
    first_tokens_expire = time.monotonic() + SHORT_TOKEN_SECONDS
    pages["therapist"].locator("#waiting-list").get_by_role("button", name="Admit").click()
    for page in pages.values():
        assert _wait_for_frames(page) > 0

    pages["ana"].wait_for_timeout(max(first_tokens_expire + 2 - time.monotonic(), 0) * 1000)
    for username, page in pages.items():
        assert page.evaluate("window.telerehabCall.refreshes") >= 1
        assert page.evaluate("window.telerehabCall.token") != entries[username]["token"]
        # setConfiguration gave the running connection the new TURN credentials (a later expiry).
        assert page.evaluate(FIRST_TURN_USERNAME) != entries[username]["ice_servers"][0]["username"]
        assert page.evaluate(PEER_STATES) == ["connected"]
        assert any(status == 200 and url.endswith(f"/video/rooms/{live.visits[2]}/token")
                   for status, url in recorders[username].responses)
    # The patient's page tried again after a second, then waited longer before the third try.
    assert len(refresh_attempts) >= 3
    gaps = [b - a for a, b in pairwise(refresh_attempts[:3])]
    assert 0.9 <= gaps[0] < gaps[1], gaps
    # The first token is refused by now: the signalling below runs on the renewed ones.
    first = pages["ana"].request.get(f"{live.url}/video/rooms/{live.visits[2]}/signals",
                                     headers={"X-Room-Token": entries["ana"]["token"]})
    assert first.status == 401
    pages["ana"].get_by_role("button", name="Leave").click()
    expect(pages["therapist"].locator("#call-status")).to_have_text(
        "The other side has left. They can rejoin at any time.")
    # The browser logs the two refreshes made to fail; nothing else may be logged as an error.
    offline = [m for m in recorders["ana"].console if "ERR_INTERNET_DISCONNECTED" in m]
    assert len(offline) == 2
    recorders["ana"].console = [m for m in recorders["ana"].console if m not in offline]
    for recorder in recorders.values():
        assert [r for r in recorder.responses if r[0] == 401] == []
        recorder.assert_offline_and_clean()


@pytest.mark.skipif(not INSIDE, reason="takes the network down: only inside the loopback-only namespace")
def test_a_dropped_connection_is_restarted(live, media_browser):
    """lo goes down for a few seconds (media and signaling both lost); the side that offered
    restarts ICE until the call is back, with no new connection and no page reload."""
    room = f"{live.url}/visits/{live.visits[1]}/room"
    pages = {}
    for username in ("therapist", "ana"):
        page = media_browser.new_context().new_page()
        sign_in(page, live.url, username, live.password)
        page.goto(room)
        page.get_by_role("button", name="Join").click()
        pages[username] = page
    pages["therapist"].locator("#waiting-list").get_by_role("button", name="Admit").click()
    for page in pages.values():
        assert _wait_for_frames(page) > 0
    mark = "() => { [...window.telerehabCall.peers.values()][0].pc.beforeTheDrop = true; }"
    same_connection = "() => [...window.telerehabCall.peers.values()][0].pc.beforeTheDrop === true"
    for page in pages.values():
        page.evaluate(mark)

    subprocess.run(["ip", "link", "set", "lo", "down"], check=True)  # noqa: S607
    try:
        assert _wait_for(pages["ana"], PEER_STATES, lambda s: s and s[0] in ("disconnected", "failed"))[0] in (
            "disconnected", "failed")
        pages["ana"].wait_for_timeout(4000)
    finally:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)  # noqa: S607
    for page in pages.values():
        assert _wait_for(page, PEER_STATES, lambda s: s == ["connected"]) == ["connected"]
        assert page.evaluate(same_connection)
    assert pages["ana"].evaluate("window.telerehabCall.restarts") >= 1  # the patient offered, so restarts
    assert not pages["therapist"].evaluate("window.telerehabCall.restarts")
    before = pages["therapist"].evaluate(FRAMES_DECODED)
    # Frames flow again on the same connection (the sender's bandwidth estimate climbs back first).
    assert _wait_for(pages["therapist"], FRAMES_DECODED, lambda frames: frames > before + 10) > before + 10


def test_device_check_echoes_the_camera_and_gives_a_verdict(live, media_browser):
    run_here()
    expect = sync_api.expect
    page = media_browser.new_context().new_page()
    recorder = Recorder(page)
    sign_in(page, live.url, "ana", live.password)
    page.goto(f"{live.url}/video/device-check")
    page.get_by_role("button", name="Start check").click()
    expect(page.locator("#check-status")).to_have_text("Check finished.", timeout=30_000)
    findings = page.locator("#findings li")
    expect(findings).to_have_count(3)
    expect(findings.nth(0)).to_contain_text("Camera: Your camera works.")
    # Chromium's fake microphone beeps, so it is heard.
    expect(findings.nth(1)).to_contain_text("Microphone: Your microphone works.")
    expect(findings.nth(2)).to_contain_text("Network:")
    result = page.evaluate("window.telerehabDeviceCheck.result.result")
    assert result["video_frames"] > 0 and result["audio_frames"] > 0
    recorder.assert_offline_and_clean()
