"""Errors raised by operations; the web and API layers turn them into 4xx answers."""


class DomainError(Exception):
    status = 400


class ValidationFailed(DomainError):
    """Field name -> list of messages, the same shape marshmallow gives."""

    status = 422

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class NotFound(DomainError):
    """Also raised for records the user may not see, so that their existence is not revealed."""

    status = 404


class Forbidden(DomainError):
    status = 403


class Throttled(DomainError):
    status = 429

    def __init__(self, message: str, retry_after_seconds: int):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


def field_errors(problems: dict[str, str | None]) -> None:
    """Raise ValidationFailed for whichever of `problems` are not None."""
    errors = {field: [message] for field, message in problems.items() if message}
    if errors:
        raise ValidationFailed(errors)
