"""Settings, read only from the environment (12-factor). Every variable is listed in the README."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{BASE_DIR / 'instance' / 'telerehab.sqlite3'}"
    # Heroku-style URLs name the old driver; SQLAlchemy 2 wants psycopg 3 spelled out.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


class Config:
    """Production-safe defaults; development and tests loosen only what they must."""

    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = _database_url()
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

    SESSION_COOKIE_SECURE = _flag("SESSION_COOKIE_SECURE", True)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    PERMANENT_SESSION_LIFETIME = _int("SESSION_LIFETIME_MINUTES", 480) * 60

    LOGIN_MAX_FAILURES = _int("LOGIN_MAX_FAILURES", 5)
    LOGIN_WINDOW_MINUTES = _int("LOGIN_WINDOW_MINUTES", 15)

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session does

    API_TITLE = "telerehab"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    API_PAGE_SIZE_MAX = 100

    REDIS_URL = os.environ.get("REDIS_URL")

    # Files the app keeps: captured stills, consented recordings, claim exports. A mounted object
    # store in production; under instance/ by default.
    STORAGE_DIR = os.environ.get("STORAGE_DIR") or str(BASE_DIR / "instance" / "storage")

    # Text messages (telerehab/messaging). `log` writes each text to the sms_log table instead of
    # sending it; `twilio` sends through Twilio and needs the three TWILIO_* values after it.
    SMS_BACKEND = os.environ.get("SMS_BACKEND", "log")
    TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID")
    TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN")  # also verifies the webhooks' signatures
    TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER")
    TWILIO_BASE_URL = os.environ.get("TWILIO_BASE_URL")  # e.g. a local mock; unset: api.twilio.com
    TWILIO_TIMEOUT_SECONDS = _float("TWILIO_TIMEOUT_SECONDS", 10.0)
    TWILIO_WEBHOOK_SHARED_KEY = os.environ.get("TWILIO_WEBHOOK_SHARED_KEY")
    # The address Twilio reaches the app at: status callbacks are sent there, and webhook
    # signatures are checked against it (the app may see another scheme and host behind a proxy).
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL")
    SMS_QUIET_HOURS = os.environ.get("SMS_QUIET_HOURS", "21:00-08:00")  # patient's local time
    OUTBOX_MAX_ATTEMPTS = _int("OUTBOX_MAX_ATTEMPTS", 8)
    OUTBOX_BACKOFF_BASE_SECONDS = _int("OUTBOX_BACKOFF_BASE_SECONDS", 30)
    OUTBOX_BACKOFF_MAX_SECONDS = _int("OUTBOX_BACKOFF_MAX_SECONDS", 3600)
    OUTBOX_BACKOFF_JITTER = _float("OUTBOX_BACKOFF_JITTER", 0.2)
    OUTBOX_SENDING_LEASE_SECONDS = _int("OUTBOX_SENDING_LEASE_SECONDS", 120)

    # Video visits (telerehab/video). ICE servers come only from here: no public STUN by default.
    # TURN credentials are minted per participant with coturn's `use-auth-secret` scheme and expire
    # with the room token. Lists are comma-separated URLs.
    STUN_URLS = _list("STUN_URLS")  # e.g. stun:turn.example.org:3478
    TURN_URLS = _list("TURN_URLS")  # e.g. turn:turn.example.org:3478?transport=udp,turns:turn.example.org:443?transport=tcp
    TURN_SHARED_SECRET = os.environ.get("TURN_SHARED_SECRET")  # coturn's static-auth-secret
    VIDEO_TOKEN_SECONDS = _int("VIDEO_TOKEN_SECONDS", 3600)  # room tokens and TURN credentials
    VIDEO_INVITE_HOURS = _int("VIDEO_INVITE_HOURS", 2)  # a guest link works until the visit's end plus this
    SIGNAL_WAIT_SECONDS = _float("SIGNAL_WAIT_SECONDS", 20.0)  # the longest a signaling long-poll is held
    # PostgreSQL: long-polls woken by LISTEN/NOTIFY. Off behind a pooler in transaction mode
    # (PgBouncer), where LISTEN cannot work: long-polls then look every 0.1 s, as on SQLite.
    VIDEO_LISTEN_NOTIFY = _flag("VIDEO_LISTEN_NOTIFY", True)
    # The media worker's own host candidates (comma-separated IPs). Empty: every interface's
    # address, as aiortc does; tests and single-host demos use 127.0.0.1.
    MEDIA_WORKER_HOST_ADDRESSES = _list("MEDIA_WORKER_HOST_ADDRESSES")
    MEDIA_WORKER_POLL_SECONDS = _float("MEDIA_WORKER_POLL_SECONDS", 0.2)
    DEVICE_CHECK_SECONDS = _float("DEVICE_CHECK_SECONDS", 5.0)
    CAPTURE_STILLS = _int("CAPTURE_STILLS", 3)


class DevelopmentConfig(Config):
    """`make run` on a laptop: plain http on 127.0.0.1, so cookies cannot demand https."""

    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")
    SESSION_COOKIE_SECURE = _flag("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE


class TestConfig(DevelopmentConfig):
    TESTING = True
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL_RESOLVED", "sqlite://")


CONFIGS = {"production": Config, "development": DevelopmentConfig, "testing": TestConfig}


def config_from_environment() -> type[Config]:
    return CONFIGS[os.environ.get("TELEREHAB_ENV", "production")]
