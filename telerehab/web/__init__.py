"""Layout, static files, security headers, error pages and the home page of each role."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from telerehab.accounts.policy import Permission, has_permission
from telerehab.errors import DomainError

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")

# Only the app's own files: every script and stylesheet is vendored, nothing comes from a CDN.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' blob:; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def init_app(app: Flask) -> None:
    from telerehab.web import views  # noqa: F401  (routes register on bp)

    app.register_blueprint(bp)
    app.after_request(_security_headers)
    app.jinja_env.filters["local"] = local_time
    app.jinja_env.globals["ROLE_HOME_TITLES"] = ROLE_HOME_TITLES
    # Templates that show an entry only to those who may use it ask the policy, as views do.
    app.jinja_env.globals.update(has_permission=has_permission, Permission=Permission)


ROLE_HOME_TITLES = {
    "therapist": "My patients",
    "assistant": "Clinic patients",
    "patient": "My plan",
    "billing": "Billing",
    "admin": "Administration",
}


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Permissions-Policy", "geolocation=()")
    if response.mimetype == "text/html" or request.path.startswith("/api/"):
        # Pages and API answers carry patient data: never let a shared cache keep them.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def local_time(value: datetime | None, timezone: str, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    """A stored UTC timestamp shown in a clinic's or patient's own timezone."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(timezone)).strftime(fmt)


def error_page(status: int, message: str):
    return render_template("error.html", status=status, message=message), status


def handle_page_error(error: Exception):
    """HTML error pages; API paths are answered by telerehab.api as problem+json."""
    if isinstance(error, DomainError):
        return error_page(error.status, str(error))
    assert isinstance(error, HTTPException)
    response = error.get_response()
    page, status = error_page(error.code or 500, error.description or error.name)
    response.set_data(page)
    response.status_code = status
    response.content_type = "text/html; charset=utf-8"
    return response
