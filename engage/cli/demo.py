"""``engage demo``: the README's main job, on the embedded default (see :mod:`engage.demo`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from engage.cli.common import emit, json_option, table, user_errors, wants_json

if TYPE_CHECKING:
    from engage.demo import DemoReport


@click.command("demo")
@click.option("--patients", type=click.IntRange(1, 50), default=9, show_default=True, help="Demo patients to seed.")
@click.option("--days", type=click.IntRange(1, 120), default=45, show_default=True, help="Simulated days to run.")
@json_option
@user_errors
def demo(patients: int, days: int) -> None:
    """Seed a demo clinic, enroll its patients and send their messages over a simulated clock.

    Runs on SQLite (ENGAGE_DATABASE_URL, default ./engage.db) with an in-process
    Celery broker and worker, no Redis and no credentials: messages are written
    to ENGAGE_OUTBOX_DIR (default ./outbox), never sent to a vendor. Each run
    replaces the earlier demo clinic: its weeks end now, with visits today and tomorrow.
    """
    from engage.demo import embedded_environment, run_demo

    quiet = wants_json()
    with embedded_environment():
        report = run_demo(patients=patients, days=days, progress=None if quiet else click.echo)
    emit(report.as_dict(), lambda: summary_text(report))


def summary_text(report: DemoReport) -> str:
    """The human summary: a table of templates by status, then where the files are."""
    columns = ["template", "channel"]
    for status in ("sent", "skipped", "cancelled", "failed", "unknown", "scheduled"):
        if any(status in row for row in report.by_template):
            columns.append(status)
    columns.append("total")
    rows = [
        {c: row.get(c, 0) if c not in ("template", "channel") else row[c] for c in columns}
        for row in report.by_template
    ]
    files = report.outbox_files
    lines = [
        "",
        f"Demo clinic {report.clinic_id}: {len(report.patients)} patients, {report.ticks} ticks, "
        f"{report.tasks['send_message']} send tasks, "
        f"simulated {report.start:%Y-%m-%d} to {report.end:%Y-%m-%d}, {report.elapsed_seconds:.1f}s real time",
        "",
        table(rows, columns),
        "",
        f"Outbox: {files['total']} files in {report.outbox_dir} "
        f"({files['email']} email .eml, {files['sms']} SMS .json).",
        f"Database: {report.database}. Each run replaces the earlier demo clinic; the simulated weeks end now.",
    ]
    login = report.staff_login
    if login:
        lines += [
            "",
            "See it in the staff web app:",
            f"  {login['command']}",
            f"then open {login['url']} and sign in as {login['email']} with the password {login['password']}",
        ]
    return "\n".join(lines)
