"""protocols/*.json: read and checked once at start-up; a broken file stops the app, naming the
file and the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import jsonschema_rs
from flask import Flask, current_app

from telerehab.assessments.rules import protocol_problems
from telerehab.errors import NotFound

PROTOCOLS_DIR = Path(__file__).resolve().parents[2] / "protocols"
SCHEMA_FILE = "protocol.schema.json"
_EXTENSION_KEY = "assessment_protocols"


class ProtocolError(RuntimeError):
    """A protocol file is missing, malformed or inconsistent: the app refuses to start."""


def _field(path) -> str:
    return ".".join(str(part) for part in path) or "(the document)"


def load_directory(directory: Path) -> dict[str, dict]:
    """Every protocol of `directory` by id; raises ProtocolError naming the file and the field."""
    try:
        schema = json.loads((directory / SCHEMA_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ProtocolError(f"{directory / SCHEMA_FILE}: cannot read the protocol schema ({error})") from None
    validator = jsonschema_rs.validator_for(schema)
    protocols: dict[str, dict] = {}
    files = sorted(p for p in directory.glob("*.json") if p.name != SCHEMA_FILE)
    if not files:
        raise ProtocolError(f"{directory}: no protocol files")
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ProtocolError(f"protocols/{path.name}: not valid JSON ({error})") from None
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.instance_path)))
        if errors:
            raise ProtocolError("; ".join(
                f"protocols/{path.name}: field {_field(e.instance_path)}: {e.message}" for e in errors[:5]))
        problems = protocol_problems(doc)
        if doc["id"] != path.stem:
            problems.append(f"id: {doc['id']!r} differs from the file name")
        if problems:
            raise ProtocolError("; ".join(f"protocols/{path.name}: field {p}" for p in problems))
        protocols[doc["id"]] = doc
    return protocols


def init_app(app: Flask) -> None:
    """Load the protocols into the app (PROTOCOLS_DIR overrides the repository's folder)."""
    directory = Path(app.config.get("PROTOCOLS_DIR") or PROTOCOLS_DIR)
    app.extensions[_EXTENSION_KEY] = load_directory(directory)


def all_protocols() -> Mapping[str, dict]:
    return current_app.extensions[_EXTENSION_KEY]


def get_protocol(protocol_id: str) -> dict:
    protocol = all_protocols().get(protocol_id)
    if protocol is None:
        raise NotFound("No such assessment protocol.")
    return protocol
