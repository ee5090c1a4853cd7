"""`flask media-worker run`: the aiortc process (device check, capture, consented recording)."""

from __future__ import annotations

from flask import current_app
from flask.cli import AppGroup

media_worker = AppGroup("media-worker", help="The aiortc media worker process.")


@media_worker.command("run")
def run() -> None:
    """Run the media worker in the foreground until interrupted (SIGINT or SIGTERM)."""
    from telerehab.video.worker import run_forever

    run_forever(current_app._get_current_object())
