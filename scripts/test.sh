#!/usr/bin/env bash
# Install everything the tests need (pip extras, redis-server, git, docker-registry), lint, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check src tests bench
# -p no:cacheprovider: a clean clone stays clean. pytest exits 5 when it collects nothing: that is a failure too.
exec .venv/bin/pytest -p no:cacheprovider -q "$@"
