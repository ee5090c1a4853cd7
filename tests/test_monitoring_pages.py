"""The RTM pages: the episode's panel (enrolment, timeline, minutes, timer, manual entry) and the
triage inbox, including refused forms re-shown with the field named, and the API's answers."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from telerehab.accounts.operations import Actor
from telerehab.db_types import utc_now
from telerehab.extensions import db
from telerehab.messaging.models import OutboxMessage
from telerehab.monitoring import operations as monitoring
from telerehab.monitoring.models import ManagementTimeEntry, RtmBillableLine, RtmEnrolment

from .conftest import NOW, bearer, login
from .test_messaging_support import sms_consent
from .test_monitoring_support import add_checkins, days_from, enrol, rtm_consent


def assert_csp_safe(html: str) -> None:
    """Nothing the 'self'-only content security policy would block."""
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert " style=" not in html and "<style" not in html, "inline style"
    assert not re.search(r"<[^>]+\son[a-z]+=", html), "inline event handler"


def today_of(world):
    return monitoring.local_today(world.patient.timezone, utc_now())


def test_the_panel_offers_enrolment_and_refuses_it_without_the_notice(client, world):
    rtm_consent(world)
    login(client, "therapist")
    html = client.get(f"/episodes/{world.episode.id}/rtm").get_data(as_text=True)
    assert "Not enrolled" in html and 'name="notice_shown"' in html
    assert_csp_safe(html)
    response = client.post(f"/episodes/{world.episode.id}/rtm/enrol", data={"device_name": "telerehab app"})
    assert response.status_code == 422
    assert 'id="cost_sharing_notice_shown_at-error"' in response.get_data(as_text=True)
    assert db.session.scalar(select(RtmEnrolment.id)) is None
    response = client.post(f"/episodes/{world.episode.id}/rtm/enrol",
                           data={"device_name": "telerehab app", "notice_shown": "1",
                                 "setup_date": today_of(world).isoformat(), "setup_minutes": "25",
                                 "setup_by_id": str(world.assistant.id)})
    assert response.status_code == 302
    enrolment = db.session.scalar(select(RtmEnrolment))
    assert (enrolment.setup_by_role, enrolment.setup_minutes) == ("assistant", 25)


def test_the_panel_shows_the_period_day_by_day_and_the_minutes(client, world):
    today = today_of(world)
    enrol(world, monitoring_start=today - timedelta(days=9), setup_date=today - timedelta(days=9), now=utc_now())
    add_checkins(world.patient, world.episode, days_from(today - timedelta(days=9), 4))
    monitoring.record_management_time(Actor(world.therapist), world.episode.id, {
        "service_date": today.isoformat(), "minutes": 12, "activity": "call", "interactive": True,
        "channel": "phone"}, now=utc_now())
    login(client, "assistant")
    html = client.get(f"/episodes/{world.episode.id}/rtm").get_data(as_text=True)
    assert html.count('class="rtm-day ') == 30
    assert html.count("rtm-day-data") == 4 + 1  # four days, and the legend's key
    assert "<strong>12</strong> minutes" in html and "8 to the 20-minute tier" in html
    assert "Interactive communication done" in html
    assert 'id="timer-start"' in html
    assert_csp_safe(html)


def test_manual_time_entry_and_a_refused_one(client, world):
    enrol(world)
    login(client, "assistant")
    path = f"/episodes/{world.episode.id}/rtm/time"
    response = client.post(path, data={"service_date": "2026-03-05", "minutes": "0", "activity": "call"})
    assert response.status_code == 422 and 'id="minutes-error"' in response.get_data(as_text=True)
    response = client.post(path, data={"service_date": "2026-03-05", "minutes": "14", "activity": "call",
                                       "interactive": "1", "channel": "phone"})
    assert response.status_code == 302
    entry = db.session.scalar(select(ManagementTimeEntry))
    assert (entry.minutes, entry.staff_role, entry.interactive) == (14, "assistant", True)


def test_the_timer_starts_and_stops_into_an_entry(client, world):
    enrol(world)
    login(client, "therapist")
    assert client.post(f"/episodes/{world.episode.id}/rtm/timer/start").status_code == 302
    html = client.get(f"/episodes/{world.episode.id}/rtm").get_data(as_text=True)
    assert 'class="rtm-elapsed" data-started=' in html and 'id="timer-stop"' in html
    response = client.post(f"/episodes/{world.episode.id}/rtm/timer/stop", data={"activity": "data_review"})
    assert response.status_code == 302
    assert db.session.scalar(select(ManagementTimeEntry.minutes)) == 1


def test_triage_lists_the_patient_and_the_reminder_goes_out_once(client, world):
    today = today_of(world)
    enrol(world, monitoring_start=today - timedelta(days=20), setup_date=today - timedelta(days=20), now=utc_now())
    sms_consent(world)
    add_checkins(world.patient, world.episode, days_from(today - timedelta(days=20), 7))
    login(client, "therapist")
    html = client.get("/rtm/triage").get_data(as_text=True)
    assert f'id="triage-{world.patient.id}"' in html and "at risk" in html and "no live contact" in html
    assert_csp_safe(html)
    for _ in range(2):
        assert client.post(f"/rtm/triage/patients/{world.patient.id}/remind").status_code == 302
    assert len(db.session.scalars(select(OutboxMessage)).all()) == 1


def test_the_api_answers_status_and_takes_time_entries(client, world):
    enrol(world)
    headers = bearer(world.assistant)
    response = client.post(f"/api/v1/episodes/{world.episode.id}/rtm/time-entries", headers=headers, json={
        "service_date": "2026-03-04", "minutes": 11, "activity": "video", "interactive": True, "channel": "video"})
    assert response.status_code == 201 and response.json["staff_role"] == "assistant"
    bad = client.post(f"/api/v1/episodes/{world.episode.id}/rtm/time-entries", headers=headers, json={
        "service_date": "2026-03-04", "minutes": 1.5, "activity": "video", "interactive": True})
    assert bad.status_code == 422 and "minutes" in bad.json["errors"]["json"]
    status = client.get(f"/api/v1/episodes/{world.episode.id}/rtm", headers=bearer(world.billing)).json
    assert status["enrolment"]["monitored_system"] == "musculoskeletal"
    assert {d["slot"] for d in status["decisions"]} >= {"setup", "device", "management"}
    assert all("reason" in d and "evidence" in d for d in status["decisions"])


def test_the_admin_sets_a_payers_choices_and_the_engine_follows(client, world):
    from telerehab.careplans.models import PayerSettings

    from .test_authorisation_monitoring import ALERTS_FORM, POLICY_FORM

    login(client, "admin")
    html = client.get("/settings/rtm?payer_type=medicare").get_data(as_text=True)
    assert 'name="setup_min_days" value="2"' in html
    assert_csp_safe(html)
    bad = client.post("/settings/rtm/policy", data={**POLICY_FORM, "device_dos": "whenever"})
    assert bad.status_code == 422 and 'id="device_dos-error"' in bad.get_data(as_text=True)
    response = client.post("/settings/rtm/policy", data={**POLICY_FORM, "setup_min_days": "16",
                                                         "async_message_is_interactive": "1"})
    assert response.status_code == 302
    row = db.session.scalar(select(PayerSettings))
    assert (row.rtm_setup_min_days, row.rtm_async_message_is_interactive, row.rtm_addon_unit_cap) == (16, True, None)
    assert monitoring.policy_of(row).setup_min_days == 16
    response = client.post("/settings/rtm/alerts", data={**ALERTS_FORM, "clinic_id": str(world.clinic.id)})
    assert response.status_code == 302
    assert monitoring.alert_thresholds(Actor(world.admin), world.clinic.id).pain_at_or_above == 8


def test_rpm_periods_and_amounts_by_api_hold_and_mark_the_lines(client, world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(world.episode.start_date, 16))
    response = client.post(f"/api/v1/patients/{world.patient.id}/rpm-periods", headers=bearer(world.therapist),
                           json={"start_date": "2026-03-20", "end_date": "2026-03-10"})
    assert response.status_code == 422 and "end_date" in response.json["errors"]["json"]
    assert client.post(f"/api/v1/patients/{world.patient.id}/rpm-periods", headers=bearer(world.therapist),
                       json={"start_date": "2026-03-20", "end_date": "2026-04-19"}).status_code == 201
    assert client.put(f"/api/v1/patients/{world.patient.id}/therapy-amounts", headers=bearer(world.billing),
                      json={"year": 2026, "amount_cents": 250_000, "as_of": "2026-03-01"}).status_code == 200
    monitoring.evaluate(now=NOW.replace(month=4, day=2))
    device = db.session.scalar(select(RtmBillableLine).where(RtmBillableLine.slot == "device"))
    assert (device.status, device.modifiers) == ("held", "GP KX")
