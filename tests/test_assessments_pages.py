"""The assessment pages: the form generated from the protocol with the variant defaulting from
the visit, refused input re-shown beside its field (422, nothing written), the trend's SVG with
clinic and video markers, the MDC band and the not-comparable warning, and goniometry (a still
uploaded as the video-call page does, then marked)."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from telerehab.accounts.operations import Actor
from telerehab.assessments import operations
from telerehab.assessments.models import AssessmentResult, GoniometryCapture

from .conftest import NOW, login
from .test_assessments_operations import consent, make_visit
from .test_assessments_rules import png


@pytest.fixture
def therapist_client(client, world):
    assert login(client, "therapist").status_code == 302
    return client


def results(db) -> list[AssessmentResult]:
    db.session.expire_all()
    return list(db.session.scalars(select(AssessmentResult).order_by(AssessmentResult.id)))


def assert_csp_safe(html: str) -> None:
    """No inline style attributes and no inline scripts: the CSP allows only the app's own files."""
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html)


@pytest.mark.parametrize(("modality", "checked"), [("in_clinic", "variant-in_clinic"), ("video", "variant-video")])
def test_the_form_comes_from_the_protocol_and_defaults_to_the_visits_modality(therapist_client, world, modality,
                                                                              checked):
    visit = make_visit(world, modality=modality)
    page = therapist_client.get(f"/visits/{visit.id}/assessments/new?protocol=perf_30s_chair_stand")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'name="input-stands"' in html and 'name="input-arms_used"' in html
    assert re.search(rf'id="{checked}"[^>]*checked', html)
    assert "Camera checklist" in html and 'name="checklist-helper_present"' in html
    assert "About 8\N{EN DASH}10 ft back" in html  # the video variant's camera placement, from the file
    assert_csp_safe(html)


def test_a_licensed_questionnaire_takes_item_scores_and_says_why(therapist_client, world):
    html = therapist_client.get(f"/visits/{make_visit(world).id}/assessments/new?protocol=prom_quickdash").get_data(
        as_text=True)
    assert "Item scores only." in html and "Institute for Work &amp; Health" in html
    assert html.count('name="input-item_') == 11


def test_saving_a_result_goes_to_its_trend(therapist_client, db, world):
    visit = make_visit(world, modality="video")
    response = therapist_client.post(f"/visits/{visit.id}/assessments/new?protocol=perf_30s_chair_stand",
                                     data={"input-stands": "13", "variant": "video", "checklist-whole_body": "1"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/patients/{world.patient.id}/assessments/perf_30s_chair_stand"
    [result] = results(db)
    assert (result.score, result.variant, result.checklist["whole_body"]) == (13, "video", True)


@pytest.mark.parametrize(("protocol", "form", "field", "message"), [
    ("perf_30s_chair_stand", {"input-stands": "sixty"}, "input-stands", "Must be a number."),
    ("perf_30s_chair_stand", {"input-stands": "12", "variant": "in_clinic"}, "override_reason", "say why"),
    ("prom_odi", {"input-item_1": "3", "input-item_2": "2"}, "items", "8 missing"),
])
def test_refused_input_is_shown_beside_its_field_and_nothing_is_written(therapist_client, db, world, protocol, form,
                                                                         field, message):
    visit = make_visit(world, modality="video")
    response = therapist_client.post(f"/visits/{visit.id}/assessments/new?protocol={protocol}", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(rf'id="{field}-error"[^>]*>[^<]*{message}', html)
    assert results(db) == []
    if field.startswith("input-"):
        assert re.search(rf'name="{field}" value="{form[field]}"', html)  # the entry is kept to correct


def test_an_unknown_protocol_is_not_found(therapist_client, world):
    assert therapist_client.get(f"/visits/{make_visit(world).id}/assessments/new?protocol=nope").status_code == 404


def _record(world, visit, protocol_id, inputs, *, at):
    return operations.record_result(Actor(world.therapist), world.patient.id,
                                    {"protocol_id": protocol_id, "visit_id": visit.id, "inputs": inputs}, now=at)


def test_the_trend_marks_clinic_and_video_and_warns_between_variants_that_are_not_comparable(therapist_client, world):
    clinic, video = make_visit(world, days=1), make_visit(world, modality="video", days=8)
    _record(world, clinic, "perf_tug", {"seconds": 14.0, "aid": "none"}, at=NOW + timedelta(days=1))
    _record(world, video, "perf_tug", {"seconds": 11.5, "aid": "none"}, at=NOW + timedelta(days=8))
    html = therapist_client.get(f"/patients/{world.patient.id}/assessments/perf_tug").get_data(as_text=True)
    assert html.count('class="marker marker-clinic"') == 1 and html.count('class="marker marker-video"') == 1
    assert html.count('class="not-comparable-warning"') == 1
    assert 'class="mdc-band"' in html
    assert re.search(r'<svg class="trend-chart"[^>]*role="img"[^>]*aria-labelledby="chart-1-title chart-1-desc"', html)
    assert "Not comparable: in clinic and video results" in html
    assert_csp_safe(html)


def test_interchangeable_variants_draw_one_line_and_no_warning(therapist_client, world):
    clinic, video = make_visit(world, days=1), make_visit(world, modality="video", days=8)
    _record(world, clinic, "perf_30s_chair_stand", {"stands": 10}, at=NOW + timedelta(days=1))
    _record(world, video, "perf_30s_chair_stand", {"stands": 13}, at=NOW + timedelta(days=8))
    html = therapist_client.get(f"/patients/{world.patient.id}/assessments/perf_30s_chair_stand").get_data(as_text=True)
    assert 'class="not-comparable-warning"' not in html and html.count('class="trend-line"') == 1
    assert "beyond the MDC of 2.5: a real change" in html


def test_the_patient_sees_their_own_trends(client, world):
    _record(world, make_visit(world), "prom_nprs", {"recall": "now", "pain": 6}, at=NOW)
    assert login(client, "ana").status_code == 302
    assert f'href="/patients/{world.patient.id}/assessments"' in client.get("/my-plan").get_data(as_text=True)
    measures = client.get(f"/patients/{world.patient.id}/assessments").get_data(as_text=True)
    assert "My progress" in measures and "Numeric Pain Rating Scale" in measures
    assert client.get(f"/patients/{world.other_patient.id}/assessments").status_code == 404


def test_a_still_from_the_video_call_page_then_marked_landmarks(therapist_client, db, world):
    consent(world)
    visit = make_visit(world, modality="video")
    uploaded = therapist_client.post(f"/visits/{visit.id}/goniometry/stills",
                                     data={"image": (io.BytesIO(png(640, 480)), "frame.png")},
                                     headers={"X-CSRFToken": "token", "Accept": "application/json"})
    assert uploaded.status_code == 201
    capture_id = uploaded.json["capture_id"]
    assert uploaded.json["mark_url"] == f"/goniometry/{capture_id}"
    page = therapist_client.get(f"/goniometry/{capture_id}?protocol=rom_knee_flexion").get_data(as_text=True)
    assert f'src="/goniometry/{capture_id}/image"' in page and 'type="module"' in page
    assert "Greater trochanter" in page
    assert_csp_safe(page)
    image = therapist_client.get(f"/goniometry/{capture_id}/image")
    assert image.data == png(640, 480) and image.mimetype == "image/png"

    marked = therapist_client.post(f"/goniometry/{capture_id}?protocol=rom_knee_flexion", data={
        "axis_x": "400", "axis_y": "300", "stationary_x": "100", "stationary_y": "300", "moving_x": "400",
        "moving_y": "450", "input-side": "right", "input-motion": "passive", "input-position": "side_lying",
        "checklist-perpendicular": "1"})
    assert marked.status_code == 302
    [result] = results(db)
    assert (result.score, result.method, result.variant) == (90, "goniometry", "video")
    assert db.session.get(GoniometryCapture, capture_id).result_id == result.id


def test_a_still_without_consent_is_refused_as_json_and_as_a_page(therapist_client, db, world):
    visit = make_visit(world, modality="video")
    as_json = therapist_client.post(f"/visits/{visit.id}/goniometry/stills",
                                    data={"image": (io.BytesIO(png(8, 8)), "frame.png")}, headers={"X-CSRFToken": "t"})
    assert as_json.status_code == 422 and "consent" in as_json.json["errors"]["image"][0]
    as_page = therapist_client.post(f"/visits/{visit.id}/goniometry/stills",
                                    data={"image": (io.BytesIO(png(8, 8)), "frame.png")})
    assert as_page.status_code == 422 and 'id="image-error"' in as_page.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(GoniometryCapture)) == 0


def test_marking_without_the_points_is_shown_beside_them(therapist_client, db, world):
    consent(world)
    capture = operations.upload_still(Actor(world.therapist), make_visit(world).id, png(64, 48), now=NOW)
    response = therapist_client.post(f"/goniometry/{capture.id}?protocol=rom_knee_flexion", data={
        "axis_x": "30", "axis_y": "", "input-side": "left", "input-motion": "active", "input-position": "supine"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for name in ("axis", "stationary", "moving"):
        assert f'id="{name}-error"' in html
    assert results(db) == []


def test_visit_and_episode_pages_link_to_assessments(therapist_client, world):
    visit = make_visit(world)
    assert f'href="/visits/{visit.id}/assessments"' in therapist_client.get(f"/visits/{visit.id}").get_data(as_text=True)
    episode = therapist_client.get(f"/episodes/{world.episode.id}").get_data(as_text=True)
    assert f'href="/patients/{world.patient.id}/assessments"' in episode


def test_the_pose_models_proposal_fills_the_marking_form(therapist_client, db, world, monkeypatch):
    from .test_assessments_operations import LEFT_LEG, fake_pose

    consent(world)
    fake_pose(monkeypatch, LEFT_LEG)
    capture = operations.upload_still(Actor(world.therapist), make_visit(world).id, png(640, 480), now=NOW)
    response = therapist_client.post(f"/goniometry/{capture.id}/proposal",
                                     data={"protocol": "rom_knee_flexion", "side": "left"})
    assert response.headers["Location"] == f"/goniometry/{capture.id}?protocol=rom_knee_flexion"
    html = therapist_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Proposed by the pose model" in html
    assert 'name="axis_x" min="0" max="640" step="any" value="400"' in html
    assert re.search(r'<option value="left" selected>Left</option>', html)
