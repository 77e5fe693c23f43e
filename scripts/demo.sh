#!/usr/bin/env bash
# Install the project and run the bundled quickstart bundle locally: mock providers, no network, no cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/arena run examples/quickstart "$@"
