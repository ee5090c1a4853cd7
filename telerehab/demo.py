"""Demo data for `flask seed-demo`: one practice, two clinics, staff of every role, 30 patients.

Every name, number and identifier here is made up; NPIs and MBIs are well-formed but fictional.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import Organisation
from telerehab.accounts.operations import SYSTEM, Actor
from telerehab.accounts.rules import npi_check_digit
from telerehab.assessments import operations as assessments
from telerehab.billing import operations as billing
from telerehab.billing.rules import (
    DEVICE_CODES,
    MANAGEMENT_EACH_20,
    MANAGEMENT_FIRST_10,
    MANAGEMENT_FIRST_20,
    SETUP_CODE,
    MonitoredSystem,
)
from telerehab.careplans import operations as careplans
from telerehab.careplans.rules import last_certifiable_day
from telerehab.exercises import operations as exercises
from telerehab.monitoring import operations as monitoring

DEMO_ORGANISATION = "Riverbend Physical Therapy"
DEMO_PASSWORD = "demo-password-2026"

_CLINICS = [
    dict(name="Riverbend Downtown", timezone="America/Chicago", address_line1="120 Lake Street",
         city="Chicago", state="IL", postal_code="60601", phone="+13125550100", tin="361234567"),
    dict(name="Riverbend Eastside", timezone="America/New_York", address_line1="48 Harbor Road",
         city="Boston", state="MA", postal_code="02110", phone="+16175550100", tin="361234567"),
]
_STAFF = [  # username, full name, role, clinic index (None: organisation-wide)
    ("admin", "Alex Admin", "admin", None),
    ("billing", "Blair Biller", "billing", None),
    ("therapist", "Dr. Taylor Reed, PT", "therapist", 0),
    ("therapist2", "Dr. Morgan Lee, PT", "therapist", 0),
    ("therapist3", "Dr. Jordan Park, PT", "therapist", 1),
    ("assistant", "Casey Diaz, PTA", "assistant", 0),
]
_FIRST = ["Ana", "Ben", "Carla", "Dev", "Elena", "Frank", "Grace", "Hiro", "Ines", "Jamal", "Kara",
          "Luis", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tara"]
_LAST = ["Alvarez", "Brooks", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
         "Jensen", "Kowalski", "Lopez", "Murphy", "Nguyen", "Okafor", "Patel"]
_EPISODES = [
    ("Right knee osteoarthritis", ["M17.11", "M25.561"], "Climb 12 stairs with one rail, pain under 3/10"),
    ("Left rotator cuff tendinopathy", ["M75.112"], "Reach the top shelf with the left arm without pain"),
    ("Low back pain", ["M54.50"], "Sit for 60 minutes at work with pain under 2/10"),
    ("After right total knee replacement", ["Z96.651", "M25.661"], "Knee flexion of 115 degrees"),
    ("Left ankle sprain", ["S93.402A"], "Single-leg stance 30 seconds on the left"),
    ("Neck pain", ["M54.2"], "Turn the head fully to check traffic while driving"),
]
_ALPHA = "ACDEFGHJKMNPQRTUVWXY"
# Home streets and ZIP codes near each clinic (by its state), for the patients' addresses on claims.
_HOME_AREAS = {
    "IL": (["N Clark St", "W Belmont Ave", "N Milwaukee Ave", "S Halsted St", "W Addison St", "N Lincoln Ave"],
           ["60614", "60618", "60625", "60640", "60647", "60657"]),
    "MA": (["Tremont St", "Beacon St", "Dorchester Ave", "Centre St", "Columbus Ave", "Boylston St"],
           ["02115", "02116", "02118", "02127", "02130", "02135"]),
}
# What the claims of each payer type carry (837P): the payer, the practice as submitter, and the
# clearinghouse that receives the files. Test interchanges (T) until the practice goes live.
_SUBMITTER = dict(submitter_name="Riverbend Physical Therapy", submitter_id="RIVERBENDPT01",
                  submitter_contact_name="Blair Biller", submitter_contact_phone="3125550100",
                  receiver_name="Lakeshore Claims Exchange", receiver_id="LAKESHORECX", claim_usage="T")
_CLAIM_PAYERS = {
    "medicare": dict(claim_payer_name="Medicare Part B IL", claim_payer_id="06102"),
    "commercial": dict(claim_payer_name="Blue Cross", claim_payer_id="BCBS1"),
}
# The fee schedule, per unit in cents (2026): every RTM code the engine bills for musculoskeletal
# monitoring, and the PT evaluation and treatment codes of a visit. Commercial pays above Medicare.
_MEDICARE_FEES = {
    SETUP_CODE: 2200, **dict(zip(DEVICE_CODES[MonitoredSystem.MUSCULOSKELETAL], (2300, 4500), strict=True)),
    MANAGEMENT_FIRST_10: 2600, MANAGEMENT_FIRST_20: 5000, MANAGEMENT_EACH_20: 4000,
    "97161": 10500, "97162": 10500, "97163": 10500, "97164": 7200,
    "97110": 3000, "97112": 3500, "97116": 3000, "97140": 2800, "97530": 3600, "97535": 3300,
}
_FEES = {"medicare": _MEDICARE_FEES,
         "commercial": {code: amount * 5 // 4 for code, amount in _MEDICARE_FEES.items()}}


def fake_npi(rng: random.Random) -> str:
    first_nine = "1" + "".join(rng.choice("0123456789") for _ in range(8))
    return first_nine + str(npi_check_digit(first_nine))


def fake_mbi(rng: random.Random) -> str:
    a, d = (lambda: rng.choice(_ALPHA)), (lambda: rng.choice("0123456789"))
    return f"{rng.choice('123456789')}{a()}{a()}{d()}{a()}{a()}{d()}{a()}{a()}{d()}{d()}"


def home_address(clinic, index: int, rng: random.Random) -> dict[str, str | None]:
    """A plausible home in the clinic's city: some with an apartment, some with ZIP+4."""
    streets, zip_codes = _HOME_AREAS[clinic.state]
    zip_code = rng.choice(zip_codes)
    return {
        "address_line1": f"{rng.randrange(100, 5000)} {rng.choice(streets)}",
        "address_line2": f"Apt {rng.randrange(1, 30)}{rng.choice('ABCD')}" if index % 4 == 1 else None,
        "city": clinic.city, "state": clinic.state,
        "postal_code": f"{zip_code}{rng.randrange(10_000):04d}" if index % 2 else zip_code,
    }


def load_demo(*, patient_count: int, now: datetime) -> list[tuple[str, str]] | None:
    """Create the demo practice; returns (username, role) of each login, or None if present."""
    from telerehab.extensions import db

    if db.session.scalar(select(Organisation.id).where(Organisation.name == DEMO_ORGANISATION)):
        return None
    rng = random.Random(2026)
    organisation = accounts.create_organisation(DEMO_ORGANISATION)
    clinics = [
        accounts.create_clinic(SYSTEM, {**c, "organisation_id": organisation.id, "npi": fake_npi(rng)}, now=now)
        for c in _CLINICS
    ]
    users = {}
    for username, full_name, role, clinic_index in _STAFF:
        users[username] = accounts.create_user(SYSTEM, {
            "organisation_id": organisation.id, "username": username, "full_name": full_name,
            "role": role, "clinic_id": clinics[clinic_index].id if clinic_index is not None else None,
            "npi": fake_npi(rng) if role == "therapist" else None, "password": DEMO_PASSWORD,
        }, now=now)
    therapists_by_clinic = {c.id: [u for u in users.values() if u.role == "therapist" and u.clinic_id == c.id]
                            for c in clinics}
    logins = [(u, r) for u, _, r, _ in _STAFF]
    for payer_type, payer in _CLAIM_PAYERS.items():
        billing.set_claim_settings(Actor(users["billing"]), payer_type, {**payer, **_SUBMITTER}, now=now)
        billing.set_fees(Actor(users["billing"]), payer_type, _FEES[payer_type], now=now)
    addresses = random.Random(7)  # its own stream: the draws below stay those the demo always had
    today = now.date()
    for index in range(patient_count):
        clinic = clinics[index % len(clinics)]
        therapist = rng.choice(therapists_by_clinic[clinic.id])
        medicare = index % 3 != 2
        patient = accounts.create_patient(Actor(therapist), {
            "first_name": _FIRST[index % len(_FIRST)], "last_name": _LAST[index % len(_LAST)],
            "date_of_birth": date(1940 + rng.randrange(45), rng.randrange(1, 13), rng.randrange(1, 29)),
            "sex": rng.choice("FM"), "phone": f"+1{'312' if clinic.state == 'IL' else '617'}555{index:04d}",
            "email": f"patient{index + 1}@example.org", "timezone": clinic.timezone,
            "preferred_language": "es" if index % 7 == 0 else "en", "clinic_id": clinic.id,
            "primary_therapist_id": therapist.id,
            "payer_type": "medicare" if medicare else "commercial",
            "payer_name": "Medicare Part B" if medicare else "Blue Cross",
            "member_id": fake_mbi(rng) if medicare else f"XJH{rng.randrange(10**8):08d}",
            **home_address(clinic, index, addresses),
        }, now=now)
        title, codes, goal = _EPISODES[index % len(_EPISODES)]
        start = today - timedelta(days=rng.randrange(0, 80))
        # Consent is given at the evaluation, before the first visit or data day it covers.
        consented = datetime.combine(start, time(8), ZoneInfo(clinic.timezone))
        for kind in ("telehealth", "rtm", "sms"):
            accounts.record_consent(Actor(therapist), patient.id, kind, method="written", note=None, now=consented)
        discharged = index % 10 == 9
        episode = careplans.create_episode(Actor(therapist), patient.id, {
            "title": title, "start_date": start, "frequency_per_week": rng.choice([2, 2, 3]),
            "duration_weeks": rng.choice([6, 8, 12]), "diagnoses": codes,
            "goals": [{"description": goal, "target_date": start + timedelta(weeks=8)}],
            "certification_start": start, "certification_end": last_certifiable_day(start),
            "certifying_physician_name": "Dr. Robin Hale, MD", "certifying_physician_npi": fake_npi(rng),
            # One plan in eight still waits for the physician's signature: its Medicare lines are held.
            "certification_signed_on": None if index % 8 == 4 else start + timedelta(days=rng.randrange(1, 20)),
            "status": "discharged" if discharged else "active",
            "discharge_date": today if discharged else None,
            "discharge_reason": "goals_met" if discharged else None,
            "plan_notes": "Impairments in strength and range of motion limit function; "
                          "hybrid plan: evaluation in clinic, then alternating clinic and video.",
        }, now=now)
        if not discharged and index < 16:
            _plan_hybrid_visits(Actor(therapist), episode, now=now)
            _monitor_home_exercise(Actor(therapist), episode, rng, now=now)
        if index < 3:
            username = f"patient{index + 1}"
            accounts.give_portal_access(Actor(therapist), patient.id, username, DEMO_PASSWORD, now=now)
            logins.append((username, "patient"))
    monitoring.evaluate(now=now)
    monitoring.raise_alerts(now=now)
    # Billing staff find last month's RTM lines and visit charges on the workbench at once.
    billing.collect_lines(now=now)
    return logins


def _monitor_home_exercise(actor: Actor, episode, rng: random.Random, *, now: datetime) -> None:
    """A home programme, RTM from the start of the episode, the patient's check-ins on most days
    (fewer for some patients, so that the triage inbox has someone at risk) and the therapist's
    management time: the data the RTM engine counts."""
    zone = ZoneInfo(episode.patient.timezone)
    start_at = datetime.combine(episode.start_date, time(8), zone).astimezone(UTC)
    exercises.create_program_version(actor, episode.id, {"items": [
        {"exercise_key": key} for key in ("glute-bridge", "heel-raise", "quad-set")]}, now=start_at)
    monitoring.enrol(actor, episode.id, {
        "device_name": "telerehab web and SMS check-ins", "cost_sharing_notice_shown_at": start_at,
        "monitoring_start": episode.start_date, "baseline_pain": 5, "setup_date": episode.start_date,
        "setup_minutes": 20, "setup_by_id": actor.user.id}, now=start_at)
    diligence = rng.choice([0.9, 0.8, 0.6, 0.35])
    day = episode.start_date
    while day < now.astimezone(zone).date():
        if rng.random() < diligence:
            recorded = datetime.combine(day, time(18, rng.randrange(60)), zone).astimezone(UTC)
            # Sent by the patient (a verified text, here): staff entering it would make no data day.
            exercises.record_checkin(SYSTEM, episode.patient_id, {
                "client_id": uuid.UUID(int=rng.getrandbits(128)), "recorded_at": recorded,
                "pain": max(0, 6 - (day - episode.start_date).days // 10 + rng.randrange(-1, 2)),
                "difficulty": rng.choice(["easy", "ok", "ok", "hard"]), "all_done": True,
            }, source="sms", now=recorded)
        if day.weekday() == 2 and day > episode.start_date:
            reviewed = datetime.combine(day, time(12), zone).astimezone(UTC)
            monitoring.record_management_time(actor, episode.id, {
                "service_date": day, "minutes": rng.choice([6, 8, 10]), "activity": "data_review",
                "interactive": False}, now=reviewed)
            if day.day <= 7:
                monitoring.record_management_time(actor, episode.id, {
                    "service_date": day, "minutes": 12, "activity": "call", "interactive": True,
                    "channel": "phone", "note": "Progressed the bridge; pain settling."}, now=reviewed)
        day += timedelta(days=1)


def _plan_hybrid_visits(actor: Actor, episode, *, now: datetime) -> None:
    """The hybrid series a therapist planned at the evaluation (clinic, video, video); visits
    already past are completed, so the plan's progress and alerts are those of a real caseload."""
    options = {"modality_pattern": ["in_clinic", "video", "video"], "start_date": episode.start_date,
               "preferred_weekdays": [0, 3] if episode.patient_id % 2 else [1, 4],
               "preferred_start": time(8 + episode.patient_id % 8, 0)}
    proposal = careplans.preview_cadence(actor, episode.id, options, now=now)
    rows = [{"kind": v.kind, "modality": v.modality, "starts_at": v.start, "ends_at": v.end,
             "room": "Gym 1" if v.modality == "in_clinic" else None} for v in proposal.visits]
    if not rows:
        return
    done = 0
    for visit in careplans.confirm_cadence(actor, episode.id, rows, clinician_id=None, now=now):
        # The discharge itself is left to the therapist, who closes the episode with it.
        if visit.ends_at < now and visit.kind != "discharge":
            steps = ("checked_in", "in_progress", "completed") if visit.modality == "in_clinic" \
                else ("in_progress", "completed")
            for status in steps:
                careplans.change_visit_status(actor, visit.id, status, now=now)
            _measure_progress(actor, episode, visit, done)
            _document(actor, visit, now=now)
            done += 1


# What a visit of each kind billed: an evaluation (untimed) or timed treatment, by the 8-minute rule.
DEMO_SERVICES = {
    "initial_evaluation": [{"cpt_code": "97162", "minutes": 45}],
    "progress": [{"cpt_code": "97164", "minutes": 20}, {"cpt_code": "97110", "minutes": 23}],
    "treatment": [{"cpt_code": "97110", "minutes": 25}, {"cpt_code": "97140", "minutes": 15}],
}


def _document(actor: Actor, visit, *, now: datetime) -> None:
    """The note and services of a visit held, signed: the charges billing staff then review."""
    services = DEMO_SERVICES.get(visit.kind)
    if not services:
        return
    careplans.set_services(actor, visit.id, services, now=now)
    careplans.save_note(actor, visit.id, {
        "subjective": "Reports less pain on stairs.", "objective": "See the measures recorded today.",
        "assessment": "Progressing toward the goals.", "plan": "Continue the plan of care."}, now=now)
    careplans.sign_note(actor, visit.id, now=now)


def _measure_progress(actor: Actor, episode, visit, visits_done: int) -> None:
    """Measures taken at a completed visit, improving as the plan goes on, so that the trends
    show clinic and video points side by side: the 30-second chair stand at every visit, and knee
    flexion (by goniometer in the clinic, by a still on video) in the knee plans."""
    taken = visit.ends_at - timedelta(minutes=10)
    assessments.record_result(actor, episode.patient_id, {
        "protocol_id": "perf_30s_chair_stand", "visit_id": visit.id,
        "inputs": {"stands": 8 + visits_done + episode.patient_id % 3, "arms_used": False}}, now=taken)
    if "knee" in episode.title.lower():
        assessments.record_result(actor, episode.patient_id, {
            "protocol_id": "rom_knee_flexion", "visit_id": visit.id,
            "inputs": {"side": "right", "motion": "active", "position": "supine",
                       "instrument": "universal_goniometer" if visit.modality == "in_clinic" else "photo_landmarks",
                       "angle": min(135, 85 + 6 * visits_done)}}, now=taken)
