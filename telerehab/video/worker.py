"""The media worker: an asyncio process with aiortc peers, where a server-side peer is the point.

- echo: the device check. The patient's camera comes back to them; the worker measures frames,
  sound, round-trip time and bitrate, and writes a verdict in plain words.
- capture: a receive-only peer of the patient's video that saves a few stills and leaves.
- record: a receive-only peer that records the patient's stream to the storage folder, only while
  the visit's recording consent stands.

Work arrives through the database (table media_sessions), not through an HTTP port: the web app
stores the browser's offer, a worker claims it with a conditional UPDATE and writes its answer back.
So the worker opens no port, any number of web workers and media workers can share the work, and a
restarted worker loses nothing that was not yet claimed. Its only connections are to the database
and to the peers and ICE servers of the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from array import array
from dataclasses import asdict, dataclass, field
from datetime import datetime
from fractions import Fraction

import aioice.ice
import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRecorder
from aiortc.mediastreams import MediaStreamError
from flask import Flask

from telerehab.db_types import utc_now
from telerehab.video import operations, rules

log = logging.getLogger(__name__)


def restrict_host_addresses(addresses: list[str]) -> None:
    """Offer only these host candidates (aioice otherwise gathers every interface and skips
    127.0.0.1, so a one-machine demo or test could not connect over loopback)."""
    if addresses:
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(addresses)


def rtc_configuration(ice_servers: list[dict]) -> RTCConfiguration:
    """Always explicit: aiortc's default would contact Google's public STUN server."""
    return RTCConfiguration(iceServers=[RTCIceServer(**server) for server in ice_servers])


@dataclass
class Measures:
    started: float = 0.0
    video_frames: int = 0
    width: int | None = None
    height: int | None = None
    audio_frames: int = 0
    audio_peak: float | None = None
    last_video: av.VideoFrame | None = field(default=None, repr=False)


def audio_peak(frame: av.AudioFrame) -> float:
    """The loudest sample of a frame, 0..1 of full scale (s16 is what aiortc's Opus decoder gives)."""
    if frame.format.name not in ("s16", "s16p"):
        return 0.0
    samples = array("h", bytes(frame.planes[0]))
    return max((abs(s) for s in samples), default=0) / 32768


class EchoTrack(MediaStreamTrack):
    """The patient's own video, sent back to them, counted on the way."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, measures: Measures):
        super().__init__()
        self.source = source
        self.measures = measures

    async def recv(self):
        frame = await self.source.recv()
        self.measures.video_frames += 1
        self.measures.width, self.measures.height = frame.width, frame.height
        self.measures.last_video = frame
        return frame


async def consume(track: MediaStreamTrack, measures: Measures) -> None:
    """Read a received track to its end (unread frames pile up in aiortc), measuring as it goes."""
    try:
        while True:
            frame = await track.recv()
            if track.kind == "audio":
                measures.audio_frames += 1
                measures.audio_peak = max(measures.audio_peak or 0.0, audio_peak(frame))
            else:
                measures.video_frames += 1
                measures.width, measures.height = frame.width, frame.height
                measures.last_video = frame
    except MediaStreamError:
        return


def jpeg(frame: av.VideoFrame) -> bytes:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = frame.width, frame.height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = frame.time_base or Fraction(1, 90000)
    packets = codec.encode(frame.reformat(format="yuvj420p"))
    packets += codec.encode(None)
    return b"".join(bytes(p) for p in packets)


class MediaWorker:
    def __init__(self, app: Flask, *, name: str | None = None):
        self.app = app
        self.name = name or f"{socket.gethostname()}:{id(self):x}"
        self.config = app.config
        self.tasks: set[asyncio.Task] = set()
        restrict_host_addresses(self.config["MEDIA_WORKER_HOST_ADDRESSES"])

    def ice_servers(self, expires_at: datetime) -> list[dict]:
        return rules.ice_servers(self.config["STUN_URLS"], self.config["TURN_URLS"],
                                 self.config["TURN_SHARED_SECRET"], f"media-worker-{self.name}", expires_at)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim offered sessions until `stop` is set; each runs as its own task."""
        with self.app.app_context():
            while not stop.is_set():
                claimed = operations.claim_offered(self.name, now=utc_now())
                if claimed is not None:
                    task = asyncio.create_task(self.serve(claimed.id, claimed.kind, claimed.offer_sdp,
                                                          claimed.expires_at))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config["MEDIA_WORKER_POLL_SECONDS"])
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def serve(self, session_id: int, kind: str, offer_sdp: str, expires_at: datetime) -> None:
        pc = RTCPeerConnection(rtc_configuration(self.ice_servers(expires_at)))
        measures = Measures()
        readers: list[asyncio.Task] = []
        recorder: MediaRecorder | None = None
        if kind == "record":
            path = operations.recording_path(session_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            recorder = MediaRecorder(str(path))

        @pc.on("track")
        def on_track(track):
            if kind == "echo" and track.kind == "video":
                pc.addTrack(EchoTrack(track, measures))
            elif recorder is not None:
                recorder.addTrack(track)
            else:
                readers.append(asyncio.create_task(consume(track, measures)))

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            operations.worker_answer(session_id, pc.localDescription.sdp, now=utc_now())
            await self._wait_connected(pc)
            started_at = utc_now()
            measures.started = asyncio.get_running_loop().time()
            if kind == "echo":
                result = await self._device_check(pc, measures)
            elif kind == "capture":
                result = await self._capture(session_id, measures)
            else:
                await recorder.start()
                result = await self._record(session_id, pc)
                await recorder.stop()
                recorder = None
                operations.worker_save_recording(session_id, started_at, now=utc_now())
            operations.worker_finish(session_id, result=result, error=None, now=utc_now())
        except Exception as error:  # the session is failed and the worker carries on
            log.exception("media session %s failed", session_id)
            operations.end_snapshot()
            operations.worker_finish(session_id, result=None, error=str(error) or type(error).__name__,
                                     now=utc_now())
        finally:
            if recorder is not None:
                await recorder.stop()
            for reader in readers:
                reader.cancel()
            await pc.close()

    async def _wait_connected(self, pc: RTCPeerConnection, timeout: float = 20.0) -> None:
        connected = asyncio.Event()

        def check():
            if pc.connectionState == "connected":
                connected.set()

        pc.on("connectionstatechange", check)
        check()
        try:
            await asyncio.wait_for(connected.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(f"the peer did not connect within {timeout:g} s") from None

    async def _device_check(self, pc: RTCPeerConnection, measures: Measures) -> dict:
        seconds = self.config["DEVICE_CHECK_SECONDS"]
        before = await self._transport_bytes(pc)
        await asyncio.sleep(seconds)
        after = await self._transport_bytes(pc)
        stats = list((await pc.getStats()).values())
        rtts = [s.roundTripTime for s in stats if s.type == "remote-inbound-rtp" and s.roundTripTime]
        received = sum(s.packetsReceived for s in stats if s.type == "inbound-rtp")
        lost = sum(max(s.packetsLost, 0) for s in stats if s.type == "inbound-rtp")
        verdict = rules.device_check_verdict(rules.DeviceMeasures(
            video_frames=measures.video_frames, seconds=seconds, width=measures.width, height=measures.height,
            audio_frames=measures.audio_frames, audio_peak=measures.audio_peak,
            rtt_ms=round(min(rtts) * 1000, 1) if rtts else None,
            bitrate_kbps=round((after - before) * 8 / seconds / 1000, 1),
            loss_percent=round(100 * lost / (lost + received), 1) if lost + received else None))
        return {"findings": [asdict(f) for f in verdict], "video_frames": measures.video_frames,
                "audio_frames": measures.audio_frames, "width": measures.width, "height": measures.height}

    @staticmethod
    async def _transport_bytes(pc: RTCPeerConnection) -> int:
        stats = await pc.getStats()
        return max((s.bytesReceived for s in stats.values() if s.type == "transport"), default=0)

    async def _capture(self, session_id: int, measures: Measures) -> dict:
        saved = []
        for _ in range(self.config["CAPTURE_STILLS"]):
            for _wait in range(50):  # up to 5 s for the first decoded frame
                if measures.last_video is not None:
                    break
                await asyncio.sleep(0.1)
            frame = measures.last_video
            if frame is None:
                raise RuntimeError("no video arrived from the patient")
            still = operations.worker_save_still(session_id, jpeg(frame), frame.width, frame.height, now=utc_now())
            saved.append(still.id)
            await asyncio.sleep(1.0)
        return {"stills": saved}

    async def _record(self, session_id: int, pc: RTCPeerConnection) -> dict:
        while pc.connectionState == "connected" and not operations.worker_should_stop(session_id, now=utc_now()):
            await asyncio.sleep(0.5)
        return {"ended_by": "stop" if pc.connectionState == "connected" else pc.connectionState}


def run_forever(app: Flask) -> None:
    """`flask media-worker run`: until interrupted."""
    logging.basicConfig(level=logging.INFO)
    stop = asyncio.Event()

    async def main():
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        await MediaWorker(app).run(stop)

    asyncio.run(main())
