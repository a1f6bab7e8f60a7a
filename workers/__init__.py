"""engage's Celery side: the app (``workers.app``) and its thin tasks (``workers.tasks``).

Run a worker with ``celery -A workers.app worker`` and the tick with
``celery -A workers.app beat``; every decision lives in :mod:`engage.delivery`.
"""
