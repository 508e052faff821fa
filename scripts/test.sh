#!/usr/bin/env bash
# Command 2 of the README (and CI): installs what is missing, checks the
# layering (scripts/check-layers.py), then builds and runs the whole suite
# twice: with gcc and warnings as errors (the integration tests once on
# SQLite, once on PostgreSQL, as pg.*, and once on two nodes of a
# cluster, as cl.*), then with
# clang under AddressSanitizer and UndefinedBehaviorSanitizer, where the
# libFuzzer targets are also built and run briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
(cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
(cd sdk/js && npm ci --no-audit --no-fund --loglevel=error && npm run build)
(cd admin && npm ci --no-audit --no-fund --loglevel=error && npm run build)

jobs=$(nproc)
echo "== layers: no upward dependency, no cycle"
scripts/check-layers.py

echo "== build 1: gcc, -Werror"
cmake -S . -B build-test -DRTM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-test -j"$jobs"
(cd build-test && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== build 2: clang, AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer"
CC=clang cmake -S . -B build-asan -DRTM_WERROR=ON -DRTM_SANITIZE=ON -DRTM_FUZZ=ON -DRTM_TEST_POSTGRES=OFF \
  -DRTM_FUZZ_SECONDS="${RTM_FUZZ_SECONDS:-20}" -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 900)
