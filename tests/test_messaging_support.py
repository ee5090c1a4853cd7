"""Helpers the messaging tests share (this module holds no tests of its own).

- `FakeTwilio`: a small HTTP server on 127.0.0.1 speaking enough of Twilio's Messages API for the
  real `twilio` client, which fails on demand (429, 500, 400, a timeout, with or without the
  message having been created).
- `ScriptedBackend`: an in-process backend whose answers a test lists in advance.
- `CrashAfterSend` / `CrashBeforeSend`: wrap a backend to die between the provider call and our
  commit, as a killed process would.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.extensions import db
from telerehab.messaging.backends import OutgoingSms, ProviderError, ProviderMessage
from telerehab.messaging.models import OutboxMessage, SmsLogEntry

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM_NUMBER = "+13125550000"


def sms_consent(world, patient=None):
    patient = patient or world.patient
    therapist = world.therapist if patient.clinic_id == world.clinic.id else world.other_therapist
    from .conftest import NOW

    return accounts.record_consent(Actor(therapist), patient.id, "sms", method="written", note=None, now=NOW)


def rows(model=OutboxMessage):
    db.session.expire_all()
    return list(db.session.scalars(select(model).order_by(model.id)))


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def log_entries() -> list[SmsLogEntry]:
    return rows(SmsLogEntry)


# ---------------------------------------------------------------- in-process backends


@dataclass
class ScriptedBackend:
    """Answers from a script: each item is "ok", a ProviderError, or an exception to raise."""

    script: list = field(default_factory=list)
    lookups: list = field(default_factory=list)  # answers to find_sent: ProviderMessage | None | error
    sent: list[OutgoingSms] = field(default_factory=list)
    looked_up: list[OutgoingSms] = field(default_factory=list)
    name: str = "scripted"

    def send(self, message: OutgoingSms) -> ProviderMessage:
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, BaseException):
            raise step
        self.sent.append(message)
        return ProviderMessage(sid=f"SM{len(self.sent):032d}", status="queued")

    def find_sent(self, message: OutgoingSms) -> ProviderMessage | None:
        self.looked_up.append(message)
        answer = self.lookups.pop(0) if self.lookups else None
        if isinstance(answer, BaseException):
            raise answer
        return answer


class Crash(BaseException):
    """The process dies: not an Exception, so nothing on the way up handles it."""


class CrashAfterSend:
    """The provider takes the message, then the process dies before our commit."""

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name

    def send(self, message):
        self.backend.send(message)
        raise Crash

    def find_sent(self, message):
        return self.backend.find_sent(message)


class CrashBeforeSend(CrashAfterSend):
    """The process dies after marking the row `sending`, before the provider hears of it."""

    def send(self, message):
        raise Crash


def retry(message="HTTP 429") -> ProviderError:
    from telerehab.messaging.rules import Outcome

    return ProviderError(Outcome.RETRY, message)


def uncertain(message="HTTP 503") -> ProviderError:
    from telerehab.messaging.rules import Outcome

    return ProviderError(Outcome.UNCERTAIN, message)


def permanent(message="HTTP 400, Twilio error 21211") -> ProviderError:
    from telerehab.messaging.rules import Outcome

    return ProviderError(Outcome.FAILED, message)


# ---------------------------------------------------------------- a fake Twilio over HTTP

_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-f]{32})/Messages\.json$")


class FakeTwilio:
    """Twilio's Messages API (create and list), on 127.0.0.1, failing on demand.

    `fail_next` holds the modes of the next POSTs: "429", "500", "503-created" (the message is
    made, then a gateway error is answered), "400", "timeout" (no answer in time, nothing made),
    "timeout-created" (the message is made, but the answer comes too late).
    """

    def __init__(self, *, delay_seconds: float = 1.5):
        self.messages: list[dict] = []
        self.posts: list[dict] = []
        self.gets: list[dict] = []
        self.fail_next: list[str] = []
        self.delay_seconds = delay_seconds
        self.clock = lambda: datetime.now(UTC)
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _auth_ok(self) -> bool:
                header = self.headers.get("Authorization", "")
                expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
                return header == f"Basic {expected}"

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: int, message: str) -> None:
                self._answer(status, {"code": code, "message": message, "more_info": "", "status": status})

            def do_POST(self):
                parts = urlsplit(self.path)
                if not _MESSAGES.match(parts.path):
                    return self._error(404, 20404, "The requested resource was not found")
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if not self._auth_ok():
                    return self._error(401, 20003, "Authenticate")
                with fake.lock:
                    fake.posts.append(form)
                    mode = fake.fail_next.pop(0) if fake.fail_next else "ok"
                if mode == "429":
                    return self._error(429, 20429, "Too Many Requests")
                if mode == "500":
                    return self._error(500, 20500, "Internal Server Error")
                if mode == "400":
                    return self._error(400, 21211, "The 'To' number is not a valid phone number.")
                if mode == "timeout":
                    time.sleep(fake.delay_seconds)
                    return self._error(500, 20500, "too late")
                message = fake._create(form)
                if mode == "503-created":
                    return self._error(503, 20503, "Service Unavailable")
                if mode == "timeout-created":
                    time.sleep(fake.delay_seconds)
                return self._answer(201, message)

            def do_GET(self):
                parts = urlsplit(self.path)
                match = _MESSAGES.match(parts.path)
                if not match:
                    return self._error(404, 20404, "The requested resource was not found")
                if not self._auth_ok():
                    return self._error(401, 20003, "Authenticate")
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with fake.lock:
                    fake.gets.append(query)
                    if fake.fail_next and fake.fail_next[0] == "list-500":
                        fake.fail_next.pop(0)
                        return self._error(500, 20500, "Internal Server Error")
                    found = [m for m in reversed(fake.messages)
                             if m["to"] == query.get("To", m["to"]) and m["from"] == query.get("From", m["from"])]
                page_size = int(query.get("PageSize", 50))
                return self._answer(200, {
                    "messages": found[:page_size], "end": min(len(found), page_size) - 1,
                    "first_page_uri": parts.path, "next_page_uri": None, "page": 0, "page_size": page_size,
                    "previous_page_uri": None, "start": 0, "uri": self.path,
                })

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _create(self, form: dict) -> dict:
        with self.lock:
            sid = f"SM{len(self.messages) + 1:032x}"
            created = format_datetime(self.clock(), usegmt=True)
            message = {
                "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "sid": sid, "to": form.get("To"),
                "from": form.get("From"), "body": form.get("Body"), "status": "queued",
                "direction": "outbound-api", "date_created": created, "date_updated": created,
                "date_sent": None, "num_segments": "1", "num_media": "0", "error_code": None,
                "error_message": None, "price": None, "price_unit": "USD", "messaging_service_sid": None,
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json", "subresource_uris": {},
                "status_callback": form.get("StatusCallback"),
            }
            self.messages.append(message)
            return message

    def start(self) -> FakeTwilio:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
