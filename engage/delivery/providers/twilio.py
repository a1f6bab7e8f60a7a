"""SMS through Twilio's Messages API, with the official ``twilio`` SDK.

One client per provider instance (the SDK's requests session pools
connections). ``settings.twilio_api_base`` replaces ``https://api.twilio.com``
so staging and tests can point the real SDK at a local fake over real HTTP.

The SDK's HTTP client does not retry by default; we still pin ``max_retries=0``
on both schemes, because a retried POST after a lost response is a second SMS.
Retrying is the dispatcher's decision, made with the outbox row in hand.

Transport failures are told apart by *when* they happened. Before a byte of
the request left (connection refused, DNS, connect timeout) Twilio cannot have
the message: ``connection`` / ``connect_timeout``, safe to retry. After (the
connection dropped or timed out while we waited for the answer) Twilio may have
read the request and queued the SMS: ``read_timeout`` / ``connection_lost``,
which the dispatcher must not retry blindly.

Account-level answers (401 / error 20003: bad credentials; 404: no such
account) are :class:`ConfigurationError`: every message would fail the same way.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
from typing import Any, ClassVar
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.auth import _basic_auth_str
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from engage.config import Settings
from engage.delivery.providers.base import (
    Accepted,
    ConfigurationError,
    OutgoingSms,
    ProviderError,
    parse_retry_after,
)

DEFAULT_API_BASE = "https://api.twilio.com"

# The SDK logs every request at INFO: its URL carries the account SID, its body the recipient and the text.
# urllib3 logs the same URL at DEBUG (a worker run with --loglevel=DEBUG).
for _sdk_logger in ("twilio.http_client", "twilio.async_http_client"):
    logging.getLogger(_sdk_logger).setLevel(logging.WARNING)
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)

from engage.delivery.providers.twilio_codes import (  # noqa: E402,F401 - the codes' old home, still importable
    AUTHENTICATION_FAILED,
    INVALID_NUMBER,
    NOT_MOBILE,
    UNSUBSCRIBED,
)

#: Environment variables requests consults per request while ``trust_env`` is on: proxies (and netrc) ...
_ENVIRONMENT_SETTINGS = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy", "netrc"})
#: ... and the CA bundle, in the order requests reads them (``merge_environment_settings``).
_CA_BUNDLE_SETTINGS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


_FORM = "application/x-www-form-urlencoded"


def _as_list(values: object) -> list[object]:
    """A form field's values as requests sees them: a string (or anything not iterable) is one value."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        return [values]
    return list(values)  # type: ignore[call-overload]


class _RecordingHttpClient(TwilioHttpClient):
    """TwilioHttpClient that keeps this thread's last response.

    ``TwilioRestException`` drops the response headers, and a 429's
    ``Retry-After`` lives there. The SDK's own ``_test_only_last_response`` is
    shared by all threads, so we keep ours thread-local.
    """

    def __init__(self, timeout: float, connections: int = 32) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        self._local = threading.local()
        assert self.session is not None
        # As many kept connections as sends in flight: with fewer, each call beyond them opened a new
        # connection and dropped it after (a TCP and TLS handshake's CPU per message at high latency).
        for scheme in ("https://", "http://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=0, pool_maxsize=max(1, connections)))
        # requests reads proxy and CA-bundle settings from the environment on every request (walking all of
        # os.environ: 5-7 % of a send's CPU). With no proxy set, it stops looking; a CA bundle set in the
        # environment is read once here instead, so certificates are checked against the same file.
        if not any(name.lower() in _ENVIRONMENT_SETTINGS for name in os.environ):
            bundle = next((os.environ[name] for name in _CA_BUNDLE_SETTINGS if os.environ.get(name)), None)
            if bundle is not None:
                self.session.verify = bundle
            self.session.trust_env = False

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self._local.last = None
        lean = (
            self.session is not None
            and not self.session.trust_env
            and not self.proxy
            and not params
            and not allow_redirects
            and headers is not None
            and headers.get("Content-Type") == _FORM
        )
        if lean:
            response = self._form_post(method, url, data or {}, headers or {}, auth, timeout)
        else:
            response = super().request(method, url, params, data, headers, auth, timeout, allow_redirects)
        self._local.last = response
        return response

    def _form_post(
        self,
        method: str,
        url: str,
        data: dict[str, object],
        headers: dict[str, str],
        auth: tuple[str, str] | None,
        timeout: float | None,
    ) -> Response:
        """The SDK's form request straight to the session's adapter: the same bytes on the wire (requests' form
        encoding, the session's default headers under the SDK's), the same exceptions (the adapter raises them),
        without building a ``requests.Request``, preparing it through the session (its many ``isinstance`` checks
        against typing protocols) and passing the session's hooks and cookie jar: a third of an SMS's call CPU."""
        assert self.session is not None
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        prepared.prepare_url(url, None)
        prepared.prepare_headers({**self.session.headers, **headers})
        body = urlencode(
            [(key, value) for key, values in data.items() for value in _as_list(values) if value is not None],
            doseq=True,
        )
        prepared.body = body
        prepared.headers["Content-Length"] = str(len(body))
        if auth is not None:
            prepared.headers["Authorization"] = _basic_auth_str(*auth)
        answer = self.session.get_adapter(prepared.url or url).send(prepared, timeout=timeout or self.timeout)
        return Response(int(answer.status_code), answer.text, answer.headers)

    def last_headers(self) -> dict[str, str]:
        """Headers of this thread's last response, or {}."""
        last: Response | None = getattr(self._local, "last", None)
        return dict(last.headers or {}) if last is not None else {}

    def last_text(self) -> str:
        last: Response | None = getattr(self._local, "last", None)
        return last.text if last is not None and last.text else ""


class TwilioSms:
    """Sends SMS through Twilio. Raises ConfigurationError at construction without credentials or a sender."""

    name: ClassVar[str] = "twilio"

    def __init__(self, settings: Settings) -> None:
        if not settings.twilio_account_sid or not settings.twilio_auth_token:
            raise ConfigurationError("twilio: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set")
        if not settings.twilio_from_number and not settings.twilio_messaging_service_sid:
            raise ConfigurationError("twilio: set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        self._from_number = settings.twilio_from_number
        self._messaging_service_sid = settings.twilio_messaging_service_sid
        self._http = _RecordingHttpClient(
            timeout=settings.http_timeout_seconds, connections=max(32, settings.send_threads)
        )
        self._client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=self._http)
        api_base = settings.twilio_api_base.rstrip("/")
        if api_base != DEFAULT_API_BASE:
            # Domain.base_url is read at every request; edge/region (TWILIO_EDGE,
            # TWILIO_REGION) would rewrite our host, so they go.
            self._client.api.base_url = api_base
            self._client.edge = None
            self._client.region = None

    def send_sms(self, msg: OutgoingSms) -> Accepted:
        """Create one Twilio Message; returns its ``SM…`` sid. Raises ProviderError (classified)."""
        sender = msg.sender or self._from_number
        kwargs: dict[str, Any] = {"to": msg.to, "body": msg.body}
        if sender:
            kwargs["from_"] = sender
        if self._messaging_service_sid and not msg.sender:
            kwargs["messaging_service_sid"] = self._messaging_service_sid
        if msg.status_callback:
            kwargs["status_callback"] = msg.status_callback
        try:
            created = self._client.messages.create(**kwargs)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._classify_rest(exc, msg.message_id) from None
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ) as exc:
            raise ConfigurationError(
                f"twilio: the API base URL is not usable ({type(exc).__name__}); check ENGAGE_TWILIO_API_BASE"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise _transport_error(exc, msg.message_id) from None
        except TwilioException as exc:
            # e.g. a 2xx the SDK could not parse; we cannot tell whether it went out.
            raise ProviderError(
                f"unexpected SDK error ({type(exc).__name__})",
                provider=self.name,
                code="sdk",
                message_id=msg.message_id,
                response_excerpt=self._http.last_text(),
            ) from None
        return Accepted(provider_message_id=str(created.sid), status="sent")

    def _classify_rest(self, exc: TwilioRestException | TwilioServiceException, message_id: int) -> ProviderError:
        """A ProviderError for Twilio's error answer; raises ConfigurationError for an account-level one."""
        status = int(exc.status)
        code = str(exc.code) if exc.code is not None else None
        excerpt = _error_excerpt(self._http.last_text())
        if status == 401 or code == AUTHENTICATION_FAILED:
            raise ConfigurationError(
                f"twilio: authentication failed (HTTP {status}, code {code}); "
                "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
            )
        if status == 404:
            # The only resource we POST to is the account's Messages list: a 404 is a wrong account or base URL.
            raise ConfigurationError(
                f"twilio: the account's Messages resource was not found (HTTP 404, code {code}); "
                "check TWILIO_ACCOUNT_SID and ENGAGE_TWILIO_API_BASE"
            )
        if status == 429:
            return ProviderError(
                "rate limited",
                provider=self.name,
                status=status,
                code=code,
                message_id=message_id,
                retry_after=parse_retry_after(_header(self._http.last_headers(), "Retry-After")),
                response_excerpt=excerpt,
            )
        if code in (UNSUBSCRIBED, INVALID_NUMBER, NOT_MOBILE) or 400 <= status < 500:
            reason = {
                UNSUBSCRIBED: "recipient has unsubscribed (replied STOP)",
                INVALID_NUMBER: "invalid 'To' number",
                NOT_MOBILE: "'To' number is not a mobile number",
            }.get(code or "", "request rejected")
            return ProviderError(
                reason,
                provider=self.name,
                permanent=True,
                status=status,
                code=code,
                message_id=message_id,
                response_excerpt=excerpt,
            )
        return ProviderError(
            "server error",
            provider=self.name,
            status=status,
            code=code,
            message_id=message_id,
            response_excerpt=excerpt,
        )


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _error_excerpt(text: str) -> str:
    """Twilio's error body in short: code, message, more_info (redacted by ProviderError)."""
    try:
        payload = json.loads(text)
    except ValueError:
        return text
    if isinstance(payload, dict) and "message" in payload:
        return f"{payload.get('message')} ({payload.get('more_info', '')})"
    return text


def _transport_error(exc: requests.exceptions.RequestException, message_id: int) -> ProviderError:
    """Classify a transport failure by whether Twilio may have received the request (see the module docstring)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        code, text = "connect_timeout", "connect timeout"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        code, text = "read_timeout", "read timeout (the message may have been accepted)"
    elif isinstance(exc, requests.exceptions.ConnectionError) and _never_connected(exc):
        code, text = "connection", "connection error (nothing was sent)"
    else:
        # Dropped or reset while waiting for the answer, a broken response body, anything else once
        # connected: Twilio may have read the whole request and queued the SMS.
        code = "connection_lost"
        text = f"connection lost after the request ({type(exc).__name__}); the message may have been accepted"
    return ProviderError(text, provider=TwilioSms.name, code=code, message_id=message_id)


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the failure happened before a connection existed, so no request byte was sent.

    requests wraps urllib3's ``MaxRetryError`` whose ``reason`` says what went
    wrong: ``NewConnectionError`` (refused, unreachable, DNS: its subclass
    ``NameResolutionError``), a connect timeout, or a certificate the TLS
    handshake refused. A drop after the request went out arrives as a bare
    ``ProtocolError`` instead.
    """
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
        return True
    cause = reason.args[0] if reason is not None and reason.args else None
    return isinstance(cause, ssl.SSLCertVerificationError)
