"""The role tables' shared parts: the `Case` row, the calls that play a row as one role, the
world-building helpers the rows use, and the gathering of every domain's rows.

Each domain keeps its rows in tests/test_authorisation_<domain>.py (module-level lists of `Case`,
and sets named PUBLIC_* of (method, rule) open to anyone); tests/test_authorisation.py plays every
row against every role, so a domain module holds data and its own special cases, never a copy of
the generic tests.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor

from .conftest import NOW, PASSWORD, bearer

ROLES = ("admin", "therapist", "assistant", "billing", "patient")
REFUSED = {401, 403, 404}


@dataclass(frozen=True)
class Case:
    method: str
    rule: str  # the Flask URL rule, so the table can be checked against app.url_map
    path: Callable  # world -> the concrete path (own-clinic target)
    allowed: dict[str, int]  # role -> success status; roles not listed are refused
    body: Callable | None = None  # world -> JSON body or form data
    other_path: Callable | None = None  # world -> a path whose target is another clinic's patient
    other_allowed: tuple[str, ...] = ()  # roles that may reach the other clinic's record

    def __str__(self):
        return f"{self.method} {self.rule}"

    @property
    def is_api(self) -> bool:
        return self.rule.startswith("/api/v1/")


def api_call(client, world, case: Case, role: str, path_fn):
    headers = bearer(world.user(role))
    path = path_fn(world)
    if "{own_token}" in path:
        token_id = client.get("/api/v1/tokens", headers=headers).json[0]["id"]
        path = path.replace("{own_token}", str(token_id))
    body = case.body(world) if case.body else None
    return client.open(path, method=case.method, json=body, headers=headers)


def page_call(client, world, case: Case, role: str | None, path_fn):
    if role is not None:
        assert client.post("/login", data={"username": world.user(role).username,
                                           "password": PASSWORD}).status_code == 302
    data = case.body(world) if case.body else None
    return client.open(path_fn(world), method=case.method, data=data)


def sms_consent(world):
    return accounts.record_consent(Actor(world.therapist), world.patient.id, "sms", method="written",
                                   note=None, now=NOW)


def other_sms_consent(world):
    return accounts.record_consent(Actor(world.other_therapist), world.other_patient.id, "sms",
                                   method="written", note=None, now=NOW)


def visit(world, other=False, *, modality="in_clinic", clinician=None):
    """A treatment visit of the own clinic's (Chicago) or the other clinic's (New York) patient."""
    from telerehab.careplans import operations as careplans

    therapist = world.other_therapist if other else world.therapist
    episode = world.other_episode if other else world.episode
    start = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    return careplans.schedule_visit(Actor(therapist), episode.id, {
        "kind": "treatment", "modality": modality, "starts_at": start, "ends_at": start + timedelta(minutes=45),
        "clinician_id": (clinician or therapist).id}, now=NOW)


def domain_tables() -> tuple[list[Case], set[tuple[str, str]]]:
    """Every domain module's rows and public routes."""
    cases: list[Case] = []
    public: set[tuple[str, str]] = set()
    for path in sorted(Path(__file__).parent.glob("test_authorisation_*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        for name, value in vars(module).items():
            if isinstance(value, list) and value and all(isinstance(c, Case) for c in value):
                cases += value
            elif name.startswith("PUBLIC_") and isinstance(value, set):
                public |= value
    return cases, public
