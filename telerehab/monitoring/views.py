"""Pages: an episode's RTM panel (period timeline, minutes, forecast, timer and time entry,
enrolment, the patient's RPM periods and year-to-date therapy amount) and the triage inbox
across patients.

Views stay thin: schemas validate the forms, operations check policy, write and audit; a refused
form comes back with its messages beside the fields (422).
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from marshmallow import Schema, fields, validate

from telerehab.accounts import operations as account_operations
from telerehab.accounts.models import User
from telerehab.accounts.policy import Permission, has_permission
from telerehab.accounts.rules import CLINICAL_ROLES
from telerehab.accounts.schemas import PAYER_TYPES
from telerehab.api.validation import Dollars, dollars
from telerehab.careplans.records import episode_for
from telerehab.db_types import utc_now
from telerehab.errors import ValidationFailed
from telerehab.extensions import db
from telerehab.monitoring import operations
from telerehab.monitoring.rules import Activity, Channel
from telerehab.monitoring.schemas import (
    AlertThresholdsSchema,
    EndWriteSchema,
    EnrolmentWriteSchema,
    RpmPeriodWriteSchema,
    RtmPolicySchema,
    TherapyAmountWriteSchema,
    TimeEntryWriteSchema,
    TimerStopSchema,
)
from telerehab.web.forms import actor, load_form

bp = Blueprint("monitoring", __name__, template_folder="templates", static_folder="static",
               static_url_path="/monitoring/static")

ACTIVITY_LABELS = {Activity.DATA_REVIEW: "Data review", Activity.PROGRAM_CHANGE: "Program change",
                   Activity.CALL: "Phone call", Activity.VIDEO: "Video call", Activity.MESSAGE: "Message",
                   Activity.CARE_COORDINATION: "Care coordination"}
CHANNEL_LABELS = {Channel.PHONE: "Phone", Channel.VIDEO: "Video", Channel.IN_PERSON: "In person"}
STATUS_LABELS = {"ready": "Ready to bill", "held": "Held for review", "not_billable": "Not billable",
                 "open": "Running",
                 # From approval on, an RTM line carries billing's status.
                 "approved": "Approved by billing", "exported": "Exported on a claim",
                 "submitted": "Submitted to the payer", "paid": "Paid", "denied": "Denied by the payer",
                 "void": "Voided"}
RPM_SOURCE_LABELS = {"attestation": "Patient's or provider's attestation", "denial": "Claim denial",
                     "other": "Other"}
# The forms on the panel for the patient-level inputs: a refused one keeps its fields apart from
# the time-entry form's (both have a note).
RPM_FORM, AMOUNT_FORM = "rpm", "amount"


def _checkbox(payload: dict, name: str) -> dict:
    payload[name] = name in request.form
    return payload


def _panel(episode_id: int, *, errors: dict | None = None, status: int = 200, refused: str | None = None):
    """The panel; a refused form comes back with `errors`, `refused` naming it when it is one of
    the patient-level inputs' forms (RPM_FORM, AMOUNT_FORM)."""
    a = actor()
    now = utc_now()
    rtm = operations.rtm_status(a, episode_id, now=now)
    patient = rtm.episode.patient
    clinicians = []
    if rtm.enrolment is None and has_permission(current_user, Permission.MANAGE_RTM_ENROLMENT):
        clinicians = list(db.session.scalars(db.select(User).where(
            User.role.in_(CLINICAL_ROLES), User.clinic_id == rtm.episode.clinic_id,
            User.is_active_account.is_(True)).order_by(User.full_name)))
    main_errors = {} if refused else errors or {}
    return render_template(
        "monitoring/panel.html", rtm=rtm, episode=rtm.episode, patient=patient,
        errors=main_errors, form=request.form if main_errors else {}, clinicians=clinicians,
        activity_labels=ACTIVITY_LABELS, channel_labels=CHANNEL_LABELS, status_labels=STATUS_LABELS,
        billing_status={(line.slot, line.period_key): line.status for line in rtm.lines
                        if line.status not in operations.ENGINE_STATUSES},
        can_log=has_permission(current_user, Permission.LOG_MANAGEMENT_TIME),
        can_manage=has_permission(current_user, Permission.MANAGE_RTM_ENROLMENT),
        can_record_amount=has_permission(current_user, Permission.RECORD_THERAPY_AMOUNT),
        inputs=operations.patient_inputs(a, patient.id, now=now),
        patient_today=operations.local_today(patient.timezone, now), rpm_source_labels=RPM_SOURCE_LABELS,
        dollars=dollars,
        refused=refused, input_errors=errors if refused else {}, input_form=request.form if refused else {},
    ), status


@bp.route("/episodes/<id:episode_id>/rtm")
@login_required
def panel(episode_id: int):
    return _panel(episode_id)


def _post(episode_id: int, action, success, *, form: str | None = None):
    """Run `action`; then flash `success` (a message, or a function of what the action returned)."""
    try:
        result = action()
    except ValidationFailed as error:
        return _panel(episode_id, errors=error.errors, status=422, refused=form)
    flash(success(result) if callable(success) else success, "success")
    return redirect(url_for("monitoring.panel", episode_id=episode_id))


@bp.route("/episodes/<id:episode_id>/rtm/enrol", methods=["POST"])
@login_required
def enrol(episode_id: int):
    def act():
        data = load_form(EnrolmentWriteSchema(), adjust=lambda p: {
            **p, "cost_sharing_notice_shown_at": utc_now().isoformat() if "notice_shown" in request.form else None})
        operations.enrol(actor(), episode_id, data, now=utc_now())
    return _post(episode_id, act, "The episode is enrolled in remote therapeutic monitoring.")


@bp.route("/episodes/<id:episode_id>/rtm/time", methods=["POST"])
@login_required
def log_time(episode_id: int):
    def act():
        data = load_form(TimeEntryWriteSchema(), adjust=lambda p: _checkbox(p, "interactive"))
        operations.record_management_time(actor(), episode_id, data, now=utc_now())
    return _post(episode_id, act, "Minutes logged.")


@bp.route("/episodes/<id:episode_id>/rtm/timer/start", methods=["POST"])
@login_required
def start_timer(episode_id: int):
    return _post(episode_id, lambda: operations.start_timer(actor(), episode_id, now=utc_now()), "Timer started.")


@bp.route("/episodes/<id:episode_id>/rtm/timer/stop", methods=["POST"])
@login_required
def stop_timer(episode_id: int):
    def act():
        data = load_form(TimerStopSchema(), adjust=lambda p: _checkbox(p, "interactive"))
        entry = operations.stop_timer(actor(), episode_id, data, now=utc_now())
        flash(f"{entry.minutes} minutes logged from the timer.", "success")
    return _post(episode_id, act, "Timer stopped.")


@bp.route("/episodes/<id:episode_id>/rtm/end", methods=["POST"])
@login_required
def end(episode_id: int):
    def act():
        operations.end_monitoring(actor(), episode_id, load_form(EndWriteSchema()), now=utc_now())
    return _post(episode_id, act, "Monitoring stopped; the data collected so far is kept.")


# ---------------------------------------------------------------- the patient's RPM periods and therapy amount



def _api_range(name: str) -> validate.Range:
    """The API schema's limits on a therapy amount field: the page allows no more."""
    return next(v for v in TherapyAmountWriteSchema().fields[name].validators if isinstance(v, validate.Range))


_CENTS_RANGE, _YEAR_RANGE = _api_range("amount_cents"), _api_range("year")


class TherapyAmountForm(Schema):
    """The panel's form: the MAC's year-to-date amount as typed, and the date it was given for."""

    amount = Dollars(required=True, validate=validate.Range(
        _CENTS_RANGE.min, _CENTS_RANGE.max, error=f"The amount is at most {dollars(_CENTS_RANGE.max)}."))
    as_of = fields.Date(required=True, validate=validate.Range(
        date(_YEAR_RANGE.min, 1, 1), date(_YEAR_RANGE.max, 12, 31),
        error=f"The as-of date is between {_YEAR_RANGE.min} and {_YEAR_RANGE.max}."))


def _patient_id(episode_id: int) -> int:
    """The episode's patient (an episode out of reach is not found), whose inputs these are."""
    return episode_for(actor(), episode_id, Permission.VIEW_MONITORING).patient_id


@bp.route("/episodes/<id:episode_id>/rtm/rpm-periods", methods=["POST"])
@login_required
def record_rpm_period(episode_id: int):
    def act():
        return operations.record_rpm_period(actor(), _patient_id(episode_id), load_form(RpmPeriodWriteSchema()),
                                            now=utc_now())
    return _post(episode_id, act, lambda period: f"RPM period {period.start_date.isoformat()} to "
                 f"{period.end_date.isoformat()} recorded.", form=RPM_FORM)


@bp.route("/episodes/<id:episode_id>/rtm/therapy-amount", methods=["POST"])
@login_required
def record_therapy_amount(episode_id: int):
    def act():
        patient_id = _patient_id(episode_id)
        typed = load_form(TherapyAmountForm())
        return operations.record_therapy_amount(actor(), patient_id, {
            "year": typed["as_of"].year, "amount_cents": typed["amount"], "as_of": typed["as_of"]}, now=utc_now())
    return _post(episode_id, act, lambda amount: f"Therapy amount for {amount.year} recorded: "
                 f"{dollars(amount.amount_cents)} as of {amount.as_of.isoformat()}.", form=AMOUNT_FORM)


@bp.route("/rtm/triage")
@login_required
def triage():
    items = operations.triage(actor(), now=utc_now())
    return render_template("monitoring/triage.html", items=items,
                           can_text=has_permission(current_user, Permission.SEND_MESSAGES))


@bp.route("/rtm/triage/patients/<id:patient_id>/remind", methods=["POST"])
@login_required
def remind(patient_id: int):
    if operations.send_reminder(actor(), patient_id, now=utc_now()):
        flash("Reminder queued (one a day at most).", "success")
    else:
        flash("No text can be sent: the patient has no SMS consent or no mobile number.", "error")
    return redirect(url_for("monitoring.triage"))


@bp.route("/rtm/alerts/<id:alert_id>/acknowledge", methods=["POST"])
@login_required
def acknowledge(alert_id: int):
    operations.acknowledge_alert(actor(), alert_id, now=utc_now())
    return redirect(url_for("monitoring.triage"))


# ---------------------------------------------------------------- settings (admin)


def _settings_page(*, errors: dict | None = None, status: int = 200):
    a = actor()
    payer_type = request.values.get("payer_type") or "medicare"
    if payer_type not in PAYER_TYPES:
        payer_type = "medicare"
    policy = operations.rtm_policy(a, payer_type)  # checks the permission first
    # Alert thresholds and the payer's RTM choices are the admin's; billing staff see the choices only.
    can_set = has_permission(current_user, Permission.MANAGE_CARE_SETTINGS)
    clinics = account_operations.list_clinics(a) if can_set else []
    clinic_id = request.values.get("clinic_id", type=int) or (clinics[0].id if clinics else None)
    return render_template(
        "monitoring/settings.html", payer_type=payer_type, payer_types=PAYER_TYPES,
        policy=policy, clinics=clinics, clinic_id=clinic_id,
        thresholds=operations.alert_thresholds(a, clinic_id) if clinic_id else None, can_set_policy=can_set,
        errors=errors or {}, form=request.form if errors else {}), status


@bp.route("/settings/rtm")
@login_required
def settings():
    return _settings_page()


@bp.route("/settings/rtm/policy", methods=["POST"])
@login_required
def save_policy():
    payer_type = request.form.get("payer_type", "")
    try:
        if payer_type not in PAYER_TYPES:
            raise ValidationFailed({"payer_type": ["Choose a kind of payer."]})
        data = load_form(RtmPolicySchema(), adjust=lambda p: {
            **p, "async_message_is_interactive": "async_message_is_interactive" in request.form,
            "addon_needs_own_interaction": "addon_needs_own_interaction" in request.form})
        operations.set_rtm_policy(actor(), payer_type, data, now=utc_now())
    except ValidationFailed as error:
        return _settings_page(errors=error.errors, status=422)
    flash("RTM billing choices saved.", "success")
    return redirect(url_for("monitoring.settings", payer_type=payer_type))


@bp.route("/settings/rtm/alerts", methods=["POST"])
@login_required
def save_alerts():
    clinic_id = request.form.get("clinic_id", type=int) or 0
    try:
        operations.set_alert_thresholds(actor(), clinic_id, load_form(AlertThresholdsSchema()), now=utc_now())
    except ValidationFailed as error:
        return _settings_page(errors=error.errors, status=422)
    flash("Alert thresholds saved.", "success")
    return redirect(url_for("monitoring.settings", clinic_id=clinic_id))
