# syntax=docker/dockerfile:1
# connector-hub's image (docs/deploy.md): the wheels are built in a builder stage; the final stage is
# python:3.11-slim with those wheels installed, no build tools, a non-root user, and `connector-hub
# run` against external NATS and Valkey (HUB_NATS_URL, HUB_REDIS_URL).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hub hub
COPY adapters adapters
COPY events events
COPY schemas schemas
# the hub's wheel and its dependencies' wheels (binary wheels where PyPI has them)
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HUB_DATA_DIR=/var/lib/connector-hub \
    HUB_HTTP_HOST=0.0.0.0 \
    HUB_HTTP_PORT=8080 \
    HUB_ADMIN_HOST=0.0.0.0 \
    HUB_ADMIN_PORT=8081
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --no-index --find-links /wheels /wheels/connector_hub-*.whl \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent hub \
    && install -d -o hub -g hub -m 0750 /var/lib/connector-hub
USER 10001:10001
WORKDIR /var/lib/connector-hub
EXPOSE 8080 8081
# /healthz on the ingress port: the process answers (readiness, /readyz, is on the admin port)
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HUB_HTTP_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["connector-hub"]
CMD ["run"]
