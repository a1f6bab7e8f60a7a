"""Settings, read once from ``ENGAGE_*`` (and the providers' own) environment variables."""

from __future__ import annotations

import os
import secrets
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
#: Beside an SQLite database ``engage.db``, the file ``engage.db.secret-key`` holds its generated secret key.
SECRET_KEY_SUFFIX = ".secret-key"
MIN_SECRET_KEY_LENGTH = 16


def _provider_var(name: str) -> Any:
    """A provider's own variable (``TWILIO_AUTH_TOKEN``), also read as ``ENGAGE_TWILIO_AUTH_TOKEN``."""
    return Field(None, validation_alias=AliasChoices(name, f"ENGAGE_{name}"))


class Settings(BaseSettings):
    """Everything engage reads from its environment.

    Names are ``ENGAGE_<FIELD>`` unless a provider's conventional name is
    listed (``TWILIO_ACCOUNT_SID``, ``SENDGRID_API_KEY``, ...).
    """

    model_config = SettingsConfigDict(env_prefix="ENGAGE_", extra="ignore", populate_by_name=True)

    database_url: str = "sqlite:///./engage.db"
    broker_url: str = "memory://"
    result_backend: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Signs patients' links. None: on SQLite, a random key kept beside the database; elsewhere refused.
    secret_key: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    default_region: str = "US"
    templates_dir: Path = ROOT / "templates"
    outbox_dir: Path = Path("./outbox")

    # Delivery
    sms_provider: str | None = None  # twilio | outbox | console; None: twilio with credentials, else outbox
    email_provider: str | None = None  # sendgrid | outbox | console; likewise
    tick_seconds: float = 15.0
    claim_batch: int = 500
    max_attempts: int = 6
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    #: A ``queued`` row older than this is re-enqueued by the reaper (a killed worker's reserved tasks, a Redis
    #: restart without AOF). Harmless when the first task still runs (the take is a compare-and-set), so short:
    #: a dead worker delays its messages by about this plus a tick, not minutes.
    stale_queued_seconds: float = 60.0
    stale_sending_seconds: float = 600.0
    sms_rate_per_second: float = 10.0
    email_rate_per_second: float = 50.0
    http_timeout_seconds: float = 10.0
    #: How long a clinic's webhook endpoint may take to answer before the attempt counts as failed.
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    #: Development only: webhook URLs may be plain http and point at this machine or a private network (a receiver
    #: being tried out). Off, engage posts only over https to public addresses (engage.integrations.addresses).
    webhook_allow_local: bool = False
    #: Sends in flight at once per worker process (threads: a provider call mostly waits on the network; the
    #: threads make the calls only, a batch's database work is done by two of them at most).
    send_threads: int = 64
    #: Message ids per send task; each task's sends overlap on the process's threads. At 200 ms a provider answer,
    #: 64 a batch sent twice as many messages a second as 32 did (two pool processes, tests/bench).
    send_batch: int = 64
    #: PostgreSQL connections each process keeps open. None (the default): one per send thread
    #: (``send_threads``), since a send holds one connection at a time and a worker never has more sends in
    #: flight than threads; then no process opens more connections than it has sends in flight, and a burst
    #: never churns through short-lived overflow connections (each one costs the server more than a send).
    db_pool_size: int | None = Field(None, ge=1)
    #: Connections a process may open beyond the pool for a moment (closed after use). 0: never more than the pool.
    db_max_overflow: int = Field(0, ge=0)
    #: How long a thread waits for a pooled connection before its work is put back (``sqlalchemy.exc.TimeoutError``).
    db_pool_timeout_seconds: float = Field(5.0, gt=0)

    #: A reassessment prompt takes answers (link or SMS) for this many days after it was sent.
    reassessment_answer_days: int = Field(14, ge=1)

    # Content
    #: Words no SMS (nor an email's subject or first line) may contain (minimum necessary): the condition and the
    #: treatment, in every shipped locale. Matched by stem, also inside words and through look-alike letters
    #: (engage.content.condition_words); each plan's own condition and modality are added at send time.
    condition_words: list[str] = Field(
        default_factory=lambda: [
            "sciatica",
            "ciática",
            "dry needling",
            "needling",
            "needle",
            "punción seca",
            "aguja",
            "acupuncture",
            "acupuntura",
        ]
    )

    # Providers (their conventional names; the ENGAGE_ prefixed ones work too)
    twilio_account_sid: str | None = _provider_var("TWILIO_ACCOUNT_SID")
    twilio_auth_token: str | None = _provider_var("TWILIO_AUTH_TOKEN")
    twilio_from_number: str | None = _provider_var("TWILIO_FROM_NUMBER")
    twilio_messaging_service_sid: str | None = _provider_var("TWILIO_MESSAGING_SERVICE_SID")
    twilio_api_base: str = "https://api.twilio.com"
    sendgrid_api_key: str | None = _provider_var("SENDGRID_API_KEY")
    sendgrid_api_base: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = _provider_var("SENDGRID_WEBHOOK_PUBLIC_KEY")
    webhook_replay_seconds: int = 600
    #: Twilio Advanced Opt-Out is on for our sender, so Twilio answers STOP/START/HELP (its default words) itself:
    #: we still record the consent change but send no answer of our own to those exact keywords.
    twilio_handles_keywords: bool = False
    max_request_bytes: int = 1_000_000
    #: PostgreSQL cancels any one statement of a web request's database work that runs longer than this: a search
    #: or a page that would keep the database busy answers 503 instead (workers and the CLI have no such limit).
    web_statement_timeout_seconds: float = Field(15.0, gt=0)
    #: The largest CSV file the staff app's "Import appointments" page and ``POST /api/v1/import/appointments``
    #: take (larger than ``max_request_bytes``: see :func:`engage.web.staff.appointment_import.body_limit`).
    import_max_bytes: int = 5_000_000

    # Operations
    #: ``text`` (default) or ``json``: one JSON object a line, for a log collector.
    log_format: Literal["text", "json"] = "text"
    #: Bearer token a Prometheus scrape of ``/metrics`` must send; unset: ``/metrics`` is off (404).
    metrics_token: str | None = None
    #: Retention window in days: beat runs ``engage purge`` weekly with it (unset: never, run it by hand).
    purge_after_days: int | None = Field(None, ge=30)

    # Staff sign-in
    session_idle_minutes: float = 30.0  # a staff session ends after this long without a request
    session_absolute_hours: float = 12.0  # and this long after sign-in, whatever happens
    login_max_failures: int = 5  # failed sign-ins per account or per address ...
    login_window_minutes: float = 15.0  # ... within this window, before further tries wait
    #: Addresses (comma-separated IPs or CIDR ranges) of the reverse proxies whose ``X-Forwarded-For`` and
    #: ``X-Forwarded-Proto`` are believed. Empty (the default): none, the connection's address is the client's.
    trusted_proxies: str = ""

    # Per-IP request limits (engage.web.ratelimit; the ``limits`` notation, e.g. "60/minute", "10 per 5 minutes")
    rate_limit_public_pages: str = "60/minute"  # /u, /r, /x: the pages patients open from their messages
    rate_limit_login: str = "10/minute"  # the staff sign-in form (on top of the per-account failure throttle)
    rate_limit_api_per_ip: str = "1200/minute"  # every /api/v1 request, per client address
    rate_limit_api_per_token: str = "600/minute"  # every /api/v1 request, per API token (from any address)


class StartupRefused(RuntimeError):
    """A setting that would harm patients or break their links; the process must not start (one sentence)."""


class InsecureSecretKey(StartupRefused):
    """No usable secret key: links would be forgeable, or would die when another process signs them."""


def secret_key_file(database_url: str) -> Path | None:
    """Where the generated key of an SQLite database lives (``engage.db`` -> ``engage.db.secret-key``).

    None for other databases and for an in-memory SQLite database.
    """
    if not database_url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url  # only here: config stays light to import

    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database + SECRET_KEY_SUFFIX)


_key_lock = threading.Lock()
_process_key = secrets.token_urlsafe(48)  # an in-memory SQLite database lives and dies with this process


def _read_or_create_key(path: Path) -> str:
    """The key in ``path``; created (random, mode 0600) when missing. Safe when processes race to create it."""
    with _key_lock:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, (secrets.token_urlsafe(48) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # atomic, and fails if another process got there first: its key wins
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise InsecureSecretKey(f"the secret key file {path} holds no usable key: delete it to have a new one made")
    return key


def secret_key(settings: Settings | None = None) -> str:
    """The key that signs patients' links.

    ``ENGAGE_SECRET_KEY`` when set (at least 16 characters); else, on SQLite, the
    random key kept beside the database (made on first use, file mode 0600), so every
    process using that database signs alike. Anywhere else raises :class:`InsecureSecretKey`.
    """
    settings = settings or get_settings()
    if settings.secret_key is not None:
        if len(settings.secret_key) < MIN_SECRET_KEY_LENGTH:
            raise InsecureSecretKey(
                f"ENGAGE_SECRET_KEY is too short: use at least {MIN_SECRET_KEY_LENGTH} random characters"
            )
        return settings.secret_key
    if not settings.database_url.startswith("sqlite"):
        raise InsecureSecretKey(
            "ENGAGE_SECRET_KEY is not set: every engage process (serve, workers, beat, tick) must share one long "
            'random value, e.g. from python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )
    path = secret_key_file(settings.database_url)
    return _process_key if path is None else _read_or_create_key(path)


def ensure_sqlite_key(database_url: str) -> Path | None:
    """On an SQLite database file without ``ENGAGE_SECRET_KEY``, make its key file now; returns its path."""
    path = secret_key_file(database_url)
    if path is None or get_settings().secret_key is not None:
        return None
    _read_or_create_key(path)
    return path


def require_secret_key(settings: Settings) -> None:
    """Refuse to start without a usable secret key (see :func:`secret_key`); on SQLite, make it now."""
    secret_key(settings)


@lru_cache
def get_settings() -> Settings:
    """The process's settings. Tests call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()
