"""Headless Chromium through the exercise library and the home-program editor, against the app
served for real (CSRF on, file SQLite, the real clock): the therapist searches the library, adds
the clinic's own exercise, then changes a patient's program to use it (each after one refused
field); the change is a new version, and the earlier one stays in the history. Every request stays
on 127.0.0.1 and the CSP blocks nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from telerehab.accounts.operations import Actor
from telerehab.db_types import utc_now
from telerehab.exercises import operations as exercises
from telerehab.exercises.models import ClinicExercise, Program
from telerehab.extensions import db

from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import PASSWORD

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "exercises-browser")
    with app.app_context():
        _, clinic, therapist, _, episode = riverbend()
        exercises.create_program_version(Actor(therapist), episode.id, {"items": [
            {"exercise_key": "glute-bridge"}, {"exercise_key": "heel-raise", "reps": 12}]}, now=utc_now())
        ids = SimpleNamespace(episode=episode.id, clinic=clinic.id)
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, ids=ids, app=app)


def test_the_therapist_adds_a_clinic_exercise_and_puts_it_in_a_new_program_version(live_server, browser):
    base, expect, ids = live_server.url, sync_api.expect, live_server.ids
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "therapist", PASSWORD)

    # ---- search: stretches for the knee
    page.goto(f"{base}/exercises")
    expect(page.get_by_role("heading", name="Exercise library")).to_be_visible()
    page.fill("#q", "stretch")
    page.select_option("select[name=region]", "knee")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.library tbody tr")
    expect(rows.first).to_be_visible()
    count = rows.count()
    expect(page.locator(".result-count")).to_have_text(f"{count} exercise{'' if count == 1 else 's'}")
    for row in rows.all():
        expect(row.locator("strong")).to_contain_text(re.compile("stretch", re.I))
        expect(row.locator("td[data-label=Region]")).to_have_text("Knee")
    expect(rows.filter(has_text="Seated back-of-thigh stretch")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/exercises\?q=stretch&region=knee"))

    # ---- the clinic's own exercise, first with instructions too short to follow
    page.get_by_text("Add your clinic's own exercise").click()
    page.fill("#name", "Stair descent drill")
    page.select_option("#body_region", "knee")
    page.fill("#instructions", "Go down")
    page.fill("#equipment", "step, rail")
    page.fill("#reps", "8")
    page.get_by_role("button", name="Add to the library").click()
    expect(page.locator("#instructions-error")).to_be_visible()
    expect(page.locator("#add-exercise")).to_have_attribute("open", "")  # the form stays unfolded
    expect(page.locator("#name")).to_have_value("Stair descent drill")
    page.fill("#instructions", "Stand on the step holding the rail; lower the other heel slowly to the floor.")
    page.get_by_role("button", name="Add to the library").click()
    expect(page.get_by_text("“Stair descent drill” is added to your clinic's library.")).to_be_visible()
    added = page.locator("table.library tbody tr", has_text="Stair descent drill")
    expect(added.locator(".badge")).to_have_text("clinic")
    expect(added.locator("td[data-label=Equipment]")).to_have_text("step, rail")
    expect(added.locator("td[data-label='Usual dose']")).to_contain_text("3 \N{MULTIPLICATION SIGN} 8")

    # ---- the home program: the heel raises out, the new drill in, dates the wrong way round first
    page.goto(f"{base}/episodes/{ids.episode}/program")
    page.get_by_role("button", name="Change the program").click()  # Pico: a link styled role="button"
    expect(page.get_by_text("saving makes version 2; version 1 stays in the history")).to_be_visible()
    expect(page.locator("#items-0-exercise_key")).to_have_value("glute-bridge")
    expect(page.locator("#items-1-reps")).to_have_value("12")
    page.locator("fieldset.item-row").nth(1).get_by_label("Remove from the program").check()
    drill = page.locator("#items-2-exercise_key option", has_text="Stair descent drill")
    page.select_option("#items-2-exercise_key", drill.get_attribute("value"))
    page.fill("#items-2-reps", "6")
    page.fill("#items-2-start_date", "2099-01-10")
    page.fill("#items-2-end_date", "2099-01-01")
    page.fill("#change_note", "Stairs instead of heel raises")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.locator("#items-2-end_date-error")).to_have_text("The end date is before the start date.")
    expect(page.locator("#items-2-exercise_key")).to_have_value(drill.get_attribute("value"))
    expect(page.locator("#items-2-reps")).to_have_value("6")
    expect(page.locator("fieldset.item-row").nth(1).get_by_label("Remove from the program")).to_be_checked()
    page.fill("#items-2-start_date", "")
    page.fill("#items-2-end_date", "")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.get_by_text(re.compile(r"Version 2 of the home program is saved; it takes effect on"))).to_be_visible()
    expect(page).to_have_url(f"{base}/episodes/{ids.episode}/program")

    history = page.locator("#history article.version")
    expect(history).to_have_count(2)
    expect(page.locator("#version-2")).to_contain_text("Stairs instead of heel raises")
    expect(page.locator("#version-2")).to_contain_text("Stair descent drill")
    expect(page.locator("#version-2")).not_to_contain_text("Heel raise")
    expect(page.locator("#version-1")).to_contain_text("Heel raise")  # the earlier version is kept
    expect(page.locator("#in-force")).to_contain_text("version 2")
    expect(page.locator("#in-force")).to_contain_text("3 sets \N{MULTIPLICATION SIGN} 6 reps")
    recorder.assert_offline_and_clean()
    context.close()

    with live_server.app.app_context():
        exercise = db.session.scalar(select(ClinicExercise))
        assert (exercise.clinic_id, exercise.body_region, exercise.equipment, exercise.default_reps) == (
            ids.clinic, "knee", ["step", "rail"], 8)
        versions = db.session.scalars(select(Program).where(Program.episode_id == ids.episode)
                                      .order_by(Program.version)).all()
        assert [v.version for v in versions] == [1, 2]
        assert [(i.exercise_key, i.reps) for i in versions[1].items] == [
            ("glute-bridge", 10), (f"clinic:{exercise.id}", 6)]
        assert [i.exercise_key for i in versions[0].items] == ["glute-bridge", "heel-raise"]
        db.session.remove()
