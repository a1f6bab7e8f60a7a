"""Errors the library raises for people to read (the CLI and the web turn them into messages)."""


class InvalidInput(ValueError):
    """The input is wrong (bad phone, unknown time zone, end before start, ...); nothing was written."""


class NotFound(LookupError):
    """No such record (or not in the caller's clinic)."""
