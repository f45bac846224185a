# syntax=docker/dockerfile:1
# One image for every role: `serve` (the default), `worker` and `simulator` (see docs/deploying.md).
#
#   docker build -t seedance-gateway .
#   docker build --build-arg BASE_IMAGE=registry.example/python:3.11-slim-bookworm -t seedance-gateway .
#
# Both stages start from the same BASE_IMAGE, so the virtualenv built in the first runs on the same Python in the
# second (its interpreter links point at the base image's /usr/local/bin/python3).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder

ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --root-user-action=ignore "uv==${UV_VERSION}"

# The locked dependencies go into /opt/venv, built with the base image's own Python (never a downloaded one);
# bytecode is compiled here because the running container's root filesystem is read-only.
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /src

# Dependencies first, from the lock alone: this layer is reused until pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project

# Then the project itself, installed as a regular (non-editable) package: the final stage needs no source tree.
COPY README.md ./
COPY service ./service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable


FROM ${BASE_IMAGE}

# tini is PID 1: it forwards SIGTERM to the gateway (uvicorn then drains for up to 15 s) and reaps children.
# The version is pinned to bookworm's; a BASE_IMAGE on another Debian release needs its own tini version here.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --gid 10001 gateway \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gateway

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080

WORKDIR /app
USER 10001:10001
EXPOSE 8080

# No curl in slim images: Python's urllib asks /healthz on the gateway's own port (HTTPS when the gateway serves TLS;
# its certificate is not checked, the point is that the process answers). `simulator` has no /healthz: run it with
# --no-healthcheck (docs/deploying.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as u; tls = bool(os.environ.get('GATEWAY_TLS_CERT_FILE')); u.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('GATEWAY_PORT', '8080') + '/healthz', timeout=4, context=ssl._create_unverified_context() if tls else None)"]

ENTRYPOINT ["tini", "--", "seedance-gateway"]
CMD ["serve"]
