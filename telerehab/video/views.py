"""The call page, the waiting room, guest links and the device check (pages), and the signaling
endpoints the call page and the media worker's peers talk to (JSON).

Signaling is authenticated by the room token (header X-Room-Token), never by the session cookie,
so those endpoints need no CSRF token: a page of another site cannot read the token to send it.
The browser waits for messages by long-polling GET .../signals?after=N&wait=S: it holds the request
until a message arrives or S seconds pass. Messages live in the database, so any web worker can
answer; on PostgreSQL a notification sent on commit wakes the held request (notify.py), on SQLite it
looks every 0.1 s. The same endpoint with wait=0 is plain polling; bench/video.py
measures both.
"""

from __future__ import annotations

import time
from datetime import timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_login import current_user, login_required

from telerehab.accounts.operations import active_consent
from telerehab.accounts.policy import Permission, has_permission
from telerehab.accounts.rules import ConsentKind
from telerehab.api import problem
from telerehab.db_types import utc_now
from telerehab.errors import DomainError, ValidationFailed
from telerehab.extensions import csrf
from telerehab.video import notify, operations
from telerehab.video.rules import RoomRole
from telerehab.web.forms import actor, is_htmx_partial

bp = Blueprint("video", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/video")
signaling = Blueprint("video_signaling", __name__)
csrf.exempt(signaling)

GONIOMETRY_RULE = "/visits/<id:visit_id>/goniometry/stills"
WAITING_SHOWN_AROUND = timedelta(hours=12)  # a patient waits in the room of a visit due about now


@signaling.errorhandler(DomainError)
def _signaling_error(error: DomainError):
    if isinstance(error, ValidationFailed):
        return problem(422, "Unprocessable Entity", "Invalid input: " + ", ".join(sorted(error.errors)),
                       errors={"json": error.errors})
    return problem(error.status, type(error).__name__, str(error))


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(signaling)
    app.jinja_env.globals["video_waiting_visit_ids"] = _waiting_visit_ids


def _waiting_visit_ids(visits) -> set[int]:
    """For the calendar: which of the shown visits, those around now, have someone in the waiting
    room (one query, and none for a calendar of other days)."""
    now = utc_now()
    ids = [v.id for v in visits if v.modality == "video" and abs(v.starts_at - now) <= WAITING_SHOWN_AROUND]
    return operations.waiting_visit_ids(ids, now=now)


def goniometry_url(visit_id: int) -> str | None:
    """The assessments' still upload, when that part of the app is installed."""
    for rule in current_app.url_map.iter_rules():
        if rule.rule == GONIOMETRY_RULE and "POST" in (rule.methods or ()):
            return url_for(rule.endpoint, visit_id=visit_id)
    return None


# ---------------------------------------------------------------- pages


def _room_page(visit, role, *, entry=None):
    staff = role == RoomRole.CLINICIAN
    context = {"visit": visit, "role": role, "staff": staff, "patient": visit.patient,
               "timezone": visit.patient.timezone if role != RoomRole.CLINICIAN else visit.clinic.timezone,
               "entry": entry, "goniometry_url": goniometry_url(visit.id) if staff else None}
    if staff:
        now = utc_now()
        room = operations.room_of_visit(visit.id)
        context.update(consent=operations.recording_consent(visit.id),
                       call_time=operations.call_time(room, now=now) if room else None, room=room,
                       management_time=operations.is_rtm_call(visit),
                       waiting=operations.waiting_participants(room, now=now) if room else [],
                       telehealth_consent_missing=active_consent(visit.patient, ConsentKind.TELEHEALTH) is None)
        context["recordings"], context["stills"] = operations.media_of_visit(actor(), visit.id, now=now)
    return render_template("video/room.html", **context)


@bp.get("/visits/<id:visit_id>/room")
@login_required
def room(visit_id: int):
    visit, role = operations.open_room_page(actor(), visit_id, now=utc_now())
    return _room_page(visit, role)


@bp.post("/visits/<id:visit_id>/room/invites")
@login_required
def invite(visit_id: int):
    try:
        token, guest = operations.invite_guest(actor(), visit_id, request.form.get("role", ""),
                                               request.form.get("name", ""), now=utc_now())
    except ValidationFailed as failed:
        return render_template("video/_invite.html", visit_id=visit_id, errors=failed.errors, form=request.form), 422
    link = url_for("video.guest", token=token, _external=True)
    return render_template("video/_invite.html", visit_id=visit_id, link=link, guest=guest, errors={}, form={})


def _side_panel(visit_id: int, template: str, message: str, status: int = 200):
    """htmx swaps only the panel (the call element stays); without htmx, back to the room page."""
    if is_htmx_partial():
        visit, _role = operations.visit_for_room(actor(), visit_id)
        room = operations.room_of_visit(visit.id)
        now = utc_now()
        return render_template(template, visit=visit, message=message, room=room,
                               consent=operations.recording_consent(visit.id),
                               call_time=operations.call_time(room, now=now) if room else None,
                               management_time=operations.is_rtm_call(visit)), status
    flash(message, "success" if status < 400 else "error")
    return redirect(url_for("video.room", visit_id=visit_id))


def _messages(failed: ValidationFailed) -> str:
    return " ".join(message for messages in failed.errors.values() for message in messages)


@bp.post("/visits/<id:visit_id>/room/minutes")
@login_required
def log_minutes(visit_id: int):
    now = utc_now()
    try:
        if request.form.get("target") == "management":
            minutes = operations.log_minutes_as_management_time(actor(), visit_id, now=now)
            message = f"{minutes} minutes logged as interactive management time."
        else:
            minutes = operations.log_minutes_to_note(actor(), visit_id, now=now)
            message = f"{minutes} minutes logged to the visit note."
    except ValidationFailed as failed:
        return _side_panel(visit_id, "video/_minutes.html", _messages(failed), 422)
    return _side_panel(visit_id, "video/_minutes.html", message)


@bp.post("/visits/<id:visit_id>/room/consent")
@login_required
def consent(visit_id: int):
    now = utc_now()
    if request.form.get("action") == "revoke":
        operations.revoke_recording_consent(actor(), visit_id, now=now)
        return _side_panel(visit_id, "video/_recording.html", "Consent withdrawn: nothing more is recorded.")
    try:
        operations.record_recording_consent(actor(), visit_id, request.form.get("method", ""), now=now)
    except ValidationFailed as failed:
        return _side_panel(visit_id, "video/_recording.html", _messages(failed), 422)
    return _side_panel(visit_id, "video/_recording.html", "The patient's consent to record this visit is recorded.")


@bp.get("/visits/<id:visit_id>/media/<any(recording, still):kind>/<id:record_id>")
@login_required
def media_file(visit_id: int, kind: str, record_id: int):
    path = operations.media_file(actor(), visit_id, kind, record_id, now=utc_now())
    if not path.exists():
        abort(404)
    return send_file(path, mimetype="video/webm" if kind == "recording" else "image/jpeg",
                     as_attachment=kind == "recording", max_age=0)


@bp.get("/video/join/<token>")
def guest(token: str):
    """A caregiver's or interpreter's one-time link: no account, the link is the key."""
    entry = operations.enter_with_invite(token, now=utc_now(), returning_participant_id=session.get("video_guest"))
    session["video_guest"] = entry.participant.id
    visit = entry.participant.room.visit
    return _room_page(visit, RoomRole(entry.participant.role), entry=entry)


@bp.get("/video/device-check")
@login_required
def device_check():
    if not has_permission(current_user, Permission.JOIN_VIDEO_VISITS):
        abort(403)
    return render_template("video/device_check.html")


# ---------------------------------------------------------------- JSON: entering, signaling


@bp.post("/visits/<id:visit_id>/room/join")
@login_required
def join(visit_id: int):
    """Session-authenticated, so CSRF-checked like a form: the page sends X-CSRFToken."""
    return jsonify(operations.enter_room(actor(), visit_id, now=utc_now()).as_json())


def _participant(visit_id: int):
    return operations.authenticate(visit_id, request.headers.get("X-Room-Token", ""), now=utc_now())


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed({"body": ["Send a JSON object."]})
    return body


def _number(name: str, default: float, *, low: float, high: float) -> float:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValidationFailed({name: ["Must be a number."]}) from None
    if not low <= value <= high:
        raise ValidationFailed({name: [f"Must be between {low:g} and {high:g}."]})
    return value


@signaling.get("/video/rooms/<id:visit_id>/signals")
def signals(visit_id: int):
    """Long-poll: the participant's messages after `after`, waiting up to `wait` seconds for one."""
    participant = _participant(visit_id)
    after = int(_number("after", 0, low=0, high=2**31 - 1))
    wait = _number("wait", 0, low=0, high=current_app.config["SIGNAL_WAIT_SECONDS"])
    deadline = time.monotonic() + wait
    operations.mark_seen(participant, now=utc_now())
    with notify.room_wakeups(participant.room_id) as wakeups:
        while True:
            messages = operations.signals_after(participant, after, now=utc_now())
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                break
            operations.end_snapshot()
            wakeups.pause(remaining)
    answer = {"messages": messages, "state": participant.state}
    if participant.role == RoomRole.CLINICIAN:
        answer["waiting"] = operations.waiting_participants(participant.room, now=utc_now())
    return jsonify(answer)


@signaling.post("/video/rooms/<id:visit_id>/signals")
def send_signal(visit_id: int):
    participant = _participant(visit_id)
    body = _json_body()
    seq = operations.post_signal(participant, body.get("to"), body.get("kind"), body.get("body"), now=utc_now())
    return jsonify({"seq": seq}), 201


@signaling.post("/video/rooms/<id:visit_id>/connection")
def connection(visit_id: int):
    participant = _participant(visit_id)
    body = _json_body()
    quality = operations.report_connection(participant, body.get("peer"), body.get("state"),
                                           body.get("stats") or {}, now=utc_now())
    return jsonify({"quality": quality.level, "words": quality.words})


@signaling.post("/video/rooms/<id:visit_id>/token")
def refresh_token(visit_id: int):
    """A new room token and fresh TURN credentials, asked for with the current, still-valid token
    shortly before it expires: a call outlasts VIDEO_TOKEN_SECONDS without a reload."""
    renewal = operations.refresh_token(visit_id, request.headers.get("X-Room-Token", ""),
                                       ip_address=request.remote_addr, now=utc_now())
    return jsonify(renewal.as_json())


@signaling.post("/video/rooms/<id:visit_id>/admit/<id:participant_id>")
def admit(visit_id: int, participant_id: int):
    guest = operations.admit(_participant(visit_id), participant_id, now=utc_now())
    return jsonify({"participant_id": guest.id, "state": guest.state})


@signaling.post("/video/rooms/<id:visit_id>/leave")
def leave(visit_id: int):
    operations.leave(_participant(visit_id), now=utc_now())
    return "", 204


@signaling.post("/video/rooms/<id:visit_id>/worker")
def ask_worker(visit_id: int):
    """The clinician asks the media worker to take stills or record (or stops a recording)."""
    participant = _participant(visit_id)
    kind = _json_body().get("kind")
    if kind == "stop":
        return jsonify({"stopped": operations.stop_recording(participant, now=utc_now())})
    media = operations.ask_worker(participant, kind, now=utc_now())
    return jsonify({"media_session_id": media.id, "status": media.status}), 201


# ---------------------------------------------------------------- JSON: the media worker's peers


@bp.post("/video/device-check")
@login_required
def start_device_check():
    token, media = operations.start_device_check(actor(), now=utc_now())
    return jsonify({"media_session_id": media.id, "token": token,
                    "ice_servers": operations.ice_servers_for(f"check{media.id}", media.expires_at)}), 201


def _media_session(session_id: int):
    return operations.media_session_for(session_id, request.headers.get("X-Media-Token", ""), now=utc_now())


@signaling.post("/video/media-sessions/<id:session_id>/offer")
def media_offer(session_id: int):
    media = _media_session(session_id)
    operations.submit_offer(media, _json_body().get("sdp"), now=utc_now())
    return jsonify(operations.media_session_json(media)), 202


@signaling.get("/video/media-sessions/<id:session_id>")
def media_status(session_id: int):
    """Long-poll until the worker has answered or finished (`until`: answered or done)."""
    media = _media_session(session_id)
    until = request.args.get("until", "answered")
    if until not in ("answered", "done"):
        raise ValidationFailed({"until": ["Must be answered or done."]})
    deadline = time.monotonic() + _number("wait", 0, low=0, high=current_app.config["SIGNAL_WAIT_SECONDS"])
    while True:
        state = operations.media_session_json(media)
        ready = state["status"] in ("finished", "failed") or (until == "answered" and state["answer"])
        if ready or time.monotonic() >= deadline:
            return jsonify(state)
        operations.end_snapshot()
        time.sleep(notify.POLL_SECONDS)
        media = _media_session(session_id)
