#!/usr/bin/python3
"""bench/report.py — writes BENCHMARKS.md from one run of bench/run.sh: the
machine, the command, each server's settings, and per scenario a table with
rtmd and every peer side by side and the ratio rtmd/peer. Input: the JSON
lines rtm-bench appended (--results), the lines run.sh wrote per run (server
CPU, exit code, the exact rtm-bench command: --runs), and the settings files
(--settings DIR). Standard library only (Debian's /usr/bin/python3).

With --cluster (bench/run.sh --nodes N) it writes only the "Cluster"
section, between the CLUSTER_BEGIN/CLUSTER_END markers of --out (appended
when absent): per scenario, 1 node against N nodes, the CPU each node,
PostgreSQL and Redis spent in the measured window per answered message and
per delivery. A run without --cluster keeps the section of the file it
replaces."""

import argparse
import json
import os
import platform
import re
import subprocess
import time

PEERS = ["mosquitto", "nats", "redis"]
TARGETS = ["rtmd"] + PEERS


def load_jsonl(path):
    out = []
    if not path or not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def machine():
    info = {}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            k, _, v = line.partition(":")
            info[k.strip()] = v.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
    except OSError:
        pass
    debian = ""
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        pass
    rows = [
        ("CPU", info.get("Model name", platform.processor() or "unknown")),
        ("CPUs (lscpu)", "%s (%s thread(s) per core, %s core(s) per socket)" % (
            info.get("CPU(s)", os.cpu_count()), info.get("Thread(s) per core", "?"),
            info.get("Core(s) per socket", "?"))),
        ("Memory", "%.1f GiB" % (mem_kb / 1048576.0)),
        ("Kernel", platform.release()),
        ("OS", "Debian %s" % debian if debian else platform.platform()),
    ]
    if info.get("Hypervisor vendor"):
        rows.append(("Virtualisation", info["Hypervisor vendor"]))
    return rows


def fmt_num(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float) and v != int(v) and abs(v) < 100:
        s = "%.2f" % v if abs(v) < 10 else "%.1f" % v
    else:
        s = "{:,}".format(int(round(v)))
    return s + unit


def ratio(a, b):
    if a is None or b is None or not b:
        return "–"
    return "%.2fx" % (a / b)


# (label, function(result, run) -> number or None, lower_is_better)
def g(*keys):
    def f(r, run):
        v = r
        for k in keys:
            if not isinstance(v, dict) or k not in v or v[k] is None:
                return None
            v = v[k]
        return v
    return f


def lat(name, pct):
    """A latency percentile, or nothing when no sample fell in the window
    (open loop overload: every publish left before the window opened)."""
    def f(r, run):
        h = r.get(name) or {}
        return h.get(pct) if h.get("count") else None
    return f


def per_conn(r, run):
    return r.get("server_rss_bytes_per_conn")


def rss_mb(r, run):
    v = r.get("server_rss_kb_after")
    return v / 1024.0 if v is not None and v >= 0 else None


def cpu(r, run):
    return run.get("server_cpu_s") if run else None


def window_cpu(r, run):
    """The server's CPU over the measured window alone (rtm-bench --cpu-pid)."""
    return (r.get("cpu_s") or {}).get("server")


def completeness(r, run):
    e = r.get("expected") or 0
    return 100.0 * r.get("delivered", 0) / e if e else None


# Rows of the publish/deliver scenarios (fanout and rooms alike).
DELIVERY_ROWS = [
    ("delivered messages/s", g("delivered_per_s"), False),
    ("published messages/s (acked)", g("acked_per_s"), False),
    ("delivery latency p50 (us)", lat("latency_us", "p50"), True),
    ("delivery latency p99 (us)", lat("latency_us", "p99"), True),
    ("delivery latency p99.9 (us)", lat("latency_us", "p999"), True),
    ("delivered of expected (%)", completeness, False),
    ("server RSS after (MiB)", rss_mb, True),
    ("server CPU in the measured window (s)", window_cpu, True),
    ("server CPU during the run (s)", cpu, True),
]

METRICS = {
    "fanout": DELIVERY_ROWS,
    "rooms": DELIVERY_ROWS,
    "idle": [
        ("connections held", g("connected"), False),
        ("server memory per connection (bytes)", per_conn, True),
        ("server RSS with all connected (MiB)", rss_mb, True),
    ],
    "churn": [
        ("logins/s (connect + login + close)", g("logins_per_s"), False),
        ("login latency p50 (us)", lat("login_latency_us", "p50"), True),
        ("login latency p99 (us)", lat("login_latency_us", "p99"), True),
        ("login errors", g("login_errors"), True),
        ("server CPU in the measured window (s)", window_cpu, True),
        ("server CPU during the run (s)", cpu, True),
    ],
}

P2P_METRICS = [
    ("answered sendmsg/s", g("acked_per_s")),
    ("delivered pushes/s", g("delivered_per_s")),
    ("answer latency p50 (us)", lat("ack_latency_us", "p50")),
    ("answer latency p99 (us)", lat("ack_latency_us", "p99")),
    ("answer latency p99.9 (us)", lat("ack_latency_us", "p999")),
    ("delivery latency p50 (us)", lat("latency_us", "p50")),
    ("delivery latency p99 (us)", lat("latency_us", "p99")),
    ("server CPU in the measured window (s)", window_cpu),
    ("server CPU during the run (s)", cpu),
]

NOTES = {
    "fanout": "One topic (rtmd: a room, with history stored); {senders} publishers, "
              "{connections} receivers, open loop with {window} publishes in flight per publisher "
              "(peers without a publish answer count a publish as acked once written to the socket). "
              "Latency under saturation is mostly queueing: the throughput row is the figure that counts here.",
    "rooms": "{connections} users in rooms of {room_size}, every user publishing {rate} message(s)/s to its own room.",
    "idle": "{connections} connected, authenticated (rtmd: logged in over WebSocket) idle clients spread over "
            "{source_addrs} source addresses; memory is the server's VmRSS growth divided by the connections.",
    "churn": "{connections} concurrent slots, each connecting, logging in (rtmd: auth with a token; peers: "
             "CONNECT/handshake) and closing, again and again.",
}


CLUSTER_BEGIN = "<!-- cluster: generated by bench/run.sh --nodes N (bench/report.py --cluster) -->"
CLUSTER_END = "<!-- cluster: end -->"


# Sections written by hand (figures of runs bench/run.sh does not make,
# with their commands) between these markers are kept as they are.
KEPT_BEGIN = "<!-- kept: written by hand, kept by bench/report.py -->"
KEPT_END = "<!-- kept: end -->"


def existing_section(path, begin, end):
    """The text of path between begin and end, markers included, or ''."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    a, b = text.find(begin), text.find(end)
    return text[a:b + len(end)] if a >= 0 and b > a else ""


def existing_cluster(path):
    """The Cluster section of path, markers included, or ''."""
    return existing_section(path, CLUSTER_BEGIN, CLUSTER_END)


def stage_series(path):
    """rtm-bench's --metrics-out file: {stage: {"kind", "count", "sum",
    "buckets": [(le, cumulative count)]}} for rtmd_stage_seconds (kind
    "s") and rtmd_stage_count (kind "n"), or {}."""
    stages = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return stages
    for line in lines:
        m = re.match(r'rtmd_stage_(seconds|count)_(bucket|sum|count)\{stage="([^"]+)"(?:,le="([^"]+)")?\} (\S+)$', line)
        if not m:
            continue
        kind, part, stage, le, v = m.groups()
        st = stages.setdefault(stage, {"kind": "s" if kind == "seconds" else "n", "count": 0, "sum": 0.0,
                                       "buckets": []})
        if part == "bucket":
            st["buckets"].append((float("inf") if le == "+Inf" else float(le), float(v)))
        else:
            st[part] = float(v)
    return stages


def bucket_quantile(q, buckets):
    """The q-quantile of cumulative buckets, interpolated linearly inside its
    bucket as Prometheus' histogram_quantile does; None when empty."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lo_bound, lo_count = 0.0, 0.0
    for le, cum in buckets:
        if cum >= rank:
            if le == float("inf"):
                return lo_bound
            if cum == lo_count:
                return le
            return lo_bound + (le - lo_bound) * (rank - lo_count) / (cum - lo_count)
        lo_bound, lo_count = le, cum
    return lo_bound


def stage_value(v, kind):
    if v is None:
        return "–"
    if kind == "n":
        return "%.0f" % v if v >= 10 else "%.1f" % v
    if v >= 1e-3:
        return "%.1f ms" % (v * 1e3)
    return "%.0f µs" % (v * 1e6) if v >= 1e-5 else "%.1f µs" % (v * 1e6)


def stage_rows(path):
    """Rows (stage, count, mean, p50, p90, p99) of the stages with samples in
    the window, in the order of the file."""
    rows = []
    for stage, st in stage_series(path).items():
        if st["count"] <= 0:
            continue
        mean = st["sum"] / st["count"]
        qs = [bucket_quantile(q, st["buckets"]) for q in (0.5, 0.9, 0.99)]
        rows.append((stage, "%d" % st["count"], stage_value(mean, st["kind"]))
                    + tuple(stage_value(v, st["kind"]) for v in qs))
    return rows


def stages_section(stages_dir):
    """Where rtmd's time went in the rooms run and the p2p runs at a set rate."""
    L = []
    for name, title in (("rooms-main", "rooms"), ("p2p-half-rate", "p2p at half rate"),
                        ("p2p-fixed-rate", "p2p at the fixed rate")):
        rows = stage_rows(os.path.join(stages_dir, name + ".prom")) if stages_dir else []
        if not rows:
            continue
        if not L:
            L += ["## Where rtmd's time goes (stage histograms)", "",
                  "rtmd's per-stage histograms (`rtmd_stage_seconds` and `rtmd_stage_count`; what each stage "
                  "spans is in docs/performance.md, \"Where a message's time goes\") over the measured window "
                  "of the scenario above: rtm-bench reads `/metrics` at the window's start and end (`--metrics`) "
                  "and the table is the difference. Quantiles are interpolated inside the exported buckets "
                  "(5 µs to 10 s in 1-2.5-5 steps; counts in powers of two), as Prometheus' "
                  "`histogram_quantile` does. A write is any store write, a message one sent message; "
                  "\"reported\" is after the fdatasync that covers the write.", ""]
        L += ["### " + title, "", "| stage | count | mean | p50 | p90 | p99 |",
              "|---|---:|---:|---:|---:|---:|"]
        L += ["| %s |" % " | ".join(r) for r in rows]
        L.append("")
    return L


def us(cpu, n):
    if cpu is None or not n:
        return "–"
    v = cpu * 1e6 / n
    return "%.2f" % v if v < 10 else "%.1f" % v


def cluster_section(a, results, runs):
    """Markdown lines of the Cluster section."""
    L = [CLUSTER_BEGIN, "", "## Cluster (store on PostgreSQL, issue 13)", ""]
    L.append("rtmd with `store = postgres` on one node (no Redis) and as a cluster of nodes sharing one "
             "PostgreSQL and one Redis, all on this one machine, driven by one rtm-bench with `--nodes`: "
             "client i talks to node i mod N, so in `p2p` with two nodes every sender is on node 0 and "
             "every receiver on node 1 (each message crosses nodes: node 0 stores it and sends one record "
             "through Redis, node 1 pushes it), and in `fanout` and `rooms` senders and receivers are on "
             "both. CPU is what each process (PostgreSQL: the postmaster and all its children, the "
             "backends, WAL writer and checkpointer included) spent during the measured window, read "
             "from /proc by rtm-bench; per message = divided by the answered messages of the window, "
             "per delivery = by the pushes received. On two cores a cluster cannot be faster than one "
             "node: what counts here is the cost per message on each node and in each shared server "
             "(docs/cluster.md, \"Cost model\"). Generated %s." % time.strftime("%Y-%m-%d %H:%M %Z"))
    L.append("")
    L.append("```sh")
    L.append(a.command)
    L.append("```")
    L.append("")
    L.append("%s; the runs took %d s. **The machine was shared with other work during these runs** "
             "(`uptime` %s): the figures are indicative and will be re-run with the same command."
             % ("`--quick`: small sizes and short windows" if a.quick == "1" else "Default sizes",
                a.elapsed, a.load or "not recorded"))
    L.append("")
    for name in ("rtmd-cluster", "postgres", "redis-cluster"):
        path = os.path.join(a.settings or "", name + ".txt")
        if a.settings and os.path.exists(path):
            with open(path) as f:
                lines = f.read().rstrip().splitlines()
            L.append("**%s**: %s" % (name, lines[0] if lines else ""))
            L.append("")
            if len(lines) > 1:
                L.append("```")
                L.extend(lines[1:])
                L.append("```")
                L.append("")
    for scen in ("p2p", "fanout", "rooms"):
        cols = []
        for run in runs:
            if run.get("scenario") != scen or "nodes" not in run:
                continue
            res = [r for r in results if r.get("scenario") == scen and r.get("label") == run.get("label")]
            cols.append((run, res[-1] if res else None))
        if not cols:
            continue
        L.append("### %s" % scen)
        L.append("")
        nmax = max(c[0]["nodes"] for c in cols)
        head = "| |" + "".join(" %d node%s |" % (c[0]["nodes"], "s" if c[0]["nodes"] > 1 else "") for c in cols)
        L.append(head)
        L.append("|---|" + "---:|" * len(cols))

        def row(label, fn):
            cells = []
            for run, r in cols:
                try:
                    v = fn(run, r) if r else None
                except (KeyError, TypeError, ZeroDivisionError, IndexError):
                    v = None
                cells.append(v if isinstance(v, str) else fmt_num(v))
            L.append("| %s |%s" % (label, "".join(" %s |" % c for c in cells)))

        def win(r, k):
            return (r.get("window") or {}).get(k) or 0

        def cpu_of(r, k):
            n = (r.get("nodes") or [])
            return n[k].get("cpu_s") if k < len(n) else None

        row("clients", lambda run, r: r.get("clients"))
        row("answered messages/s", lambda run, r: r.get("acked_per_s"))
        row("delivered messages/s", lambda run, r: r.get("delivered_per_s"))
        row("delivery latency p50 / p99 (us)", lambda run, r: "%s / %s" % (
            fmt_num(r["latency_us"]["p50"]), fmt_num(r["latency_us"]["p99"])) if r["latency_us"]["count"] else None)
        row("delivered of expected (%)", lambda run, r: completeness(r, run))
        for k in range(nmax):
            row("node %d: clients (senders)" % k, lambda run, r, k=k: "%d (%d)" % (
                r["nodes"][k]["clients"], r["nodes"][k]["senders"]) if k < len(r.get("nodes") or []) else None)
            row("node %d: CPU s (%% of a core)" % k, lambda run, r, k=k: "%.2f (%.0f%%)" % (
                cpu_of(r, k), 100 * cpu_of(r, k) / r["measured_s"]) if cpu_of(r, k) is not None else None)
            row("node %d: CPU us per message / per delivery" % k, lambda run, r, k=k: "%s / %s" % (
                us(cpu_of(r, k), win(r, "acked")), us(cpu_of(r, k), win(r, "delivered")))
                if cpu_of(r, k) is not None else None)
        for srv, label in (("postgres", "PostgreSQL"), ("redis", "Redis")):
            row("%s: CPU s (%% of a core)" % label, lambda run, r, srv=srv: "%.2f (%.0f%%)" % (
                r["cpu_s"][srv], 100 * r["cpu_s"][srv] / r["measured_s"])
                if (r.get("cpu_s") or {}).get(srv) is not None else None)
            row("%s: CPU us per message / per delivery" % label, lambda run, r, srv=srv: "%s / %s" % (
                us(r["cpu_s"][srv], win(r, "acked")), us(r["cpu_s"][srv], win(r, "delivered")))
                if (r.get("cpu_s") or {}).get(srv) is not None else None)

        def total(run, r):
            t = sum(n["cpu_s"] for n in r["nodes"] if n.get("cpu_s") is not None)
            t += sum(v for v in (r.get("cpu_s") or {}).values() if v is not None)
            return "%s / %s" % (us(t, win(r, "acked")), us(t, win(r, "delivered")))
        row("all servers: CPU us per message / per delivery", total)
        L.append("")
        notes = []
        for run, r in cols:
            if run.get("rc"):
                notes.append("%d node(s): rtm-bench exited with %s" % (run["nodes"], run["rc"]))
            if r and (r.get("errors") or r.get("disconnects") or r.get("connect_errors") or r.get("ack_errors")):
                notes.append("%d node(s): %s connect errors, %s answer errors, %s disconnects, %s errors" % (
                    run["nodes"], r.get("connect_errors"), r.get("ack_errors"), r.get("disconnects"), r.get("errors")))
            if r and not r.get("drain_complete"):
                notes.append("%d node(s): not every expected delivery arrived before the drain deadline" % run["nodes"])
            if not r:
                notes.append("%d node(s): no result" % run["nodes"])
        if notes:
            L.append("Notes: " + "; ".join(notes) + ".")
            L.append("")
        L.append("<details><summary>commands (load average at the end of each run: %s)</summary>"
                 % ", ".join("%d node(s) %s" % (run["nodes"], run.get("load", "?")) for run, _ in cols))
        L.append("")
        L.append("```")
        for run, _ in cols:
            L.append(run.get("command", ""))
        L.append("```")
        L.append("</details>")
        L.append("")
    L.append(CLUSTER_END)
    return L


def write_cluster(a, results, runs):
    section = "\n".join(cluster_section(a, results, runs))
    try:
        with open(a.out) as f:
            text = f.read()
    except OSError:
        text = "# Benchmarks\n"
    old = existing_cluster(a.out)
    if old:
        text = text.replace(old, section)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    with open(a.out, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--runs")
    ap.add_argument("--settings")
    ap.add_argument("--stages", help="directory of rtm-bench's --metrics-out files, SCENARIO-LABEL.prom")
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--quick", default="0")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cluster", action="store_true")
    ap.add_argument("--load", default="")
    a = ap.parse_args()

    results = load_jsonl(a.results)
    runs = load_jsonl(a.runs)
    if a.cluster:
        write_cluster(a, results, runs)
        return
    keep_cluster = existing_cluster(a.out)
    keep_hand = existing_section(a.out, KEPT_BEGIN, KEPT_END)

    def find(target, scenario, label="main"):
        res = [r for r in results if r.get("target") == target and r.get("scenario") == scenario
               and r.get("label") == label]
        run = [r for r in runs if r.get("target") == target and r.get("scenario") == scenario
               and r.get("label") == label]
        return (res[-1] if res else None), (run[-1] if run else None)

    L = []
    L.append("# Benchmarks")
    L.append("")
    L.append("rtmd and the brokers people would otherwise pick — Mosquitto (MQTT), NATS and Redis "
             "pub/sub — driven by the same load generator (`rtm-bench`, one process, one libuv loop, "
             "each peer through its own C client library from Debian) on the same machine, in the same "
             "run, with the same message size, one server at a time. Ratios within one run are what "
             "count; absolute figures vary between machines. Generated by `bench/report.py` on %s."
             % time.strftime("%Y-%m-%d %H:%M %Z"))
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    for k, v in machine():
        L.append("| %s | %s |" % (k, v))
    L.append("")
    L.append("Server and load generator share these CPUs: every figure is what one machine does with "
             "both on it.")
    L.append("")
    L.append("## Command")
    L.append("")
    L.append("```sh")
    L.append(a.command)
    L.append("```")
    L.append("")
    L.append("%s; the runs took %d s. Each rtm-bench invocation is listed under its scenario."
             % ("`--quick`: small sizes and short windows" if a.quick == "1" else "Default sizes",
                a.elapsed))
    L.append("")
    L.append("## Server settings")
    L.append("")
    L.append("Every server listens on 127.0.0.1 only, starts fresh for each scenario from an empty "
             "temporary directory, and is stopped before the next one starts. Equal footing: no peer "
             "persists anything (they have no history), rtmd stores every message.")
    L.append("")
    for t in TARGETS:
        path = os.path.join(a.settings or "", t + ".txt")
        if a.settings and os.path.exists(path):
            with open(path) as f:
                lines = f.read().rstrip().splitlines()
            L.append("**%s**: %s" % (t, lines[0] if lines else ""))
            L.append("")
            if len(lines) > 1:
                L.append("```")
                L.extend(lines[1:])
                L.append("```")
                L.append("")
    L.append("Client side (rtm-bench): rtmd over its own lean FPNN client; Mosquitto through libmosquitto "
             "(MQTT v5, QoS 0, no-local, each socket in the loop with mosquitto_loop_read/write); NATS "
             "through libnats with its libuv adapter (NoEcho, SendAsap; libnats hands every received "
             "message to its delivery thread, which passes it back to the loop); Redis through hiredis' "
             "async API and libuv adapter (SUBSCRIBE and PUBLISH on separate connections). Redis has no "
             "way to skip the publisher's own subscription, so in `rooms` it also delivers each message "
             "back to its sender (counted as echoes, not as deliveries). Publisher sockets of the peers "
             "without publish answers (Mosquitto, NATS) have a 64 KiB send buffer so that \"sent\" is a "
             "bounded backlog.")
    L.append("")

    for scen in ["fanout", "rooms", "idle", "churn"]:
        rr = {t: find(t, scen) for t in TARGETS}
        if not any(v[0] for v in rr.values()):
            continue
        L.append("## %s" % scen)
        L.append("")
        any_r = next(v[0] for v in rr.values() if v[0])
        p = dict(any_r.get("params", {}))
        p.setdefault("connections", "?")
        try:
            L.append(NOTES[scen].format(**p))
        except (KeyError, IndexError):
            pass
        L.append("")
        head = "| | rtmd |"
        sep = "|---|---:|"
        present = [t for t in PEERS if rr[t][0]]
        for t in present:
            head += " %s | rtmd/%s |" % (t, t)
            sep += "---:|---:|"
        L.append(head)
        L.append(sep)
        for name, fn, lower in METRICS[scen]:
            rv = fn(*rr["rtmd"]) if rr["rtmd"][0] else None
            row = "| %s%s | %s |" % (name, " ↓" if lower else "", fmt_num(rv))
            for t in present:
                pv = fn(*rr[t])
                row += " %s | %s |" % (fmt_num(pv), ratio(rv, pv))
            L.append(row)
        L.append("")
        L.append("↓: lower is better (a ratio below 1 favours rtmd); otherwise higher is better.")
        L.append("")
        issues = []
        for t in TARGETS:
            r, run = rr[t]
            if run and run.get("rc"):
                issues.append("%s: rtm-bench exited with %s" % (t, run["rc"]))
            if r:
                if r.get("setup_timed_out"):
                    issues.append("%s: setup timed out (%s of %s clients connected)"
                                  % (t, r.get("connected"), r.get("clients")))
                if scen in ("fanout", "rooms") and not r.get("drain_complete"):
                    issues.append("%s: not every expected delivery arrived before the drain deadline" % t)
                if r.get("connect_errors") or r.get("disconnects") or r.get("errors"):
                    issues.append("%s: %s connect errors, %s disconnects, %s errors" % (
                        t, r.get("connect_errors"), r.get("disconnects"), r.get("errors")))
            elif run is not None or t == "rtmd":
                issues.append("%s: no result" % t)
        if issues:
            L.append("Notes: " + "; ".join(issues) + ".")
            L.append("")
        L.append("<details><summary>commands</summary>")
        L.append("")
        L.append("```")
        for t in TARGETS:
            if rr[t][1]:
                L.append(rr[t][1].get("command", ""))
        L.append("```")
        L.append("</details>")
        L.append("")

    po, pr = find("rtmd", "p2p", "open")
    ho, hr = find("rtmd", "p2p", "half-rate")
    fo, fr = find("rtmd", "p2p", "fixed-rate")
    if po or ho:
        L.append("## p2p (rtmd only)")
        L.append("")
        L.append("`sendmsg` quest/answer between pairs of users, history on: an answer means the message "
                 "is durable. Open loop (%s in flight per sender), then for latency at half the open-loop "
                 "answer rate and at a fixed rate that does not move with the open loop's figure. "
                 "The peers have no counterpart." % ((po or ho).get("params", {}).get("window")))
        L.append("")
        fixed = "%s/s" % fmt_num(fo.get("params", {}).get("rate")) if fo else "fixed rate"
        L.append("| | open loop | half rate | %s |" % fixed)
        L.append("|---|---:|---:|---:|")
        for name, fn in P2P_METRICS:
            L.append("| %s | %s |" % (name, " | ".join(fmt_num(fn(r, run)) if r else "–"
                                                      for r, run in ((po, pr), (ho, hr), (fo, fr)))))
        L.append("")
        L.append("<details><summary>commands</summary>")
        L.append("")
        L.append("```")
        for run in (pr, hr, fr):
            if run:
                L.append(run.get("command", ""))
        L.append("```")
        L.append("</details>")
        L.append("")

    L += stages_section(a.stages)
    if keep_hand:
        L += [keep_hand, ""]
    if keep_cluster:
        L.append(keep_cluster)
    with open(a.out, "w") as f:
        f.write("\n".join(L).rstrip() + "\n")


if __name__ == "__main__":
    main()
