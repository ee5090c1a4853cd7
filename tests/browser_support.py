"""What every headless-Chromium test shares: the browser, the app served for real on 127.0.0.1,
and a recorder that proves a page stayed offline and clean."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from telerehab import create_app
from telerehab.accounts import operations as accounts
from telerehab.accounts.models import Clinic, Organisation, Patient, User
from telerehab.accounts.operations import SYSTEM, Actor
from telerehab.careplans import operations as careplans
from telerehab.careplans.models import Episode
from telerehab.extensions import db

from .conftest import NOW, TEST_SETTINGS, clinic_data, episode_data, make_user, patient_data

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def playwright_or_skip():
    """Playwright's sync API, or a skip of the calling test module saying what is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium): browser tests skipped",
                    allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")


def browser_app(tmp_path_factory, name: str):
    """The app with CSRF enforced over a file SQLite database (the server runs in another thread)."""
    database = tmp_path_factory.mktemp(name) / "telerehab.sqlite3"
    app = create_app({**TEST_SETTINGS, "WTF_CSRF_ENABLED": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}"})
    with app.app_context():
        db.create_all()
    return app


class Riverbend(NamedTuple):
    organisation: Organisation
    clinic: Clinic
    therapist: User
    patient: Patient
    episode: Episode


def riverbend(*, consents: tuple[str, ...] = (), staff: tuple[str, ...] = ()) -> Riverbend:
    """Where most browser tests start: the Downtown clinic of Riverbend, its therapist (who signs in
    as "therapist"), a patient of theirs with an episode of care and the consents named (e.g.
    "rtm"), and further staff who sign in as their role (e.g. "billing"; an admin has no clinic)."""
    organisation = accounts.create_organisation("Riverbend")
    clinic = accounts.create_clinic(SYSTEM, clinic_data(organisation.id, "Downtown"), now=NOW)
    therapist = make_user(organisation.id, "therapist", "therapist", clinic.id)
    for role in staff:
        make_user(organisation.id, role, role, None if role == "admin" else clinic.id)
    patient = accounts.create_patient(Actor(therapist), patient_data(primary_therapist_id=therapist.id), now=NOW)
    episode = careplans.create_episode(Actor(therapist), patient.id, episode_data(), now=NOW)
    for kind in consents:
        accounts.record_consent(Actor(therapist), patient.id, kind, method="written", note=None, now=NOW)
    return Riverbend(organisation, clinic, therapist, patient, episode)


@contextmanager
def served(app) -> Iterator[str]:
    """Serve `app` on a free port of 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


# Video pages: two fake cameras and a fake microphone, granted without a prompt (screen sharing
# too), and WebRTC allowed over loopback (Chromium leaves 127.0.0.1 out of its ICE candidates otherwise).
MEDIA_ARGS = ["--use-fake-device-for-media-stream=device-count=2", "--use-fake-ui-for-media-stream",
              "--auto-accept-this-tab-capture", "--allow-loopback-in-peer-connection"]


@contextmanager
def chromium(*, media: bool = False) -> Iterator:
    sync_api = playwright_or_skip()
    with sync_api.sync_playwright() as playwright:
        args = CHROMIUM_ARGS + (MEDIA_ARGS if media else [])
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            browser.close()


class Recorder:
    """Every request a page makes and every console message or script error it shows."""

    def __init__(self, page) -> None:
        self.requests: list[str] = []
        self.responses: list[tuple[int, str]] = []
        self.console: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("response", lambda response: self.responses.append((response.status, response.url)))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def assert_offline_and_clean(self) -> None:
        assert self.requests, "no requests recorded"
        foreign = [url for url in self.requests
                   if not url.startswith(("data:", "blob:")) and urlsplit(url).hostname != "127.0.0.1"]
        assert foreign == [], f"requests left the machine: {foreign}"
        csp = [m for m in self.console if "Content Security Policy" in m or "Content-Security-Policy" in m]
        assert csp == [], f"the CSP blocked something: {csp}"
        # Refused input (422) and refused pages (404) are expected answers, and the browser logs
        # each one as a failed load; anything else logged as an error is not.
        errors = [m for m in self.console if m.startswith(("error:", "pageerror:"))
                  and "Failed to load resource: the server responded with a status of 4" not in m]
        assert errors == [], f"console errors: {errors}"
        assert [r for r in self.responses if r[0] >= 500] == []
        assets = [r for r in self.responses if "/static/" in r[1]]
        assert assets, "no stylesheet or script was loaded"
        assert [r for r in assets if r[0] not in (200, 304)] == [], "a stylesheet or script did not load"


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
