"""The media worker from aiortc peers, through the app's real endpoints (the app served on
127.0.0.1, the worker's asyncio loop in a thread, every ICE candidate 127.0.0.1):

- the device check echoes the camera and says, in plain words, how camera, microphone and
  network did (a silent microphone is told so);
- a capture joins as a receive-only peer of the patient's video, saves stills and leaves;
- a recording needs the visit's recorded consent, is written to the storage folder and is shown
  to the care team only.

The same against Chromium: tests/test_video_browser.py (device check).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiortc import AudioStreamTrack

from telerehab.accounts.models import User
from telerehab.accounts.operations import Actor
from telerehab.video import operations
from telerehab.video.models import CapturedStill, Recording
from telerehab.video.worker import rtc_configuration

from .browser_support import browser_app, served
from .conftest import NOW
from .video_client import (
    CSRF_META,
    PatternTrack,
    RoomClient,
    build_video_visit,
    count_frames,
    media_session,
    new_peer,
    running_worker,
)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "video-worker")
    app.config.update(MEDIA_WORKER_HOST_ADDRESSES=["127.0.0.1"], DEVICE_CHECK_SECONDS=2.0, CAPTURE_STILLS=2,
                      STORAGE_DIR=str(tmp_path_factory.mktemp("video-storage")))
    ids = build_video_visit(app)
    with served(app) as url, running_worker(app):
        yield SimpleNamespace(app=app, url=url, **vars(ids))


async def _device_check(live) -> tuple[dict, dict]:
    client = RoomClient(live.url, live.visit)
    pc = new_peer()
    echoed: dict = {}
    readers = []
    pc.addTrack(PatternTrack())
    pc.addTrack(AudioStreamTrack())  # silence
    pc.on("track", lambda track: readers.append(asyncio.ensure_future(count_frames(track, echoed))))
    try:
        await client.sign_in("ana", live.password)
        token = await client._csrf_token("/video/device-check")
        async with client.http.post(f"{live.url}/video/device-check", headers={"X-CSRFToken": token}) as response:
            assert response.status == 201
            started = await response.json()
        assert started["ice_servers"] == []
        state = await media_session(client.http, live.url, started["media_session_id"], started["token"], pc)
        return state, echoed
    finally:
        for reader in readers:
            reader.cancel()
        await pc.close()
        await client.close()


def test_device_check_echoes_the_camera_and_hears_the_silence(live):
    state, echoed = asyncio.run(_device_check(live))
    assert state["status"] == "finished", state
    assert echoed.get("video", 0) > 0  # the patient saw themselves come back
    findings = {f["subject"]: f for f in state["result"]["findings"]}
    assert findings["camera"]["level"] == "good"
    assert (state["result"]["width"], state["result"]["height"]) == (320, 240)
    assert findings["microphone"]["level"] == "fair" and "silence" in findings["microphone"]["advice"]
    assert findings["network"]["level"] == "good", findings["network"]


async def _in_call(live, visit_id: int) -> tuple[RoomClient, RoomClient]:
    patient, therapist = RoomClient(live.url, visit_id), RoomClient(live.url, visit_id)
    await therapist.sign_in("therapist", live.password)
    await patient.sign_in("ana", live.password)
    await therapist.join()
    await patient.join()
    waiting = await therapist.wait_for_waiting()
    await therapist.admit(waiting[0]["participant_id"])
    await patient.next_message("admitted")
    return patient, therapist


async def _ask_worker(therapist: RoomClient, kind: str) -> tuple[int, dict]:
    async with therapist.http.post(f"{therapist.base}/video/rooms/{therapist.visit_id}/worker",
                                   headers=therapist.headers, json={"kind": kind}) as response:
        return response.status, await response.json()


async def _patient_sends(patient: RoomClient, *, audio: bool, on_answered=None) -> dict:
    request = (await patient.next_message("media-request"))["body"]
    pc = new_peer()
    pc.addTransceiver(PatternTrack(), direction="sendonly")
    if audio:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    try:
        return await media_session(patient.http, patient.base, request["media_session_id"], request["token"], pc,
                                   on_answered=on_answered)
    finally:
        await pc.close()


async def _capture(live) -> dict:
    patient, therapist = await _in_call(live, live.visits[1])
    try:
        status, asked = await _ask_worker(therapist, "capture")
        assert status == 201, asked
        return await _patient_sends(patient, audio=False)
    finally:
        await asyncio.gather(patient.close(), therapist.close())


def test_capture_takes_stills_as_a_receive_only_peer(live):
    state = asyncio.run(_capture(live))
    assert state["status"] == "finished", state
    assert len(state["result"]["stills"]) == 2
    with live.app.app_context():
        stills = CapturedStill.query.filter_by(visit_id=live.visits[1]).all()
        assert [s.id for s in stills] == state["result"]["stills"]
        for still in stills:
            data = operations.storage_path(still.path).read_bytes()
            assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"  # a whole JPEG
            assert (still.width, still.height) == (320, 240)


async def _record(live) -> tuple[int, dict]:
    patient, therapist = await _in_call(live, live.visits[2])
    try:
        refused, problem = await _ask_worker(therapist, "record")
        assert refused == 422 and "consent" in problem["detail"] + str(problem.get("errors"))
        with live.app.app_context():
            user = User.query.filter_by(username="therapist").one()
            operations.record_recording_consent(Actor(user), live.visits[2], "verbal", now=NOW)
        status, _ = await _ask_worker(therapist, "record")
        assert status == 201

        async def stop_after_two_seconds():
            await asyncio.sleep(2)
            assert (await _ask_worker(therapist, "stop"))[1] == {"stopped": 1}

        return await _patient_sends(patient, audio=True, on_answered=stop_after_two_seconds)
    finally:
        await asyncio.gather(patient.close(), therapist.close())


def test_recording_needs_consent_and_is_for_the_care_team_only(live):
    state = asyncio.run(_record(live))
    assert state["status"] == "finished", state
    assert state["result"] == {"ended_by": "stop"}
    with live.app.app_context():
        recording = Recording.query.filter_by(visit_id=live.visits[2]).one()
        path = Path(operations.storage_path(recording.path))
        assert path.stat().st_size == recording.size_bytes > 1000
        assert path.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # WebM (EBML)
        assert recording.ended_at > recording.started_at
    url = f"/visits/{live.visits[2]}/media/recording/{recording.id}"

    async def status_for(username: str) -> tuple[int, str]:
        client = RoomClient(live.url, live.visits[2])
        try:
            await client.sign_in(username, live.password)
            async with client.http.get(live.url + url) as response:
                await response.read()
                page = await (await client.http.get(f"{live.url}/visits/{live.visits[2]}/room")).text()
                return response.status, page
        finally:
            await client.close()

    therapist_status, therapist_page = asyncio.run(status_for("therapist"))
    patient_status, patient_page = asyncio.run(status_for("ana"))
    assert therapist_status == 200 and url in therapist_page
    assert patient_status == 403 and url not in patient_page  # they may see the visit, not its recordings
    assert CSRF_META.search(patient_page)  # the patient's page itself is fine


def test_the_worker_is_a_flask_command_and_names_its_ice_servers(live):
    result = live.app.test_cli_runner().invoke(args=["media-worker", "--help"])
    assert result.exit_code == 0 and "run" in result.output
    # Always an explicit list: aiortc's default (None) would contact Google's public STUN server.
    assert rtc_configuration([]).iceServers == []
    turn = rtc_configuration([{"urls": ["turn:t:3478"], "username": "1:w", "credential": "c"}]).iceServers[0]
    assert (turn.urls, turn.username, turn.credential) == (["turn:t:3478"], "1:w", "c")
