"""Pages: the billing workbench (a month's lines, filters, totals, bulk approve and hold), each
line's evidence and notes, the printable evidence pack, export batches (progress, downloads,
cancel, corrections), the fee schedule and claim settings, and a therapist's own lines' status.

Views stay thin: schemas validate the forms, operations check policy, write and audit; a refused
form comes back with its messages beside the fields (422).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from telerehab.accounts.policy import Permission, require_permission
from telerehab.accounts.schemas import PAYER_TYPES
from telerehab.api.validation import dollars as format_dollars
from telerehab.billing import operations
from telerehab.billing.models import BillingLine
from telerehab.billing.operations import CORRECTABLE, Filters
from telerehab.billing.rules import LineAction, LineStatus
from telerehab.billing.schemas import (
    BatchCreateSchema,
    BulkActionSchema,
    ClaimSettingsSchema,
    CorrectionSchema,
    EvidencePackSchema,
    FilterSchema,
    MonthSchema,
    NoteSchema,
    fee_schema,
)
from telerehab.billing.x12 import RTM_CODES
from telerehab.db_types import utc_now
from telerehab.errors import ValidationFailed
from telerehab.web.forms import actor, load_form

bp = Blueprint("billing", __name__, url_prefix="/billing", template_folder="templates", static_folder="static",
               static_url_path="/static")

STATUS_LABELS = {LineStatus.READY: "Ready", LineStatus.HELD: "Held", LineStatus.APPROVED: "Approved",
                 LineStatus.EXPORTED: "Exported", LineStatus.SUBMITTED: "Submitted", LineStatus.PAID: "Paid",
                 LineStatus.DENIED: "Denied", LineStatus.VOID: "Void", LineStatus.WITHDRAWN: "Withdrawn"}
ACTION_LABELS = {LineAction.APPROVE: "Approve", LineAction.HOLD: "Hold", LineAction.RELEASE: "Release the hold",
                 LineAction.UNAPPROVE: "Unapprove", LineAction.MARK_SUBMITTED: "Mark submitted",
                 LineAction.MARK_PAID: "Mark paid", LineAction.MARK_DENIED: "Mark denied"}
ACTION_DONE = {LineAction.APPROVE: "approved", LineAction.HOLD: "held", LineAction.RELEASE: "released",
               LineAction.UNAPPROVE: "unapproved", LineAction.MARK_SUBMITTED: "marked submitted",
               LineAction.MARK_PAID: "marked paid", LineAction.MARK_DENIED: "marked denied"}
BATCH_STATUS_LABELS = {"queued": "Queued", "running": "Writing", "ready": "Ready", "failed": "Failed",
                       "cancelled": "Cancelled"}
FREQUENCY_LABELS = {"1": "Original", "7": "Replacement", "8": "Void"}
FILTER_NAMES = ("month", "clinic", "therapist", "payer", "code", "status")
REFUSED_SHOWN = 20  # refused lines listed one by one after a bulk action; the rest are counted


def dollars(cents: int | None) -> str:
    """A line's charge as shown; a line without a fee has none."""
    return "no fee" if cents is None else format_dollars(cents)


@bp.context_processor
def _labels():
    return {"dollars": dollars, "status_labels": STATUS_LABELS, "batch_status_labels": BATCH_STATUS_LABELS,
            "frequency_labels": FREQUENCY_LABELS}


# ---------------------------------------------------------------- months and filters


def _previous_month(now: datetime) -> str:
    """The month billing closes by default: the last one, in the user's clinic's timezone (UTC for
    organisation-wide users)."""
    zone = current_user.clinic.timezone if current_user.clinic_id else "UTC"
    first = now.astimezone(ZoneInfo(zone)).date().replace(day=1)
    return f"{first - timedelta(days=1):%Y-%m}"


def _shift(month: str, months: int) -> str:
    year, number = divmod(int(month[:4]) * 12 + int(month[5:]) - 1 + months, 12)
    return f"{year:04d}-{number + 1:02d}"


def _filters(values) -> tuple[Filters, int]:
    """The workbench's filters from a query string or a form's hidden fields; bad ones are refused."""
    data = load_form(FilterSchema(), values=values)
    filters = Filters(month=data.get("month") or _previous_month(utc_now()), clinic_id=data.get("clinic"),
                      rendering_id=data.get("therapist"), payer_type=data.get("payer"), code=data.get("code"),
                      status=data.get("status"))
    return filters, data.get("page") or 1


def _filter_args(filters: Filters) -> dict:
    """The filters as query arguments, for links that keep them."""
    args = {"month": filters.month, "clinic": filters.clinic_id, "therapist": filters.rendering_id,
            "payer": filters.payer_type, "code": filters.code, "status": filters.status}
    return {name: value for name, value in args.items() if value is not None}


def _selection(payload: dict) -> dict:
    """Ticked lines (a list field) and the "all matching" box, which form_payload reads one value of."""
    return {**payload, "line": request.form.getlist("line"), "apply_all": "apply_all" in request.form}


# ---------------------------------------------------------------- the workbench


def _workbench_page(filters: Filters | None, *, page: int = 1, errors: dict | None = None, status: int = 200):
    """The month view; `filters` None when they were refused (the form comes back with the messages)."""
    if filters is None:
        require_permission(current_user, Permission.MANAGE_BILLING)
        return render_template("billing/workbench.html", workbench=None, filters=None, errors=errors or {},
                               args=request.args, form={}), status
    workbench = operations.workbench(actor(), filters, page=page, now=utc_now())
    args = _filter_args(filters)
    return render_template(
        "billing/workbench.html", workbench=workbench, filters=filters, args=args, errors=errors or {},
        form=request.form if errors else {}, ticked=request.form.getlist("line") if errors else [],
        previous_month=_shift(filters.month, -1),
        next_month=_shift(filters.month, 1), action_labels=ACTION_LABELS, payer_types=PAYER_TYPES), status


@bp.route("/")
@login_required
def workbench():
    try:
        filters, page = _filters(request.args)
    except ValidationFailed as error:
        return _workbench_page(None, errors=error.errors, status=422)
    return _workbench_page(filters, page=page)


@bp.route("/actions", methods=["POST"])
@login_required
def bulk_action():
    try:
        filters, page = _filters(request.form)
    except ValidationFailed as error:
        return _workbench_page(None, errors=error.errors, status=422)
    a, now = actor(), utc_now()
    try:
        data = load_form(BulkActionSchema(), adjust=_selection)
        line_ids = operations.matching_line_ids(a, filters) if data["apply_all"] else data["line"]
        result = operations.apply_action(a, line_ids, data["action"], reason=data.get("reason"), now=now)
    except ValidationFailed as error:
        return _workbench_page(filters, page=page, errors=error.errors, status=422)
    done = ACTION_DONE[LineAction(data["action"])]
    summary = f"{_lines(len(result.changed))} {done}"
    if result.refused:
        summary += f"; {len(result.refused)} refused"
    flash(summary + ".", "success" if result.changed or not result.refused else "error")
    for line_id, why in list(result.refused.items())[:REFUSED_SHOWN]:
        flash(f"Line {line_id} refused: {why}", "error")
    if len(result.refused) > REFUSED_SHOWN:
        flash(f"… and {len(result.refused) - REFUSED_SHOWN} more refused lines.", "error")
    if request.form.get("from_line", type=int):  # acted on from the line's own page: back there
        return redirect(url_for("billing.line", line_id=request.form.get("from_line", type=int),
                                **_filter_args(filters)))
    return redirect(url_for("billing.workbench", **_filter_args(filters), page=page))


def _lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"


@bp.route("/refresh", methods=["POST"])
@login_required
def refresh():
    run = operations.refresh_lines(actor(), now=utc_now())
    flash(f"Lines brought in: {run.added} new, {run.refreshed} updated, {run.withdrawn} withdrawn.", "success")
    try:
        filters, _ = _filters(request.form)
    except ValidationFailed:
        return redirect(url_for("billing.workbench"))
    return redirect(url_for("billing.workbench", **_filter_args(filters)))


@bp.route("/batches", methods=["POST"])
@login_required
def create_batches():
    try:
        filters, page = _filters(request.form)
    except ValidationFailed as error:
        return _workbench_page(None, errors=error.errors, status=422)
    a = actor()
    try:
        data = load_form(BatchCreateSchema(), adjust=_selection)
        # None ticked: the approved lines among those the filters show (every page).
        line_ids = data["line"] if data["line"] and not data["apply_all"] else operations.matching_line_ids(a, filters)
        batches = operations.create_batches(a, data["month"], line_ids=line_ids, now=utc_now())
    except ValidationFailed as error:
        return _workbench_page(filters, page=page, errors=error.errors, status=422)
    lines = sum(batch.line_count for batch in batches)
    if len(batches) == 1:
        flash(f"{_lines(lines)} queued for export in batch {batches[0].reference}.", "success")
        return redirect(url_for("billing.batch", batch_id=batches[0].id))
    flash(f"{_lines(lines)} queued for export in {len(batches)} batches (one per clinic and kind of payer).",
          "success")
    return redirect(url_for("billing.batches", month=data["month"]))


# ---------------------------------------------------------------- a line's evidence


def _workbench_args(values) -> dict:
    """The workbench's filters a line page was opened with, so that its way back keeps them."""
    return {name: values[name] for name in FILTER_NAMES if values.get(name)}


def _evidence_page(line_id: int, *, errors: dict | None = None, status: int = 200):
    evidence = operations.line_evidence(actor(), line_id, now=utc_now())
    back = _workbench_args(request.values) or {"month": evidence.line.month}
    return render_template("billing/line.html", evidence=evidence, line=evidence.line, patient=evidence.patient,
                           back=back, action_labels=ACTION_LABELS, errors=errors or {},
                           form=request.form if errors else {}), status


@bp.route("/lines/<id:line_id>")
@login_required
def line(line_id: int):
    return _evidence_page(line_id)


@bp.route("/lines/<id:line_id>/notes", methods=["POST"])
@login_required
def add_note(line_id: int):
    try:
        operations.add_note(actor(), line_id, load_form(NoteSchema())["text"], now=utc_now())
    except ValidationFailed as error:
        return _evidence_page(line_id, errors=error.errors, status=422)
    flash("Note added.", "success")
    return redirect(url_for("billing.line", line_id=line_id, **_workbench_args(request.form)))


@bp.route("/evidence-pack")
@login_required
def evidence_pack():
    data = load_form(EvidencePackSchema(), values=request.args)
    pack = operations.evidence_pack(actor(), now=utc_now(), claim_number=data.get("claim"),
                                    patient_id=data.get("patient"), month=data.get("month"))
    return render_template("billing/pack.html", pack=pack, patient=pack.patient)


# ---------------------------------------------------------------- export batches


@bp.route("/batches")
@login_required
def batches():
    month = request.args.get("month") or None
    if month and MonthSchema().validate({"month": month}):
        month = None
    return render_template("billing/batches.html", batches=operations.list_batches(actor(), month=month),
                           month=month)


# What mends the data a failed export named (the field is the dotted path of the culprit).
FAILURE_HINTS = (
    ("payer_settings", "Fill in the payer's claim settings on the billing settings page."),
    ("batch.submitter", "Correct the submitter on the billing settings page (claim settings)."),
    ("batch.receiver", "Correct the receiver on the billing settings page (claim settings)."),
    (".payer", "Correct the payer's name or id on the billing settings page (claim settings)."),
    ("batch.billing_provider", "Correct the clinic's address, NPI or TIN on the clinics page (an administrator)."),
    (".subscriber", "Correct the patient's name, address or member id on their insurance details."),
    (".rendering", "Record the therapist's name and NPI on their staff profile."),
    ("diagnoses", "Correct the diagnoses on the patient's plan of care."),
)


def failure_hint(field: str | None) -> str:
    for marker, hint in FAILURE_HINTS:
        if field and marker in field:
            return hint
    return "Mend the data named above; the lines are free again: export them in a new batch."


def _batch_page(batch_id: int, *, errors: dict | None = None, status: int = 200, correcting: str | None = None):
    detail = operations.batch_detail(actor(), batch_id, now=utc_now())
    batch = detail.batch
    claims: dict[str, list[BillingLine]] = defaultdict(list)
    taken_over: dict[str, bool] = defaultdict(bool)  # a correction (or a later batch) holds some of its lines now
    for row in detail.rows:
        number = row.claim_number or ""  # the claim number in this batch, whatever the line carries now
        claims[number].append(row.line)
        taken_over[number] |= not row.live and batch.status == "ready"
    return render_template(
        "billing/batch.html", batch=batch, claims=dict(sorted(claims.items())), taken_over=taken_over,
        correctable={number: bool(number) and batch.status == "ready" and not taken_over[number]
                     and all(line.status in CORRECTABLE for line in claim_lines)
                     for number, claim_lines in claims.items()},
        # What the clerk can still do: mark exported lines submitted; cancel while nothing was sent.
        awaiting_submission=any(row.live and row.line.status == LineStatus.EXPORTED for row in detail.rows),
        unsent=bool(detail.rows) and all(row.live and row.line.status == LineStatus.EXPORTED for row in detail.rows),
        downloaded=detail.downloaded, hint=failure_hint(batch.error_field), errors=errors or {},
        form=request.form if errors else {}, correcting=correcting), status


@bp.route("/batches/<id:batch_id>")
@login_required
def batch(batch_id: int):
    return _batch_page(batch_id)


@bp.route("/batches/<id:batch_id>/progress")
@login_required
def batch_progress(batch_id: int):
    batch = operations.batch_progress(actor(), batch_id)
    return jsonify(status=batch.status, done=batch.progress_done or 0, total=batch.line_count, error=batch.error)


@bp.route("/batches/<id:batch_id>/download/<any('837p', 'csv'):file_format>")
@login_required
def download(batch_id: int, file_format: str):
    stored = operations.batch_file(actor(), batch_id, file_format, now=utc_now())
    return Response(stored.data, mimetype=stored.mimetype, headers={
        "Content-Disposition": f'attachment; filename="{stored.filename}"', "Cache-Control": "no-store"})


def _batch_post(batch_id: int, action, success: str):
    try:
        action()
    except ValidationFailed as error:
        return _batch_page(batch_id, errors=error.errors, status=422)
    flash(success, "success")
    return redirect(url_for("billing.batch", batch_id=batch_id))


@bp.route("/batches/<id:batch_id>/submitted", methods=["POST"])
@login_required
def mark_submitted(batch_id: int):
    return _batch_post(batch_id, lambda: operations.mark_batch_submitted(actor(), batch_id, now=utc_now()),
                       "The batch's lines are marked submitted.")


@bp.route("/batches/<id:batch_id>/cancel", methods=["POST"])
@login_required
def cancel(batch_id: int):
    return _batch_post(batch_id, lambda: operations.cancel_batch(actor(), batch_id, not_sent="not_sent" in request.form,
                                                                 now=utc_now()),
                       "Batch cancelled: its lines are approved again and can be exported in another batch.")


@bp.route("/claims/<claim_number>/correction", methods=["POST"])
@login_required
def correct_claim(claim_number: str):
    require_permission(current_user, Permission.MANAGE_BILLING)  # before the form: a refusal re-shows a batch
    batch_id = request.form.get("batch_id", type=int)
    try:
        data = load_form(CorrectionSchema(), adjust=lambda p: {**p, "remove": request.form.getlist("remove")})
        batch = operations.correct_claim(actor(), claim_number, data["kind"],
                                         payer_claim_number=data["payer_claim_number"],
                                         remove_line_ids=data["remove"], now=utc_now())
    except ValidationFailed as error:
        if batch_id is None:
            raise
        return _batch_page(batch_id, errors=error.errors, status=422, correcting=claim_number)
    kind = "Replacement" if data["kind"] == "replace" else "Void"
    flash(f"{kind} of claim {claim_number} queued as batch {batch.reference}.", "success")
    return redirect(url_for("billing.batch", batch_id=batch.id))


# ---------------------------------------------------------------- fee schedule and claim settings


def _payer_type() -> str:
    payer_type = request.values.get("payer_type") or "medicare"
    return payer_type if payer_type in PAYER_TYPES else "medicare"


def _fee_codes(schedule: dict[str, dict[str, int]]) -> list[str]:
    """The rows of the fee table: the RTM codes, every code on the schedule and every code billed."""
    return sorted({*RTM_CODES, *(code for fees in schedule.values() for code in fees),
                   *operations.billed_codes(actor())})


def _claim_values(row) -> dict:
    return {name: getattr(row, name) for name in operations.CLAIM_SETTING_FIELDS} if row else {}


def _settings_page(*, errors: dict | None = None, status: int = 200, refused: str | None = None):
    a = actor()
    payer_type = _payer_type()
    schedule = operations.fee_schedule(a)  # checks the permission first
    return render_template(
        "billing/settings.html", payer_type=payer_type, payer_types=PAYER_TYPES, codes=_fee_codes(schedule),
        fees=schedule.get(payer_type, {}), claim_values=_claim_values(operations.claim_settings(a).get(payer_type)),
        errors=errors or {}, form=request.form if errors else {}, refused=refused), status


@bp.route("/settings")
@login_required
def settings():
    return _settings_page()


@bp.route("/settings/fees", methods=["POST"])
@login_required
def save_fees():
    payer_type = _payer_type()
    a = actor()
    try:
        codes = _fee_codes(operations.fee_schedule(a))
        data = load_form(fee_schema(codes))
        amounts = {code: data[f"fee_{code}"] for code in codes if f"fee_{code}" in data}
        if data.get("new_code"):
            amounts[data["new_code"]] = data["new_amount"]
        operations.set_fees(a, payer_type, amounts, now=utc_now())
    except ValidationFailed as error:
        return _settings_page(errors=error.errors, status=422, refused="fees")
    flash(f"Fee schedule for {payer_type.replace('_', ' ')} saved; open lines take the new charges.", "success")
    return redirect(url_for("billing.settings", payer_type=payer_type))


@bp.route("/settings/claims", methods=["POST"])
@login_required
def save_claim_settings():
    payer_type = _payer_type()
    try:
        operations.set_claim_settings(actor(), payer_type, load_form(ClaimSettingsSchema()), now=utc_now())
    except ValidationFailed as error:
        return _settings_page(errors=error.errors, status=422, refused="claims")
    flash(f"Claim settings for {payer_type.replace('_', ' ')} saved.", "success")
    return redirect(url_for("billing.settings", payer_type=payer_type))


# ---------------------------------------------------------------- a therapist's own lines


@bp.route("/status")
@login_required
def own_status():
    require_permission(current_user, Permission.VIEW_OWN_BILLING_STATUS)
    errors = MonthSchema().validate({"month": request.args["month"]}) if request.args.get("month") else {}
    month = request.args.get("month") if request.args.get("month") and not errors else _previous_month(utc_now())
    lines = operations.own_line_statuses(actor(), month, now=utc_now())
    return render_template("billing/status.html", lines=lines, month=month, errors=errors,
                           previous_month=_shift(month, -1), next_month=_shift(month, 1)), 422 if errors else 200
