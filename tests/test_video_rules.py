"""The pure rules of video visits: room tokens, TURN REST credentials, signaling messages, call
minutes, the quality verdict and the device check's advice."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from telerehab.video import rules
from telerehab.video.rules import DeviceMeasures, Level, RoomClaims, RoomRole

T0 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
SECRET = "room-secret"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# ---------------------------------------------------------------- entering


@pytest.mark.parametrize(("role", "state"), [
    (RoomRole.CLINICIAN, "admitted"), (RoomRole.PATIENT, "waiting"),
    (RoomRole.CAREGIVER, "waiting"), (RoomRole.INTERPRETER, "waiting"),
])
def test_only_clinicians_enter_without_waiting(role, state):
    assert rules.state_on_entry(role) == state


# ---------------------------------------------------------------- tokens


def test_a_token_reads_back_as_its_claims_until_it_expires():
    claims = RoomClaims(7, 42, at(60))
    token = rules.sign_room_token(SECRET, claims)
    assert rules.read_room_token(SECRET, token, visit_id=7, now=at(0)) == RoomClaims(7, 42, at(60))
    assert rules.read_room_token(SECRET, token, visit_id=7, now=at(59.99)).participant_id == 42


def _tampered_payload(token: str) -> str:
    _, _, mac = token.partition(".")
    forged = base64.urlsafe_b64encode(b'{"v":7,"p":43,"e":9999999999}').rstrip(b"=").decode()
    return f"{forged}.{mac}"


@pytest.mark.parametrize(("case", "make", "visit_id", "now", "message"), [
    ("expired at the second", lambda t: t, 7, at(60), "expired"),
    ("expired long ago", lambda t: t, 7, at(600), "expired"),
    ("another visit's room", lambda t: t, 8, at(0), "another visit"),
    ("another secret", lambda t: rules.sign_room_token("other", RoomClaims(7, 42, at(60))), 7, at(0), "not valid"),
    ("participant changed", _tampered_payload, 7, at(0), "not valid"),
    ("signature cut", lambda t: t[:-3], 7, at(0), "not valid"),
    ("no signature", lambda t: t.partition(".")[0], 7, at(0), "not valid"),
    ("empty", lambda t: "", 7, at(0), "not valid"),
    ("none", lambda t: None, 7, at(0), "not valid"),
    ("not base64 json", lambda t: "abc." + rules._mac(SECRET, "abc"), 7, at(0), "not valid"),
])
def test_bad_tokens_are_refused(case, make, visit_id, now, message):
    token = make(rules.sign_room_token(SECRET, RoomClaims(7, 42, at(60))))
    with pytest.raises(rules.TokenRefused, match=message):
        rules.read_room_token(SECRET, token, visit_id=visit_id, now=now)


# ---------------------------------------------------------------- ICE servers


def test_turn_credentials_follow_the_turn_rest_scheme():
    username, credential = rules.turn_credentials("coturn-secret", "room3-p9", at(60))
    assert username == f"{int(at(60).timestamp())}:room3-p9"
    expected = base64.b64encode(hmac.new(b"coturn-secret", username.encode(), hashlib.sha1).digest()).decode()
    assert credential == expected


@pytest.mark.parametrize(("stun", "turn", "secret", "expected_urls"), [
    ([], [], None, []),
    ([], [], "s", []),
    (["stun:turn.example.org:3478"], [], None, [["stun:turn.example.org:3478"]]),
    ([], ["turn:turn.example.org:3478"], None, []),  # no secret: no TURN rather than refused credentials
    ([], ["turn:t:3478", "turns:t:443?transport=tcp"], "s", [["turn:t:3478", "turns:t:443?transport=tcp"]]),
    (["stun:t:3478"], ["turn:t:3478"], "s", [["stun:t:3478"], ["turn:t:3478"]]),
])
def test_ice_servers_come_only_from_the_configuration(stun, turn, secret, expected_urls):
    servers = rules.ice_servers(stun, turn, secret, "p1", at(60))
    assert [s["urls"] for s in servers] == expected_urls
    for server in servers:
        assert ("username" in server) == any(url.startswith("turn") for url in server["urls"])
    assert not any("google" in url for s in servers for url in s["urls"])


# ---------------------------------------------------------------- signaling messages

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("offer", {"sdp": SDP, "session": "s1"}, None),
    ("answer", {"sdp": SDP, "session": "s1"}, None),
    ("candidate", {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "session": "s1"}, None),
    ("candidate", {"candidate": None, "session": "s1"}, None),  # end of candidates
    ("bye", {"session": "s1"}, None),
    ("admitted", {"session": "s1"}, "kind"),  # only the app sends room events
    ("", {"session": "s1"}, "kind"),
    (None, {}, "kind"),
    ("offer", "v=0", "body"),
    ("offer", {"session": "s1"}, "body.sdp"),
    ("offer", {"sdp": "hello", "session": "s1"}, "body.sdp"),
    ("offer", {"sdp": "v=0" + "a" * rules.MAX_SDP_CHARS, "session": "s1"}, "body.sdp"),
    ("candidate", {"candidate": 5, "session": "s1"}, "body.candidate"),
    ("candidate", {"candidate": "c" * (rules.MAX_CANDIDATE_CHARS + 1), "session": "s1"}, "body.candidate"),
    ("offer", {"sdp": SDP}, "body.session"),
    ("offer", {"sdp": SDP, "session": ""}, "body.session"),
    ("offer", {"sdp": SDP, "session": "x" * 65}, "body.session"),
])
def test_signal_problems(kind, body, field):
    problems = rules.signal_problems(kind, body)
    assert list(problems) == ([field] if field else [])


# ---------------------------------------------------------------- minutes


@pytest.mark.parametrize(("segments", "until", "seconds"), [
    ([], at(10), 0),
    ([(at(0), at(10))], at(20), 600),
    ([(at(0), None)], at(7), 420),  # still connected: counts to now
    ([(at(0), at(10)), (at(12), at(20))], at(30), 1080),  # a reconnection gap is not counted
    ([(at(0), at(10)), (at(5), at(15))], at(30), 900),  # overlapping reports count once
    ([(at(5), at(15)), (at(0), at(10))], at(30), 900),  # in any order
    ([(at(0), at(10)), (at(2), at(4))], at(30), 600),  # contained
    ([(at(0), at(10)), (at(10), at(20))], at(30), 1200),  # touching
    ([(at(0), at(10))], at(5), 300),  # nothing after `until`
    ([(at(10), at(20))], at(5), 0),  # nothing before it started
    ([(at(0), at(0))], at(5), 0),  # empty
])
def test_connected_seconds(segments, until, seconds):
    assert rules.connected_seconds(segments, until=until) == seconds


@pytest.mark.parametrize(("seconds", "minutes"), [(0, 0), (59, 0), (60, 1), (119, 1), (1199, 19), (1200, 20),
                                                   (-5, 0)])
def test_minutes_round_down(seconds, minutes):
    assert rules.call_minutes(seconds) == minutes


def test_minutes_sentence():
    assert rules.minutes_sentence(1, at(0), at(1), "UTC") == \
        "Video visit: patient and clinician connected for 1 minute (15:00 to 15:01 UTC)."
    assert rules.minutes_sentence(23, None, None, "UTC") == \
        "Video visit: patient and clinician connected for 23 minutes."


# ---------------------------------------------------------------- quality


@pytest.mark.parametrize(("rtt", "loss", "fps", "level", "words"), [
    (None, None, None, Level.UNKNOWN, "Measuring"),
    (40, 0, 30, Level.GOOD, "Good connection."),
    (149.9, 1.99, 20, Level.GOOD, "Good connection."),
    (150, 0, 30, Level.FAIR, "arrive late"),
    (399, 0, 30, Level.FAIR, "arrive late"),
    (400, 0, 30, Level.POOR, "Weak connection: sound and picture arrive late."),
    (40, 2, 30, Level.FAIR, "lost on the way"),
    (40, 8, 30, Level.POOR, "lost on the way"),
    (40, 0, 19.9, Level.FAIR, "jerky"),
    (40, 0, 10, Level.FAIR, "jerky"),
    (40, 0, 9.9, Level.POOR, "jerky"),
    (None, None, 30, Level.GOOD, "Good connection."),  # what is not known does not count
    (500, 10, 5, Level.POOR, "late, some of the picture and sound is lost on the way, the picture is jerky"),
    (200, 9, 30, Level.POOR, "Weak connection"),  # the worst measure decides
])
def test_call_quality(rtt, loss, fps, level, words):
    quality = rules.call_quality(rtt, loss, fps)
    assert quality.level == level
    assert words in quality.words


# ---------------------------------------------------------------- device check

GOOD = DeviceMeasures(video_frames=150, seconds=5, width=640, height=480, audio_frames=250, audio_peak=0.3,
                      rtt_ms=20, bitrate_kbps=900)


def verdict(**changes) -> dict[str, Level]:
    values = {**GOOD.__dict__, **changes}
    return {f.subject: f.level for f in rules.device_check_verdict(DeviceMeasures(**values))}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, {"camera": Level.GOOD, "microphone": Level.GOOD, "network": Level.GOOD}),
    ({"video_frames": 0}, {"camera": Level.POOR}),
    ({"video_frames": 49}, {"camera": Level.FAIR}),  # under 10 frames a second
    ({"video_frames": 50}, {"camera": Level.GOOD}),
    ({"width": 160, "height": 120}, {"camera": Level.FAIR}),
    ({"seconds": 0, "video_frames": 3}, {"camera": Level.FAIR}),
    ({"audio_frames": 0, "audio_peak": None}, {"microphone": Level.POOR}),
    ({"audio_peak": 0.0}, {"microphone": Level.FAIR}),  # silence: muted, or a dead microphone
    ({"audio_peak": 0.01}, {"microphone": Level.GOOD}),
    ({"rtt_ms": 150}, {"network": Level.FAIR}),
    ({"rtt_ms": 400}, {"network": Level.POOR}),
    # A low bitrate with a smooth picture is a plain picture, not a slow network...
    ({"bitrate_kbps": 40}, {"network": Level.GOOD}),
    # ...with a jerky one, it is the network.
    ({"bitrate_kbps": 299, "video_frames": 40}, {"network": Level.FAIR, "camera": Level.FAIR}),
    ({"bitrate_kbps": 149, "video_frames": 40}, {"network": Level.POOR}),
    ({"bitrate_kbps": 300, "video_frames": 40}, {"network": Level.GOOD}),
    ({"loss_percent": 1.9}, {"network": Level.GOOD}),
    ({"loss_percent": 2}, {"network": Level.FAIR}),
    ({"loss_percent": 8}, {"network": Level.POOR}),
    ({"rtt_ms": None}, {"network": Level.GOOD}),  # bitrate alone still says something
    ({"rtt_ms": None, "bitrate_kbps": None}, {"network": Level.UNKNOWN}),
])
def test_device_check_verdict(changes, expected):
    found = verdict(**changes)
    for subject, level in expected.items():
        assert found[subject] == level, (subject, found)


def test_device_check_advice_is_plain_words():
    for finding in rules.device_check_verdict(DeviceMeasures(0, 5, None, None, 0, None, 500, 50, 10)):
        assert finding.level == Level.POOR
        assert finding.advice.endswith(".") and "kbps" not in finding.advice and "RTT" not in finding.advice
