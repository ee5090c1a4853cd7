"""Our exercise library file: valid, large enough, every region covered; a broken file stops start-up."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from telerehab import create_app
from telerehab.exercises import library
from telerehab.exercises.library import LIBRARY_PATH, LibraryError, load_library, parse_library
from telerehab.exercises.rules import BodyRegion

from .conftest import TEST_SETTINGS


def raw_library() -> dict:
    return json.loads(LIBRARY_PATH.read_text(encoding="utf-8"))


def test_the_library_loads_with_at_least_40_exercises():
    exercises = load_library()
    assert len(exercises) >= 40
    assert len({e.key for e in exercises}) == len(exercises)
    assert len({e.name.lower() for e in exercises}) == len(exercises)


def test_every_body_region_has_exercises():
    regions = Counter(e.body_region for e in load_library())
    assert set(regions) == {r.value for r in BodyRegion}
    assert min(regions.values()) >= 4


def test_every_entry_has_what_a_program_needs():
    for exercise in load_library():
        assert exercise.instructions.endswith("."), exercise.key
        assert 40 <= len(exercise.instructions) <= 2000
        assert exercise.media == "" or "/" not in exercise.media[:1]
        assert exercise.dosage.sets >= 1 and exercise.dosage.reps >= 1
        assert 1 <= exercise.dosage.days_per_week <= 7
        assert all(item == item.lower().strip() for item in exercise.equipment)


def test_the_file_has_every_field_for_every_entry():
    for entry in raw_library()["exercises"]:
        assert set(entry) == {"id", "name", "body_region", "equipment", "media", "instructions", "dosage"}
        assert set(entry["dosage"]) == {"sets", "reps", "hold_seconds", "times_per_day", "days_per_week"}


def _broken(mutate) -> str:
    data = raw_library()
    mutate(data)
    return json.dumps(data)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["exercises"][0].pop("instructions"), "chin-tuck"),
    (lambda d: d["exercises"][1].update(body_region="elbow"), "neck-rotation"),
    (lambda d: d["exercises"][2]["dosage"].update(sets=0), "upper-trapezius-stretch"),
    (lambda d: d["exercises"][3]["dosage"].update(reps="10"), "neck-isometric"),
    (lambda d: d["exercises"][4].update(media="../../etc/passwd"), "pendulum"),
    (lambda d: d["exercises"][5].update(extra="field"), "extra"),
    (lambda d: d["exercises"][6].update(id="Not A Slug"), "Not A Slug"),
    (lambda d: d["exercises"][7].update(id=d["exercises"][8]["id"]), "used twice"),
    (lambda d: d["exercises"][9].update(name=d["exercises"][10]["name"].upper()), "used twice"),
    (lambda d: d.update(exercises=d["exercises"][:39]), "exercises"),
    (lambda d: d.pop("version"), "version"),
], ids=["missing-instructions", "unknown-region", "zero-sets", "string-reps", "media-path", "unknown-field",
        "bad-id", "duplicate-id", "duplicate-name", "fewer-than-40", "no-version"])
def test_a_malformed_library_is_refused_naming_the_entry(mutate, message):
    with pytest.raises(LibraryError) as excinfo:
        parse_library(_broken(mutate))
    assert message in str(excinfo.value)


def test_invalid_json_is_refused():
    with pytest.raises(LibraryError, match="not valid JSON"):
        parse_library("{not json")


def test_the_app_refuses_to_start_with_a_broken_library(tmp_path, monkeypatch):
    broken = tmp_path / "library.json"
    broken.write_text(_broken(lambda d: d["exercises"][0].update(body_region="tail")), encoding="utf-8")
    monkeypatch.setattr(library, "LIBRARY_PATH", broken)
    with pytest.raises(LibraryError, match="chin-tuck"):
        create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_the_app_refuses_to_start_without_a_library(tmp_path, monkeypatch):
    monkeypatch.setattr(library, "LIBRARY_PATH", tmp_path / "missing.json")
    with pytest.raises(LibraryError, match="cannot read"):
        create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
