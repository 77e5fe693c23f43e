# One image for the operator (`arena operator`, the default command) and its workers (the worker Job runs
# `arena worker`), built from pyproject.toml:
#   docker build -t ghcr.io/arena-operator/arena-operator:0.1.0 .
# It runs as 65532:65532 and works with a read-only root filesystem: the only writable paths are volumes the
# Helm chart mounts (/tmp, and the artifact directory /var/lib/arena/artifacts).
# tests/integration/test_packaging.py lints this file (hadolint) and runs its install steps without a container
# runtime: the same wheel build, the same install into a clean virtualenv, then `arena --version`.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/ src/
# The project and every dependency as wheels (all ship binary wheels for CPython 3.11: no compiler), then one
# virtualenv without pip holding exactly those: the final stage copies it and nothing else.
RUN pip wheel --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/arena \
 && pip --python /opt/arena/bin/python install --no-index --find-links /wheels /wheels/arena_operator-*.whl

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="arena-operator" \
      org.opencontainers.image.description="Kubernetes operator and workers for PromptKit Arena LLM evaluations" \
      org.opencontainers.image.source="https://github.com/arena-operator/arena-operator" \
      org.opencontainers.image.url="https://github.com/arena-operator/arena-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"
# git (and ssh for ssh:// URLs) is what ArenaSource git fetches run; nothing else is added to the base image.
# Versions are not pinned: they follow the base image's Debian release, whose security updates replace them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/arena /var/lib/arena/artifacts
COPY --from=build /opt/arena /opt/arena
ENV PATH=/opt/arena/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ARENA_ARTIFACT_DIR=/var/lib/arena/artifacts
USER 65532:65532
WORKDIR /tmp
# 8080: artifacts, /healthz and /metrics (operator); 8081: kopf liveness (operator); 9090: /metrics (worker)
EXPOSE 8080 8081 9090
ENTRYPOINT ["arena"]
CMD ["operator", "--liveness", "http://0.0.0.0:8081/healthz", "--log-format", "json"]
