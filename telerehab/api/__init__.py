"""The versioned JSON API: token authentication and problem+json errors for every domain's blueprint."""

from __future__ import annotations

from flask import Flask, g, jsonify, request
from flask_smorest import Blueprint
from flask_smorest.utils import resolve_schema_instance
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from telerehab.accounts.operations import Actor, user_for_token
from telerehab.db_types import utc_now
from telerehab.errors import DomainError, Throttled, ValidationFailed
from telerehab.extensions import api, csrf
from telerehab.web import handle_page_error

API_PREFIX = "/api/v1"
PROBLEM_JSON = "application/problem+json"

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal API token (create one under Account > API tokens). "
        "Send it as `Authorization: Bearer trk_...`.",
    }
}


class ApiBlueprint(Blueprint):
    def arguments(self, schema, **kwargs):
        # webargs builds a new instance of a schema class on every request (its nested schemas too);
        # one instance, made here, serves them all.
        return super().arguments(resolve_schema_instance(schema), **kwargs)


def make_blueprint(name: str, import_name: str, description: str) -> Blueprint:
    """A flask-smorest blueprint under /api/v1 whose every request needs a bearer token.

    Browser sessions are not accepted here: the API has no CSRF check, so a cookie must never
    be enough to write through it.
    """
    blueprint = ApiBlueprint(name, import_name, url_prefix=API_PREFIX, description=description)
    blueprint.before_request(_authenticate)
    csrf.exempt(blueprint)
    return blueprint


def _authenticate():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    user = user_for_token(token.strip(), now=utc_now()) if scheme.lower() == "bearer" and token else None
    if user is None:
        return problem(401, "Unauthorized", "Send a valid personal API token as a Bearer token.",
                       headers={"WWW-Authenticate": 'Bearer realm="telerehab"'})
    g.api_actor = Actor(user=user, ip_address=request.remote_addr)
    if request.method in {"POST", "PUT", "PATCH"} and not (request.is_json and request.content_length):
        # Every write takes a JSON document; a missing body must not read as "change nothing".
        return problem(415, "Unsupported Media Type", "Send the request body as application/json.")
    return None


def current_actor() -> Actor:
    return g.api_actor


def problem(status: int, title: str, detail: str, *, errors: dict | None = None, headers: dict | None = None):
    """An RFC 9457 problem document."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.content_type = PROBLEM_JSON
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _is_api_request() -> bool:
    return request.path.startswith(API_PREFIX)


def _handle_http_exception(error: HTTPException):
    if not _is_api_request():
        return handle_page_error(error)
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")  # webargs puts {location: {field: [messages]}} here
    detail = error.description or error.name
    if messages:
        fields = {f for location in messages.values() for f in location}
        detail = "Invalid input: " + ", ".join(sorted(fields))
    # Keep Werkzeug's headers (Allow on 405, for instance).
    headers = dict(error.get_headers())
    headers.pop("Content-Type", None)
    return problem(error.code or 500, error.name, detail, errors=messages, headers=headers)


def _handle_domain_error(error: DomainError):
    if not _is_api_request():
        return handle_page_error(error)
    if isinstance(error, ValidationFailed):
        return problem(422, "Unprocessable Entity", "Invalid input: " + ", ".join(sorted(error.errors)),
                       errors={"json": error.errors})
    headers = {"Retry-After": str(error.retry_after_seconds)} if isinstance(error, Throttled) else None
    return problem(error.status, _TITLES.get(error.status, "Error"), str(error), headers=headers)


_TITLES = {403: "Forbidden", 404: "Not Found", 429: "Too Many Requests", 400: "Bad Request"}


class RecordId(IntegerConverter):
    """`<id:name>` in page and API routes: a positive 32-bit row id.

    Anything larger cannot be a row (the id columns are INTEGER), so it is a plain 404 instead of a
    database overflow error.
    """

    MAX = 2**31 - 1

    def __init__(self, url_map):
        super().__init__(url_map, min=1, max=self.MAX)


def init_app(app: Flask) -> None:
    app.url_map.converters["id"] = RecordId
    api.register_converter(RecordId, lambda _: {"type": "integer", "minimum": 1, "maximum": RecordId.MAX})
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": "telerehab: hybrid clinic and video physical therapy with RTM."},
        "components": {"securitySchemes": SECURITY_SCHEMES},
        "security": [{"bearerAuth": []}],
    })
    app.config.setdefault("OPENAPI_SWAGGER_UI_PATH", None)  # the docs page is our own, vendored
    api.init_app(app)
    # flask-smorest's own handler would answer plain JSON and drop the Allow header.
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(DomainError, _handle_domain_error)
