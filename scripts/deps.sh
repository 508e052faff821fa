#!/usr/bin/env bash
# Installs what building and testing rtmd needs on Debian 12, from Debian's
# packages only, and any further Debian packages named as arguments (the
# brokers of bench/run.sh). Idempotent: installs nothing when everything is
# present.
#
# PostgreSQL and Redis are installed for the tests, which start their own
# servers in temporary directories (tests/integration/lib/pg.js, redis.js);
# the system services that the packages' postinst would start are kept from
# starting (policy-rc.d during the install) and stopped and disabled if
# they run anyway, so nothing listens on 5432 or 6379 afterwards.
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
  libunistring-dev                   # Unicode case folding of the sensitive-word filter
  libsystemd-dev                     # sd_notify for systemd's Type=notify units
  debhelper dpkg-dev fakeroot systemd  # the Debian package (dpkg-buildpackage) and its test
                                     # (package.debian: systemd-analyze verify of the unit)
  libmosquitto-dev libnats-dev libhiredis-dev  # rtm-bench's peer targets (client libraries);
                                     # hiredis is also the cluster's Redis client
  libpq-dev                          # the PostgreSQL store backend (cluster mode)
  postgresql redis-server            # real servers started by the tests (not as services)
  curl ca-certificates               # used by scripts and tests
  sqlite3                            # tests read the store's file directly
  python3                            # scripts/check-layers.py, scripts/man-settings.py
  scdoc                              # man pages (docs/man/*.scd to roff)
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
  # Keep invoke-rc.d from starting the services the packages install (an
  # existing policy, e.g. a container's, is left as it is).
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
    $sudo_cmd chmod 755 "$policy"
    own_policy=1
  fi
  status=0
  $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
  [ "$own_policy" -eq 0 ] || $sudo_cmd rm -f "$policy"
  [ "$status" -eq 0 ] || exit "$status"
fi

# The tests run their own PostgreSQL and Redis: no system service of them
# stays running or enabled (with systemd when it runs, else the init scripts).
for svc in postgresql redis-server; do
  [ -e "/etc/init.d/$svc" ] || [ -e "/lib/systemd/system/$svc.service" ] || continue
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
      echo "deps: stopping and disabling the $svc service (tests start their own)"
      $sudo_cmd systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  elif [ -x "/etc/init.d/$svc" ] && "/etc/init.d/$svc" status >/dev/null 2>&1; then
    echo "deps: stopping the $svc service (tests start their own)"
    $sudo_cmd "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
done
