"""Pure messaging rules: the SMS reply parser, quiet hours (timezones, DST), reminder times,
backoff, delivery-status moves and message bodies. No database, no app."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from telerehab.messaging import rules
from telerehab.messaging.rules import DeliveryStatus, Intent, Outcome, QuietHours, parse_reply

# ---------------------------------------------------------------- the reply parser

CHECKIN, HELP, OPT_OUT, OPT_IN, UNKNOWN = Intent.CHECKIN, Intent.HELP, Intent.OPT_OUT, Intent.OPT_IN, Intent.UNKNOWN

# text -> (intent, pain, done, keyword)
PARSER_TABLE = [
    # check-ins
    ("DONE", CHECKIN, None, True, False),
    ("done", CHECKIN, None, True, False),
    ("  Done!  ", CHECKIN, None, True, False),
    ("Done.", CHECKIN, None, True, False),
    ("DONE 6", CHECKIN, 6, True, False),
    ("done 6", CHECKIN, 6, True, False),
    ("DONE    6", CHECKIN, 6, True, False),
    ("\tdone\n6 ", CHECKIN, 6, True, False),
    ("DONE6", CHECKIN, 6, True, False),
    ("Done, 6", CHECKIN, 6, True, False),
    ("DONE - 6", CHECKIN, 6, True, False),
    ("done pain 6", CHECKIN, 6, True, False),
    ("Done, pain: 6", CHECKIN, 6, True, False),
    ("DONE 6/10", CHECKIN, 6, True, False),
    ("DONE 6 / 10", CHECKIN, 6, True, False),
    ("DONE 0", CHECKIN, 0, True, False),
    ("DONE 10", CHECKIN, 10, True, False),
    ("DONE 06", CHECKIN, 6, True, False),
    ("PAIN 4", CHECKIN, 4, False, False),
    ("pain 4", CHECKIN, 4, False, False),
    ("Pain: 4", CHECKIN, 4, False, False),
    ("PAIN4", CHECKIN, 4, False, False),
    ("pain 4/10", CHECKIN, 4, False, False),
    ("PAIN 0", CHECKIN, 0, False, False),
    ("DONE\u00a06", CHECKIN, 6, True, False),  # a no-break space from a phone keyboard
    # numbers out of range, or not whole: not guessed at
    ("DONE 11", UNKNOWN, None, False, False),
    ("DONE 66", UNKNOWN, None, False, False),
    ("DONE -1", UNKNOWN, None, False, False),
    ("PAIN 11", UNKNOWN, None, False, False),
    ("PAIN 4.5", UNKNOWN, None, False, False),
    ("PAIN -3", UNKNOWN, None, False, False),
    ("PAIN 100", UNKNOWN, None, False, False),
    ("PAIN", UNKNOWN, None, False, False),
    ("PAIN high", UNKNOWN, None, False, False),
    ("DONE 6 7", UNKNOWN, None, False, False),
    # help
    ("HELP", HELP, None, False, True),
    ("help", HELP, None, False, True),
    ("Help?", HELP, None, False, True),
    ("INFO", HELP, None, False, True),
    # Twilio's opt-out keywords, exact (Twilio answers them itself)
    ("STOP", OPT_OUT, None, False, True),
    ("stop", OPT_OUT, None, False, True),
    (" Stop. ", OPT_OUT, None, False, True),
    ("STOPALL", OPT_OUT, None, False, True),
    ("STOP ALL", OPT_OUT, None, False, True),
    ("UNSUBSCRIBE", OPT_OUT, None, False, True),
    ("unsubscribe", OPT_OUT, None, False, True),
    ("CANCEL", OPT_OUT, None, False, True),
    ("END", OPT_OUT, None, False, True),
    ("end", OPT_OUT, None, False, True),
    ("QUIT", OPT_OUT, None, False, True),
    ("REVOKE", OPT_OUT, None, False, True),
    ("OPTOUT", OPT_OUT, None, False, True),
    ("opt-out", OPT_OUT, None, False, True),
    ("OPT OUT", OPT_OUT, None, False, True),
    # "stop" with more words still stops texts; ambiguous words with more words do not
    ("Stop texting me", OPT_OUT, None, False, False),
    ("STOP please", OPT_OUT, None, False, False),
    ("unsubscribe me", OPT_OUT, None, False, False),
    ("Cancel Thursday's visit", UNKNOWN, None, False, False),
    ("end of the week is better", UNKNOWN, None, False, False),
    ("quit smoking yesterday", UNKNOWN, None, False, False),
    # opt back in
    ("START", OPT_IN, None, False, True),
    ("start", OPT_IN, None, False, True),
    ("UNSTOP", OPT_IN, None, False, True),
    ("YES", OPT_IN, None, False, True),
    ("yes", OPT_IN, None, False, True),
    # anything else
    ("", UNKNOWN, None, False, False),
    ("   ", UNKNOWN, None, False, False),
    ("My knee hurts after the stairs", UNKNOWN, None, False, False),
    ("done for today", UNKNOWN, None, False, False),
    ("did it", UNKNOWN, None, False, False),
    ("6", UNKNOWN, None, False, False),
    ("DONEE", UNKNOWN, None, False, False),
    ("nope", UNKNOWN, None, False, False),
    ("👍", UNKNOWN, None, False, False),
    ("STOPPING by tomorrow", UNKNOWN, None, False, False),
    ("yes please call me", UNKNOWN, None, False, False),
]


@pytest.mark.parametrize(("text", "intent", "pain", "done", "keyword"), PARSER_TABLE,
                         ids=[repr(row[0]) for row in PARSER_TABLE])
def test_parse_reply(text, intent, pain, done, keyword):
    reply = parse_reply(text)
    assert (reply.intent, reply.pain, reply.done, reply.keyword) == (intent, pain, done, keyword)


@pytest.mark.parametrize("text", ["DONE 11", "PAIN 4.5", "PAIN", "DONE -1", "PAIN 100"])
def test_nearly_a_checkin_says_how_to_write_the_score(text):
    assert parse_reply(text).problem == rules.PAIN_HINT


@pytest.mark.parametrize("text", ["hello", "done for today", "My knee hurts"])
def test_other_text_has_no_pain_hint(text):
    assert parse_reply(text).problem is None


def test_every_twilio_keyword_is_handled():
    for word in rules.OPT_OUT_KEYWORDS:
        assert parse_reply(word.lower()).intent == OPT_OUT
    for word in rules.OPT_IN_KEYWORDS:
        assert parse_reply(word.capitalize()).intent == OPT_IN
    for word in rules.HELP_KEYWORDS:
        assert parse_reply(f"  {word} ").intent == HELP


# ---------------------------------------------------------------- quiet hours

Q = QuietHours(time(21), time(8))
CHICAGO, BERLIN, HONOLULU, KOLKATA, AUCKLAND = (
    "America/Chicago", "Europe/Berlin", "Pacific/Honolulu", "Asia/Kolkata", "Pacific/Auckland")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: str, *args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)


# now (UTC) -> the end of quiet hours, or None when a text may go now
QUIET_TABLE = [
    # Chicago in winter (CST, UTC-6)
    ("20:59 local: not quiet", local(CHICAGO, 2026, 1, 15, 20, 59), CHICAGO, Q, None),
    ("21:00 local: quiet until 08:00", local(CHICAGO, 2026, 1, 15, 21, 0), CHICAGO, Q, local(CHICAGO, 2026, 1, 16, 8, 0)),
    ("23:30 local", local(CHICAGO, 2026, 1, 15, 23, 30), CHICAGO, Q, local(CHICAGO, 2026, 1, 16, 8, 0)),
    ("00:00 local", local(CHICAGO, 2026, 1, 16, 0, 0), CHICAGO, Q, local(CHICAGO, 2026, 1, 16, 8, 0)),
    ("07:59 local", local(CHICAGO, 2026, 1, 16, 7, 59), CHICAGO, Q, local(CHICAGO, 2026, 1, 16, 8, 0)),
    ("08:00 local: over", local(CHICAGO, 2026, 1, 16, 8, 0), CHICAGO, Q, None),
    ("noon local", local(CHICAGO, 2026, 1, 16, 12, 0), CHICAGO, Q, None),
    ("03:00 UTC is 21:00 CST the day before", utc(2026, 1, 16, 3, 0), CHICAGO, Q, utc(2026, 1, 16, 14, 0)),
    ("15:00 UTC is 09:00 CST", utc(2026, 1, 16, 15, 0), CHICAGO, Q, None),
    # the same UTC instant is quiet in one zone and not in another
    ("22:00 UTC in Berlin (23:00 CET)", utc(2026, 1, 16, 22, 0), BERLIN, Q, local(BERLIN, 2026, 1, 17, 8, 0)),
    ("22:00 UTC in Honolulu (12:00 HST)", utc(2026, 1, 16, 22, 0), HONOLULU, Q, None),
    ("half-hour zone: 21:15 IST", local(KOLKATA, 2026, 1, 16, 21, 15), KOLKATA, Q, local(KOLKATA, 2026, 1, 17, 8, 0)),
    ("across a year end", local(AUCKLAND, 2026, 12, 31, 23, 0), AUCKLAND, Q, local(AUCKLAND, 2027, 1, 1, 8, 0)),
    # DST: US spring forward 2026-03-08 02:00 -> 03:00; the night is an hour shorter
    ("spring-forward night, 23:00 CST", local(CHICAGO, 2026, 3, 7, 23, 0), CHICAGO, Q, utc(2026, 3, 8, 13, 0)),
    ("spring-forward night, 03:30 CDT", local(CHICAGO, 2026, 3, 8, 3, 30), CHICAGO, Q, utc(2026, 3, 8, 13, 0)),
    ("spring-forward day, 08:00 CDT is over", utc(2026, 3, 8, 13, 0), CHICAGO, Q, None),
    ("spring-forward day, 07:00 CDT (12:00 UTC) still quiet", utc(2026, 3, 8, 12, 0), CHICAGO, Q, utc(2026, 3, 8, 13, 0)),
    # US fall back 2026-11-01 02:00 -> 01:00; the night is an hour longer
    ("fall-back night, 22:00 CDT", local(CHICAGO, 2026, 10, 31, 22, 0), CHICAGO, Q, utc(2026, 11, 1, 14, 0)),
    ("fall-back night, first 01:30 (CDT)", utc(2026, 11, 1, 6, 30), CHICAGO, Q, utc(2026, 11, 1, 14, 0)),
    ("fall-back night, second 01:30 (CST)", utc(2026, 11, 1, 7, 30), CHICAGO, Q, utc(2026, 11, 1, 14, 0)),
    ("fall-back day, 08:00 CST (14:00 UTC) is over", utc(2026, 11, 1, 14, 0), CHICAGO, Q, None),
    ("fall-back day, 13:30 UTC is 07:30 CST: quiet", utc(2026, 11, 1, 13, 30), CHICAGO, Q, utc(2026, 11, 1, 14, 0)),
    # Europe changes on another day (2026-03-29)
    ("Berlin spring forward, 02:30 does not exist; 01:59 CET", local(BERLIN, 2026, 3, 29, 1, 59), BERLIN, Q,
     utc(2026, 3, 29, 6, 0)),
    # a window that does not wrap midnight, and none at all
    ("13:00-14:00 window, 13:30", local(CHICAGO, 2026, 1, 16, 13, 30), CHICAGO, QuietHours(time(13), time(14)),
     local(CHICAGO, 2026, 1, 16, 14, 0)),
    ("13:00-14:00 window, 14:00", local(CHICAGO, 2026, 1, 16, 14, 0), CHICAGO, QuietHours(time(13), time(14)), None),
    ("no quiet hours (start == end)", local(CHICAGO, 2026, 1, 16, 3, 0), CHICAGO, QuietHours(time(0), time(0)), None),
    # quiet hours that end at a time the spring-forward change skips: the first instant after the gap
    ("ending at 02:30 on spring-forward day", local(CHICAGO, 2026, 3, 8, 1, 0), CHICAGO,
     QuietHours(time(22), time(2, 30)), utc(2026, 3, 8, 8, 30)),
]


@pytest.mark.parametrize(("name", "now", "zone", "quiet", "expected"), QUIET_TABLE, ids=[r[0] for r in QUIET_TABLE])
def test_quiet_hours_end(name, now, zone, quiet, expected):
    assert rules.quiet_hours_end(now, zone, quiet) == expected
    assert rules.earliest_send_time(now, zone, quiet) == (expected or now)


def test_the_end_of_quiet_hours_is_never_inside_them():
    start = utc(2026, 1, 1)
    for zone in (CHICAGO, BERLIN, HONOLULU, KOLKATA, AUCKLAND, "America/St_Johns", "Australia/Lord_Howe"):
        for step in range(0, 24 * 400, 7):  # every 7 hours through a year, both DST changes included
            now = start + timedelta(hours=step, minutes=step % 60)
            send = rules.earliest_send_time(now, zone, Q)
            assert send >= now
            assert rules.quiet_hours_end(send, zone, Q) is None, (zone, now)
            assert send - now <= timedelta(hours=12)


@pytest.mark.parametrize(("value", "expected"), [
    ("21:00-08:00", QuietHours(time(21), time(8))),
    (" 9:30 - 7:05 ", QuietHours(time(9, 30), time(7, 5))),
    ("00:00-00:00", QuietHours(time(0), time(0))),
])
def test_parse_quiet_hours(value, expected):
    assert rules.parse_quiet_hours(value) == expected


@pytest.mark.parametrize("value", ["", "21:00", "25:00-08:00", "21-08", "21:00-8", "21:60-08:00", "abc"])
def test_parse_quiet_hours_refuses(value):
    with pytest.raises(ValueError):
        rules.parse_quiet_hours(value)


# ---------------------------------------------------------------- reminder times


@pytest.mark.parametrize(("now", "zone", "at", "expected"), [
    (local(CHICAGO, 2026, 3, 2, 17, 59), CHICAGO, time(18), None),
    (local(CHICAGO, 2026, 3, 2, 18, 0), CHICAGO, time(18), date(2026, 3, 2)),
    (local(CHICAGO, 2026, 3, 2, 23, 59), CHICAGO, time(18), date(2026, 3, 2)),
    (local(CHICAGO, 2026, 3, 3, 0, 5), CHICAGO, time(18), None),  # a new local day, before its time
    (utc(2026, 3, 3, 0, 30), CHICAGO, time(18), date(2026, 3, 2)),  # already the 3rd in UTC
    (utc(2026, 3, 3, 0, 30), BERLIN, time(18), None),  # 01:30 on the 3rd in Berlin
    (utc(2026, 3, 8, 23, 0), CHICAGO, time(18), date(2026, 3, 8)),  # spring-forward day: 18:00 CDT
    (utc(2026, 3, 8, 22, 59), CHICAGO, time(18), None),
    (utc(2026, 11, 1, 23, 59), CHICAGO, time(18), None),  # fall-back day: 18:00 CST is 00:00 UTC
    (utc(2026, 11, 2, 0, 0), CHICAGO, time(18), date(2026, 11, 1)),
])
def test_reminder_due_day(now, zone, at, expected):
    assert rules.reminder_due_day(now, zone, at) == expected


@pytest.mark.parametrize(("at", "problem"), [
    (time(18), False), (time(8), False), (time(20, 59), False), (time(21), True), (time(23), True),
    (time(0), True), (time(7, 59), True),
])
def test_reminder_time_must_be_outside_quiet_hours(at, problem):
    assert (rules.reminder_time_problem(at, Q) is not None) is problem


def test_reminder_key():
    assert rules.reminder_key(42, date(2026, 3, 2)) == "reminder:42:2026-03-02"


# ---------------------------------------------------------------- backoff and provider answers


@pytest.mark.parametrize(("attempt", "fraction", "seconds"), [
    (1, 0.0, 30), (2, 0.0, 60), (3, 0.0, 120), (4, 0.0, 240), (7, 0.0, 1920), (8, 0.0, 3600),
    (50, 0.0, 3600), (1, 0.5, 33), (1, 0.999, 35.994), (3, 1.0, 144), (8, 1.0, 4320),
    (1, -5.0, 30), (1, 7.0, 36),  # a random source out of range is clamped: jitter stays bounded
])
def test_backoff_delay(attempt, fraction, seconds):
    delay = rules.backoff_delay(attempt, base_seconds=30, max_seconds=3600, jitter=0.2, random_fraction=fraction)
    assert delay == timedelta(seconds=seconds)


def test_backoff_jitter_is_bounded():
    for attempt in range(1, 12):
        low = rules.backoff_delay(attempt, base_seconds=30, max_seconds=3600, jitter=0.2, random_fraction=0)
        high = rules.backoff_delay(attempt, base_seconds=30, max_seconds=3600, jitter=0.2, random_fraction=1)
        assert high == low * 1.2
    with pytest.raises(ValueError):
        rules.backoff_delay(0, base_seconds=30, max_seconds=3600, jitter=0.2, random_fraction=0)


@pytest.mark.parametrize(("status", "outcome"), [
    (429, Outcome.RETRY), (500, Outcome.UNCERTAIN), (502, Outcome.UNCERTAIN), (503, Outcome.UNCERTAIN),
    (504, Outcome.UNCERTAIN), (408, Outcome.UNCERTAIN), (400, Outcome.FAILED), (401, Outcome.FAILED),
    (403, Outcome.FAILED), (404, Outcome.FAILED), (422, Outcome.FAILED),
])
def test_outcome_of_status(status, outcome):
    assert rules.outcome_of_status(status) == outcome


@pytest.mark.parametrize(("current", "reported", "expected"), [
    ("sent", "delivered", DeliveryStatus.DELIVERED),
    ("sending", "sent", DeliveryStatus.SENT),  # a callback after a crash before our commit
    ("sent", "undelivered", DeliveryStatus.FAILED),
    ("sent", "failed", DeliveryStatus.FAILED),
    ("delivered", "sent", None),  # late and out of order: never backwards
    ("delivered", "failed", None),
    ("sent", "queued", None),
    ("sent", "sending", None),
    ("sent", "sent", None),
    ("cancelled", "delivered", None),
    ("sent", "read", DeliveryStatus.DELIVERED),
    ("sent", "", None),
    ("sent", "DELIVERED", DeliveryStatus.DELIVERED),
])
def test_status_after_callback(current, reported, expected):
    assert rules.status_after_callback(current, reported) == expected


# ---------------------------------------------------------------- what the texts say


def test_reminder_body_is_free_of_clinical_detail():
    body = rules.reminder_body("Riverbend Downtown")
    assert body.startswith("Riverbend Downtown:")
    assert "STOP" in body and "DONE" in body
    assert len(body) <= 160  # one SMS segment
    assert rules.clinical_detail_problem(body, ["M17.11", "Right knee OA", "knee", "Low back pain"]) is None
    for word in ("diagnos", "knee", "back", "shoulder", "surgery", "Alvarez"):
        assert word not in body.lower()


@pytest.mark.parametrize(("body", "terms", "refused"), [
    ("Riverbend: see you Thursday", ["M17.11", "Right knee OA"], False),
    ("Riverbend: how is the right knee OA today?", ["M17.11", "Right knee OA"], True),
    ("Riverbend: re M17.11", ["M17.11"], True),
    ("Riverbend: re m1711", ["M17.11"], True),
    ("Riverbend: RIGHT  KNEE   OA", ["Right knee OA"], True),
    ("Riverbend: ok", ["", "ab"], False),  # too short to be meaningful
])
def test_clinical_detail_problem(body, terms, refused):
    assert (rules.clinical_detail_problem(body, terms) is not None) is refused


def test_help_and_other_replies_fit_in_two_segments():
    long_name = "Riverbend Physical Therapy and Sports Rehabilitation Downtown"
    for text in (rules.help_reply(long_name, "+13125550100"), rules.help_reply(None, None),
                 rules.not_understood_reply(long_name, "+13125550100", rules.PAIN_HINT),
                 rules.checkin_reply(6), rules.checkin_reply(None), rules.OPT_OUT_CONFIRMATION,
                 rules.UNKNOWN_SENDER_REPLY, rules.reminder_body(long_name)):
        assert len(text) <= rules.MAX_BODY_CHARS


@pytest.mark.parametrize(("text", "problem"), [
    ("See you Thursday", False), ("", True), ("   ", True), ("x" * 280, False), ("x" * 281, True),
])
def test_body_problem(text, problem):
    assert (rules.body_problem(text) is not None) is problem
