#!/usr/bin/env bash
# Installs what building and testing rtmd needs on Debian 12, from Debian's
# packages only, and any further Debian packages named as arguments (the
# brokers of bench/run.sh). Idempotent: installs nothing when everything is
# present.
set -euo pipefail

packages=(
  cmake make gcc pkg-config          # build
  clang libclang-rt-14-dev           # libFuzzer targets and sanitizer runtime
  libuv1-dev                         # event loop
  libmsgpack-dev                     # msgpack payloads
  libhttp-parser-dev                 # HTTP requests and the WebSocket upgrade
  libssl-dev openssl                 # ECDH/AES for encrypted links, md5 signatures
  libsqlite3-dev                     # embedded store
  libjansson-dev                     # JSON payloads
  libcurl4-openssl-dev               # outgoing HTTP (P2Server POSTs to app servers)
  libcmocka-dev                      # unit tests
  libmosquitto-dev libnats-dev libhiredis-dev  # rtm-bench's peer targets (client libraries)
  curl ca-certificates               # used by scripts and tests
  sqlite3                            # tests read the store's file directly
  python3                            # scripts/check-layers.py
  chromium libnss3-tools             # browser tests (driven by playwright-core from npm;
                                     # certutil makes its store trust a test CA)
  "$@"                               # asked for by the caller
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js runs the independent integration-test client; keep an existing one.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
