"""Who may use the RTM API and pages: the rows tests/test_authorisation.py plays against every role
and against another clinic's patient. Clinicians log minutes; only the PT enrols and ends
monitoring and records RPM periods; billing, the PT and the admin record the year-to-date therapy
amount (an assistant does not); billing sees the status (data days, minutes, decisions) but not the triage inbox,
whose alerts carry pain scores; the admin sets the payers' RTM choices and the alert thresholds."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from telerehab.accounts.operations import Actor
from telerehab.db_types import utc_now
from telerehab.extensions import db
from telerehab.monitoring import operations as monitoring
from telerehab.monitoring.models import RtmAlert

from .authorisation_support import Case, other_sms_consent, page_call, sms_consent
from .conftest import NOW
from .test_monitoring_support import START, add_checkins, enrol, rtm_consent

VIEWERS = {"admin": 200, "therapist": 200, "assistant": 200, "billing": 200}
AMOUNT_RECORDERS = ("admin", "therapist", "billing")
CLINICIANS_302 = {"therapist": 302, "assistant": 302}
ENROL_JSON = {"device_name": "telerehab app", "cost_sharing_notice_shown_at": "2026-03-02T09:00:00-06:00",
              "monitoring_start": "2026-03-02"}
POLICY_FORM = {"payer_type": "medicare", "setup_min_days": "2", "setup_rebill": "per_episode", "device_dos": "period_end",
               "management_dos": "month_end", "setup_dos": "setup_date", "cq_attribution": "chronological",
               "rpm_overlap": "hold", "place_of_service": "11", "kx_threshold_cents": "248000"}
ALERTS_FORM = {"pain_at_or_above": "8", "rise_over_baseline": "2", "rise_days": "2", "no_checkin_days": "3",
               "at_risk_slack_days": "3"}
TIME_JSON = {"service_date": "2026-03-02", "minutes": 12, "activity": "call", "interactive": True, "channel": "phone"}


def _own(world):
    return world.episode.id


def _other(world):
    return world.other_episode.id


def _enrolled(world) -> int:
    enrol(world)
    return world.episode.id


def _other_enrolled(world) -> int:
    enrol(world, episode=world.other_episode, therapist=world.other_therapist)
    return world.other_episode.id


def _consented(world) -> int:
    rtm_consent(world)
    return world.episode.id


def _other_consented(world) -> int:
    rtm_consent(world, world.other_patient, world.other_therapist)
    return world.other_episode.id


def _timers(world) -> int:
    episode_id = _enrolled(world)
    for user in (world.therapist, world.assistant):  # started a minute before the page request
        monitoring.start_timer(Actor(user), episode_id, now=utc_now() - timedelta(minutes=1))
    return episode_id


def _alert(world, other=False) -> int:
    if other:
        enrol(world, episode=world.other_episode, therapist=world.other_therapist)
        add_checkins(world.other_patient, world.other_episode, [START], pain=9)
    else:
        enrol(world)
        add_checkins(world.patient, world.episode, [START], pain=9)
    monitoring.raise_alerts(now=NOW.replace(hour=23))
    patient_id = (world.other_patient if other else world.patient).id
    return db.session.scalar(select(RtmAlert.id).where(RtmAlert.patient_id == patient_id))


MONITORING_API_CASES = [
    Case("GET", "/api/v1/episodes/<id:episode_id>/rtm", lambda w: f"/api/v1/episodes/{_own(w)}/rtm", VIEWERS,
         other_path=lambda w: f"/api/v1/episodes/{_other(w)}/rtm", other_allowed=("admin",)),
    Case("POST", "/api/v1/episodes/<id:episode_id>/rtm/enrolment",
         lambda w: f"/api/v1/episodes/{_consented(w)}/rtm/enrolment", {"therapist": 201}, body=lambda w: ENROL_JSON,
         other_path=lambda w: f"/api/v1/episodes/{_other_consented(w)}/rtm/enrolment"),
    Case("PUT", "/api/v1/episodes/<id:episode_id>/rtm/setup", lambda w: f"/api/v1/episodes/{_enrolled(w)}/rtm/setup",
         {"therapist": 200}, body=lambda w: {"setup_date": "2026-03-02", "setup_minutes": 30,
                                             "setup_by_id": w.assistant.id},
         other_path=lambda w: f"/api/v1/episodes/{_other_enrolled(w)}/rtm/setup"),
    Case("POST", "/api/v1/episodes/<id:episode_id>/rtm/end", lambda w: f"/api/v1/episodes/{_enrolled(w)}/rtm/end",
         {"therapist": 200}, body=lambda w: {"reason": "opted_out", "end_date": "2026-03-02"},
         other_path=lambda w: f"/api/v1/episodes/{_other_enrolled(w)}/rtm/end"),
    Case("POST", "/api/v1/patients/<id:patient_id>/rpm-periods", lambda w: f"/api/v1/patients/{w.patient.id}/rpm-periods",
         {"therapist": 201}, body=lambda w: {"start_date": "2026-03-01", "end_date": "2026-03-30"},
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/rpm-periods"),
    Case("PUT", "/api/v1/patients/<id:patient_id>/therapy-amounts",
         lambda w: f"/api/v1/patients/{w.patient.id}/therapy-amounts", {role: 200 for role in AMOUNT_RECORDERS},
         body=lambda w: {"year": 2026, "amount_cents": 120_000, "as_of": "2026-03-01"},
         other_path=lambda w: f"/api/v1/patients/{w.other_patient.id}/therapy-amounts", other_allowed=("admin",)),
    Case("POST", "/api/v1/episodes/<id:episode_id>/rtm/time-entries",
         lambda w: f"/api/v1/episodes/{_enrolled(w)}/rtm/time-entries", {"therapist": 201, "assistant": 201},
         body=lambda w: TIME_JSON, other_path=lambda w: f"/api/v1/episodes/{_other_enrolled(w)}/rtm/time-entries"),
]

MONITORING_PAGE_CASES = [
    Case("GET", "/episodes/<id:episode_id>/rtm", lambda w: f"/episodes/{_enrolled(w)}/rtm", VIEWERS,
         other_path=lambda w: f"/episodes/{_other_enrolled(w)}/rtm", other_allowed=("admin",)),
    Case("POST", "/episodes/<id:episode_id>/rtm/enrol", lambda w: f"/episodes/{_consented(w)}/rtm/enrol",
         {"therapist": 302}, body=lambda w: {"device_name": "app", "notice_shown": "1", "monitoring_start": "2026-03-02"},
         other_path=lambda w: f"/episodes/{_other_consented(w)}/rtm/enrol"),
    Case("POST", "/episodes/<id:episode_id>/rtm/time", lambda w: f"/episodes/{_enrolled(w)}/rtm/time", CLINICIANS_302,
         body=lambda w: {**TIME_JSON, "minutes": "12", "interactive": "1"},
         other_path=lambda w: f"/episodes/{_other_enrolled(w)}/rtm/time"),
    Case("POST", "/episodes/<id:episode_id>/rtm/timer/start", lambda w: f"/episodes/{_enrolled(w)}/rtm/timer/start",
         CLINICIANS_302, other_path=lambda w: f"/episodes/{_other_enrolled(w)}/rtm/timer/start"),
    Case("POST", "/episodes/<id:episode_id>/rtm/timer/stop", lambda w: f"/episodes/{_timers(w)}/rtm/timer/stop",
         CLINICIANS_302, body=lambda w: {"activity": "data_review"},
         other_path=lambda w: f"/episodes/{_other_enrolled(w)}/rtm/timer/stop"),
    Case("POST", "/episodes/<id:episode_id>/rtm/end", lambda w: f"/episodes/{_enrolled(w)}/rtm/end", {"therapist": 302},
         body=lambda w: {"reason": "opted_out"}, other_path=lambda w: f"/episodes/{_other_enrolled(w)}/rtm/end"),
    # The patient's RPM periods (the PT, as for enrolment) and year-to-date amount (billing staff
    # typically, the PT or the admin), from the panel.
    Case("POST", "/episodes/<id:episode_id>/rtm/rpm-periods", lambda w: f"/episodes/{_own(w)}/rtm/rpm-periods",
         {"therapist": 302}, body=lambda w: {"start_date": "2026-03-01", "end_date": "2026-03-30"},
         other_path=lambda w: f"/episodes/{_other(w)}/rtm/rpm-periods"),
    Case("POST", "/episodes/<id:episode_id>/rtm/therapy-amount", lambda w: f"/episodes/{_own(w)}/rtm/therapy-amount",
         {role: 302 for role in AMOUNT_RECORDERS}, body=lambda w: {"amount": "1,200.00", "as_of": "2026-03-01"},
         other_path=lambda w: f"/episodes/{_other(w)}/rtm/therapy-amount", other_allowed=("admin",)),
    Case("GET", "/rtm/triage", lambda w: "/rtm/triage", {"therapist": 200, "assistant": 200}),
    Case("POST", "/rtm/triage/patients/<id:patient_id>/remind",
         lambda w: (sms_consent(w), f"/rtm/triage/patients/{w.patient.id}/remind")[1], CLINICIANS_302,
         other_path=lambda w: (other_sms_consent(w), f"/rtm/triage/patients/{w.other_patient.id}/remind")[1]),
    Case("POST", "/rtm/alerts/<id:alert_id>/acknowledge", lambda w: f"/rtm/alerts/{_alert(w)}/acknowledge",
         CLINICIANS_302, other_path=lambda w: f"/rtm/alerts/{_alert(w, other=True)}/acknowledge"),
    Case("GET", "/settings/rtm", lambda w: "/settings/rtm", {"admin": 200, "billing": 200}),
    Case("POST", "/settings/rtm/policy", lambda w: "/settings/rtm/policy", {"admin": 302}, body=lambda w: POLICY_FORM),
    Case("POST", "/settings/rtm/alerts", lambda w: "/settings/rtm/alerts", {"admin": 302},
         body=lambda w: {**ALERTS_FORM, "clinic_id": str(w.clinic.id)}),
]


PUBLIC_MONITORING_STATIC = {("GET", "/monitoring/static/<path:filename>")}  # the panel's CSS and JS


def test_settings_refuse_a_clinic_of_another_organisation(client, world):
    page_call(client, world, MONITORING_PAGE_CASES[0], "admin", lambda w: "/settings/rtm")
    response = client.post("/settings/rtm/alerts", data={**ALERTS_FORM, "clinic_id": str(world.foreign_clinic.id)})
    assert response.status_code == 404
