"""aiortc peers that take part in a video visit through the app's real HTTP endpoints, as the call
page does: sign in, enter the room, long-poll (or plain-poll) for signals, offer or answer.

Used by the video tests and by bench/video.py. Every address is 127.0.0.1, and the peers gather
only a 127.0.0.1 host candidate (aioice skips loopback by default)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from types import SimpleNamespace

import aiohttp
import aioice.ice
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
LONG_POLL = "long-poll"
PLAIN_POLL = "plain-poll"  # the baseline: ask every second, the server answers at once


@contextmanager
def loopback_candidates():
    """aioice gathers 127.0.0.1 only, for the duration (the test network rule)."""
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


class PatternTrack(VideoStreamTrack):
    """A small moving picture (a bright bar sweeping down a grey frame), 15 frames a second."""

    def __init__(self, width: int = 320, height: int = 240):
        super().__init__()
        self.width, self.height, self.count = width, height, 0

    async def recv(self):
        pts, _ = await self.next_timestamp()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        bar = (self.count * 8) % self.height
        luma = bytearray(b"\x60" * (self.width * self.height))
        luma[bar * self.width:(bar + 8) * self.width] = b"\xe0" * (min(8, self.height - bar) * self.width)
        frame.planes[0].update(bytes(luma))
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * plane.buffer_size)
        frame.pts, frame.time_base = pts, Fraction(1, 90000)
        self.count += 1
        return frame


async def count_frames(track, counter: dict) -> None:
    try:
        while True:
            await track.recv()
            counter[track.kind] = counter.get(track.kind, 0) + 1
    except MediaStreamError:
        return


async def wait_for_state(pc: RTCPeerConnection, state: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while pc.connectionState != state:
        if time.monotonic() > deadline:
            raise TimeoutError(f"connection state {pc.connectionState}, expected {state}")
        await asyncio.sleep(0.02)


class RoomClient:
    def __init__(self, base: str, visit_id: int, *, transport: str = LONG_POLL):
        self.base, self.visit_id, self.transport = base, visit_id, transport
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.entry: dict = {}
        self.after = 0
        self.session = uuid.uuid4().hex
        self.inbox: list[dict] = []
        self.waiting: list[dict] = []

    async def close(self) -> None:
        await self.http.close()

    async def _csrf_token(self, path: str) -> str:
        async with self.http.get(f"{self.base}{path}") as response:
            assert response.status == 200, await response.text()
            return CSRF_META.search(await response.text()).group(1)

    async def sign_in(self, username: str, password: str) -> None:
        token = await self._csrf_token("/login")
        async with self.http.post(f"{self.base}/login", allow_redirects=False,
                                  data={"username": username, "password": password, "csrf_token": token}) as response:
            assert response.status == 302, await response.text()

    async def join(self) -> dict:
        """Enter the room as the call page does: from the room page, with its CSRF token."""
        token = await self._csrf_token(f"/visits/{self.visit_id}/room")
        async with self.http.post(f"{self.base}/visits/{self.visit_id}/room/join",
                                  headers={"X-CSRFToken": token}) as response:
            assert response.status == 200, await response.text()
            self.entry = await response.json()
        self.after = self.entry["after"]
        return self.entry

    @property
    def headers(self) -> dict:
        return {"X-Room-Token": self.entry["token"]}

    async def poll_once(self) -> list[dict]:
        wait = 20 if self.transport == LONG_POLL else 0
        async with self.http.get(f"{self.base}/video/rooms/{self.visit_id}/signals",
                                 params={"after": self.after, "wait": wait}, headers=self.headers) as response:
            assert response.status == 200, await response.text()
            data = await response.json()
        self.waiting = data.get("waiting", [])
        if data["messages"]:
            self.after = data["messages"][-1]["seq"]
        elif self.transport == PLAIN_POLL:
            await asyncio.sleep(1.0)
        return data["messages"]

    async def next_message(self, kind: str) -> dict:
        while True:
            for message in self.inbox:
                if message["kind"] == kind:
                    self.inbox.remove(message)
                    return message
            self.inbox += await self.poll_once()

    async def wait_for_waiting(self) -> list[dict]:
        while not self.waiting:
            self.inbox += await self.poll_once()
        return self.waiting

    async def send(self, to: int, kind: str, body: dict) -> None:
        async with self.http.post(f"{self.base}/video/rooms/{self.visit_id}/signals", headers=self.headers,
                                  json={"to": to, "kind": kind, "body": {**body, "session": self.session}}) as r:
            assert r.status == 201, await r.text()

    async def admit(self, participant_id: int) -> None:
        async with self.http.post(f"{self.base}/video/rooms/{self.visit_id}/admit/{participant_id}",
                                  headers=self.headers) as response:
            assert response.status == 200, await response.text()

    async def report(self, peer: int, state: str, stats: dict | None = None) -> dict:
        async with self.http.post(f"{self.base}/video/rooms/{self.visit_id}/connection", headers=self.headers,
                                  json={"peer": peer, "state": state, "stats": stats or {}}) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def media_session(http: aiohttp.ClientSession, base: str, session_id: int, token: str, pc: RTCPeerConnection,
                        *, on_answered=None) -> dict:
    """Offer `pc` to the media worker, as the pages do, and wait until the worker is done."""
    headers = {"X-Media-Token": token}
    url = f"{base}/video/media-sessions/{session_id}"
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers before it returns
    async with http.post(f"{url}/offer", headers=headers, json={"sdp": pc.localDescription.sdp}) as response:
        assert response.status == 202, await response.text()
    async with http.get(url, headers=headers, params={"until": "answered", "wait": 20}) as response:
        state = await response.json()
    assert state["answer"], state
    await pc.setRemoteDescription(RTCSessionDescription(sdp=state["answer"], type="answer"))
    if on_answered is not None:
        await on_answered()
    while state["status"] not in ("finished", "failed"):
        async with http.get(url, headers=headers, params={"until": "done", "wait": 20}) as response:
            state = await response.json()
    return state


def new_peer() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def patient_side(client: RoomClient, pc: RTCPeerConnection) -> int:
    """Wait to be admitted, then offer to the clinician; returns the clinician's participant id."""
    admitted = await client.next_message("admitted")
    clinician = admitted["body"]["roster"][0]["participant_id"]
    await pc.setLocalDescription(await pc.createOffer())
    await client.send(clinician, "offer", {"type": "offer", "sdp": pc.localDescription.sdp})
    answer = await client.next_message("answer")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["body"]["sdp"], type="answer"))
    return clinician


async def clinician_side(client: RoomClient, pc: RTCPeerConnection) -> int:
    """Admit whoever waits, then answer their offer; returns the patient's participant id."""
    waiting = await client.wait_for_waiting()
    patient = waiting[0]["participant_id"]
    await client.admit(patient)
    offer = await client.next_message("offer")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["body"]["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await client.send(patient, "answer", {"type": "answer", "sdp": pc.localDescription.sdp})
    return patient


def build_video_visit(app, visits: int = 4) -> SimpleNamespace:
    """A clinic with a therapist, an assistant, a patient who signs in (ana), another patient
    (ben, with his own sign-in), ana's telehealth consent, and `visits` weekly video visits of ana's with the therapist: one
    room per test, so that tests in one module never meet each other's participants."""
    from telerehab.accounts import operations as accounts
    from telerehab.accounts.operations import SYSTEM, Actor
    from telerehab.careplans import operations as careplans
    from telerehab.extensions import db

    from .conftest import NOW, PASSWORD, clinic_data, episode_data, make_user, patient_data

    with app.app_context():
        organisation = accounts.create_organisation("Riverbend")
        clinic = accounts.create_clinic(SYSTEM, clinic_data(organisation.id, "Downtown"), now=NOW)
        therapist = make_user(organisation.id, "therapist", "therapist", clinic.id)
        make_user(organisation.id, "therapist2", "therapist", clinic.id)
        ana = accounts.create_patient(Actor(therapist), patient_data(primary_therapist_id=therapist.id), now=NOW)
        accounts.give_portal_access(Actor(therapist), ana.id, "ana", PASSWORD, now=NOW)
        accounts.record_consent(Actor(therapist), ana.id, "telehealth", method="written", note=None, now=NOW)
        ben = accounts.create_patient(Actor(therapist), patient_data(first_name="Ben", phone="+13125550102"), now=NOW)
        accounts.give_portal_access(Actor(therapist), ben.id, "ben", PASSWORD, now=NOW)
        episode = careplans.create_episode(Actor(therapist), ana.id, episode_data(), now=NOW)
        visits = [careplans.schedule_visit(Actor(therapist), episode.id, {
            "kind": "treatment", "modality": "video", "starts_at": start, "ends_at": start + timedelta(minutes=45),
            "clinician_id": therapist.id}, now=NOW).id
            for start in (datetime(2026, 3, 3, 15, 0, tzinfo=UTC) + timedelta(days=7 * n) for n in range(visits))]
        db.session.remove()
    return SimpleNamespace(visits=visits, visit=visits[0], episode=episode.id, password=PASSWORD)



@contextmanager
def running_worker(app):
    """The media worker's loop in a thread of this process (its peers gather 127.0.0.1 only)."""
    from telerehab.video.worker import MediaWorker

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    with loopback_candidates():
        worker = MediaWorker(app, name="test-worker")
        thread = threading.Thread(target=lambda: loop.run_until_complete(worker.run(stop)), daemon=True)
        thread.start()
        try:
            yield worker
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=20)
            loop.close()
