"""``engage demo``: the whole pipeline on the embedded default, over a simulated clock that ends now.

SQLite (``ENGAGE_DATABASE_URL``, default ``./engage.db``, migrated first), the
in-process Celery broker (``memory://``) with a worker thread in this process,
no Redis, no credentials, and the ``outbox`` provider: every message lands as a
file in ``ENGAGE_OUTBOX_DIR`` (default ``./outbox``).

It seeds a demo clinic with a few patients (English and Spanish, several time
zones, one without a phone, one who replies STOP after her second session, a John
and a Jon Smith), gives each a treatment plan placed around today (some over, some with
a visit today or tomorrow), enrols them in ``dry-needling-sciatica`` and then moves
a simulated clock from due time to due time over the ``days`` before now. At each
step it publishes the real ``dispatch_due`` task; the worker claims the due rows and
runs one real ``send_message`` task per row, with the clock frozen at the simulated
time (a Celery ``task_prerun`` hook), so quiet hours, consent and appointment checks
behave as they would on that day. Patients answer their pain-score texts a couple of
hours later (through the real inbound path), so the charts fill. The clock stops at
the real present: what is due later stays scheduled, and :mod:`engage.demo.morning`
leaves a real morning (attended visits, texts waiting for a person, a failed SMS).

Re-running: the earlier demo clinics are removed with everything under them
(:mod:`engage.demo.earlier_runs`), so there is one demo clinic and one demo login;
their outbox files stay. A database holding scheduled messages of any other clinic
is refused: running the clock would send them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from engage import clock
from engage.config import get_settings
from engage.conversation.consent import record_consent
from engage.db import session_scope
from engage.delivery.startup import check_startup
from engage.errors import InvalidInput
from engage.records import migrate
from engage.records.models import Channel, Clinic, ConsentState, Message, MessageStatus, Patient
from engage.schedule.reconcile import reconcile_patient

SEQUENCE = "dry-needling-sciatica"
DEMO_CLINIC_EMAIL = "frontdesk@riverside-physio.example"  # marks a clinic as the demo's
#: The demo's staff login (SQLite only: a published password must never guard real patients).
DEMO_STAFF_EMAIL = "demo@riverside-physio.example"
DEMO_STAFF_PASSWORD = "demo-password-123"
WAIT_SECONDS = 60.0  # the longest one simulated step may take in real time before we give up


@dataclass(frozen=True)
class DemoPatient:
    first_name: str
    last_name: str
    locale: str
    timezone: str | None  # None: the clinic's
    phone: str | None
    first_session: str  # local wall time, days from today (the simulation's last day): "T-35 09:00"
    sessions: int
    every_days: int
    replies_stop: bool = False
    exercises: tuple[str, ...] = ()  # picked by the practitioner: the stretch text goes only with some


PATIENTS = (
    DemoPatient("Maria", "Lopez", "en", None, "+12125550142", "T-35 09:00", 6, 7, exercises=("figure-four",)),
    DemoPatient("Lucía", "Fernández", "es", "America/Mexico_City", "+525555550123", "T-34 17:30", 6, 7),  # tomorrow
    DemoPatient("James", "Carter", "en", "America/Los_Angeles", None, "T-14 14:00", 4, 5),  # tomorrow
    DemoPatient("Sofía", "Ramírez", "es", "America/Chicago", "+13125550177", "T-40 10:15", 6, 7, replies_stop=True),
    DemoPatient(
        "Tom", "Becker", "en", "America/Denver", "+17205550188", "T-42 08:30", 6, 3, exercises=("gentle-walk",)
    ),
    DemoPatient("Priya", "Patel", "en", None, "+12125550163", "T-28 11:00", 5, 7),  # today
    DemoPatient("John", "Smith", "en", None, "+12125550119", "T-20 15:30", 4, 7),  # tomorrow
    DemoPatient("Grace", "Kim", "en", None, "+16465550131", "T-21 08:00", 5, 7),  # today
    DemoPatient("Jon", "Smith", "en", None, "+17185550142", "T-8 16:00", 6, 4),  # today, third visit
)


@dataclass
class DemoReport:
    """What a demo run did; :meth:`as_dict` is the ``--json`` output."""

    clinic_id: int
    database: str
    outbox_dir: Path
    start: datetime
    end: datetime
    patients: list[dict[str, Any]] = field(default_factory=list)
    ticks: int = 0
    tasks: Counter[str] = field(default_factory=Counter)
    by_template: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    outbox_files: dict[str, int] = field(default_factory=dict)
    removed_earlier_clinics: int = 0
    morning: dict[str, Any] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    staff_login: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "clinic_id": self.clinic_id,
            "database": self.database,
            "outbox_dir": str(self.outbox_dir),
            "simulated": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "patients": self.patients,
            "ticks": self.ticks,
            "tasks": dict(self.tasks),
            "messages": self.statuses,
            "by_template": self.by_template,
            "outbox_files": self.outbox_files,
            "removed_earlier_demo_clinics": self.removed_earlier_clinics,
            "morning": self.morning,
            "elapsed_seconds": round(self.elapsed_seconds, 2),
            "staff_login": self.staff_login,
        }


# --- the embedded default ----------------------------------------------------------------------

#: What the demo forces, whatever the shell says: no vendor is ever called, no Redis is needed.
EMBEDDED_ENV = {
    "ENGAGE_BROKER_URL": "memory://",
    "ENGAGE_SMS_PROVIDER": "outbox",
    "ENGAGE_EMAIL_PROVIDER": "outbox",
    # The rate limiter counts real seconds, but the demo compresses weeks into
    # seconds; a real clinic's 10 SMS/s would only slow it down.
    "ENGAGE_SMS_RATE_PER_SECOND": "10000",
    "ENGAGE_EMAIL_RATE_PER_SECOND": "10000",
}
_DROPPED_ENV = ("ENGAGE_REDIS_URL", "ENGAGE_RESULT_BACKEND")


@contextlib.contextmanager
def embedded_environment() -> Iterator[None]:
    """Force the embedded default for the block (and restore the environment and caches after)."""
    from engage.delivery import providers, ratelimit

    saved = {name: os.environ.get(name) for name in (*EMBEDDED_ENV, *_DROPPED_ENV)}
    os.environ.update(EMBEDDED_ENV)
    for name in _DROPPED_ENV:
        os.environ.pop(name, None)
    _forget_caches(providers.reset_providers, ratelimit.reset_limiters)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _forget_caches(providers.reset_providers, ratelimit.reset_limiters)


def _forget_caches(*resets: Callable[[], None]) -> None:
    get_settings.cache_clear()
    for reset in resets:
        reset()


# --- seeding -----------------------------------------------------------------------------------


def _check_database_is_safe(session: Any) -> int:
    """Refuse a database with other clinics' pending messages; remove earlier demo clinics. Returns how many."""
    from engage.demo.earlier_runs import remove_clinics

    demo_clinics = select(Clinic.id).where(Clinic.email_from == DEMO_CLINIC_EMAIL)
    demo_patients = select(Patient.id).where(Patient.clinic_id.in_(demo_clinics))
    pending = (MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.SENDING)
    foreign = session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.status.in_(pending), Message.patient_id.not_in(demo_patients))
    )
    if foreign:
        raise InvalidInput(
            f"this database has {foreign} messages waiting to be sent to real patients, and the demo runs "
            "the clock forward, which would send them. Run the demo on its own database, e.g. "
            "ENGAGE_DATABASE_URL=sqlite:///./engage-demo.db engage demo"
        )
    return remove_clinics(session, list(session.scalars(demo_clinics)))


def demo_birth_date(n: int) -> date:
    """A made-up date of birth for the ``n``-th demo patient (adults from 1950 to 1999, spread over the year), so
    two demo patients of one name are told apart as at a real desk."""
    return date(1950 + (n * 17) % 50, 1 + (n * 5) % 12, 1 + (n * 11) % 28)


def _seed(session: Any, start: datetime, end: datetime, count: int) -> tuple[int, list[dict[str, Any]]]:
    """A demo clinic with ``count`` patients, each with a plan enrolled in the sequence at ``start``; visits are
    placed by days from ``end`` (today), those before ``start`` recorded as history."""
    from engage.content.exercises import set_plan_exercises
    from engage.records.clinics import create_clinic
    from engage.records.models import MfaPolicy
    from engage.records.patients import add_patient
    from engage.records.plans import create_plan
    from engage.schedule.enrollments import enroll

    clinic = create_clinic(
        session,
        name="Riverside Physio (demo)",
        timezone="America/New_York",
        address="100 Riverside Dr, Suite 2, New York, NY 10024",
        email=DEMO_CLINIC_EMAIL,
        sms_from="+12125550100",
        phone="+12125550100",
        region="US",
        actor="demo",
    )
    # A local demo on its own SQLite file with a printed password: the admin is not sent to set up a second
    # factor before seeing anything (Security in the menu still offers it). Real clinics start at "admins".
    clinic.mfa_required = MfaPolicy.NONE
    seeded = []
    for n in range(count):
        spec = PATIENTS[n % len(PATIENTS)]
        suffix = "" if n < len(PATIENTS) else f" {n // len(PATIENTS) + 1}"
        tag = f"{spec.first_name.lower()}.{n}".encode("ascii", "ignore").decode()
        patient = add_patient(
            session,
            clinic_id=clinic.id,
            first_name=spec.first_name,
            last_name=spec.last_name + suffix,
            email=f"{tag}@patients.example",
            phone=_vary_phone(spec.phone, n),
            timezone=spec.timezone,
            locale=spec.locale,
            actor="demo",
            date_of_birth=demo_birth_date(n),
        ).patient
        day_text, wall = spec.first_session.split()
        first_day = end.astimezone(_tz(patient)).date() + timedelta(days=int(day_text[1:]))
        plan = create_plan(
            session,
            patient_id=patient.id,
            condition="sciatica",
            modality="dry needling",
            first=f"{first_day.isoformat()}T{wall}",
            sessions=spec.sessions,
            every=timedelta(days=spec.every_days),
            duration=timedelta(minutes=45),
            actor="demo",
            allow_past=True,
        )
        if spec.exercises:
            set_plan_exercises(session, plan.id, spec.exercises, actor="demo")
        enrollment, result = enroll(session, patient.id, plan.id, SEQUENCE, enrolled_by="demo")
        appointments = sorted(a.start_at for a in plan.appointments)
        stop_at = None
        if spec.replies_stop and len(appointments) > 1:
            stop_at = max(appointments[1] + timedelta(hours=5), start)
        seeded.append(
            {
                "patient_id": patient.id,
                "name": f"{patient.first_name} {patient.last_name}",
                "locale": patient.locale,
                "timezone": patient.effective_timezone,
                "phone": bool(patient.phone),
                "plan_id": plan.id,
                "enrollment_id": enrollment.id,
                "sessions": spec.sessions,
                "every_days": spec.every_days,
                "stop_at": stop_at.isoformat() if stop_at else None,
            }
        )
    return clinic.id, seeded


#: (first name, last name) of the patients whose finished care gives the Outcomes page real figures.
HISTORY_NAMES = [
    (f, la)
    for la in ("Young", "Zamora", "Zhou", "Zimmer")
    for f in ("Alex", "Bea", "Cruz", "Dana", "Eli", "Fay", "Gus", "Hana", "Ivo")
]


def _outcome_history(session: Any, clinic_id: int, now: datetime) -> int:
    """Finished episodes in the months before ``now``: three practitioners (one with too few episodes to show
    by name), weekly plans, a baseline the day before the first session and weekly scores after it, most
    improving, some not, one worse. Enrollments are completed, so nothing is planned or sent for them."""
    from engage.conversation.measures import record_score
    from engage.records.models import Enrollment, EnrollmentStatus
    from engage.records.patients import add_patient
    from engage.records.plans import create_plan
    from engage.records.practitioners import add_practitioner

    names = ("Dr. Maya Chen", "Dr. Sam Okafor", "Jo Rivera, PT")
    who = [
        add_practitioner(session, clinic_id, name=n, external_id=f"DR-{i}", actor="demo").id
        for i, n in enumerate(names, 1)
    ]
    for n, (first_name, last_name) in enumerate(HISTORY_NAMES):
        patient = add_patient(
            session,
            clinic_id=clinic_id,
            first_name=first_name,
            last_name=last_name,
            actor="demo",
            email=f"{first_name.lower()}.{last_name.lower()}.{n}@patients.example",
            date_of_birth=demo_birth_date(100 + n),
        ).patient
        # Office hours in the patient's zone (9:00 to 13:00): a time of day taken from ``now`` could fall in the
        # hour repeated when clocks go back, which a weekly plan refuses as ambiguous.
        day = (now - timedelta(days=200 - 4 * n)).astimezone(ZoneInfo(patient.effective_timezone)).date()
        first = datetime.combine(day, time_of_day(9 + n % 5), tzinfo=ZoneInfo(patient.effective_timezone))
        plan = create_plan(
            session,
            patient_id=patient.id,
            condition="sciatica",
            modality="dry needling",
            first=first,
            sessions=6,
            every=timedelta(days=7),
            actor="demo",
            allow_past=True,
            practitioner_id=who[2 if n % 9 == 8 else n % 2],
        )
        session.add(
            Enrollment(
                patient_id=patient.id,
                plan_id=plan.id,
                sequence_key=SEQUENCE,
                status=EnrollmentStatus.COMPLETED,
                enrolled_by="demo",
            )
        )
        baseline = 5 + n % 5
        drop = (0, 1, 2, 3, 4, 5, 3, 4, -1)[n % 9]  # points gained by the last score; -1: worse
        record_score(session, patient.id, baseline, actor="demo", at=first - timedelta(days=1), source="staff")
        for week in range(1, 6):
            score = max(0, min(10, baseline - round(drop * week / 5) + (1 if drop < 0 and week > 2 else 0)))
            record_score(session, patient.id, score, actor="demo", at=first + timedelta(days=7 * week, hours=3))
    return len(HISTORY_NAMES)


def _demo_staff(session: Any, clinic_id: int, database_url: str) -> dict[str, str] | None:
    """The demo admin login, moved to this run's clinic (created the first time); None outside SQLite."""
    from engage.records.models import Role, StaffUser
    from engage.records.staff import create_staff, reset_password

    if not database_url.startswith("sqlite"):
        return None
    staff = session.scalar(select(StaffUser).where(StaffUser.email == DEMO_STAFF_EMAIL))
    if staff is None:
        create_staff(
            session,
            clinic_id=clinic_id,
            email=DEMO_STAFF_EMAIL,
            name="Demo Admin",
            role_name=Role.ADMIN,
            password=DEMO_STAFF_PASSWORD,
            actor="demo",
        )
    else:
        staff.clinic_id, staff.active, staff.role = clinic_id, True, Role.ADMIN
        reset_password(session, staff.id, DEMO_STAFF_PASSWORD, actor="demo")
    return {
        "email": DEMO_STAFF_EMAIL,
        "password": DEMO_STAFF_PASSWORD,
        "url": "http://127.0.0.1:8000/",
        "command": f"ENGAGE_DATABASE_URL={database_url} engage serve",
    }


def _vary_phone(phone: str | None, n: int) -> str | None:
    if phone is None or n < len(PATIENTS):
        return phone
    return phone[:-2] + f"{(int(phone[-2:]) + n) % 100:02d}"


def _tz(patient: Patient) -> Any:
    return ZoneInfo(patient.effective_timezone)


# --- running the clock --------------------------------------------------------------------------


class _SimulatedWorkerClock:
    """Freezes engage's clock at the demo's simulated time inside every task the worker thread runs."""

    def __init__(self) -> None:
        self.now = clock.utcnow()
        self._stacks: dict[str, contextlib.ExitStack] = {}
        self._done = threading.Condition()
        self.finished: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.errors: list[str] = []

    def prerun(self, task_id: str, **_: Any) -> None:
        stack = contextlib.ExitStack()
        stack.enter_context(clock.frozen(self.now))
        self._stacks[task_id] = stack

    def postrun(
        self, task_id: str, task: Any, retval: Any = None, state: str | None = None, args: Any = None, **_: Any
    ) -> None:
        stack = self._stacks.pop(task_id, None)
        if stack is not None:
            stack.close()
        with self._done:
            self.finished[task.name] += 1
            if task.name == "engage.send_message":
                if state == "SUCCESS":
                    self.outcomes[str(retval)] += 1
                else:
                    self.errors.append(f"send_message failed: {retval!r}")
            if task.name == "engage.send_batch":
                # A tick enqueues its claimed ids as batches; each id is one message, sent as send_message would.
                self.finished["engage.send_message"] += len(args[0]) if args else 0
                if state == "SUCCESS" and isinstance(retval, dict):
                    self.outcomes.update({str(name): int(n) for name, n in retval.items()})
                else:
                    self.errors.append(f"send_batch failed: {retval!r}")
            self._done.notify_all()

    def wait_for(self, name: str, count: int, timeout: float) -> None:
        with self._done:
            if not self._done.wait_for(lambda: self.finished[name] >= count or bool(self.errors), timeout):
                raise RuntimeError(f"the in-process worker did not finish {name} within {timeout:g}s")
        if self.errors:
            raise RuntimeError(self.errors[0])


def _next_due(session: Any) -> datetime | None:
    """The earliest time a scheduled row becomes claimable (``due_at``, or a later ``next_attempt_at``)."""
    rows = session.execute(
        select(Message.due_at, Message.next_attempt_at).where(Message.status == MessageStatus.SCHEDULED)
    ).all()
    times = [max(due, retry) if retry else due for due, retry in rows]
    return min(times) if times else None


def run_demo(
    patients: int = len(PATIENTS),
    days: int = 45,
    progress: Callable[[str], None] | None = None,
) -> DemoReport:
    """Seed, enrol, run the ``days`` simulated days before now through the real Celery tasks, leave the
    morning (:mod:`engage.demo.morning`); return the report.

    Must be called inside :func:`embedded_environment` (the CLI does). Raises
    ``InvalidInput`` for bad arguments or a database holding real patients' pending messages.
    """
    if not 1 <= patients <= 50:
        raise InvalidInput("--patients must be between 1 and 50")
    if not 1 <= days <= 120:
        raise InvalidInput("--days must be between 1 and 120")
    say = progress or (lambda _line: None)
    started = time.monotonic()
    settings = get_settings()
    if not settings.broker_url.startswith("memory://"):
        raise RuntimeError("run_demo needs the embedded default; call it inside embedded_environment()")
    check_startup(settings)  # on PostgreSQL the links the demo sends need ENGAGE_SECRET_KEY too
    migrate.upgrade(settings.database_url)
    end = clock.utcnow()
    start = (end - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)

    with clock.frozen(start), session_scope() as session:
        removed = _check_database_is_safe(session)
        clinic_id, seeded = _seed(session, start, end, patients)
        staff_login = _demo_staff(session, clinic_id, settings.database_url)
        history = _outcome_history(session, clinic_id, start)
    report = DemoReport(
        clinic_id=clinic_id,
        database=settings.database_url,
        outbox_dir=Path(settings.outbox_dir),
        start=start,
        end=end,
        patients=seeded,
        removed_earlier_clinics=removed,
        staff_login=staff_login,
    )
    say(
        f"Seeded demo clinic {clinic_id} with {len(seeded)} patients enrolled in {SEQUENCE}"
        + (f" (removed {removed} earlier demo clinic{'s' if removed > 1 else ''})" if removed else "")
        + "."
    )
    say(f"Added {history} finished episodes of care with pain scores, for the Outcomes page.")
    say(f"Running {days} simulated days from {start:%Y-%m-%d %H:%M} UTC through Celery (in-process worker)...")

    stops = sorted((datetime.fromisoformat(p["stop_at"]), p) for p in seeded if p["stop_at"])
    _run_clock(report, stops, say)
    from engage.demo.morning import set_the_morning

    with session_scope() as session:
        report.morning = set_the_morning(session, clinic_id, end)
    say(
        f"Now: {report.morning['texts']} texts wait in the inbox, {report.morning['failed_messages']} failed SMS "
        "waits to be resolved, and today's and tomorrow's visits are on Today."
    )
    _summarise(report)
    report.elapsed_seconds = time.monotonic() - started
    return report


@contextlib.contextmanager
def embedded_worker(app: Any) -> Iterator[Any]:
    """A Celery worker thread (solo pool) in this process, on the app's broker (``memory://``), stopped promptly.

    Celery's loop for a polled transport waits up to 2 s for a message before it looks whether it should
    stop, and lets one more such wait run after it saw the stop: 2-4 s at the end of every demo (half of a
    small one). So the stop is asked for here, with two ``celery.ping`` tasks to wake the two waits.
    """
    import celery.contrib.testing.tasks  # noqa: F401 - registers celery.ping before the worker starts
    from celery.contrib.testing.worker import start_worker
    from celery.worker import state

    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30) as worker:
        yield worker
        state.should_terminate = 0
        for _ in range(2):
            app.send_task("celery.ping")


def _run_clock(report: DemoReport, stops: list[tuple[datetime, dict[str, Any]]], say: Callable[[str], None]) -> None:
    from celery.signals import task_postrun, task_prerun

    from workers.app import app
    from workers.tasks import dispatch_due

    # The demo waits for each tick's result, so it keeps results in memory (production stores none).
    # The memory transport looks for a message once a second when its queues are empty (kombu's default
    # polling interval); the demo waits on every tick, so it looks every 10 ms.
    app.conf.update(
        broker_url="memory://",
        broker_transport_options={"polling_interval": 0.01},
        result_backend="cache+memory://",
        task_ignore_result=False,
    )
    # kombu warns that memory:// has no host name on every connection; it needs none.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
    sim = _SimulatedWorkerClock()
    task_prerun.connect(sim.prerun, weak=False)
    task_postrun.connect(sim.postrun, weak=False)
    day_sent: Counter[str] = Counter()
    current_day: int | None = None
    answered: set[int] = set()  # the pain prompts an answer is planned for
    answers: Counter[int] = Counter()  # patient id -> answers so far
    try:
        with embedded_worker(app):
            while True:
                with session_scope() as session:
                    due = _next_due(session)
                if stops and (due is None or stops[0][0] <= due) and stops[0][0] <= report.end:
                    at, who = stops.pop(0)
                    if who.get("score") is not None:
                        _answer_pain_prompt(at, who)
                        continue
                    with clock.frozen(at), session_scope() as session:
                        record_consent(
                            session,
                            who["patient_id"],
                            Channel.SMS,
                            ConsentState.OPTED_OUT,
                            source="sms_keyword",
                            detail="demo: replied STOP",
                        )
                        # As staff recording an opt-out would: texts that may go by email (aftercare,
                        # the pain prompt) now do.
                        reconcile_patient(session, who["patient_id"])
                    say(f"  {_day_label(report.start, at)}  {who['name']} replies STOP: pending SMS stopped or emailed")
                    continue
                if due is None or due > report.end:
                    break
                day = (due - report.start).days
                if current_day is not None and day != current_day and day_sent:
                    say(_progress_line(report.start, current_day, day_sent))
                    day_sent.clear()
                current_day = day
                sim.now = due
                before = sim.finished["engage.send_message"]
                outcomes_before = Counter(sim.outcomes)
                enqueued = dispatch_due.delay().get(timeout=WAIT_SECONDS, interval=0.002)
                sim.wait_for("engage.send_message", before + int(enqueued), WAIT_SECONDS)
                report.ticks += 1
                day_sent.update(sim.outcomes - outcomes_before)
                stops = sorted(stops + _pain_answers(report, answered, answers), key=lambda event: event[0])
            if day_sent and current_day is not None:
                say(_progress_line(report.start, current_day, day_sent))
    finally:
        task_prerun.disconnect(sim.prerun)
        task_postrun.disconnect(sim.postrun)
    report.tasks = Counter({"dispatch_due": report.ticks, "send_message": sim.finished["engage.send_message"]})


#: A patient answers a pain-score text this long after it went out.
ANSWER_AFTER = timedelta(hours=2)


def _pain_answers(
    report: DemoReport, answered: set[int], answers: Counter[int]
) -> list[tuple[datetime, dict[str, Any]]]:
    """The answers the patients will text to the pain-score prompts just sent: a score that falls over the
    weeks (each patient starts a little differently), ``ANSWER_AFTER`` later, when that is before the end."""
    from engage.conversation.outcomes import REASSESSMENT_TEMPLATE

    with session_scope() as session:
        sent = session.execute(
            select(Message.id, Message.patient_id, Message.sent_at, Patient.phone, Clinic.sms_from)
            .join(Patient, Patient.id == Message.patient_id)
            .join(Clinic, Clinic.id == Patient.clinic_id)
            .where(
                Patient.clinic_id == report.clinic_id,
                Message.template == REASSESSMENT_TEMPLATE,
                Message.channel == Channel.SMS,
                Message.status == MessageStatus.SENT,
            )
        ).all()
    events = []
    for row in sent:
        if row.id in answered or row.sent_at is None or row.sent_at + ANSWER_AFTER > report.end:
            continue
        answered.add(row.id)
        score = max(1, 7 + row.patient_id % 3 - 2 * answers[row.patient_id])
        answers[row.patient_id] += 1
        events.append(
            (row.sent_at + ANSWER_AFTER, {"score": score, "phone": row.phone, "to": row.sms_from, "id": row.id})
        )
    return events


def _answer_pain_prompt(at: datetime, answer: dict[str, Any]) -> None:
    from engage.conversation.inbound import InboundSms, receive_sms

    with clock.frozen(at), session_scope() as session:
        sms = InboundSms(f"demo-score-{answer['id']}", answer["phone"], answer["to"] or "", str(answer["score"]))
        receive_sms(session, sms, replan=reconcile_patient)


def _day_label(start: datetime, at: datetime) -> str:
    return f"day {(at - start).days + 1:>2}  {at:%a %d %b}"


def _progress_line(start: datetime, day: int, outcomes: Counter[str]) -> str:
    at = start + timedelta(days=day)
    parts = ", ".join(f"{n} {name}" for name, n in sorted(outcomes.items()))
    return f"  {_day_label(start, at)}  {parts}"


def _summarise(report: DemoReport) -> None:
    with session_scope() as session:
        ids = select(Patient.id).where(Patient.clinic_id == report.clinic_id)
        rows = session.execute(
            select(Message.template, Message.channel, Message.status, func.count())
            .where(Message.patient_id.in_(ids))
            .group_by(Message.template, Message.channel, Message.status)
        ).all()
        sent_ids = session.execute(
            select(Message.id, Message.channel).where(Message.patient_id.in_(ids), Message.provider == "outbox")
        ).all()
    table: dict[tuple[str, str], Counter[str]] = {}
    statuses: Counter[str] = Counter()
    for template, channel, status, n in rows:
        table.setdefault((template, channel.value), Counter())[status.value] += n
        statuses[status.value] += n
    report.by_template = [
        {"template": template, "channel": channel, **counts, "total": sum(counts.values())}
        for (template, channel), counts in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]
    report.statuses = dict(statuses)
    folder = report.outbox_dir
    files: Counter[str] = Counter()
    for message_id, channel in sent_ids:
        name = f"email-{message_id}.eml" if channel is Channel.EMAIL else f"sms-{message_id}.json"
        if (folder / name).is_file():
            files[channel.value] += 1
    report.outbox_files = {"email": files["email"], "sms": files["sms"], "total": sum(files.values())}
