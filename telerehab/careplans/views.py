"""Pages: episodes of care."""

from flask import Blueprint

bp = Blueprint("careplans", __name__, template_folder="templates")
