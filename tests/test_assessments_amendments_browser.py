"""Headless Chromium through correcting and withdrawing assessment results, against the app served
for real (CSRF on, file SQLite): from a patient's trend the therapist corrects a chair-stand count
(refused first without a reason, the typed count kept), reads the result's history, then withdraws
the baseline as entered in error and sees the next result become the baseline. Every request stays
on 127.0.0.1, the CSP blocks nothing, and the rows stored match what the pages show."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from telerehab.accounts.operations import Actor
from telerehab.assessments import operations
from telerehab.assessments.models import AssessmentResult
from telerehab.careplans import operations as careplans
from telerehab.extensions import db

from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import NOW, PASSWORD
from .test_assessments_operations import chair_stand

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser

PROTOCOL = "perf_30s_chair_stand"
STANDS = (9, 12, 15)  # one a week, in clinic: the first is the baseline
CORRECTED_STANDS = 13  # the second, recounted
CORRECTION_REASON = "Counted the first stand before she was up"
WITHDRAWAL_REASON = "Entered in the wrong patient's chart"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "assessment-amendments-browser")
    with app.app_context():
        _, _, therapist, ana, episode = riverbend()
        results = []
        for week, stands in enumerate(STANDS):
            start = datetime(2026, 3, 3, 15, tzinfo=UTC) + timedelta(weeks=week)
            visit = careplans.schedule_visit(Actor(therapist), episode.id, {
                "kind": "treatment", "modality": "in_clinic", "starts_at": start,
                "ends_at": start + timedelta(minutes=45)}, now=NOW)
            results.append(operations.record_result(Actor(therapist), ana.id, chair_stand(visit, stands),
                                                    now=start + timedelta(minutes=30)).id)
        ids = SimpleNamespace(patient=ana.id, therapist=therapist.id, results=results)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, app=app, ids=ids)


def stored(app, result_id: int) -> AssessmentResult:
    with app.app_context():
        result = db.session.get(AssessmentResult, result_id)
        db.session.expunge(result)
        return result


def result_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AssessmentResult))


def scores_shown(page) -> list[float]:
    return [float(text) for text in page.locator("tr.trend-row td:nth-child(3) strong").all_inner_texts()]


def test_correct_a_result_then_withdraw_the_baseline_from_the_trend(live_server, browser):
    base, expect, ids, app = live_server.url, sync_api.expect, live_server.ids, live_server.app
    baseline_id, recounted_id, last_id = ids.results
    trend_url = f"{base}/patients/{ids.patient}/assessments/{PROTOCOL}"
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)

    page.goto(trend_url)
    rows = page.locator("tr.trend-row")
    expect(rows).to_have_count(len(STANDS))
    assert scores_shown(page) == list(STANDS)

    # Correct the second result: without a reason first.
    rows.nth(1).get_by_role("link", name="Correct", exact=True).click()
    expect(page).to_have_url(f"{base}/assessment-results/{recounted_id}/correction")
    expect(page.locator("#input-stands")).to_have_value(str(STANDS[1]))  # starts from the result
    page.fill("#input-stands", str(CORRECTED_STANDS))
    page.get_by_role("button", name="Save correction").click()
    expect(page.locator("#reason-error")).to_contain_text("Say what was wrong with the result")
    expect(page.locator("#reason")).to_have_attribute("aria-describedby", "reason-error")
    expect(page.locator("#reason")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#input-stands")).to_have_value(str(CORRECTED_STANDS))  # what was typed is kept
    assert (422, f"{base}/assessment-results/{recounted_id}/correction") in recorder.responses
    assert stored(app, recounted_id).in_force and result_count(app) == len(STANDS)  # nothing written

    page.fill("#reason", CORRECTION_REASON)
    page.get_by_role("button", name="Save correction").click()
    expect(page).to_have_url(trend_url)
    expect(page.get_by_text(f"corrected to {CORRECTED_STANDS} stands")).to_be_visible()
    assert scores_shown(page) == [STANDS[0], CORRECTED_STANDS, STANDS[2]]
    expect(page.locator("svg.trend-chart g.trend-point")).to_have_count(len(STANDS))

    original = stored(app, recounted_id)
    correction_id = original.superseded_by_id
    assert correction_id is not None and not original.in_force
    assert (original.score, original.superseded_reason, original.superseded_by_user_id) == (
        STANDS[1], CORRECTION_REASON, ids.therapist)
    correction = stored(app, correction_id)
    assert (correction.score, correction.inputs["stands"], correction.in_force) == (
        CORRECTED_STANDS, CORRECTED_STANDS, True)
    assert correction.recorded_at == original.recorded_at  # still plotted on the day it was taken

    # The history: the original superseded with its reason, then the correction in force.
    rows.nth(1).get_by_role("link", name="Corrected: history").click()
    expect(page).to_have_url(f"{base}/assessment-results/{correction_id}")
    entries = page.locator("li.history-entry")
    expect(entries).to_have_count(2)
    expect(entries.nth(0)).to_have_id(f"result-{recounted_id}")
    expect(entries.nth(0).locator("header strong")).to_have_text(str(STANDS[1]))
    expect(entries.nth(0)).to_contain_text("Superseded")
    expect(entries.nth(0).locator(".amendment")).to_contain_text(CORRECTION_REASON)
    expect(entries.nth(0).get_by_role("button", name="Correct")).to_have_count(0)  # no action on the old one
    expect(entries.nth(1)).to_have_id(f"result-{correction_id}")
    expect(entries.nth(1).locator("header strong")).to_have_text(str(CORRECTED_STANDS))
    expect(entries.nth(1)).to_contain_text("In force")

    # Withdraw the baseline: the corrected result becomes the baseline.
    page.goto(trend_url)
    rows.nth(0).get_by_role("link", name="Withdraw (entered in error)").click()
    expect(page).to_have_url(f"{base}/assessment-results/{baseline_id}/withdrawal")
    page.fill("#reason", WITHDRAWAL_REASON)
    page.get_by_role("button", name="Withdraw (entered in error)").click()
    expect(page).to_have_url(trend_url)
    expect(page.get_by_text(f"the result of {STANDS[0]} stands is withdrawn")).to_be_visible()
    expect(rows).to_have_count(len(STANDS) - 1)
    assert scores_shown(page) == [CORRECTED_STANDS, STANDS[2]]
    expect(rows.nth(0).locator("td").nth(3)).to_have_text("Baseline")
    expect(rows.nth(1).locator("td").nth(3)).to_contain_text(f"+{STANDS[2] - CORRECTED_STANDS} stands")
    expect(page.locator("svg.trend-chart g.trend-point")).to_have_count(len(STANDS) - 1)

    withdrawn = stored(app, baseline_id)
    assert (withdrawn.in_force, withdrawn.withdrawn_by_id, withdrawn.withdrawn_reason) == (
        False, ids.therapist, WITHDRAWAL_REASON)
    assert withdrawn.superseded_by_id is None and stored(app, last_id).in_force
    assert result_count(app) == len(STANDS) + 1  # nothing deleted: the correction is a new row

    recorder.assert_offline_and_clean()
    context.close()
