"""Telehealth consent through the API: video visits are booked without it (clinics often record
consent at the first call), and the episode's plan alerts say it is missing until it is recorded.
The API reports plan alerts at /episodes/{id}/alerts, not in the visit it returns."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from .conftest import NOW, bearer

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture
def therapist(client, world, monkeypatch):
    """`therapist(method, path, json=...)`: the API as the world's therapist, with the visits' clock at NOW."""
    monkeypatch.setattr("telerehab.careplans.api.utc_now", lambda: NOW)
    headers = bearer(world.therapist)

    def call(method: str, path: str, **kwargs):
        return client.open(path, method=method, headers=headers, **kwargs)

    return call


def video_slot(local: str) -> dict:
    start = datetime.fromisoformat(local).replace(tzinfo=CHICAGO)
    return {"kind": "treatment", "modality": "video", "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(minutes=45)).isoformat()}


def consent_alerts(therapist, world) -> list[str]:
    response = therapist("GET", f"/api/v1/episodes/{world.episode.id}/alerts")
    assert response.status_code == 200
    return [a["message"] for a in response.json if a["kind"] == "telehealth_consent_missing"]


def test_a_video_visit_is_booked_and_the_alerts_ask_for_consent_until_it_is_recorded(therapist, world):
    assert consent_alerts(therapist, world) == []
    for local in ("2026-03-12 10:00", "2026-03-05 10:00"):
        created = therapist("POST", f"/api/v1/episodes/{world.episode.id}/visits", json=video_slot(local))
        assert created.status_code == 201, created.json
    [message] = consent_alerts(therapist, world)
    assert "from 2026-03-05" in message and "record the patient's telehealth consent" in message
    consent = therapist("POST", f"/api/v1/patients/{world.patient.id}/consents",
                        json={"kind": "telehealth", "method": "verbal"})
    assert consent.status_code == 201, consent.json
    assert consent_alerts(therapist, world) == []
    revoked = therapist("POST", f"/api/v1/consents/{consent.json['id']}/revoke", json={"note": "withdrawn"})
    assert revoked.status_code == 200, revoked.json
    assert len(consent_alerts(therapist, world)) == 1


def test_a_confirmed_series_with_video_visits_is_booked_without_consent(therapist, world):
    preview = therapist("POST", f"/api/v1/episodes/{world.episode.id}/cadence/preview", json={
        "modality_pattern": ["in_clinic", "video"], "preferred_weekdays": [0, 3], "preferred_start": "09:00"})
    assert preview.status_code == 200, preview.json
    visits = preview.json["visits"]
    confirmed = therapist("POST", f"/api/v1/episodes/{world.episode.id}/cadence/confirm", json={"visits": visits})
    assert confirmed.status_code == 201, confirmed.json
    assert len(confirmed.json) == len(visits)
    first_video = min(datetime.fromisoformat(v["starts_at"]) for v in visits if v["modality"] == "video")
    [message] = consent_alerts(therapist, world)
    assert f"from {first_video.astimezone(CHICAGO):%Y-%m-%d}" in message
