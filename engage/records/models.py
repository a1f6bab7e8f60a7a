"""The data model (SQLAlchemy 2). Schema changes go through Alembic (``engage/migrations``)."""

from __future__ import annotations

import enum
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, WriteOnlyMapped, mapped_column, relationship

from engage.clock import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is timezone.utc:  # PostgreSQL's, in the UTC sessions engage opens
            return value
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native ENUM type) so adding a value needs no migration dance.
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"


class Role(enum.StrEnum):
    """What a staff member may do: admin everything; front desk patients, plans and replies; practitioner reads
    everything and writes outcomes and notes on replies."""

    ADMIN = "admin"
    FRONT_DESK = "front_desk"
    PRACTITIONER = "practitioner"


class PlanStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class AppointmentStatus(enum.StrEnum):
    BOOKED = "booked"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


class EnrollmentStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class MessageStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    BOUNCED = "bounced"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"  # handed to a provider (maybe) but no answer: staff decide, never resent blindly


#: Statuses planning may still change: not yet handed to a worker.
PENDING_STATUSES = (MessageStatus.SCHEDULED,)
#: Statuses that mean the provider has (or may have) the message.
HANDED_OVER_STATUSES = (
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERED,
    MessageStatus.BOUNCED,
    MessageStatus.UNKNOWN,
)


class ConsentState(enum.StrEnum):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class MfaPolicy(enum.StrEnum):
    """Which staff must have a second factor: nobody, the clinic's admins, or everyone."""

    NONE = "none"
    ADMINS = "admins"
    ALL = "all"


class FactorKind(enum.StrEnum):
    TOTP = "totp"  # an authenticator app (RFC 6238)
    PASSKEY = "passkey"  # a WebAuthn credential
    RECOVERY = "recovery"  # one of ten single-use recovery codes


class Clinic(Base):
    __tablename__ = "clinic"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(Text, info={"max_length": 500})  # a postal address, a few lines
    email_from: Mapped[str] = mapped_column(String(320))
    sms_from: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(2))  # ISO country for parsing local phone numbers
    #: {"sms": {"start": "20:00", "end": "08:00"}, "email": {...}}; missing channels use the default.
    quiet_hours: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: What SMS call the clinic instead of ``name`` (at most 20 characters, no condition words): a lock screen
    #: showing "Lycoming Orthopedic & Sports Acupuncture" names the treatment.
    sms_name: Mapped[str | None] = mapped_column(String(20))
    #: Frequency caps on non-urgent SMS per patient: a local day, any 7 local days. None: the defaults (1, 4).
    sms_per_day: Mapped[int | None] = mapped_column(Integer)
    sms_per_week: Mapped[int | None] = mapped_column(Integer)
    #: Sequence step keys this clinic turned off ("booking-confirmation", "rebook", ...).
    steps_off: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    #: Steps that may go by email (the reassessment) go by email to every patient who has an address.
    prefers_email: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    #: Who must sign in with a second factor (:class:`MfaPolicy`). New clinics: admins; clinics that existed
    #: before MFA (migration 0014): nobody until their admin chooses, so an upgrade locks nobody out mid-day.
    mfa_required: Mapped[MfaPolicy] = mapped_column(
        _enum(MfaPolicy), default=MfaPolicy.ADMINS, server_default=text("'none'")
    )
    #: The sequence a new appointment arriving by sync (CSV, FHIR, upserts) without a ``sequence`` is planned
    #: in when its patient has no active plan; None: such an appointment is refused, as before.
    default_sequence: Mapped[str | None] = mapped_column(String(100))


class StaffUser(Base):
    __tablename__ = "staff_user"
    #: An email is unique within a clinic, not across clinics: one person may work at two clinics, and a clinic
    #: adding an address must not learn that another clinic has it (migration 0014).
    __table_args__ = (
        UniqueConstraint("clinic_id", "email", name="uq_staff_user_clinic_email"),
        Index("ix_staff_user_email", "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role), default=Role.FRONT_DESK)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    clinic: Mapped[Clinic] = relationship()


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Patient(Base):
    __tablename__ = "patient"
    __table_args__ = (
        UniqueConstraint("clinic_id", "email"),
        Index("ix_patient_phone", "phone"),
        # Today's message counts keep the clinic's messages by joining its patient ids, read off this index.
        Index("ix_patient_clinic_id_id", "clinic_id", "id"),
        UniqueConstraint("clinic_id", "external_id", name="uq_patient_external_id"),
        # Search by name or email prefix within a clinic, case-insensitively (the staff search box).
        Index(
            "ix_patient_clinic_last_name_lower",
            "clinic_id",
            text("lower(last_name)"),
            postgresql_ops={"lower(last_name)": "text_pattern_ops"},
        ),
        Index(
            "ix_patient_clinic_first_name_lower",
            "clinic_id",
            text("lower(first_name)"),
            postgresql_ops={"lower(first_name)": "text_pattern_ops"},
        ),
        Index("ix_patient_clinic_email", "clinic_id", "email", postgresql_ops={"email": "text_pattern_ops"}),
        # The patient list's order (last name, first name, id): a page is read off the index, never sorted.
        Index("ix_patient_clinic_sort", "clinic_id", text("lower(last_name)"), text("lower(first_name)"), "id"),
        # Today's "invalid numbers": a handful of patients, found without reading the clinic's list.
        Index(
            "ix_patient_phone_invalid",
            "clinic_id",
            postgresql_where=text("phone_invalid"),
            sqlite_where=text("phone_invalid"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    phone_invalid: Mapped[bool] = mapped_column(Boolean, default=False)  # Twilio 21211/21614
    timezone: Mapped[str | None] = mapped_column(String(64))  # None: the clinic's
    locale: Mapped[str] = mapped_column(String(10), default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    external_id: Mapped[str | None] = mapped_column(String(100))  # the practice-management system's id
    date_of_birth: Mapped[date | None] = mapped_column(Date)  # optional: tells two patients of one name apart

    clinic: Mapped[Clinic] = relationship()
    plans: Mapped[list[TreatmentPlan]] = relationship(back_populates="patient", order_by="TreatmentPlan.id")
    messages: WriteOnlyMapped[Message] = relationship(back_populates="patient", passive_deletes=True)

    @property
    def effective_timezone(self) -> str:
        return self.timezone or self.clinic.timezone


class ConsentEvent(Base):
    """Append-only; a patient's consent on a channel is the newest event's state (none: opted in)."""

    __tablename__ = "consent_event"
    __table_args__ = (Index("ix_consent_event_patient_channel", "patient_id", "channel", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    state: Mapped[ConsentState] = mapped_column(_enum(ConsentState))
    # staff, sms_keyword, unsubscribe_link, bounce, spamreport, twilio_21610, ...
    source: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Practitioner(Base):
    """A clinic's clinician: a staff account of role practitioner, or a name and external id from the
    practice-management system (a sync matches it by that id). Plans and appointments carry one."""

    __tablename__ = "practitioner"
    __table_args__ = (
        UniqueConstraint("clinic_id", "external_id", name="uq_practitioner_external_id"),
        UniqueConstraint("staff_user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(100))
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TreatmentPlan(Base):
    __tablename__ = "treatment_plan"
    __table_args__ = (UniqueConstraint("external_clinic_id", "external_id", name="uq_treatment_plan_external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    condition: Mapped[str] = mapped_column(String(100))
    modality: Mapped[str] = mapped_column(String(100))
    planned_sessions: Mapped[int] = mapped_column(Integer)
    cadence_minutes: Mapped[int] = mapped_column(Integer)  # time between sessions
    session_minutes: Mapped[int] = mapped_column(Integer, default=45)
    reassess_every: Mapped[int] = mapped_column(Integer, default=3)  # sessions between reassessments
    status: Mapped[PlanStatus] = mapped_column(_enum(PlanStatus), default=PlanStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Exercise keys (templates/exercises/*.yaml) the practitioner picked, in their order.
    exercises: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    external_id: Mapped[str | None] = mapped_column(String(100))
    #: Set with ``external_id``: the clinic whose id space it belongs to (the unique constraint needs it here).
    external_clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"))
    #: Who treats: the default for the plan's appointments (each may name another).
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioner.id"), index=True)

    patient: Mapped[Patient] = relationship(back_populates="plans")
    appointments: Mapped[list[Appointment]] = relationship(back_populates="plan", order_by="Appointment.start_at")


class Appointment(Base):
    __tablename__ = "appointment"
    __table_args__ = (
        UniqueConstraint("external_clinic_id", "external_id", name="uq_appointment_external_id"),
        Index("ix_appointment_start_at", "start_at"),  # Today: the day's visits
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("treatment_plan.id"), index=True)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    status: Mapped[AppointmentStatus] = mapped_column(_enum(AppointmentStatus), default=AppointmentStatus.BOOKED)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: When it was booked (None for appointments booked before engage recorded it): the booking confirmation's anchor.
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]  # the patient replied C / YES / SI to a reminder, or staff confirmed
    confirmed_by: Mapped[str | None] = mapped_column(String(320))  # the staff member; None: the patient's reply
    callback_requested_at: Mapped[datetime | None]  # the patient replied R: staff should call to rebook
    external_id: Mapped[str | None] = mapped_column(String(100))
    #: Set with ``external_id``: the clinic whose id space it belongs to (the unique constraint needs it here).
    external_clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"))
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioner.id"), index=True)

    plan: Mapped[TreatmentPlan] = relationship(back_populates="appointments")


class Enrollment(Base):
    __tablename__ = "enrollment"
    __table_args__ = (
        # One live enrollment of a plan in a sequence, even when two staff enrol at the same moment.
        Index(
            "uq_enrollment_live_plan_sequence",
            "plan_id",
            "sequence_key",
            unique=True,
            postgresql_where=text("status IN ('active', 'paused')"),
            sqlite_where=text("status IN ('active', 'paused')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("treatment_plan.id"), index=True)
    sequence_key: Mapped[str] = mapped_column(String(100))
    status: Mapped[EnrollmentStatus] = mapped_column(_enum(EnrollmentStatus), default=EnrollmentStatus.ACTIVE)
    enrolled_by: Mapped[str] = mapped_column(String(320), default="cli")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: Bumped by every re-plan (reconcile); its scheduled rows carry the number they were planned under.
    plan_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The clinic's published version of the sequence it follows (``sequence_versions.version``); None: the
    #: shipped library file.
    sequence_version: Mapped[int | None] = mapped_column(Integer)

    patient: Mapped[Patient] = relationship()
    plan: Mapped[TreatmentPlan] = relationship()


class SequenceVersion(Base):
    """A clinic's own version of a sequence and its message texts (the sequence editor, issue 23).

    Per clinic and sequence key: at most one draft (``version`` NULL, edited in place, bad input kept) and
    the published versions 1..N, never changed once published (the send path caches them by number).
    ``definition`` is the sequence as the YAML loader reads it; ``texts`` maps a template path under
    ``templates/`` (``sms/stretch.es.txt``) to its source. ``base_version``: the version a draft started from.
    """

    __tablename__ = "sequence_versions"
    __table_args__ = (
        UniqueConstraint("clinic_id", "sequence_key", "version", name="uq_sequence_versions_clinic_key_version"),
        Index(
            "uq_sequence_versions_draft",
            "clinic_id",
            "sequence_key",
            unique=True,
            postgresql_where=text("version IS NULL"),
            sqlite_where=text("version IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"))
    sequence_key: Mapped[str] = mapped_column(String(100))
    version: Mapped[int | None] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    texts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    base_version: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str | None] = mapped_column(String(320))
    published_at: Mapped[datetime | None]
    #: What publishing did: {"changed": X, "cancelled": Y, "added": Z, "current_patients": bool, ...}.
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Message(Base):
    """The outbox: one row per message engage will (or did) send. The database is the schedule."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_key", "occurrence", name="uq_message_enrollment_step_occurrence"),
        Index("ix_message_status_due_at", "status", "due_at", postgresql_include=["patient_id", "channel"]),
        # Today's counts and lists of one clinic's messages: due in the next 24 h by channel, the first failed and
        # unknown by due time (index-only: channel and id included; SQLite ignores INCLUDE); sent, failed,
        # bounced... lately.
        Index("ix_message_clinic_status_due_at", "clinic_id", "status", "due_at", postgresql_include=["channel", "id"]),
        Index("ix_message_clinic_status_updated_at", "clinic_id", "status", "updated_at"),
        Index("ix_message_patient_due_at", "patient_id", "due_at"),
        Index("ix_message_appointment_id", "appointment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: None for a message no sequence planned: a staff member's reply in a conversation (step ``staff-reply``).
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    #: The patient's clinic (a patient never changes clinic), so a clinic's messages are counted without a join.
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointment.id"))
    step_key: Mapped[str] = mapped_column(String(100))
    occurrence: Mapped[str] = mapped_column(String(100))  # deterministic: e.g. "appt:12", "appt:12:day:2", "once"
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    template: Mapped[str] = mapped_column(String(100))
    #: Step-specific template variables chosen at planning time, e.g. {"day": 2}.
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    due_at: Mapped[datetime]
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus), default=MessageStatus.SCHEDULED)
    status_reason: Mapped[str | None] = mapped_column(String(500))  # why skipped / cancelled / failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]  # set after a transient failure (backoff); None: due_at governs
    provider: Mapped[str | None] = mapped_column(String(20))
    provider_message_id: Mapped[str | None] = mapped_column(String(100), index=True)
    last_error: Mapped[str | None] = mapped_column(String(500))
    error_code: Mapped[str | None] = mapped_column(String(20))
    segments: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    queued_at: Mapped[datetime | None]
    sending_at: Mapped[datetime | None]
    handed_at: Mapped[datetime | None]  # committed just before the provider call: it may have the message
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    #: The enrollment's ``plan_version`` this row was planned under: equal at send time, nothing was re-planned since.
    plan_version: Mapped[int | None] = mapped_column(Integer)

    enrollment: Mapped[Enrollment | None] = relationship()
    patient: Mapped[Patient] = relationship(back_populates="messages")
    appointment: Mapped[Appointment | None] = relationship()


class DeliveryEvent(Base):
    """A provider's status callback or email event, raw payload kept."""

    __tablename__ = "delivery_event"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str | None] = mapped_column(String(200))  # provider's id, for dropping duplicates
    status: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundMessage(Base):
    __tablename__ = "inbound_message"
    __table_args__ = (
        Index("ix_inbound_message_clinic_patient", "clinic_id", "patient_id", "received_at"),
        Index("ix_inbound_message_clinic_received", "clinic_id", "received_at"),
        # The texts waiting for a person: the inbox count on every page, the inbox's first threads.
        Index(
            "ix_inbound_message_waiting",
            "clinic_id",
            "patient_id",
            postgresql_where=text("flagged IS true AND handled_at IS NULL"),
            sqlite_where=text("flagged IS 1 AND handled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), index=True)
    from_phone: Mapped[str] = mapped_column(String(20))
    to_phone: Mapped[str | None] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))  # opt_out, opt_in, help, confirm, reschedule, score, ambiguous, other
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)  # needs a person
    flag_reason: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A flagged reply leaves the inbox once a person handled it; the note is for colleagues.
    handled_at: Mapped[datetime | None]
    handled_by: Mapped[str | None] = mapped_column(String(320))
    handled_note: Mapped[str | None] = mapped_column(Text)
    auto_reply: Mapped[str | None] = mapped_column(String(20))  # which automatic answer we sent, if any
    # A red-flag symptom or a score of 8+: it got the safety answer and sits at the top of the inbox.
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The visit a confirmation or call-back request was about (named in the reply.received webhook event).
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointment.id"))


class Measure(enum.StrEnum):
    """What an outcome score measures. Both are whole numbers 0-10: NPRS pain (lower is better) and one
    activity of the Patient-Specific Functional Scale (higher is better; ``Outcome.item`` names it)."""

    NPRS = "nprs"
    PSFS = "psfs"


class Outcome(Base):
    """One answer to a reassessment prompt; a prompt's outcome is its latest answer (each keeps its own time)."""

    __tablename__ = "outcome"
    __table_args__ = (
        Index("ix_outcome_patient_recorded_at", "patient_id", "recorded_at"),
        Index("ix_outcome_prompt_message_id", "prompt_message_id", "recorded_at"),
        # The Outcomes page's function figures read only PSFS ratings: without it, every request scanned every
        # score (200,000 pain scores to find the PSFS ones).
        Index(
            "ix_outcome_psfs_patient_recorded_at",
            "patient_id",
            "recorded_at",
            postgresql_where=text("measure = 'psfs'"),
            sqlite_where=text("measure = 'psfs'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    prompt_message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"))
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_message.id"))
    score: Mapped[int] = mapped_column(Integer)  # 0-10: pain (NPRS) or one PSFS activity
    source: Mapped[str] = mapped_column(String(20))  # sms, email, staff
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    measure: Mapped[Measure] = mapped_column(_enum(Measure), default=Measure.NPRS, server_default="nprs")
    item: Mapped[str | None] = mapped_column(String(100))  # the PSFS activity, in the patient's words


class Screening(Base):
    """A screening questionnaire a patient answered (the Keele STarT Back Tool at intake): the answers as given,
    the scores, and the risk group they place the patient in."""

    __tablename__ = "screening"
    __table_args__ = (Index("ix_screening_patient_recorded_at", "patient_id", "recorded_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    tool: Mapped[str] = mapped_column(String(40))  # "start_back"
    answers: Mapped[list[int]] = mapped_column(JSON)  # item by item, as the tool numbers its answers
    total: Mapped[int] = mapped_column(Integer)
    subscale: Mapped[int] = mapped_column(Integer)  # STarT Back: the psychosocial subscale (items 5-9)
    risk: Mapped[str] = mapped_column(String(10))  # low, medium, high
    source: Mapped[str] = mapped_column(String(20))  # intake, staff, api
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class EpisodeFact(Base):
    """One enrollment's episode facts as :mod:`engage.outcomes.stored_facts` last computed them from its visits and
    NPRS scores, so the Outcomes page aggregates one row per enrollment instead of reading every score.

    Any write to the enrollment's inputs (a score of its patient, a visit of its plan) bumps ``version``
    (:mod:`engage.records.stale_episodes`, in the writer's transaction); the facts are those of
    ``computed_version`` (None: never computed), so a row whose two differ is stale and is computed again before
    it is read. Times are seconds since 1970 (UTC); ``first_start`` None: the plan has no visit that was not
    cancelled (no episode).
    """

    __tablename__ = "episode_fact"

    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollment.id"), primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    computed_version: Mapped[int | None] = mapped_column(Integer)
    first_start: Mapped[float | None] = mapped_column(Float)
    first_end: Mapped[float | None] = mapped_column(Float)
    last_start: Mapped[float | None] = mapped_column(Float)
    visit_practitioner_id: Mapped[int | None] = mapped_column(Integer)
    baseline: Mapped[int | None] = mapped_column(Integer)
    follow_ups: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    latest_at: Mapped[float | None] = mapped_column(Float)
    latest: Mapped[int | None] = mapped_column(Integer)
    latest_sessions: Mapped[int | None] = mapped_column(Integer)
    mcid_at: Mapped[float | None] = mapped_column(Float)
    mcid_sessions: Mapped[int | None] = mapped_column(Integer)
    #: One code per score counted on the pain chart, sessions begun * 16 + score, packed as unsigned 16-bit
    #: little-endian numbers (:mod:`engage.outcomes.stored_facts`): the page reads them with the facts and counts
    #: them in one C-level pass, instead of the database unnesting an integer array per episode.
    pain_points: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The enrollment's reassessment prompts sent (sent, delivered or unknown), and those answered within 72 hours,
    #: by channel; and the times sent of the unanswered ones after its newest answered prompt, oldest first (None:
    #: none), which the page counts as "unanswered in a row" once their 72 hours are over. Delivery changes a
    #: prompt's status in bulk SQL: the database's triggers on ``message`` log those in :class:`EpisodeStale`.
    prompts_sms: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    in_time_sms: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    prompts_email: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    in_time_email: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unanswered_sent: Mapped[list[float] | None] = mapped_column(
        JSON().with_variant(postgresql.ARRAY(Float), "postgresql")
    )


class EpisodeStale(Base):
    """An enrollment whose prompts changed since its facts were stored: appended by the database's triggers on
    ``message`` (a reassessment prompt inserted as sent, a change of its status or times, its deletion; migration
    0030), whatever wrote it. Appending never waits on a lock, so the send path is never held up by a reader;
    :func:`engage.outcomes.stored_facts.refresh` takes the clinic's rows and computes those enrollments again."""

    __tablename__ = "episode_stale"
    __table_args__ = (Index("ix_episode_stale_clinic_id", "clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(Integer)
    enrollment_id: Mapped[int] = mapped_column(Integer)


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"), index=True)
    actor: Mapped[str] = mapped_column(String(320))  # staff email, "cli", "webhook:twilio", "system"
    action: Mapped[str] = mapped_column(String(60))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[int | None]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)  # ids and field names only, never PHI
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Heartbeat(Base):
    """The last run of a periodic job (``beat_tick``): one row per job, overwritten on every run."""

    __tablename__ = "heartbeat"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[datetime]
    duration_seconds: Mapped[float | None] = mapped_column(Float)


class StaffSession(Base):
    """A signed-in browser. The cookie holds a random id; only its SHA-256 is stored here."""

    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    staff: Mapped[StaffUser] = relationship()


class LoginCounter(Base):
    """Sign-in attempts per account or address in the current window (``engage.records.login_throttle``).

    One row per key, counted with one atomic upsert, so parallel guesses cannot all read "4 so far".
    """

    __tablename__ = "login_counter"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)  # "email:<address>" or "ip:<address>"
    window_start: Mapped[datetime] = mapped_column(index=True)
    count: Mapped[int] = mapped_column(Integer)


class StaffFactor(Base):
    """A staff member's second factor: an authenticator app, a passkey, or one recovery code.

    TOTP: ``secret`` (base32), ``last_step`` (the last accepted 30 s step: a code is good once),
    ``confirmed_at`` (None until the first code proves the app has it). Passkey: ``credential_id``
    and ``public_key`` (base64url), ``sign_count``. Recovery: ``code_hash`` (argon2), ``used_at``.
    """

    __tablename__ = "staff_factor"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    kind: Mapped[FactorKind] = mapped_column(_enum(FactorKind))
    label: Mapped[str] = mapped_column(String(100), default="")
    secret: Mapped[str | None] = mapped_column(String(64))
    last_step: Mapped[int | None] = mapped_column(BigInteger)
    credential_id: Mapped[str | None] = mapped_column(String(400), unique=True)
    public_key: Mapped[str | None] = mapped_column(Text)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    code_hash: Mapped[str | None] = mapped_column(String(200))
    confirmed_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(Base):
    """A POST's ``Idempotency-Key`` with the response it got: a retry gets the same answer, nothing new."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("staff_user_id", "key", name="uq_idempotency_key_staff_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256 of method, path and canonical body
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
