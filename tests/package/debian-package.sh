#!/usr/bin/env bash
# package.debian: builds the Debian packages from a copy of this checkout
# (dpkg-buildpackage -us -uc -b, as an operator would), checks what each
# holds, installs them into a throw-away root (dpkg-deb -x) and runs them
# there: the packaged rtmd starts on the packaged /etc/rtmd/rtmd.conf and
# listens on 127.0.0.1 only, with the admin page off, the packaged rtmctl
# pings it through the packaged librtm; started again with an admin_token,
# it serves the packaged admin page (from the admin_dir the packaged
# configuration names) and its API; a program builds against librtm-dev
# with its pkg-config file, and systemd-analyze verifies the unit against
# that root (any warning fails). Needs debhelper, dpkg-dev, systemd and
# curl, and Node.js with npm when admin/dist is not built (scripts/deps.sh).
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/rtmd-package.XXXXXX)
rtmd_pid=""
cleanup() {
  [ -n "$rtmd_pid" ] && kill "$rtmd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "package.debian: FAIL: $*" >&2
  exit 1
}

# The tree as a fresh clone would have it, plus files not committed yet
# (never the build trees or node_modules: .gitignore).
mkdir -p "$work/src"
git -C "$src" ls-files --cached --others --exclude-standard -z |
  (cd "$src" && tar --null -T - -cf -) | tar -xf - -C "$work/src"
# The admin page as built here (scripts/test.sh builds it first), with its
# times: debian/rules builds it again with npm when it is missing or older
# than its sources.
if [ -f "$src/admin/dist/index.html" ]; then
  cp -a "$src/admin/dist" "$work/src/admin/"
  echo "admin page: admin/dist of the checkout"
fi

echo "== dpkg-buildpackage"
if ! (cd "$work/src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1); then
  tail -n 60 "$work/build.log" >&2
  fail "dpkg-buildpackage failed"
fi

deb() { ls "$work"/"$1"_*_*.deb 2>/dev/null | grep -v -- -dbgsym | head -n 1; }
expect_files() { # package, paths...
  local pkg=$1 file list
  shift
  file=$(deb "$pkg")
  [ -n "$file" ] || fail "no $pkg package was built"
  list=$(dpkg-deb -c "$file" | awk '{print $6}')
  for p in "$@"; do
    grep -qx "./$p" <<<"$list" || fail "$pkg lacks $p"
  done
}
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
expect_files rtmd usr/bin/rtmd usr/bin/rtmctl etc/rtmd/rtmd.conf lib/systemd/system/rtmd.service \
  usr/lib/sysusers.d/rtmd.conf usr/share/man/man8/rtmd.8.gz usr/share/man/man5/rtmd.conf.5.gz \
  usr/share/man/man1/rtmctl.1.gz usr/share/doc/rtmd/examples/rtmd.conf.example \
  usr/share/rtmd/admin/index.html usr/share/rtmd/admin/admin.js usr/share/rtmd/admin/admin.css \
  usr/share/rtmd/admin/uPlot.min.css
expect_files rtm-bench usr/bin/rtm-bench usr/share/man/man1/rtm-bench.1.gz
expect_files librtm0 "usr/lib/$triplet/librtm.so.0"
expect_files librtm-dev usr/include/rtm/client.h "usr/lib/$triplet/librtm.so" "usr/lib/$triplet/pkgconfig/rtm.pc"

echo "== maintainer scripts and conffiles"
ctl="$work/control"
dpkg-deb -e "$(deb rtmd)" "$ctl"
grep -qx /etc/rtmd/rtmd.conf "$ctl/conffiles" || fail "/etc/rtmd/rtmd.conf is not a conffile"
grep -q 'systemd-sysusers' "$ctl/postinst" || fail "postinst does not create the rtmd user"
grep -q 'dpkg-statoverride --update --add root rtmd 0640 /etc/rtmd/rtmd.conf' "$ctl/postinst" ||
  fail "postinst does not restrict the configuration to root and rtmd"
grep -q '^u rtmd ' <(dpkg-deb --fsys-tarfile "$(deb rtmd)" | tar -xOf - ./usr/lib/sysusers.d/rtmd.conf) ||
  fail "the sysusers file does not declare the rtmd user"

echo "== installed into a throw-away root"
root="$work/root"
mkdir -p "$root"
for p in rtmd rtm-bench librtm0 librtm-dev; do dpkg-deb -x "$(deb "$p")" "$root"; done
export LD_LIBRARY_PATH="$root/usr/lib/$triplet"
[ "$("$root/usr/bin/rtmd" --version)" = "rtmd $(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)" ] ||
  fail "rtmd --version does not match the package version"
# Whole outputs are read before grep: under pipefail a `cmd | grep -q`
# fails when grep stops reading early and cmd gets SIGPIPE.
libs=$(ldd "$root/usr/bin/rtmctl")
grep -q "librtm.so.0 => $root/" <<<"$libs" || fail "rtmctl does not load the packaged librtm"

# The admin page is off in the packaged configuration (no admin_token) and
# its admin_dir is where the package puts the page.
conf="$root/etc/rtmd/rtmd.conf"
grep -qx 'admin_token =' "$conf" || fail "the packaged configuration sets admin_token: $(grep admin_token "$conf")"
grep -qx 'admin_dir = /usr/share/rtmd/admin' "$conf" ||
  fail "the packaged configuration's admin_dir is not /usr/share/rtmd/admin: $(grep '^#*admin_dir' "$conf")"

# The packaged configuration, as the unit passes it; only the store and the
# ports are moved so that the test runs anywhere (and the admin page's
# directory into the throw-away root). Sets rtmd_pid and http_port.
start_rtmd() { # extra arguments...
  "$root/usr/bin/rtmd" --config "$conf" --data_dir="$work/data" --client_tcp_port=0 --client_ws_port=0 \
    --server_tcp_port=0 --http_port=0 --file_tcp_port=0 --file_ws_port=0 "$@" >"$work/rtmd.out" 2>"$work/rtmd.err" &
  rtmd_pid=$!
  for _ in $(seq 100); do
    grep -q ' ready$' "$work/rtmd.out" && break
    kill -0 "$rtmd_pid" 2>/dev/null || { cat "$work/rtmd.err" >&2; fail "the packaged rtmd exited on the packaged configuration $*"; }
    sleep 0.1
  done
  grep -q ' ready$' "$work/rtmd.out" || fail "the packaged rtmd did not get ready"
  http_port=$(sed -n 's/^listen http 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/rtmd.out")
  [ -n "$http_port" ] || fail "no HTTP listener on 127.0.0.1: $(cat "$work/rtmd.out")"
}
stop_rtmd() {
  kill "$rtmd_pid"
  wait "$rtmd_pid" || fail "the packaged rtmd did not stop cleanly"
  rtmd_pid=""
}
http_get() { # path [curl arguments...]: prints the status; the body in $work/body
  local path=$1
  shift
  curl -s -o "$work/body" -w '%{http_code}' "$@" "http://127.0.0.1:$http_port$path" || true
}

start_rtmd
listens=$(grep '^listen ' "$work/rtmd.out")
grep -qv ' 127\.0\.0\.1:' <<<"$listens" && fail "a listener is not on 127.0.0.1: $(cat "$work/rtmd.out")"
port=$(sed -n 's/^listen client_tcp 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/rtmd.out")
"$root/usr/bin/rtmctl" ping "127.0.0.1:$port" >/dev/null || fail "the packaged rtmctl cannot ping the packaged rtmd"
[ "$(http_get /admin/)" = 404 ] || fail "the admin page answers without an admin_token"
stop_rtmd

echo "== the admin page, turned on with a token"
admin_dir=$(sed -n 's/^admin_dir = //p' "$conf")
token=package-test-admin-token-0123456789
start_rtmd --admin_token="$token" --admin_dir="$root$admin_dir"
grep -q "admin page at /admin/ (.* files from $root$admin_dir)" "$work/rtmd.err" ||
  fail "rtmd did not load the packaged admin page: $(cat "$work/rtmd.err")"
status=$(http_get /admin/)
[ "$status" = 200 ] || fail "GET /admin/ answered $status"
cmp -s "$work/body" "$root$admin_dir/index.html" || fail "GET /admin/ is not the packaged index.html"
status=$(http_get /admin/admin.js)
[ "$status" = 200 ] || fail "GET /admin/admin.js answered $status"
cmp -s "$work/body" "$root$admin_dir/admin.js" || fail "GET /admin/admin.js is not the packaged admin.js"
grep -q 'u-legend' "$work/body" || fail "the packaged admin.js does not bundle uPlot"
status=$(http_get /admin/api/stats -H "Authorization: Bearer $token")
[ "$status" = 200 ] || fail "GET /admin/api/stats with the token answered $status"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$work/body" ||
  fail "GET /admin/api/stats did not answer JSON: $(head -c 300 "$work/body")"
status=$(http_get /admin/api/stats)
[ "$status" = 401 ] || fail "GET /admin/api/stats without the token answered $status"
stop_rtmd

echo "== librtm-dev: a program builds and runs against it"
cat >"$work/hello.c" <<'EOF'
#include <rtm/client.h>
#include <stdio.h>
int main(void)
{
    rtm_set_log_level("off");
    puts("linked");
    return 0;
}
EOF
export PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$root/usr/lib/$triplet/pkgconfig"
# shellcheck disable=SC2046
cc -o "$work/hello" "$work/hello.c" $(pkg-config --cflags --libs rtm) || fail "a program does not build against librtm-dev"
[ "$("$work/hello")" = linked ] || fail "a program built against librtm-dev does not run"
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH

echo "== systemd-analyze verify"
# The unit refers to the targets of systemd and to /bin/kill (ExecReload):
# the throw-away root gets copies of them, as an installed system has.
mkdir -p "$root/bin"
cp /bin/kill "$root/bin/"
cp -n /lib/systemd/system/*.target "$root/lib/systemd/system/"
out=$(systemd-analyze verify --man=no --root="$root" rtmd.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
grep -qx 'Type=notify' "$root/lib/systemd/system/rtmd.service" || fail "the unit is not Type=notify"

echo "package.debian: ok"
