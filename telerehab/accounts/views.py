"""Pages: sign-in, sign-out, the user's own account (password, API tokens), patients, consent,
portal access, and the administration of users and clinics.

Views stay thin: they validate form input with the schemas, call operations (which check policy
and audit), and re-show a form with its messages (422) when the input is refused.
"""

from urllib.parse import urlsplit

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from telerehab.accounts import operations
from telerehab.accounts.policy import Permission, has_permission, require_permission
from telerehab.accounts.rules import ConsentKind, Role
from telerehab.accounts.schemas import (
    CONSENT_METHODS,
    ClinicSchema,
    ConsentRevokeSchema,
    ConsentSchema,
    PatientWriteSchema,
    UserCreateSchema,
)
from telerehab.careplans import operations as careplan_operations
from telerehab.db_types import utc_now
from telerehab.errors import Throttled, ValidationFailed
from telerehab.web.forms import actor, is_htmx_partial, load_form

bp = Blueprint("accounts", __name__, template_folder="templates")


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


# ---------------------------------------------------------------- shared helpers for pages

PAGE_SIZE = 25


def _form_values(obj, names) -> dict[str, str]:
    values = {}
    for name in names:
        value = getattr(obj, name, None)
        values[name] = "" if value is None else (value.isoformat() if hasattr(value, "isoformat") else str(value))
    return values


# ---------------------------------------------------------------- patients

@bp.route("/patients")
@login_required
def patient_list():
    query = request.args.get("q", "").strip()[:100]
    page = min(max(1, request.args.get("page", 1, type=int) or 1), 100_000)
    # "Mine only" is for therapists and on by default for them. The form sends a hidden mine=0
    # before the checkbox, so the last value says whether the box is ticked.
    can_filter_mine = current_user.role == Role.THERAPIST
    mine_values = request.args.getlist("mine")
    mine = can_filter_mine and (mine_values[-1] == "1" if mine_values else True)
    result = operations.search_patients(
        actor(), query=query or None, page=page, page_size=PAGE_SIZE, now=utc_now(),
        therapist_id=current_user.id if mine else None,
    )
    context = {
        "result": result, "query": query, "mine": mine, "can_filter_mine": can_filter_mine,
        "latest": careplan_operations.latest_episodes(actor(), result.items),
        # The therapist's home lists the plans of care that need them (certification, progress).
        "alerts": careplan_operations.caseload_alerts(actor(), therapist_id=current_user.id, now=utc_now())
        if current_user.role == Role.THERAPIST and not is_htmx_partial() else [],
        "can_add": has_permission(current_user, Permission.EDIT_PATIENT),
        "show_clinic": current_user.clinic_id is None,
    }
    if is_htmx_partial():
        response = make_response(render_template("accounts/_patient_results.html", **context))
    else:
        response = make_response(render_template("accounts/patient_list.html", **context))
    response.headers["Vary"] = "HX-Request"
    return response


PATIENT_FIELDS = (
    "first_name", "last_name", "date_of_birth", "sex", "phone", "email", "timezone",
    "preferred_language", "clinic_id", "primary_therapist_id", "payer_type", "payer_name", "member_id",
    "address_line1", "address_line2", "city", "state", "postal_code",
)


def _patient_form(*, patient, values: dict, errors: dict, status: int):
    a = actor()
    return render_template(
        "accounts/patient_form.html", patient=patient, values=values, errors=errors,
        clinic_choices=[(c.id, c.name) for c in operations.list_clinics(a)],
        therapist_choices=[(t.id, t.full_name) for t in operations.list_clinicians(a)],
        sexes=SEX_CHOICES, payer_types=PAYER_CHOICES, timezones=COMMON_TIMEZONES,
    ), status


SEX_CHOICES = [("F", "Female"), ("M", "Male"), ("U", "Unknown")]
PAYER_CHOICES = [
    ("medicare", "Medicare"), ("medicare_advantage", "Medicare Advantage"), ("medicaid", "Medicaid"),
    ("commercial", "Commercial insurance"), ("workers_comp", "Workers' compensation"), ("self_pay", "Self-pay"),
]
COMMON_TIMEZONES = [
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
    "America/Anchorage", "Pacific/Honolulu", "America/Puerto_Rico",
]


@bp.route("/patients/new", methods=["GET", "POST"])
@login_required
def patient_new():
    require_permission(current_user, Permission.EDIT_PATIENT)
    if request.method == "POST":
        try:
            data = load_form(PatientWriteSchema())
            patient = operations.create_patient(actor(), data, now=utc_now())
        except ValidationFailed as error:
            return _patient_form(patient=None, values=request.form, errors=error.errors, status=422)
        flash(f"{patient.full_name} is registered.", "success")
        return redirect(url_for("accounts.patient_detail", patient_id=patient.id))
    clinic = current_user.clinic
    values = {
        "timezone": clinic.timezone if clinic else "", "preferred_language": "en", "payer_type": "medicare",
        "primary_therapist_id": current_user.id if current_user.role == Role.THERAPIST else "",
        "clinic_id": current_user.clinic_id or "",
    }
    return _patient_form(patient=None, values=values, errors={}, status=200)


@bp.route("/patients/<id:patient_id>/edit", methods=["GET", "POST"])
@login_required
def patient_edit(patient_id: int):
    patient = operations.get_patient(actor(), patient_id, now=utc_now())
    require_permission(current_user, Permission.EDIT_PATIENT)
    if request.method == "POST":
        try:
            data = load_form(PatientWriteSchema())
            operations.update_patient(actor(), patient.id, data, now=utc_now())
        except ValidationFailed as error:
            return _patient_form(patient=patient, values=request.form, errors=error.errors, status=422)
        flash(f"{patient.full_name}'s details are saved.", "success")
        return redirect(url_for("accounts.patient_detail", patient_id=patient.id))
    return _patient_form(patient=patient, values=_form_values(patient, PATIENT_FIELDS), errors={}, status=200)


def _patient_page(patient_id: int, *, failed: str | None = None, errors: dict | None = None, status: int = 200):
    """The patient page; `failed` names the form on it whose errors to show beside its fields."""
    a, now = actor(), utc_now()
    patient = operations.get_patient(a, patient_id, now=now)
    episodes = careplan_operations.episodes_of_patient(a, patient.id, now=now)
    active_kinds = {c.kind for c in patient.consents if c.is_active}
    return render_template(
        "accounts/patient_detail.html", patient=patient, episodes=episodes,
        failed=failed, errors=errors or {}, form=request.form if failed else {},
        consent_kinds=[(k.value, CONSENT_LABELS[k]) for k in ConsentKind if k not in active_kinds],
        consent_labels=CONSENT_LABELS, consent_methods=[(m, m.capitalize()) for m in CONSENT_METHODS],
        payer_labels=dict(PAYER_CHOICES), sex_labels=dict(SEX_CHOICES),
        can_edit=has_permission(current_user, Permission.EDIT_PATIENT),
        can_consent=has_permission(current_user, Permission.RECORD_CONSENT),
        can_add_episode=has_permission(current_user, Permission.EDIT_EPISODE),
    ), status


CONSENT_LABELS = {
    ConsentKind.TELEHEALTH: "Telehealth (video visits)",
    ConsentKind.RTM: "Remote therapeutic monitoring",
    ConsentKind.SMS: "Text messages (SMS)",
}


@bp.route("/patients/<id:patient_id>")
@login_required
def patient_detail(patient_id: int):
    return _patient_page(patient_id)


@bp.route("/patients/<id:patient_id>/consents", methods=["POST"])
@login_required
def consent_record(patient_id: int):
    try:
        data = load_form(ConsentSchema())
        operations.record_consent(actor(), patient_id, data["kind"], method=data["method"],
                                  note=data.get("note"), now=utc_now())
    except ValidationFailed as error:
        return _patient_page(patient_id, failed="consent", errors=error.errors, status=422)
    flash(f"{CONSENT_LABELS[ConsentKind(data['kind'])]} consent is recorded.", "success")
    return redirect(url_for("accounts.patient_detail", patient_id=patient_id, _anchor="consent"))


@bp.route("/consents/<id:consent_id>/revoke", methods=["POST"])
@login_required
def consent_revoke(consent_id: int):
    patient_id = request.form.get("patient_id", type=int)
    try:
        data = load_form(ConsentRevokeSchema())
        consent = operations.revoke_consent(actor(), consent_id, note=data.get("note"), now=utc_now())
    except ValidationFailed as error:
        if patient_id is None:
            raise
        return _patient_page(patient_id, failed=f"revoke-{consent_id}", errors=error.errors, status=422)
    flash(f"{CONSENT_LABELS[ConsentKind(consent.kind)]} consent is revoked; the record is kept.", "success")
    return redirect(url_for("accounts.patient_detail", patient_id=consent.patient_id, _anchor="consent"))


@bp.route("/patients/<id:patient_id>/portal-access", methods=["POST"])
@login_required
def portal_access(patient_id: int):
    try:
        data = load_form(UserCreateSchema(only=("username", "password")))
        user = operations.give_portal_access(actor(), patient_id, data["username"], data["password"],
                                             now=utc_now())
    except ValidationFailed as error:
        return _patient_page(patient_id, failed="portal", errors=error.errors, status=422)
    flash(f"Portal access is ready: the patient signs in as {user.username} with the temporary "
          "password you chose, and should change it under Account.", "success")
    return redirect(url_for("accounts.patient_detail", patient_id=patient_id))


# ---------------------------------------------------------------- administration

ROLE_CHOICES = [("therapist", "Physical therapist (PT)"), ("assistant", "Physical therapist assistant (PTA)"),
                ("billing", "Billing"), ("admin", "Administrator")]


@bp.route("/admin/users", methods=["GET", "POST"])
@login_required
def admin_users():
    a = actor()
    users = operations.list_users(a)  # refuses anyone who may not manage users
    errors, status = {}, 200
    form = request.form.get("form")
    try:
        if form == "create":
            data = load_form(UserCreateSchema())
            user = operations.create_user(a, data, now=utc_now())
            flash(f"{user.full_name} can now sign in as {user.username} with the temporary password "
                  "you chose.", "success")
            return redirect(url_for("accounts.admin_users"))
        if form in ("deactivate", "reactivate"):
            user_id = request.form.get("user_id", type=int)
            if user_id is None:
                raise ValidationFailed({"user_id": ["No such user."]})
            user = operations.set_user_active(a, user_id, form == "reactivate", now=utc_now())
            flash(f"{user.full_name} is {'reactivated' if user.is_active_account else 'deactivated'}"
                  f"{'' if user.is_active_account else ' and signed out everywhere'}.", "success")
            return redirect(url_for("accounts.admin_users"))
    except ValidationFailed as error:
        errors, status = error.errors, 422
    return render_template(
        "accounts/admin_users.html", users=users, errors=errors,
        values=request.form if form == "create" else {"role": "therapist"},
        clinic_choices=[(c.id, c.name) for c in operations.list_clinics(a)],
        roles=ROLE_CHOICES, role_labels={**dict(ROLE_CHOICES), "patient": "Patient"},
    ), status


CLINIC_FIELDS = ("name", "timezone", "address_line1", "address_line2", "city", "state", "postal_code",
                 "phone", "npi", "tin")


@bp.route("/admin/clinics", methods=["GET", "POST"])
@login_required
def admin_clinics():
    require_permission(current_user, Permission.MANAGE_CLINICS)
    errors, status = {}, 200
    if request.method == "POST":
        try:
            data = load_form(ClinicSchema())
            clinic = operations.create_clinic(actor(), data, now=utc_now())
        except ValidationFailed as error:
            errors, status = error.errors, 422
        else:
            flash(f"{clinic.name} is added.", "success")
            return redirect(url_for("accounts.admin_clinics"))
    return render_template(
        "accounts/admin_clinics.html", clinics=operations.list_clinics(actor()), errors=errors,
        values=request.form if request.method == "POST" else {}, timezones=COMMON_TIMEZONES,
    ), status
