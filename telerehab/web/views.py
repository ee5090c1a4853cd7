"""The home page of each role, and the API documentation page."""

from flask import redirect, render_template, url_for
from flask_login import current_user, login_required

from telerehab.web import bp


@bp.route("/")
@login_required
def home():
    return redirect(url_for(HOME_ENDPOINTS[current_user.role]))


HOME_ENDPOINTS = {
    "therapist": "accounts.patient_list",
    "assistant": "accounts.patient_list",
    "billing": "accounts.patient_list",
    "admin": "accounts.admin_users",
    "patient": "careplans.my_plan",
}


@bp.route("/api/v1/docs")
def api_docs():
    """Swagger UI from vendored files; it reads /api/v1/openapi.json."""
    return render_template("api_docs.html")
