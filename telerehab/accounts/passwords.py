"""argon2id password hashing, with cost parameters from configuration."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app


def init_app(app: Flask) -> None:
    app.extensions["password_hasher"] = PasswordHasher(
        time_cost=app.config.get("ARGON2_TIME_COST", 3),
        memory_cost=app.config.get("ARGON2_MEMORY_KIB", 65536),
    )
    # Verifying against this when the username is unknown keeps the answer time the same.
    app.extensions["password_dummy_hash"] = app.extensions["password_hasher"].hash("not-a-password")


def _hasher() -> PasswordHasher:
    return current_app.extensions["password_hasher"]


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher().verify(password_hash or current_app.extensions["password_dummy_hash"], password) \
            and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)
