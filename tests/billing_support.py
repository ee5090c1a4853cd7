"""Building billing worlds through the real paths: RTM lines from the engine, visit charges from a
completed visit with a signed note, then the workbench's collection."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from telerehab.accounts.operations import Actor
from telerehab.billing import operations as billing
from telerehab.billing.models import BillingLine
from telerehab.billing.x12 import check_837p
from telerehab.careplans import operations as careplans
from telerehab.extensions import db
from telerehab.monitoring import operations as monitoring

from .conftest import NOW
from .test_monitoring_support import START, add_checkins, days_from, enrol
from .test_visit_operations import visit_data
from .x12_support import pyx12_errors

APRIL_2 = NOW.replace(month=4, day=2)  # March's month and first period have closed
MONTH = "2026-03"
FEES = {"98975": 2_031, "98985": 4_008, "98977": 4_512, "98979": 2_600, "98980": 5_411, "98981": 4_175,
        "97110": 3_000, "97140": 2_850}
CLAIM_SETTINGS = {
    "claim_payer_name": "Medicare Part B IL", "claim_payer_id": "06102", "submitter_name": "Riverbend PT",
    "submitter_id": "RIVERBEND01", "submitter_contact_name": "Blair Biller", "submitter_contact_phone": "3125550100",
    "receiver_name": "Clearing House", "receiver_id": "CLEAR01", "claim_usage": "T",
}
ADDRESS = {"address_line1": "12 Oak St", "city": "Chicago", "state": "IL", "postal_code": "60601"}


def with_address(*patients) -> None:
    for patient in patients:
        for name, value in ADDRESS.items():
            setattr(patient, name, value)
    db.session.commit()


def ready_for_claims(world, patients=None, payer_type: str = "medicare", *, fees=FEES,
                     claim_settings=CLAIM_SETTINGS) -> None:
    """Fees, claim settings (None: none yet) and home addresses: what the practice sets up once."""
    if claim_settings is not None:
        billing.set_claim_settings(Actor(world.billing), payer_type, claim_settings, now=NOW)
    billing.set_fees(Actor(world.billing), payer_type, fees, now=NOW)
    world.clinic.postal_code = "606011234"  # a billing provider's ZIP is ZIP+4 on an 837P
    with_address(*(patients or [world.patient]))


def rtm_month(world, *, episode=None, patient=None, data_days: int = 20, minutes: int = 45,
              activity: str = "video", channel: str = "video") -> None:
    """An enrolment with `data_days` check-ins from March 2 and `minutes` of interactive management in
    March (`activity` on `channel`), evaluated on April 2: 98975, a device code, 98980 (+98981 per
    further 20 minutes)."""
    episode = episode or world.episode
    patient = patient or world.patient
    enrol(world, episode=episode)
    add_checkins(patient, episode, days_from(START, data_days))
    if minutes:
        monitoring.record_management_time(Actor(world.therapist), episode.id, {
            "service_date": "2026-03-10", "minutes": minutes, "activity": activity, "interactive": True,
            "channel": channel}, now=APRIL_2)
    monitoring.evaluate(now=APRIL_2)


def signed_visit(world, *, day_offset: int = 1, modality: str = "in_clinic", clinician=None,
                 services=({"cpt_code": "97110", "minutes": 38},), note: str = "Knee better"):
    """A completed visit with its services and a signed note (the charges are locked with it)."""
    clinician = clinician or world.therapist
    visit = careplans.schedule_visit(Actor(world.therapist), world.episode.id, visit_data(
        day_offset, modality=modality, clinician_id=clinician.id), now=NOW)
    for status in ("checked_in", "in_progress", "completed"):
        careplans.change_visit_status(Actor(world.therapist), visit.id, status, now=NOW)
    careplans.set_services(Actor(clinician), visit.id, [dict(s) for s in services], now=NOW)
    careplans.save_note(Actor(clinician), visit.id, {"subjective": note, "plan": "Progress"}, now=NOW)
    careplans.sign_note(Actor(clinician), visit.id, now=NOW)
    return visit


def collected(now=APRIL_2) -> list[BillingLine]:
    billing.collect_lines(now=now)
    db.session.expire_all()
    return list(db.session.scalars(select(BillingLine).order_by(BillingLine.service_to, BillingLine.code,
                                                                BillingLine.id)))


@pytest.fixture(autouse=True)
def every_837p_written_passes_pyx12(app):
    """Imported by each billing test module: after each test, every 837P the export wrote (or
    rewrote) during it is validated by pyx12 and by our own checks."""
    exports = Path(app.config["STORAGE_DIR"]) / "exports"

    def stamps() -> dict[Path, int]:
        return {path: path.stat().st_mtime_ns for path in exports.rglob("*.x12")}

    before = stamps()
    yield
    for path, stamp in stamps().items():
        if before.get(path) != stamp:
            text = path.read_text()
            assert pyx12_errors(text) == [], path
            assert check_837p(text) == [], path
