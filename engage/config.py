"""Settings, read once from ``ENGAGE_*`` (and the providers' own) environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
#: Signs nothing worth protecting: fine for the embedded SQLite default, refused elsewhere.
DEV_SECRET_KEY = "dev-insecure-change-me"


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
    secret_key: str = DEV_SECRET_KEY
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
    stale_queued_seconds: float = 300.0
    stale_sending_seconds: float = 600.0
    sms_rate_per_second: float = 10.0
    email_rate_per_second: float = 50.0
    http_timeout_seconds: float = 10.0

    #: A reassessment prompt takes answers (link or SMS) for this many days after it was sent.
    reassessment_answer_days: int = Field(14, ge=1)

    # Content
    #: Words no SMS (nor an email's subject or first line) may contain (minimum necessary): the condition and the
    #: treatment, in every shipped locale. Matched by stem, also inside words and through look-alike letters
    #: (engage.content.condition_words); each plan's own condition and modality are added at send time.
    condition_words: list[str] = Field(
        default_factory=lambda: [
            "sciatica", "ciática",
            "dry needling", "needling", "needle",
            "punción seca", "aguja",
            "acupuncture", "acupuntura",
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
    max_request_bytes: int = 1_000_000

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

    # Per-IP request limits (engage.web.ratelimit; the ``limits`` notation, e.g. "60/minute", "10 per 5 minutes")
    rate_limit_public_pages: str = "60/minute"  # /u, /r, /x: the pages patients open from their messages
    rate_limit_login: str = "10/minute"  # the staff sign-in form (on top of the per-account failure throttle)


class InsecureSecretKey(RuntimeError):
    """The development secret key with a real database: anyone could forge unsubscribe and reassessment links."""


def require_secret_key(settings: Settings) -> None:
    """Refuse to serve patients' links signed with the public development key, except on the embedded SQLite."""
    if settings.secret_key == DEV_SECRET_KEY and not settings.database_url.startswith("sqlite"):
        raise InsecureSecretKey(
            "ENGAGE_SECRET_KEY is the development default, so anyone could forge unsubscribe and reassessment "
            'links; set it to a long random value, e.g. python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )
    if len(settings.secret_key) < 16:
        raise InsecureSecretKey("ENGAGE_SECRET_KEY is too short: use at least 16 random characters")


@lru_cache
def get_settings() -> Settings:
    """The process's settings. Tests call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()
