"""Twilio webhooks (inbound SMS, delivery status) and the therapist's message pages.

The webhooks have no session and no CSRF token: Twilio signs each request with the account's auth
token (X-Twilio-Signature), and a request whose signature does not match the exact public URL and
parameters is refused with 403 before anything is read or stored.
"""

from __future__ import annotations

import uuid
from functools import wraps

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.messaging_response import MessagingResponse

from telerehab.accounts.operations import Actor
from telerehab.accounts.policy import Permission, has_permission
from telerehab.db_types import utc_now
from telerehab.errors import ValidationFailed
from telerehab.extensions import csrf
from telerehab.messaging import cli, operations
from telerehab.messaging.schemas import ManualMessageSchema, SmsSettingsSchema
from telerehab.web.forms import actor, load_form

bp = Blueprint("messaging", __name__, template_folder="templates")
bp.cli.add_command(cli.deliver)  # flask messaging deliver
bp.cli.add_command(cli.remind)  # flask messaging remind
bp.cli.add_command(cli.receive)  # flask messaging receive (demo: an inbound text without Twilio)


# ---------------------------------------------------------------- webhooks


def public_url() -> str:
    """The URL Twilio called, which its signature covers. Behind a proxy the app sees another
    scheme and host, so PUBLIC_BASE_URL (the address Twilio is given) takes their place."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if not base:
        return request.url
    query = request.query_string.decode("latin-1")
    return base.rstrip("/") + request.path + (f"?{query}" if query else "")


def signature_is_valid() -> bool:
    signature = request.headers.get(SIGNATURE_HEADER, "")
    settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
    if settings:  # signed with a webhook SharedKey instead of the auth token
        secret = current_app.config.get("TWILIO_WEBHOOK_SHARED_KEY")
        algorithm = get_signature_algorithm(settings)
    else:
        secret = current_app.config.get("TWILIO_AUTH_TOKEN")
        algorithm = None
    if not signature or not secret:
        return False
    return RequestValidator(secret).validate(public_url(), request.form, signature, algorithm)


def twilio_signed(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not signature_is_valid():
            return Response("Invalid or missing Twilio signature.\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return wrapper


def _twiml(text: str | None) -> Response:
    answer = MessagingResponse()
    if text:
        answer.message(text)
    return Response(str(answer), mimetype="text/xml")


@bp.route("/twilio/sms/inbound", methods=["POST"])
@twilio_signed
def inbound_sms():
    """A patient's text. Answered with TwiML: the reply, or an empty document."""
    try:
        message = operations.receive_sms(Actor(user=None, ip_address=request.remote_addr),
                                         request.form.to_dict(), now=utc_now())
    except ValidationFailed:
        return Response("MessageSid is missing.\n", status=400, mimetype="text/plain")
    return _twiml(message.reply)


@bp.route("/twilio/sms/status", methods=["POST"])
@twilio_signed
def sms_status():
    """Twilio's delivery report for a text we sent (?o= names our outbox row)."""
    operations.apply_status_callback(request.form.to_dict(), outbox_id=request.args.get("o", type=int),
                                     now=utc_now())
    return Response(status=204)


csrf.exempt(inbound_sms)
csrf.exempt(sms_status)


# ---------------------------------------------------------------- pages

OUTCOME_LABELS = {
    "checkin_recorded": "Check-in recorded",
    "checkin_refused": "Check-in not recorded",
    "not_understood": "Not understood",
    "help": "Asked for help",
    "opted_out": "Opted out (STOP)",
    "opt_in_request": "Asks to receive texts",
    "ambiguous_sender": "Several patients share this number",
    "unknown_sender": "Unknown number",
}
STATUS_LABELS = {"queued": "Queued", "sending": "Sending", "sent": "Sent", "delivered": "Delivered",
                 "failed": "Failed", "cancelled": "Cancelled"}
KIND_LABELS = {"reminder": "Daily reminder", "manual": "Message", "video_offer": "Video slot offer"}


@bp.route("/messages")
@login_required
def inbox():
    include_read = request.args.get("all") == "1"
    messages = operations.inbox(actor(), include_read=include_read, now=utc_now())
    return render_template(
        "messaging/inbox.html", messages=messages, include_read=include_read,
        outcome_labels=OUTCOME_LABELS, show_clinic=current_user.clinic_id is None,
    )


@bp.route("/messages/<id:message_id>/read", methods=["POST"])
@login_required
def mark_read(message_id: int):
    message = operations.mark_read(actor(), message_id, now=utc_now())
    if request.form.get("back") == "patient" and message.patient_id:
        return redirect(url_for("messaging.patient_messages", patient_id=message.patient_id, _anchor="incoming"))
    return redirect(url_for("messaging.inbox"))


def _patient_page(patient_id: int, *, failed: str | None = None, errors: dict | None = None, status: int = 200):
    talk = operations.conversation(actor(), patient_id, now=utc_now())
    form = request.form if failed else {}
    return render_template(
        "messaging/patient_messages.html", talk=talk, patient=talk.patient, failed=failed,
        errors=errors or {}, form=form, request_id=form.get("request_id") or uuid.uuid4(),
        can_send=has_permission(current_user, Permission.SEND_MESSAGES),
        outcome_labels=OUTCOME_LABELS, status_labels=STATUS_LABELS, kind_labels=KIND_LABELS,
    ), status


@bp.route("/patients/<id:patient_id>/messages", methods=["GET", "POST"])
@login_required
def patient_messages(patient_id: int):
    if request.method == "POST":
        try:
            data = load_form(ManualMessageSchema())
            operations.send_manual_message(actor(), patient_id, data, now=utc_now())
        except ValidationFailed as error:
            return _patient_page(patient_id, failed="message", errors=error.errors, status=422)
        flash("The message is queued; it goes out within a minute (or when the patient's quiet hours end).",
              "success")
        return redirect(url_for("messaging.patient_messages", patient_id=patient_id, _anchor="outgoing"))
    return _patient_page(patient_id)


@bp.route("/patients/<id:patient_id>/sms-settings", methods=["POST"])
@login_required
def sms_settings(patient_id: int):
    try:
        data = load_form(SmsSettingsSchema())
        operations.update_sms_settings(actor(), patient_id, data, now=utc_now())
    except ValidationFailed as error:
        return _patient_page(patient_id, failed="settings", errors=error.errors, status=422)
    flash("Reminder settings are saved.", "success")
    return redirect(url_for("messaging.patient_messages", patient_id=patient_id))
