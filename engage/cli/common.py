"""What every `engage` command shares: the --json switch, one JSON object on stdout, clear errors on stderr."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from engage.config import StartupRefused

F = TypeVar("F", bound=Callable[..., Any])

#: Who the audit log says acted, for a command without ``--by``.
ACTOR = "cli"


class UserError(click.ClickException):
    """Bad input or a missing record: printed as ``error: ...`` on stderr, exit 2, nothing written."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def json_option(func: F) -> F:
    """Add ``--json`` to a command; the command reads it from ``click.get_current_context().obj``."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.ensure_object(dict)["json"] = value
        return value

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=remember,
        is_eager=True,
        help="Print one JSON object on stdout.",
    )(func)


def wants_json() -> bool:
    ctx = click.get_current_context()
    return bool((ctx.obj or {}).get("json"))


def emit(data: dict[str, Any], human: str | Callable[[], str] | None = None) -> None:
    """Print ``data`` as JSON under ``--json``, else ``human`` (text or a function making it)."""
    if wants_json():
        click.echo(json.dumps(data, default=str, ensure_ascii=False))
        return
    text = human() if callable(human) else human
    click.echo(text if text is not None else json.dumps(data, default=str, indent=2, ensure_ascii=False))


def user_errors(func: F) -> F:
    """Turn the library's ``ValueError``/``LookupError`` and a refused start into a clean ``UserError``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ValueError, LookupError, StartupRefused) as exc:
            raise UserError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table for people."""
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def die(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)
