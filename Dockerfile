# The market agents as a service: `docker compose up` (see docker-compose.yml).
# Two stages: uv installs exactly what uv.lock pins into /app/.venv, and the runtime image takes
# only that environment (no uv, no build tools).
FROM python:3.12-slim AS build

ENV UV_VERSION=0.13.9 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first, so that a change to src/ reuses this layer.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY src ./src
RUN uv sync --locked --no-dev --no-editable

FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app
COPY --from=build /app/.venv /app/.venv
RUN useradd --system --uid 10001 --create-home --home-dir /home/agents agents \
 && mkdir -p /app/data \
 && chown agents:agents /app/data

USER agents
# The database lives here: mount a volume on it to keep it across containers.
VOLUME ["/app/data"]
EXPOSE 8080

# Listen on every interface inside the container, so that a published port reaches the
# health and metrics server; compose publishes it on the host's loopback only.
ENV LOG_LEVEL=INFO \
    POLYMARKET_AGENTS_HTTP_HOST=0.0.0.0 \
    POLYMARKET_AGENTS_HTTP_PORT=8080 \
    POLYMARKET_AGENTS_LOG_FORMAT=json \
    POLYMARKET_AGENTS_DB=/app/data/agents.sqlite \
    POLYMARKET_AGENTS_GRACE_PERIOD=8

# `polymarket-agents health` asks /healthz and exits 0 (healthy) or 1 (unhealthy).
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["polymarket-agents", "health", "--quiet"]

# `docker stop` sends SIGTERM and kills after 10 s: the 8 s grace period above ends first.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "polymarket_agents.core.async_utils"]
