#!/usr/bin/env bash
# Command 1 of the README: installs what is missing, builds, and starts rtmd
# on the embedded store (./data) with the default ports. rtmd prints its
# endpoints and the demo project (pid and secret, and its RTS app_id and
# app_key) when it is ready.
# Extra arguments go to rtmd (e.g. --config etc/rtmd.conf.example).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "rtmd built: build/rtmd, build/rtmctl; data in ./data; stop with Ctrl-C"
exec build/rtmd --data_dir=./data "$@"
