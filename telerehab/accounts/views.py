"""Pages: sign-in, sign-out, the user's own account (password, API tokens)."""

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from telerehab.accounts import operations
from telerehab.accounts.operations import Actor
from telerehab.db_types import utc_now
from telerehab.errors import Throttled, ValidationFailed

bp = Blueprint("accounts", __name__, template_folder="templates")


def actor() -> Actor:
    return Actor(user=current_user._get_current_object(), ip_address=request.remote_addr)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect after sign-in is a phishing aid."""
    if target and urlsplit(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("web.home")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    errors, status = {}, 200
    if request.method == "POST":
        try:
            user = operations.authenticate(
                request.form.get("username", ""), request.form.get("password", ""),
                ip_address=request.remote_addr or "unknown", now=utc_now(),
            )
        except Throttled as error:
            errors, status = {"form": [str(error)]}, 429
        except ValidationFailed as error:
            errors, status = error.errors, 401
        else:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("accounts/login.html", errors=errors,
                           username=request.form.get("username", "")), status


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    flash("You are signed out.", "success")
    return redirect(url_for("accounts.login"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    errors, status, new_token = {}, 200, None
    form = request.form.get("form")
    try:
        if form == "password":
            if request.form.get("new_password") != request.form.get("confirm_password"):
                raise ValidationFailed({"confirm_password": ["The two new passwords differ."]})
            operations.change_password(actor(), request.form.get("current_password", ""),
                                       request.form.get("new_password", ""), now=utc_now())
            # The password stamp changed, so this session must be renewed too.
            login_user(current_user._get_current_object())
            flash("Your password is changed. Other sessions are signed out.", "success")
            return redirect(url_for("accounts.account"))
        if form == "new_token":
            name = request.form.get("name", "").strip()
            if not name:
                raise ValidationFailed({"name": ["Name the token after the app or device that uses it."]})
            new_token, _ = operations.create_api_token(actor(), name, expires_in_days=90, now=utc_now())
        if form == "revoke_token":
            token_id = request.form.get("token_id", "")
            if not token_id.isdigit():
                raise ValidationFailed({"token_id": ["No such token."]})
            operations.revoke_api_token(actor(), int(token_id), now=utc_now())
            flash("The token is revoked.", "success")
            return redirect(url_for("accounts.account"))
    except ValidationFailed as error:
        errors, status = error.errors, 422
    return render_template("accounts/account.html", errors=errors, new_token=new_token,
                           tokens=operations.list_api_tokens(actor())), status
