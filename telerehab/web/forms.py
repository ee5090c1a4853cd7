"""Helpers every page view shares: who is acting, and turning a submitted form into valid data."""

from __future__ import annotations

from flask import request
from flask_login import current_user
from marshmallow import ValidationError as MarshmallowValidationError
from marshmallow import fields as ma_fields
from werkzeug.datastructures import MultiDict

from telerehab.accounts.operations import Actor
from telerehab.errors import ValidationFailed


def actor() -> Actor:
    """The signed-in user and their address, for operations and the audit log."""
    return Actor(user=current_user._get_current_object(), ip_address=request.remote_addr)


def form_payload(form: MultiDict, schema, *, lists: tuple[str, ...] = ()) -> dict:
    """Turn submitted form fields into the payload a marshmallow schema loads.

    Blank fields count as not given (None for nullable fields); `lists` fields take every line of a
    textarea. Integers are converted here because the API schemas are strict about types.
    """
    payload: dict = {}
    for name, field in schema.fields.items():
        if field.dump_only or name not in form:
            continue
        if name in lists:
            payload[name] = [line.strip() for line in form.get(name, "").splitlines() if line.strip()]
            continue
        raw = form.get(name, "").strip()
        if raw == "":
            if field.allow_none:
                payload[name] = None
            continue
        if isinstance(field, ma_fields.Integer):
            payload[name] = int(raw) if raw.lstrip("-").isdigit() else raw
        else:
            payload[name] = raw
    return payload


def form_errors(messages: dict) -> dict[str, list[str]]:
    """marshmallow's (possibly nested) messages as field -> flat list, for the form macros.

    List fields give {index: [...]} and nested ones {index: {field: [...]}}: each becomes
    "Line N: message", since those fields are entered one item per line.
    """
    errors: dict[str, list[str]] = {}
    for name, value in messages.items():
        errors["form" if name == "_schema" else str(name)] = _flatten(value, "")
    return errors


def _flatten(value, prefix: str) -> list[str]:
    if isinstance(value, str):
        return [prefix + value]
    if isinstance(value, dict):
        out: list[str] = []
        for key, inner in value.items():
            out += _flatten(inner, f"Line {key + 1}: " if isinstance(key, int) else prefix)
        return out
    return [message for item in value for message in _flatten(item, prefix)]


def load_form(schema, *, values: MultiDict | None = None, lists: tuple[str, ...] = (), adjust=None) -> dict:
    """Validate the submitted form (or other `values`, such as a query string) with `schema`; raises
    ValidationFailed with field messages."""
    payload = form_payload(request.form if values is None else values, schema, lists=lists)
    if adjust is not None:
        payload = adjust(payload)
    try:
        return schema.load(payload)
    except MarshmallowValidationError as error:
        raise ValidationFailed(form_errors(error.messages)) from None


def is_htmx_partial() -> bool:
    """An htmx swap (not a history restore, which needs the whole page)."""
    return bool(request.headers.get("HX-Request")) and not request.headers.get("HX-History-Restore-Request")
