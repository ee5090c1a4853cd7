"""marshmallow glue shared by every domain's schemas."""

from collections.abc import Callable

from marshmallow import ValidationError


def checked_by(problem: Callable[[str], str | None]) -> Callable[[str], None]:
    """Turn a rules.py `*_problem` function into a marshmallow validator."""

    def validate(value: str) -> None:
        message = problem(value)
        if message:
            raise ValidationError(message)

    return validate
