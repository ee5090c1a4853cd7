"""Use cases for accounts and patients. Each loads, checks policy and rules, writes, and audits.

Every function takes the acting user (`actor`) and `now`; the caller commits via `db.session`
only through these functions, and each function commits its own transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import selectinload

from telerehab.accounts import passwords
from telerehab.accounts.models import (
    ApiToken,
    AuditEntry,
    Clinic,
    Consent,
    LoginAttempt,
    Organisation,
    Patient,
    User,
)
from telerehab.accounts.policy import (
    Permission,
    can_use_clinic,
    clinic_scope,
    patient_scope,
    require_patient,
    require_permission,
)
from telerehab.accounts.rules import (
    ADDRESS_FIELDS,
    CLINICAL_ROLES,
    ConsentKind,
    Role,
    address_gaps,
    member_id_problem,
    normalise_mbi,
    normalise_phone,
    normalise_tin,
    password_problem,
    throttle_verdict,
)
from telerehab.db_types import contains_text
from telerehab.errors import Forbidden, NotFound, Throttled, ValidationFailed, field_errors
from telerehab.extensions import db


@dataclass(frozen=True)
class Actor:
    """Who is acting, and from where: every audit entry names both."""

    user: User | None
    ip_address: str | None = None


SYSTEM = Actor(user=None, ip_address=None)


# ---------------------------------------------------------------- audit

def audit(
    actor: Actor,
    action: str,
    record_type: str,
    record_id: int | None,
    *,
    now: datetime,
    patient_id: int | None = None,
    detail: str | None = None,
) -> None:
    """Write an audit entry in the current transaction (it commits or rolls back with the change it
    records). A plain INSERT on the table, not an ORM object: every request that touches patient data
    pays for it. The ids it names are flushed already, so nothing pending need be flushed first."""
    db.session.execute(AuditEntry.__table__.insert(), [audit_values(actor, action, record_type, record_id, now, patient_id,
                                                         detail)])


def audit_values(actor, action, record_type, record_id, now, patient_id=None, detail=None) -> dict[str, Any]:
    return {
        "at": now,
        "actor_id": actor.user.id if actor.user else None,
        "actor_role": actor.user.role if actor.user else None,
        "action": action,
        "record_type": record_type,
        "record_id": record_id,
        "patient_id": patient_id,
        "ip_address": actor.ip_address,
        "detail": detail,
    }


def audit_entry(actor, action, record_type, record_id, now, patient_id=None, detail=None) -> AuditEntry:
    """An entry as an ORM object, for callers that add many in one flush."""
    return AuditEntry(**audit_values(actor, action, record_type, record_id, now, patient_id, detail))


def audit_reads(
    actor: Actor, action: str, record_type: str, records: list[tuple[int, int | None]], *, now: datetime
) -> None:
    """One entry per record shown, as (record id, patient id), in a single INSERT and committed:
    reads leave a trace like writes do, at a cost that does not grow in round trips with a list."""
    if records:
        db.session.execute(insert(AuditEntry), [
            audit_values(actor, action, record_type, record_id, now, patient_id) for record_id, patient_id in records])
    db.session.commit()


def audit_patient_reads(actor: Actor, action: str, patients: list[Patient], *, now: datetime) -> None:
    audit_reads(actor, action, "patient", [(p.id, p.id) for p in patients], now=now)


def list_audit_entries(actor: Actor, *, patient_id: int | None, limit: int = 200) -> list[AuditEntry]:
    require_permission(actor.user, Permission.VIEW_AUDIT_LOG)
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if patient_id is not None:
        query = query.where(AuditEntry.patient_id == patient_id)
    return list(db.session.scalars(query))


# ---------------------------------------------------------------- sign-in

def authenticate(username: str, password: str, *, ip_address: str, now: datetime) -> User:
    """The user for these credentials; raises Throttled or ValidationFailed otherwise.

    Failures are counted per account and per address over a sliding window, so a guesser is
    stopped whether they try many passwords on one account or one password on many accounts.
    """
    username = (username or "").strip().lower()
    max_failures = current_app.config["LOGIN_MAX_FAILURES"]
    window = timedelta(minutes=current_app.config["LOGIN_WINDOW_MINUTES"])
    for column, value in ((LoginAttempt.username, username), (LoginAttempt.ip_address, ip_address)):
        failures = db.session.scalars(
            select(LoginAttempt.at).where(
                column == value, LoginAttempt.succeeded.is_(False), LoginAttempt.at > now - window
            )
        ).all()
        verdict = throttle_verdict(list(failures), now=now, max_failures=max_failures, window=window)
        if not verdict.allowed:
            raise Throttled(verdict.message, int(verdict.retry_after.total_seconds()) + 1)

    user = db.session.scalar(select(User).where(User.username == username))
    ok = passwords.verify_password(user.password_hash if user else None, password)
    succeeded = bool(ok and user and user.is_active)
    db.session.add(LoginAttempt(at=now, username=username, ip_address=ip_address, succeeded=succeeded))
    if succeeded and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    if succeeded:
        audit(Actor(user, ip_address), "sign_in", "user", user.id, now=now)
    db.session.commit()
    if not succeeded:
        raise ValidationFailed({"password": ["Wrong username or password, or the account is inactive."]})
    return user


def change_password(actor: Actor, current: str, new: str, *, now: datetime) -> None:
    user = actor.user
    if not passwords.verify_password(user.password_hash, current):
        raise ValidationFailed({"current_password": ["The current password is wrong."]})
    field_errors({"new_password": password_problem(new, username=user.username)})
    user.password_hash = passwords.hash_password(new)
    user.password_changed_at = now
    user.session_version += 1
    audit(actor, "change_password", "user", user.id, now=now)
    db.session.commit()


# ---------------------------------------------------------------- users

def create_user(actor: Actor, data: dict[str, Any], *, now: datetime) -> User:
    """Create a user from validated `data` (UserCreateSchema)."""
    if actor.user is not None:  # SYSTEM is the command line and demo loader
        require_permission(actor.user, Permission.MANAGE_USERS)
    organisation_id = actor.user.organisation_id if actor.user else data["organisation_id"]
    clinic = _clinic_for(actor, data.get("clinic_id"), organisation_id)
    role = Role(data["role"])
    username = data["username"].strip().lower()
    field_errors({
        "password": password_problem(data["password"], username=username),
        "npi": "A therapist needs an NPI." if role == Role.THERAPIST and not data.get("npi") else None,
        "clinic_id": "Clinical staff belong to a clinic." if role in CLINICAL_ROLES and clinic is None else None,
    })
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise ValidationFailed({"username": ["This username is taken."]})
    user = User(
        organisation_id=organisation_id,
        clinic_id=clinic.id if clinic else None,
        username=username,
        full_name=data["full_name"],
        email=data.get("email"),
        role=role,
        npi=data.get("npi"),
        password_hash=passwords.hash_password(data["password"]),
        is_active_account=True,
        created_at=now,
        password_changed_at=now,
    )
    db.session.add(user)
    db.session.flush()
    audit(actor, "create", "user", user.id, now=now, detail=f"role={role}")
    db.session.commit()
    return user


def set_user_active(actor: Actor, user_id: int, active: bool, *, now: datetime) -> User:
    require_permission(actor.user, Permission.MANAGE_USERS)
    user = db.session.get(User, user_id)
    if user is None or user.organisation_id != actor.user.organisation_id:
        raise NotFound("No such user.")
    if user.id == actor.user.id and not active:
        raise ValidationFailed({"active": ["You cannot deactivate your own account."]})
    user.is_active_account = active
    user.session_version += 1  # ends the sessions the user already has
    audit(actor, "activate" if active else "deactivate", "user", user.id, now=now)
    db.session.commit()
    return user


def list_users(actor: Actor) -> list[User]:
    require_permission(actor.user, Permission.MANAGE_USERS)
    return list(db.session.scalars(
        select(User).where(User.organisation_id == actor.user.organisation_id)
        .order_by(User.is_active_account.desc(), User.role, User.full_name)
    ))


def list_clinicians(actor: Actor, clinic_id: int | None = None) -> list[User]:
    """Therapists (and assistants) the actor may assign, for pickers."""
    query = select(User).where(
        User.organisation_id == actor.user.organisation_id,
        User.role == Role.THERAPIST,
        User.is_active_account.is_(True),
    ).order_by(User.full_name)
    if clinic_id is not None:
        query = query.where(User.clinic_id == clinic_id)
    elif actor.user.clinic_id is not None:
        query = query.where(User.clinic_id == actor.user.clinic_id)
    return list(db.session.scalars(query))


# ---------------------------------------------------------------- organisations and clinics

def create_organisation(name: str) -> Organisation:
    organisation = Organisation(name=name)
    db.session.add(organisation)
    db.session.commit()
    return organisation


def create_clinic(actor: Actor, data: dict[str, Any], *, now: datetime) -> Clinic:
    if actor.user is not None:
        require_permission(actor.user, Permission.MANAGE_CLINICS)
        data = {**data, "organisation_id": actor.user.organisation_id}
    clinic = Clinic(**{**data, "tin": normalise_tin(data["tin"])})
    db.session.add(clinic)
    db.session.flush()
    audit(actor, "create", "clinic", clinic.id, now=now)
    db.session.commit()
    return clinic


def get_clinic(actor: Actor, clinic_id: int) -> Clinic:
    clinic = db.session.get(Clinic, clinic_id)
    if clinic is None or not can_use_clinic(actor.user, clinic):
        raise NotFound("No such clinic.")
    return clinic


def list_clinics(actor: Actor) -> list[Clinic]:
    return list(db.session.scalars(clinic_scope(actor.user, select(Clinic).order_by(Clinic.name))))


def _clinic_for(actor: Actor, clinic_id: int | None, organisation_id: int) -> Clinic | None:
    if clinic_id is None:
        return None
    clinic = db.session.get(Clinic, clinic_id)
    if clinic is None or clinic.organisation_id != organisation_id or (
        actor.user is not None and not can_use_clinic(actor.user, clinic)
    ):
        raise ValidationFailed({"clinic_id": ["No such clinic."]})
    return clinic


# ---------------------------------------------------------------- API tokens

TOKEN_PREFIX = "trk_"  # noqa: S105 (a public prefix, not a secret)


def hash_token(token: str) -> str:
    # Tokens are 192 bits or more of randomness, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret_token(prefix: str) -> tuple[str, str]:
    """A random bearer secret and the hash that is all the database keeps of it."""
    token = prefix + secrets.token_urlsafe(32)
    return token, hash_token(token)


def create_api_token(actor: Actor, name: str, *, expires_in_days: int | None, now: datetime) -> tuple[str, ApiToken]:
    token, token_hash = new_secret_token(TOKEN_PREFIX)
    record = ApiToken(
        user_id=actor.user.id,
        name=name,
        token_hash=token_hash,
        prefix=token[: len(TOKEN_PREFIX) + 6],
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.session.add(record)
    db.session.flush()
    audit(actor, "create", "api_token", record.id, now=now)
    db.session.commit()
    return token, record


def revoke_api_token(actor: Actor, token_id: int, *, now: datetime) -> None:
    record = db.session.get(ApiToken, token_id)
    if record is None or record.user_id != actor.user.id:
        raise NotFound("No such token.")
    if record.revoked_at is None:
        record.revoked_at = now
        audit(actor, "revoke", "api_token", record.id, now=now)
        db.session.commit()


def list_api_tokens(actor: Actor) -> list[ApiToken]:
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == actor.user.id).order_by(ApiToken.created_at.desc())
    ))


# Built once: this runs on every API request, and building a statement costs more than running it.
_TOKEN_OWNER = (
    select(User, ApiToken.id, ApiToken.last_used_at).join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None), User.is_active_account,
           or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > bindparam("now")))
)


def user_for_token(token: str, *, now: datetime) -> User | None:
    """The active owner of a live token, or None, in one query whose conditions the database
    applies; the only entity it builds is the user."""
    row = db.session.execute(_TOKEN_OWNER, {"token_hash": hash_token(token), "now": now}).first()
    if row is None:
        return None
    user, token_id, last_used_at = row
    # Stamp at most once a minute: a busy client should not turn every read into a write.
    if last_used_at is None or now - last_used_at > timedelta(minutes=1):
        db.session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
        db.session.commit()
    return user


# ---------------------------------------------------------------- patients

# The patient's home address goes on claims (837P loop 2010BA, N3/N4): whole or not at all.
def _patient_values(data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Normalised values; `data` holds the stored payer and member id under any changes."""
    born = data.get("date_of_birth")
    field_errors({
        "member_id": member_id_problem(data.get("payer_type"), data.get("member_id")),
        "date_of_birth": "The date of birth is in the future." if born and born > now.date() else None,
    })
    values = dict(data)
    if values.get("phone"):
        values["phone"] = normalise_phone(values["phone"])
    if values.get("member_id") and values.get("payer_type") == "medicare":
        values["member_id"] = normalise_mbi(values["member_id"])
    for name in ADDRESS_FIELDS:
        if name in values:
            values[name] = (values[name] or "").strip() or None
    if values.get("postal_code"):
        values["postal_code"] = values["postal_code"].replace("-", "")  # 5 or 9 digits, as claims carry it
    field_errors(address_gaps(values))
    return values


def _check_patient_links(actor: Actor, values: dict[str, Any]) -> None:
    if "clinic_id" in values:
        _clinic_for(actor, values["clinic_id"], actor.user.organisation_id)
    therapist_id = values.get("primary_therapist_id")
    if therapist_id is not None:
        therapist = db.session.get(User, therapist_id)
        if therapist is None or therapist.role != Role.THERAPIST or (
            therapist.organisation_id != actor.user.organisation_id
        ):
            raise ValidationFailed({"primary_therapist_id": ["No such therapist."]})


def create_patient(actor: Actor, data: dict[str, Any], *, now: datetime) -> Patient:
    require_permission(actor.user, Permission.EDIT_PATIENT)
    values = _patient_values(data, now)
    values.setdefault("clinic_id", actor.user.clinic_id)
    if values["clinic_id"] is None:
        raise ValidationFailed({"clinic_id": ["Choose the patient's clinic."]})
    _check_patient_links(actor, values)
    patient = Patient(**values, created_at=now, updated_at=now)
    db.session.add(patient)
    db.session.flush()
    audit(actor, "create", "patient", patient.id, now=now, patient_id=patient.id)
    db.session.commit()
    return patient


def update_patient(actor: Actor, patient_id: int, data: dict[str, Any], *, now: datetime) -> Patient:
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.EDIT_PATIENT)
    stored = {name: getattr(patient, name) for name in ("payer_type", "member_id", *ADDRESS_FIELDS)}
    values = _patient_values({**stored, **data}, now)
    _check_patient_links(actor, values)
    changed = sorted(k for k, v in values.items() if getattr(patient, k) != v)
    for key in changed:
        setattr(patient, key, values[key])
    if changed:
        patient.updated_at = now
    audit(actor, "update", "patient", patient.id, now=now, patient_id=patient.id,
          detail="fields=" + ",".join(changed))
    db.session.commit()
    return patient


def get_patient(actor: Actor, patient_id: int, *, now: datetime) -> Patient:
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.VIEW_PATIENT)
    audit_patient_reads(actor, "read", [patient], now=now)
    return patient


def own_patient_record(actor: Actor, *, now: datetime) -> Patient | None:
    """The patient record of a signed-in patient."""
    patient = db.session.scalar(select(Patient).where(Patient.user_id == actor.user.id))
    if patient is not None:
        audit_patient_reads(actor, "read", [patient], now=now)
    return patient


# What a patient list shows with each patient, loaded in a few queries instead of several per row.
PATIENT_LOAD_OPTIONS = (
    selectinload(Patient.primary_therapist),
    selectinload(Patient.consents).selectinload(Consent.recorded_by),
    selectinload(Patient.consents).selectinload(Consent.revoked_by),
)


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def search_patients(
    actor: Actor, *, query: str | None, page: int, page_size: int, now: datetime,
    therapist_id: int | None = None,
) -> Page:
    """Patients the actor may see, matching `query` on name, phone, email or member id."""
    require_permission(actor.user, Permission.VIEW_PATIENT)
    statement = patient_scope(actor.user, select(Patient))
    if query:
        statement = statement.where(or_(
            contains_text(Patient.first_name + " " + Patient.last_name, query),
            contains_text(Patient.last_name + ", " + Patient.first_name, query),
            contains_text(Patient.email, query),
            contains_text(Patient.phone, query),
            contains_text(Patient.member_id, query),
        ))
    if therapist_id is not None:
        statement = statement.where(Patient.primary_therapist_id == therapist_id)
    total = db.session.scalar(select(func.count()).select_from(statement.subquery()))
    patients = list(db.session.scalars(
        statement.options(*PATIENT_LOAD_OPTIONS)
        .order_by(Patient.last_name, Patient.first_name, Patient.id)
        .limit(page_size).offset((page - 1) * page_size)
    ))
    audit_patient_reads(actor, "list", patients, now=now)
    return Page(items=patients, total=total, page=page, page_size=page_size)


def give_portal_access(actor: Actor, patient_id: int, username: str, password: str, *, now: datetime) -> User:
    """Create the sign-in for a patient, so they can see their plan and log home exercise."""
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.EDIT_PATIENT)
    if patient.user_id is not None:
        raise ValidationFailed({"username": ["This patient already has a sign-in."]})
    username = username.strip().lower()
    field_errors({"password": password_problem(password, username=username)})
    if not username:
        raise ValidationFailed({"username": ["Choose a username."]})
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise ValidationFailed({"username": ["This username is taken."]})
    user = User(
        organisation_id=patient.clinic.organisation_id, clinic_id=patient.clinic_id,
        username=username, full_name=patient.full_name, email=patient.email, role=Role.PATIENT,
        password_hash=passwords.hash_password(password), is_active_account=True,
        created_at=now, password_changed_at=now,
    )
    db.session.add(user)
    db.session.flush()
    patient.user_id = user.id
    audit(actor, "give_portal_access", "patient", patient.id, now=now, patient_id=patient.id)
    db.session.commit()
    return user


# ---------------------------------------------------------------- consent

def record_consent(actor: Actor, patient_id: int, kind: str, *, method: str, note: str | None, now: datetime) -> Consent:
    patient = require_patient(actor.user, db.session.get(Patient, patient_id), Permission.RECORD_CONSENT)
    kind = ConsentKind(kind)
    if active_consent(patient, kind) is not None:
        raise ValidationFailed({"kind": [f"{kind} consent is already recorded and in force."]})
    consent = Consent(kind=kind, granted_at=now, recorded_by_id=actor.user.id, method=method, note=note)
    patient.consents.insert(0, consent)  # newest first, as the relationship orders them
    db.session.flush()
    audit(actor, "grant_consent", "consent", consent.id, now=now, patient_id=patient.id, detail=kind)
    db.session.commit()
    return consent


def revoke_consent(actor: Actor, consent_id: int, *, note: str | None, now: datetime) -> Consent:
    consent = db.session.get(Consent, consent_id)
    if consent is None:
        raise NotFound("No such consent.")
    if actor.user is not None:
        require_patient(actor.user, consent.patient, Permission.RECORD_CONSENT)
    elif consent.kind != ConsentKind.SMS:
        # No user: the patient's own STOP by SMS, whose Twilio signature the caller verified.
        raise Forbidden("Only SMS consent is withdrawn by a text message.")
    if consent.revoked_at is not None:
        raise ValidationFailed({"consent": ["This consent was already revoked."]})
    consent.revoked_at = now
    consent.revoked_by_id = actor.user.id if actor.user else None
    consent.revocation_note = note
    audit(actor, "revoke_consent", "consent", consent.id, now=now, patient_id=consent.patient_id,
          detail=consent.kind)
    db.session.commit()
    return consent


def active_consent(patient: Patient, kind: ConsentKind) -> Consent | None:
    return next((c for c in patient.consents if c.kind == kind and c.is_active), None)


def consent_in_force(patient_id, kind: ConsentKind):
    """`active_consent` as a column of a query: whether the patient `patient_id` (a column) has
    consent of `kind` in force."""
    return exists().where(Consent.patient_id == patient_id, Consent.kind == kind, Consent.revoked_at.is_(None))

