"""What every engage process checks before it starts: ``tick``, ``demo``, ``serve``, Celery workers and beat.

Each refusal is one sentence (:class:`engage.config.StartupRefused`):

- no usable secret key (:func:`engage.config.secret_key`): on PostgreSQL ``ENGAGE_SECRET_KEY``
  must be set, or the links one process sends would be dead on the server that reads them;
- a real provider (``twilio``, ``sendgrid``) with ``ENGAGE_PUBLIC_URL`` on this machine
  (the default ``http://127.0.0.1:8000``): the unsubscribe links and status callbacks
  it would send reach nobody;
- ``engage tick --now`` in the future with a real provider: it would send real messages
  early, perhaps at night. The file providers (``outbox``, ``console``) may simulate.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from engage.config import Settings, StartupRefused, get_settings, require_secret_key
from engage.delivery.providers import EMAIL_PROVIDERS, SMS_PROVIDERS, email_provider_name, sms_provider_name

#: Providers that only write files or print: simulating a time does them no harm.
SIMULATION_PROVIDERS = frozenset({"outbox", "console"})
#: How far ahead of the real clock ``--now`` may be before it counts as the future (clock skew).
_FUTURE_SLACK = timedelta(minutes=1)


def real_providers(settings: Settings) -> list[str]:
    """The configured providers that reach real people (not ``outbox``/``console``).

    An unknown name is left to the provider registry's ``ConfigurationError``.
    """
    registries: list[tuple[str, Mapping[str, object]]] = [
        (sms_provider_name(settings), SMS_PROVIDERS),
        (email_provider_name(settings), EMAIL_PROVIDERS),
    ]
    return [name for name, registry in registries if name in registry and name not in SIMULATION_PROVIDERS]


def _is_this_machine(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in ("", "localhost") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def check_startup(settings: Settings | None = None, *, now: datetime | None = None) -> None:
    """Raise :class:`StartupRefused` with one sentence if these settings must not run; on SQLite, make the key.

    ``now``: the time ``engage tick --now`` simulates, refused in the future unless every
    provider is a file provider.
    """
    settings = settings or get_settings()
    require_secret_key(settings)
    real = real_providers(settings)
    if real and _is_this_machine(settings.public_url):
        raise StartupRefused(
            f"ENGAGE_PUBLIC_URL is {settings.public_url}, which patients and {real[0]} cannot reach, so the links "
            "and status callbacks engage sends would be dead: set it to the public address of engage serve"
        )
    if now is not None and real and now > datetime.now(timezone.utc) + _FUTURE_SLACK:
        raise StartupRefused(
            f"--now {now.isoformat()} is in the future and {real[0]} sends real messages, early and perhaps at "
            "night; simulate only with ENGAGE_SMS_PROVIDER and ENGAGE_EMAIL_PROVIDER set to outbox or console"
        )
