#!/usr/bin/env bash
# Runs every tidings benchmark and writes BENCHMARKS.md-ready tables.
#
#   bash bench/run.sh [OUTPUT.md]      (default: bench-results.md)
#
# 1. the criterion micro-benchmark of report(), three times, each run saved
#    as a baseline (run1..run3);
# 2. the end-to-end sections (throughput, shutdown drain, peak RSS during an
#    outage, runtime teardown, storms with folding on and off — `--all`
#    includes `--storm`, ~10 more minutes), 3 interleaved runs each (7 for
#    throughput, the noisiest and cheapest to repeat), plus the criterion
#    table (median of the three runs' medians).
# Needs nats-server (NATS_SERVER_BIN, PATH or /usr/sbin); starts its own on
# random loopback ports. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-results.md}"
for run in run1 run2 run3; do
    cargo bench -p tidings-bench --bench report -- --save-baseline "$run" >&2
done
cargo run --release -p tidings-bench --bin tidings-bench -- \
    --all --runs 3 --e2e-runs 7 --criterion run1,run2,run3 > "$out"
echo "wrote $out" >&2
