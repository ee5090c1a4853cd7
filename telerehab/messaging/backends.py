"""The messaging port: what the outbox needs from an SMS provider, and its two backends.

- `log` (the default): "sends" by writing a row to `sms_log`, which the demo and the tests read.
- `twilio`: the real `twilio` library. `TWILIO_BASE_URL` points it at a local server (Prism, or a
  fake of our own in the tests) instead of https://api.twilio.com.

Both answer the two questions delivery asks: send this text (`send`), and did an earlier attempt
that we lost track of reach you after all (`find_sent`).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from urllib3.exceptions import NewConnectionError

from telerehab.extensions import db
from telerehab.messaging.models import SmsLogEntry
from telerehab.messaging.rules import Outcome, outcome_of_status


@dataclass(frozen=True)
class OutgoingSms:
    idempotency_key: str
    to_phone: str
    body: str
    attempt_at: datetime  # this attempt
    first_attempt_at: datetime  # no copy sent before this (less a clock-skew margin) can be ours
    status_callback: str | None = None
    known_sids: frozenset[str] = frozenset()  # SIDs other outbox rows hold: never ours


@dataclass(frozen=True)
class ProviderMessage:
    sid: str
    status: str  # the provider's word: queued, sent, delivered, ...


class ProviderError(Exception):
    """A send or look-up that did not succeed; `outcome` says what delivery should do next."""

    def __init__(self, outcome: Outcome, message: str):
        super().__init__(message)
        self.outcome = outcome


class SmsBackend(Protocol):
    name: str

    def send(self, message: OutgoingSms) -> ProviderMessage: ...

    def find_sent(self, message: OutgoingSms) -> ProviderMessage | None: ...


# ---------------------------------------------------------------- log


class LogBackend:
    """Writes each text to `sms_log`, committed at once as a real provider would keep it."""

    name = "log"

    def __init__(self, from_phone: str | None = None):
        self.from_phone = from_phone

    def send(self, message: OutgoingSms) -> ProviderMessage:
        entry = SmsLogEntry(
            sid="LG" + secrets.token_hex(16), idempotency_key=message.idempotency_key,
            to_phone=message.to_phone, from_phone=self.from_phone, body=message.body,
            created_at=message.attempt_at,
        )
        db.session.add(entry)
        try:
            db.session.commit()
        except IntegrityError:  # this key was logged already: the provider keeps one
            db.session.rollback()
            existing = self.find_sent(message)
            if existing is None:
                raise
            return existing
        return ProviderMessage(sid=entry.sid, status="sent")

    def find_sent(self, message: OutgoingSms) -> ProviderMessage | None:
        sid = db.session.scalar(
            select(SmsLogEntry.sid).where(SmsLogEntry.idempotency_key == message.idempotency_key)
        )
        return ProviderMessage(sid=sid, status="sent") if sid else None


# ---------------------------------------------------------------- twilio

# The Twilio library logs every request's URL and query at INFO level, and a message look-up puts
# the patient's number in the query: its logger stays quiet unless something goes wrong.
_twilio_http_logger = logging.getLogger("telerehab.messaging.twilio_http")
_twilio_http_logger.setLevel(logging.WARNING)

CLOCK_SKEW = timedelta(minutes=10)
LOOKUP_LIMIT = 50


class TwilioBackend:
    name = "twilio"

    def __init__(self, *, account_sid: str, auth_token: str, from_phone: str, base_url: str | None,
                 timeout_seconds: float):
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.from_phone = from_phone
        http_client = TwilioHttpClient(timeout=timeout_seconds, logger=_twilio_http_logger)
        self.client = Client(account_sid, auth_token, http_client=http_client)
        if base_url:
            self.client.api.base_url = base_url.rstrip("/")

    def send(self, message: OutgoingSms) -> ProviderMessage:
        kwargs = {"to": message.to_phone, "from_": self.from_phone, "body": message.body}
        if message.status_callback:
            kwargs["status_callback"] = message.status_callback
        created = self._call(lambda: self.client.messages.create(**kwargs))
        return ProviderMessage(sid=created.sid, status=str(created.status or "queued"))

    def find_sent(self, message: OutgoingSms) -> ProviderMessage | None:
        """Twilio keeps no idempotency key, so look for our text among the recent messages to the
        number: same body (a trial account prefixes its own words), created after our first attempt,
        and not a copy another outbox row already owns."""
        recent = self._call(lambda: self.client.messages.list(
            to=message.to_phone, from_=self.from_phone, limit=LOOKUP_LIMIT, page_size=LOOKUP_LIMIT,
        ))
        since = message.first_attempt_at - CLOCK_SKEW
        for item in recent:
            body = item.body or ""
            if item.sid in message.known_sids or not (body == message.body or body.endswith(message.body)):
                continue
            if item.date_created is not None and item.date_created < since:
                continue
            return ProviderMessage(sid=item.sid, status=str(item.status or "queued"))
        return None

    @staticmethod
    def _call(function):
        from twilio.base.exceptions import TwilioRestException

        try:
            return function()
        except TwilioRestException as error:
            outcome = outcome_of_status(error.status)
            raise ProviderError(outcome, f"HTTP {error.status}, Twilio error {error.code}: {error.msg}"[:500]) from error
        except requests.exceptions.ConnectTimeout as error:
            raise ProviderError(Outcome.RETRY, "Twilio did not accept the connection in time") from error
        except requests.exceptions.ConnectionError as error:
            # Refused before anything was sent, or reset mid-request: only the first is safe to repeat.
            reason = getattr(error.args[0] if error.args else None, "reason", None)
            refused = isinstance(reason, NewConnectionError)
            raise ProviderError(Outcome.RETRY if refused else Outcome.UNCERTAIN,
                                "could not connect to Twilio" if refused else "connection to Twilio broke") from error
        except requests.exceptions.Timeout as error:  # read timeout: the request may have been acted on
            raise ProviderError(Outcome.UNCERTAIN, "Twilio did not answer in time") from error
        except requests.exceptions.RequestException as error:
            raise ProviderError(Outcome.UNCERTAIN, f"request error: {type(error).__name__}") from error


# ---------------------------------------------------------------- choosing one

BACKENDS = ("log", "twilio")


def backend_from_config(config) -> SmsBackend:
    """The backend that SMS_BACKEND names; a Twilio backend without its settings fails loudly."""
    name = (config.get("SMS_BACKEND") or "log").strip().lower()
    if name == "log":
        return LogBackend(from_phone=config.get("TWILIO_FROM_NUMBER"))
    if name == "twilio":
        missing = [key for key in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER")
                   if not config.get(key)]
        if missing:
            raise RuntimeError(f"SMS_BACKEND=twilio needs {', '.join(missing)} (see README, Configuration)")
        timeout = float(config.get("TWILIO_TIMEOUT_SECONDS") or 10)
        lease = float(config.get("OUTBOX_SENDING_LEASE_SECONDS") or 120)
        if lease < 3 * timeout:
            # A send still waiting for Twilio must never be taken for a lost one.
            raise RuntimeError("OUTBOX_SENDING_LEASE_SECONDS must be at least 3 x TWILIO_TIMEOUT_SECONDS")
        return TwilioBackend(
            account_sid=config["TWILIO_ACCOUNT_SID"], auth_token=config["TWILIO_AUTH_TOKEN"],
            from_phone=config["TWILIO_FROM_NUMBER"], base_url=config.get("TWILIO_BASE_URL"),
            timeout_seconds=timeout,
        )
    raise RuntimeError(f"SMS_BACKEND must be one of {', '.join(BACKENDS)}, not {name!r}")
