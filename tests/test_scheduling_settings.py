"""Clinic scheduling rules, closures and working hours, and how cadence proposals follow them."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as care
from telerehab.careplans.models import Visit
from telerehab.careplans.rules import working_hours_problems
from telerehab.errors import NotFound, ValidationFailed

from .conftest import NOW, login

OPTIONS = {"modality_pattern": ["video"], "preferred_weekdays": [0, 2], "preferred_start": time(9, 0)}


@pytest.mark.parametrize(("intervals", "problems"), [
    ([], []),
    ([(0, time(8), time(12)), (0, time(13), time(17))], []),
    ([(0, time(8), time(12)), (0, time(12), time(17))], []),  # touching is not overlapping
    ([(0, time(8), time(12)), (0, time(11), time(17))], ["Monday: two intervals overlap."]),
    ([(6, time(9), time(9))], ["Sunday: the hours end before they start."]),
    ([(2, time(17), time(9))], ["Wednesday: the hours end before they start."]),
    ([(7, time(9), time(17))], ["A weekday is 0 (Monday) to 6 (Sunday)."]),
], ids=["none", "split-day", "touching", "overlap", "empty", "reversed", "bad-weekday"])
def test_working_hours_problems(intervals, problems):
    assert working_hours_problems(intervals) == problems


def test_clinic_rules_change_the_proposal(db, world):
    admin = Actor(world.admin)
    default = care.preview_cadence(Actor(world.therapist), world.episode.id, OPTIONS, now=NOW)
    assert default.visits[0].modality == "in_clinic" and default.visits[9].kind == "progress"
    care.update_care_settings(admin, world.clinic.id, {
        "initial_evaluation_in_clinic": False, "progress_every_treatment_visits": 5, "visit_minutes": 30}, now=NOW)
    changed = care.preview_cadence(Actor(world.therapist), world.episode.id, OPTIONS, now=NOW)
    assert changed.visits[0].modality == "video"
    assert changed.visits[4].kind == "progress"
    assert (changed.visits[0].end - changed.visits[0].start).seconds == 30 * 60


def test_closures_are_skipped_and_cannot_strand_visits(db, world):
    admin = Actor(world.admin)
    care.add_closure(admin, world.clinic.id, date(2026, 3, 2), "Inservice", now=NOW)
    proposal = care.preview_cadence(Actor(world.therapist), world.episode.id, OPTIONS, now=NOW)
    assert all(v.start.date() != date(2026, 3, 2) for v in proposal.visits)
    with pytest.raises(ValidationFailed) as error:
        care.add_closure(admin, world.clinic.id, date(2026, 3, 2), "Again", now=NOW)
    assert "already" in error.value.errors["day"][0]
    rows = [{"kind": v.kind, "modality": v.modality, "starts_at": v.start, "ends_at": v.end} for v in proposal.visits]
    visits = care.confirm_cadence(Actor(world.therapist), world.episode.id, rows, clinician_id=None, now=NOW)
    booked_day = visits[0].starts_at.astimezone(ZoneInfo("America/Chicago")).date()
    with pytest.raises(ValidationFailed) as error:
        care.add_closure(admin, world.clinic.id, booked_day, "Flood", now=NOW)
    assert "1 visit is booked" in error.value.errors["day"][0]


def test_working_hours_shape_the_proposal(db, world):
    care.set_working_hours(Actor(world.therapist), world.therapist.id,
                           [(0, time(13), time(17)), (2, time(13), time(17))], now=NOW)
    proposal = care.preview_cadence(Actor(world.therapist), world.episode.id, OPTIONS, now=NOW)
    local = [v.start.astimezone(ZoneInfo("America/Chicago")) for v in proposal.visits]
    assert all(t.hour >= 13 and t.weekday() in (0, 2) for t in local)
    user, hours, defaults = care.working_hours_for(Actor(world.therapist), world.therapist.id)
    assert user.id == world.therapist.id and not defaults and hours == {0: ((time(13), time(17)),), 2: ((time(13), time(17)),)}


def test_who_may_set_working_hours(db, world):
    with pytest.raises(NotFound):
        care.set_working_hours(Actor(world.assistant), world.therapist.id, [], now=NOW)
    with pytest.raises(NotFound):
        care.set_working_hours(Actor(world.foreign_therapist), world.therapist.id, [], now=NOW)
    care.set_working_hours(Actor(world.admin), world.therapist.id, [(1, time(8), time(12))], now=NOW)
    with pytest.raises(ValidationFailed) as error:
        care.set_working_hours(Actor(world.billing), world.billing.id, [], now=NOW)
    assert "therapists and assistants" in error.value.errors["user"][0]


def test_scheduling_page_saves_rules_and_shows_errors(client, world, db):
    login(client, "admin")
    path = f"/admin/clinics/{world.clinic.id}/scheduling"
    page = client.get(path).get_data(as_text=True)
    assert "Scheduling rules" in page and 'name="initial_evaluation_in_clinic" value="true"' in page
    bad = client.post(path, data={"form": "settings", "progress_every_treatment_visits": "12", "visit_minutes": "45"})
    assert bad.status_code == 422 and "at least every 10 treatment days" in bad.get_data(as_text=True)
    ok = client.post(path, data={"form": "settings", "progress_every_treatment_visits": "8", "visit_minutes": "40",
                                 "discharge_in_clinic": "true"})
    assert ok.status_code == 302
    settings = care.care_settings(world.clinic.id)
    db.session.refresh(settings)
    assert (settings.progress_every_treatment_visits, settings.visit_minutes, settings.discharge_in_clinic,
            settings.initial_evaluation_in_clinic) == (8, 40, True, False)
    bad_closure = client.post(path, data={"form": "closure", "day": "", "reason": "x"})
    assert bad_closure.status_code == 422


def test_hours_page_round_trip(client, world):
    login(client, "therapist")
    path = f"/staff/{world.therapist.id}/hours"
    assert "No hours are recorded yet" in client.get(path).get_data(as_text=True)
    bad = client.post(path, data={"start_0_0": "09:00", "end_0_0": "08:00"})
    assert bad.status_code == 422 and "Monday: the hours end before they start." in bad.get_data(as_text=True)
    assert client.post(path, data={"start_0_0": "07:30", "end_0_0": "12:00", "start_0_1": "13:00",
                                   "end_0_1": "16:00"}).status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert 'value="07:30"' in page and 'value="16:00"' in page


def test_payer_settings_decide_modifier_95(client, world, db):
    def video_lines():
        start = datetime(2026, 3, 3, 15, tzinfo=UTC) + timedelta(days=len(db.session.scalars(select(Visit)).all()))
        visit = care.schedule_visit(Actor(world.therapist), world.episode.id, {
            "kind": "treatment", "modality": "video", "starts_at": start, "ends_at": start + timedelta(minutes=40)},
            now=NOW)
        for status in ("in_progress", "completed"):
            care.change_visit_status(Actor(world.therapist), visit.id, status, now=NOW)
        return care.set_services(Actor(world.therapist), visit.id, [{"cpt_code": "97110", "minutes": 30}], now=NOW)

    assert video_lines()[0].modifiers == "GP 95"  # Medicare Part B default (§4.2)
    login(client, "admin")
    page = client.get("/admin/payers").get_data(as_text=True)
    assert 'name="modifier_95_medicare" checked' in page
    assert client.post("/admin/payers", data={"modifier_95_commercial": "on"}).status_code == 302
    assert care.payer_wants_modifier_95(world.clinic.organisation_id, "commercial") is True
    (line,) = video_lines()
    assert (line.modifiers, line.place_of_service) == ("GP", "10")  # the patient's payer is Medicare
