"""telerehab: hybrid clinic and video physical therapy with remote therapeutic monitoring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from config import config_from_environment

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config: type | dict[str, Any] | None = None) -> Flask:
    """Build the app. `config` is a config class, or a dict of overrides on the environment's."""
    # Static files are the web blueprint's (telerehab/web/static), not the package root's.
    app = Flask(__name__, instance_relative_config=True, static_folder=None)
    register_config(app, config)
    register_extensions(app)
    register_blueprints(app)
    register_cli(app)
    return app


def register_config(app: Flask, config: type | dict[str, Any] | None) -> None:
    if isinstance(config, type):
        app.config.from_object(config)
    else:
        app.config.from_object(config_from_environment())
        app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        raise RuntimeError("Set SECRET_KEY in the environment (see README, Configuration).")
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )


def register_extensions(app: Flask) -> None:
    from telerehab import api as api_package
    from telerehab.accounts import auth, passwords
    from telerehab.extensions import csrf, db, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    csrf.init_app(app)
    auth.init_app(app)
    passwords.init_app(app)
    api_package.init_app(app)


def register_blueprints(app: Flask) -> None:
    from telerehab import web
    from telerehab.accounts import api as accounts_api
    from telerehab.accounts import views as accounts_views
    from telerehab.assessments import api as assessments_api
    from telerehab.assessments import views as assessments_views
    from telerehab.billing import views as billing_views
    from telerehab.careplans import api as careplans_api
    from telerehab.careplans import views as careplans_views
    from telerehab.exercises import api as exercises_api
    from telerehab.exercises import views as exercises_views
    from telerehab.extensions import api
    from telerehab.messaging import views as messaging_views
    from telerehab.monitoring import api as monitoring_api
    from telerehab.monitoring import views as monitoring_views
    from telerehab.video import views as video_views

    web.init_app(app)
    app.register_blueprint(accounts_views.bp)
    app.register_blueprint(careplans_views.bp)
    app.register_blueprint(exercises_views.bp)
    app.register_blueprint(messaging_views.bp)
    app.register_blueprint(monitoring_views.bp)
    app.register_blueprint(billing_views.bp)
    app.register_blueprint(assessments_views.bp)  # loads and checks protocols/: a broken file stops here
    video_views.init_app(app)
    api.register_blueprint(accounts_api.blp)
    api.register_blueprint(careplans_api.blp)
    api.register_blueprint(exercises_api.blp)
    api.register_blueprint(monitoring_api.blp)
    api.register_blueprint(assessments_api.blp)


def register_cli(app: Flask) -> None:
    from telerehab.accounts import cli as accounts_cli
    from telerehab.billing.cli import claims_cli
    from telerehab.jobs.cli import scheduler_cli
    from telerehab.monitoring.cli import rtm_cli
    from telerehab.video.cli import media_worker

    app.cli.add_command(accounts_cli.create_user)
    app.cli.add_command(accounts_cli.seed_demo)
    app.cli.add_command(scheduler_cli)
    app.cli.add_command(rtm_cli)
    app.cli.add_command(claims_cli)
    app.cli.add_command(media_worker)
