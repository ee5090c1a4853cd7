"""The demo practice that `make run` loads: it must load on both databases, once, and show every
part of the product with data (hybrid visits, measures at clinic and video visits, RTM lines)."""

from __future__ import annotations

from sqlalchemy import func, select

from telerehab.accounts.models import Patient
from telerehab.accounts.rules import ADDRESS_FIELDS
from telerehab.accounts.schemas import PatientWriteSchema
from telerehab.assessments.models import AssessmentResult
from telerehab.billing.models import Fee
from telerehab.billing.operations import CLAIM_SETTING_FIELDS
from telerehab.billing.rules import (
    DEVICE_CODES,
    MANAGEMENT_EACH_20,
    MANAGEMENT_FIRST_10,
    MANAGEMENT_FIRST_20,
    SETUP_CODE,
    MonitoredSystem,
)
from telerehab.billing.schemas import ClaimSettingsSchema
from telerehab.careplans.models import PayerSettings, ServiceLine
from telerehab.demo import load_demo
from telerehab.exercises.models import CheckIn
from telerehab.monitoring.models import RtmBillableLine, RtmEnrolment

from .conftest import NOW


def test_the_demo_loads_once_with_data_for_every_part(db):
    logins = load_demo(patient_count=8, now=NOW)
    assert {"admin", "billing", "therapist", "assistant", "patient1"} <= {username for username, _ in logins}
    assert load_demo(patient_count=8, now=NOW) is None  # a second run changes nothing

    modalities = set(db.session.scalars(select(AssessmentResult.modality).distinct()))
    assert modalities == {"in_clinic", "video"}
    enrolments = db.session.scalar(select(func.count()).select_from(RtmEnrolment))
    assert enrolments >= 5
    assert db.session.scalar(select(func.count()).select_from(CheckIn)) > 5 * enrolments
    codes = set(db.session.scalars(select(RtmBillableLine.code).where(RtmBillableLine.status == "ready")))
    assert "98975" in codes and codes & {"98977", "98985"}


RTM_CODES = {SETUP_CODE, *DEVICE_CODES[MonitoredSystem.MUSCULOSKELETAL], MANAGEMENT_FIRST_10, MANAGEMENT_FIRST_20,
             MANAGEMENT_EACH_20}


def test_the_demo_can_close_a_month_of_billing(db):
    """Every patient has a home address, and both payer types have claim settings and fees, so
    billing staff can approve and export the demo's lines without setting anything up first."""
    load_demo(patient_count=8, now=NOW)
    patients = list(db.session.scalars(select(Patient)))
    assert len(patients) == 8
    for patient in patients:
        address = {name: getattr(patient, name) for name in ADDRESS_FIELDS}
        PatientWriteSchema(partial=True).load(address)  # what a staff member could have typed
        assert (patient.city, patient.state) == (patient.clinic.city, patient.clinic.state)
        assert len(patient.postal_code) in (5, 9)
    assert {len(p.postal_code) for p in patients} == {5, 9}

    settings = {row.payer_type: row for row in db.session.scalars(select(PayerSettings))}
    assert {"medicare", "commercial"} <= set(settings)
    for payer_type in ("medicare", "commercial"):
        row = settings[payer_type]
        values = {name: getattr(row, name) for name in CLAIM_SETTING_FIELDS}
        assert all(values.values()), values
        assert ClaimSettingsSchema().load(values) == values  # as the settings page would accept them
        assert row.claim_usage == "T"

    fees = {(fee.payer_type, fee.code): fee.amount_cents for fee in db.session.scalars(select(Fee))}
    visit_codes = set(db.session.scalars(select(ServiceLine.cpt_code).distinct()))
    for payer_type in ("medicare", "commercial"):
        assert RTM_CODES | visit_codes <= {code for payer, code in fees if payer == payer_type}
    assert 4000 <= fees["medicare", "98977"] <= 5000 and 4500 <= fees["medicare", "98980"] <= 5500
    assert 2500 <= fees["medicare", "97110"] <= 3500
    assert all(fees["commercial", code] >= fees["medicare", code] for payer, code in fees if payer == "medicare")
