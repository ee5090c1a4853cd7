"""The visit pages through the test client: the calendar, the episode's timeline and cadence, the
visit page (status, reschedule, note, services), the patient's visits and video-slot offers, and the
ICS feed. Each page's main path, refused input re-shown beside its field, and scope.

The pages read the clock through `telerehab.careplans.views.utc_now`; the `clock` fixture sets it to
NOW (Monday 2 March 2026, 09:00 in Chicago) so that "this week" and "upcoming" are fixed.
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import event, func, select

from telerehab.accounts import operations as accounts
from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as careplans
from telerehab.careplans.models import Recertification, ServiceLine, VideoSlotOffer, Visit
from telerehab.extensions import db as _db

from .conftest import NOW, episode_data, login, patient_data

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    monkeypatch.setattr("telerehab.careplans.views.utc_now", lambda: NOW)


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """A Chicago wall time in 2026, as UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=CHICAGO).astimezone(UTC)


def schedule(world, starts_at: datetime, *, modality="in_clinic", kind="treatment", minutes=45, episode=None,
             clinician=None, room=None):
    episode = episode or world.episode
    return careplans.schedule_visit(Actor(world.therapist), episode.id, {
        "kind": kind, "modality": modality, "starts_at": starts_at,
        "ends_at": starts_at + timedelta(minutes=minutes),
        "clinician_id": (clinician or world.therapist).id, "room": room,
    }, now=NOW)


def count(model, *where) -> int:
    _db.session.expire_all()
    return _db.session.scalar(select(func.count()).select_from(model).where(*where))


def text(response) -> str:
    return response.get_data(as_text=True)


def field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{re.escape(field)}-error"[^>]*>(.*?)</p>', html, re.S)
    assert match, f"no error shown beside {field}"
    return html_lib.unescape(match.group(1))


# ---------------------------------------------------------------- the calendar

def test_week_calendar_tells_clinic_and_video_apart_in_the_clinic_timezone(client, world):
    clinic = schedule(world, at(3, 9), room="2")
    video = schedule(world, at(4, 14, 30), modality="video")
    login(client, "therapist")
    response = client.get("/calendar?date=2026-03-04")
    html = text(response)
    assert response.status_code == 200
    assert "Week of Mon 02 Mar \N{EN DASH} Sun 08 Mar 2026" in html and "times in America/Chicago" in html
    assert html.count('class="visit-card ') == 2
    clinic_card = re.search(rf'<li class="visit-card visit-clinic[^"]*" data-visit-id="{clinic.id}">(.*?)</li>',
                            html, re.S).group(1)
    video_card = re.search(rf'<li class="visit-card visit-video[^"]*" data-visit-id="{video.id}">(.*?)</li>',
                           html, re.S).group(1)
    # Told apart by colour class AND icon and label; the patient, kind and status are on each card.
    assert "modality-clinic" in clinic_card and "In clinic" in clinic_card and "<svg" in clinic_card
    assert "modality-video" in video_card and "Video" in video_card and "<svg" in video_card
    for card in (clinic_card, video_card):
        assert "Ana Alvarez" in card and "Treatment" in card and "Scheduled" in card
    assert "09:00" in clinic_card and "14:30" in video_card  # Chicago wall time, not UTC
    # Only the video visit has a Join button, leading to its video room.
    assert f'href="/visits/{video.id}/room"' in video_card and re.search(r"</svg>\s*Join</a>", video_card)
    assert "/room" not in clinic_card
    # Previous and next week.
    assert 'href="/calendar?view=week&amp;date=2026-02-23"' in html
    assert 'href="/calendar?view=week&amp;date=2026-03-09"' in html
    nothing = text(client.get("/calendar?date=2026-03-09"))
    assert "visit-card" not in nothing and "0 visits" in nothing


def test_calendar_defaults_to_this_week_and_has_a_day_view(client, world):
    schedule(world, at(3, 9))
    schedule(world, at(5, 10), modality="video")
    login(client, "therapist")
    html = text(client.get("/calendar"))
    assert "Week of Mon 02 Mar" in html and "2 visits" in html and "cal-today" in html
    day = text(client.get("/calendar?view=day&date=2026-03-05"))
    assert "Thursday 05 March 2026" in day and day.count('class="visit-card ') == 1
    assert 'href="/calendar?view=day&amp;date=2026-03-04"' in day


def test_calendar_refuses_a_bad_date_beside_the_field(client, world):
    login(client, "therapist")
    response = client.get("/calendar?date=2026-13-45")
    assert response.status_code == 422
    assert "YYYY-MM-DD" in field_error(text(response), "date")
    assert client.get("/calendar?date=99999-01-01").status_code == 422


def test_calendar_htmx_navigation_returns_only_the_calendar(client, world):
    login(client, "therapist")
    response = client.get("/calendar?date=2026-03-09", headers={"HX-Request": "true"})
    partial = text(response)
    assert response.status_code == 200 and "<html" not in partial and "Week of Mon 09 Mar" in partial
    assert "HX-Request" in response.headers["Vary"]


def test_assistant_and_admin_pick_a_clinician_of_their_clinic(client, world):
    schedule(world, at(3, 9))
    login(client, "assistant")
    own = text(client.get("/calendar?date=2026-03-02"))
    assert "Your visits" in own and 'id="calendar-clinician"' in own and "0 visits" in own
    theirs = text(client.get(f"/calendar?date=2026-03-02&clinician={world.therapist.id}"))
    assert "Therapist&#39;s visits" in theirs and "Ana Alvarez" in theirs
    # A clinician of another clinic is not offered, and asking for one finds nothing.
    assert client.get(f"/calendar?clinician={world.other_therapist.id}").status_code == 404
    client.post("/logout")
    login(client, "admin")
    assert "Ana Alvarez" in text(client.get(f"/calendar?date=2026-03-02&clinician={world.therapist.id}"))


def test_a_therapist_sees_only_their_own_calendar(client, world):
    schedule(world, at(3, 9))
    login(client, "therapist2")
    html = text(client.get("/calendar?date=2026-03-02"))
    assert "Ana Alvarez" not in html and 'id="calendar-clinician"' not in html
    assert client.get(f"/calendar?clinician={world.therapist.id}").status_code == 404


def test_patients_are_sent_from_the_calendar_to_their_visits(client, world):
    login(client, "ana")
    response = client.get("/calendar")
    assert response.status_code == 302 and response.headers["Location"] == "/my-visits"


def test_calendar_lists_the_caseload_alerts(client, world):
    ending = careplans.create_episode(Actor(world.therapist), world.patient.id, episode_data(
        title="Left shoulder", certification_end=date(2026, 3, 6)), now=NOW)
    login(client, "therapist")
    html = html_lib.unescape(text(client.get("/calendar")))
    assert "Plans of care needing attention" in html
    assert f'href="/episodes/{ending.id}"' in html
    assert "The certification ends on 2026-03-06 (4 days left): recertify to continue." in html
    assert "Right knee OA" not in html  # the other plan is fine: not listed


def _statements(client, path: str) -> tuple[list[str], str]:
    """Every SQL statement sent to the database while the page renders, and the page."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(_db.engine, "before_cursor_execute", record)
    try:
        response = client.get(path)
    finally:
        event.remove(_db.engine, "before_cursor_execute", record)
    assert response.status_code == 200
    return statements, text(response)


@pytest.fixture
def busy_week(client, world):
    """A function that books visits of 8 patients (8 active plans, one visit a day each, Monday
    to Friday) into the therapist's week of 2 March, and the calendar's path."""
    therapist = Actor(world.therapist)
    episodes = [world.episode]
    for number in range(7):
        patient = accounts.create_patient(therapist, patient_data(
            first_name=f"P{number}", primary_therapist_id=world.therapist.id), now=NOW)
        episodes.append(careplans.create_episode(therapist, patient.id, episode_data(), now=NOW))
    slots = [(day, hour) for day in range(2, 7) for hour in range(8, 16)]  # Mon-Fri, 8 one-hour slots

    def book(numbers):
        for number in numbers:
            day, hour = slots[number]
            schedule(world, at(day, hour), modality="video" if number % 3 else "in_clinic",
                     episode=episodes[hour - 8])

    login(client, "therapist")
    return book, "/calendar?date=2026-03-02"


# Sign-in (user, clinic), the visits with their episodes, patients, clinics and clinicians (one
# query each), then the caseload alerts: the active plans with their patients and clinics, and
# the visits, recertifications and clinic settings of all of them at once (6 in all, whatever the
# number of plans).
READ_BOUND = 7 + 6


def test_week_calendar_with_40_visits_reads_in_a_bounded_number_of_queries(client, busy_week):
    book, path = busy_week
    book(range(10))
    with_10, html = _statements(client, path)
    assert html.count('class="visit-card ') == 10
    book(range(10, 40))
    with_40, html = _statements(client, path)
    assert html.count('class="visit-card ') == 40
    assert html.count("modality-video") == 26 and html.count("modality-clinic") == 14
    reads_10 = [s for s in with_10 if s.lstrip().upper().startswith("SELECT")]
    reads_40 = [s for s in with_40 if s.lstrip().upper().startswith("SELECT")]
    assert len(reads_40) == len(reads_10), "the calendar's reads grow with its visits"
    assert len(reads_40) <= READ_BOUND, reads_40


def test_week_calendar_with_40_visits_writes_its_audit_in_one_statement(client, busy_week):
    """Every visit shown is audited as read; the rows should go in one statement, not one each."""
    book, path = busy_week
    book(range(10))
    with_10, _ = _statements(client, path)
    book(range(10, 40))
    with_40, _ = _statements(client, path)
    assert len(with_40) == len(with_10), "the calendar's statements grow with its visits"
    assert len(with_40) <= READ_BOUND + 1


# ---------------------------------------------------------------- the episode: alerts, timeline, recertification

def test_episode_page_links_the_timeline_and_shows_alerts(client, world):
    ending = careplans.create_episode(Actor(world.therapist), world.patient.id, episode_data(
        title="Left shoulder", certification_end=date(2026, 3, 6)), now=NOW)
    login(client, "therapist")
    html = html_lib.unescape(text(client.get(f"/episodes/{ending.id}")))
    assert f'href="/episodes/{ending.id}/visits"' in html and f'href="/episodes/{ending.id}/cadence"' in html
    assert "Needs attention" in html and "(4 days left)" in html
    assert "Record a recertification" in html
    client.post("/logout")
    login(client, "billing")
    html = text(client.get(f"/episodes/{ending.id}"))
    assert "Visit timeline" in html and "Plan visits" not in html and "Record a recertification" not in html


def recert_form(**overrides) -> dict:
    return {"certification_start": "2026-05-31", "certification_end": "2026-08-28",
            "certifying_physician_name": "Dr. Hale", "certifying_physician_npi": "1234567893",
            "certification_signed_on": "", **overrides}


def test_recertification_is_recorded(client, world):
    login(client, "therapist")
    response = client.post(f"/episodes/{world.episode.id}/recertifications", data=recert_form())
    assert response.status_code == 302
    assert response.headers["Location"] == f"/episodes/{world.episode.id}#certification"
    html = text(client.get(f"/episodes/{world.episode.id}"))
    assert "Recertified</span> through 2026-08-28" in html
    assert count(Recertification) == 1


@pytest.mark.parametrize(("field", "value", "message"), [
    ("certifying_physician_npi", "1234567890", "check digit"),
    ("certification_start", "2026-05-01", "starts after 2026-05-30"),
    ("certification_end", "not a date", "Not a valid date"),
    ("certifying_physician_name", "", "Missing data"),
    ("certification_end", "9999-12-31", "Give a date from"),
])
def test_recertification_refuses_bad_input_beside_the_field(client, world, field, value, message):
    login(client, "therapist")
    response = client.post(f"/episodes/{world.episode.id}/recertifications", data=recert_form(**{field: value}))
    assert response.status_code == 422
    html = text(response)
    assert message in field_error(html, field)
    assert "<details open" in html  # the form stays open with the input kept
    assert count(Recertification) == 0


def test_timeline_lists_the_visits_and_adds_one(client, world):
    schedule(world, at(3, 9), kind="initial_evaluation")
    schedule(world, at(5, 9), modality="video")
    login(client, "therapist")
    html = text(client.get(f"/episodes/{world.episode.id}/visits"))
    assert html.count('class="timeline-item ') == 2
    assert "Initial evaluation" in html and "modality-video" in html and "2 still to come" in html
    response = client.post(f"/episodes/{world.episode.id}/visits", data={
        "kind": "treatment", "modality": "video", "clinician_id": str(world.therapist.id),
        "date": "2026-03-10", "time": "11:15", "minutes": "30", "room": ""})
    assert response.status_code == 302
    visit = _db.session.scalar(select(Visit).order_by(Visit.id.desc()))
    assert response.headers["Location"] == f"/visits/{visit.id}"
    assert visit.starts_at == at(10, 11, 15) and visit.ends_at - visit.starts_at == timedelta(minutes=30)


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"date": "2026-03-03"}, "date", "already has a visit"),  # the patient's other visit that day
    ({"date": "2026-03-08", "time": "02:30"}, "time", "clocks change"),  # skipped by the DST change
    ({"minutes": "0"}, "minutes", "Give 5 to 240 minutes."),
    ({"kind": "nap"}, "kind", "Must be one of"),
    ({"date": "2026-02-27"}, "date", "before the episode starts"),
    ({"date": "9999-12-31", "time": "23:30"}, "date", "Give a date from 2000-01-01 to 2100-12-31."),
])
def test_single_visit_refuses_bad_input_beside_the_field(client, world, overrides, field, message):
    schedule(world, at(3, 9))
    login(client, "therapist")
    form = {"kind": "treatment", "modality": "in_clinic", "clinician_id": str(world.therapist.id),
            "date": "2026-03-10", "time": "09:00", "minutes": "45", "room": "", **overrides}
    response = client.post(f"/episodes/{world.episode.id}/visits", data=form)
    assert response.status_code == 422
    assert message in field_error(text(response), field)
    assert count(Visit) == 1


# ---------------------------------------------------------------- cadence: options, preview, confirm

def options(world, **overrides) -> dict:
    return {"step": "preview", "clinician_id": str(world.therapist.id), "start_date": "2026-03-02",
            "preferred_start": "09:00", "visit_minutes": "45", "pattern": ["in_clinic", "video", "video", ""],
            "weekdays": ["0", "3"], **overrides}


def preview_rows(html: str) -> list[dict]:
    rows = []
    for index in range(int(re.search(r'name="visit_count" value="(\d+)"', html).group(1))):
        row = {}
        for name in ("kind", "date", "time", "minutes"):
            row[name] = re.search(rf'name="visits-{index}-{name}" value="([^"]*)"', html).group(1)
        select_html = re.search(rf'name="visits-{index}-modality".*?</select>', html, re.S).group(0)
        row["modality"] = re.search(r'<option value="(\w+)" selected', select_html).group(1)
        row["flags"] = re.search(rf'name="visits-{index}-flags" value="([^"]*)"', html).group(1)
        rows.append(row)
    return rows


def confirm_form(world, rows: list[dict], **extra) -> dict:
    form = {**options(world), "step": "confirm", "visit_count": str(len(rows))}
    for index, row in enumerate(rows):
        for name, value in row.items():
            if name == "remove":
                if value:
                    form[f"visits-{index}-remove"] = "1"
            else:
                form[f"visits-{index}-{name}"] = value
    return {**form, **extra}


def test_cadence_form_starts_from_the_plan(client, world):
    login(client, "therapist")
    html = text(client.get(f"/episodes/{world.episode.id}/cadence"))
    assert 'id="weekday-0" name="weekdays" value="0" checked' in html  # twice a week: Mon, Thu
    assert 'id="weekday-3" name="weekdays" value="3" checked' in html
    assert 'id="weekday-1" name="weekdays" value="1" >' in html
    assert 'value="09:00"' in html and 'id="visit_minutes" name="visit_minutes" value="45"' in html
    assert "Preview visits" in html and "Confirm visits" not in html


def test_cadence_preview_proposes_the_hybrid_series(client, world):
    login(client, "therapist")
    response = client.post(f"/episodes/{world.episode.id}/cadence", data=options(world))
    html = text(response)
    assert response.status_code == 200
    rows = preview_rows(html)
    assert len(rows) == 16  # 2 a week for 8 weeks
    assert rows[0] == {"kind": "initial_evaluation", "date": "2026-03-02", "time": "09:00", "minutes": "45",
                       "modality": "in_clinic", "flags": ""}
    assert [r["modality"] for r in rows[1:7]] == ["in_clinic", "video", "video"] * 2
    assert rows[-1]["kind"] == "discharge" and rows[-1]["modality"] == "in_clinic"
    assert {r["date"] for r in rows} <= {(date(2026, 3, 2) + timedelta(days=d)).isoformat() for d in range(0, 56)}
    assert "Confirm visits" in html and count(Visit) == 0  # nothing booked by a preview


def test_cadence_preview_flags_and_explains_what_it_could_not_plan(client, world):
    schedule(world, at(2, 9, 0), kind="initial_evaluation")  # the therapist's Monday 9:00 is taken
    login(client, "therapist")
    html = html_lib.unescape(text(client.post(f"/episodes/{world.episode.id}/cadence", data=options(
        world, start_date="2026-05-18"))))
    rows = preview_rows(html)
    # From 18 May the series runs past the certification end (30 May): those are not proposed.
    assert "falls after the certification end (2026-05-30): not proposed; record a recertification" in html
    assert all(r["date"] <= "2026-05-30" for r in rows)
    html = html_lib.unescape(text(client.post(f"/episodes/{world.episode.id}/cadence", data=options(world))))
    first = preview_rows(html)[0]
    assert first["date"] != "2026-03-02"  # the patient already has a visit that Monday
    assert "Not a preferred day" in html or "Later than the preferred time" in html


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"pattern": ["", "", "", ""]}, "modality_pattern", "at least the first treatment visit"),
    ({"pattern": ["in_clinic", "teleport", "", ""]}, "modality_pattern", "clinic or on video"),
    ({"preferred_start": "9 o'clock"}, "preferred_start", "Not a valid time"),
    ({"visit_minutes": "500"}, "visit_minutes", "Give 5 to 240 minutes."),
    ({"start_date": "2026-02-30"}, "start_date", "Not a valid date"),
    ({"start_date": "9999-12-01"}, "start_date", "Give a date from 2000-01-01"),
    ({"weekdays": ["0", "monday"]}, "preferred_weekdays", "Tick weekdays"),
    ({"clinician_id": "999"}, "clinician_id", "active therapist or assistant of this clinic"),
])
def test_cadence_preview_refuses_bad_options_beside_the_field(client, world, overrides, field, message):
    login(client, "therapist")
    response = client.post(f"/episodes/{world.episode.id}/cadence", data=options(world, **overrides))
    html = text(response)
    assert response.status_code == 422
    assert message in field_error(html, field)
    assert "Confirm visits" not in html


def test_cadence_confirm_books_the_edited_series(client, world):
    login(client, "therapist")
    rows = preview_rows(text(client.post(f"/episodes/{world.episode.id}/cadence", data=options(world))))
    rows[2]["modality"] = "in_clinic"  # a video visit moved to the clinic
    rows[3]["time"] = "13:30"  # and another to the afternoon
    rows[4]["remove"] = True  # one left out
    response = client.post(f"/episodes/{world.episode.id}/cadence", data=confirm_form(world, rows))
    assert response.status_code == 302
    assert response.headers["Location"] == f"/episodes/{world.episode.id}/visits"
    visits = list(_db.session.scalars(select(Visit).order_by(Visit.starts_at)))
    assert len(visits) == 15
    assert visits[0].kind == "initial_evaluation" and visits[0].modality == "in_clinic"
    assert visits[2].modality == "in_clinic"
    assert visits[3].starts_at == datetime.combine(
        date.fromisoformat(rows[3]["date"]), datetime.min.time().replace(hour=13, minute=30), CHICAGO
    ).astimezone(UTC)
    assert rows[4]["date"] not in {v.starts_at.astimezone(CHICAGO).date().isoformat() for v in visits}
    timeline = text(client.get(response.headers["Location"]))
    assert "15 visits scheduled." in timeline and timeline.count('class="timeline-item ') == 15


TELEHEALTH_CONSENT_ADVICE = "record the patient's telehealth consent"


def record_telehealth_consent(world):
    accounts.record_consent(Actor(world.therapist), world.patient.id, "telehealth", method="verbal", note=None,
                            now=NOW)


def consent_warning(html: str) -> str | None:
    match = re.search(r'<div id="consent-alert".*?</div>', html, re.S)
    return html_lib.unescape(match.group(0)) if match else None


def flashed_warning(html: str) -> str | None:
    match = re.search(r'<p class="flash flash-warning"[^>]*>(.*?)</p>', html, re.S)
    return html_lib.unescape(match.group(1)) if match else None


def test_cadence_preview_and_confirm_warn_without_telehealth_consent_but_book(client, world):
    login(client, "therapist")
    preview = text(client.post(f"/episodes/{world.episode.id}/cadence", data=options(world)))
    rows = preview_rows(preview)
    first_video = min(r["date"] for r in rows if r["modality"] == "video")
    warning = consent_warning(preview)
    assert warning and f"from {first_video}" in warning and TELEHEALTH_CONSENT_ADVICE in warning
    confirmed = client.post(f"/episodes/{world.episode.id}/cadence", data=confirm_form(world, rows),
                            follow_redirects=True)
    assert confirmed.status_code == 200 and count(Visit) == len(rows)  # warned, not refused
    warning = flashed_warning(text(confirmed))
    assert warning and f"from {first_video}" in warning and TELEHEALTH_CONSENT_ADVICE in warning


def test_cadence_pages_do_not_warn_with_consent_or_without_video_visits(client, world):
    login(client, "therapist")
    clinic_only = text(client.post(f"/episodes/{world.episode.id}/cadence", data=options(
        world, pattern=["in_clinic", "", "", ""])))
    assert preview_rows(clinic_only) and consent_warning(clinic_only) is None
    record_telehealth_consent(world)
    preview = text(client.post(f"/episodes/{world.episode.id}/cadence", data=options(world)))
    assert consent_warning(preview) is None
    confirmed = client.post(f"/episodes/{world.episode.id}/cadence", data=confirm_form(world, preview_rows(preview)),
                            follow_redirects=True)
    assert "visits scheduled." in text(confirmed) and flashed_warning(text(confirmed)) is None


def test_a_refused_confirmation_still_shows_the_consent_warning(client, world):
    login(client, "therapist")
    rows = preview_rows(text(client.post(f"/episodes/{world.episode.id}/cadence", data=options(world))))
    rows[5]["date"], rows[5]["time"] = rows[4]["date"], "15:00"  # two visits on one day: refused
    response = client.post(f"/episodes/{world.episode.id}/cadence", data=confirm_form(world, rows))
    assert response.status_code == 422 and count(Visit) == 0
    assert TELEHEALTH_CONSENT_ADVICE in (consent_warning(text(response)) or "")


def test_a_single_video_visit_is_booked_with_a_consent_warning(client, world):
    login(client, "therapist")
    form = {"kind": "treatment", "modality": "video", "clinician_id": str(world.therapist.id),
            "date": "2026-03-10", "time": "11:15", "minutes": "30", "room": ""}
    booked = client.post(f"/episodes/{world.episode.id}/visits", data=form, follow_redirects=True)
    assert booked.status_code == 200 and count(Visit, Visit.modality == "video") == 1
    warning = flashed_warning(text(booked))
    assert warning and "from 2026-03-10" in warning and TELEHEALTH_CONSENT_ADVICE in warning
    in_clinic = client.post(f"/episodes/{world.episode.id}/visits", data={**form, "modality": "in_clinic",
                                                                          "date": "2026-03-11"},
                            follow_redirects=True)
    assert count(Visit) == 2 and flashed_warning(text(in_clinic)) is None


def test_the_calendar_lists_video_visits_without_telehealth_consent(client, world):
    schedule(world, at(4, 10), modality="video")
    login(client, "therapist")
    html = html_lib.unescape(text(client.get("/calendar?date=2026-03-02")))
    assert "Plans of care needing attention" in html and f'href="/episodes/{world.episode.id}"' in html
    assert "Video visits are planned from 2026-03-04" in html and TELEHEALTH_CONSENT_ADVICE in html
    record_telehealth_consent(world)
    assert "needing attention" not in text(client.get("/calendar?date=2026-03-02"))


def test_cadence_confirm_shows_a_clash_beside_its_row_and_books_nothing(client, world):
    login(client, "therapist")
    rows = preview_rows(text(client.post(f"/episodes/{world.episode.id}/cadence", data=options(world))))
    rows[1]["remove"] = True  # a removed row before it: the message still lands on the right row
    rows[5]["date"] = rows[4]["date"]  # two visits for the patient on one day
    rows[5]["time"] = "15:00"
    response = client.post(f"/episodes/{world.episode.id}/cadence", data=confirm_form(world, rows))
    html = text(response)
    assert response.status_code == 422
    assert f"already has a visit on {rows[4]['date']}" in field_error(html, "visits-5-row")
    assert 'name="visits-5-time" value="15:00"' in html  # the edits are kept
    assert 'id="visits-1-remove" name="visits-1-remove" value="1" checked' in html
    assert "visits-4-row-error" not in html
    assert count(Visit) == 0


@pytest.mark.parametrize(("name", "value", "message"), [
    ("date", "2026-03-32", "YYYY-MM-DD"),
    ("time", "25:00", "HH:MM"),
    ("minutes", "-5", "whole minutes"),
    ("modality", "hologram", "clinic or video"),
])
def test_cadence_confirm_refuses_a_bad_row_beside_its_input(client, world, name, value, message):
    login(client, "therapist")
    rows = preview_rows(text(client.post(f"/episodes/{world.episode.id}/cadence", data=options(world))))
    rows[1][name] = value
    response = client.post(f"/episodes/{world.episode.id}/cadence", data=confirm_form(world, rows))
    assert response.status_code == 422
    assert message in field_error(text(response), f"visits-1-{name}")
    assert count(Visit) == 0


def test_cadence_confirm_with_every_row_removed_is_refused(client, world):
    login(client, "therapist")
    rows = preview_rows(text(client.post(f"/episodes/{world.episode.id}/cadence", data=options(world))))
    for row in rows:
        row["remove"] = True
    response = client.post(f"/episodes/{world.episode.id}/cadence", data=confirm_form(world, rows))
    assert response.status_code == 422
    assert "Confirm at least one visit." in text(response)


def test_cadence_is_for_those_who_schedule(client, world):
    login(client, "billing")
    assert client.get(f"/episodes/{world.episode.id}/cadence").status_code == 403
    assert client.post(f"/episodes/{world.episode.id}/cadence", data=options(world)).status_code == 403


# ---------------------------------------------------------------- the visit page: status and reschedule

def test_clinic_visit_moves_through_its_statuses(client, world):
    visit = schedule(world, at(3, 9))
    login(client, "therapist")
    html = text(client.get(f"/visits/{visit.id}"))
    assert ">Check in<" in html and ">Start visit<" not in html and "Cancel visit" in html
    for status, label, next_button in (("checked_in", "checked in", "Start visit"),
                                       ("in_progress", "in progress", "Complete visit"),
                                       ("completed", "completed", None)):
        response = client.post(f"/visits/{visit.id}/status", data={"status": status})
        assert response.status_code == 302
        html = text(client.get(f"/visits/{visit.id}"))
        assert f"The visit is now {label}." in html
        if next_button:
            assert f">{next_button}<" in html
    assert "Cancel visit" not in html and "Reschedule" not in html  # a completed visit is final


def test_video_visit_starts_without_check_in_and_has_its_call_anchor(client, world):
    visit = schedule(world, at(3, 9), modality="video")
    login(client, "therapist")
    html = text(client.get(f"/visits/{visit.id}"))
    assert 'id="call"' in html and f'href="/visits/{visit.id}/room"' in html and ">Start visit<" in html
    assert client.post(f"/visits/{visit.id}/status", data={"status": "in_progress"}).status_code == 302


def test_a_transition_not_allowed_is_refused(client, world):
    visit = schedule(world, at(3, 9))
    login(client, "therapist")
    response = client.post(f"/visits/{visit.id}/status", data={"status": "completed"})
    assert response.status_code == 422
    assert "cannot go from scheduled to completed" in field_error(text(response), "status")
    response = client.post(f"/visits/{visit.id}/status", data={"status": "in_progress"})
    assert "Check the patient in before starting a clinic visit." in html_lib.unescape(text(response))
    assert client.post(f"/visits/{visit.id}/status", data={"status": "teleported"}).status_code == 422


def test_cancelling_needs_a_reason_and_a_clinic_visit_offers_a_video_slot(client, world):
    visit = schedule(world, at(4, 10))
    login(client, "therapist")
    response = client.post(f"/visits/{visit.id}/status", data={"status": "cancelled", "reason": "  "})
    assert response.status_code == 422
    html = text(response)
    assert "Say why the visit is cancelled." in field_error(html, "reason")
    assert '<details open class="cancel-visit">' in html
    response = client.post(f"/visits/{visit.id}/status", data={"status": "cancelled", "reason": "Car broke down"})
    assert response.status_code == 302
    html = html_lib.unescape(text(client.get(f"/visits/{visit.id}")))
    assert "A video visit in the same week is offered to the patient." in html
    assert "Video visit offered in its place" in html
    offer = _db.session.scalar(select(VideoSlotOffer))
    assert offer.cancelled_visit_id == visit.id
    assert offer.starts_at.astimezone(CHICAGO).strftime("%A %d %B, %H:%M") in html
    assert "Cancelled because" in html and "Car broke down" in html


def test_reschedule_moves_the_visit(client, world):
    visit = schedule(world, at(3, 9))
    login(client, "therapist")
    response = client.post(f"/visits/{visit.id}/reschedule",
                           data={"new_date": "2026-03-04", "new_start": "14:00", "new_end": "14:45"})
    assert response.status_code == 302
    _db.session.expire_all()
    moved = _db.session.get(Visit, visit.id)
    assert moved.starts_at == at(4, 14) and moved.ends_at == at(4, 14, 45)
    assert "The visit is moved to Wed 04 Mar 2026 14:00." in text(client.get(f"/visits/{visit.id}"))


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"new_date": "2026-03-04", "new_start": "14:00", "new_end": "13:00"}, "new_end", "ends before it starts"),
    ({"new_date": "2026-03-05", "new_start": "10:00", "new_end": "10:45"}, "new_start", "already has a visit"),
    ({"new_date": "", "new_start": "10:00", "new_end": "10:45"}, "new_date", "Missing data"),
    ({"new_date": "9999-12-31", "new_start": "23:00", "new_end": "23:45"}, "new_date", "Give a date from"),
])
def test_reschedule_refuses_bad_input_beside_the_field(client, world, form, field, message):
    visit = schedule(world, at(3, 9))
    schedule(world, at(5, 10), episode=careplans.create_episode(
        Actor(world.therapist), accounts.create_patient(Actor(world.therapist), patient_data(first_name="Bo"),
                                                        now=NOW).id, episode_data(), now=NOW))
    login(client, "therapist")
    response = client.post(f"/visits/{visit.id}/reschedule", data=form)
    assert response.status_code == 422
    html = text(response)
    assert message in field_error(html, field)
    assert '<details open id="reschedule">' in html
    _db.session.expire_all()
    assert _db.session.get(Visit, visit.id).starts_at == at(3, 9)


# ---------------------------------------------------------------- notes

NOTE = {"subjective": "Knee pain 3/10 on stairs", "objective": "Flexion 115 degrees",
        "assessment": "Improving", "plan": "Progress step-ups"}


def test_note_draft_sign_and_addendum(client, world):
    visit = schedule(world, at(3, 9))
    login(client, "therapist")
    response = client.post(f"/visits/{visit.id}/note", data={**NOTE, "action": "save"})
    assert response.status_code == 302 and response.headers["Location"].endswith("#note")
    html = text(client.get(f"/visits/{visit.id}"))
    assert "The draft note is saved." in html and "Flexion 115 degrees</textarea>" in html
    assert client.post(f"/visits/{visit.id}/note", data={**NOTE, "plan": "Add lunges", "action": "sign"}).status_code == 302
    html = text(client.get(f"/visits/{visit.id}"))
    assert "The note is signed." in html and "Add lunges" in html and "<textarea id=\"subjective\"" not in html
    assert "Signed</span> by Therapist" in html and "Awaiting co-signature" not in html
    # Signed notes are locked: a change is refused, an addendum is added.
    response = client.post(f"/visits/{visit.id}/note", data={**NOTE, "action": "save"})
    assert response.status_code == 422
    assert "signed and locked" in field_error(text(response), "note")
    response = client.post(f"/visits/{visit.id}/addenda", data={"text": "   "})
    assert response.status_code == 422 and "Write the addendum." in field_error(text(response), "text")
    assert client.post(f"/visits/{visit.id}/addenda", data={"text": "Pain rose to 5/10 that evening"}).status_code == 302
    assert "Pain rose to 5/10 that evening" in text(client.get(f"/visits/{visit.id}"))


def test_signing_an_empty_note_is_refused(client, world):
    visit = schedule(world, at(3, 9))
    login(client, "therapist")
    response = client.post(f"/visits/{visit.id}/note", data={"subjective": "", "objective": "", "assessment": "",
                                                               "plan": "", "action": "sign"})
    assert response.status_code == 422
    assert "Write the note before signing it." in field_error(text(response), "note")


def test_an_assistants_note_is_cosigned_by_the_therapist(client, world):
    visit = schedule(world, at(3, 9), clinician=world.assistant)
    login(client, "assistant")
    assert client.post(f"/visits/{visit.id}/note", data={**NOTE, "action": "sign"}).status_code == 302
    html = text(client.get(f"/visits/{visit.id}"))
    assert "Awaiting co-signature" in html and "Co-sign note" not in html  # an assistant cannot co-sign
    client.post("/logout")
    login(client, "therapist")
    assert "Co-sign note" in text(client.get(f"/visits/{visit.id}"))
    assert client.post(f"/visits/{visit.id}/note/cosign").status_code == 302
    html = text(client.get(f"/visits/{visit.id}"))
    assert "Co-signed</span> by Therapist" in html and "Co-sign note" not in html


def test_a_therapists_own_note_needs_no_cosignature(client, world):
    visit = schedule(world, at(3, 9))
    careplans.save_note(Actor(world.therapist), visit.id, NOTE, now=NOW)
    careplans.sign_note(Actor(world.therapist), visit.id, now=NOW)
    login(client, "therapist")
    response = client.post(f"/visits/{visit.id}/note/cosign")
    assert response.status_code == 422
    assert "does not need a co-signature" in field_error(text(response), "note")


# ---------------------------------------------------------------- services and charges

def complete(world, visit):
    therapist = Actor(world.therapist)
    if visit.modality == "in_clinic":
        careplans.change_visit_status(therapist, visit.id, "checked_in", now=NOW)
    careplans.change_visit_status(therapist, visit.id, "in_progress", now=NOW)
    careplans.change_visit_status(therapist, visit.id, "completed", now=NOW)


def services_form(*lines, audio_only=False) -> dict:
    form = {"service_count": str(max(len(lines), 3))}
    for index, (code, minutes, assistant) in enumerate(lines):
        form |= {f"services-{index}-cpt_code": code, f"services-{index}-minutes": minutes,
                 f"services-{index}-assistant_minutes": assistant}
    if audio_only:
        form["audio_only"] = "1"
    return form


def service_cells(html: str) -> list[list[str]]:
    table = re.search(r'<table class="responsive services-table">.*?</table>', html, re.S).group(0)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S) if "<td" in row]


def test_services_show_derived_units_pos_and_modifiers(client, world):
    visit = schedule(world, at(3, 9))
    complete(world, visit)
    login(client, "therapist")
    html = text(client.get(f"/visits/{visit.id}"))
    assert "No services recorded yet." in html and 'name="services-0-cpt_code"' in html
    assert 'id="audio_only"' not in html  # a clinic visit cannot be audio-only
    # 33 timed minutes: 2 units (23-37); 97110 has 23 minutes (1 full unit + 8 left), 97140 10.
    response = client.post(f"/visits/{visit.id}/services", data=services_form(("97110", "23", "5"), ("97140", "10", "")))
    assert response.status_code == 302 and response.headers["Location"].endswith("#services")
    cells = service_cells(text(client.get(f"/visits/{visit.id}")))
    assert cells == [["97110", "23", "5", "1", "11", "GP CQ"], ["97140", "10", "0", "1", "11", "GP"]]


def test_video_services_are_telehealth_and_may_be_audio_only(client, world):
    visit = schedule(world, at(3, 9), modality="video")
    complete(world, visit)
    login(client, "therapist")
    assert 'id="audio_only"' in text(client.get(f"/visits/{visit.id}"))
    response = client.post(f"/visits/{visit.id}/services", data=services_form(("97110", "40", ""), audio_only=True))
    assert response.status_code == 302
    html = text(client.get(f"/visits/{visit.id}"))
    assert service_cells(html) == [["97110", "40", "0", "3", "10", "GP 95 93"]]
    assert 'id="audio_only" name="audio_only" value="1" checked' in html


@pytest.mark.parametrize(("lines", "field", "message"), [
    ((("9711", "20", ""),), "services-0-cpt_code", "5-digit CPT code"),
    ((("97110", "", ""),), "services-0-minutes", "whole number from 1 to 600"),
    ((("97110", "20", "x"),), "services-0-assistant_minutes", "whole number"),
    ((("97110", "20", "30"),), "services", "assistant's minutes exceed the total"),
    ((("97110", "20", ""), ("97110", "10", "")), "services", "List each CPT code once"),
])
def test_services_refuse_bad_input_beside_the_field(client, world, lines, field, message):
    visit = schedule(world, at(3, 9))
    complete(world, visit)
    login(client, "therapist")
    response = client.post(f"/visits/{visit.id}/services", data=services_form(*lines))
    assert response.status_code == 422
    html = html_lib.unescape(text(response))
    assert message in field_error(html, field)
    assert 'value="' + lines[0][0] + '"' in html  # the rows are kept
    assert count(ServiceLine) == 0


def test_services_refuse_audio_only_on_a_clinic_visit_and_before_completion(client, world):
    visit = schedule(world, at(3, 9))
    login(client, "therapist")
    response = client.post(f"/visits/{visit.id}/services", data=services_form(("97110", "20", "")))
    assert response.status_code == 422
    assert "once the visit is completed" in field_error(text(response), "services")
    complete(world, visit)
    response = client.post(f"/visits/{visit.id}/services", data=services_form(("97110", "20", ""), audio_only=True))
    assert response.status_code == 422
    assert "Only a video visit can be audio-only." in field_error(text(response), "audio_only")


def test_billing_sees_the_visit_and_its_services_but_never_the_note(client, world):
    visit = schedule(world, at(3, 9))
    complete(world, visit)
    therapist = Actor(world.therapist)
    careplans.set_services(therapist, visit.id, [{"cpt_code": "97110", "minutes": 30}], now=NOW)
    careplans.save_note(therapist, visit.id, {**NOTE, "subjective": "SECRET-SUBJECTIVE"}, now=NOW)
    login(client, "billing")
    response = client.get(f"/visits/{visit.id}")
    html = text(response)
    assert response.status_code == 200
    assert service_cells(html) == [["97110", "30", "0", "2", "11", "GP"]]
    assert "SECRET-SUBJECTIVE" not in html and "Visit note" not in html and 'id="note"' not in html
    assert "Save services" not in html and "Cancel visit" not in html and ">Check in<" not in html
    assert client.post(f"/visits/{visit.id}/note", data={**NOTE, "action": "save"}).status_code == 403
    assert client.post(f"/visits/{visit.id}/services", data=services_form(("97110", "20", ""))).status_code == 403


def test_a_patient_sees_their_visit_without_notes_or_charges(client, world):
    visit = schedule(world, at(3, 9), modality="video")
    careplans.save_note(Actor(world.therapist), visit.id, {**NOTE, "subjective": "SECRET-SUBJECTIVE"}, now=NOW)
    login(client, "ana")
    html = text(client.get(f"/visits/{visit.id}"))
    assert 'id="call"' in html and "SECRET-SUBJECTIVE" not in html and "Services and charges" not in html
    assert "Right knee OA" not in html  # the plan's title (a diagnosis) is not on the patient's visit page


def test_visits_of_another_clinic_are_not_found(client, world):
    visit = careplans.schedule_visit(Actor(world.other_therapist), world.other_episode.id, {
        "kind": "treatment", "modality": "video", "starts_at": at(3, 10), "ends_at": at(3, 10, 45)}, now=NOW)
    login(client, "therapist")
    assert client.get(f"/visits/{visit.id}").status_code == 404
    assert client.post(f"/visits/{visit.id}/status", data={"status": "cancelled", "reason": "x"}).status_code == 404


# ---------------------------------------------------------------- the patient: upcoming visits and offers

def cancel_with_offer(world, starts_at):
    visit = schedule(world, starts_at)
    _, token = careplans.change_visit_status(Actor(world.therapist), visit.id, "cancelled", reason="Snow", now=NOW)
    assert token is not None
    return visit, token, _db.session.scalar(select(VideoSlotOffer).where(VideoSlotOffer.cancelled_visit_id == visit.id))


def test_my_visits_lists_upcoming_visits_and_accepts_an_offer_with_one_tap(client, world):
    video = schedule(world, at(3, 9), modality="video")
    cancelled, _token, offer = cancel_with_offer(world, at(5, 11))
    login(client, "ana")
    html = html_lib.unescape(text(client.get("/my-visits")))
    assert "A video visit instead" in html and "Accept video visit" in html
    assert f'action="/offers/{offer.id}/accept"' in html
    assert html.count('class="upcoming-visit ') == 1 and f'href="/visits/{video.id}/room"' in html
    assert "times in America/Chicago" in html  # the patient's own timezone
    response = client.post(f"/offers/{offer.id}/accept")
    assert response.status_code == 302 and response.headers["Location"] == "/my-visits"
    html = html_lib.unescape(text(client.get("/my-visits")))
    assert f"Your video visit on {offer.starts_at.astimezone(CHICAGO):%A %d %B at %H:%M} is booked." in html
    assert "Accept video visit" not in html and html.count('class="upcoming-visit visit-video') == 2
    replacement = _db.session.scalar(select(Visit).where(Visit.rescheduled_from_id == cancelled.id))
    assert replacement.modality == "video" and replacement.starts_at == offer.starts_at
    # A second tap changes nothing.
    assert client.post(f"/offers/{offer.id}/accept").status_code == 302
    assert count(Visit, Visit.rescheduled_from_id == cancelled.id) == 1


def test_the_sms_link_signs_the_patient_in_then_shows_the_offer(client, world):
    _visit, token, offer = cancel_with_offer(world, at(5, 11))
    response = client.get(f"/offers/accept/{token}")
    assert response.status_code == 302
    assert unquote(response.headers["Location"]).startswith(f"/login?next=/offers/accept/{token}")
    response = client.post(response.headers["Location"], data={"username": "ana", "password": "correct-horse-battery"})
    assert response.status_code == 302 and response.headers["Location"].startswith(f"/offers/accept/{token}")
    html = html_lib.unescape(text(client.get(response.headers["Location"])))
    assert f"Video visit on {offer.starts_at.astimezone(CHICAGO):%A %d %B at %H:%M}" in html
    assert html.count("<form") == 2  # sign-out and the one button
    assert f'action="/offers/{offer.id}/accept"' in html and 'name="csrf_token"' in html
    assert client.post(f"/offers/{offer.id}/accept").status_code == 302
    assert "This video visit is booked." in text(client.get(f"/offers/accept/{token}"))


def test_offer_links_refuse_strangers_bad_tokens_and_expired_offers(client, world, monkeypatch):
    _visit, token, offer = cancel_with_offer(world, at(5, 11))
    other = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Eve"), now=NOW)
    accounts.give_portal_access(Actor(world.therapist), other.id, "eve", "correct-horse-battery", now=NOW)
    login(client, "eve")
    assert client.get(f"/offers/accept/{token}").status_code == 404
    assert client.post(f"/offers/{offer.id}/accept").status_code == 404
    assert client.get("/offers/accept/vso_not-a-real-token").status_code == 404
    assert client.get("/offers/accept/something-else").status_code == 404
    client.post("/logout")
    login(client, "ana")
    monkeypatch.setattr("telerehab.careplans.views.utc_now", lambda: offer.expires_at + timedelta(minutes=1))
    assert "This offer has expired" in text(client.get(f"/offers/accept/{token}"))
    response = client.post(f"/offers/{offer.id}/accept")
    assert response.status_code == 422
    assert "This offer has expired; call the clinic to rebook." in field_error(text(response), "offer")


def test_staff_see_a_patients_upcoming_visits_and_may_book_the_offer(client, world):
    schedule(world, at(3, 9), modality="video")
    _visit, _token, offer = cancel_with_offer(world, at(5, 11))
    login(client, "therapist")
    html = text(client.get(f"/patients/{world.patient.id}"))
    assert f'href="/patients/{world.patient.id}/visits"' in html
    html = text(client.get(f"/patients/{world.patient.id}/visits"))
    assert "Upcoming visits" in html and "Book it for the patient" in html and "upcoming-visit" in html
    response = client.post(f"/offers/{offer.id}/accept")
    assert response.status_code == 302 and response.headers["Location"].startswith("/visits/")
    client.post("/logout")
    login(client, "ana")
    response = client.get(f"/patients/{world.patient.id}/visits")  # their own record: their own page
    assert response.status_code == 302 and response.headers["Location"] == "/my-visits"
    assert client.get(f"/patients/{world.other_patient.id}/visits").status_code == 404


def test_staff_are_sent_from_my_visits_to_their_home(client, world):
    login(client, "therapist")
    response = client.get("/my-visits")
    assert response.status_code == 302 and response.headers["Location"] == "/"


# ---------------------------------------------------------------- the ICS calendar feed

def create_feed(client) -> str:
    response = client.post("/account/calendar-feed")
    assert response.status_code == 200
    url = re.search(r'<code id="feed-url" class="secret">([^<]+)</code>', text(response)).group(1)
    assert url.startswith("http://localhost/calendar/feed/cal_") and url.endswith(".ics")
    return url.removeprefix("http://localhost")


def events_of(client, path) -> dict[str, object]:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    assert "no-store" in response.headers["Cache-Control"]
    calendar = Calendar.from_ical(response.data)
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}, response.get_data(as_text=True)


def test_clinician_feed_has_one_event_per_visit_with_the_video_link(client, world):
    clinic = schedule(world, at(3, 9), room="2")
    video = schedule(world, at(5, 14), modality="video")
    cancelled = schedule(world, at(10, 9))
    careplans.change_visit_status(Actor(world.therapist), cancelled.id, "cancelled", reason="Ill", now=NOW)
    login(client, "therapist")
    path = create_feed(client)
    events, raw = events_of(client, path)
    assert set(events) == {f"visit-{v.id}@telerehab" for v in (clinic, video, cancelled)}
    clinic_event, video_event = events[f"visit-{clinic.id}@telerehab"], events[f"visit-{video.id}@telerehab"]
    assert clinic_event.decoded("DTSTART") == at(3, 9) and clinic_event.decoded("DTEND") == at(3, 9, 45)
    assert "DTSTART:20260303T150000Z" in raw  # in UTC
    assert str(clinic_event["SUMMARY"]) == "Ana Alvarez: Treatment (In clinic)"
    assert str(clinic_event["LOCATION"]) == "Downtown, 1 Main St, Chicago, IL 60601 (room 2)"
    assert "URL" not in clinic_event
    assert str(video_event["LOCATION"]) == "Video visit"
    assert str(video_event["URL"]) == f"http://localhost/visits/{video.id}#call"
    assert f"http://localhost/visits/{video.id}#call" in str(video_event["DESCRIPTION"])
    assert str(events[f"visit-{cancelled.id}@telerehab"]["STATUS"]) == "CANCELLED"
    assert str(video_event["STATUS"]) == "CONFIRMED"
    assert "M17.11" not in raw and "Right knee OA" not in raw  # no diagnosis, not even the plan's title
    # The UID stays when a visit moves.
    careplans.reschedule_visit(Actor(world.therapist), clinic.id, at(4, 9), at(4, 9, 45), now=NOW)
    events, _ = events_of(client, path)
    assert events[f"visit-{clinic.id}@telerehab"].decoded("DTSTART") == at(4, 9)


def test_patient_feed_says_physical_therapy_visit_and_names_no_one(client, world):
    schedule(world, at(3, 9))
    video = schedule(world, at(5, 14), modality="video")
    login(client, "ana")
    path = create_feed(client)
    client.post("/logout")  # the feed needs no sign-in, only the secret
    events, raw = events_of(client, path)
    assert len(events) == 2
    assert {str(e["SUMMARY"]) for e in events.values()} == {"Physical therapy visit"}
    assert "Alvarez" not in raw and "M17.11" not in raw and "Right knee OA" not in raw
    assert str(events[f"visit-{video.id}@telerehab"]["URL"]) == f"http://localhost/visits/{video.id}#call"


def test_a_revoked_or_replaced_feed_is_not_found(client, world):
    schedule(world, at(3, 9))
    login(client, "therapist")
    first = create_feed(client)
    second = create_feed(client)  # a new address replaces the old one
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200
    response = client.post("/account/calendar-feed/revoke")
    assert response.status_code == 302 and response.headers["Location"] == "/account#calendar-feed"
    assert client.get(second).status_code == 404
    assert client.get("/calendar/feed/cal_guessed.ics").status_code == 404
    assert client.get("/calendar/feed/nonsense.ics").status_code == 404


def test_account_page_has_the_calendar_feed_section(client, world):
    login(client, "therapist")
    html = text(client.get("/account"))
    assert 'id="calendar-feed"' in html and 'hx-get="/account/calendar-feed"' in html
    partial = text(client.get("/account/calendar-feed", headers={"HX-Request": "true"}))
    assert "<html" not in partial and "No feed address yet." in partial and "Create feed address" in partial
    created = text(client.post("/account/calendar-feed", headers={"HX-Request": "true"}))
    assert "<html" not in created and "not shown again" in created and "Revoke feed address" in created
    again = text(client.get("/account/calendar-feed", headers={"HX-Request": "true"}))
    assert "A feed address is in use." in again and "/calendar/feed/cal_" not in again  # shown once only
    revoked = text(client.post("/account/calendar-feed/revoke", headers={"HX-Request": "true"}))
    assert "No feed address yet." in revoked



def test_the_therapists_home_lists_the_plans_that_need_attention(client, world, monkeypatch):
    monkeypatch.setattr("telerehab.accounts.views.utc_now", lambda: NOW)
    ending = careplans.create_episode(Actor(world.therapist), world.patient.id, episode_data(
        title="Left shoulder", certification_end=date(2026, 3, 6)), now=NOW)
    login(client, "therapist")
    home = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "Plans of care needing attention" in home
    assert f'/episodes/{ending.id}"' in home and "Left shoulder" in home
    client.post("/logout")
    login(client, "billing")
    assert "needing attention" not in client.get("/patients").get_data(as_text=True)
