"""The home exercise pages through the test client: the patient's check-in, the staff calendar of
data days, program history and editing, the library, the clinic's check-in settings."""

from __future__ import annotations

import html as html_lib
import re
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.exercises import operations as exercises
from telerehab.exercises.models import CheckIn, ClinicExercise, Program

from .conftest import NOW, login
from .test_exercises_operations import make_program

CLOCK = NOW + timedelta(minutes=1)  # 09:01 in Chicago on Monday 2 March 2026


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    moment = {"now": CLOCK}
    monkeypatch.setattr("telerehab.exercises.views.utc_now", lambda: moment["now"])
    return moment


def count(db, model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{re.escape(field)}-error">(.*?)</p>', html, re.S)
    assert match, f"no error shown beside {field}"
    return html_lib.unescape(match.group(1))


def client_id_of(html: str) -> str:
    return re.search(r'name="client_id" value="([^"]+)"', html).group(1)


def checkin_form(client_id: str, items, **overrides) -> dict:
    form = {"client_id": client_id, "pain": "4", "difficulty": "ok", "note": "Felt good"}
    for item in items:
        form |= {f"done-{item.id}": "1", f"sets-{item.id}": str(item.sets), f"reps-{item.id}": str(item.reps)}
    return {**form, **overrides}


# ---------------------------------------------------------------- the patient's check-in

def test_the_check_in_page_lists_todays_exercises_prefilled(client, world):
    bridge, heel = make_program(world).items
    login(client, "ana")
    html = client.get("/check-in").get_data(as_text=True)
    assert "Today's check-in" in html and "Monday 2 March" in html
    assert "Bridge" in html and "Heel raise" in html
    assert f'name="sets-{bridge.id}"' in html and f'value="{bridge.sets}"' in html
    assert f'name="reps-{heel.id}"' in html and f'value="{heel.reps}"' in html
    uuid.UUID(client_id_of(html))  # a fresh UUID, made on the server
    assert all(f'name="pain" value="{n}"' in html for n in range(11))
    assert "Save check-in" in html and "Done for today" not in html
    assert "Lie on your back with knees bent" in html  # the how-to, from the library
    assert client_id_of(client.get("/check-in").get_data(as_text=True)) != client_id_of(html)


def test_a_check_in_then_done_for_today(client, world, db):
    program = make_program(world)
    login(client, "ana")
    client_id = client_id_of(client.get("/check-in").get_data(as_text=True))
    response = client.post("/check-in", data=checkin_form(client_id, program.items[:1]))
    assert response.status_code == 302 and response.headers["Location"] == "/check-in"
    html = client.get("/check-in").get_data(as_text=True)
    assert "Done for today" in html and "your check-in is saved" in html
    assert "1 exercise · pain 4/10 · OK" in html
    assert "Save check-in" not in html and "Add another check-in" in html
    row = db.session.scalars(select(CheckIn)).one()
    assert (str(row.client_id), row.source, row.local_date, row.pain, row.difficulty, row.note) == (
        client_id, "web", date(2026, 3, 2), 4, "ok", "Felt good")
    assert row.recorded_at == CLOCK and row.received_at == CLOCK
    assert [(e.program_item_id, e.sets_done) for e in row.exercises] == [(program.items[0].id, 3)]


def test_a_double_submit_stores_one_check_in(client, world, db):
    program = make_program(world)
    login(client, "ana")
    client_id = client_id_of(client.get("/check-in").get_data(as_text=True))
    form = checkin_form(client_id, program.items)
    assert client.post("/check-in", data=form).status_code == 302
    assert client.post("/check-in", data=form).status_code == 302
    assert count(db, CheckIn) == 1
    assert "already saved" in client.get("/check-in").get_data(as_text=True)


def test_another_check_in_the_same_day(client, world, db):
    make_program(world)
    login(client, "ana")
    client.post("/check-in", data={"client_id": str(uuid.uuid4()), "pain": "2"})
    html = client.get("/check-in?again=1").get_data(as_text=True)
    assert "Done for today" in html and "Save check-in" in html
    client.post("/check-in", data={"client_id": client_id_of(html), "pain": "5"})
    assert count(db, CheckIn) == 2


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"sets-{id}": "abc"}, "sets-{id}", "Not a valid integer"),
    ({"reps-{id}": "-3"}, "reps-{id}", "Not a valid integer"),
    ({"reps-{id}": "5000"}, "reps-{id}", "less than or equal to 1000"),
    ({"pain": "11"}, "pain", "less than or equal to 10"),
    ({"difficulty": "brutal"}, "difficulty", "Must be one of"),
    ({"note": "x" * 2001}, "note", "Longer than maximum length 2000"),
], ids=["sets-text", "reps-negative", "reps-huge", "pain-11", "difficulty", "note-long"])
def test_refused_input_is_shown_beside_its_field_and_kept(client, world, db, changes, field, message):
    item = make_program(world).items[0]
    login(client, "ana")
    form = checkin_form(str(uuid.uuid4()), [item])
    form.update({key.format(id=item.id): value for key, value in changes.items()})
    response = client.post("/check-in", data=form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in field_error(html, field.format(id=item.id))
    assert re.search(rf'name="done-{item.id}" value="1"\s+checked', html)  # the tick is kept
    if field != "note":
        assert ">Felt good</textarea>" in html  # the note is kept
    assert client_id_of(html) == form["client_id"]  # the same check-in, when sent again
    assert count(db, CheckIn) == 0


def test_an_empty_check_in_is_refused_with_a_message(client, world, db):
    make_program(world)
    login(client, "ana")
    response = client.post("/check-in", data={"client_id": str(uuid.uuid4())})
    assert response.status_code == 422
    assert "Tick an exercise you did" in response.get_data(as_text=True)
    assert count(db, CheckIn) == 0


def test_without_an_active_plan_there_is_nothing_to_check_in(client, world, db):
    careplans.update_episode(Actor(world.therapist), world.episode.id, {"status": "on_hold"}, now=NOW)
    login(client, "ana")
    html = client.get("/check-in").get_data(as_text=True)
    assert "You have no active plan of care" in html and "Save check-in" not in html
    response = client.post("/check-in", data={"client_id": str(uuid.uuid4()), "pain": "3"})
    assert response.status_code == 422
    assert "no active plan of care" in response.get_data(as_text=True)


def test_a_check_in_without_a_program_still_takes_pain(client, world, db):
    login(client, "ana")
    html = client.get("/check-in").get_data(as_text=True)
    assert "No exercises are set for today" in html
    assert client.post("/check-in", data={"client_id": client_id_of(html), "pain": "0"}).status_code == 302
    assert count(db, CheckIn) == 1


@pytest.mark.parametrize("username", ["therapist", "assistant", "billing", "admin"])
def test_staff_are_sent_home_from_the_patients_check_in(client, world, username):
    login(client, username)
    response = client.get("/check-in")
    assert response.status_code == 302 and response.headers["Location"] == "/"


# ---------------------------------------------------------------- staff: the calendar of data days

def _check_ins(world, *instants):
    for instant in instants:
        exercises.record_checkin(Actor(world.patient_user), world.patient.id, {
            "client_id": uuid.uuid4(), "recorded_at": instant, "pain": 3, "difficulty": "hard",
            "note": "Knee clicks", "exercises": []}, source="api", now=instant + timedelta(minutes=1))


def test_staff_see_the_months_data_days(client, world):
    _check_ins(world, NOW, NOW + timedelta(hours=2), NOW + timedelta(days=2))
    login(client, "therapist")
    html = client.get(f"/patients/{world.patient.id}/check-ins").get_data(as_text=True)
    assert "March 2026" in html
    assert re.search(r'class="data-day" data-date="2026-03-02"\s+aria-label="2026-03-02: 2 check-ins"', html)
    assert 'data-date="2026-03-04"' in html and 'aria-label="2026-03-03: 0 check-ins"' in html
    assert "2 data days" in html and "3 check-ins" in html
    assert "Knee clicks" in html and "Hard" in html
    assert f'href="/episodes/{world.episode.id}/program"' in html
    other_month = client.get(f"/patients/{world.patient.id}/check-ins?month=2026-04").get_data(as_text=True)
    assert "April 2026" in other_month and "0 data days" in other_month


def test_the_patient_detail_page_links_to_the_check_ins(client, world):
    login(client, "assistant")
    html = client.get(f"/patients/{world.patient.id}").get_data(as_text=True)
    assert f'href="/patients/{world.patient.id}/check-ins"' in html


def test_billing_sees_data_days_but_not_the_patients_words(client, world):
    _check_ins(world, NOW)
    login(client, "billing")
    html = client.get(f"/patients/{world.patient.id}/check-ins").get_data(as_text=True)
    assert "1 data day" in html and "Knee clicks" not in html
    assert "/program" not in html  # billing does not see programs


def test_a_late_upload_is_marked(client, world):
    recorded = NOW
    exercises.record_checkin(Actor(world.patient_user), world.patient.id, {
        "client_id": uuid.uuid4(), "recorded_at": recorded, "pain": 1, "exercises": []},
        source="api", now=recorded + timedelta(days=2, hours=3))
    login(client, "therapist")
    html = client.get(f"/patients/{world.patient.id}/check-ins?month=2026-03").get_data(as_text=True)
    assert "uploaded 2 d 3 h later" in html


def test_another_clinics_patient_is_not_found(client, world):
    login(client, "therapist")
    assert client.get(f"/patients/{world.other_patient.id}/check-ins").status_code == 404


@pytest.mark.parametrize("month", ["2026-13", "march", "", "9999-99"])
def test_a_bad_month_shows_the_current_one(client, world, month):
    login(client, "therapist")
    response = client.get(f"/patients/{world.patient.id}/check-ins?month={month}")
    assert response.status_code == 200 and "March 2026" in response.get_data(as_text=True)


# ---------------------------------------------------------------- programs

def test_the_program_page_shows_what_is_in_force_and_the_history(client, world):
    make_program(world, note="Start gently")
    make_program(world, {"exercise_key": "step-up", "load": "low step"}, effective_from=date(2026, 3, 9))
    login(client, "therapist")
    html = client.get(f"/episodes/{world.episode.id}/program").get_data(as_text=True)
    assert "In force on 2026-03-02 (today)" in html and "version 1" in html
    assert "Version 2</strong> · in force from 2026-03-09" in html and "Start gently" in html
    assert "Change the program" in html
    later = client.get(f"/episodes/{world.episode.id}/program?on=2026-03-09").get_data(as_text=True)
    in_force = later.split('id="in-force"')[1].split("</article>")[0]
    assert "Step-up" in in_force and "low step" in in_force and "Bridge" not in in_force
    before = client.get(f"/episodes/{world.episode.id}/program?on=2026-03-01").get_data(as_text=True)
    assert "No program was in force on this day." in before


def test_the_patient_sees_their_program_but_cannot_change_it(client, world):
    make_program(world)
    login(client, "ana")
    html = client.get(f"/episodes/{world.episode.id}/program").get_data(as_text=True)
    assert "Bridge" in html and "Change the program" not in html
    assert client.get(f"/episodes/{world.episode.id}/program/edit").status_code == 403


def _program_form(**overrides) -> dict:
    return {"effective_from": "2026-03-02", "change_note": "Progressed",
            "items-0-exercise_key": "glute-bridge", "items-0-sets": "4", "items-0-reps": "12",
            "items-0-hold_seconds": "", "items-0-load": "", "items-0-times_per_day": "", "items-0-days_per_week": "",
            "items-0-start_date": "", "items-0-end_date": "", "items-0-notes": "Squeeze at the top",
            "items-1-exercise_key": "", "items-1-sets": "", **overrides}


def test_editing_the_program_makes_a_new_version(client, world, db):
    first = make_program(world)
    login(client, "assistant")
    form = client.get(f"/episodes/{world.episode.id}/program/edit").get_data(as_text=True)
    assert "saving makes version 2" in form
    assert re.search(r'<option value="glute-bridge"\s+selected>', form)
    assert 'name="items-3-exercise_key"' in form and 'name="items-4-exercise_key"' in form  # blank rows
    response = client.post(f"/episodes/{world.episode.id}/program/edit", data=_program_form())
    assert response.status_code == 302
    assert response.headers["Location"] == f"/episodes/{world.episode.id}/program"
    db.session.expire_all()
    latest = db.session.scalars(select(Program).order_by(Program.version.desc())).first()
    assert latest.version == 2 and latest.change_note == "Progressed"
    assert [(i.exercise_key, i.sets, i.reps, i.hold_seconds, i.notes) for i in latest.items] == [
        ("glute-bridge", 4, 12, 3, "Squeeze at the top")]
    assert [i.exercise_key for i in db.session.get(Program, first.id).items] == ["glute-bridge", "heel-raise"]


def test_a_removed_row_is_left_out(client, world, db):
    make_program(world)
    login(client, "therapist")
    form = _program_form(**{"items-1-exercise_key": "heel-raise", "items-1-remove": "1"})
    assert client.post(f"/episodes/{world.episode.id}/program/edit", data=form).status_code == 302
    db.session.expire_all()
    latest = db.session.scalars(select(Program).order_by(Program.version.desc())).first()
    assert [i.exercise_key for i in latest.items] == ["glute-bridge"]


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"items-0-sets": "0"}, "items-0-sets", "greater than or equal to 1"),
    ({"items-0-reps": "ten"}, "items-0-reps", "Not a valid integer"),
    ({"items-0-start_date": "2026-03-05", "items-0-end_date": "2026-03-04"}, "items-0-end_date", "before the start"),
    ({"effective_from": "2026-03-01"}, "effective_from", "today or later"),
    ({"effective_from": "someday"}, "effective_from", "Not a valid date"),
], ids=["zero-sets", "text-reps", "end-before-start", "backdated", "bad-date"])
def test_a_refused_program_form_shows_the_message_beside_the_field(client, world, db, changes, field, message):
    login(client, "therapist")
    response = client.post(f"/episodes/{world.episode.id}/program/edit", data=_program_form(**changes))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in field_error(html, field)
    assert "Squeeze at the top" in html  # the input is kept
    assert count(db, Program) == 0


def test_billing_cannot_open_the_program(client, world):
    make_program(world)
    login(client, "billing")
    assert client.get(f"/episodes/{world.episode.id}/program").status_code == 403


# ---------------------------------------------------------------- the library

def test_the_library_page_searches(client, world):
    login(client, "therapist")
    html = client.get("/exercises?q=calf").get_data(as_text=True)
    assert "Calf stretch at the wall" in html and "Bridge" not in html
    html = client.get("/exercises?region=neck&equipment=none").get_data(as_text=True)
    assert "Chin tuck" in html and "Side neck stretch" not in html  # that one needs a chair
    assert "Add your clinic's own exercise" in html


def test_a_clinician_adds_an_exercise_from_the_library_page(client, world, db):
    login(client, "assistant")
    form = {"name": "Step-over drill", "body_region": "balance", "instructions": "Step over the cones slowly.",
            "equipment": "cones, low step", "sets": "2", "reps": "8", "hold_seconds": "0", "times_per_day": "1",
            "days_per_week": "5", "media": ""}
    response = client.post("/exercises", data=form)
    assert response.status_code == 302
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Step-over drill" in html and "cones, low step" in html
    bad = client.post("/exercises", data={**form, "name": "Step-over drill 2", "reps": "0"})
    assert bad.status_code == 422 and "greater than or equal to 1" in field_error(bad.get_data(as_text=True), "reps")
    assert count(db, ClinicExercise) == 1


def test_admins_browse_the_library_but_do_not_add(client, world):
    login(client, "admin")
    html = client.get("/exercises").get_data(as_text=True)
    assert "Bridge" in html and "Add your clinic's own exercise" not in html
    assert client.post("/exercises", data={"name": "X"}).status_code == 403


# ---------------------------------------------------------------- check-in settings

def test_an_admin_sets_the_late_window(client, world):
    login(client, "admin")
    path = f"/clinics/{world.clinic.id}/check-in-settings"
    assert 'value="7"' in client.get(path).get_data(as_text=True)
    bad = client.post(path, data={"late_upload_days": "0"})
    assert bad.status_code == 422
    assert "greater than or equal to 1" in field_error(bad.get_data(as_text=True), "late_upload_days")
    assert client.post(path, data={"late_upload_days": "3"}).status_code == 302
    assert 'value="3"' in client.get(path).get_data(as_text=True)
    assert exercises.late_upload_days(world.clinic.id) == 3
