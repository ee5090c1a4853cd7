"""Helpers shared by the RTM tests: consent, enrolment, check-ins written in bulk."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.exercises.models import CheckIn
from telerehab.extensions import db
from telerehab.monitoring import operations as monitoring
from telerehab.monitoring.models import RtmBillableLine

from .conftest import NOW

START = date(2026, 3, 2)  # the world's episode starts then; period 1 is Mar 2 - Mar 31


def rtm_consent(world, patient=None, therapist=None):
    patient = patient or world.patient
    return accounts.record_consent(Actor(therapist or world.therapist), patient.id, "rtm", method="written",
                                   note=None, now=NOW)


def enrol(world, *, episode=None, therapist=None, setup=True, now=NOW, **overrides):
    episode = episode or world.episode
    therapist = therapist or world.therapist
    rtm_consent(world, episode.patient, therapist)
    data = {"monitored_system": "musculoskeletal", "device_name": "telerehab app", "monitoring_start": START,
            "cost_sharing_notice_shown_at": NOW, **overrides}
    if setup:
        data.update(setup_date=START, setup_minutes=30, setup_by_id=therapist.id)
    return monitoring.enrol(Actor(therapist), episode.id, data, now=now)


def add_checkins(patient, episode, days: list[date], *, pain: int | None = 3, hour: int = 12,
                 self_reported: bool = True) -> None:
    """Check-ins written straight to the table (the check-in path has its own tests)."""
    zone = ZoneInfo(patient.timezone)
    db.session.execute(insert(CheckIn), [{
        "client_id": uuid.uuid4(), "patient_id": patient.id, "episode_id": episode.id,
        "recorded_at": datetime.combine(day, time(hour), zone).astimezone(UTC),
        "received_at": datetime.combine(day, time(hour), zone).astimezone(UTC), "local_date": day,
        "timezone": patient.timezone, "source": "web", "pain": pain, "self_reported": self_reported,
    } for day in days])
    db.session.commit()


def days_from(first: date, count: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(count)]


def lines() -> list[RtmBillableLine]:
    db.session.expire_all()
    return list(db.session.scalars(select(RtmBillableLine).order_by(
        RtmBillableLine.episode_id, RtmBillableLine.period_start, RtmBillableLine.slot)))


def line_content() -> list[tuple]:
    """What a line says, without the row's own ids and timestamps."""
    return [(line.episode_id, line.slot, line.period_key, line.code, line.units, line.modifiers, line.service_date,
             line.status, line.reason, line.evidence) for line in lines()]
