"""``engage sequences export|import``: a clinic's own version of a sequence as files it can keep in git."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from engage.cli.common import ACTOR, UserError, emit, json_option, user_errors
from engage.db import session_factory, session_scope
from engage.records import lookup
from engage.records.models import Clinic
from engage.schedule.catalogue import set_default_sequence
from engage.schedule.exchange import export_version, import_draft, write_texts
from engage.schedule.publish import publish_draft


@click.group("sequences")
def sequences() -> None:
    """A clinic's versions of a sequence: export as YAML, import (and publish) from it."""


@sequences.command("export")
@click.argument("key")
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option("--version", type=int, default=None, help="A published version (default: the current one).")
@click.option(
    "--texts-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the version's message texts there, laid out as templates/ (sms/..., email/...).",
)
@user_errors
def export(key: str, clinic_id: int, version: int | None, texts_dir: Path | None) -> None:
    """Print the clinic's published version of KEY as the YAML the sequence loader reads."""
    with session_scope() as session:
        text, texts = export_version(session, clinic_id, key, version)
    if texts_dir is not None:
        write_texts(texts_dir, texts)
    click.echo(text, nl=False)


@sequences.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option(
    "--texts-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Read the steps' message texts from there (laid out as templates/); others are kept.",
)
@click.option("--publish", is_flag=True, help="Publish the draft as the next version.")
@click.option("--current-patients", is_flag=True, help="With --publish: re-plan the patients already enrolled.")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@json_option
@user_errors
def import_(
    file: click.utils.LazyFile,
    clinic_id: int,
    texts_dir: Path | None,
    publish: bool,
    current_patients: bool,
    dry_run: bool,
) -> None:
    """Make the clinic's draft of a sequence from FILE (YAML, as export prints it); with --publish, publish it.

    Prints {"version": N, "changed": X, "cancelled": Y, "added": Z}: what publishing did (or, with
    --dry-run, would do) to pending messages of patients already enrolled.
    """
    if current_patients and not publish:
        raise UserError("--current-patients needs --publish")
    text = file.read()
    session = session_factory()()
    try:
        draft = import_draft(session, clinic_id, text, actor=ACTOR, texts_dir=texts_dir)
        problems = [{"field": p.field, "message": p.message} for p in draft.problems]
        if publish and problems:
            listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
            raise UserError(f"the draft of {draft.key!r} has problems, so it was not published: {listed}")
        if not publish:
            data: dict[str, Any] = {"key": draft.key, "version": None, "draft": True, "problems": problems}
            human = f"draft of {draft.key!r} saved" + (f" with {len(problems)} problem(s)" if problems else "")
        else:
            summary = publish_draft(
                session, clinic_id, draft.key, actor=ACTOR, current_patients=current_patients, dry_run=dry_run
            )
            data = summary.as_dict()
            human = (
                f"{'would publish' if dry_run else 'published'} version {summary.version} of {draft.key!r}: "
                f"{summary.changed} pending messages change, {summary.cancelled} are cancelled, {summary.added} "
                "are added; already-sent steps are never sent again"
            )
        if dry_run:
            session.rollback()
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    emit(data, human)


@sequences.command("default")
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.argument("key", required=False)
@click.option("--none", "clear", is_flag=True, help="No default: refuse such appointments, as before.")
@json_option
@user_errors
def default(clinic_id: int, key: str | None, clear: bool) -> None:
    """Set the sequence a synced appointment without one (CSV, FHIR, upserts) is planned in when its patient
    has no active plan. Without KEY or --none, show it."""
    if key is not None and clear:
        raise UserError("give KEY or --none, not both")
    with session_scope() as session:
        if key is not None or clear:
            set_default_sequence(session, clinic_id, None if clear else key, actor=ACTOR)
        current = lookup.get(session, Clinic, clinic_id).default_sequence
    emit(
        {"clinic_id": clinic_id, "default_sequence": current},
        f"clinic {clinic_id}: default sequence {current or 'none'}",
    )
