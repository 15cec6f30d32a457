#!/usr/bin/env bash
# Runs the property-based fuzz targets for longer than the test suite does: the DSL
# parser and YAML loader (crates/policy/tests/fuzz.rs), JSON ingress in every
# dialect, answer translation and the SSE parser (crates/wire/tests/fuzz.rs), and the linear-time scans on adversarial text
# (crates/workload/tests/linear.rs). Any panic or broken property fails the run and
# proptest prints the smallest input that shows it.
#
#   scripts/fuzz.sh            # 20,000 cases per target
#   FUZZ_CASES=200000 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_CASES="${FUZZ_CASES:-20000}"
echo "== fuzzing with $FUZZ_CASES cases per target"
cargo test --release -p switchyard-policy --test fuzz
cargo test --release -p switchyard-wire --test fuzz
# The timing-based linearity checks need fewer, larger cases.
LINEAR_CASES=64 cargo test --release -p switchyard-workload --test linear
echo "== fuzzing passed"
