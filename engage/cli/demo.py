"""``engage demo``: the README's main job, on the embedded default (see :mod:`engage.demo`)."""

from __future__ import annotations

import click

from engage.cli.common import emit, json_option, user_errors, wants_json


@click.command("demo")
@click.option("--patients", type=click.IntRange(1, 50), default=5, show_default=True, help="Demo patients to seed.")
@click.option("--days", type=click.IntRange(1, 120), default=45, show_default=True, help="Simulated days to run.")
@json_option
@user_errors
def demo(patients: int, days: int) -> None:
    """Seed a demo clinic, enrol its patients and send their messages over a simulated clock.

    Runs on SQLite (ENGAGE_DATABASE_URL, default ./engage.db) with an in-process
    Celery broker and worker, no Redis and no credentials: messages are written
    to ENGAGE_OUTBOX_DIR (default ./outbox), never sent to a vendor. Each run
    adds a fresh demo clinic and cancels earlier demo runs' unsent messages.
    """
    from engage.demo import embedded_environment, run_demo, summary_text

    quiet = wants_json()
    with embedded_environment():
        report = run_demo(patients=patients, days=days, progress=None if quiet else click.echo)
    emit(report.as_dict(), lambda: summary_text(report))
