"""Pure rules for video visits: room tokens, TURN credentials, call minutes, quality verdicts,
device-check advice and what a signaling message may carry.

No Flask, no SQLAlchemy: plain values in, plain values out; time is a parameter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

# ---------------------------------------------------------------- who is in a room


class RoomRole(StrEnum):
    PATIENT = "patient"
    CLINICIAN = "clinician"  # the visit's therapist or assistant, or the plan's therapist
    CAREGIVER = "caregiver"
    INTERPRETER = "interpreter"


GUEST_ROLES = (RoomRole.CAREGIVER, RoomRole.INTERPRETER)


class ParticipantState(StrEnum):
    WAITING = "waiting"  # in the waiting room until a clinician admits them
    ADMITTED = "admitted"
    REMOVED = "removed"


def state_on_entry(role: RoomRole) -> ParticipantState:
    """Clinicians open the room; everyone else waits to be let in."""
    return ParticipantState.ADMITTED if role == RoomRole.CLINICIAN else ParticipantState.WAITING


# ---------------------------------------------------------------- room tokens


class TokenRefused(Exception):
    """A room token that is malformed, forged, for another room, or expired."""


@dataclass(frozen=True)
class RoomClaims:
    visit_id: int
    participant_id: int
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    # A distinct key per purpose, so that no other signed value of the app passes for a room token.
    key = hashlib.sha256(b"telerehab.video.room-token\0" + secret.encode()).digest()
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def sign_room_token(secret: str, claims: RoomClaims) -> str:
    payload = _b64(json.dumps({"v": claims.visit_id, "p": claims.participant_id,
                               "e": int(claims.expires_at.timestamp())}, separators=(",", ":")).encode())
    return f"{payload}.{_mac(secret, payload)}"


def read_room_token(secret: str, token: str, *, visit_id: int, now: datetime) -> RoomClaims:
    """The claims of a genuine, unexpired token for this visit's room; TokenRefused otherwise."""
    payload, _, mac = (token or "").partition(".")
    if not payload or not mac or not hmac.compare_digest(mac, _mac(secret, payload)):
        raise TokenRefused("The room token is not valid.")
    try:
        data = json.loads(_unb64(payload))
        claims = RoomClaims(int(data["v"]), int(data["p"]), datetime.fromtimestamp(int(data["e"]), UTC))
    except (ValueError, KeyError, TypeError):
        raise TokenRefused("The room token is not valid.") from None
    if claims.visit_id != visit_id:
        raise TokenRefused("The room token is for another visit.")
    if now >= claims.expires_at:
        raise TokenRefused("The room token has expired: reopen the visit page.")
    return claims


# ---------------------------------------------------------------- ICE servers


def turn_credentials(secret: str, participant_ref: str, expires_at: datetime) -> tuple[str, str]:
    """coturn's TURN REST scheme (`use-auth-secret`): the username is `expiry:who`, the password
    base64(HMAC-SHA1(secret, username)); coturn refuses it once the expiry (Unix time) has passed."""
    username = f"{int(expires_at.timestamp())}:{participant_ref}"
    credential = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return username, credential


def ice_servers(stun_urls: list[str], turn_urls: list[str], turn_secret: str | None,
                participant_ref: str, expires_at: datetime) -> list[dict]:
    """RTCPeerConnection's `iceServers`. TURN needs the shared secret: without it TURN is left out
    rather than offered with credentials that coturn would refuse."""
    servers: list[dict] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls and turn_secret:
        username, credential = turn_credentials(turn_secret, participant_ref, expires_at)
        servers.append({"urls": list(turn_urls), "username": username, "credential": credential})
    return servers


# ---------------------------------------------------------------- signaling messages

RELAYED_KINDS = ("offer", "answer", "candidate", "bye")
MAX_SDP_CHARS = 20_000
MAX_CANDIDATE_CHARS = 1_000


def signal_problems(kind: object, body: object) -> dict[str, str]:
    """What is wrong with a message a peer asks the app to relay (field -> message)."""
    if kind not in RELAYED_KINDS:
        return {"kind": f"Must be one of: {', '.join(RELAYED_KINDS)}."}
    if not isinstance(body, dict):
        return {"body": "Must be an object."}
    if kind in ("offer", "answer"):
        sdp = body.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            return {"body.sdp": "Must be a session description starting with v=0."}
        if len(sdp) > MAX_SDP_CHARS:
            return {"body.sdp": f"Longer than {MAX_SDP_CHARS} characters."}
    if kind == "candidate":
        candidate = body.get("candidate")
        if candidate is not None and (not isinstance(candidate, str) or len(candidate) > MAX_CANDIDATE_CHARS):
            return {"body.candidate": f"Must be text of at most {MAX_CANDIDATE_CHARS} characters, or null."}
    session = body.get("session")
    if not isinstance(session, str) or not 1 <= len(session) <= 64:
        return {"body.session": "Must name the sending page's session (1 to 64 characters)."}
    return {}


# ---------------------------------------------------------------- minutes


def connected_seconds(segments: list[tuple[datetime, datetime | None]], *, until: datetime) -> int:
    """Seconds during which both sides were connected. An open segment runs to `until`;
    overlapping segments (two clinicians' reports) count once."""
    spans = sorted((start, min(end or until, until)) for start, end in segments)
    total = 0
    current_start: datetime | None = None
    current_end: datetime | None = None
    for start, end in spans:
        if end <= start:
            continue
        if current_end is None or start > current_end:
            if current_end is not None:
                total += int((current_end - current_start).total_seconds())
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += int((current_end - current_start).total_seconds())
    return total


def call_minutes(seconds: int) -> int:
    """Whole minutes, rounded down: time is logged for billing, so never more than was spent."""
    return max(seconds, 0) // 60


def minutes_sentence(minutes: int, start: datetime | None, end: datetime | None, timezone_label: str) -> str:
    span = ""
    if start is not None and end is not None:
        span = f" ({start.strftime('%H:%M')} to {end.strftime('%H:%M')} {timezone_label})"
    return f"Video visit: patient and clinician connected for {minutes} minute{'' if minutes == 1 else 's'}{span}."


# ---------------------------------------------------------------- call quality


class Level(StrEnum):
    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"
    UNKNOWN = "unknown"


# (good if below/above, poor beyond): round-trip time and loss lower is better; frame rate higher.
RTT_MS = (150.0, 400.0)
LOSS_PERCENT = (2.0, 8.0)
FPS = (20.0, 10.0)
_ORDER = {Level.GOOD: 0, Level.UNKNOWN: 0, Level.FAIR: 1, Level.POOR: 2}


def _lower_is_better(value: float | None, limits: tuple[float, float]) -> Level:
    if value is None:
        return Level.UNKNOWN
    good, poor = limits
    return Level.GOOD if value < good else Level.POOR if value >= poor else Level.FAIR


def _higher_is_better(value: float | None, limits: tuple[float, float]) -> Level:
    if value is None:
        return Level.UNKNOWN
    good, poor = limits
    return Level.GOOD if value >= good else Level.POOR if value < poor else Level.FAIR


@dataclass(frozen=True)
class Quality:
    level: Level
    words: str  # one plain sentence the page shows


def call_quality(rtt_ms: float | None, loss_percent: float | None, fps: float | None) -> Quality:
    levels = {
        "delay": _lower_is_better(rtt_ms, RTT_MS),
        "loss": _lower_is_better(loss_percent, LOSS_PERCENT),
        "fps": _higher_is_better(fps, FPS),
    }
    known = [level for level in levels.values() if level != Level.UNKNOWN]
    if not known:
        return Quality(Level.UNKNOWN, "Measuring the connection…")
    worst = max(known, key=_ORDER.__getitem__)
    if worst == Level.GOOD:
        return Quality(Level.GOOD, "Good connection.")
    troubles = []
    if levels["delay"] in (Level.FAIR, Level.POOR):
        troubles.append("sound and picture arrive late")
    if levels["loss"] in (Level.FAIR, Level.POOR):
        troubles.append("some of the picture and sound is lost on the way")
    if levels["fps"] in (Level.FAIR, Level.POOR):
        troubles.append("the picture is jerky")
    prefix = "Weak connection" if worst == Level.POOR else "Fair connection"
    return Quality(worst, f"{prefix}: {', '.join(troubles)}.")


# ---------------------------------------------------------------- device check


@dataclass(frozen=True)
class DeviceMeasures:
    """What the media worker saw of the patient's camera, microphone and network."""

    video_frames: int
    seconds: float
    width: int | None
    height: int | None
    audio_frames: int
    audio_peak: float | None  # 0..1 of full scale; None when no audio arrived
    rtt_ms: float | None
    bitrate_kbps: float | None
    loss_percent: float | None = None


@dataclass(frozen=True)
class Finding:
    subject: str  # camera, microphone, network
    level: Level
    advice: str


MIN_FPS_FOR_EXERCISE = 10.0
MIN_WIDTH = 320
SILENCE_PEAK = 0.01
MIN_BITRATE_KBPS = 150.0  # below this a moving body turns to blocks on the therapist's screen


def device_check_verdict(m: DeviceMeasures) -> list[Finding]:
    findings = []
    fps = m.video_frames / m.seconds if m.seconds > 0 else 0.0
    if m.video_frames == 0:
        findings.append(Finding("camera", Level.POOR,
                                "We did not see any picture from your camera. Check that no other app is using "
                                "it and that this browser may use it, then try again."))
    elif fps < MIN_FPS_FOR_EXERCISE or (m.width or 0) < MIN_WIDTH:
        findings.append(Finding("camera", Level.FAIR,
                                "Your camera works, but the picture is small or jerky. Close other apps and "
                                "add light in front of you."))
    else:
        findings.append(Finding("camera", Level.GOOD, "Your camera works."))
    if m.audio_frames == 0:
        findings.append(Finding("microphone", Level.POOR,
                                "We did not hear your microphone. Check that it is not muted and that this "
                                "browser may use it."))
    elif m.audio_peak is not None and m.audio_peak < SILENCE_PEAK:
        findings.append(Finding("microphone", Level.FAIR,
                                "Your microphone is connected but we heard only silence. Say a few words "
                                "during the check, or unmute it."))
    else:
        findings.append(Finding("microphone", Level.GOOD, "Your microphone works."))
    delay = _lower_is_better(m.rtt_ms, RTT_MS)
    loss = _lower_is_better(m.loss_percent, LOSS_PERCENT)
    # A still, plain picture compresses to a low bitrate over any network: a low bitrate speaks
    # against the network only when the picture also arrives jerky.
    rate = Level.UNKNOWN if m.bitrate_kbps is None else (
        Level.GOOD if m.bitrate_kbps >= 2 * MIN_BITRATE_KBPS or fps >= MIN_FPS_FOR_EXERCISE else
        Level.FAIR if m.bitrate_kbps >= MIN_BITRATE_KBPS else Level.POOR)
    known = [level for level in (delay, loss, rate) if level != Level.UNKNOWN]
    network = max(known, key=_ORDER.__getitem__) if known else Level.UNKNOWN
    if network == Level.UNKNOWN:
        findings.append(Finding("network", Level.UNKNOWN, "We could not measure your connection."))
    elif network == Level.GOOD:
        findings.append(Finding("network", Level.GOOD, "Your internet connection is good enough for a video visit."))
    elif network == Level.FAIR:
        findings.append(Finding("network", Level.FAIR,
                                "Your connection is usable but slow. Move closer to your Wi-Fi router and "
                                "pause downloads or other videos during the visit."))
    else:
        findings.append(Finding("network", Level.POOR,
                                "Your connection is too slow for a clear video visit. Move next to your router, "
                                "or use mobile data; if it stays slow, ask the clinic for a phone visit."))
    return findings
