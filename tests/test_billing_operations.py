"""The workbench's use cases on both databases: collection from the engine and from signed visits,
holds, approve and hold in bulk, export batches (the same file again, one live batch per line,
control numbers never reused), corrections, and the command line. Every 837P written here passes
pyx12 and our own checks."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import AuditEntry
from telerehab.accounts.operations import Actor
from telerehab.billing import operations as billing
from telerehab.billing.models import BillingLine, ControlNumber, ExportBatch, ExportBatchLine, Fee
from telerehab.billing.x12 import check_837p
from telerehab.careplans import operations as careplans
from telerehab.errors import Forbidden, NotFound, ValidationFailed
from telerehab.extensions import db
from telerehab.monitoring import operations as monitoring
from telerehab.monitoring.models import RtmBillableLine

from .billing_support import (  # noqa: F401 (an autouse fixture)
    APRIL_2,
    MONTH,
    collected,
    every_837p_written_passes_pyx12,
    ready_for_claims,
    rtm_month,
    signed_visit,
)
from .conftest import episode_data, make_user, patient_data
from .test_checkin_concurrency import THREADS, postgres, run_together, wide_pool_app  # noqa: F401 (fixture)
from .test_monitoring_support import START, add_checkins, days_from
from .x12_support import pyx12_errors


def by_code(lines) -> dict[str, BillingLine]:
    return {line.code: line for line in lines}


def approve_all(world, lines) -> None:
    result = billing.apply_action(Actor(world.billing), [line.id for line in lines], "approve", now=APRIL_2)
    assert result.refused == {}


def export_month(world, **kw) -> list[ExportBatch]:
    batches = billing.create_batches(Actor(world.billing), MONTH, now=APRIL_2, **kw)
    run = billing.run_queued_exports(now=APRIL_2)
    assert run.ready + run.failed == len(batches)
    db.session.expire_all()
    return [db.session.get(ExportBatch, batch.id) for batch in batches]


def file_text(world, batch, file_format="837p") -> str:
    return billing.batch_file(Actor(world.billing), batch.id, file_format, now=APRIL_2).data.decode("ascii")


def assert_valid_837p(text: str) -> None:
    assert pyx12_errors(text) == []
    assert check_837p(text) == []


# ---------------------------------------------------------------- collection


def test_rtm_lines_and_signed_visit_services_come_onto_the_workbench(db, world):
    ready_for_claims(world)
    rtm_month(world)
    signed_visit(world)
    lines = collected()
    assert sorted((line.source, line.code, line.units, line.status) for line in lines) == [
        ("rtm", "98975", 1, "ready"), ("rtm", "98977", 1, "ready"), ("rtm", "98980", 1, "ready"),
        ("rtm", "98981", 1, "ready"), ("visit", "97110", 3, "ready")]
    assert {line.month for line in lines} == {MONTH}
    assert by_code(lines)["98977"].charge_cents == 4_512
    assert by_code(lines)["97110"].charge_cents == 3_000 * by_code(lines)["97110"].units
    assert all(line.holds == [] for line in lines)


def test_collection_twice_changes_nothing(db, world):
    ready_for_claims(world)
    rtm_month(world)
    first = [(line.id, line.status, line.updated_at) for line in collected()]
    run = billing.collect_lines(now=APRIL_2 + timedelta(hours=1))
    assert (run.added, run.refreshed, run.withdrawn) == (0, 0, 0)
    assert [(line.id, line.status, line.updated_at) for line in collected()] == first


def test_an_unsigned_note_brings_no_charge_and_a_missing_cosign_holds_it(db, world):
    ready_for_claims(world)
    signed_visit(world, clinician=world.assistant)
    (line,) = collected()
    assert line.status == "held" and [hold["kind"] for hold in line.holds] == ["note_signature"]
    assert line.rendering_id == world.therapist.id  # billed under the supervising PT


@pytest.mark.parametrize("mend, kind", [
    ("address", "address"), ("fee", "fee"), ("member_id", "member_id"), ("npi", "rendering_npi"),
])
def test_missing_claim_data_holds_the_line_until_mended(db, world, mend, kind):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    if mend == "address":
        world.patient.address_line1 = None
    elif mend == "fee":
        billing.set_fees(Actor(world.billing), "medicare", {"98977": None}, now=APRIL_2)
    elif mend == "member_id":
        world.patient.member_id = None
    else:
        world.therapist.npi = None
    db.session.commit()
    line = by_code(collected())["98977"]
    assert line.status == "held" and kind in [hold["kind"] for hold in line.holds]
    assert all(hold["release"] for hold in line.holds)
    result = billing.apply_action(Actor(world.billing), [line.id], "approve", now=APRIL_2)
    assert line.id in result.refused


def test_an_engine_line_that_stops_being_billable_is_withdrawn_unless_approved(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    device = by_code(collected())["98977"]
    db.session.execute(update(RtmBillableLine).where(RtmBillableLine.id == device.rtm_line_id).values(
        status="not_billable"))
    db.session.commit()
    assert by_code(collected())["98977"].status == "withdrawn"


# ---------------------------------------------------------------- approve, hold, notes


def test_approving_freezes_the_rtm_line_and_a_rerun_never_makes_a_second_one(db, world):
    ready_for_claims(world)
    rtm_month(world)
    lines = collected()
    approve_all(world, lines)
    rtm_statuses = set(db.session.scalars(select(RtmBillableLine.status)))
    assert rtm_statuses == {"approved"}
    add_checkins(world.patient, world.episode, days_from(START + timedelta(days=20), 5))  # late uploads
    monitoring.evaluate(now=APRIL_2 + timedelta(days=1))
    after = collected(APRIL_2 + timedelta(days=1))
    assert len(after) == len(lines) and {line.status for line in after} == {"approved"}
    assert db.session.scalar(select(func.count(RtmBillableLine.id)).where(
        RtmBillableLine.code == "98977")) == 1
    with pytest.raises(IntegrityError):  # the database refuses a second line for the same source
        original = after[0]
        db.session.add(BillingLine(**{column.key: getattr(original, column.key)
                                      for column in BillingLine.__table__.columns if column.key != "id"}))
        db.session.flush()
    db.session.rollback()


def test_hold_needs_a_reason_and_release_returns_the_line_to_ready(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    lines = collected()
    ids = [line.id for line in lines]
    with pytest.raises(ValidationFailed) as refused:
        billing.apply_action(Actor(world.billing), ids, "hold", reason=" ", now=APRIL_2)
    assert "reason" in refused.value.errors
    result = billing.apply_action(Actor(world.billing), ids, "hold", reason="Checking the MBI", now=APRIL_2)
    assert result.changed == sorted(ids)
    db.session.expire_all()
    line = db.session.get(BillingLine, ids[0])
    assert line.status == "held" and line.holds[0]["kind"] == "manual"
    assert collected()[0].status == "held"  # a hand hold survives collection
    billing.apply_action(Actor(world.billing), ids, "release", now=APRIL_2)
    assert {line.status for line in collected()} == {"ready"}
    actions = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.record_type == "billing_line")))
    assert {"hold", "release"} <= actions


def test_an_action_a_line_cannot_take_is_refused_for_that_line_only(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    lines = collected()
    billing.apply_action(Actor(world.billing), [lines[0].id], "approve", now=APRIL_2)
    result = billing.apply_action(Actor(world.billing), [line.id for line in lines] + [999_999], "approve",
                                  now=APRIL_2)
    assert set(result.refused) == {lines[0].id, 999_999}
    assert result.changed == sorted(line.id for line in lines[1:])


def test_notes_are_kept_and_audited(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    line = collected()[0]
    with pytest.raises(ValidationFailed):
        billing.add_note(Actor(world.billing), line.id, "  ", now=APRIL_2)
    billing.add_note(Actor(world.billing), line.id, "Called the MAC", now=APRIL_2)
    evidence = billing.line_evidence(Actor(world.billing), line.id, now=APRIL_2)
    assert [note.text for note in evidence.line.notes] == ["Called the MAC"]
    assert "add_note" in [entry.action for entry in evidence.history]


def test_evidence_of_a_device_line_lists_its_data_days(db, world):
    ready_for_claims(world)
    rtm_month(world)
    lines = by_code(collected())
    device = billing.line_evidence(Actor(world.billing), lines["98977"].id, now=APRIL_2)
    assert [checkin.local_date for checkin in device.data_days] == days_from(START, 20)
    assert [consent.kind for consent in device.consents] == ["rtm"]
    management = billing.line_evidence(Actor(world.billing), lines["98980"].id, now=APRIL_2)
    assert [(entry.minutes, entry.interactive, entry.channel) for entry in management.time_entries] == [
        (45, True, "video")]


# ---------------------------------------------------------------- scope


def test_only_billing_and_admins_of_the_organisation_reach_lines(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    line = collected()[0]
    for user in (world.therapist, world.assistant, world.patient_user):
        with pytest.raises(Forbidden):
            billing.line_evidence(Actor(user), line.id, now=APRIL_2)
    billing.line_evidence(Actor(world.admin), line.id, now=APRIL_2)
    statuses = billing.own_line_statuses(Actor(world.therapist), MONTH, now=APRIL_2)
    assert {line.id for line in statuses} == {line.id for line in collected()}
    assert billing.own_line_statuses(Actor(world.therapist2), MONTH, now=APRIL_2) == []
    with pytest.raises(Forbidden):
        billing.own_line_statuses(Actor(world.billing), MONTH, now=APRIL_2)


def test_a_clinic_bound_biller_sees_no_other_clinics_lines(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    line = collected()[0]
    east_biller = make_user(world.clinic.organisation_id, "eastbiller", "billing", world.other_clinic.id)
    with pytest.raises(NotFound):
        billing.line_evidence(Actor(east_biller), line.id, now=APRIL_2)


# ---------------------------------------------------------------- export


def test_export_writes_a_valid_837p_and_csv_and_marks_the_lines(db, world):
    ready_for_claims(world)
    rtm_month(world)
    signed_visit(world)
    lines = collected()
    approve_all(world, lines)
    (batch,) = export_month(world)
    assert batch.status == "ready" and batch.claim_count == 1 and batch.line_count == len(lines)
    text = file_text(world, batch)
    assert_valid_837p(text)
    assert f"CLM*{batch.reference}-{world.patient.id}*" in text
    total = sum(line.charge_cents for line in lines)
    assert f"*{total // 100}.{total % 100:02d}*" in text
    assert {line.status for line in collected()} == {"exported"}
    assert set(db.session.scalars(select(RtmBillableLine.status))) == {"exported"}
    csv_text = file_text(world, batch, "csv")
    assert csv_text.count("\r\n") == len(lines) + 1


def test_the_same_batch_gives_the_same_file(db, world):
    ready_for_claims(world)
    rtm_month(world)
    approve_all(world, collected())
    (batch,) = export_month(world)
    first = billing.batch_file(Actor(world.billing), batch.id, "837p", now=APRIL_2)
    second = billing.batch_file(Actor(world.billing), batch.id, "837p", now=APRIL_2 + timedelta(days=3))
    assert first.data == second.data and hashlib.sha256(first.data).hexdigest() == batch.x12_sha256
    stored = billing.storage_path(batch, "837p")
    stored.write_bytes(first.data.replace(b"CLM*", b"CLX*"))
    with pytest.raises(ValidationFailed):  # a file changed in storage is not served
        billing.batch_file(Actor(world.billing), batch.id, "837p", now=APRIL_2)
    stored.write_bytes(first.data)


def test_a_line_is_in_one_live_batch_only(db, world):
    ready_for_claims(world)
    rtm_month(world)
    approve_all(world, collected())
    export_month(world)
    with pytest.raises(ValidationFailed):  # nothing approved is left outside a batch
        billing.create_batches(Actor(world.billing), MONTH, now=APRIL_2)
    line_id = db.session.scalar(select(ExportBatchLine.line_id))
    other = ExportBatch(organisation_id=world.clinic.organisation_id, clinic_id=world.clinic.id,
                        payer_type="medicare", month=MONTH, frequency="1", status="queued", line_count=1,
                        total_cents=0, usage="T", created_at=APRIL_2)
    db.session.add(other)
    db.session.flush()
    db.session.add(ExportBatchLine(batch_id=other.id, line_id=line_id, live=True))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_control_numbers_never_repeat_even_after_a_cancelled_batch(db, world):
    ready_for_claims(world)
    rtm_month(world)
    approve_all(world, collected())
    (first,) = export_month(world)
    billing.cancel_batch(Actor(world.billing), first.id, now=APRIL_2)
    assert {line.status for line in collected()} == {"approved"}
    (second,) = export_month(world)
    assert second.interchange_control_number > first.interchange_control_number
    text = file_text(world, second)
    assert re.search(rf"\*{second.interchange_control_number:09d}\*0\*T\*:~", text)
    assert_valid_837p(text)
    assert db.session.scalar(select(func.count(ControlNumber.id))) == 2


def test_a_sent_batch_cannot_be_cancelled(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    approve_all(world, collected())
    (batch,) = export_month(world)
    billing.mark_batch_submitted(Actor(world.billing), batch.id, now=APRIL_2)
    assert {line.status for line in collected()} == {"submitted"}
    with pytest.raises(ValidationFailed):
        billing.cancel_batch(Actor(world.billing), batch.id, now=APRIL_2)


def test_claim_data_the_file_cannot_carry_fails_the_batch_naming_the_field(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    approve_all(world, collected())
    world.patient.city = "X"  # too short for N402
    db.session.commit()
    (batch,) = export_month(world)
    assert batch.status == "failed" and "city" in batch.error_field
    assert not db.session.scalar(select(func.count(ExportBatchLine.id)).where(ExportBatchLine.live))
    world.patient.city = "Chicago"
    db.session.commit()
    (again,) = export_month(world)
    assert again.status == "ready"


def test_export_refuses_without_claim_settings(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    approve_all(world, collected())
    billing.set_claim_settings(Actor(world.billing), "medicare", {"receiver_id": ""}, now=APRIL_2)
    with pytest.raises(ValidationFailed) as refused:
        billing.create_batches(Actor(world.billing), MONTH, now=APRIL_2)
    assert "receiver id" in str(refused.value)


# ---------------------------------------------------------------- corrections


@pytest.mark.parametrize("kind, frequency", [("replace", "7"), ("void", "8")])
def test_corrections_reference_the_payer_claim_number(db, world, kind, frequency):
    ready_for_claims(world)
    rtm_month(world)
    lines = collected()
    approve_all(world, lines)
    (batch,) = export_month(world)
    billing.mark_batch_submitted(Actor(world.billing), batch.id, now=APRIL_2)
    claim_number = collected()[0].claim_number
    dropped = by_code(lines)["98981"].id
    correction = billing.correct_claim(
        Actor(world.billing), claim_number, kind, payer_claim_number="ICN-2026-0001",
        remove_line_ids=[dropped] if kind == "replace" else [], now=APRIL_2)
    billing.run_queued_exports(now=APRIL_2)
    db.session.expire_all()
    correction = db.session.get(ExportBatch, correction.id)
    text = file_text(world, correction)
    assert_valid_837p(text)
    assert f":B:{frequency}*" in text and "REF*F8*ICN-2026-0001~" in text
    statuses = {line.code: line.status for line in collected()}
    if kind == "void":
        assert set(statuses.values()) == {"void"}
    else:
        assert statuses.pop("98981") == "void" and set(statuses.values()) == {"exported"}
        assert "98981" not in text


def test_a_correction_needs_the_payer_claim_number(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    approve_all(world, collected())
    export_month(world)
    with pytest.raises(ValidationFailed) as refused:
        billing.correct_claim(Actor(world.billing), collected()[0].claim_number, "void", payer_claim_number="",
                              now=APRIL_2)
    assert "payer_claim_number" in refused.value.errors


# ---------------------------------------------------------------- command line


def test_flask_claims_export_writes_the_month_then_the_same_batch_again(app, db, world, tmp_path):
    ready_for_claims(world)
    rtm_month(world)
    approve_all(world, collected())
    runner = app.test_cli_runner()
    out = tmp_path / "march.837p"
    result = runner.invoke(args=["claims", "export", "--month", MONTH, "--format", "837p", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert_valid_837p(out.read_text())
    batch_id = db.session.scalar(select(ExportBatch.id))
    again = runner.invoke(args=["claims", "export", "--month", MONTH, "--format", "837p", "--output",
                                str(tmp_path / "again.837p"), "--batch", str(batch_id)])
    assert again.exit_code == 0 and (tmp_path / "again.837p").read_bytes() == out.read_bytes()
    nothing = runner.invoke(args=["claims", "export", "--month", MONTH, "--format", "csv", "--output",
                                  str(tmp_path / "x.csv")])
    assert nothing.exit_code != 0 and "No approved lines" in nothing.output
    bad = runner.invoke(args=["claims", "export", "--month", "2026-13", "--format", "csv", "--output",
                              str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output


def test_simultaneous_exports_of_a_month_batch_each_line_once(postgres, world):  # noqa: F811
    """PostgreSQL: 20 billers export the same month at once; the unique live-line index lets one
    batch take the lines and the others are told why, never a 500 and never a line twice."""
    ready_for_claims(world)
    rtm_month(world)
    approve_all(world, collected())
    user_id = world.billing.id
    with wide_pool_app(postgres) as app:
        def export():
            with app.app_context():
                from telerehab.accounts.models import User

                try:
                    return len(billing.create_batches(Actor(db.session.get(User, user_id)), MONTH, now=APRIL_2))
                except ValidationFailed:
                    return 0

        outcomes = run_together(export)
    assert sorted(outcomes) == [0] * (THREADS - 1) + [1]
    assert postgres.session.scalar(select(func.count(ExportBatchLine.id)).where(ExportBatchLine.live)) == len(
        collected())


# ---------------------------------------------------------------- the batch lifecycle's edges


@pytest.mark.parametrize("action", ["hold", "unapprove"])
def test_a_line_in_a_queued_batch_is_not_taken_back_under_it(db, world, action):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    lines = collected()
    approve_all(world, lines)
    (batch,) = billing.create_batches(Actor(world.billing), MONTH, now=APRIL_2)
    result = billing.apply_action(Actor(world.billing), [lines[0].id], action, reason="check", now=APRIL_2)
    assert result.refused == {lines[0].id: f"Line is in export batch {batch.reference}: cancel the batch first."}
    billing.run_queued_exports(now=APRIL_2)
    assert {line.status for line in collected()} == {"exported"}


def test_an_export_whose_lines_changed_meanwhile_fails_and_frees_them(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    lines = collected()
    approve_all(world, lines)
    (batch,) = billing.create_batches(Actor(world.billing), MONTH, now=APRIL_2)
    db.session.execute(update(BillingLine).where(BillingLine.id == lines[0].id).values(status="ready"))
    db.session.commit()
    billing.run_queued_exports(now=APRIL_2)
    db.session.expire_all()
    assert db.session.get(ExportBatch, batch.id).status == "failed"
    assert "no longer approved" in db.session.get(ExportBatch, batch.id).error
    assert not db.session.scalar(select(func.count(ExportBatchLine.id)).where(ExportBatchLine.live))


def test_cancelling_an_old_failed_batch_leaves_the_lines_in_their_new_batch(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    approve_all(world, collected())
    world.patient.city = "X"
    db.session.commit()
    (failed,) = export_month(world)
    world.patient.city = "Chicago"
    db.session.commit()
    (second,) = export_month(world)
    billing.cancel_batch(Actor(world.billing), failed.id, now=APRIL_2)
    lines = collected()
    assert {line.status for line in lines} == {"exported"}
    assert {line.claim_number for line in lines} == {f"{second.reference}-{world.patient.id}"}


def test_a_corrected_batch_is_not_cancelled_and_a_claim_takes_one_correction_at_a_time(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    approve_all(world, collected())
    (batch,) = export_month(world)
    billing.mark_batch_submitted(Actor(world.billing), batch.id, now=APRIL_2)
    claim = collected()[0].claim_number
    billing.correct_claim(Actor(world.billing), claim, "replace", payer_claim_number="ICN1", now=APRIL_2)
    with pytest.raises(ValidationFailed) as refused:
        billing.correct_claim(Actor(world.billing), claim, "void", payer_claim_number="ICN1", now=APRIL_2)
    assert "still writing a correction" in str(refused.value)
    billing.run_queued_exports(now=APRIL_2)
    with pytest.raises(ValidationFailed):
        billing.cancel_batch(Actor(world.billing), batch.id, now=APRIL_2)
    with pytest.raises(NotFound):  # the claim now goes by the replacement's number
        billing.correct_claim(Actor(world.billing), claim, "void", payer_claim_number="ICN1", now=APRIL_2)


def test_an_export_that_crashes_fails_its_batch_and_a_stale_one_is_written_again(db, world, monkeypatch):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    approve_all(world, collected())

    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(billing, "_write_file", full_disk)
    (batch,) = export_month(world)
    assert batch.status == "failed" and "OSError" in batch.error
    assert {line.status for line in collected()} == {"approved"}
    monkeypatch.undo()
    (again,) = billing.create_batches(Actor(world.billing), MONTH, now=APRIL_2)
    db.session.execute(update(ExportBatch).where(ExportBatch.id == again.id).values(
        status="running", started_at=APRIL_2 - timedelta(hours=1)))  # its runner was killed
    db.session.commit()
    assert billing.run_queued_exports(now=APRIL_2).ready == 1


def test_a_cancelled_batch_is_never_served_and_a_downloaded_one_is_cancelled_only_if_not_sent(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    approve_all(world, collected())
    (batch,) = export_month(world)
    file_text(world, batch)  # downloaded
    with pytest.raises(ValidationFailed) as refused:
        billing.cancel_batch(Actor(world.billing), batch.id, now=APRIL_2)
    assert "not_sent" in refused.value.errors
    billing.cancel_batch(Actor(world.billing), batch.id, not_sent=True, now=APRIL_2)
    with pytest.raises(ValidationFailed):
        file_text(world, batch)


def test_collection_never_overwrites_a_change_billing_made_after_it_read_the_line(db, world, monkeypatch):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    device = by_code(collected())["98977"]
    db.session.execute(update(Fee).where(Fee.code == "98977").values(amount_cents=5_000))  # the line will change
    db.session.commit()
    held_meanwhile = []
    real_line_holds = billing.line_holds

    def hold_while_collecting(facts):
        if not held_meanwhile:  # a clerk holds the line between the read and the write
            db.session.execute(update(BillingLine).where(BillingLine.id == device.id).values(
                status="held", manual_hold="Asking the patient"))
            held_meanwhile.append(True)
        return real_line_holds(facts)

    monkeypatch.setattr(billing, "line_holds", hold_while_collecting)
    billing.collect_lines(now=APRIL_2)
    db.session.expire_all()
    line = db.session.get(BillingLine, device.id)
    assert (line.status, line.manual_hold, line.charge_cents) == ("held", "Asking the patient", 4_512)
    monkeypatch.undo()
    line = by_code(collected())["98977"]  # the next run refreshes it, keeping the hold
    assert (line.status, line.charge_cents) == ("held", 5_000) and line.holds[0]["kind"] == "manual"


def test_flask_claims_export_saves_the_batches_written_and_names_the_one_that_failed(app, db, world, tmp_path):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    commercial = accounts.create_patient(Actor(world.therapist), patient_data(
        first_name="Cy", payer_type="commercial", payer_name="Acme", member_id="ACME123", address_line1="1 Elm St",
        city="X", state="IL", postal_code="60601"), now=APRIL_2)  # a one-letter city no claim can carry
    ready_for_claims(world, patients=[world.patient], payer_type="commercial")
    episode = careplans.create_episode(Actor(world.therapist), commercial.id, episode_data(), now=APRIL_2)
    rtm_month(world, episode=episode, patient=commercial, minutes=0)
    approve_all(world, collected())
    out = tmp_path / "march.csv"
    result = app.test_cli_runner().invoke(args=["claims", "export", "--month", MONTH, "--format", "csv",
                                                "--output", str(out)])
    assert result.exit_code == 1
    written = sorted(tmp_path.glob("march-TR*.csv"))
    assert len(written) == 1 and "medicare" in result.output
    assert "(commercial) failed" in result.output and "city" in result.output


def test_collection_writes_each_line_it_brings_in_refreshes_or_withdraws_to_the_audit_log(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    lines = collected()
    world.patient.address_line1 = None  # now held for its address
    db.session.commit()
    collected()
    device = by_code(lines)["98977"]
    db.session.execute(update(RtmBillableLine).where(RtmBillableLine.id == device.rtm_line_id).values(
        status="not_billable"))
    db.session.commit()
    collected()
    entries = db.session.execute(select(AuditEntry.action, AuditEntry.detail).where(
        AuditEntry.record_type == "billing_line", AuditEntry.record_id == device.id,
        AuditEntry.actor_id.is_(None)).order_by(AuditEntry.id)).all()
    assert entries == [("collect", "status=ready"), ("refresh", "status=held"),
                       ("withdraw", "the engine no longer bills it")]


def test_a_batch_is_marked_submitted_once(db, world):
    ready_for_claims(world)
    rtm_month(world, minutes=0)
    approve_all(world, collected())
    (batch,) = export_month(world)
    billing.mark_batch_submitted(Actor(world.billing), batch.id, now=APRIL_2)
    with pytest.raises(ValidationFailed) as refused:
        billing.mark_batch_submitted(Actor(world.billing), batch.id, now=APRIL_2)
    assert "marked submitted already" in str(refused.value)
