"""Month-close export through the billing workbench: `python bench/export_db.py` (the lead wires it
into `make bench`, after bench/exports.py).

The same month as bench/exports.py (BENCH_EXPORT_PATIENTS x BENCH_EXPORT_LINES, 10,000 lines by
default) seeded in bulk as the lines' sources (ready RTM lines of an enrolment; completed video
visits with a signed note and their service, under a signed certification and the patients'
consents), on SQLite (a file in a temporary folder) and on PostgreSQL (a scratch database on
BENCH_ADMIN_URL, default postgresql://postgres@127.0.0.1:5432/test, dropped afterwards; skipped
when unreachable). Timed, best of BENCH_EXPORT_ROUNDS (default 3), each round from the same state:

* `collect_lines` bringing every line onto an empty workbench (all ready), with its query count.
  Baseline: the same lines written by one INSERT ... SELECT from their sources with the same joins
  (episode, patient, clinic, fee) into billing_lines itself. That, rather than the SELECT alone,
  is the database's own cost of the job: reading the sources and writing 10,000 rows into the real
  table with its indexes and unique keys; only the holds (computed in Python) are left out;
* `collect_lines` again with nothing changed (the every-10-minutes job's usual case). Baseline:
  the SELECT of the same sources joined to their open workbench lines, all that such a run needs
  to read to find there is nothing to do.

Then the month's workbench lines are replaced by the claims' own (the export's baseline writes
those charges), and:

* `workbench` for the month (first page of 200, totals over every line) against the plain
  GROUP BY status and the page's rows; `matching_line_ids` over every line;
* bulk approve of every ready line (`apply_action`: checked, mirrored to the RTM lines, audited);
* the export: `create_batches` then `run_export` (claims assembled, a control number, 837P and CSV
  written and stored with their SHA-256, lines marked exported and audited); the batch is
  cancelled between rounds (untimed) so that the next round exports the same lines;
* `batch_file` of both files again (the stored bytes, checked against their SHA-256);
* peak Python memory of `run_export` (tracemalloc, a separate run).

Baseline, measured in the same run: the writers alone (`write_837p` and `write_claim_csv`) on the
same claims built in memory. The 837P the workbench wrote is checked with `check_837p`; with
BENCH_EXPORT_VALIDATE=1 also with pyx12. BENCH_EXPORT_PROFILE=1 prints where `collect_lines` (new
lines, then nothing changed) and `run_export` spend their time (cProfile, one more run each).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.exports import ROUNDS, VALIDATE, best_seconds, month_close, peak_mib, pyx12_seconds  # noqa: E402
from telerehab.billing.claim_csv import write_claim_csv  # noqa: E402
from telerehab.billing.x12 import Batch, Claim, check_837p, write_837p  # noqa: E402
from tests.conftest import scratch_postgres_database  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
PROFILE = os.environ.get("BENCH_EXPORT_PROFILE") == "1"
MONTH = "2026-01"
NOW = datetime(2026, 2, 3, 14, 5, tzinfo=UTC)
VISIT_CODES = {"97110"}  # lines billed from a visit's services; the others are RTM lines


def postgres_scratch() -> tuple[str, Callable[[], None]] | None:
    try:
        return scratch_postgres_database(ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1),
                                         prefix="telerehab_bench_export")
    except sa.exc.OperationalError as error:
        print(f"\nPostgreSQL unreachable at {ADMIN_URL}: skipped ({error.__class__.__name__})")
        return None


def inserted_ids(session, model, rows: list[dict]) -> list[int]:
    """Bulk INSERT ... RETURNING id, the ids in the order of `rows`."""
    return list(session.scalars(sa.insert(model).returning(model.id, sort_by_parameter_order=True), rows))


def seed(db, batch: Batch, claims: list[Claim]) -> tuple[object, list[dict]]:
    """The sources of the month of `claims` (ready RTM lines; completed video visits with a signed note
    and their service), under a signed certification and the patients' consents, with fees and claim
    settings, in bulk. Returns the billing user and the month's ready workbench lines, not inserted:
    the lines `collect_lines` would bring in, but carrying the claims' own charges."""
    from telerehab.accounts.models import Clinic, Consent, Organisation, Patient, User
    from telerehab.billing.models import Fee
    from telerehab.careplans.models import (
        Episode,
        EpisodeDiagnosis,
        PayerSettings,
        ServiceLine,
        Visit,
        VisitNote,
    )
    from telerehab.monitoring.models import RtmBillableLine, RtmEnrolment

    session = db.session
    provider = batch.billing_provider
    org = Organisation(name=provider.name)
    session.add(org)
    session.flush()
    clinic = Clinic(organisation_id=org.id, name="Bench", timezone="America/Chicago",
                    address_line1=provider.address.line1, city=provider.address.city, state=provider.address.state,
                    postal_code=provider.address.postal_code, npi=provider.npi, tin=provider.tin)
    session.add(clinic)
    session.flush()
    staff = {"organisation_id": org.id, "password_hash": "!", "created_at": NOW, "password_changed_at": NOW}
    billing = User(username="billing", full_name="Blair Biller", role="billing", **staff)
    session.add(billing)
    renderers = sorted({claim.rendering for claim in claims}, key=lambda provider: provider.npi)
    therapist_ids = dict(zip(renderers, inserted_ids(session, User, [{
        "clinic_id": clinic.id, "username": f"pt{n}", "full_name": f"{p.first_name} {p.last_name}",
        "role": "therapist", "npi": p.npi, **staff} for n, p in enumerate(renderers)]), strict=True))
    session.flush()
    patient_ids = inserted_ids(session, Patient, [{
        "clinic_id": clinic.id, "first_name": c.subscriber.first_name, "last_name": c.subscriber.last_name,
        "date_of_birth": c.subscriber.birth_date, "sex": c.subscriber.sex.value, "timezone": "America/Chicago",
        "preferred_language": "en", "payer_type": c.payer.type.value, "member_id": c.subscriber.member_id,
        "address_line1": c.subscriber.address.line1, "city": c.subscriber.address.city,
        "state": c.subscriber.address.state, "postal_code": c.subscriber.address.postal_code,
        "created_at": NOW, "updated_at": NOW} for c in claims])
    episode_ids = inserted_ids(session, Episode, [{
        "patient_id": pid, "clinic_id": clinic.id, "therapist_id": therapist_ids[c.rendering], "title": "Low back",
        "status": "active", "start_date": date(2025, 12, 1), "frequency_per_week": 2, "duration_weeks": 12,
        "certification_start": date(2025, 12, 1), "certification_end": date(2026, 2, 28),
        "certification_signed_on": date(2025, 12, 3), "created_at": NOW, "updated_at": NOW}
        for pid, c in zip(patient_ids, claims, strict=True)])
    session.execute(sa.insert(EpisodeDiagnosis), [
        {"episode_id": eid, "position": position, "code": code}
        for eid, c in zip(episode_ids, claims, strict=True) for position, code in enumerate(c.diagnoses, start=1)])
    consent_ids = inserted_ids(session, Consent, [{
        "patient_id": pid, "kind": "rtm", "granted_at": NOW - timedelta(days=90), "recorded_by_id": billing.id,
        "method": "written"} for pid in patient_ids])
    session.execute(sa.insert(Consent), [{
        "patient_id": pid, "kind": "telehealth", "granted_at": NOW - timedelta(days=90),
        "recorded_by_id": billing.id, "method": "written"} for pid in patient_ids])
    enrolment_ids = inserted_ids(session, RtmEnrolment, [{
        "episode_id": eid, "patient_id": pid, "clinic_id": clinic.id, "status": "active", "consent_id": cid,
        "cost_sharing_notice_shown_at": NOW - timedelta(days=90), "monitored_system": "musculoskeletal",
        "device_name": "telerehab app", "monitoring_start": date(2025, 12, 1), "created_by_id": billing.id,
        "created_at": NOW, "updated_at": NOW}
        for pid, eid, cid in zip(patient_ids, episode_ids, consent_ids, strict=True)])
    # Each claim line becomes a source row (an RTM line, or a visit with its service) and a workbench line.
    rtm_rows, visit_rows, service_rows, lines = [], [], [], []
    for pid, eid, enrolment_id, claim in zip(patient_ids, episode_ids, enrolment_ids, claims, strict=True):
        rendering_id = therapist_ids[claim.rendering]
        for k, line in enumerate(claim.lines):
            common = {"units": line.units, "modifiers": " ".join(line.modifiers), "place_of_service": line.place_of_service}
            if line.code in VISIT_CODES:
                starts = datetime(line.service_from.year, line.service_from.month, line.service_from.day, 15, tzinfo=UTC)
                visit_rows.append({"episode_id": eid, "patient_id": pid, "clinic_id": clinic.id,
                                   "clinician_id": rendering_id, "modality": "video", "kind": "treatment",
                                   "status": "completed", "starts_at": starts, "ends_at": starts + timedelta(hours=1),
                                   "status_changed_at": NOW, "created_at": NOW})
                service_rows.append({"cpt_code": line.code, "minutes": 15 * line.units, **common})
            else:
                rtm_rows.append({"enrolment_id": enrolment_id, "episode_id": eid, "patient_id": pid,
                                 "slot": f"bench{k}", "period_key": MONTH, "period_start": line.service_from,
                                 "period_end": line.service_to, "code": line.code, "service_date": line.service_to,
                                 "status": "ready", "reason": "", "evidence": {}, "created_at": NOW, "updated_at": NOW,
                                 **common})
            lines.append({"source": "visit" if line.code in VISIT_CODES else "rtm", "organisation_id": org.id,
                          "clinic_id": clinic.id, "patient_id": pid, "episode_id": eid, "rendering_id": rendering_id,
                          "payer_type": claim.payer.type.value, "month": f"{line.service_to:%Y-%m}", "code": line.code,
                          "service_from": line.service_from, "service_to": line.service_to,
                          "charge_cents": line.charge_cents, "status": "ready", "holds": [], "status_changed_at": NOW,
                          "created_at": NOW, "updated_at": NOW, **common})
    rtm_ids = iter(inserted_ids(session, RtmBillableLine, rtm_rows))
    visit_ids = inserted_ids(session, Visit, visit_rows)
    service_ids = iter(inserted_ids(session, ServiceLine, [
        {"visit_id": vid, **row} for vid, row in zip(visit_ids, service_rows, strict=True)]))
    session.execute(sa.insert(VisitNote), [
        {"visit_id": vid, "author_id": row["clinician_id"], "signed_at": row["ends_at"], "updated_at": row["ends_at"]}
        for vid, row in zip(visit_ids, visit_rows, strict=True)])
    visit_ids = iter(visit_ids)
    for line in lines:
        if line["source"] == "rtm":
            line["rtm_line_id"] = next(rtm_ids)
        else:
            line["visit_id"], line["service_line_id"] = next(visit_ids), next(service_ids)
    # The lines carry their charges already; the schedule is there because a practice has one.
    fees = {line.code: line.charge_cents for claim in claims for line in claim.lines}
    session.execute(sa.insert(Fee), [{"organisation_id": org.id, "payer_type": claims[0].payer.type.value,
                                      "code": code, "amount_cents": cents, "updated_by_id": billing.id,
                                      "updated_at": NOW} for code, cents in fees.items()])
    session.add(PayerSettings(
        organisation_id=org.id, payer_type=claims[0].payer.type.value, claim_payer_name=claims[0].payer.name,
        claim_payer_id=claims[0].payer.id, submitter_name=batch.submitter.name, submitter_id=batch.submitter.id,
        submitter_contact_name=batch.submitter.contact_name, submitter_contact_phone=batch.submitter.contact_phone,
        receiver_name=batch.receiver.name, receiver_id=batch.receiver.id, claim_usage=batch.usage.value))
    session.commit()
    analyze(db)
    return billing, lines


def analyze(db) -> None:
    """Fresh planner statistics after a bulk load (PostgreSQL), as autovacuum would soon have."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()


class QueryCount:
    """The statements sent to the database while counting (an executemany is one)."""

    def __init__(self, engine) -> None:
        self.statements = 0
        sa.event.listen(engine, "before_cursor_execute", self.count)

    def count(self, *_) -> None:
        self.statements += 1

    def since(self, start: int) -> int:
        return self.statements - start


def source_rows(*, open_lines: bool) -> sa.CompoundSelect:
    """The database's own share of `collect_lines`: the billable sources (RTM lines, services of
    completed visits with a signed note) joined to what a workbench line takes from them (episode,
    patient, clinic, fee), as workbench-line values. Without `open_lines`, the sources not on the
    workbench yet; with it, also those whose line is still open, with that line's columns to compare."""
    from telerehab.accounts.models import Clinic, Patient
    from telerehab.billing.models import BillingLine, Fee
    from telerehab.billing.rules import OPEN_STATUSES, LineStatus
    from telerehab.careplans.models import Episode, ServiceLine, Visit, VisitNote
    from telerehab.monitoring.models import RtmBillableLine

    line = BillingLine.__table__.c
    constants = {name: sa.literal(value, line[name].type) for name, value in (
        ("status", "ready"), ("holds", []), ("status_changed_at", NOW), ("created_at", NOW), ("updated_at", NOW))}
    on_workbench = (sa.or_(line.id.is_(None), line.status.in_((*OPEN_STATUSES, LineStatus.WITHDRAWN)))
                    if open_lines else line.id.is_(None))
    compared = (line.id.label("line_id"), line.status.label("line_status"), line.holds.label("line_holds"),
                line.charge_cents.label("line_charge_cents")) if open_lines else ()

    def values(source: str, joined, code, units, modifiers, rendering_id, service_day, place_of_service,
               ids: dict[str, sa.ColumnElement]) -> sa.Select:
        fee = sa.and_(Fee.organisation_id == Clinic.organisation_id, Fee.payer_type == Patient.payer_type,
                      Fee.code == code)
        return (sa.select(
            sa.literal(source, line.source.type).label("source"), Clinic.organisation_id, Episode.clinic_id,
            Episode.patient_id, Episode.id.label("episode_id"), rendering_id.label("rendering_id"),
            Patient.payer_type, sa.literal(MONTH, line.month.type).label("month"), code.label("code"),
            modifiers.label("modifiers"), units.label("units"), service_day.label("service_from"),
            service_day.label("service_to"), place_of_service.label("place_of_service"),
            (Fee.amount_cents * units).label("charge_cents"), *(value.label(name) for name, value in constants.items()),
            *(value.label(name) for name, value in ids.items()), *compared)
            .select_from(joined.join(Patient, Patient.id == Episode.patient_id)
                         .join(Clinic, Clinic.id == Episode.clinic_id).outerjoin(Fee, fee))
            .where(on_workbench))

    rtm = RtmBillableLine.__table__
    from_rtm = values(
        "rtm", rtm.join(Episode, Episode.id == rtm.c.episode_id).outerjoin(BillingLine, line.rtm_line_id == rtm.c.id),
        rtm.c.code, rtm.c.units, rtm.c.modifiers, Episode.therapist_id, rtm.c.service_date,
        sa.func.coalesce(rtm.c.place_of_service, "11"),
        {"rtm_line_id": rtm.c.id, "visit_id": sa.null(), "service_line_id": sa.null()},
    ).where(rtm.c.code.is_not(None), rtm.c.status.in_(("ready", "held")), rtm.c.units > 0)
    service = ServiceLine.__table__
    # The day of service in UTC rather than the clinic's: the same day for these afternoon visits.
    from_visits = values(
        "visit", service.join(Visit, Visit.id == service.c.visit_id).join(VisitNote, VisitNote.visit_id == Visit.id)
        .join(Episode, Episode.id == Visit.episode_id).outerjoin(BillingLine, line.service_line_id == service.c.id),
        service.c.cpt_code, service.c.units, service.c.modifiers, Visit.clinician_id, sa.func.date(Visit.starts_at),
        service.c.place_of_service,
        {"rtm_line_id": sa.null(), "visit_id": Visit.id, "service_line_id": service.c.id},
    ).where(Visit.status == "completed", VisitNote.signed_at.is_not(None), service.c.units > 0)
    return sa.union_all(from_rtm, from_visits)


def rounds(prepare: Callable[[], None], run: Callable[[], object]) -> list[float]:
    """`run`'s time in each of ROUNDS rounds, `prepare` (untimed) before each."""
    timings = []
    for _ in range(ROUNDS):
        prepare()
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return timings


def bench_collect(db, queries: QueryCount, total: int) -> None:
    """`collect_lines` onto an empty workbench, and again with nothing changed, each against its floor."""
    from telerehab.billing import operations
    from telerehab.billing.models import BillingLine

    line_columns = [column.name for column in source_rows(open_lines=False).selected_columns]
    used = []

    def empty_workbench() -> None:
        db.session.execute(sa.delete(BillingLine))
        db.session.commit()

    def insert_select() -> None:
        db.session.execute(sa.insert(BillingLine).from_select(line_columns, source_rows(open_lines=False)))
        db.session.commit()

    def on_workbench(status: str) -> int:
        return db.session.scalar(sa.select(sa.func.count()).where(BillingLine.status == status))

    def collect(expected: operations.CollectRun) -> None:
        start = queries.statements
        run = operations.collect_lines(now=NOW)
        used.append(queries.since(start))
        assert run == expected, run

    floor = min(rounds(empty_workbench, insert_select))
    assert on_workbench("ready") == total, on_workbench("ready")
    collecting = min(rounds(empty_workbench, lambda: collect(operations.CollectRun(added=total))))
    new_queries = used[-1]
    assert on_workbench("ready") == total, f"{on_workbench('held')} lines held: the seeded sources miss something"
    print(f"  collect_lines, {total} new lines: {collecting * 1000:.0f} ms, {total / collecting:,.0f} lines/s, "
          f"{new_queries} queries ({collecting / floor:.1f}x the baseline)")
    print(f"  baseline, the same lines in one INSERT ... SELECT on their sources: {floor * 1000:.0f} ms")

    def read_sources() -> None:
        assert len(db.session.execute(source_rows(open_lines=True)).all()) == total
        db.session.commit()

    reading = min(rounds(lambda: None, read_sources))
    again = min(rounds(lambda: None, lambda: collect(operations.CollectRun())))
    print(f"  collect_lines again, nothing changed: {again * 1000:.0f} ms, {used[-1]} queries "
          f"({again / reading:.1f}x the baseline)")
    print(f"  baseline, the SELECT of the same sources with their open lines: {reading * 1000:.0f} ms")
    if PROFILE:
        empty_workbench()
        profile_with_queries(queries, "collect_lines, new lines", lambda: operations.collect_lines(now=NOW))
        profile_with_queries(queries, "collect_lines, nothing changed", lambda: operations.collect_lines(now=NOW))


def profile_with_queries(queries: QueryCount, label: str, run: Callable[[], object]) -> None:
    start = queries.statements
    profile = cProfile.Profile()
    profile.runcall(run)
    print(f"  {label} profile ({queries.since(start)} queries), by cumulative time (our code, the ORM's flushes, "
          f"loads and executes):")
    pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(
        r"telerehab/|\(_flush\)|\(_autoflush\)|do_execute|\(execute\)|loading.py|\(_emit_insert|\(_load_for_path\)", 30)


def bench_workbench(db, actor, total: int) -> None:
    """The month's workbench, first page with totals over every line, and "apply to all matching"."""
    from telerehab.billing import operations
    from telerehab.billing.models import BillingLine

    month = operations.Filters(month=MONTH)

    def first_page() -> None:
        shown = operations.workbench(actor, month, now=NOW)
        assert shown.total_lines == total and len(shown.lines) == operations.PAGE_SIZE, shown.total_lines

    def matching() -> None:
        assert len(operations.matching_line_ids(actor, month)) == total

    def plain_queries() -> None:
        of_month = BillingLine.month == MONTH
        db.session.execute(sa.select(BillingLine.status, sa.func.count(), sa.func.sum(BillingLine.units),
                                     sa.func.sum(BillingLine.charge_cents)).where(of_month)
                           .group_by(BillingLine.status)).all()
        db.session.execute(sa.select(BillingLine.__table__).where(of_month).order_by(
            BillingLine.patient_id, BillingLine.service_to, BillingLine.code, BillingLine.id)
            .limit(operations.PAGE_SIZE)).all()
        db.session.commit()

    showing, listing = best_seconds(first_page), best_seconds(matching)
    floor = best_seconds(plain_queries)
    print(f"  workbench, first page of {operations.PAGE_SIZE} with totals over {total}: {showing * 1000:.0f} ms "
          f"({showing / floor:.1f}x the baseline); matching_line_ids: {listing * 1000:.0f} ms")
    print(f"  baseline, the totals GROUP BY status and the page's rows, plain: {floor * 1000:.0f} ms")


def bench(label: str, url: str, storage: str, batch: Batch, claims: list[Claim], writers: float,
          writers_mib: float) -> None:
    from telerehab import create_app
    from telerehab.accounts.operations import Actor
    from telerehab.billing import operations
    from telerehab.billing.models import BillingLine
    from telerehab.extensions import db
    from telerehab.monitoring.models import RtmBillableLine

    app = create_app({"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url, "STORAGE_DIR": storage})
    with app.app_context():
        db.create_all()
        queries = QueryCount(db.engine)
        start = time.perf_counter()
        billing, lines = seed(db, batch, claims)
        actor, total = Actor(billing), len(lines)
        print(f"\n{label}: the sources of {total} lines seeded in {time.perf_counter() - start:.1f} s; "
              f"best of {ROUNDS}")
        bench_collect(db, queries, total)
        # From here on, the lines carry the claims' own charges: the export's baseline writes those.
        db.session.execute(sa.delete(BillingLine))
        db.session.execute(sa.insert(BillingLine), lines)
        db.session.commit()
        analyze(db)
        line_ids = list(db.session.scalars(sa.select(BillingLine.id).order_by(BillingLine.id)))
        bench_workbench(db, actor, total)

        def back_to_ready() -> None:
            db.session.execute(sa.update(BillingLine).values(status="ready"))
            db.session.execute(sa.update(RtmBillableLine).values(status="ready"))
            db.session.commit()

        def approve() -> None:
            result = operations.apply_action(actor, line_ids, "approve", now=NOW)
            assert len(result.changed) == total and not result.refused, result.refused

        approving = min(rounds(back_to_ready, approve))
        print(f"  bulk approve (apply_action): {approving * 1000:.0f} ms, {total / approving:,.0f} lines/s")

        def cancel_previous() -> None:
            for ready in operations.list_batches(actor, month=MONTH):
                if ready.status == "ready":
                    operations.cancel_batch(actor, ready.id, now=NOW)

        creating, exporting = [], []

        def create_then_export() -> None:
            start = time.perf_counter()
            batches = operations.create_batches(actor, MONTH, now=NOW)
            creating.append(time.perf_counter() - start)
            start = time.perf_counter()
            exported = [operations.run_export(queued.id, now=NOW) for queued in batches]
            exporting.append(time.perf_counter() - start)
            assert all(done.status == "ready" for done in exported), [done.error for done in exported]

        whole = min(rounds(cancel_previous, create_then_export))
        print(f"  export (create_batches + run_export): {whole * 1000:.0f} ms, {total / whole:,.0f} lines/s "
              f"({whole / writers:.1f}x the writers alone); of which create_batches {min(creating) * 1000:.0f} ms, "
              f"run_export {min(exporting) * 1000:.0f} ms")
        print(f"  baseline, the writers alone (write_837p + write_claim_csv, same claims in memory): "
              f"{writers * 1000:.0f} ms, {total / writers:,.0f} lines/s")
        cancel_previous()
        queued = operations.create_batches(actor, MONTH, now=NOW)
        tracemalloc.start()
        try:
            exported = [operations.run_export(one.id, now=NOW) for one in queued]
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
        print(f"  peak Python memory of run_export: {peak:.1f} MiB ({peak / writers_mib:.1f}x the writers' "
              f"{writers_mib:.1f} MiB)")
        files = {file_format: [operations.batch_file(actor, one.id, file_format, now=NOW).data for one in exported]
                 for file_format in ("837p", "csv")}

        def download() -> None:
            for file_format, first in files.items():
                again = [operations.batch_file(actor, one.id, file_format, now=NOW).data for one in exported]
                assert again == first, f"{file_format}: the stored file changed between downloads"

        downloading = best_seconds(download)
        size = sum(len(data) for datas in files.values() for data in datas) / 2**20
        print(f"  batch_file again, 837P and CSV ({size:.1f} MiB, the same bytes): {downloading * 1000:.0f} ms")
        for one, data in zip(exported, files["837p"], strict=True):
            text = data.decode("ascii")
            problems = check_837p(text)
            assert not problems, problems[:5]
            print(f"  check_837p on the workbench's 837P: OK ({one.claim_count} claims, {one.line_count} lines)")
            if VALIDATE:
                print(f"  pyx12 validation of the workbench's 837P: {pyx12_seconds(text)}")
        if PROFILE:
            cancel_previous()
            queued = operations.create_batches(actor, MONTH, now=NOW)
            profile = cProfile.Profile()
            profile.runcall(lambda: [operations.run_export(one.id, now=NOW) for one in queued])
            print("  run_export profile, by cumulative time (our code, and the ORM's flushes and executemany):")
            pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(
                r"telerehab/|\(_flush\)|\(_autoflush\)|do_executemany", 25)
        db.session.remove()
        db.engine.dispose()


def main() -> None:
    batch, claims = month_close()
    writers = best_seconds(lambda: (write_837p(batch, claims), write_claim_csv(batch, claims)))
    writers_mib = peak_mib(lambda: (write_837p(batch, claims), write_claim_csv(batch, claims)))
    print(f"Export through the workbench: {sum(len(claim.lines) for claim in claims)} lines of {len(claims)} patients")
    with tempfile.TemporaryDirectory(prefix="telerehab-bench-export-") as folder:
        bench("SQLite", f"sqlite:///{folder}/bench.sqlite3", f"{folder}/sqlite-files", batch, claims, writers,
              writers_mib)
        scratch = postgres_scratch()
        if scratch is not None:
            url, drop = scratch
            try:
                bench("PostgreSQL", url, f"{folder}/postgres-files", batch, claims, writers, writers_mib)
            finally:
                drop()


if __name__ == "__main__":
    main()
