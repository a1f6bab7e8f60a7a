"""Rendering from texts stored in the database over the template files: the ONE way a clinic's own words render.

A clinic's published (or draft) version of a sequence carries the sources of every template its steps use
(``{"sms/stretch.es.txt": source}``); they replace the files of the same path, while partials and layouts
(``safety/emergency-sms.txt``, ``email/_layout.html``) still come from the files. The sandbox, strict
undefined variables, autoescaping and filters are the file renderer's (:mod:`engage.content.rendering`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from engage.content.rendering import PARTS, Texts, as_texts, render_file, templates_root

__all__ = ["Texts", "library_texts", "render_with_texts", "step_templates", "template_paths"]


class _SequenceLike(Protocol):
    @property
    def steps(self) -> Iterable[Any]: ...


def render_with_texts(path: str, texts: Mapping[str, str], context: dict[str, Any]) -> str:
    """Render the template at ``path`` (``sms/stretch.es.txt``), taking its source from ``texts`` when they
    hold it, else from the file. Raises :class:`engage.content.rendering.TemplateError` (an unknown variable,
    a syntax error: the same the file renderer raises)."""
    return render_file(path, context, None, as_texts(texts))


def step_templates(steps: Iterable[Any]) -> list[tuple[str, str]]:
    """``[(channel, template name)]`` the steps may send: each its own, and by email for an ``or_email`` step."""
    found: dict[tuple[str, str], None] = {}
    for step in steps:
        found[(step.channel.value, step.template)] = None
        if step.or_email:
            found[("email", step.template)] = None
    return list(found)


def template_paths(channel: str, name: str, templates_dir: Path | None = None) -> list[str]:
    """The files of one template in every locale (``sms/stretch.txt``, ``sms/stretch.es.txt``), sorted."""
    root = templates_root(templates_dir)
    folder = root / channel
    found = []
    for path in sorted(folder.glob(f"{name}.*")) if folder.is_dir() else []:
        rest = path.name[len(name) + 1 :]
        if any(rest == part or rest.endswith("." + part) for part in PARTS.get(channel, ())):
            found.append(f"{channel}/{path.name}")
    return found


def library_texts(sequence: _SequenceLike, templates_dir: Path | None = None) -> dict[str, str]:
    """The shipped source of every template file the sequence's steps use, in every locale."""
    root = templates_root(templates_dir)
    return {
        path: (root / path).read_text(encoding="utf-8")
        for channel, name in step_templates(sequence.steps)
        for path in template_paths(channel, name, root)
    }
