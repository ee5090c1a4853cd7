"""Library and program operations, called directly with explicit `now`, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from telerehab.accounts.models import AuditEntry
from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.errors import Forbidden, NotFound, ValidationFailed
from telerehab.exercises import operations as exercises
from telerehab.exercises.models import ClinicExercise, Program, ProgramItem

from .conftest import NOW

DAY = timedelta(days=1)
TODAY = date(2026, 3, 2)  # NOW in Chicago, the world patient's timezone


def items(*keys, **overrides) -> list[dict]:
    return [{"exercise_key": key, **overrides} for key in keys]


def make_program(world, *entries, effective_from=None, now=NOW, who=None, episode=None, note=None):
    data = {"items": list(entries) or items("glute-bridge", "heel-raise")}
    if effective_from is not None:
        data["effective_from"] = effective_from
    if note is not None:
        data["change_note"] = note
    return exercises.create_program_version(Actor(who or world.therapist), (episode or world.episode).id, data,
                                            now=now)


def audits(db, *where) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(*where).order_by(AuditEntry.id)))


# ---------------------------------------------------------------- versions

def test_first_version_takes_the_dosage_from_the_library_and_is_audited(db, world):
    program = make_program(world, {"exercise_key": "glute-bridge"}, {"exercise_key": "heel-raise", "reps": 20,
                                                                      "load": "holding 2 kg", "notes": "Slowly"})
    assert (program.version, program.effective_from) == (1, TODAY)
    bridge, raise_ = program.items
    assert (bridge.exercise_name, bridge.sets, bridge.reps, bridge.hold_seconds, bridge.times_per_day,
            bridge.days_per_week, bridge.start_date, bridge.end_date) == ("Bridge", 3, 10, 3, 1, 5, TODAY, None)
    assert (raise_.reps, raise_.load, raise_.notes, raise_.sets) == (20, "holding 2 kg", "Slowly", 3)
    (entry,) = audits(db, AuditEntry.record_type == "program", AuditEntry.action == "create")
    assert (entry.record_id, entry.patient_id, entry.actor_id) == (program.id, world.patient.id, world.therapist.id)
    assert "version=1" in entry.detail


def test_an_edit_makes_a_new_version_and_keeps_the_old_one(db, world):
    first = make_program(world)
    second = make_program(world, *items("clamshell"), effective_from=TODAY + 8 * DAY, note="Progressed")
    assert second.version == 2 and second.change_note == "Progressed"
    db.session.expire_all()
    old = db.session.get(Program, first.id)
    assert [i.exercise_key for i in old.items] == ["glute-bridge", "heel-raise"]
    assert db.session.scalar(select(func.count()).select_from(ProgramItem)) == 3


@pytest.mark.parametrize(("day", "version", "keys"), [
    (TODAY - DAY, None, None),
    (TODAY, 1, ["glute-bridge", "heel-raise"]),
    (TODAY + 7 * DAY, 1, ["glute-bridge", "heel-raise"]),
    (TODAY + 8 * DAY, 3, ["step-up"]),  # versions 2 and 3 both start that day: the later one
    (TODAY + 30 * DAY, 3, ["step-up"]),
], ids=["before-first", "first-day", "last-day-of-v1", "v2-and-v3-day", "later"])
def test_program_on_boundary_dates(db, world, day, version, keys):
    make_program(world)
    make_program(world, *items("clamshell"), effective_from=TODAY + 8 * DAY)
    make_program(world, *items("step-up"), effective_from=TODAY + 8 * DAY)
    result = exercises.program_on(world.episode, day)
    if version is None:
        assert result is None
    else:
        assert result.program.version == version
        assert [i.exercise_key for i in result.items] == keys
        assert result.date == day


@pytest.mark.parametrize(("day", "keys"), [
    (TODAY, ["glute-bridge"]),
    (TODAY + 4 * DAY, ["glute-bridge", "heel-raise"]),
    (TODAY + 9 * DAY, ["glute-bridge", "heel-raise"]),
    (TODAY + 10 * DAY, ["heel-raise"]),
], ids=["before-item-start", "item-start", "item-end", "after-item-end"])
def test_items_apply_between_their_own_dates(db, world, day, keys):
    make_program(world, {"exercise_key": "glute-bridge", "end_date": TODAY + 9 * DAY},
                 {"exercise_key": "heel-raise", "start_date": TODAY + 4 * DAY})
    assert [i.exercise_key for i in exercises.program_on(world.episode, day).items] == keys


def test_program_history_is_newest_first_and_audited(db, world):
    make_program(world)
    make_program(world, *items("clamshell"))
    _, versions = exercises.program_history(Actor(world.patient_user), world.episode.id, now=NOW)
    assert [v.version for v in versions] == [2, 1]
    (entry,) = audits(db, AuditEntry.record_type == "program", AuditEntry.action == "list")
    assert entry.patient_id == world.patient.id and entry.actor_id == world.patient_user.id


def test_get_program_day_defaults_to_the_patients_today_and_audits(db, world):
    make_program(world)
    day = exercises.get_program_day(Actor(world.assistant), world.episode.id, on=None, now=NOW)
    assert day.date == TODAY and day.program.version == 1
    assert audits(db, AuditEntry.record_type == "program", AuditEntry.action == "read")[0].detail == "on=2026-03-02"
    with pytest.raises(NotFound, match="No home exercise program"):
        exercises.get_program_day(Actor(world.assistant), world.episode.id, on=TODAY - DAY, now=NOW)


def test_the_patients_today_is_their_own_date(db, world):
    """At 05:30 UTC on 3 March it is still 2 March in Chicago: a change dated the 2nd is today's."""
    late_evening = datetime(2026, 3, 3, 5, 30, tzinfo=UTC)
    program = make_program(world, now=late_evening)
    assert program.effective_from == TODAY


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"items": items("glute-bridge"), "effective_from": TODAY - DAY}, "effective_from", "today or later"),
    ({"items": items("no-such-exercise")}, "items", "no exercise 'no-such-exercise'"),
    ({"items": items("glute-bridge", start_date=TODAY + 5 * DAY, end_date=TODAY + 4 * DAY)}, "items",
     "end date is before"),
    ({"items": items("clinic:999999")}, "items", "no exercise 'clinic:999999'"),
], ids=["backdated", "unknown-exercise", "end-before-start", "unknown-clinic-exercise"])
def test_refused_programs_name_the_field_and_write_nothing(db, world, data, field, message):
    with pytest.raises(ValidationFailed) as excinfo:
        exercises.create_program_version(Actor(world.therapist), world.episode.id, data, now=NOW)
    assert field in excinfo.value.errors
    assert message in " ".join(excinfo.value.errors[field])
    assert db.session.scalar(select(func.count()).select_from(Program)) == 0


def test_a_version_cannot_predate_the_one_it_replaces(db, world):
    make_program(world, effective_from=TODAY + 10 * DAY)
    with pytest.raises(ValidationFailed) as excinfo:
        make_program(world, effective_from=TODAY + 9 * DAY)
    assert "2026-03-12" in excinfo.value.errors["effective_from"][0]
    # Without a date, the new version takes effect with the one it replaces.
    assert make_program(world).effective_from == TODAY + 10 * DAY


def test_an_empty_version_pauses_the_program(db, world):
    make_program(world)
    exercises.create_program_version(Actor(world.therapist), world.episode.id, {"items": []}, now=NOW)
    day = exercises.program_on(world.episode, TODAY)
    assert day.program.version == 2 and day.items == []


def test_a_discharged_episode_has_a_closed_program(db, world):
    careplans.update_episode(Actor(world.therapist), world.episode.id, {
        "status": "discharged", "discharge_date": TODAY, "discharge_reason": "goals_met"}, now=NOW)
    with pytest.raises(ValidationFailed) as excinfo:
        make_program(world)
    assert "discharged" in excinfo.value.errors["episode"][0]


@pytest.mark.parametrize(("role", "allowed"), [
    ("therapist", True), ("assistant", True), ("admin", False), ("billing", False), ("patient", False),
])
def test_who_may_change_a_program(db, world, role, allowed):
    if allowed:
        assert make_program(world, who=world.user(role)).version == 1
    else:
        with pytest.raises((Forbidden, NotFound)):
            make_program(world, who=world.user(role))


def test_another_clinics_episode_is_not_found(db, world):
    with pytest.raises(NotFound):
        make_program(world, episode=world.other_episode)
    with pytest.raises(NotFound):
        exercises.program_history(Actor(world.therapist), world.other_episode.id, now=NOW)


def test_billing_may_not_read_programs(db, world):
    make_program(world)
    with pytest.raises(Forbidden):
        exercises.program_history(Actor(world.billing), world.episode.id, now=NOW)


# ---------------------------------------------------------------- the library

def clinic_exercise(**overrides) -> dict:
    return {"name": "Step-over drill", "body_region": "balance", "instructions": "Step over the cones slowly.",
            "equipment": ["Cones", " step "], "media": "", "sets": 2, "reps": 8, "hold_seconds": 0,
            "times_per_day": 1, "days_per_week": 5, **overrides}


def test_a_clinic_adds_its_own_exercise_and_only_it_sees_it(db, world):
    exercise = exercises.create_clinic_exercise(Actor(world.therapist), clinic_exercise(), now=NOW)
    assert exercise.key.startswith("clinic:") and exercise.equipment == ("cones", "step")
    assert exercise.clinic_id == world.clinic.id
    (entry,) = audits(db, AuditEntry.record_type == "clinic_exercise")
    assert entry.action == "create"

    def found(user, **kwargs):
        page = exercises.search_library(Actor(user), query="step-over", region=None, equipment=None,
                                        page=1, page_size=50, now=NOW, **{"clinic_id": None, **kwargs})
        return [e.key for e in page.items]

    assert found(world.therapist) == [exercise.key]
    assert found(world.assistant) == [exercise.key]
    assert found(world.admin) == [exercise.key]  # organisation-wide staff see every clinic's
    assert found(world.other_therapist) == []
    assert found(world.foreign_therapist) == []
    with pytest.raises(ValidationFailed) as excinfo:
        found(world.other_therapist, clinic_id=world.clinic.id)
    assert "clinic_id" in excinfo.value.errors

    # A program of this clinic may use it; its name is kept on the item.
    program = make_program(world, {"exercise_key": exercise.key})
    assert (program.items[0].exercise_name, program.items[0].sets, program.items[0].days_per_week) == (
        "Step-over drill", 2, 5)
    # Another clinic's program may not.
    with pytest.raises(ValidationFailed):
        exercises.create_program_version(Actor(world.other_therapist), world.other_episode.id,
                                         {"items": [{"exercise_key": exercise.key}]}, now=NOW)


@pytest.mark.parametrize("name", ["Step-over drill", "STEP-OVER  drill", "Bridge"])
def test_clinic_exercise_names_are_unique_in_the_library(db, world, name):
    exercises.create_clinic_exercise(Actor(world.therapist), clinic_exercise(), now=NOW)
    with pytest.raises(ValidationFailed) as excinfo:
        exercises.create_clinic_exercise(Actor(world.therapist), clinic_exercise(name=name), now=NOW)
    assert "already in the library" in excinfo.value.errors["name"][0]
    assert db.session.scalar(select(func.count()).select_from(ClinicExercise)) == 1


@pytest.mark.parametrize("role", ["admin", "billing", "patient"])
def test_only_clinicians_add_exercises(db, world, role):
    with pytest.raises(Forbidden):
        exercises.create_clinic_exercise(Actor(world.user(role)), clinic_exercise(), now=NOW)


def test_library_search_is_audited_and_paged(db, world):
    page = exercises.search_library(Actor(world.therapist), query=None, region="knee", equipment=None,
                                    clinic_id=None, page=2, page_size=5, now=NOW)
    assert page.total >= 10 and len(page.items) == 5
    assert audits(db, AuditEntry.record_type == "exercise_library")[0].action == "search"


@pytest.mark.parametrize("role", ["billing", "patient"])
def test_billing_and_patients_do_not_browse_the_library(db, world, role):
    with pytest.raises(Forbidden):
        exercises.search_library(Actor(world.user(role)), query=None, region=None, equipment=None,
                                 clinic_id=None, page=1, page_size=5, now=NOW)


# ---------------------------------------------------------------- check-in settings

def test_the_late_window_is_a_setting_per_clinic(db, world):
    assert exercises.late_upload_days(world.clinic.id) == 7
    exercises.set_checkin_settings(Actor(world.admin), world.clinic.id, {"late_upload_days": 3}, now=NOW)
    assert exercises.late_upload_days(world.clinic.id) == 3
    assert exercises.late_upload_days(world.other_clinic.id) == 7
    exercises.set_checkin_settings(Actor(world.admin), world.clinic.id, {"late_upload_days": 10}, now=NOW)
    assert exercises.late_upload_days(world.clinic.id) == 10
    assert [e.detail for e in audits(db, AuditEntry.record_type == "checkin_settings")] == [
        "late_upload_days=3", "late_upload_days=10"]


@pytest.mark.parametrize("role", ["therapist", "assistant", "billing", "patient"])
def test_only_admins_set_the_late_window(db, world, role):
    with pytest.raises(Forbidden):
        exercises.set_checkin_settings(Actor(world.user(role)), world.clinic.id, {"late_upload_days": 3}, now=NOW)


def test_an_admin_of_another_organisation_cannot_set_it(db, world):
    from .conftest import make_user

    far_admin = make_user(world.foreign_clinic.organisation_id, "faradmin", "admin", None)
    with pytest.raises(NotFound):
        exercises.set_checkin_settings(Actor(far_admin), world.clinic.id, {"late_upload_days": 3}, now=NOW)
