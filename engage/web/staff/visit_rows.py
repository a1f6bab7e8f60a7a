"""Today's visit rows as HTML, built here rather than in the template: a day of 300 visits is some 4,500 values
to escape, which through Jinja's autoescaping cost more than the rest of the page (``tests/bench``); here each
text is escaped once with :func:`html.escape` and the rows are joined into one :class:`Markup`.

The markup is the same as a template's would be: one ``<tr class="confirmation-...">`` per visit, the patient's
link, a ``tel:`` link, the session number, the practitioner, the confirmation in words and, for a booked visit
not yet confirmed, the "Confirmed by phone" button of the page's one ``confirm-visit`` form."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from engage.schedule.day_list import Visit


def visit_rows(visits: list[Visit], *, may_confirm: bool) -> Markup:
    """The ``<tr>`` rows of a day's visits table."""
    return Markup("".join(_row(v, may_confirm) for v in visits))  # noqa: S704 (every text is escaped below)


def _row(v: Visit, may_confirm: bool) -> str:
    name = escape(v.patient_name)
    born = f' <span class="muted">(born {v.date_of_birth:%d %b %Y})</span>' if v.date_of_birth else ""
    phone = f'<a href="tel:{escape(v.phone)}">{escape(v.phone)}</a>' if v.phone else "no phone"
    session = f"{v.session_number} of {v.session_count}" if v.session_number else "cancelled"
    status = v.status.value
    if status not in ("booked", "cancelled"):
        session += f" ({status.replace('_', ' ')})"
    button = ""
    if may_confirm and status == "booked" and v.confirmation != "confirmed":
        button = (
            f'\n        <button form="confirm-visit" formaction="/appointments/{v.appointment_id}/confirm"'
            f' class="inline secondary" aria-label="Confirmed by phone: {name}, {escape(v.day_time)}">'
            "Confirmed by phone</button>"
        )
    return (
        f'<tr class="confirmation-{escape(v.confirmation)}"><td>{escape(v.hours)}</td>'
        f'<td><a href="/patients/{v.patient_id}">{name}</a>{born}</td><td>{phone}</td><td>{session}</td>'
        f"<td>{escape(v.practitioner or '')}</td><td>{escape(v.confirmation_text)}{button}</td></tr>\n"
    )
