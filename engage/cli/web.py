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
def serve(host: str, port: int, limit_concurrency: int, header_timeout: float) -> None:
    """Serve the staff web app (/, sign in at /login), the webhooks (/webhooks/...) and patient pages (/u/..., /r/...).

    Providers must reach it at ENGAGE_PUBLIC_URL: signatures are checked against that URL.
    Logs one line per request (method, route template, status, duration) and one line
    per refused webhook signature.
    """
    import uvicorn  # imported here so the rest of the CLI starts fast

    from engage.cli.common import UserError
    from engage.config import StartupRefused, get_settings
    from engage.delivery.startup import check_startup
    from engage.web.serving import with_header_timeout

    try:
        check_startup()
    except StartupRefused as exc:
        raise UserError(str(exc)) from None

    # engage.web.access logs each request by its route template; uvicorn's own access log
    # is off because its request lines carry unsubscribe and reassessment tokens.
    # log_config None: uvicorn's own lines go through engage's handler (text or JSON, ENGAGE_LOG_FORMAT).
    logs.configure(logging.WARNING, get_settings().log_format)
    for name in ("engage", "uvicorn"):
        logging.getLogger(name).setLevel(logging.INFO)
    uvicorn.run(
        "engage.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        access_log=False,
        proxy_headers=True,
        # uvicorn's h11 protocol plus the header-read timeout uvicorn lacks (slow-header clients).
        http=with_header_timeout(header_timeout),
        limit_concurrency=limit_concurrency,
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
