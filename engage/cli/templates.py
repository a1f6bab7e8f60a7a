"""``engage templates check|preview``: make sure every message renders, and see one as a patient would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from engage.cli.common import UserError, emit, json_option, table, user_errors
from engage.content.checks import Report, check_templates
from engage.content.message_context import patient_preview_context, sample_context
from engage.content.rendering import (
    TemplateError,
    render_email,
    render_sms,
    resolve_template,
    template_names,
)
from engage.errors import NotFound

_templates_dir_option = click.option(
    "--templates-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Templates folder (default: ENGAGE_TEMPLATES_DIR).",
)


@click.group("templates")
def templates() -> None:
    """Check and preview message templates."""


@templates.command("check")
@_templates_dir_option
@click.option(
    "--database/--no-database",
    default=True,
    show_default=True,
    help="Also check the texts clinics stored in the database (their published sequence versions in use).",
)
@json_option
def check(templates_dir: Path | None, database: bool) -> None:
    """Render every template in every locale with sample data, and the texts clinics stored in the database;
    exit 1 naming file and rule on any problem."""
    report = check_templates(templates_dir)
    if database:
        _check_database(report, templates_dir)

    def human() -> str:
        if report.ok:
            return f"ok: {report.checked} templates checked"
        rows = [{"file": p.file, "rule": p.rule, "detail": p.detail} for p in report.problems]
        summary = f"{len(report.problems)} problem(s) in {report.checked} templates checked"
        return f"{table(rows, ['file', 'rule', 'detail'])}\n{summary}"

    emit(report.as_dict(), human)
    if not report.ok:
        click.get_current_context().exit(1)


def _check_database(report: Report, templates_dir: Path | None) -> None:
    """Add the stored versions' problems; a database that does not exist yet (or is not migrated) has none,
    one that cannot be reached is said on stderr (the files were still checked)."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from engage.config import get_settings
    from engage.db import get_engine, normalise_url, session_scope
    from engage.schedule.stored_checks import check_stored

    url = make_url(normalise_url(get_settings().database_url))
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
        return  # no database yet: nothing stored
    try:
        if not inspect(get_engine()).has_table("sequence_versions"):
            return
        with session_scope() as session:
            check_stored(session, report, templates_dir)
    except SQLAlchemyError as exc:
        click.echo(f"note: stored texts not checked: the database did not answer ({type(exc).__name__})", err=True)


def _pick_channel(name: str, channel: str | None, templates_dir: Path | None) -> str:
    found = [c for c in ("email", "sms") if name in template_names(c, templates_dir)]
    if channel:
        if channel not in found:
            raise UserError(f"no {channel} template named {name!r}")
        return channel
    if not found:
        raise UserError(f"no template named {name!r}")
    if len(found) > 1:
        raise UserError(f"{name!r} exists for email and sms; choose one with --channel")
    return found[0]


def _patient_context(patient_id: int, channel: str, step: dict[str, Any]) -> dict[str, Any]:
    from engage.db import session_scope
    from engage.records.models import Patient

    with session_scope() as session:
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise NotFound(f"no patient with id {patient_id}")
        return patient_preview_context(session, patient, channel, step=step)


@templates.command("preview")
@click.argument("name")
@click.option("--locale", default=None, help="en, es, ... (default: the patient's, else en).")
@click.option(
    "--patient", "patient_id", type=int, default=None, help="Use this patient's clinic, time zone and next appointment."
)
@click.option("--channel", type=click.Choice(["email", "sms"]), default=None, help="Needed when both exist.")
@click.option("--day", type=int, default=1, show_default=True, help="The step's day (stretch prompts vary by day).")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write an email's HTML to this file.",
)
@_templates_dir_option
@json_option
@user_errors
def preview(
    name: str,
    locale: str | None,
    patient_id: int | None,
    channel: str | None,
    day: int,
    html_file: Path | None,
    templates_dir: Path | None,
) -> None:
    """Print a rendered message (sample data, or a real patient's with --patient), as the first SMS of an enrollment."""
    channel = _pick_channel(name, channel, templates_dir)
    if html_file is not None and channel != "email":
        raise UserError("--html is for email templates")
    step = {"day": day}
    if patient_id is not None:
        context = _patient_context(patient_id, channel, step)
    else:
        context = sample_context(name, channel, locale or "en", step=step)
    wanted = locale or context["locale"]
    try:
        effective, _files = resolve_template(channel, name, wanted, templates_dir)
        if channel == "email":
            email = render_email(name, context, wanted, templates_dir)
        else:
            sms = render_sms(name, context, wanted, templates_dir)
    except TemplateError as exc:
        raise UserError(str(exc)) from exc

    data: dict[str, Any] = {"template": name, "channel": channel, "locale": effective}
    if channel == "email":
        if html_file is not None:
            html_file.write_text(email.html, encoding="utf-8")
        data.update(
            subject=email.subject, text=email.text, html=email.html, html_file=str(html_file) if html_file else None
        )
        note = f"\n\n(HTML written to {html_file})" if html_file else ""
        emit(data, f"Subject: {email.subject}\n\n{email.text}{note}")
    else:
        data.update(body=sms.body, segments=sms.segments, encoding=sms.encoding)
        emit(data, f"{sms.body}\n\n({sms.segments} segment(s), {sms.encoding})")
