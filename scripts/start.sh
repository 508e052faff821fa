#!/usr/bin/env bash
# Command 1 of the README: installs what is missing, builds rtmd, the
# JavaScript SDK with its demo chat page (sdk/js: npm ci, npm run build)
# and the admin page (admin/: served only with --admin_token and
# --admin_dir=./admin/dist),
# and starts rtmd on the embedded store (./data) with the default ports and
# the demo page served at /demo/ for the demo project (the project of the
# store, since no configuration names projects; see demo_dir in
# etc/rtmd.conf.example: /demo/token hands out login tokens to anyone, so
# this is for trying rtmd out, not for production). rtmd prints its
# endpoints and the demo project (pid and secret, and its RTS app_id and
# app_key, and its RealTimeCat API key and secret) when it is ready. The
# RealTimeCat demo backend (GET /sessions, /:sessionId/tokens,
# /tokens/:sessionName) is on for the demo project with the demo page.
# Extra arguments go to rtmd (e.g. --config etc/rtmd.conf.example; a
# configuration with projects runs the demo only for one with demo = 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
(cd sdk/js && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
(cd admin && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
echo "rtmd built: build/rtmd, build/rtmctl; data in ./data; stop with Ctrl-C"

# The demo's address: the HTTP port given on the command line, or the default.
http_port=8080
for a in "$@"; do
  case "$a" in --http_port=*) http_port="${a#--http_port=}" ;; esac
done
echo "demo chat page (once rtmd says ready): http://localhost:${http_port}/demo/"
echo "  open it in two browser windows, log in with two names, and chat"
echo "RealTimeCat demo backend (unauthenticated, for the demo project): http://localhost:${http_port}/sessions,"
echo "  http://localhost:${http_port}/<sessionId>/tokens, http://localhost:${http_port}/tokens/<sessionName>;"
echo "  its REST API is http://localhost:${http_port}/v0.4/ with the API key and secret rtmd prints"
echo "  on its ready banner ('rtcat pid=.. apikey=.. secret=..', derived from the project's secret)"
echo "1v1 call demo page (once rtmd says ready): http://localhost:${http_port}/demo/call/"
echo "  open it in two browser windows (camera and microphone allowed) and join the same session name"
echo "admin page (built in admin/dist; off unless you pass a token of 16+ characters):"
echo "  scripts/start.sh --admin_token=\$(openssl rand -hex 24) --admin_dir=./admin/dist, then"
echo "  http://localhost:${http_port}/admin/ and log in with that token"
# The demo page first: an argument given to this script may override it.
set -- --demo_dir=./sdk/js/dist/demo "$@"
exec build/rtmd --data_dir=./data "$@"
