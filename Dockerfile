# syntax=docker/dockerfile:1
# engage: one image for web, worker, beat, the migration job and Flower.
#   docker build -t engage .      (docker compose builds it once, as engage:local)
# Dependencies come from constraints.txt (every package pinned; `python .ci/lock.py` rewrites it),
# so a build next month installs the same versions.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /src
# Dependencies first, alone: this layer is rebuilt only when the lock changes.
COPY constraints.txt ./
RUN pip install --require-virtualenv -r constraints.txt
# Then engage itself, as a regular (not editable) install, with nothing else pulled in.
COPY pyproject.toml README.md celeryconfig.py ./
COPY engage ./engage
COPY workers ./workers
RUN pip install --require-virtualenv --no-deps . && pip check

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 engage \
 && useradd --system --uid 10001 --gid engage --home-dir /app --shell /usr/sbin/nologin engage \
 && mkdir -p /app/outbox /var/lib/engage/metrics \
 && chown engage:engage /app/outbox /var/lib/engage/metrics
COPY --from=build /venv /venv
WORKDIR /app
# Templates and sequences are the clinic's content: read from /app/templates (mount your own over it).
COPY templates ./templates
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ENGAGE_TEMPLATES_DIR=/app/templates \
    ENGAGE_OUTBOX_DIR=/app/outbox \
    PROMETHEUS_MULTIPROC_DIR=/var/lib/engage/metrics
USER engage
EXPOSE 8000
CMD ["engage", "serve", "--host", "0.0.0.0", "--port", "8000"]
