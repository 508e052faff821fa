#!/usr/bin/env bash
# bench/run.sh — the one benchmark command: installs the peers (Mosquitto,
# NATS, Redis and their C client libraries) from Debian, builds rtmd and
# rtm-bench (build-bench-release, RelWithDebInfo), then for every target and
# scenario starts that one server on loopback from a fresh temporary
# directory, runs rtm-bench against it with --server-pid, stops it, and at
# the end writes BENCHMARKS.md (bench/report.py) from the collected JSON
# lines. One server at a time; every server is stopped on exit, failure or
# Ctrl-C (trap). All traffic stays on 127.0.0.0/8.
#
#   bench/run.sh            default sizes (a few minutes)
#   bench/run.sh --quick    small sizes, short windows (about two minutes)
#   bench/run.sh --nodes 2  rtmd as a cluster: PostgreSQL 15 (fsync on) and
#            Redis on free ports, p2p/fanout/rooms on 1 node (store postgres,
#            no Redis) and on N nodes; per-node, PostgreSQL and Redis CPU per
#            message into the "Cluster" section of the output file only
#   options: --targets "rtmd nats" --scenarios "fanout idle" --out FILE
#            --no-install --keep (keep the temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=0
INSTALL=1
KEEP=0
TARGETS="rtmd mosquitto nats redis"
SCENARIOS="fanout rooms idle churn p2p"
OUT="$ROOT/BENCHMARKS.md"
NODES=0
SCEN_GIVEN=0
ORIG_CMD="bench/run.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-install) INSTALL=0 ;;
    --keep) KEEP=1 ;;
    --targets) TARGETS="$2"; shift ;;
    --scenarios) SCENARIOS="$2"; SCEN_GIVEN=1; shift ;;
    --out) OUT="$2"; shift ;;
    --nodes) NODES="$2"; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

case "$NODES" in
  0) ;;
  [1-9]|1[0-6]) TARGETS=rtmd
     # the message scenarios only, by default all three
     if [ "$SCEN_GIVEN" = 0 ]; then SCENARIOS="p2p fanout rooms"; fi
     S2=""; for s in $SCENARIOS; do case "$s" in p2p|fanout|rooms) S2="$S2 $s" ;; esac; done
     SCENARIOS=$(echo $S2)
     [ -n "$SCENARIOS" ] || { echo "run.sh: --nodes runs p2p, fanout and rooms only" >&2; exit 2; } ;;
  *) echo "run.sh: --nodes wants a number of nodes, 1..16" >&2; exit 2 ;;
esac

# ---- sizes: the same message size for every target -------------------------
SIZE=64
if [ "$QUICK" = 1 ]; then
  WARMUP=0.5; DURATION=2; DRAIN=3
  FANOUT_RECEIVERS=1000; FANOUT_SENDERS=4
  ROOMS_USERS=1000; ROOMS_RATE=2
  IDLE_CONNS=2000
  CHURN_SLOTS=64
  P2P_PAIRS=50; P2P_FIXED_RATE=10000
else
  WARMUP=1; DURATION=5; DRAIN=5
  FANOUT_RECEIVERS=1000; FANOUT_SENDERS=4
  ROOMS_USERS=2000; ROOMS_RATE=2
  IDLE_CONNS=6000      # libmosquitto holds 3 descriptors per client: 6000 fit in 20000
  CHURN_SLOTS=64
  P2P_PAIRS=100; P2P_FIXED_RATE=50000
fi
# idle and churn spread client sockets over 8 source addresses; every run
# gets its own 127.B.K.2-9 (B random per invocation, K the run's number) so
# that no run binds ports still in TIME_WAIT from an earlier one.
SRC_B=$(( (RANDOM % 250) + 1 ))
SRC_K=0
sources() { local k=$((SRC_K % 250 + 1)); echo "127.$SRC_B.$k.2,127.$SRC_B.$k.3,127.$SRC_B.$k.4,127.$SRC_B.$k.5,127.$SRC_B.$k.6,127.$SRC_B.$k.7,127.$SRC_B.$k.8,127.$SRC_B.$k.9"; }

# ---- peers from Debian, through scripts/deps.sh ----------------------------
if [ "$INSTALL" = 1 ]; then
  scripts/deps.sh mosquitto nats-server redis-server
  # linux-perf is optional (profiles), never required for a run
  if ! command -v perf >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends linux-perf \
      >/dev/null 2>&1 || true
  fi
  # Debian starts the packaged daemons as services: they are not ours to
  # stop, and use other ports than ours.
fi

# ---- build -----------------------------------------------------------------
BUILD="$ROOT/build-bench-release"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target rtmd rtm-bench >/dev/null
BENCH="$BUILD/tools/rtm-bench/rtm-bench"
RTMD="$BUILD/rtmd"
for t in $TARGETS; do
  case "$t" in rtmd|mosquitto|nats|redis) ;; *) echo "run.sh: unknown target $t" >&2; exit 2 ;; esac
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/rtm-bench-run.XXXXXX)
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
mkdir -p "$WORK/settings"
SERVER_PID=""

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
cleanup() {
  stop_server
  # defined further down (cluster mode); absent when we exit before them
  if declare -F stop_pg > /dev/null; then stop_cluster_run; stop_pg; fi
  if [ "$KEEP" = 1 ]; then echo "run.sh: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits (bounded) until 127.0.0.1:$1 accepts connections.
wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

RTM_PID=4242001
RTM_SECRET="bench-secret-$(date +%s)"

# start_server TARGET DIR: starts it on free ports, sets SERVER_PID, PORT
# (and GATE_PORT for rtmd), records its settings once.
start_server() {
  local t=$1 dir=$2
  mkdir -p "$dir"
  PORT=$(free_port)
  case "$t" in
    rtmd)
      GATE_PORT=$(free_port)
      HTTP_PORT=$(free_port)
      local ws_port; ws_port=$(free_port)
      WS_PORT=$ws_port
      cat > "$dir/rtmd.conf" <<EOF
data_dir = $dir/data
listen_host = 127.0.0.1
client_tcp_port = $PORT
client_ws_port = $ws_port
server_tcp_port = $GATE_PORT
http_port = $HTTP_PORT
log_level = warn
retention_interval = 86400
max_connections_per_address = 0

[project]
pid = $RTM_PID
secret = "$RTM_SECRET"
user_msg_rate = 0
user_byte_rate = 0
project_msg_rate = 0
project_byte_rate = 0
history_days = 7
history_max_per_conversation = 0
EOF
      "$RTMD" --config "$dir/rtmd.conf" > "$dir/server.log" 2>&1 &
      SERVER_PID=$!
      for _ in $(seq 1 100); do grep -q " ready" "$dir/server.log" 2>/dev/null && break; sleep 0.1; done
      grep -q " ready" "$dir/server.log" || { cat "$dir/server.log" >&2; return 1; }
      [ -f "$WORK/settings/rtmd.txt" ] || {
        echo "$("$RTMD" --version 2>&1 | head -n1), embedded SQLite store in a fresh data directory (history stored: every room message and answered sendmsg is durable), configuration:"
        sed -e "s/^secret = .*/secret = \"...\"/" -e "s|$WORK|\$TMP|g" -e "s/_port = [0-9][0-9]*/_port = PORT/" "$dir/rtmd.conf"
      } > "$WORK/settings/rtmd.txt"
      ;;
    mosquitto)
      cat > "$dir/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
set_tcp_nodelay true
log_dest none
EOF
      mosquitto -c "$dir/mosquitto.conf" > "$dir/server.log" 2>&1 &
      SERVER_PID=$!
      wait_port "$PORT" || { cat "$dir/server.log" >&2; return 1; }
      [ -f "$WORK/settings/mosquitto.txt" ] || {
        echo "$(mosquitto -h 2>&1 | head -n1), configuration (QoS 0 publishes, MQTT v5, no-local subscriptions):"
        sed "s/listener [0-9]*/listener PORT/" "$dir/mosquitto.conf"
      } > "$WORK/settings/mosquitto.txt"
      ;;
    nats)
      nats-server -a 127.0.0.1 -p "$PORT" > "$dir/server.log" 2>&1 &
      SERVER_PID=$!
      wait_port "$PORT" || { cat "$dir/server.log" >&2; return 1; }
      [ -f "$WORK/settings/nats.txt" ] || {
        echo "$(nats-server --version 2>&1 | head -n1), defaults (no JetStream, max_payload 1 MB), command line:"
        echo "nats-server -a 127.0.0.1 -p PORT"
      } > "$WORK/settings/nats.txt"
      ;;
    redis)
      redis-server --bind 127.0.0.1 --port "$PORT" --protected-mode no --save '' --appendonly no \
        --maxclients 100000 --daemonize no --logfile "" --dir "$dir" > "$dir/server.log" 2>&1 &
      SERVER_PID=$!
      wait_port "$PORT" || { cat "$dir/server.log" >&2; return 1; }
      [ -f "$WORK/settings/redis.txt" ] || {
        echo "$(redis-server --version 2>&1 | head -n1), persistence off, command line:"
        echo "redis-server --bind 127.0.0.1 --port PORT --protected-mode no --save '' --appendonly no --maxclients 100000"
        echo "(protected-mode no: it refuses clients from 127.0.0.2 and up otherwise; the listener is bound to 127.0.0.1 only.)"
        echo "(Redis lowers maxclients to what the descriptor limit allows.)"
      } > "$WORK/settings/redis.txt"
      ;;
  esac
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

scenario_args() {
  local t=$1 s=$2
  case "$s" in
    fanout) echo "--connections $FANOUT_RECEIVERS --senders $FANOUT_SENDERS --window 64 --rate 0" ;;
    rooms)  echo "--connections $ROOMS_USERS --room-size 10 --rate $ROOMS_RATE" ;;
    idle)   echo "--connections $IDLE_CONNS --source-addrs $(sources)$([ "$t" = rtmd ] && echo " --ws")" ;;
    churn)  echo "--connections $CHURN_SLOTS --rate 0 --source-addrs $(sources)" ;;
    p2p)    echo "--connections $P2P_PAIRS --window 64 --rate 0" ;;
  esac
}

UID_BASE=10000000
# run_one TARGET SCENARIO LABEL EXTRA...: a fresh server, one rtm-bench run.
run_one() {
  local t=$1 s=$2 label=$3; shift 3
  local dir="$WORK/$t-$s-$label"
  SRC_K=$((SRC_K + 1))
  echo "== $t $s ($label)"
  if ! start_server "$t" "$dir"; then
    echo "run.sh: $t did not start" >&2
    stop_server
    return 0
  fi
  local args
  args="--target $t --scenario $s --size $SIZE --warmup $WARMUP --duration $DURATION --drain $DRAIN"
  # --cpu-pid: the server's CPU over the measured window alone, beside the
  # whole run's (set-up and drain included) that run.sh reads itself
  args="$args --server-pid $SERVER_PID --cpu-pid server:$SERVER_PID --json $RESULTS --label $label $(scenario_args "$t" "$s") $*"
  if [ "$t" = rtmd ]; then
    local port=$PORT
    case " $args " in *" --ws "*) port=$WS_PORT ;; esac
    UID_BASE=$((UID_BASE + 1000000))
    args="$args --port $port --gate-port $GATE_PORT --pid $RTM_PID --secret $RTM_SECRET"
    args="$args --uid-base $UID_BASE --rid-base $UID_BASE"
    # the stage histograms (docs/performance.md) over the window only
    mkdir -p "$WORK/stages"
    args="$args --metrics 127.0.0.1:$HTTP_PORT --metrics-out $WORK/stages/$s-$label.prom"
  else
    args="$args --port $PORT"
  fi
  local c0 t0 c1 t1 rc=0
  c0=$(cpu_ticks "$SERVER_PID")
  t0=$(date +%s.%N)
  # bounded: rtm-bench stops by itself; timeout is the last resort
  timeout -k 5 600 "$BENCH" $args > "$dir/bench.out" 2> "$dir/bench.err" || rc=$?
  t1=$(date +%s.%N)
  c1=$(cpu_ticks "$SERVER_PID")
  sed -n '1,12p' "$dir/bench.out"
  [ "$rc" = 0 ] || { echo "run.sh: rtm-bench exited with $rc"; tail -n 5 "$dir/bench.err"; }
  printf '{"target":"%s","scenario":"%s","label":"%s","rc":%d,"server_cpu_s":%.2f,"wall_s":%.2f,"command":"rtm-bench %s"}\n' \
    "$t" "$s" "$label" "$rc" "$(awk "BEGIN { print ($c1 - $c0) / $HZ }")" \
    "$(awk "BEGIN { print $t1 - $t0 }")" \
    "$(echo "$args" | sed -e "s/--secret [^ ]*/--secret .../" -e "s|$WORK|\$TMP|g")" >> "$WORK/runs.jsonl"
  stop_server
  # The next run starts on a quiet disk: without this, the kernel was still
  # writing the store of the run before (an open-loop p2p run leaves ~100 MB)
  # while the next rtmd waited for its fdatasyncs.
  [ "$KEEP" = 1 ] || rm -rf "$dir/data"
  sync
}

# ---- cluster mode (--nodes N) ----------------------------------------------
# One PostgreSQL for the whole invocation (a fresh database per run), a
# fresh Redis and fresh nodes per run. PostgreSQL runs as `postgres` when we
# are root (it refuses root), fsync and full_page_writes on (its defaults).
PG_DIR=""; PG_BIN=""; PG_PORT=""; PG_PMPID=""
NODE_PIDS=""; REDIS_PID=""
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_sql() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "$1"; }
start_pg() {
  local v
  for v in 15 $(ls /usr/lib/postgresql 2>/dev/null | sort -rn); do
    [ -x "/usr/lib/postgresql/$v/bin/initdb" ] && { PG_BIN=/usr/lib/postgresql/$v/bin; break; }
  done
  [ -n "$PG_BIN" ] || { echo "run.sh: PostgreSQL is not installed (scripts/deps.sh)" >&2; return 1; }
  PG_DIR="$WORK/pg"
  mkdir -p "$PG_DIR"
  chmod 711 "$WORK" # postgres must reach its directory inside
  [ "$(id -u)" -ne 0 ] || chown postgres: "$PG_DIR"
  chmod 700 "$PG_DIR"
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C > "$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  PG_PORT=$(free_port)
  as_pg "$PG_BIN/pg_ctl" start -D "$PG_DIR/data" -w -t 60 -l "$PG_DIR/log" \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DIR -c max_connections=200" \
    > /dev/null || { cat "$PG_DIR/log" >&2; return 1; }
  PG_PMPID=$(head -n1 "$PG_DIR/data/postmaster.pid")
  echo "$("$PG_BIN/postgres" --version), fsync=$(pg_sql "SHOW fsync"), full_page_writes=$(pg_sql "SHOW full_page_writes"), synchronous_commit=$(pg_sql "SHOW synchronous_commit"), otherwise initdb's defaults; one server for all runs, a fresh database per run" > "$WORK/settings/postgres.txt"
}
stop_pg() {
  [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DIR/data" -m fast -w -t 30 > /dev/null 2>&1 \
    || as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DIR/data" -m immediate -w -t 30 > /dev/null 2>&1 || true
}
stop_pid() {
  local p=$1
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" 2>/dev/null || true
}
stop_cluster_run() {
  local p
  for p in $NODE_PIDS; do stop_pid "$p"; done
  NODE_PIDS=""
  [ -z "$REDIS_PID" ] || stop_pid "$REDIS_PID"
  REDIS_PID=""
}
CLUSTER_K=0
# run_cluster SCENARIO N: a fresh database, Redis when N >= 2, N nodes, one
# rtm-bench run over them with the CPU of every node, PostgreSQL and Redis.
run_cluster() {
  local s=$1 n=$2 k pid spec="" redis_url="" args label="nodes=$2"
  CLUSTER_K=$((CLUSTER_K + 1))
  local dir="$WORK/cluster-$s-$n"
  mkdir -p "$dir"
  echo "== rtmd $s on $n node(s), store postgres$([ "$n" -ge 2 ] && echo ", Redis")"
  local db="bench_$CLUSTER_K"
  pg_sql "CREATE DATABASE $db" || return 0
  if [ "$n" -ge 2 ]; then
    local rport; rport=$(free_port)
    redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --daemonize no --logfile "" \
      --dir "$dir" > "$dir/redis.log" 2>&1 &
    REDIS_PID=$!
    SERVER_PID=$REDIS_PID
    if ! wait_port "$rport"; then
      SERVER_PID=""
      echo "run.sh: redis-server did not start" >&2; cat "$dir/redis.log" >&2; stop_cluster_run; return 0
    fi
    SERVER_PID=""
    redis_url="redis_url = redis://127.0.0.1:$rport"
    [ -f "$WORK/settings/redis-cluster.txt" ] || echo "$(redis-server --version | head -n1), persistence off (--save '' --appendonly no), a fresh one per run" > "$WORK/settings/redis-cluster.txt"
  fi
  for k in $(seq 1 "$n"); do
    local nd="$dir/node$k" p g w
    mkdir -p "$nd"
    p=$(free_port); g=$(free_port); w=$(free_port)
    cat > "$nd/rtmd.conf" <<EOF
data_dir = $nd/data
listen_host = 127.0.0.1
client_tcp_port = $p
client_ws_port = $w
server_tcp_port = $g
http_port = -1
log_level = warn
retention_interval = 86400
max_connections_per_address = 0
store = postgres
store_url = postgresql://postgres@127.0.0.1:$PG_PORT/$db
$redis_url

[project]
pid = $RTM_PID
secret = "$RTM_SECRET"
user_msg_rate = 0
user_byte_rate = 0
project_msg_rate = 0
project_byte_rate = 0
history_days = 7
history_max_per_conversation = 0
EOF
    "$RTMD" --config "$nd/rtmd.conf" > "$nd/server.log" 2>&1 &
    NODE_PIDS="$NODE_PIDS $!"
    spec="$spec${spec:+,}127.0.0.1:$p:$g:$!"
  done
  k=0
  for pid in $NODE_PIDS; do
    k=$((k + 1))
    for _ in $(seq 1 150); do grep -q " ready" "$dir/node$k/server.log" 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    grep -q " ready" "$dir/node$k/server.log" || { echo "run.sh: node $k did not start" >&2; cat "$dir/node$k/server.log" >&2; stop_cluster_run; return 0; }
  done
  # the settings shown are those of the largest cluster (with Redis)
  [ -f "$WORK/settings/rtmd-cluster.txt" ] && [ "$n" -lt "$NODES" ] || {
    echo "$("$RTMD" --version 2>&1 | head -n1), every node with the same project and the shared store (and Redis with 2 nodes or more), a data directory each; configuration of a node:"
    sed -e "s/^secret = .*/secret = \"...\"/" -e "s|$WORK|\$TMP|g" -e "s/_port = [0-9][0-9]*/_port = PORT/" \
      -e "s|127.0.0.1:[0-9]*/|127.0.0.1:PORT/|" -e "s|redis://127.0.0.1:[0-9]*|redis://127.0.0.1:PORT|" "$dir/node1/rtmd.conf"
  } > "$WORK/settings/rtmd-cluster.txt"
  UID_BASE=$((UID_BASE + 1000000))
  args="--target rtmd --scenario $s --size $SIZE --warmup $WARMUP --duration $DURATION --drain $DRAIN"
  args="$args --json $RESULTS --label $label $(scenario_args rtmd "$s") --nodes $spec"
  args="$args --cpu-pid postgres:$PG_PMPID${REDIS_PID:+ --cpu-pid redis:$REDIS_PID}"
  args="$args --pid $RTM_PID --secret $RTM_SECRET --uid-base $UID_BASE --rid-base $UID_BASE"
  local rc=0
  timeout -k 5 600 "$BENCH" $args > "$dir/bench.out" 2> "$dir/bench.err" || rc=$?
  sed -n '1,20p' "$dir/bench.out"
  [ "$rc" = 0 ] || { echo "run.sh: rtm-bench exited with $rc"; tail -n 5 "$dir/bench.err"; }
  printf '{"target":"rtmd","scenario":"%s","label":"%s","nodes":%d,"rc":%d,"load":"%s","command":"rtm-bench %s"}\n' \
    "$s" "$label" "$n" "$rc" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$(echo "$args" | sed -e "s/--secret [^ ]*/--secret .../" -e "s|$WORK|\$TMP|g")" >> "$WORK/runs.jsonl"
  stop_cluster_run
  pg_sql "DROP DATABASE $db" > /dev/null 2>&1 || true
}

if [ "$NODES" -gt 0 ]; then
  START=$(date +%s)
  start_pg
  LOAD0=$(uptime | sed 's/^ *//')
  for s in $SCENARIOS; do
    run_cluster "$s" 1
    [ "$NODES" -lt 2 ] || run_cluster "$s" "$NODES"
  done
  END=$(date +%s)
  /usr/bin/python3 "$ROOT/bench/report.py" --cluster --results "$RESULTS" --runs "$WORK/runs.jsonl" \
    --settings "$WORK/settings" --command "$ORIG_CMD" --elapsed $((END - START)) \
    --quick "$QUICK" --load "at the start: $LOAD0; at the end: $(uptime | sed 's/^ *//')" --out "$OUT"
  echo "run.sh: wrote the Cluster section of $OUT ($((END - START)) s of runs)"
  exit 0
fi

START=$(date +%s)
for s in $SCENARIOS; do
  for t in $TARGETS; do
    if [ "$s" = p2p ]; then
      [ "$t" = rtmd ] || continue
      run_one rtmd p2p open
      # the same at half the open-loop answer rate, for latency
      rate=$(/usr/bin/python3 - "$RESULTS" <<'EOF'
import json, sys
best = 0
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("target") == "rtmd" and r.get("scenario") == "p2p" and r.get("label") == "open":
        best = r.get("acked_per_s") or 0
print(int(best / 2))
EOF
)
      if [ "${rate:-0}" -gt 0 ]; then run_one rtmd p2p half-rate --rate "$rate"; fi
      # and at a fixed rate (the same load on every machine and in every run,
      # where the half rate moves with the open loop), when the open loop
      # reached it
      if [ "$((${rate:-0} * 2))" -ge "$P2P_FIXED_RATE" ]; then run_one rtmd p2p fixed-rate --rate "$P2P_FIXED_RATE"; fi
      continue
    fi
    run_one "$t" "$s" main
  done
done
END=$(date +%s)

/usr/bin/python3 "$ROOT/bench/report.py" --results "$RESULTS" --runs "$WORK/runs.jsonl" \
  --settings "$WORK/settings" --stages "$WORK/stages" --command "$ORIG_CMD" --elapsed $((END - START)) \
  --quick "$QUICK" --out "$OUT"
echo "run.sh: wrote $OUT ($((END - START)) s of runs)"
