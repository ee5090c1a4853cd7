"""marshmallow glue shared by every domain's schemas."""

import re
from collections.abc import Callable

from marshmallow import ValidationError, fields, validate

# Ids are INTEGER columns: a larger number can be no row, and would overflow PostgreSQL's parameter.
ROW_ID = validate.Range(min=1, max=2**31 - 1)


def checked_by(problem: Callable[[str], str | None]) -> Callable[[str], None]:
    """Turn a rules.py `*_problem` function into a marshmallow validator."""

    def validate(value: str) -> None:
        message = problem(value)
        if message:
            raise ValidationError(message)

    return validate


def x12_text(min_length: int, max_length: int) -> list:
    """A text that goes into a claim file: * : ~ ^ separate its elements, components, segments and
    repetitions, so a value holding one (or a line break) is refused here rather than at export."""
    return [validate.Length(min=min_length, max=max_length), validate.Regexp(
        r"^[^*:~^\x00-\x1f]*$", error="Write this without * : ~ ^ or line breaks: claim files use them as separators.")]


def dollars(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


class Dollars(fields.Field):
    """An amount typed in dollars and cents ("2,410.00", "$2410.5", "2410"), loaded as cents; bounds are
    the field's validators."""

    default_error_messages = {
        "required": "Give the amount in dollars and cents, for example 2,410.00.",
        "invalid": "Give the amount in dollars and cents, for example 2,410.00.",
        "negative": "The amount cannot be negative.",
    }
    _PATTERN = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]{1,2})?")

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        text = str(value).strip().removeprefix("$").strip()
        if text.startswith("-"):
            raise self.make_error("negative")
        if not self._PATTERN.fullmatch(text):
            raise self.make_error("invalid")
        whole, _, fraction = text.replace(",", "").partition(".")
        return int(whole) * 100 + int(fraction.ljust(2, "0"))
