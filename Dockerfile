# caproute serve: the routing proxy in a slim, non-root image.
#
#   docker build -t caproute .
#   docker run --rm -p 8787:8787 -e ANTHROPIC_API_KEY -e CAPROUTE_TOKEN caproute \
#       --api-key-env ANTHROPIC_API_KEY --require-token-env CAPROUTE_TOKEN
#
# Inside a container the proxy must bind 0.0.0.0 to be reachable at all, so anyone who
# can reach the port can use it: run it in own-key mode with a required token (above),
# or keep pass-through mode (callers send their own key) on a private network only.
# Every flag is also a CAPROUTE_* variable (flags win); a config file can be mounted
# and named with CAPROUTE_CONFIG (see deploy/kubernetes and docs/proxy.md).
#
# `make test` lints this file with hadolint (no container engine on the CI machine).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CAPROUTE_HOST=0.0.0.0 \
    CAPROUTE_PORT=8787

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# The `proxy` extra brings uvicorn with httptools and uvloop (the faster HTTP parser and
# event loop the proxy picks when installed, see docs/performance.md) and
# prometheus-client. The project is installed from this checkout: its dependencies'
# versions are bounded in pyproject.toml, so there is nothing to pin here.
# hadolint ignore=DL3013
RUN pip install ".[proxy]" \
    && groupadd --system --gid 10001 nonroot \
    && useradd --system --uid 10001 --gid nonroot --no-create-home --shell /usr/sbin/nologin nonroot \
    && rm -rf /app/src

# The `nonroot` user, given by number so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8787

# Liveness for orchestrators that use the image's own check (Kubernetes: point an
# httpGet probe at /caproute/health instead).
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/caproute/health', timeout=2)"]

ENTRYPOINT ["caproute", "serve"]
CMD []
