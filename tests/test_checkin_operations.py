"""record_checkin and the check-in reads, called directly with explicit `now`, on SQLite and PostgreSQL.

The data day is the patient's local date at `recorded_at`; late uploads keep both times; a client
may send the same check-in as often as it likes and one row is stored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import AuditEntry
from telerehab.accounts.operations import SYSTEM, Actor
from telerehab.careplans import operations as careplans
from telerehab.errors import Forbidden, NotFound, ValidationFailed
from telerehab.exercises import operations as exercises
from telerehab.exercises.models import CheckIn, CheckInExercise

from .conftest import NOW, episode_data, make_user
from .test_exercises_operations import items, make_program

SECOND = timedelta(seconds=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def checkin(**overrides) -> dict:
    return {"client_id": uuid.uuid4(), "recorded_at": NOW, "pain": 3, "difficulty": "ok", "note": None,
            "exercises": [], **overrides}


def record(world, data=None, *, who="patient", now=NOW, source="api", patient=None):
    actor = SYSTEM if who is None else Actor(world.user(who), ip_address="198.51.100.9")
    return exercises.record_checkin(actor, (patient or world.patient).id, data or checkin(), source=source, now=now)


def count(db, model=CheckIn) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def refused(world, data, *, now=NOW, who="patient") -> dict:
    with pytest.raises(ValidationFailed) as excinfo:
        record(world, data, now=now, who=who)
    return excinfo.value.errors


def move_patient_to(world, zone: str) -> None:
    accounts.update_patient(Actor(world.therapist), world.patient.id, {"timezone": zone}, now=NOW)


# ---------------------------------------------------------------- storing

def test_a_check_in_is_stored_with_both_times_its_data_day_and_an_audit_entry(db, world):
    program = make_program(world)
    bridge, heel = program.items
    data = checkin(pain=4, difficulty="hard", note="  Knee a bit sore  ",
                   exercises=[{"program_item_id": bridge.id, "sets": 3, "reps": 10},
                              {"program_item_id": heel.id, "sets": 2, "reps": 12}])
    stored, created = record(world, data, now=NOW + timedelta(minutes=2))
    assert created is True
    db.session.expire_all()
    row = db.session.get(CheckIn, stored.id)
    assert (row.client_id, row.recorded_at, row.received_at, row.local_date, row.timezone, row.source) == (
        data["client_id"], NOW, NOW + timedelta(minutes=2), date(2026, 3, 2), "America/Chicago", "api")
    assert (row.pain, row.difficulty, row.note) == (4, "hard", "Knee a bit sore")
    assert (row.episode_id, row.program_id, row.recorded_by_id) == (world.episode.id, program.id,
                                                                    world.patient_user.id)
    assert [(e.program_item_id, e.sets_done, e.reps_done) for e in row.exercises] == [
        (bridge.id, 3, 10), (heel.id, 2, 12)]
    (entry,) = db.session.scalars(select(AuditEntry).where(AuditEntry.record_type == "checkin"))
    assert (entry.action, entry.record_id, entry.patient_id, entry.actor_id, entry.ip_address) == (
        "create", row.id, world.patient.id, world.patient_user.id, "198.51.100.9")
    assert entry.detail == "source=api;local_date=2026-03-02"


@pytest.mark.parametrize(("who", "self_reported"), [("patient", True), ("therapist", False), ("assistant", False)])
def test_the_patient_or_their_clinicians_record(db, world, who, self_reported):
    stored, created = record(world, who=who)
    assert created and stored.recorded_by_id == world.user(who).id
    db.session.expire_all()
    assert db.session.get(CheckIn, stored.id).self_reported is self_reported  # staff's entries are no RTM data


@pytest.mark.parametrize(("who", "error"), [("billing", Forbidden), ("admin", Forbidden)])
def test_billing_and_admin_do_not_record(db, world, who, error):
    with pytest.raises(error):
        record(world, who=who)
    assert count(db) == 0


def test_nobody_records_for_a_patient_they_cannot_see(db, world):
    with pytest.raises(NotFound):
        record(world, patient=world.other_patient, who="patient")  # another patient, as Ana
    with pytest.raises(NotFound):
        record(world, patient=world.other_patient, who="therapist")  # another clinic's patient
    with pytest.raises(NotFound):
        exercises.record_checkin(Actor(world.foreign_therapist), world.patient.id, checkin(), source="api", now=NOW)
    assert count(db) == 0


def test_organisation_wide_staff_of_another_organisation_are_told_no_such_patient(db, world):
    """The look-up hands the policy a plain record of the patient: its clinic's organisation decides
    whether an organisation-wide user sees them (Forbidden, above) or not (NotFound)."""
    foreign_admin = make_user(world.foreign_clinic.organisation_id, "faradmin", "admin", None)
    with pytest.raises(NotFound):
        exercises.record_checkin(Actor(foreign_admin), world.patient.id, checkin(), source="api", now=NOW)
    assert count(db) == 0


def test_a_verified_sms_may_record_without_a_user(db, world):
    program = make_program(world)
    stored, created = record(world, checkin(pain=6, difficulty=None, all_done=True), who=None, source="sms")
    assert created and stored.source == "sms" and stored.recorded_by_id is None and stored.self_reported
    assert sorted((e.program_item_id, e.sets_done, e.reps_done) for e in stored.exercises) == sorted(
        (i.id, i.sets, i.reps) for i in program.items)
    (entry,) = db.session.scalars(select(AuditEntry).where(AuditEntry.record_type == "checkin"))
    assert entry.actor_id is None and entry.detail.startswith("source=sms")


@pytest.mark.parametrize("source", ["web", "api"])
def test_only_sms_may_come_without_a_user(db, world, source):
    with pytest.raises(Forbidden):
        record(world, who=None, source=source)
    assert count(db) == 0


def test_an_unknown_source_is_a_programming_error(db, world):
    with pytest.raises(ValueError):
        record(world, source="fax")


# ---------------------------------------------------------------- idempotency

def test_the_same_client_id_twice_stores_one_and_answers_with_the_first(db, world):
    data = checkin(pain=2)
    first, created = record(world, data)
    again, created_again = record(world, {**data, "pain": 9, "recorded_at": NOW + SECOND},
                                  now=NOW + timedelta(hours=3))
    assert (created, created_again) == (True, False)
    assert again.id == first.id and again.pain == 2 and again.received_at == NOW
    assert count(db) == 1
    actions = list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.record_type == "checkin")
                                      .order_by(AuditEntry.id)))
    assert actions == ["create", "replay"]


def test_a_replay_is_answered_even_after_the_late_window(db, world):
    """A retry is answered with what was stored, not judged again."""
    data = checkin()
    record(world, data)
    again, created = record(world, data, now=NOW + timedelta(days=30))
    assert created is False and again.recorded_at == NOW


def test_a_client_id_string_is_accepted_as_a_uuid(db, world):
    client_id = uuid.uuid4()
    record(world, checkin(client_id=str(client_id)))
    _, created = record(world, checkin(client_id=client_id))
    assert created is False and count(db) == 1


def test_a_client_id_used_by_another_patient_is_refused_without_revealing_it(db, world):
    client_id = uuid.uuid4()
    careplans.create_episode(Actor(world.other_therapist), world.other_patient.id, episode_data(), now=NOW)
    record(world, checkin(client_id=client_id), who="therapist")
    with pytest.raises(ValidationFailed) as excinfo:
        exercises.record_checkin(Actor(world.other_therapist), world.other_patient.id, checkin(client_id=client_id),
                                 source="api", now=NOW)
    assert "client_id" in excinfo.value.errors
    assert count(db) == 1


@pytest.mark.parametrize("client_id", ["not-a-uuid", None, 42])
def test_a_malformed_client_id_names_the_field(db, world, client_id):
    assert "client_id" in refused(world, checkin(client_id=client_id))


# ---------------------------------------------------------------- the data day

def test_2330_in_los_angeles_lands_on_that_date_though_utc_is_the_next_day(db, world):
    move_patient_to(world, "America/Los_Angeles")
    recorded = utc("2026-03-03T07:30:00")  # 23:30 PST on 2 March
    stored, _ = record(world, checkin(recorded_at=recorded), now=recorded + timedelta(minutes=1))
    assert stored.local_date == date(2026, 3, 2)
    assert stored.recorded_at.date() == date(2026, 3, 3)


@pytest.mark.parametrize(("zone", "instant", "expected"), [
    ("America/Los_Angeles", "2026-03-08T09:59:59", date(2026, 3, 8)),  # 01:59:59 PST, before the jump
    ("America/Los_Angeles", "2026-03-08T10:00:00", date(2026, 3, 8)),  # 03:00 PDT, after it
    ("America/Los_Angeles", "2026-03-09T06:30:00", date(2026, 3, 8)),  # 23:30 PDT on the 23-hour day
    ("America/Los_Angeles", "2026-03-09T07:00:00", date(2026, 3, 9)),
    ("America/Los_Angeles", "2026-11-01T08:30:00", date(2026, 11, 1)),  # the first 01:30
    ("America/Los_Angeles", "2026-11-01T09:30:00", date(2026, 11, 1)),  # the second 01:30
    ("America/Los_Angeles", "2026-11-02T07:30:00", date(2026, 11, 1)),  # 23:30 PST on the 25-hour day
    ("America/Los_Angeles", "2026-11-02T08:00:00", date(2026, 11, 2)),
    ("America/New_York", "2026-03-09T03:59:59", date(2026, 3, 8)),
    ("Pacific/Honolulu", "2026-03-03T09:30:00", date(2026, 3, 2)),
    ("Asia/Kolkata", "2026-03-02T18:30:00", date(2026, 3, 3)),
], ids=["LA-before-spring-jump", "LA-after-spring-jump", "LA-2330-spring-day", "LA-midnight-after-spring",
        "LA-first-0130", "LA-second-0130", "LA-2330-fall-day", "LA-midnight-after-fall", "NY-2359-spring-day",
        "Honolulu-2330", "Kolkata-east-of-UTC"])
def test_daylight_saving_and_far_zones(db, world, zone, instant, expected):
    move_patient_to(world, zone)
    recorded = utc(instant)
    stored, _ = record(world, checkin(recorded_at=recorded), now=recorded + timedelta(minutes=1))
    db.session.expire_all()
    assert db.session.get(CheckIn, stored.id).local_date == expected


def test_the_stored_data_day_does_not_move_when_the_patient_moves(db, world):
    recorded = utc("2026-03-03T05:30:00")  # 23:30 CST on 2 March
    stored, _ = record(world, checkin(recorded_at=recorded), now=recorded)
    move_patient_to(world, "America/New_York")  # where it would already be the 3rd
    db.session.expire_all()
    row = db.session.get(CheckIn, stored.id)
    assert (row.local_date, row.timezone) == (date(2026, 3, 2), "America/Chicago")


# ---------------------------------------------------------------- late uploads and clock skew

RECEIVED = datetime(2026, 3, 20, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(("late_by", "accepted"), [
    (timedelta(0), True),
    (timedelta(days=6, hours=23), True),
    (timedelta(days=7), True),
    (timedelta(days=7) + SECOND, False),
    (timedelta(days=9), False),
], ids=["on-time", "6d23h", "exactly-7d", "7d+1s", "9d"])
def test_the_default_late_window_edges(db, world, late_by, accepted):
    recorded = RECEIVED - late_by
    if accepted:
        stored, _ = record(world, checkin(recorded_at=recorded), now=RECEIVED)
        assert (stored.recorded_at, stored.received_at) == (recorded, RECEIVED)
        assert stored.local_date == recorded.astimezone(ZoneInfo("America/Chicago")).date()
    else:
        errors = refused(world, checkin(recorded_at=recorded), now=RECEIVED)
        assert list(errors) == ["recorded_at"]
        assert "more than 7 days ago" in errors["recorded_at"][0]
        assert count(db) == 0


def test_a_late_upload_counts_on_the_day_it_was_recorded(db, world):
    recorded = utc("2026-03-05T23:00:00")  # 17:00 CST on 5 March, uploaded four days later
    stored, _ = record(world, checkin(recorded_at=recorded), now=utc("2026-03-09T15:00:00"))
    assert stored.local_date == date(2026, 3, 5)
    assert stored.is_late


@pytest.mark.parametrize(("days", "late_by", "accepted"), [
    (2, timedelta(days=2), True),
    (2, timedelta(days=2) + SECOND, False),
    (14, timedelta(days=14), True),
    (14, timedelta(days=14) + SECOND, False),
], ids=["2d-edge", "2d+1s", "14d-edge", "14d+1s"])
def test_the_clinic_sets_the_late_window(db, world, days, late_by, accepted):
    exercises.set_checkin_settings(Actor(world.admin), world.clinic.id, {"late_upload_days": days}, now=NOW)
    data = checkin(recorded_at=RECEIVED - late_by)
    if accepted:
        assert record(world, data, now=RECEIVED)[1] is True
    else:
        assert f"more than {days} days ago" in refused(world, data, now=RECEIVED)["recorded_at"][0]


@pytest.mark.parametrize(("ahead", "accepted"), [
    (timedelta(minutes=4, seconds=59), True),
    (timedelta(minutes=5), True),
    (timedelta(minutes=5) + SECOND, False),
    (timedelta(hours=2), False),
], ids=["4m59s", "exactly-5m", "5m+1s", "2h"])
def test_future_recorded_at_beyond_the_clock_skew_is_refused(db, world, ahead, accepted):
    data = checkin(recorded_at=RECEIVED + ahead)
    if accepted:
        assert record(world, data, now=RECEIVED)[1] is True
    else:
        errors = refused(world, data, now=RECEIVED)
        assert list(errors) == ["recorded_at"] and "future" in errors["recorded_at"][0]


def test_a_naive_recorded_at_is_refused(db, world):
    errors = refused(world, checkin(recorded_at=datetime(2026, 3, 2, 9, 0)))
    assert "offset" in errors["recorded_at"][0]


@pytest.mark.parametrize("value", [None, "2026-03-02T09:00:00-06:00"])
def test_recorded_at_must_be_a_datetime(db, world, value):
    assert "recorded_at" in refused(world, checkin(recorded_at=value))


# ---------------------------------------------------------------- the episode and the program

@pytest.mark.parametrize("status", ["discharged", "on_hold", "planned"])
def test_a_patient_without_an_active_episode_is_refused_clearly(db, world, status):
    extra = {"discharge_date": date(2026, 3, 2), "discharge_reason": "goals_met"} if status == "discharged" else {}
    careplans.update_episode(Actor(world.therapist), world.episode.id, {"status": status, **extra}, now=NOW)
    errors = refused(world, checkin())
    assert list(errors) == ["episode"]
    assert "no active plan of care" in errors["episode"][0]
    assert count(db) == 0


def test_a_check_in_dated_before_the_plan_of_care_is_refused(db, world):
    recorded = utc("2026-03-02T05:00:00")  # 23:00 CST on 1 March; the episode starts on the 2nd
    errors = refused(world, checkin(recorded_at=recorded), now=recorded + SECOND)
    assert "before the plan of care starts (2026-03-02)" in errors["recorded_at"][0]


def test_the_most_recent_active_episode_takes_the_check_in(db, world):
    later = careplans.create_episode(Actor(world.therapist), world.patient.id,
                                     episode_data(title="Left shoulder", start_date=date(2026, 3, 2)), now=NOW)
    stored, _ = record(world)
    assert stored.episode_id == max(world.episode.id, later.id)


def test_exercises_come_from_the_version_in_force_on_the_data_day(db, world):
    """v2 takes effect on 10 March: a late upload from the 9th uses v1's items, the 10th uses v2's."""
    v1 = make_program(world)
    v2 = make_program(world, *items("clamshell"), effective_from=date(2026, 3, 10))
    on_ninth = utc("2026-03-10T04:30:00")  # 23:30 CDT on 9 March (daylight time since the 8th)
    on_tenth = utc("2026-03-10T05:10:00")  # 00:10 CDT on 10 March
    received = utc("2026-03-10T07:00:00")
    v1_item, v2_item = v1.items[0], v2.items[0]

    stored, _ = record(world, checkin(recorded_at=on_ninth,
                                      exercises=[{"program_item_id": v1_item.id, "sets": 3, "reps": 10}]),
                       now=received)
    assert (stored.local_date, stored.program_id) == (date(2026, 3, 9), v1.id)
    errors = refused(world, checkin(recorded_at=on_ninth,
                                    exercises=[{"program_item_id": v2_item.id, "sets": 3, "reps": 10}]), now=received)
    assert "not in the patient's program on 2026-03-09" in errors["exercises"][0]

    stored, _ = record(world, checkin(recorded_at=on_tenth,
                                      exercises=[{"program_item_id": v2_item.id, "sets": 1, "reps": 5}]),
                       now=received)
    assert (stored.local_date, stored.program_id) == (date(2026, 3, 10), v2.id)
    errors = refused(world, checkin(recorded_at=on_tenth,
                                    exercises=[{"program_item_id": v1_item.id, "sets": 3, "reps": 10}]), now=received)
    assert "not in the patient's program on 2026-03-10" in errors["exercises"][0]


@pytest.mark.parametrize(("zone", "expected"), [
    ("Etc/GMT+12", (date(2026, 3, 3), 1)), ("America/Chicago", (date(2026, 3, 4), 2)),
    ("Pacific/Kiritimati", (date(2026, 3, 5), 3)),
])
def test_one_instant_takes_the_version_in_force_on_each_zones_date(db, world, zone, expected):
    """The look-up loads only the versions that may be in force around `recorded_at`: at one instant it
    is still the 3rd at UTC-12 and already the 5th at UTC+14, and each zone gets its own day's version."""
    versions = [make_program(world, *items(key), effective_from=effective) for key, effective in [
        ("glute-bridge", date(2026, 3, 2)), ("heel-raise", date(2026, 3, 4)), ("clamshell", date(2026, 3, 5))]]
    move_patient_to(world, zone)
    recorded = utc("2026-03-04T11:30:00")
    stored, _ = record(world, checkin(recorded_at=recorded, all_done=True), now=recorded + SECOND)
    version = next(v for v in versions if v.id == stored.program_id)
    assert (stored.local_date, version.version) == expected
    assert [row.program_item_id for row in stored.exercises] == [item.id for item in version.items]


def test_another_patients_program_item_is_refused(db, world):
    careplans_other = make_program(world, episode=world.other_episode, who=world.other_therapist)
    errors = refused(world, checkin(exercises=[
        {"program_item_id": careplans_other.items[0].id, "sets": 1, "reps": 1}]))
    assert "exercises" in errors


def test_an_item_given_twice_is_refused(db, world):
    item = make_program(world).items[0]
    errors = refused(world, checkin(exercises=[{"program_item_id": item.id, "sets": 1, "reps": 1}] * 2))
    assert "given twice" in errors["exercises"][0]
    assert count(db, CheckInExercise) == 0


def test_all_done_keeps_what_was_listed_and_adds_the_rest(db, world):
    bridge, heel = make_program(world).items
    stored, _ = record(world, checkin(all_done=True, exercises=[{"program_item_id": heel.id, "sets": 1, "reps": 4}]))
    assert sorted((e.program_item_id, e.sets_done, e.reps_done) for e in stored.exercises) == sorted(
        [(heel.id, 1, 4), (bridge.id, bridge.sets, bridge.reps)])


def test_a_check_in_without_a_program_may_still_report_pain(db, world):
    stored, _ = record(world, checkin(pain=7))
    assert stored.program_id is None and stored.exercises == []


def test_an_empty_check_in_is_refused(db, world):
    errors = refused(world, checkin(pain=None, difficulty=None, note="  "))
    assert list(errors) == ["exercises"]


@pytest.mark.parametrize(("field", "value"), [
    ("pain", 11), ("pain", -1), ("pain", 2.5), ("pain", True), ("pain", "5"),
    ("difficulty", "impossible"), ("note", "x" * 2001),
])
def test_content_is_checked_even_without_the_api_schema(db, world, field, value):
    """The SMS path calls the operation directly: it checks what the schema would have."""
    assert field in refused(world, checkin(**{field: value}))


# ---------------------------------------------------------------- reads

def test_list_is_newest_first_filtered_by_data_day_paged_and_audited(db, world):
    days = [utc(f"2026-03-{d:02d}T15:00:00") for d in (2, 3, 4, 5, 6)]
    for recorded in days:
        record(world, checkin(recorded_at=recorded), now=recorded)
    page = exercises.list_checkins(Actor(world.therapist), world.patient.id, date_from=date(2026, 3, 3),
                                   date_to=date(2026, 3, 5), page=1, page_size=2, now=days[-1])
    assert page.total == 3 and page.pages == 2
    assert [c.local_date for c in page.items] == [date(2026, 3, 5), date(2026, 3, 4)]
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.record_type == "checkin",
                                                        AuditEntry.action == "list")).one()
    assert entry.actor_id == world.therapist.id and entry.patient_id == world.patient.id


def test_the_month_counts_data_days_not_uploads(db, world):
    for minutes in (0, 10, 20):  # three check-ins on 2 March: one data day
        record(world, checkin(recorded_at=NOW + timedelta(minutes=minutes)), now=NOW + timedelta(minutes=minutes))
    record(world, checkin(recorded_at=utc("2026-03-04T15:00:00")), now=utc("2026-03-04T15:00:00"))
    month = exercises.checkin_month(Actor(world.billing), world.patient.id, (2026, 3), now=NOW)
    assert month.days == {date(2026, 3, 2): 3, date(2026, 3, 4): 1}
    assert len(month.checkins) == 4
    assert exercises.checkin_month(Actor(world.billing), world.patient.id, (2026, 4), now=NOW).days == {}


def test_the_default_month_is_the_patients_own(db, world):
    """At 04:00 UTC on 1 April it is still 31 March in Chicago."""
    month = exercises.checkin_month(Actor(world.therapist), world.patient.id, None,
                                    now=utc("2026-04-01T04:00:00"))
    assert (month.year, month.month) == (2026, 3)


def test_checkin_today_shows_the_patients_day(db, world):
    make_program(world)
    record(world)
    today = exercises.checkin_today(Actor(world.patient_user), now=NOW + timedelta(hours=1))
    assert today.today == date(2026, 3, 2) and len(today.checkins) == 1 and len(today.day.items) == 2
    tomorrow = exercises.checkin_today(Actor(world.patient_user), now=utc("2026-03-03T07:00:00"))
    assert tomorrow.today == date(2026, 3, 3) and tomorrow.checkins == []


def test_reads_are_scoped(db, world):
    for who, patient in (("patient", world.other_patient), ("therapist", world.other_patient)):
        with pytest.raises(NotFound):
            exercises.list_checkins(Actor(world.user(who)), patient.id, date_from=None, date_to=None,
                                    page=1, page_size=10, now=NOW)


@pytest.mark.parametrize(("role", "sees_notes"), [
    ("therapist", True), ("assistant", True), ("patient", True), ("billing", False), ("admin", False),
])
def test_who_sees_the_patients_notes(db, world, role, sees_notes):
    assert exercises.may_see_checkin_notes(Actor(world.user(role))) is sees_notes
