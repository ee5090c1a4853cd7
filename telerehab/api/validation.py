"""marshmallow glue shared by every domain's schemas."""

from collections.abc import Callable

from marshmallow import ValidationError, validate

# Ids are INTEGER columns: a larger number can be no row, and would overflow PostgreSQL's parameter.
ROW_ID = validate.Range(min=1, max=2**31 - 1)


def checked_by(problem: Callable[[str], str | None]) -> Callable[[str], None]:
    """Turn a rules.py `*_problem` function into a marshmallow validator."""

    def validate(value: str) -> None:
        message = problem(value)
        if message:
            raise ValidationError(message)

    return validate
