#!/usr/bin/env bash
# Runs every test: formatting, lints, unit and integration tests, the end-to-end tests
# with the official OpenAI and Anthropic Python SDKs (installed here into .venv), the semantic cache
# against a real PostgreSQL with pgvector (installed here into .cache/postgres), and
# the shared state on real Redis and Valkey servers (installed from Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import openai, anthropic' 2>/dev/null; then
  echo "== installing the OpenAI and Anthropic Python SDKs into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check 'openai>=1.40,<3' 'anthropic>=0.40,<1'
fi
export SWITCHYARD_PYTHON="$PWD/.venv/bin/python"
export SWITCHYARD_REQUIRE_SDK=1
echo "== the default model (tokenizer tests)"
SWITCHYARD_MODEL_DIR="$PWD/$(./scripts/fetch-model.sh)"
export SWITCHYARD_MODEL_DIR

echo "== PostgreSQL with pgvector (the semantic cache's postgres backend)"
SWITCHYARD_PG_BIN="$(./scripts/postgres.sh)"
export SWITCHYARD_PG_BIN SWITCHYARD_REQUIRE_PG=1
if [[ "$(id -u)" == 0 ]]; then
  # PostgreSQL refuses to run as root: the tests run it as this user.
  export SWITCHYARD_PG_USER=switchyard-pg
fi

echo "== Redis and Valkey (the shared state's server backends)"
mapfile -t kv < <(./scripts/kv-servers.sh)
[[ ${#kv[@]} == 2 ]] || { echo "scripts/kv-servers.sh did not name both servers" >&2; exit 1; }
export SWITCHYARD_REDIS_BIN="${kv[0]}" SWITCHYARD_VALKEY_BIN="${kv[1]}" SWITCHYARD_REQUIRE_KV=1

# Shared data beside the project, when present, turns on the tests that read it.
if [[ -z "${SWITCHYARD_DATA:-}" && -d ../shared/data ]]; then
  SWITCHYARD_DATA="$(cd ../shared/data && pwd)"
  export SWITCHYARD_DATA
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line over every test binary (the last runner's own line is often a
# crate's doc tests, with nothing in them).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "all tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$log"
