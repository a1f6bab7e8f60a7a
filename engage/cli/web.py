"""``engage serve``: run the web app (webhooks and patient pages) under uvicorn."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 for all).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
def serve(host: str, port: int) -> None:
    """Serve the webhooks (/webhooks/...) and patient pages (/u/..., /r/...).

    Providers must reach it at ENGAGE_PUBLIC_URL: signatures are checked against that URL.
    """
    import uvicorn  # imported here so the rest of the CLI starts fast

    from engage.cli.common import UserError
    from engage.config import InsecureSecretKey, get_settings, require_secret_key

    try:
        require_secret_key(get_settings())
    except InsecureSecretKey as exc:
        raise UserError(str(exc)) from None

    # access_log off: request lines carry unsubscribe and reassessment tokens.
    uvicorn.run("engage.web.app:create_app", factory=True, host=host, port=port, access_log=False,
                proxy_headers=True)
