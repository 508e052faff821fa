#!/usr/bin/env bash
# The long kill -9 campaign: rtmd under load from client-gate and
# server-gate senders, killed with SIGKILL at random moments CYCLES times
# (default 50) and restarted on the same data directory; then every
# acknowledged message must be in the store exactly once with the mtime of
# its answer (tests/raw/store-kill9-every-ack-kept.test.js, which CI runs
# with 4 cycles). Builds rtmd first if needed; prints the figures.
#   scripts/kill9.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
cycles="${1:-50}"
scripts/deps.sh
(cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target rtmd
cd tests/integration
RTMD_BIN=../../build/rtmd RTM_KILL9_CYCLES="$cycles" \
  node --test --test-reporter=spec ../raw/store-kill9-every-ack-kept.test.js
