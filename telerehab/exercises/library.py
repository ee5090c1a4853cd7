"""Our exercise library: library.json, loaded and validated once at start-up."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from marshmallow import ValidationError

from telerehab.exercises.rules import (
    Dosage,
    Exercise,
    clinic_exercise_key,
    library_problems,
    normalise_equipment,
    search_words,
)
from telerehab.exercises.schemas import LibraryFileSchema

LIBRARY_PATH = Path(__file__).resolve().parent / "library.json"


class LibraryError(RuntimeError):
    """The library file is missing or malformed: the app refuses to start."""


def parse_library(text: str, *, source: str = "library.json") -> tuple[int, tuple[Exercise, ...]]:
    """The library's version and exercises; raises LibraryError naming every problem."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise LibraryError(f"{source}: not valid JSON ({error})") from None
    try:
        data = LibraryFileSchema().load(raw)
    except ValidationError as error:
        raise LibraryError(f"{source}: {_describe(error.messages, raw)}") from None
    exercises = tuple(_exercise(entry) for entry in data["exercises"])
    problems = library_problems(exercises)
    if problems:
        raise LibraryError(f"{source}: " + "; ".join(problems))
    return data["version"], exercises


def _exercise(entry: dict) -> Exercise:
    exercise = Exercise(
        key=entry["id"], name=entry["name"], body_region=entry["body_region"],
        instructions=entry["instructions"], equipment=normalise_equipment(entry["equipment"]),
        media=entry["media"], dosage=Dosage(**entry["dosage"]),
    )
    return _with_words(exercise)


def _with_words(exercise: Exercise) -> Exercise:
    object.__setattr__(exercise, "words", search_words(exercise))
    return exercise


def _describe(messages: dict, raw) -> str:
    """marshmallow's messages, with each library entry named by its id rather than its index."""
    entries = messages.get("exercises") if isinstance(messages, dict) else None
    if not isinstance(entries, dict):
        return json.dumps(messages, sort_keys=True)
    parts = []
    for index, problem in sorted(entries.items(), key=lambda item: str(item[0])):
        name = index
        if isinstance(index, int) and isinstance(raw, dict):
            try:
                name = raw["exercises"][index].get("id", index)
            except (AttributeError, IndexError, KeyError, TypeError):
                name = index
        parts.append(f"{name}: {json.dumps(problem, sort_keys=True)}")
    return "; ".join(parts)


def load_library() -> tuple[Exercise, ...]:
    """The library (read once per file: a changed LIBRARY_PATH, as in tests, is read anew)."""
    return _load(LIBRARY_PATH)


def library_by_key() -> dict[str, Exercise]:
    return _index(LIBRARY_PATH)


@lru_cache(maxsize=4)
def _load(path: Path) -> tuple[Exercise, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise LibraryError(f"cannot read the exercise library {path}: {error}") from None
    return parse_library(text, source=path.name)[1]


@lru_cache(maxsize=4)
def _index(path: Path) -> dict[str, Exercise]:
    return {exercise.key: exercise for exercise in _load(path)}


def as_exercise(row) -> Exercise:
    """A clinic's own exercise (a ClinicExercise row) in the library's shape."""
    return _with_words(Exercise(
        key=clinic_exercise_key(row.id), name=row.name, body_region=row.body_region,
        instructions=row.instructions, equipment=tuple(row.equipment or ()), media=row.media or "",
        dosage=Dosage(sets=row.default_sets, reps=row.default_reps, hold_seconds=row.default_hold_seconds,
                      times_per_day=row.default_times_per_day, days_per_week=row.default_days_per_week),
        clinic_id=row.clinic_id,
    ))
