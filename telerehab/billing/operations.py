"""The billing workbench's use cases: bring billable lines in from their sources, review them (filter,
hold, approve, notes), show the evidence behind each, export approved lines in batches (837P and CSV),
and correct claims already sent (replacement and void).

Who: billing staff and admins (MANAGE_BILLING), within their organisation (and clinic, when they
work in one). A therapist sees the status of their own patients' lines, nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, selectinload

from telerehab.accounts.models import AuditEntry, Clinic, Consent, Organisation, Patient, User
from telerehab.accounts.operations import SYSTEM, Actor, audit, audit_reads, audit_values
from telerehab.accounts.policy import Permission, require_permission
from telerehab.accounts.rules import REQUIRED_ADDRESS_FIELDS, ConsentKind, Role, normalise_mbi
from telerehab.billing import claims as claim_rules
from telerehab.billing import x12
from telerehab.billing.claim_csv import write_claim_csv
from telerehab.billing.models import (
    BillingLine,
    BillingLineNote,
    ControlNumber,
    ExportBatch,
    ExportBatchLine,
    Fee,
    batch_reference,
)
from telerehab.billing.rules import (
    ACTION_RESULT,
    OPEN_STATUSES,
    CertificationPeriod,
    ConsentSpan,
    Hold,
    HoldKind,
    LineAction,
    LineFacts,
    LineStatus,
    action_problem,
    charge_cents,
    line_holds,
    manual_hold,
    transition_problem,
)
from telerehab.careplans.models import (
    CareSettings,
    Episode,
    EpisodeDiagnosis,
    PayerSettings,
    Recertification,
    ServiceLine,
    Visit,
    VisitNote,
)
from telerehab.careplans.operations import payer_row
from telerehab.careplans.rules import Modality, VisitStatus
from telerehab.errors import NotFound, ValidationFailed
from telerehab.exercises.models import CheckIn
from telerehab.exercises.rules import local_date_of
from telerehab.extensions import db
from telerehab.monitoring.models import ManagementTimeEntry, RtmBillableLine, RtmEnrolment
from telerehab.monitoring.rules import Status as EngineStatus

log = logging.getLogger(__name__)

PAGE_SIZE = 200
UNBILLED = (LineStatus.VOID, LineStatus.WITHDRAWN)  # out of the month's total
READ_ACTIONS = ("view_billing_line", "view_billing_evidence", "print_evidence_pack", "view_billing_status")
EXPORT_CHUNK = 1000  # lines loaded between two progress reports
STALE_EXPORT = timedelta(minutes=15)  # a batch running this long lost its runner


# ================================================================ scope


def _billing_scope(actor: Actor, query, *, clinic_column=BillingLine.clinic_id,
                   organisation_column=BillingLine.organisation_id):
    """The lines (or batches) billing staff may work on: their organisation's, their clinic's when
    they work in one."""
    require_permission(actor.user, Permission.MANAGE_BILLING)
    query = query.where(organisation_column == actor.user.organisation_id)
    if actor.user.clinic_id is not None:
        query = query.where(clinic_column == actor.user.clinic_id)
    return query


def _line_for(actor: Actor, line_id: int) -> BillingLine:
    line = db.session.scalar(_billing_scope(actor, select(BillingLine).where(BillingLine.id == line_id)))
    if line is None:
        raise NotFound("No such billing line.")
    return line


def _batch_for(actor: Actor, batch_id: int) -> ExportBatch:
    batch = db.session.scalar(_billing_scope(actor, select(ExportBatch).where(ExportBatch.id == batch_id),
                                             clinic_column=ExportBatch.clinic_id,
                                             organisation_column=ExportBatch.organisation_id))
    if batch is None:
        raise NotFound("No such export batch.")
    return batch


# ================================================================ collection


@dataclass
class CollectRun:
    added: int = 0
    refreshed: int = 0
    withdrawn: int = 0


@dataclass(frozen=True)
class _Candidate:
    """One line as its source says it is now, with the workbench line it already has, if any."""

    source: str
    source_id: int
    visit_id: int | None
    episode_id: int
    patient_id: int
    clinic_id: int
    organisation_id: int
    rendering_id: int
    code: str
    modifiers: str
    units: int
    service_from: date
    service_to: date
    place_of_service: str
    line_id: int | None
    engine_hold: str | None = None
    awaiting_cosign: bool = False
    consent_kind: str | None = None


_REFRESHABLE = (*OPEN_STATUSES, LineStatus.WITHDRAWN)
_NOT_ON_WORKBENCH_OR_OPEN = or_(BillingLine.id.is_(None), BillingLine.status.in_(_REFRESHABLE))


def _rtm_candidates(organisation_id: int | None) -> tuple[list[_Candidate], list[int]]:
    """Billable RTM lines not yet on the workbench or still open there, and the ids of workbench lines
    whose RTM line the engine no longer bills. Plain rows: a month is thousands of lines."""
    query = (select(RtmBillableLine.id, RtmBillableLine.status, RtmBillableLine.code, RtmBillableLine.units,
                    RtmBillableLine.modifiers, RtmBillableLine.service_date, RtmBillableLine.place_of_service,
                    RtmBillableLine.reason, Episode.id, Episode.patient_id, Episode.clinic_id, Episode.therapist_id,
                    Clinic.organisation_id, BillingLine.id)
             .join(Episode, Episode.id == RtmBillableLine.episode_id)
             .join(Clinic, Clinic.id == Episode.clinic_id)
             .outerjoin(BillingLine, BillingLine.rtm_line_id == RtmBillableLine.id)
             .where(RtmBillableLine.code.is_not(None), _NOT_ON_WORKBENCH_OR_OPEN))
    if organisation_id is not None:
        query = query.where(Clinic.organisation_id == organisation_id)
    candidates, gone = [], []
    for (rtm_id, status, code, units, modifiers, service_date, place, reason, episode_id, patient_id, clinic_id,
         therapist_id, organisation, line_id) in db.session.execute(query):
        if status not in (EngineStatus.READY, EngineStatus.HELD) or not units:
            gone.append(rtm_id)
            continue
        candidates.append(_Candidate(
            source="rtm", source_id=rtm_id, visit_id=None, episode_id=episode_id, patient_id=patient_id,
            clinic_id=clinic_id, organisation_id=organisation, rendering_id=therapist_id, code=code,
            modifiers=modifiers, units=units, service_from=service_date, service_to=service_date,
            place_of_service=place or "11", line_id=line_id, engine_hold=reason if status == EngineStatus.HELD else None,
            consent_kind=ConsentKind.RTM))
    return candidates, gone


def _visit_candidates(organisation_id: int | None) -> list[_Candidate]:
    """Services of completed visits whose note is signed (they are locked with it), not yet on the
    workbench or still open there."""
    clinician = aliased(User)
    query = (select(ServiceLine.id, ServiceLine.cpt_code, ServiceLine.modifiers, ServiceLine.units,
                    ServiceLine.place_of_service, Visit.id, Visit.starts_at, Visit.modality, Visit.clinic_id,
                    Visit.clinician_id, clinician.role, VisitNote.cosigned_at, Episode.id, Episode.patient_id,
                    Episode.therapist_id, Clinic.timezone, Clinic.organisation_id,
                    CareSettings.assistant_notes_need_cosign, BillingLine.id)
             .join(Visit, Visit.id == ServiceLine.visit_id)
             .join(VisitNote, VisitNote.visit_id == Visit.id)
             .join(Episode, Episode.id == Visit.episode_id)
             .join(Clinic, Clinic.id == Visit.clinic_id)
             .join(clinician, clinician.id == Visit.clinician_id)
             .outerjoin(CareSettings, CareSettings.clinic_id == Visit.clinic_id)
             .outerjoin(BillingLine, BillingLine.service_line_id == ServiceLine.id)
             .where(Visit.status == VisitStatus.COMPLETED, VisitNote.signed_at.is_not(None), ServiceLine.units > 0,
                    _NOT_ON_WORKBENCH_OR_OPEN))
    if organisation_id is not None:
        query = query.where(Clinic.organisation_id == organisation_id)
    candidates = []
    for (service_id, code, modifiers, units, place, visit_id, starts_at, modality, clinic_id, clinician_id, role,
         cosigned_at, episode_id, patient_id, therapist_id, timezone, organisation, cosign_required,
         line_id) in db.session.execute(query):
        day = local_date_of(starts_at, timezone)
        by_assistant = role == Role.ASSISTANT
        candidates.append(_Candidate(
            source="visit", source_id=service_id, visit_id=visit_id, episode_id=episode_id, patient_id=patient_id,
            clinic_id=clinic_id, organisation_id=organisation,
            # An assistant's services are billed under the supervising PT of the plan of care.
            rendering_id=therapist_id if by_assistant else clinician_id, code=code, modifiers=modifiers,
            units=units, service_from=day, service_to=day, place_of_service=place, line_id=line_id,
            awaiting_cosign=by_assistant and cosign_required is not False and cosigned_at is None,
            consent_kind=ConsentKind.TELEHEALTH if modality == Modality.VIDEO else None))
    return candidates


def _certifications(episode_ids: Iterable[int]) -> dict[int, list[CertificationPeriod]]:
    periods: dict[int, list[CertificationPeriod]] = defaultdict(list)
    for chunk in _in_chunks(sorted(set(episode_ids))):
        for episode_id, start, end, signed in db.session.execute(select(
                Episode.id, Episode.certification_start, Episode.certification_end,
                Episode.certification_signed_on).where(Episode.id.in_(chunk))):
            if start and end:
                periods[episode_id].append(CertificationPeriod(start, end, signed))
        for episode_id, start, end, signed in db.session.execute(select(
                Recertification.episode_id, Recertification.certification_start, Recertification.certification_end,
                Recertification.certification_signed_on).where(Recertification.episode_id.in_(chunk))):
            periods[episode_id].append(CertificationPeriod(start, end, signed))
    return periods


@dataclass(frozen=True)
class _PatientFacts:
    payer_type: str
    member_id: str | None
    timezone: str
    has_address: bool


def _patient_facts(patient_ids: Iterable[int]) -> dict[int, _PatientFacts]:
    facts = {}
    for chunk in _in_chunks(sorted(set(patient_ids))):
        for patient_id, payer_type, member_id, timezone, *address in db.session.execute(select(
                Patient.id, Patient.payer_type, Patient.member_id, Patient.timezone,
                *(getattr(Patient, name) for name in REQUIRED_ADDRESS_FIELDS)).where(Patient.id.in_(chunk))):
            facts[patient_id] = _PatientFacts(payer_type, member_id, timezone, all(address))
    return facts


def _consents(patients: dict[int, _PatientFacts]) -> dict[tuple[int, str], list[ConsentSpan]]:
    spans: dict[tuple[int, str], list[ConsentSpan]] = defaultdict(list)
    for chunk in _in_chunks(sorted(patients)):
        for patient_id, kind, granted_at, revoked_at in db.session.execute(select(
                Consent.patient_id, Consent.kind, Consent.granted_at, Consent.revoked_at).where(
                Consent.patient_id.in_(chunk))):
            zone = patients[patient_id].timezone
            spans[patient_id, kind].append(ConsentSpan(
                local_date_of(granted_at, zone), local_date_of(revoked_at, zone) if revoked_at else None))
    return spans


def _diagnosis_counts(episode_ids: Iterable[int]) -> dict[int, int]:
    counts = {}
    for chunk in _in_chunks(sorted(set(episode_ids))):
        counts.update(db.session.execute(select(EpisodeDiagnosis.episode_id, func.count()).where(
            EpisodeDiagnosis.episode_id.in_(chunk)).group_by(EpisodeDiagnosis.episode_id)).all())
    return counts


def _npis(user_ids: Iterable[int]) -> dict[int, str | None]:
    npis = {}
    for chunk in _in_chunks(sorted(set(user_ids))):
        npis.update(db.session.execute(select(User.id, User.npi).where(User.id.in_(chunk))).all())
    return npis


def _fees(organisation_ids: set[int]) -> dict[tuple[int, str, str], int]:
    return {(fee.organisation_id, fee.payer_type, fee.code): fee.amount_cents
            for fee in db.session.scalars(select(Fee).where(Fee.organisation_id.in_(organisation_ids)))}


IN_LIST = 5000  # ids per IN (...): well under SQLite's and PostgreSQL's parameter limits


def _in_chunks(items: Sequence, size: int = IN_LIST) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# What collection compares and writes of a line; the rest is set once, when the line comes in.
_REFRESHED = ("visit_id", "organisation_id", "clinic_id", "patient_id", "episode_id", "rendering_id", "payer_type",
              "month", "code", "modifiers", "units", "service_from", "service_to", "place_of_service",
              "charge_cents", "holds", "status", "status_changed_at", "status_changed_by_id")
_LINES = BillingLine.__table__
# Refreshes a line only if billing has not changed it since it was read (no approval, hold or
# release in between): the next run takes any line skipped here.
_REFRESH = (update(_LINES).where(_LINES.c.id == bindparam("b_id"), _LINES.c.status == bindparam("b_status"),
                                 _LINES.c.manual_hold.is_not_distinct_from(bindparam("b_manual_hold")))
            .values({name: bindparam(f"b_new_{name}") for name in (*_REFRESHED, "updated_at")}))


def collect_lines(*, now: datetime, organisation_id: int | None = None) -> CollectRun:
    """Bring every billable RTM line and every signed visit service onto the workbench, and refresh
    the lines still open there (ready, held, withdrawn) from their source: code, units, modifiers,
    holds and charge. Lines billing staff have approved (or later) are never touched. Safe to run
    twice and beside billing's own changes: the unique source keys refuse a second line, and a
    refresh applies only to a line as it was read."""
    rtm, gone = _rtm_candidates(organisation_id)
    candidates = rtm + _visit_candidates(organisation_id)
    run = CollectRun()
    changes: list[tuple[str, int, int, str]] = []  # (action, line, patient, detail) for the audit log
    for chunk in _in_chunks(gone):
        withdrawn = db.session.execute(update(BillingLine).where(
            BillingLine.rtm_line_id.in_(chunk), BillingLine.status.in_(OPEN_STATUSES)).values(
            status=LineStatus.WITHDRAWN, status_changed_at=now, status_changed_by_id=None, updated_at=now).returning(
            BillingLine.id, BillingLine.patient_id), execution_options={"synchronize_session": False}).all()
        run.withdrawn += len(withdrawn)
        changes += [("withdraw", line_id, patient_id, "the engine no longer bills it") for line_id, patient_id in withdrawn]
    patients = _patient_facts(c.patient_id for c in candidates)
    episode_ids = [c.episode_id for c in candidates]
    certifications, consents = _certifications(episode_ids), _consents(patients)
    diagnoses, npis = _diagnosis_counts(episode_ids), _npis(c.rendering_id for c in candidates)
    fees = _fees({c.organisation_id for c in candidates})
    existing: dict[int, dict] = {}
    for chunk in _in_chunks(sorted(c.line_id for c in candidates if c.line_id)):
        existing.update((row["id"], row) for row in db.session.execute(select(
            _LINES.c.id, _LINES.c.manual_hold, *(_LINES.c[name] for name in _REFRESHED)).where(
            _LINES.c.id.in_(chunk))).mappings())
    new_rows, refreshes = [], []
    for candidate in candidates:
        patient = patients[candidate.patient_id]
        line = existing.get(candidate.line_id)
        fee = fees.get((candidate.organisation_id, patient.payer_type, candidate.code))
        holds = line_holds(LineFacts(
            source=candidate.source, code=candidate.code, service_from=candidate.service_from,
            service_to=candidate.service_to, payer_type=patient.payer_type, member_id=patient.member_id,
            diagnosis_count=diagnoses.get(candidate.episode_id, 0), rendering_npi=npis.get(candidate.rendering_id),
            certification_periods=tuple(certifications.get(candidate.episode_id, ())),
            consent_kind=candidate.consent_kind,
            consents=tuple(consents.get((candidate.patient_id, candidate.consent_kind), ())),
            awaiting_cosign=candidate.awaiting_cosign, engine_hold=candidate.engine_hold, fee_cents=fee,
            manual_hold=line["manual_hold"] if line else None, has_address=patient.has_address))
        status = LineStatus.HELD if holds else LineStatus.READY
        values = dict(
            visit_id=candidate.visit_id, organisation_id=candidate.organisation_id, clinic_id=candidate.clinic_id,
            patient_id=candidate.patient_id, episode_id=candidate.episode_id, rendering_id=candidate.rendering_id,
            payer_type=patient.payer_type, month=f"{candidate.service_to:%Y-%m}", code=candidate.code,
            modifiers=candidate.modifiers, units=candidate.units, service_from=candidate.service_from,
            service_to=candidate.service_to, place_of_service=candidate.place_of_service,
            charge_cents=charge_cents(fee, candidate.units), holds=[_hold_json(hold) for hold in holds],
            status=status)
        if line is None:
            new_rows.append({**values, "source": candidate.source, "status_changed_at": now, "created_at": now,
                             "updated_at": now, "rtm_line_id": candidate.source_id if candidate.source == "rtm" else None,
                             "service_line_id": candidate.source_id if candidate.source == "visit" else None})
            continue
        if status != line["status"]:
            values.update(status_changed_at=now, status_changed_by_id=None)
        else:
            values.update(status_changed_at=line["status_changed_at"], status_changed_by_id=line["status_changed_by_id"])
        if any(line[name] != value for name, value in values.items()):
            refreshes.append({"b_id": line["id"], "b_status": line["status"], "b_manual_hold": line["manual_hold"],
                              "b_new_updated_at": now, **{f"b_new_{name}": value for name, value in values.items()}})
            changes.append(("refresh", line["id"], candidate.patient_id, f"status={status}"))
    if new_rows:
        db.session.execute(insert(BillingLine), new_rows)  # executemany: RETURNING would cost more than a look-up
        for source, column in (("rtm", BillingLine.rtm_line_id), ("visit", BillingLine.service_line_id)):
            ids = [row[column.key] for row in new_rows if row["source"] == source]
            for chunk in _in_chunks(ids):
                changes += [("collect", line_id, patient_id, f"status={status}") for line_id, patient_id, status in
                            db.session.execute(select(BillingLine.id, BillingLine.patient_id, BillingLine.status)
                                               .where(column.in_(chunk)))]
    if refreshes:
        db.session.execute(_REFRESH, refreshes)
    run.added, run.refreshed = len(new_rows), len(refreshes)
    if changes:
        db.session.execute(insert(AuditEntry), [audit_values(SYSTEM, action, "billing_line", line_id, now, patient_id,
                                                             detail) for action, line_id, patient_id, detail in changes])
    db.session.commit()
    return run


def collect_all(*, now: datetime) -> CollectRun:
    """The scheduler's job: every organisation."""
    return collect_lines(now=now)


def refresh_lines(actor: Actor, *, now: datetime) -> CollectRun:
    """The workbench's "bring in new lines" button."""
    require_permission(actor.user, Permission.MANAGE_BILLING)
    run = collect_lines(now=now, organisation_id=actor.user.organisation_id)
    audit(actor, "collect", "billing_line", None, now=now,
          detail=f"added={run.added} refreshed={run.refreshed} withdrawn={run.withdrawn}")
    db.session.commit()
    return run


# ================================================================ the workbench


@dataclass(frozen=True)
class Filters:
    month: str
    clinic_id: int | None = None
    rendering_id: int | None = None
    payer_type: str | None = None
    code: str | None = None
    status: str | None = None  # None: every status but withdrawn


@dataclass(frozen=True)
class StatusTotal:
    status: str
    lines: int
    units: int
    charge_cents: int
    missing_fee: int  # lines without a fee, not in the charge total


@dataclass
class Workbench:
    filters: Filters
    lines: list[BillingLine]
    total_lines: int
    page: int
    pages: int
    totals: list[StatusTotal]
    grand_total: StatusTotal
    clinics: list[Clinic]
    therapists: list[User]
    payer_types: list[str]
    codes: list[str]
    note_counts: dict[int, int] = field(default_factory=dict)


def _filtered(actor: Actor, filters: Filters, query):
    query = _billing_scope(actor, query).where(BillingLine.month == filters.month)
    for column, value in ((BillingLine.clinic_id, filters.clinic_id), (BillingLine.rendering_id, filters.rendering_id),
                          (BillingLine.payer_type, filters.payer_type), (BillingLine.code, filters.code)):
        if value is not None:
            query = query.where(column == value)
    if filters.status is None:
        return query.where(BillingLine.status != LineStatus.WITHDRAWN)
    return query.where(BillingLine.status == filters.status)


def workbench(actor: Actor, filters: Filters, *, page: int = 1, now: datetime) -> Workbench:
    """The month's lines that match `filters`, a page at a time, with totals per status over all of
    them (not just the page) and the choices the filters offer."""
    totals = [StatusTotal(status, lines, units or 0, cents or 0, missing) for status, lines, units, cents, missing in
              db.session.execute(_filtered(actor, filters, select(
                  BillingLine.status, func.count(), func.sum(BillingLine.units), func.sum(BillingLine.charge_cents),
                  func.count() - func.count(BillingLine.charge_cents))).group_by(BillingLine.status))]
    order = {status: index for index, status in enumerate(LineStatus)}
    totals.sort(key=lambda total: order[total.status])
    total_lines = sum(t.lines for t in totals)
    pages = max(1, -(-total_lines // PAGE_SIZE))
    page = min(max(page, 1), pages)
    lines = list(db.session.scalars(_filtered(actor, filters, select(BillingLine)).options(
        selectinload(BillingLine.patient), selectinload(BillingLine.rendering)).order_by(
        BillingLine.patient_id, BillingLine.service_to, BillingLine.code, BillingLine.id).limit(PAGE_SIZE).offset(
        (page - 1) * PAGE_SIZE)))
    month_scope = _billing_scope(actor, select(BillingLine)).where(BillingLine.month == filters.month).subquery()
    choices = {name: [value for (value,) in db.session.execute(
        select(getattr(month_scope.c, name)).distinct().order_by(getattr(month_scope.c, name)))]
        for name in ("clinic_id", "rendering_id", "payer_type", "code")}
    note_counts = dict(db.session.execute(select(BillingLineNote.line_id, func.count()).where(
        BillingLineNote.line_id.in_([line.id for line in lines])).group_by(BillingLineNote.line_id)).all())
    audit_reads(actor, "view_billing_line", "billing_line", [(line.id, line.patient_id) for line in lines], now=now)
    return Workbench(
        filters=filters, lines=lines, total_lines=total_lines, page=page, pages=pages, totals=totals,
        grand_total=StatusTotal("all", *(sum(getattr(t, name) for t in totals if t.status not in UNBILLED)
                                         for name in ("lines", "units", "charge_cents", "missing_fee"))),
        clinics=list(db.session.scalars(select(Clinic).where(Clinic.id.in_(choices["clinic_id"])).order_by(Clinic.name))),
        therapists=list(db.session.scalars(select(User).where(User.id.in_(choices["rendering_id"])).order_by(
            User.full_name))),
        payer_types=choices["payer_type"], codes=choices["code"], note_counts=note_counts)


def matching_line_ids(actor: Actor, filters: Filters) -> list[int]:
    """Every line the filters select (all pages), for "apply to all matching"."""
    return list(db.session.scalars(_filtered(actor, filters, select(BillingLine.id))))


# ================================================================ approve, hold, notes


@dataclass
class ActionResult:
    changed: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # line id -> why


def _rtm_status(status: str, holds: list[dict]) -> str:
    """An RTM line carries billing's status from approval on, which freezes it against the engine and
    shows the therapist where it stands; back to ready or held, it is the engine's again."""
    if status not in OPEN_STATUSES:
        return status
    return EngineStatus.HELD if any(hold["kind"] == HoldKind.ENGINE for hold in holds) else EngineStatus.READY


def _set_status(actor: Actor, lines: list[BillingLine], status: str, *, now: datetime, action: str,
                detail: str | None = None, changes: dict[int, dict] | None = None) -> None:
    """Move `lines` to `status` (each move already checked) with any other `changes` per line id,
    mirror RTM lines and audit each one, in the caller's transaction. One executemany UPDATE keyed by
    id, not an ORM flush per object (a month is thousands of lines): the loaded objects are left as
    they were until the commit expires them, so callers change lines only through here."""
    if not lines:
        return
    changes = changes or {}
    by = actor.user.id if actor.user else None
    db.session.execute(update(BillingLine), [
        {"id": line.id, "status": status, "status_changed_at": now, "status_changed_by_id": by, "updated_at": now,
         **changes.get(line.id, {})} for line in lines])
    mirrored: dict[str, list[int]] = defaultdict(list)
    for line in lines:
        if line.rtm_line_id is not None:
            mirrored[_rtm_status(status, changes.get(line.id, {}).get("holds", line.holds))].append(line.rtm_line_id)
    for rtm_status, ids in mirrored.items():
        for chunk in _in_chunks(ids):
            db.session.execute(update(RtmBillableLine).where(RtmBillableLine.id.in_(chunk)).values(status=rtm_status))
    db.session.execute(insert(AuditEntry), [
        audit_values(actor, action, "billing_line", line.id, now, line.patient_id, detail) for line in lines])


def apply_action(actor: Actor, line_ids: Sequence[int], action: str, *, reason: str | None = None,
                 now: datetime) -> ActionResult:
    """Approve, hold, release, unapprove or mark selected lines. Each line is checked on its own: those
    that may not take the action are listed with why, the others change together, audited one by one."""
    try:
        action = LineAction(action)
    except ValueError:
        raise ValidationFailed({"action": [f"Unknown action {action!r}."]}) from None
    reason = (reason or "").strip() or None
    if action == LineAction.HOLD and reason is None:
        raise ValidationFailed({"reason": ["Say why the lines are held: the reason stays on each line."]})
    if not line_ids:
        raise ValidationFailed({"lines": ["Select at least one line."]})
    result = ActionResult()
    lines = []
    found: dict[int, BillingLine] = {}
    batched: dict[int, str] = {}  # an approved line a live batch holds is not taken back under it
    for chunk in _in_chunks(sorted(set(line_ids))):
        found.update((line.id, line) for line in db.session.scalars(_billing_scope(
            actor, select(BillingLine).where(BillingLine.id.in_(chunk))).with_for_update().execution_options(
            populate_existing=True)))
        if action in (LineAction.HOLD, LineAction.UNAPPROVE):
            batched.update((line_id, batch_reference(batch_id)) for line_id, batch_id in db.session.execute(
                select(ExportBatchLine.line_id, ExportBatchLine.batch_id).where(
                    ExportBatchLine.line_id.in_(chunk), ExportBatchLine.live)))
    for line_id in sorted(set(line_ids)):
        line = found.get(line_id)
        if line is None:
            result.refused[line_id] = "No such billing line."
            continue
        blocking = [hold for hold in line.holds if hold["kind"] != HoldKind.MANUAL]
        problem = action_problem(action, line.status, holds=len(blocking))
        if problem is None and line_id in batched:
            problem = f"Line is in export batch {batched[line_id]}: cancel the batch first."
        if problem:
            result.refused[line_id] = problem
            continue
        lines.append(line)
    changes: dict[int, dict] = {}
    if action == LineAction.HOLD:
        changes = {line.id: {"manual_hold": reason, "holds": _with_manual_hold(line.holds, reason)} for line in lines}
    elif action in (LineAction.APPROVE, LineAction.RELEASE):  # approving a line held by hand settles that hold
        changes = {line.id: {"manual_hold": None, "holds": _without_manual_hold(line.holds)} for line in lines}
    if action == LineAction.RELEASE:  # a line with other holds stays held for them
        still_held = [line for line in lines if changes[line.id]["holds"]]
        _set_status(actor, still_held, LineStatus.HELD, now=now, action="release_hold", changes=changes)
        result.changed.extend(line.id for line in still_held)
        lines = [line for line in lines if not changes[line.id]["holds"]]
    _set_status(actor, lines, ACTION_RESULT[action], now=now, action=action.value, detail=reason, changes=changes)
    result.changed = sorted(result.changed + [line.id for line in lines])
    db.session.commit()
    return result


def _without_manual_hold(holds: list[dict]) -> list[dict]:
    return [hold for hold in holds if hold["kind"] != HoldKind.MANUAL]


def _hold_json(hold: Hold) -> dict:
    return {"kind": hold.kind.value, "reason": hold.reason, "release": hold.release}


def _with_manual_hold(holds: list[dict], reason: str) -> list[dict]:
    return [_hold_json(manual_hold(reason)), *_without_manual_hold(holds)]


def add_note(actor: Actor, line_id: int, text: str, *, now: datetime) -> BillingLineNote:
    line = _line_for(actor, line_id)
    text = (text or "").strip()
    if not text:
        raise ValidationFailed({"text": ["Write the note."]})
    if len(text) > 2000:
        raise ValidationFailed({"text": ["A note is at most 2,000 characters."]})
    note = BillingLineNote(line_id=line.id, author_id=actor.user.id, text=text, created_at=now)
    db.session.add(note)
    db.session.flush()
    audit(actor, "add_note", "billing_line", line.id, now=now, patient_id=line.patient_id)
    db.session.commit()
    return note


# ================================================================ evidence


@dataclass
class Evidence:
    line: BillingLine
    patient: Patient
    episode: Episode
    diagnoses: list[str]
    certifications: list[CertificationPeriod]
    consents: list[Consent]
    rtm_line: RtmBillableLine | None
    enrolment: RtmEnrolment | None
    data_days: list[Any]  # check-ins in the period: local date, source, received
    time_entries: list[ManagementTimeEntry]
    visit: Visit | None
    history: list[AuditEntry]
    batches: list[ExportBatchLine]


def _evidence(line: BillingLine) -> Evidence:
    episode = db.session.get(Episode, line.episode_id)
    rtm_line = db.session.get(RtmBillableLine, line.rtm_line_id) if line.rtm_line_id else None
    enrolment = db.session.get(RtmEnrolment, rtm_line.enrolment_id) if rtm_line else None
    data_days, entries = [], []
    consent_kind = ConsentKind.RTM if rtm_line else ConsentKind.TELEHEALTH
    if rtm_line is not None:
        if rtm_line.slot in ("device", "setup"):
            data_days = list(db.session.scalars(select(CheckIn).where(
                CheckIn.episode_id == line.episode_id, CheckIn.self_reported.is_(True),
                CheckIn.local_date >= rtm_line.period_start, CheckIn.local_date <= rtm_line.period_end).order_by(
                CheckIn.local_date, CheckIn.received_at)))
        entry_ids = [entry["id"] for entry in (rtm_line.evidence or {}).get("entries", [])]
        if entry_ids:
            entries = list(db.session.scalars(select(ManagementTimeEntry).where(
                ManagementTimeEntry.id.in_(entry_ids)).order_by(ManagementTimeEntry.service_date,
                                                                ManagementTimeEntry.id)))
    visit = db.session.get(Visit, line.visit_id) if line.visit_id else None
    # The line's changes; reads are audited too, but listed here they would bury the changes.
    history = list(db.session.scalars(select(AuditEntry).where(
        AuditEntry.record_type == "billing_line", AuditEntry.record_id == line.id,
        AuditEntry.action.not_in(READ_ACTIONS)).order_by(AuditEntry.at, AuditEntry.id)))
    batches = list(db.session.scalars(select(ExportBatchLine).where(ExportBatchLine.line_id == line.id).order_by(
        ExportBatchLine.id)))
    return Evidence(
        line=line, patient=line.patient, episode=episode, diagnoses=episode.diagnosis_codes,
        certifications=_certifications({episode.id}).get(episode.id, []),
        consents=list(db.session.scalars(select(Consent).where(
            Consent.patient_id == line.patient_id, Consent.kind == consent_kind).order_by(Consent.granted_at))),
        rtm_line=rtm_line, enrolment=enrolment, data_days=data_days, time_entries=entries, visit=visit,
        history=history, batches=batches)


def line_evidence(actor: Actor, line_id: int, *, now: datetime) -> Evidence:
    """Everything a line stands on: data days with their sources, minutes with who and what, the
    interactive communication, the plan of care and certification, the consent, the line's history."""
    line = _line_for(actor, line_id)
    evidence = _evidence(line)
    audit_reads(actor, "view_billing_evidence", "billing_line", [(line.id, line.patient_id)], now=now)
    return evidence


@dataclass
class EvidencePack:
    patient: Patient
    title: str
    claim_number: str | None
    items: list[Evidence]
    total_cents: int


def evidence_pack(actor: Actor, *, now: datetime, claim_number: str | None = None, patient_id: int | None = None,
                  month: str | None = None) -> EvidencePack:
    """The auditor's document for one claim (by its number) or, before export, for one patient's
    lines of a month: every line with its evidence."""
    query = _billing_scope(actor, select(BillingLine)).where(BillingLine.status != LineStatus.WITHDRAWN)
    if claim_number:  # every line that was on the claim, also those a correction since removed
        query = query.where(BillingLine.id.in_(select(ExportBatchLine.line_id).where(
            ExportBatchLine.claim_number == claim_number)))
    elif patient_id is not None and month:
        query = query.where(BillingLine.patient_id == patient_id, BillingLine.month == month)
    else:
        raise ValidationFailed({"claim": ["Give a claim number, or a patient and a month."]})
    lines = list(db.session.scalars(query.order_by(BillingLine.service_to, BillingLine.code, BillingLine.id)))
    if not lines:
        raise NotFound("No lines for this claim.")
    items = [_evidence(line) for line in lines]
    audit_reads(actor, "print_evidence_pack", "billing_line", [(line.id, line.patient_id) for line in lines], now=now)
    title = f"Claim {claim_number}" if claim_number else f"{month}"
    return EvidencePack(patient=lines[0].patient, title=title, claim_number=claim_number, items=items,
                        total_cents=sum(line.charge_cents or 0 for line in lines))


# ================================================================ export batches


def _claim_setting_problems(settings: PayerSettings | None) -> dict[str, list[str]]:
    missing = [label for name, label in CLAIM_SETTING_LABELS.items() if not settings or not getattr(settings, name)]
    return {"payer_settings": [f"Fill in the payer's claim settings first: {', '.join(missing)}."]} if missing else {}


CLAIM_SETTING_LABELS = {
    "claim_payer_name": "payer name", "claim_payer_id": "payer id", "submitter_name": "submitter name",
    "submitter_id": "submitter id", "submitter_contact_name": "contact name",
    "submitter_contact_phone": "contact phone", "receiver_name": "receiver name", "receiver_id": "receiver id",
}


def create_batches(actor: Actor, month: str, *, line_ids: Sequence[int] | None = None,
                   now: datetime) -> list[ExportBatch]:
    """Queue the month's approved lines (or the approved ones among `line_ids`) that are in no live
    batch: one batch per clinic (its NPI and TIN bill) and payer type (its receiver). The export job
    writes the files; the unique live-line index refuses a line a concurrent batch took first."""
    return _queue_batches(actor, _billing_scope(actor, select(BillingLine)), actor.user.organisation_id, month,
                          line_ids=line_ids, now=now)


def _queue_batches(actor: Actor, scoped, organisation_id: int, month: str, *, line_ids: Sequence[int] | None,
                   now: datetime) -> list[ExportBatch]:
    query = scoped.where(
        BillingLine.month == month, BillingLine.status == LineStatus.APPROVED,
        ~select(ExportBatchLine.id).where(ExportBatchLine.line_id == BillingLine.id, ExportBatchLine.live).exists())
    if line_ids is not None:
        query = query.where(BillingLine.id.in_(list(line_ids)))
    lines = list(db.session.scalars(query.order_by(BillingLine.id)))
    if not lines:
        raise ValidationFailed({"lines": [f"No approved lines of {month} are waiting for export."]})
    groups: dict[tuple[int, str], list[BillingLine]] = defaultdict(list)
    for line in lines:
        groups[line.clinic_id, line.payer_type].append(line)
    settings = {row.payer_type: row for row in db.session.scalars(select(PayerSettings).where(
        PayerSettings.organisation_id == organisation_id))}
    problems = {}
    for _, payer_type in groups:
        for name, messages in _claim_setting_problems(settings.get(payer_type)).items():
            problems[name] = [f"{payer_type}: {message}" for message in messages]
    if problems:
        raise ValidationFailed(problems)
    batches = []
    for (clinic_id, payer_type), group in sorted(groups.items()):
        batch = ExportBatch(
            organisation_id=organisation_id, clinic_id=clinic_id, payer_type=payer_type, month=month,
            frequency=x12.Frequency.ORIGINAL, status="queued", line_count=len(group),
            total_cents=sum(line.charge_cents or 0 for line in group), usage=settings[payer_type].claim_usage,
            created_by_id=actor.user.id if actor.user else None, created_at=now)
        db.session.add(batch)
        db.session.flush()
        try:
            db.session.execute(insert(ExportBatchLine), [
                {"batch_id": batch.id, "line_id": line.id, "live": True} for line in group])
        except IntegrityError:
            db.session.rollback()
            raise ValidationFailed({"lines": [
                "Another export took some of these lines a moment ago: reload the month and export again."]}) from None
        audit(actor, "create", "export_batch", batch.id, now=now,
              detail=f"month={month} payer={payer_type} lines={len(group)}")
        batches.append(batch)
    db.session.commit()
    return batches


def storage_path(batch: ExportBatch, file_format: str) -> Path:
    suffix = {"837p": "x12", "csv": "csv"}[file_format]
    return Path(current_app.config["STORAGE_DIR"]) / "exports" / str(batch.organisation_id) / f"{batch.reference}.{suffix}"


def _write_file(path: Path, text: str) -> str:
    """Atomically (a half-written export is never served) and as bytes; the SHA-256 of what is written."""
    data = text.encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".export-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, path)
    return hashlib.sha256(data).hexdigest()


def _x12_header(batch: ExportBatch, settings: PayerSettings, control_number: int) -> x12.Batch:
    clinic = db.session.get(Clinic, batch.clinic_id)
    organisation = db.session.get(Organisation, batch.organisation_id)
    return x12.Batch(
        id=batch.reference, created_at=batch.created_at, interchange_control_number=control_number,
        group_control_number=control_number, usage=x12.Usage(batch.usage),
        submitter=x12.Submitter(settings.submitter_name, settings.submitter_id, settings.submitter_contact_name,
                                settings.submitter_contact_phone),
        receiver=x12.Receiver(settings.receiver_name, settings.receiver_id),
        billing_provider=x12.BillingProvider(
            name=organisation.name, npi=clinic.npi, tin=clinic.tin,
            address=x12.Address(clinic.address_line1, clinic.city, clinic.state,
                                clinic.postal_code.replace("-", ""), clinic.address_line2 or "")))


def _claim_items(batch: ExportBatch, settings: PayerSettings, lines: list[BillingLine]) -> list[claim_rules.ClaimItem]:
    payer = x12.Payer(settings.claim_payer_name, settings.claim_payer_id, x12.PayerType(batch.payer_type))
    episode_ids = {line.episode_id for line in lines}
    diagnoses: dict[int, list[str]] = defaultdict(list)
    for episode_id, code in db.session.execute(select(EpisodeDiagnosis.episode_id, EpisodeDiagnosis.code).where(
            EpisodeDiagnosis.episode_id.in_(episode_ids)).order_by(EpisodeDiagnosis.episode_id,
                                                                    EpisodeDiagnosis.position)):
        diagnoses[episode_id].append(code)
    patients = {p.id: p for p in db.session.scalars(select(Patient).where(
        Patient.id.in_({line.patient_id for line in lines})))}
    renderers = {u.id: u for u in db.session.scalars(select(User).where(
        User.id.in_({line.rendering_id for line in lines})))}
    subscribers = {}
    for patient in patients.values():
        subscribers[patient.id] = x12.Subscriber(
            last_name=patient.last_name, first_name=patient.first_name, birth_date=patient.date_of_birth,
            sex=x12.Sex(patient.sex) if patient.sex in tuple(x12.Sex) else x12.Sex.UNKNOWN,
            address=x12.Address(patient.address_line1 or "", patient.city or "", patient.state or "",
                                patient.postal_code or "", patient.address_line2 or ""),
            member_id=(normalise_mbi(patient.member_id) if batch.payer_type == "medicare" else patient.member_id) or "")
    items = []
    for line in lines:
        rendering = renderers[line.rendering_id]
        last, first = claim_rules.provider_name(rendering.full_name)
        items.append(claim_rules.ClaimItem(
            line_id=line.id, patient_id=line.patient_id, subscriber=subscribers[line.patient_id], payer=payer,
            diagnoses=tuple(diagnoses[line.episode_id]), code=line.code, modifiers=tuple(line.modifiers.split()),
            units=line.units, charge_cents=line.charge_cents or 0, service_from=line.service_from,
            service_to=line.service_to, place_of_service=line.place_of_service,
            rendering=x12.Provider(last, first, rendering.npi or "")))
    return items


def _live_lines(batch: ExportBatch, *, lock: bool = False) -> list[BillingLine]:
    """The lines the batch still holds: a cancelled or failed batch, or one a correction took over,
    holds none of them any more."""
    query = select(BillingLine).join(ExportBatchLine, ExportBatchLine.line_id == BillingLine.id).where(
        ExportBatchLine.batch_id == batch.id, ExportBatchLine.live).order_by(BillingLine.id)
    if lock:  # the rows as they are now, not as this session last saw them
        query = query.with_for_update(of=BillingLine).execution_options(populate_existing=True)
    return list(db.session.scalars(query))


def _progress(batch_id: int, done: int) -> None:
    """Committed on its own so that the page polling the batch sees it while the export runs."""
    db.session.execute(update(ExportBatch).where(ExportBatch.id == batch_id).values(progress_done=done))
    db.session.commit()


def run_export(batch_id: int, *, now: datetime) -> ExportBatch:
    """Write a queued batch's 837P and CSV, once: claims assembled (one per patient, split beyond 50
    lines), a control number that is never reused, both files stored with their SHA-256, and the
    lines marked exported with their claim numbers. Data a claim cannot carry fails the batch with
    the field named and lets its lines go, so they can be mended and batched again."""
    claimed = db.session.execute(update(ExportBatch).where(
        ExportBatch.id == batch_id, ExportBatch.status == "queued").values(status="running", progress_done=0,
                                                                            started_at=now))
    db.session.commit()
    batch = db.session.get(ExportBatch, batch_id)
    if claimed.rowcount == 0:
        return batch
    lines: list[BillingLine] = []
    assembled: list[claim_rules.AssembledClaim] = []
    original = batch.frequency == x12.Frequency.ORIGINAL
    try:
        ids = [line_id for (line_id,) in db.session.execute(select(ExportBatchLine.line_id).where(
            ExportBatchLine.batch_id == batch.id, ExportBatchLine.live).order_by(ExportBatchLine.line_id))]
        for chunk in _in_chunks(ids, EXPORT_CHUNK):
            _progress(batch.id, len(lines) // 2)  # loading is about half the work
            lines.extend(db.session.scalars(select(BillingLine).where(BillingLine.id.in_(chunk))
                                            .execution_options(populate_existing=True)))
        # A line in a live batch is never held, unapproved or cancelled under it (and progress commits
        # would let go of row locks anyway), so this is a last guard, not a path.
        expected = (LineStatus.APPROVED,) if original else CORRECTABLE
        strays = [line for line in lines if line.status not in expected]
        if not lines or strays:
            raise x12.ClaimDataError("lines", f"{len(strays)} of its lines are no longer {' or '.join(expected)}"
                                     if strays else "it holds no lines any more")
        settings = payer_row(batch.organisation_id, batch.payer_type)
        problems = _claim_setting_problems(settings)  # they may have changed since the batch was queued
        if problems:
            raise x12.ClaimDataError("payer_settings", problems["payer_settings"][0])
        assembled = claim_rules.assemble_claims(
            batch.reference, _claim_items(batch, settings, lines), frequency=x12.Frequency(batch.frequency),
            original_claim_number=None if original else batch.original_claim_number)
        control = ControlNumber(batch_id=batch.id, allocated_at=now)
        db.session.add(control)
        db.session.flush()
        header = _x12_header(batch, settings, control.id)
        claims = [item.claim for item in assembled]
        x12_sha = _write_file(storage_path(batch, "837p"), x12.write_837p(header, claims))
        csv_sha = _write_file(storage_path(batch, "csv"), write_claim_csv(header, claims))
    except x12.ClaimDataError as error:
        message = _explain(error, batch, [item.claim for item in assembled])
        db.session.rollback()
        return _fail_batch(batch_id, error.field, message, now=now)
    except Exception as error:  # a full disk, a lost connection: the lines must not stay stuck in it
        log.exception("export of batch %s failed", batch_id)
        db.session.rollback()
        return _fail_batch(batch_id, "export", f"The export stopped ({type(error).__name__}); nothing was "
                                               "written. Export the lines again; if it recurs, tell the administrator.",
                           now=now)
    claim_of = {line_id: number for item in assembled for line_id, number in zip(item.line_ids, item.claim_numbers,
                                                                                 strict=True)}
    batch.interchange_control_number = control.id
    batch.x12_sha256, batch.csv_sha256 = x12_sha, csv_sha
    batch.claim_count = len({number for number in claim_of.values()})
    batch.total_cents = sum(line.charge_cents or 0 for line in lines)
    batch.status, batch.finished_at, batch.progress_done = "ready", now, len(lines)
    db.session.execute(update(ExportBatchLine), [
        {"id": batch_line_id, "claim_number": claim_of[line_id]} for batch_line_id, line_id in db.session.execute(
            select(ExportBatchLine.id, ExportBatchLine.line_id).where(ExportBatchLine.batch_id == batch.id))])
    final = LineStatus.VOID if batch.frequency == x12.Frequency.VOID else LineStatus.EXPORTED
    _set_status(SYSTEM, lines, final, now=now, action="export", detail=f"batch={batch.reference}",
                changes={line_id: {"claim_number": number} for line_id, number in claim_of.items()})
    audit(SYSTEM, "export", "export_batch", batch.id, now=now, detail=f"claims={batch.claim_count} lines={len(lines)}")
    db.session.commit()
    return batch


_CLAIM_PATH = re.compile(r"claims\[([0-9]+)\]")


def _explain(error: x12.ClaimDataError, batch: ExportBatch, claims: list[x12.Claim]) -> str:
    """The writer names a path (batch.billing_provider.address.postal_code, claims[3].subscriber...):
    say in words whose data it is and where it is mended."""
    if error.field.startswith("batch.billing_provider"):
        clinic = db.session.get(Clinic, batch.clinic_id)
        return f"Clinic {clinic.name} (the billing provider): {error.message} Mend it under Admin, Clinics."
    if error.field.startswith(("batch.", "payer_settings")):
        return f"Claim settings for {batch.payer_type}: {error.message} Mend them under Billing, Settings."
    match = _CLAIM_PATH.match(error.field)
    if match and int(match.group(1)) < len(claims):
        subscriber = claims[int(match.group(1))].subscriber
        return f"{subscriber.first_name} {subscriber.last_name}'s claim: {error.field}: {error.message}"
    return f"{error.field}: {error.message}"


def _fail_batch(batch_id: int, field_name: str, message: str, *, now: datetime) -> ExportBatch:
    batch = db.session.get(ExportBatch, batch_id)
    batch.status, batch.finished_at = "failed", now
    batch.error, batch.error_field = message, field_name
    db.session.execute(update(ExportBatchLine).where(ExportBatchLine.batch_id == batch.id).values(live=False))
    audit(SYSTEM, "export_failed", "export_batch", batch.id, now=now, detail=field_name)
    db.session.commit()
    return batch


@dataclass
class ExportRun:
    ready: int = 0
    failed: int = 0


def run_queued_exports(*, now: datetime) -> ExportRun:
    """The scheduler's job: every queued batch, oldest first. Two runners never write one batch: the
    queued -> running step is a single conditional UPDATE."""
    run = ExportRun()
    # A runner killed mid-export (no exception to catch) left its batch running: write it again.
    db.session.execute(update(ExportBatch).where(
        ExportBatch.status == "running", ExportBatch.started_at < now - STALE_EXPORT).values(status="queued"))
    db.session.commit()
    for (batch_id,) in db.session.execute(select(ExportBatch.id).where(ExportBatch.status == "queued").order_by(
            ExportBatch.id)).all():
        if run_export(batch_id, now=now).status == "failed":
            run.failed += 1
        else:
            run.ready += 1
    return run


@dataclass(frozen=True)
class BatchFile:
    filename: str
    data: bytes
    mimetype: str


def batch_file(actor: Actor, batch_id: int, file_format: str, *, now: datetime) -> BatchFile:
    """The batch's stored file, byte for byte what was first written (checked against its SHA-256)."""
    return _stored_file(actor, _batch_for(actor, batch_id), file_format, now=now)


def _stored_file(actor: Actor, batch: ExportBatch, file_format: str, *, now: datetime) -> BatchFile:
    if file_format not in ("837p", "csv"):
        raise ValidationFailed({"format": ["Choose 837p or csv."]})
    if batch.status != "ready":  # a cancelled batch's lines may be in a newer file: never both sent
        raise ValidationFailed({"batch": [f"Batch {batch.reference} is {batch.status}: there is no file to download."]})
    path = storage_path(batch, file_format)
    expected = batch.x12_sha256 if file_format == "837p" else batch.csv_sha256
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"The file of batch {batch.reference} is missing from storage.") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise ValidationFailed({"batch": [f"The stored file of batch {batch.reference} has changed since export; "
                                          "it is not served."]})
    audit(actor, "download", "export_batch", batch.id, now=now, detail=file_format)
    db.session.commit()
    return BatchFile(path.name, data, "text/csv" if file_format == "csv" else "application/edi-x12")


def list_batches(actor: Actor, *, month: str | None = None) -> list[ExportBatch]:
    query = _billing_scope(actor, select(ExportBatch), clinic_column=ExportBatch.clinic_id,
                           organisation_column=ExportBatch.organisation_id)
    if month:
        query = query.where(ExportBatch.month == month)
    return list(db.session.scalars(query.order_by(ExportBatch.id.desc()).limit(200)))


def batch_progress(actor: Actor, batch_id: int) -> ExportBatch:
    """What the batch page polls for while the export job writes it: the batch row alone."""
    return _batch_for(actor, batch_id)


@dataclass
class BatchDetail:
    batch: ExportBatch
    rows: list[ExportBatchLine]  # every line it ever held, with its claim number in this batch and whether it still does
    downloaded: AuditEntry | None


def batch_detail(actor: Actor, batch_id: int, *, now: datetime) -> BatchDetail:
    batch = _batch_for(actor, batch_id)
    rows = list(db.session.scalars(select(ExportBatchLine).where(ExportBatchLine.batch_id == batch.id).options(
        selectinload(ExportBatchLine.line).selectinload(BillingLine.patient)).order_by(ExportBatchLine.line_id)))
    audit_reads(actor, "view_billing_line", "billing_line", [(row.line_id, row.line.patient_id) for row in rows],
                now=now)
    return BatchDetail(batch, rows, downloaded(batch))


def downloaded(batch: ExportBatch) -> AuditEntry | None:
    """The first download of the batch's files, if any: once downloaded, it may have been sent."""
    return db.session.scalar(select(AuditEntry).where(
        AuditEntry.record_type == "export_batch", AuditEntry.record_id == batch.id,
        AuditEntry.action == "download").order_by(AuditEntry.at).limit(1))


def cancel_batch(actor: Actor, batch_id: int, *, not_sent: bool = False, now: datetime) -> ExportBatch:
    """Withdraw a batch that was not sent: its lines go back to approved and out of it, so another batch
    can take them. Its control number is spent, never reused. A batch with submitted lines stands, and
    one whose file was downloaded is cancelled only when the clerk confirms it was `not_sent`."""
    batch = _batch_for(actor, batch_id)
    if batch.status not in ("queued", "ready", "failed"):
        raise ValidationFailed({"batch": [f"Batch {batch.reference} is {batch.status}: it cannot be cancelled."]})
    if batch.frequency != x12.Frequency.ORIGINAL:
        raise ValidationFailed({"batch": ["A correction batch stands once made; send a new correction instead."]})
    lines = _live_lines(batch, lock=True)
    if batch.status == "ready" and len(lines) < batch.line_count:
        raise ValidationFailed({"batch": [f"Some of batch {batch.reference}'s claims were corrected since: it was "
                                          "sent; correct its claims instead."]})
    sent = [line for line in lines if line.status not in (LineStatus.APPROVED, LineStatus.EXPORTED)]
    if sent:
        raise ValidationFailed({"batch": [f"{len(sent)} of its lines are already {sent[0].status}: the batch "
                                          "was sent; correct its claims instead."]})
    first_download = downloaded(batch)
    if first_download is not None and not not_sent:
        raise ValidationFailed({"not_sent": [
            f"This batch's file was downloaded on {first_download.at:%Y-%m-%d %H:%M} UTC. Cancel it only if the "
            "file was not sent to the clearinghouse; if it was, mark it submitted and correct its claims."]})
    exported = [line for line in lines if line.status == LineStatus.EXPORTED]
    _set_status(actor, exported, LineStatus.APPROVED, now=now, action="batch_cancelled",
                detail=f"batch={batch.reference}", changes={line.id: {"claim_number": None} for line in exported})
    db.session.execute(update(ExportBatchLine).where(ExportBatchLine.batch_id == batch.id).values(live=False))
    batch.status, batch.cancelled_at, batch.cancelled_by_id = "cancelled", now, actor.user.id
    audit(actor, "cancel", "export_batch", batch.id, now=now)
    db.session.commit()
    return batch


def mark_batch_submitted(actor: Actor, batch_id: int, *, now: datetime) -> ExportBatch:
    """The file went to the clearinghouse: its exported lines are submitted."""
    batch = _batch_for(actor, batch_id)
    if batch.status != "ready":
        raise ValidationFailed({"batch": [f"Batch {batch.reference} is {batch.status}: only a written batch is sent."]})
    lines = [line for line in _live_lines(batch, lock=True) if line.status == LineStatus.EXPORTED]
    if not lines:
        raise ValidationFailed({"batch": [f"Batch {batch.reference} has no exported lines left to mark: it was "
                                          "marked submitted already, or its claims were corrected."]})
    _set_status(actor, lines, LineStatus.SUBMITTED, now=now, action="mark_submitted",
                detail=f"batch={batch.reference}")
    db.session.commit()
    return batch


# ================================================================ corrections


class CorrectionKind(StrEnum):
    REPLACE = "replace"
    VOID = "void"


def correct_claim(actor: Actor, claim_number: str, kind: str, *, payer_claim_number: str,
                  remove_line_ids: Sequence[int] = (), now: datetime) -> ExportBatch:
    """A replacement (frequency 7) or void (8) of a claim already exported, referring to the payer's
    claim number. A replacement re-sends the claim's lines (less those removed, which are voided)
    with their current data; a void cancels them all. The correction batch takes the lines over."""
    if kind not in (CorrectionKind.REPLACE, CorrectionKind.VOID):
        raise ValidationFailed({"kind": ["Choose replace or void."]})
    payer_claim_number = (payer_claim_number or "").strip()
    if not payer_claim_number or len(payer_claim_number) > 50 or not payer_claim_number.replace("-", "").isalnum():
        raise ValidationFailed({"payer_claim_number": [
            "Give the payer's claim number (ICN) from the remittance: 1 to 50 letters, digits or dashes."]})
    lines = list(db.session.scalars(_billing_scope(actor, select(BillingLine)).where(
        BillingLine.claim_number == claim_number).order_by(BillingLine.id).with_for_update().execution_options(
        populate_existing=True)))
    if not lines:
        raise NotFound("No such claim.")
    pending = _pending_batches([line.id for line in lines])
    if pending:
        raise ValidationFailed({"claim": [f"Batch {pending[0].reference} is still writing a correction of this "
                                          "claim: wait for it, then correct the claim it writes."]})
    not_sent = [line for line in lines if line.status not in CORRECTABLE]
    if not_sent:
        raise ValidationFailed({"claim": [f"Line {not_sent[0].id} is {not_sent[0].status}: only exported, "
                                          "submitted, paid or denied claims are corrected."]})
    removed = [line for line in lines if line.id in set(remove_line_ids)]
    kept = [line for line in lines if line not in removed]
    if kind == CorrectionKind.REPLACE and not kept:
        raise ValidationFailed({"remove_line_ids": ["A replacement keeps at least one line; void the claim instead."]})
    if kind == CorrectionKind.VOID:
        kept, removed = lines, []
    frequency = x12.Frequency.REPLACEMENT if kind == CorrectionKind.REPLACE else x12.Frequency.VOID
    settings = payer_row(lines[0].organisation_id, lines[0].payer_type)
    batch = ExportBatch(
        organisation_id=lines[0].organisation_id, clinic_id=lines[0].clinic_id, payer_type=lines[0].payer_type,
        month=lines[0].month, frequency=frequency, corrects_claim_number=claim_number,
        original_claim_number=payer_claim_number, status="queued", line_count=len(kept),
        total_cents=sum(line.charge_cents or 0 for line in kept),
        usage=settings.claim_usage if settings else x12.Usage.TEST,
        created_by_id=actor.user.id, created_at=now)
    db.session.add(batch)
    db.session.flush()
    db.session.execute(update(ExportBatchLine).where(
        ExportBatchLine.line_id.in_([line.id for line in lines]), ExportBatchLine.live).values(live=False))
    db.session.execute(insert(ExportBatchLine), [
        {"batch_id": batch.id, "line_id": line.id, "live": True} for line in kept])
    for line in lines:
        line.payer_claim_number = payer_claim_number
    db.session.execute(insert(AuditEntry), [
        audit_values(actor, "correction_requested", "billing_line", line.id, now, line.patient_id,
                     f"kind={kind} batch={batch.reference} payer_claim={payer_claim_number}") for line in kept])
    if removed:
        for line in removed:
            problem = transition_problem(line.status, LineStatus.VOID)
            if problem:
                raise ValidationFailed({"remove_line_ids": [problem]})
        _set_status(actor, removed, LineStatus.VOID, now=now, action="void_line",
                    detail=f"replaced claim={claim_number}")
    audit(actor, f"correct_{kind}", "export_batch", batch.id, now=now, patient_id=lines[0].patient_id,
          detail=f"claim={claim_number} payer_claim={payer_claim_number}")
    db.session.commit()
    return batch


CORRECTABLE = (LineStatus.EXPORTED, LineStatus.SUBMITTED, LineStatus.PAID, LineStatus.DENIED)


def _pending_batches(line_ids: Sequence[int]) -> list[ExportBatch]:
    """Batches not yet written (queued or running) that hold any of these lines."""
    return list(db.session.scalars(select(ExportBatch).join(
        ExportBatchLine, ExportBatchLine.batch_id == ExportBatch.id).where(
        ExportBatchLine.line_id.in_(line_ids), ExportBatchLine.live,
        ExportBatch.status.in_(("queued", "running"))).distinct().order_by(ExportBatch.id)))


# ================================================================ fee schedule and claim settings


def billed_codes(actor: Actor) -> list[str]:
    """Every code the organisation's lines carry, for the fee schedule's rows."""
    return list(db.session.scalars(_billing_scope(actor, select(BillingLine.code).distinct())))


def fee_schedule(actor: Actor) -> dict[str, dict[str, int]]:
    """payer type -> code -> amount in cents."""
    require_permission(actor.user, Permission.MANAGE_BILLING)
    schedule: dict[str, dict[str, int]] = defaultdict(dict)
    for fee in db.session.scalars(select(Fee).where(Fee.organisation_id == actor.user.organisation_id)):
        schedule[fee.payer_type][fee.code] = fee.amount_cents
    return schedule


def set_fees(actor: Actor, payer_type: str, amounts: dict[str, int | None], *, now: datetime) -> None:
    """Set (or, with None, remove) the fee of each code for one payer type; open lines take the new
    charges at once. Amounts are validated by the schema (positive whole cents)."""
    require_permission(actor.user, Permission.MANAGE_BILLING)
    organisation_id = actor.user.organisation_id
    existing = {fee.code: fee for fee in db.session.scalars(select(Fee).where(
        Fee.organisation_id == organisation_id, Fee.payer_type == payer_type))}
    changed = []
    for code, amount in amounts.items():
        fee = existing.get(code)
        if amount is None:
            if fee is not None:
                db.session.delete(fee)
                changed.append(f"{code}=none")
        elif fee is None:
            db.session.add(Fee(organisation_id=organisation_id, payer_type=payer_type, code=code, amount_cents=amount,
                               updated_by_id=actor.user.id, updated_at=now))
            changed.append(f"{code}={amount}")
        elif fee.amount_cents != amount:
            fee.amount_cents, fee.updated_by_id, fee.updated_at = amount, actor.user.id, now
            changed.append(f"{code}={amount}")
    if changed:
        db.session.flush()
        audit(actor, "update", "fee_schedule", None, now=now, detail=f"payer={payer_type} " + " ".join(changed))
    db.session.commit()
    if changed:
        collect_lines(now=now, organisation_id=organisation_id)


CLAIM_SETTING_FIELDS = (*CLAIM_SETTING_LABELS, "claim_usage")


def claim_settings(actor: Actor) -> dict[str, PayerSettings | None]:
    require_permission(actor.user, Permission.MANAGE_BILLING)
    return {row.payer_type: row for row in db.session.scalars(select(PayerSettings).where(
        PayerSettings.organisation_id == actor.user.organisation_id))}


def set_claim_settings(actor: Actor, payer_type: str, data: dict[str, Any], *, now: datetime) -> PayerSettings:
    """The payer's name and id on claims, submitter and receiver, test or production (validated by the
    schema)."""
    require_permission(actor.user, Permission.MANAGE_BILLING)
    row = payer_row(actor.user.organisation_id, payer_type)
    if row is None:
        row = PayerSettings(organisation_id=actor.user.organisation_id, payer_type=payer_type)
        db.session.add(row)
    for name in CLAIM_SETTING_FIELDS:
        if name in data:
            setattr(row, name, data[name])
    db.session.flush()
    audit(actor, "update", "payer_settings", row.id, now=now, detail=f"claim_settings payer={payer_type}")
    db.session.commit()
    return row


# ================================================================ the therapist's view


def own_line_statuses(actor: Actor, month: str, *, now: datetime) -> list[BillingLine]:
    """A therapist's own patients' lines of a month (their episodes, or lines billed under them):
    status only is shown, never charges or notes."""
    require_permission(actor.user, Permission.VIEW_OWN_BILLING_STATUS)
    lines = list(db.session.scalars(select(BillingLine).join(Episode, Episode.id == BillingLine.episode_id).where(
        BillingLine.month == month, BillingLine.status != LineStatus.WITHDRAWN,
        or_(Episode.therapist_id == actor.user.id, BillingLine.rendering_id == actor.user.id),
        BillingLine.organisation_id == actor.user.organisation_id).order_by(
        BillingLine.patient_id, BillingLine.service_to, BillingLine.code)))
    audit_reads(actor, "view_billing_status", "billing_line", [(line.id, line.patient_id) for line in lines], now=now)
    return lines



# ================================================================ the command line


@dataclass(frozen=True)
class CommandLineExport:
    batch: ExportBatch
    file: BatchFile | None  # None: the batch failed (its error says why)


def export_from_command_line(organisation_id: int, month: str, file_format: str, *, batch_id: int | None = None,
                             now: datetime) -> list[CommandLineExport]:
    """`flask claims export`: the month's approved lines not yet in a batch, batched and written at
    once (no job); with `batch_id`, that batch's stored file again. Audited as the system, since no
    one is signed in."""
    if batch_id is not None:
        batch = db.session.scalar(select(ExportBatch).where(
            ExportBatch.id == batch_id, ExportBatch.organisation_id == organisation_id))
        if batch is None:
            raise NotFound(f"No batch {batch_id} in this organisation.")
        return [CommandLineExport(batch, _stored_file(SYSTEM, batch, file_format, now=now))]
    scoped = select(BillingLine).where(BillingLine.organisation_id == organisation_id)
    batches = _queue_batches(SYSTEM, scoped, organisation_id, month, line_ids=None, now=now)
    exported = [run_export(batch.id, now=now) for batch in batches]
    return [CommandLineExport(batch, _stored_file(SYSTEM, batch, file_format, now=now)
                              if batch.status == "ready" else None) for batch in exported]
