"""Errors the library raises for people to read (the CLI and the web turn them into messages)."""


class InvalidInput(ValueError):
    """The input is wrong (bad phone, unknown time zone, end before start, ...); nothing was written.

    ``field`` names the input at fault when one does (the API points at it), else None.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(InvalidInput):
    """The input is well formed but the record's state forbids it (the API answers 409); nothing was written."""


class NotFound(LookupError):
    """No such record (or not in the caller's clinic)."""
