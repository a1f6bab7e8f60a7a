"""engage's web side: :func:`engage.web.app.create_app` builds the FastAPI app (webhooks, patient pages)."""
