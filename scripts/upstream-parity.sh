#!/usr/bin/env bash
# Upstream parity: run what upstream PromptArena's CI runs on its example packs ("Test example packs"), with this
# project's `arena`, against a checkout of github.com/AltairaLabs/promptarena:
#   1. `arena validate <file> --schema-only` for every arena file of examples/ (two levels deep);
#   2. the showcase examples mock-run with upstream's exact flags, each expected to exit 0 under --ci.
# Usage: bash scripts/upstream-parity.sh /path/to/promptarena [out-dir]
# Not part of the test suite: it needs upstream's checkout (the suite's own fixture bundles cover each capability).
set -uo pipefail

UPSTREAM=${1:?usage: $0 /path/to/promptarena [out-dir]}
OUT=${2:-$(mktemp -d)}
mkdir -p "$OUT"
REPO=$(cd "$(dirname "$0")/.." && pwd)
ARENA=${ARENA:-$REPO/.venv/bin/arena}
EXAMPLES=$UPSTREAM/examples
[ -d "$EXAMPLES" ] || { echo "no examples/ under $UPSTREAM" >&2; exit 2; }

failed=0 total=0
while IFS= read -r cfg; do
  total=$((total + 1))
  if ! (cd "$UPSTREAM" && "$ARENA" validate "$cfg" --schema-only >/dev/null 2>&1); then
    echo "schema-only FAILED: $cfg"; failed=$((failed + 1))
  fi
done < <(cd "$UPSTREAM" && find examples -maxdepth 2 \( -name 'config.arena.yaml' -o -name '*.arena.yaml' \
          -o -name 'arena.yaml' \) -not -path '*/out/*' | sort)
echo "validated $total arena file(s) with --schema-only; $failed failed"

run() {
  local example=$1; shift
  if (cd "$EXAMPLES/$example" && "$ARENA" run "$@" --out "$OUT/$example" -q >"$OUT/$example.log" 2>&1); then
    echo "mock-run ok:     $example"
  else
    echo "mock-run FAILED: $example (exit $?; log $OUT/$example.log)"; failed=$((failed + 1))
  fi
}
run customer-support  --config config.arena.yaml --ci --mock-provider --mock-config mock-responses.yaml \
    --scenario customer-support-scenarios --formats json
run multimodal-basics --config config.arena.yaml --ci --mock-provider --mock-config mock-responses.yaml --formats json
run variables-demo    --config config.arena.yaml --ci --mock-provider --mock-config mock-config.yaml --formats json
run assertions-test   --config config.arena.yaml --ci --mock-provider --mock-config mock-responses.yaml --formats json
for example in llm-judge guardrails-test eval-test document-analysis voice-ivr workflow-agent-loops \
    workflow-order-processing workflow-skills workflow-support; do
  run "$example" --config config.arena.yaml --ci --formats json
done
echo "reports in $OUT"
exit $((failed > 0))
