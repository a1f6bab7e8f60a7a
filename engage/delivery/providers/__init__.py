"""The provider registry: a name in the settings picks a class here.

``ENGAGE_SMS_PROVIDER`` / ``ENGAGE_EMAIL_PROVIDER`` choose by name. Unset, the
choice follows the credentials: ``twilio`` when ``TWILIO_ACCOUNT_SID`` and
``TWILIO_AUTH_TOKEN`` are set, ``sendgrid`` when ``SENDGRID_API_KEY`` is, and
otherwise ``outbox`` (files in ``ENGAGE_OUTBOX_DIR``), so a fresh checkout
never talks to a vendor by accident.

The vendor modules (and their SDKs, which take a second to import) are imported
only when their provider is first built, so a command that sends nothing never
loads them. Instances are cached per process (SDK clients pool their connections) and per
settings object; a forked worker builds its own. ``reset_providers()`` empties
the cache for tests.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from typing import Any

from engage.config import Settings, get_settings
from engage.delivery.providers.base import (
    Accepted,
    ConfigurationError,
    EmailProvider,
    OutgoingEmail,
    OutgoingSms,
    ProviderError,
    SmsProvider,
)
from engage.delivery.providers.console import ConsoleProvider
from engage.delivery.providers.outbox import OutboxProvider


def _lazy(module: str, name: str) -> Callable[[Settings], Any]:
    """A factory that imports ``module`` (and its SDK) on first use, then builds ``name`` from the settings."""

    def build(settings: Settings) -> Any:
        return getattr(importlib.import_module(module), name)(settings)

    build.__qualname__ = build.__name__ = name
    return build


SMS_PROVIDERS: dict[str, Callable[[Settings], SmsProvider]] = {
    "twilio": _lazy("engage.delivery.providers.twilio", "TwilioSms"),
    "outbox": OutboxProvider,
    "console": ConsoleProvider,
}
EMAIL_PROVIDERS: dict[str, Callable[[Settings], EmailProvider]] = {
    "sendgrid": _lazy("engage.delivery.providers.sendgrid", "SendGridEmail"),
    "outbox": OutboxProvider,
    "console": ConsoleProvider,
}

__all__ = [
    "EMAIL_PROVIDERS",
    "SMS_PROVIDERS",
    "Accepted",
    "ConfigurationError",
    "EmailProvider",
    "OutgoingEmail",
    "OutgoingSms",
    "ProviderError",
    "SmsProvider",
    "email_provider",
    "email_provider_name",
    "reset_providers",
    "sms_provider",
    "sms_provider_name",
]

_lock = threading.Lock()
# (pid, channel, name) -> (settings it was built from, instance)
_cache: dict[tuple[int, str, str], tuple[Settings, Any]] = {}


def sms_provider_name(settings: Settings | None = None) -> str:
    """The SMS provider name these settings select (explicit setting, else by credentials)."""
    settings = settings or get_settings()
    explicit = (settings.sms_provider or "").strip().lower()
    if explicit:
        return explicit
    return "twilio" if settings.twilio_account_sid and settings.twilio_auth_token else "outbox"


def email_provider_name(settings: Settings | None = None) -> str:
    """The email provider name these settings select (explicit setting, else by credentials)."""
    settings = settings or get_settings()
    explicit = (settings.email_provider or "").strip().lower()
    if explicit:
        return explicit
    return "sendgrid" if settings.sendgrid_api_key else "outbox"


def sms_provider(settings: Settings | None = None) -> SmsProvider:
    """The process's SMS provider. Raises ConfigurationError for an unknown name or missing credentials."""
    settings = settings or get_settings()
    provider: SmsProvider = _get("sms", sms_provider_name(settings), SMS_PROVIDERS, settings)
    return provider


def email_provider(settings: Settings | None = None) -> EmailProvider:
    """The process's email provider. Raises ConfigurationError for an unknown name or missing credentials."""
    settings = settings or get_settings()
    provider: EmailProvider = _get("email", email_provider_name(settings), EMAIL_PROVIDERS, settings)
    return provider


def reset_providers() -> None:
    """Forget every cached provider (tests call this after changing the environment)."""
    with _lock:
        _cache.clear()


def _get(channel: str, name: str, registry: dict[str, Callable[[Settings], Any]], settings: Settings) -> Any:
    factory = registry.get(name)
    if factory is None:
        known = ", ".join(sorted(registry))
        raise ConfigurationError(f"unknown {channel} provider {name!r} (known: {known})")
    key = (os.getpid(), channel, name)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] is settings:
            return cached[1]
        instance = factory(settings)
        _cache[key] = (settings, instance)
        return instance
