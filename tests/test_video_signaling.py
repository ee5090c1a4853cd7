"""Two aiortc peers take part in a video visit through the app's real endpoints (the app served by
a real server on 127.0.0.1, CSRF on): they sign in, the patient waits, the therapist admits, they
signal through the database, reach `connected` and exchange frames; the minutes are counted. A third
party with a wrong, forged, expired or other-room token is refused, and so is another patient."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import aiohttp
import pytest
from aiortc import AudioStreamTrack

from telerehab import create_app
from telerehab.db_types import utc_now
from telerehab.video import operations, rules

from .browser_support import browser_app, served
from .video_client import (
    PLAIN_POLL,
    PatternTrack,
    RoomClient,
    build_video_visit,
    clinician_side,
    count_frames,
    loopback_candidates,
    new_peer,
    patient_side,
    wait_for_state,
)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The app served twice, two processes' worth of app objects over one database: web workers
    that share nothing but the database, as behind a load balancer."""
    app = browser_app(tmp_path_factory, "video-signaling")
    other_worker = create_app(dict(app.config))
    ids = build_video_visit(app, visits=5)
    with loopback_candidates(), served(app) as url, served(other_worker) as other_url:
        yield SimpleNamespace(app=app, url=url, other_url=other_url, **vars(ids))


async def _call(live, visit_id: int, transport: str | None = None, *, therapist_url: str | None = None) -> dict:
    options = {"transport": transport} if transport else {}
    patient = RoomClient(live.url, visit_id, **options)
    therapist = RoomClient(therapist_url or live.url, visit_id, **options)
    patient_pc, therapist_pc = new_peer(), new_peer()
    received = {"patient": {}, "therapist": {}}
    readers = []
    for name, pc in (("patient", patient_pc), ("therapist", therapist_pc)):
        pc.addTrack(PatternTrack())
        pc.addTrack(AudioStreamTrack())
        pc.on("track", lambda track, name=name: readers.append(asyncio.ensure_future(
            count_frames(track, received[name]))))
    try:
        await therapist.sign_in("therapist", live.password)
        await patient.sign_in("ana", live.password)
        therapist_entry = await therapist.join()
        patient_entry = await patient.join()
        assert therapist_entry["state"] == "admitted" and patient_entry["state"] == "waiting"
        assert patient_entry["ice_servers"] == []  # none configured: no public STUN server
        clinician_id, patient_id = await asyncio.gather(patient_side(patient, patient_pc),
                                                        clinician_side(therapist, therapist_pc))
        assert clinician_id == therapist_entry["participant_id"] and patient_id == patient_entry["participant_id"]
        await asyncio.gather(wait_for_state(patient_pc, "connected"), wait_for_state(therapist_pc, "connected"))
        await patient.report(clinician_id, "connected")
        verdict = await therapist.report(patient_id, "connected", {"rtt_ms": 2, "loss_percent": 0, "fps": 25})
        for _ in range(100):
            if min(received["patient"].get("video", 0), received["therapist"].get("video", 0)) >= 10:
                break
            await asyncio.sleep(0.05)
        await patient.report(clinician_id, "closed")
        return {"received": received, "verdict": verdict}
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(patient_pc.close(), therapist_pc.close())
        await asyncio.gather(patient.close(), therapist.close())


def test_two_aiortc_peers_connect_through_the_app_and_exchange_frames(live):
    outcome = asyncio.run(_call(live, live.visits[0]))
    received = outcome["received"]
    assert received["patient"].get("video", 0) >= 10, received
    assert received["therapist"].get("video", 0) >= 10, received
    assert received["patient"].get("audio", 0) > 0 and received["therapist"].get("audio", 0) > 0
    assert outcome["verdict"] == {"quality": "good", "words": "Good connection."}
    with live.app.app_context():
        room = operations.room_of_visit(live.visits[0])
        spent = operations.call_time(room, now=utc_now())
        # Opened when the second side reported connected, closed when the patient hung up.
        assert spent.first_connected is not None and spent.first_connected < spent.last_connected
        assert spent.seconds < 60 and room.participants[1].media_state == "closed"


def test_the_two_sides_may_talk_to_different_web_workers(live):
    """Nothing of the call is kept in a web worker's memory: the patient's requests go to one
    server, the therapist's to another, and they still meet."""
    received = asyncio.run(_call(live, live.visits[3], therapist_url=live.other_url))["received"]
    assert received["patient"].get("video", 0) >= 10 and received["therapist"].get("video", 0) >= 10


def test_plain_polling_reaches_the_same_call(live):
    """The baseline transport of the benchmark works too (it is only slower)."""
    received = asyncio.run(_call(live, live.visits[1], PLAIN_POLL))["received"]
    assert received["patient"].get("video", 0) >= 10 and received["therapist"].get("video", 0) >= 10


async def _signals(live, visit_id: int, token: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(
            f"{live.url}/video/rooms/{visit_id}/signals", params={"after": 0}, headers={"X-Room-Token": token}) as r:
        return r.status


async def _enter(live, username: str, visit_id: int) -> dict:
    client = RoomClient(live.url, visit_id)
    try:
        await client.sign_in(username, live.password)
        return await client.join()
    finally:
        await client.close()


def test_a_third_party_with_a_wrong_or_expired_token_is_refused(live):
    visit_id = live.visits[2]
    entry = asyncio.run(_enter(live, "ana", visit_id))
    assert asyncio.run(_signals(live, visit_id, entry["token"])) == 200
    with live.app.app_context():
        secret = live.app.config["SECRET_KEY"]
        past = utc_now() - timedelta(seconds=1)
        expired = rules.sign_room_token(secret, rules.RoomClaims(visit_id, entry["participant_id"], past))
        forged = rules.sign_room_token("another-secret", rules.RoomClaims(
            visit_id, entry["participant_id"], utc_now() + timedelta(hours=1)))
        nobody = rules.sign_room_token(secret, rules.RoomClaims(visit_id, 999_999, utc_now() + timedelta(hours=1)))
    payload, _, mac = entry["token"].partition(".")
    for token in ("", "garbage", expired, forged, nobody, f"{payload}.{mac[::-1]}"):
        assert asyncio.run(_signals(live, visit_id, token)) == 401, token
    # A good token, for another visit's room.
    assert asyncio.run(_signals(live, live.visits[4], entry["token"])) == 401


def test_another_patient_and_another_therapist_cannot_enter(live):
    async def status_of(username: str) -> int:
        client = RoomClient(live.url, live.visits[4])
        try:
            await client.sign_in(username, live.password)
            async with client.http.post(f"{live.url}/visits/{live.visits[4]}/room/join") as response:
                return response.status
        finally:
            await client.close()

    # Not the visit's patient nor its clinicians: refused without learning that the visit exists
    # (or, without the room page's CSRF token, refused before that).
    assert asyncio.run(status_of("ben")) in (400, 404)
    assert asyncio.run(status_of("therapist2")) in (400, 404)
