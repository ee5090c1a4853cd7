"""flask-login wiring: sessions carry the user id and the password stamp."""

from flask import Flask, redirect, request, url_for

from telerehab.accounts.models import User
from telerehab.extensions import db, login_manager


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.session_protection = "strong"


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    user_id, _, _version = session_id.partition(":")
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    # A password change or deactivation changes the stamp and so ends older sessions.
    if user is None or user.get_id() != session_id or not user.is_active:
        return None
    return user


@login_manager.unauthorized_handler
def unauthorized():
    return redirect(url_for("accounts.login", next=request.full_path if request.method == "GET" else None))
