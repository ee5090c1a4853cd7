"""Pure rules for text messaging: reading a patient's reply, quiet hours, retry backoff, message bodies.

No Flask, no SQLAlchemy: plain values in, plain values out; time and randomness are parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

# ---------------------------------------------------------------- reading a reply


class Intent(StrEnum):
    CHECKIN = "checkin"  # DONE, DONE 6, PAIN 4
    HELP = "help"  # HELP, INFO
    OPT_OUT = "opt_out"  # STOP and its synonyms
    OPT_IN = "opt_in"  # START, UNSTOP, YES
    UNKNOWN = "unknown"  # anything else: a help reply, and the therapist reads it


# Twilio's default opt-out, opt-in and help keywords for long codes (an exact, single-word,
# case-insensitive body). REVOKE and OPTOUT were added for the FCC's 2025 revocation rule.
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
# Words that mean "stop texting me" even with more words after them ("Stop texting me please").
# END, QUIT and CANCEL are not among them: "Cancel Thursday's visit" is not an opt-out.
UNAMBIGUOUS_OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "REVOKE", "OPTOUT"})

PAIN_MIN, PAIN_MAX = 0, 10


@dataclass(frozen=True)
class Reply:
    """What a patient's text means."""

    intent: Intent
    pain: int | None = None
    done: bool = False  # DONE: the day's exercises are done (PAIN alone says nothing about them)
    # True when the whole text is one of Twilio's keywords: Twilio answers those itself (and blocks
    # any answer of ours after an opt-out), so we answer with an empty TwiML document.
    keyword: bool = False
    problem: str | None = None  # why an almost-understood reply was not taken (pain out of range)


def normalise_text(text: str) -> str:
    """Upper case, one space between words, no punctuation around them; '6/10' keeps its slash."""
    text = (text or "").upper().replace("\u00a0", " ")
    text = re.sub(r"(?<=\d)\s*/\s*10\b", "/10", text)
    text = re.sub(r"[^\w/+-]+", " ", text)  # commas, colons, full stops, emoji: spaces
    return " ".join(text.split())


# DONE, optionally followed by the pain score: DONE 6, DONE6, DONE - 6, DONE PAIN 6, DONE 6/10.
# A dash is a separator when it stands alone or right after the word ("DONE - 6", "DONE-6"), and a
# minus sign when it sticks to the number ("DONE -1", refused as out of range).
_SEP = r"(?: - |- | |-)?"
_DONE = re.compile(rf"^DONE(?:{_SEP}(?:PAIN ?)?(?P<pain>-?\d+(?:\.\d+)?)(?:/10)?)?$")
_PAIN = re.compile(rf"^PAIN{_SEP}(?P<pain>-?\d+(?:\.\d+)?)(?:/10)?$")


def parse_reply(text: str) -> Reply:
    """Read a patient's SMS. Anything not clearly understood is UNKNOWN, never guessed at."""
    words = normalise_text(text)
    compact = words.replace(" ", "").replace("-", "")
    if compact in OPT_OUT_KEYWORDS:  # STOP, Stop., STOP ALL, opt-out, OPT OUT
        return Reply(Intent.OPT_OUT, keyword=True)
    if words.split(" ", 1)[0] in UNAMBIGUOUS_OPT_OUT_WORDS:
        return Reply(Intent.OPT_OUT)
    if compact in OPT_IN_KEYWORDS:
        return Reply(Intent.OPT_IN, keyword=True)
    if compact in HELP_KEYWORDS:
        return Reply(Intent.HELP, keyword=True)
    match = _DONE.match(words) or _PAIN.match(words)
    if match is None:
        # "DONE 4.5", "PAIN", "PAIN high": nearly a check-in, so say how to write the score.
        if words == "PAIN" or (words.startswith(("DONE", "PAIN")) and re.search(r"\d", words)):
            return Reply(Intent.UNKNOWN, problem=PAIN_HINT)
        return Reply(Intent.UNKNOWN)
    done = words.startswith("DONE")
    pain_text = match.group("pain")
    if pain_text is None:
        return Reply(Intent.CHECKIN, done=done)  # DONE without a score
    if not pain_text.isdigit() or not PAIN_MIN <= int(pain_text) <= PAIN_MAX:
        return Reply(Intent.UNKNOWN, problem=PAIN_HINT)
    return Reply(Intent.CHECKIN, pain=int(pain_text), done=done)


# ---------------------------------------------------------------- what we say

PAIN_HINT = "Pain is a whole number from 0 (none) to 10 (worst), e.g. DONE 3 or PAIN 4."
MAX_BODY_CHARS = 320  # two concatenated SMS segments: enough for a short note, never an essay


def help_reply(clinic_name: str | None, clinic_phone: str | None) -> str:
    who = clinic_name or "your physical therapy clinic"
    call = f" Questions? Call {clinic_phone}." if clinic_phone else " Questions? Call your clinic."
    return (f"{who}: reply DONE after your home exercises, or DONE and your pain 0-10 (e.g. DONE 3)."
            f"{call} Reply STOP to stop texts.")


def not_understood_reply(clinic_name: str | None, clinic_phone: str | None, problem: str | None) -> str:
    lead = problem or "Sorry, we did not understand that. Your care team will read your message."
    return f"{lead} {help_reply(clinic_name, clinic_phone)}"


def checkin_reply(pain: int | None) -> str:
    if pain is None:
        return "Thanks! Your exercise check-in for today is recorded."
    return f"Thanks! Your check-in for today is recorded, with pain {pain}/10."


def checkin_refused_reply() -> str:
    return "Thanks. We could not record this check-in by text; your care team will see your message."


OPT_OUT_CONFIRMATION = "You will get no more texts from us. Reply START to ask to receive them again."
UNKNOWN_SENDER_REPLY = "This number is for patients of our physical therapy clinics. Please call your clinic."


def reminder_body(clinic_name: str) -> str:
    """The daily reminder: who is writing and what to reply, and nothing clinical at all."""
    return (f"{clinic_name}: time for today's home exercise check-in. Reply DONE, or DONE and your "
            "pain 0-10 (e.g. DONE 3). Reply STOP to stop texts.")


def manual_body(clinic_name: str, text: str) -> str:
    return f"{clinic_name}: {' '.join(text.split())}"


def clinical_detail_problem(body: str, terms: list[str]) -> str | None:
    """Refuse a body that names the patient's diagnoses or plan of care: SMS is not a private channel.

    `terms` are the diagnosis codes (matched with or without their dot) and episode titles.
    """
    folded = re.sub(r"\s+", " ", body).casefold()
    undotted = folded.replace(".", "")
    for term in terms:
        term = re.sub(r"\s+", " ", term or "").strip().casefold()
        if len(term) < 3:
            continue
        if term in folded or term.replace(".", "") in undotted:
            return ("Texts are not private: leave out diagnoses and the plan of care "
                    f"(the message names {term.upper() if _looks_like_code(term) else repr(term)}).")
    return None


def _looks_like_code(term: str) -> bool:
    return bool(re.fullmatch(r"[a-z][0-9][0-9a-z.]*", term))


def body_problem(text: str) -> str | None:
    text = " ".join((text or "").split())
    if not text:
        return "Write the message."
    if len(text) > MAX_BODY_CHARS - 40:
        return f"Keep it under {MAX_BODY_CHARS - 40} characters: a text is for short notes; call for more."
    return None


# ---------------------------------------------------------------- quiet hours and reminder times

@dataclass(frozen=True)
class QuietHours:
    start: time  # local wall-clock time quiet hours begin (e.g. 21:00)
    end: time  # ... and end (e.g. 08:00); start > end wraps midnight; start == end: none

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_clock(value: str) -> time:
    match = re.fullmatch(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*", value or "")
    if not match:
        raise ValueError(f"not a time of day (HH:MM): {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def parse_quiet_hours(value: str) -> QuietHours:
    """'21:00-08:00' -> QuietHours(21:00, 08:00)."""
    start, separator, end = (value or "").partition("-")
    if not separator:
        raise ValueError(f"quiet hours are written HH:MM-HH:MM, not {value!r}")
    return QuietHours(parse_clock(start), parse_clock(end))


def in_quiet_window(local: time, quiet: QuietHours) -> bool:
    if quiet.start == quiet.end:
        return False
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def local_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC-comparable instant of a wall-clock time on a local day.

    A time that does not exist (skipped by a spring-forward change) is read with the offset from
    before the change, so it lands just after the gap; a time that happens twice (fall back) is
    its first occurrence.
    """
    return datetime.combine(day, clock, tzinfo=zone).astimezone(ZoneInfo("UTC"))


def quiet_hours_end(now: datetime, timezone: str, quiet: QuietHours) -> datetime | None:
    """When quiet hours are on for the patient at `now`, the instant they end; otherwise None."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    if not in_quiet_window(local.time(), quiet):
        return None
    day = local.date()
    # The end is today when we are before it (after midnight, or a window that does not wrap),
    # otherwise tomorrow (the evening part of a window that wraps midnight).
    end_day = day if local.time() < quiet.end else day + timedelta(days=1)
    end = local_instant(end_day, quiet.end, zone)
    return end if end > now else now


def earliest_send_time(now: datetime, timezone: str, quiet: QuietHours) -> datetime:
    """`now`, or the end of the patient's quiet hours when they are on."""
    return quiet_hours_end(now, timezone, quiet) or now


def local_date(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def reminder_due_day(now: datetime, timezone: str, reminder_time: time) -> date | None:
    """The patient's local day whose reminder is due at `now`, or None before the reminder time."""
    zone = ZoneInfo(timezone)
    day = now.astimezone(zone).date()
    if now >= local_instant(day, reminder_time, zone):
        return day
    return None


def reminder_time_problem(reminder_time: time, quiet: QuietHours) -> str | None:
    if in_quiet_window(reminder_time, quiet):
        return f"This is inside the patient's quiet hours ({quiet}); choose a time outside them."
    return None


def reminder_key(patient_id: int, day: date) -> str:
    return f"reminder:{patient_id}:{day.isoformat()}"


# ---------------------------------------------------------------- delivery


class Outcome(StrEnum):
    """What a provider's answer means for the message."""

    SENT = "sent"
    RETRY = "retry"  # certainly not sent (429, connection refused): try again later
    UNCERTAIN = "uncertain"  # may have been sent (timeout, 5xx): ask the provider before resending
    FAILED = "failed"  # refused for good (most 4xx: invalid number, unsubscribed recipient)


def outcome_of_status(status: int) -> Outcome:
    """An HTTP error status from the provider, classified."""
    if status == 429:
        return Outcome.RETRY
    if status >= 500:
        # A 502/504 from a gateway can follow a request the provider did act on.
        return Outcome.UNCERTAIN
    if status in (408,):
        return Outcome.UNCERTAIN
    return Outcome.FAILED


def backoff_delay(attempt: int, *, base_seconds: float, max_seconds: float, jitter: float,
                  random_fraction: float) -> timedelta:
    """Exponential backoff after failed attempt number `attempt` (1, 2, ...), with bounded jitter.

    The delay is base * 2**(attempt-1), capped at `max_seconds`, then stretched by up to `jitter`
    (a fraction, e.g. 0.2 for +20 %) times `random_fraction` (a number in [0, 1)). The caller
    supplies the random number, so tests are deterministic.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    raw = min(max_seconds, base_seconds * 2 ** min(attempt - 1, 32))
    fraction = min(max(random_fraction, 0.0), 1.0)
    return timedelta(seconds=raw * (1 + max(jitter, 0.0) * fraction))


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed: a send may have happened; the provider is asked before any resend
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED})

# Twilio's MessageStatus values mapped to ours; the ones not listed say nothing new.
_PROVIDER_STATUS = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED,
}
_RANK = {DeliveryStatus.QUEUED: 0, DeliveryStatus.SENDING: 1, DeliveryStatus.SENT: 2,
         DeliveryStatus.DELIVERED: 3, DeliveryStatus.FAILED: 3, DeliveryStatus.CANCELLED: 3}


def status_after_callback(current: str, provider_status: str) -> DeliveryStatus | None:
    """Our status after a delivery-status callback, or None to leave it. Callbacks arrive out of
    order (a late 'sent' after 'delivered'), so a status never moves backwards."""
    new = _PROVIDER_STATUS.get((provider_status or "").lower())
    if new is None:
        return None
    current = DeliveryStatus(current)
    if current in (DeliveryStatus.CANCELLED,) or _RANK[new] <= _RANK[current]:
        return None
    return new
