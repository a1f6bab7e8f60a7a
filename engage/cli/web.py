"""``engage serve``: run the web app (staff pages, webhooks and patient pages) under uvicorn."""

from __future__ import annotations

import logging

import click

from engage import logs

KEEP_ALIVE_SECONDS = 5  # an idle keep-alive connection is closed after this
MAX_HEADER_BYTES = 16 * 1024  # request line + headers; larger is refused (431/400) by the server
GRACEFUL_SHUTDOWN_SECONDS = 20  # in-flight requests finish on SIGTERM, then the rest are cut


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 for all).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--limit-concurrency",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Connections and requests at once; beyond it new requests get 503.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a client may take to send a request's headers before the connection is closed.",
)
@click.option(
    "--body-timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a client may take to send a request's body, in all (a 5 MB CSV upload needs about 42 KB/s).",
)
@click.option(
    "--min-body-rate",
    default=1024,
    show_default=True,
    type=click.IntRange(0),
    help="Bytes per second a request body must average after its first 5 seconds (0: no minimum).",
)
@click.option(
    "--max-connections-per-ip",
    default=20,
    show_default=True,
    type=click.IntRange(0),
    help="Open connections one client address may hold (0: no cap; behind a proxy, above its pool or 0).",
)
def serve(
    host: str,
    port: int,
    limit_concurrency: int,
    header_timeout: float,
    body_timeout: float,
    min_body_rate: int,
    max_connections_per_ip: int,
) -> None:
    """Serve the staff web app (/, sign in at /login), the webhooks (/webhooks/...) and patient pages (/u/..., /r/...).

    Providers must reach it at ENGAGE_PUBLIC_URL: signatures are checked against that URL.
    Logs one line per request (method, route template, status, duration) and one line
    per refused webhook signature.
    """
    import uvicorn  # imported here so the rest of the CLI starts fast

    from engage.cli.common import UserError
    from engage.config import StartupRefused, get_settings
    from engage.delivery.startup import check_startup
    from engage.web.serving import guarded

    try:
        check_startup()
    except StartupRefused as exc:
        raise UserError(str(exc)) from None

    # engage.web.access logs each request by its route template; uvicorn's own access log
    # is off because its request lines carry unsubscribe and reassessment tokens.
    # log_config None: uvicorn's own lines go through engage's handler (text or JSON, ENGAGE_LOG_FORMAT).
    settings = get_settings()
    logs.configure(logging.WARNING, settings.log_format)
    for name in ("engage", "uvicorn"):
        logging.getLogger(name).setLevel(logging.INFO)
    uvicorn.run(
        "engage.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        access_log=False,
        # X-Forwarded-For only from ENGAGE_TRUSTED_PROXIES: uvicorn's default trusts 127.0.0.1, so anything on the
        # same host (or a proxy that appends rather than replaces) could pick its own address and skip the
        # per-IP limits. An empty string makes uvicorn trust nobody (None would fall back to its default).
        proxy_headers=bool(settings.trusted_proxies.strip()),
        forwarded_allow_ips=settings.trusted_proxies.strip(),
        # uvicorn's h11 protocol plus what uvicorn lacks against slow clients (engage.web.serving).
        http=guarded(
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            min_body_rate=min_body_rate,
            max_per_ip=max_connections_per_ip,
        ),
        limit_concurrency=limit_concurrency,
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
