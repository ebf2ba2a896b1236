# syntax=docker/dockerfile:1
# The fadewatch server image: the ingest API, the dashboard and the `db` / `token` commands.
# The server extra only: no torch (that is the demo extra), so the image stays small.
#
#   docker build -t fadewatch .
#   docker compose up        (see docker-compose.yml and docs/deployment.md)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the package and its server dependencies into a virtual environment ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/fadewatch
WORKDIR /src
# Only what the wheel is built from, so editing tests or docs does not bust this layer.
COPY pyproject.toml README.md ./
COPY scripts/build_backend.py ./scripts/
COPY client ./client
COPY server ./server
COPY dashboard ./dashboard
COPY migrations ./migrations
RUN /opt/fadewatch/bin/pip install ".[server]" \
    && /opt/fadewatch/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"

# --- run: the virtual environment on a clean base, as an unprivileged user ---
FROM ${PYTHON_IMAGE} AS run
RUN groupadd --system --gid 10001 fadewatch \
    && useradd --system --uid 10001 --gid fadewatch --home-dir /var/lib/fadewatch --create-home \
       --shell /usr/sbin/nologin fadewatch
COPY --from=build /opt/fadewatch /opt/fadewatch
ENV PATH=/opt/fadewatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FADEWATCH_DIR=/var/lib/fadewatch \
    FADEWATCH_PORT=8700
USER fadewatch
WORKDIR /var/lib/fadewatch
EXPOSE 8700
# Ready means the database answers (/readyz is 503 otherwise), so a load balancer or
# compose only sends traffic to a replica that can store it. The slim base has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('FADEWATCH_PORT', '8700'), timeout=4)"]
# Binding a non-loopback address with no API token in the database is refused at start:
# create the first token with `fadewatch token create` (docs/deployment.md).
CMD ["fadewatch", "server", "--host", "0.0.0.0"]
