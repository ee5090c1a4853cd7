"""The demo practice that `make run` loads: it must load on both databases, once, and show every
part of the product with data (hybrid visits, measures at clinic and video visits, RTM lines)."""

from __future__ import annotations

from sqlalchemy import func, select

from telerehab.assessments.models import AssessmentResult
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
