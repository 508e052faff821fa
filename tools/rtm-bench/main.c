/* main.c — rtm-bench's scenario engine: command-line options, the phases of
 * a run (prepare, connect, subscribe, warm-up, measured window, drain,
 * close), the five scenarios (p2p, fanout, rooms, idle, churn) driven
 * through the target interface of bench.h, statistics (counters snapshot at
 * the window edges, log-linear latency histograms), the server's resident
 * memory from /proc, and the report: a human summary on stdout and one JSON
 * line appended to --json FILE. With --nodes (rtmd cluster) clients are
 * spread round robin over the nodes and the report has per-node figures:
 * clients, answers and deliveries in the window, and the CPU seconds each
 * node (and each --cpu-pid process tree: PostgreSQL, Redis) spent in it.
 *
 * Everything is bounded: each phase has a deadline, a run ends by itself
 * after warmup + duration (+ drain, + close), and only 127.0.0.0/8
 * addresses are accepted. */
#include "bench.h"
#include "stages.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- latency histogram: exact below 256 ns, then 128 sub-buckets per power
 * of two (relative error < 0.8 %) ---- */

#define H_BUCKETS (256 + 56 * 128)

typedef struct histo {
    uint64_t n[H_BUCKETS];
    uint64_t count, max;
} histo;

static unsigned h_index(uint64_t v)
{
    if (v < 256)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return 256u + (e - 8u) * 128u + (unsigned)((v >> (e - 7u)) & 127u);
}

static uint64_t h_value(unsigned i)
{
    if (i < 256)
        return i;
    unsigned k = i - 256, e = k / 128 + 8;
    uint64_t lo = (uint64_t)(128 + k % 128) << (e - 7);
    return lo + ((1ull << (e - 7)) >> 1);
}

static void h_record(histo *h, uint64_t v)
{
    h->n[h_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

static uint64_t h_percentile(const histo *h, double p)
{
    if (!h->count)
        return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->count);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= want) {
            uint64_t v = h_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---- state ---- */

enum { S_NEW, S_CONNECTING, S_CONNECTED, S_SUBSCRIBING, S_READY, S_CLOSING, S_CLOSED, S_FAILED };
enum { SC_P2P, SC_FANOUT, SC_ROOMS, SC_IDLE, SC_CHURN };
enum { PH_PREPARE, PH_CONNECT, PH_SUBSCRIBE, PH_RUN, PH_DRAIN, PH_CLOSE, PH_DONE };

typedef struct bclient {
    uint64_t t_connect;  /* churn: when the login started */
    uint32_t topic;      /* p2p: the client it sends to (and, with --nodes, waits to see online) */
    uint32_t seq;
    uint16_t inflight;
    uint8_t state;
    uint8_t sender;
    uint8_t subscriber;
    uint8_t subscribed;
} bclient;

typedef struct counters {
    uint64_t sent, send_fail, acked, ack_errors, delivered, echoes, expected, errors, logins, login_errors,
        disconnects;
} counters;

#define MAX_CODES 8
static struct {
    int code;
    uint64_t n;
} err_codes[MAX_CODES];

static bench_opts O;
static const bench_target *T;
static uv_loop_t *loop;
static int scen;
static int nclients;
static bclient *C;
static uint32_t *topic_members;
static uint32_t ntopics;
static int *senders;
static int nsenders;
static counters K, K0, K1;
static histo *lat, *ack_lat;
static int phase = PH_PREPARE;
static int next_conn, conns_inflight, conns_done, connected_n, connect_err_n;
static int next_sub, subs_inflight, subs_done, subscribed_n, subscribe_err_n, subs_needed;
static int closing_left;
static uint64_t t_run, t_win0, t_win1, t_end;
static int in_window;
static uint64_t issued;        /* publishes due so far in rate mode */
static int rr;                 /* round-robin position over senders */
static int in_publish, in_churn_kick;
static long rss_before_kb = -1, rss_after_kb = -1;
static int setup_timed_out, drain_complete, prepare_failed;
static uv_timer_t tick_timer, phase_timer;
static uint8_t *payload;
static struct sockaddr_in *src_addrs;
static stages_snap stages0, stages1; /* --metrics at the window's start and end */
static int stages_failed;
static const char **src_strs;
static int exit_code;

/* --nodes and --cpu-pid: window counts per node, CPU ticks at the window
 * edges per node and per named process tree. */
#define MAX_CPU_PIDS 8
static bench_node nodes[BENCH_MAX_NODES];
static struct {
    uint64_t clients, senders, acked, delivered, acked0, delivered0, acked1, delivered1;
    long long cpu0, cpu1; /* ns, -1 = unreadable */
    long rss_kb;
} node_k[BENCH_MAX_NODES];
static struct {
    char name[32];
    int pid;
    long long cpu0, cpu1;
} cpu_pids[MAX_CPU_PIDS];
static int ncpu_pids;

static void finish_run(void);
static void start_close(void);

uint64_t bench_now_ns(void) { return uv_hrtime(); }

int bench_node_of(int client)
{
    return O.nnodes > 1 && client >= 0 ? client % O.nnodes : 0;
}

/* CPU time of pid in ns: the sum of its threads' run time from
 * /proc/PID/task/TID/schedstat (exact, where utime + stime count 10 ms
 * ticks); -1 when unreadable. */
static long long sched_ns(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long long sum = 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end, p2[96];
        long tid = strtol(e->d_name, &end, 10);
        if (*end || tid <= 0)
            continue;
        snprintf(p2, sizeof p2, "/proc/%d/task/%ld/schedstat", pid, tid);
        FILE *f = fopen(p2, "r");
        unsigned long long ns;
        if (!f)
            continue;
        if (fscanf(f, "%llu", &ns) == 1) {
            sum += (long long)ns;
            n++;
        }
        fclose(f);
    }
    closedir(d);
    return n ? sum : -1;
}

/* CPU ns of pid (with tree: and of all its descendants alive now:
 * PostgreSQL's backends are children of the postmaster); from schedstat,
 * else from the utime + stime ticks of /proc/PID/stat. -1 when pid is
 * gone. Reads /proc only. */
static long ns_per_tick;
static long long proc_ns(int pid, long long ticks)
{
    long long ns = sched_ns(pid);
    return ns >= 0 ? ns : ticks * ns_per_tick;
}

static int read_stat(int pid, int *ppid, long long *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    unsigned long long ut, st;
    int pp;
    if (!p || sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &pp, &ut, &st) != 3)
        return -1;
    *ppid = pp;
    *ticks = (long long)(ut + st);
    return 0;
}

static long long cpu_ns(int pid, int tree)
{
    int pp;
    long long t;
    if (!ns_per_tick)
        ns_per_tick = 1000000000L / sysconf(_SC_CLK_TCK);
    if (pid <= 0 || read_stat(pid, &pp, &t) != 0)
        return -1;
    t = proc_ns(pid, t);
    if (!tree)
        return t;
    /* descendants: every process's parent from /proc, then the sum of
     * those whose parent chain (at most 8 up) reaches pid */
    DIR *d = opendir("/proc");
    if (!d)
        return t;
    enum { MAXP = 65536 };
    static int pids[MAXP], ppids[MAXP];
    static long long ticks[MAXP];
    int np = 0;
    struct dirent *e;
    while ((e = readdir(d)) && np < MAXP) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (*end || v <= 0 || v == pid)
            continue;
        if (read_stat((int)v, &ppids[np], &ticks[np]) == 0)
            pids[np++] = (int)v;
    }
    closedir(d);
    for (int i = 0; i < np; i++) {
        int cur = ppids[i];
        for (int depth = 0; depth < 8 && cur > 1; depth++) {
            if (cur == pid) {
                t += proc_ns(pids[i], ticks[i]);
                break;
            }
            int k;
            for (k = 0; k < np && pids[k] != cur; k++)
                ;
            if (k == np)
                break;
            cur = ppids[k];
        }
    }
    return t;
}

static void sample_cpu(int end)
{
    for (int k = 0; k < O.nnodes; k++) {
        long long t = cpu_ns(nodes[k].pid, 0);
        if (end)
            node_k[k].cpu1 = t;
        else
            node_k[k].cpu0 = t;
    }
    for (int k = 0; k < ncpu_pids; k++) {
        long long t = cpu_ns(cpu_pids[k].pid, 1);
        if (end)
            cpu_pids[k].cpu1 = t;
        else
            cpu_pids[k].cpu0 = t;
    }
}

void bench_log(int level, const char *fmt, ...)
{
    if (O.verbose < level)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rtm-bench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const struct sockaddr *bench_source_addr(int client)
{
    if (!O.nsource_addrs || client < 0)
        return NULL;
    return (const struct sockaddr *)&src_addrs[client % O.nsource_addrs];
}

const char *bench_source_addr_str(int client)
{
    if (!O.nsource_addrs || client < 0)
        return NULL;
    return src_strs[client % O.nsource_addrs];
}

const char *bench_topic_name(uint32_t topic)
{
    static char buf[32];
    snprintf(buf, sizeof buf, "bench.%u", topic);
    return buf;
}

static void note_code(int code)
{
    for (int i = 0; i < MAX_CODES; i++) {
        if (err_codes[i].n && err_codes[i].code == code) {
            err_codes[i].n++;
            return;
        }
        if (!err_codes[i].n) {
            err_codes[i].code = code;
            err_codes[i].n = 1;
            return;
        }
    }
}

void bench_error(int client, int code, const char *what)
{
    K.errors++;
    note_code(code);
    bench_log(1, "error client=%d code=%d %s", client, code, what ? what : "");
}

static long read_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* ---- roles per scenario ---- */

static void plan(void)
{
    switch (scen) {
    case SC_P2P: /* pairs: 2k sends to 2k + 1 */
        nclients = 2 * O.connections;
        break;
    case SC_FANOUT: /* 0..senders-1 publish, the rest receive, one topic */
        nclients = O.senders + O.connections;
        break;
    default: /* rooms, idle, churn */
        nclients = O.connections;
    }
    C = calloc((size_t)nclients, sizeof *C);
    senders = calloc((size_t)nclients + 1, sizeof *senders);
    ntopics = scen == SC_ROOMS ? (uint32_t)((O.connections + O.room_size - 1) / O.room_size) : 1;
    topic_members = calloc(ntopics, sizeof *topic_members);
    if (!C || !senders || !topic_members) {
        fprintf(stderr, "rtm-bench: out of memory\n");
        exit(2);
    }
    for (int i = 0; i < nclients; i++) {
        bclient *b = &C[i];
        switch (scen) {
        case SC_P2P:
            b->sender = (i % 2) == 0;
            /* across nodes a sender first waits to see its receiver online */
            b->subscriber = b->sender && O.nnodes > 1;
            b->topic = (uint32_t)(i + 1);
            break;
        case SC_FANOUT:
            b->sender = i < O.senders;
            b->subscriber = !b->sender || (T->caps & BENCH_CAP_JOIN_TO_PUBLISH);
            b->topic = 0;
            break;
        case SC_ROOMS:
            b->sender = b->subscriber = 1;
            b->topic = (uint32_t)(i / O.room_size);
            break;
        default:
            break;
        }
        if (b->sender)
            senders[nsenders++] = i;
        if (O.nnodes) {
            node_k[bench_node_of(i)].clients++;
            node_k[bench_node_of(i)].senders += b->sender;
        }
    }
}

/* Receivers of one message from sender i. */
static uint64_t fanout_of(int i)
{
    if (scen == SC_P2P)
        return C[C[i].topic].state == S_READY ? 1 : 0;
    uint64_t m = topic_members[C[i].topic];
    return C[i].subscribed && m ? m - 1 : m;
}

/* ---- sending ---- */

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int send_one(int i)
{
    bclient *b = &C[i];
    uint64_t now = uv_hrtime();
    put_le(payload, now, 8);
    put_le(payload + 8, (uint64_t)i, 4);
    put_le(payload + 12, ++b->seq, 4);
    in_publish = 1;
    b->inflight++;
    K.sent++;
    int r = scen == SC_P2P ? T->send_p2p(i, (int)b->topic, payload, (size_t)O.size, now)
                           : T->publish(i, b->topic, payload, (size_t)O.size, now);
    in_publish = 0;
    if (r != 0) {
        b->inflight--;
        K.sent--;
        K.send_fail++;
        return -1;
    }
    return 0;
}

static int can_send(int i)
{
    return C[i].state == S_READY && C[i].inflight < O.window;
}

static void pump_senders(void)
{
    if (phase != PH_RUN || !nsenders)
        return;
    if (O.rate <= 0) {
        for (int k = 0; k < nsenders; k++) {
            int i = senders[k];
            while (can_send(i) && phase == PH_RUN)
                if (send_one(i) != 0)
                    break;
        }
        return;
    }
    double total_rate = scen == SC_ROOMS ? O.rate * nsenders : O.rate;
    double elapsed = (double)(uv_hrtime() - t_run) / 1e9;
    uint64_t due = (uint64_t)(total_rate * elapsed);
    uint64_t cap = (uint64_t)(total_rate * 0.05) + (uint64_t)nsenders; /* no burst beyond 50 ms of backlog */
    if (due > issued + cap)
        issued = due - cap;
    int misses = 0;
    while (issued < due && misses < nsenders) {
        int i = senders[rr];
        rr = (rr + 1) % nsenders;
        if (!can_send(i) || send_one(i) != 0) {
            misses++;
            continue;
        }
        misses = 0;
        issued++;
    }
    if (issued < due)
        issued = due; /* senders at their window: the rate is not reached, not owed */
}

/* ---- churn ---- */

static void churn_kick(void)
{
    if (phase != PH_RUN || in_churn_kick)
        return;
    in_churn_kick = 1;
    double elapsed = (double)(uv_hrtime() - t_run) / 1e9;
    uint64_t due = O.rate > 0 ? (uint64_t)(O.rate * elapsed) + 1 : UINT64_MAX;
    for (int i = 0; i < nclients && issued < due && phase == PH_RUN; i++) {
        bclient *b = &C[i];
        if (b->state != S_NEW && b->state != S_CLOSED && b->state != S_FAILED)
            continue;
        b->state = S_CONNECTING;
        b->t_connect = uv_hrtime();
        issued++;
        if (T->connect(i) != 0) {
            b->state = S_FAILED;
            K.login_errors++;
        }
    }
    in_churn_kick = 0;
}

/* ---- target callbacks ---- */

void bench_prepared(int status)
{
    if (phase != PH_PREPARE)
        return;
    if (status != 0) {
        fprintf(stderr, "rtm-bench: prepare failed (%d)\n", status);
        prepare_failed = 1;
        exit_code = 1;
        phase = PH_DONE;
        uv_stop(loop);
        return;
    }
    extern void start_connect(void);
    start_connect();
}

static void pump_connects(void);
static void start_subscribe(void);
static void pump_subscribes(void);
static void start_run(void);

void bench_connected(int i, int status)
{
    if (i < 0 || i >= nclients)
        return;
    bclient *b = &C[i];
    if (scen == SC_CHURN) {
        uint64_t now = uv_hrtime();
        if (status == 0) {
            K.logins++;
            if (in_window)
                h_record(lat, now - b->t_connect);
            b->state = S_CLOSING;
            T->close(i);
        } else {
            K.login_errors++;
            note_code(status);
            b->state = S_FAILED;
        }
        return;
    }
    if (b->state != S_CONNECTING)
        return;
    conns_inflight--;
    conns_done++;
    if (status == 0) {
        b->state = S_CONNECTED;
        connected_n++;
    } else {
        b->state = S_FAILED;
        connect_err_n++;
        note_code(status);
        bench_log(1, "connect client=%d failed: %d", i, status);
    }
    if (phase == PH_CONNECT)
        pump_connects();
}

void bench_subscribed(int i, int status)
{
    if (i < 0 || i >= nclients || C[i].state != S_SUBSCRIBING)
        return;
    subs_inflight--;
    subs_done++;
    if (status == 0) {
        C[i].state = S_READY;
        C[i].subscribed = 1;
        if (scen != SC_P2P) /* a p2p "topic" is a client, not a topic */
            topic_members[C[i].topic]++;
        subscribed_n++;
    } else {
        C[i].state = S_FAILED;
        subscribe_err_n++;
        note_code(status);
        bench_log(1, "subscribe client=%d failed: %d", i, status);
    }
    if (phase == PH_SUBSCRIBE)
        pump_subscribes();
}

void bench_acked(int i, uint64_t cookie, int status)
{
    if (i < 0 || i >= nclients)
        return;
    bclient *b = &C[i];
    if (b->inflight)
        b->inflight--;
    uint64_t now = uv_hrtime();
    if (status == 0) {
        K.acked++;
        if (O.nnodes)
            node_k[bench_node_of(i)].acked++;
        K.expected += fanout_of(i);
        if (in_window && cookie >= t_win0)
            h_record(ack_lat, now - cookie);
    } else {
        K.ack_errors++;
        note_code(status);
    }
    if (!in_publish && O.rate <= 0 && phase == PH_RUN && can_send(i))
        send_one(i);
}

void bench_delivered(int i, const void *data, size_t len)
{
    if (i < 0 || i >= nclients)
        return;
    if (len < BENCH_HDR_BYTES) {
        bench_error(i, -1, "short payload");
        return;
    }
    const uint8_t *p = data;
    uint64_t ts = get_le(p, 8);
    int from = (int)get_le(p + 8, 4);
    if (from == i) {
        K.echoes++;
        return;
    }
    K.delivered++;
    if (O.nnodes)
        node_k[bench_node_of(i)].delivered++;
    /* One clock read per 16 deliveries: at millions of deliveries a second
     * the clock was a tenth of the generator's time, and 16 deliveries take
     * a few microseconds, far below the latencies measured. */
    static uint64_t now;
    static unsigned since_clock;
    if (since_clock++ % 16 == 0 || now < ts)
        now = uv_hrtime();
    if (in_window && ts >= t_win0 && now >= ts)
        h_record(lat, now - ts);
}

void bench_closed(int i, int status)
{
    if (i < 0 || i >= nclients)
        return;
    bclient *b = &C[i];
    if (scen == SC_CHURN && b->state == S_CLOSING && phase == PH_RUN) {
        b->state = S_CLOSED;
        churn_kick();
        return;
    }
    if (b->state != S_CLOSING) {
        K.disconnects++;
        note_code(status);
        bench_log(1, "client %d disconnected: %d", i, status);
    }
    int was_closing = b->state == S_CLOSING;
    b->state = S_CLOSED;
    b->inflight = 0;
    if (phase == PH_CLOSE && was_closing && --closing_left == 0)
        finish_run();
}

/* ---- phases ---- */

static void on_setup_timeout(uv_timer_t *t)
{
    setup_timed_out = 1;
    if (phase == PH_PREPARE) {
        fprintf(stderr, "rtm-bench: prepare did not finish in time\n");
        prepare_failed = 1;
        exit_code = 1;
        phase = PH_DONE;
        uv_stop(loop);
        return;
    }
    fprintf(stderr, "rtm-bench: setup did not finish in time (%d/%d connected, %d/%d subscribed); running with what is ready\n",
            connected_n, nclients, subscribed_n, subs_needed);
    if (phase == PH_CONNECT || phase == PH_SUBSCRIBE)
        start_run();
}

static double setup_seconds(void)
{
    return 30.0 + nclients / 500.0;
}

void start_connect(void);
void start_connect(void)
{
    if (O.server_pid > 0)
        rss_before_kb = read_rss_kb(O.server_pid);
    if (scen == SC_CHURN) {
        start_run();
        return;
    }
    phase = PH_CONNECT;
    uv_timer_start(&phase_timer, on_setup_timeout, (uint64_t)(setup_seconds() * 1000), 0);
    pump_connects();
}

static void pump_connects(void)
{
    while (phase == PH_CONNECT && next_conn < nclients && conns_inflight < O.connect_concurrency) {
        int i = next_conn++;
        C[i].state = S_CONNECTING;
        conns_inflight++;
        if (T->connect(i) != 0) {
            conns_inflight--;
            conns_done++;
            connect_err_n++;
            C[i].state = S_FAILED;
        }
    }
    if (phase == PH_CONNECT && conns_done == nclients) {
        bench_log(1, "connected %d/%d", connected_n, nclients);
        start_subscribe();
    }
}

static void start_subscribe(void)
{
    phase = PH_SUBSCRIBE;
    subs_needed = 0;
    for (int i = 0; i < nclients; i++) {
        if (C[i].state != S_CONNECTED)
            continue;
        if (C[i].subscriber)
            subs_needed++;
        else
            C[i].state = S_READY;
    }
    pump_subscribes();
}

static void pump_subscribes(void)
{
    while (phase == PH_SUBSCRIBE && next_sub < nclients && subs_inflight < O.connect_concurrency) {
        int i = next_sub++;
        if (C[i].state != S_CONNECTED || !C[i].subscriber)
            continue;
        C[i].state = S_SUBSCRIBING;
        subs_inflight++;
        int rc = scen == SC_P2P ? T->await_online(i, (int)C[i].topic) : T->subscribe(i, C[i].topic);
        if (rc != 0) {
            subs_inflight--;
            subs_done++;
            subscribe_err_n++;
            C[i].state = S_FAILED;
        }
    }
    if (phase == PH_SUBSCRIBE && subs_done == subs_needed && next_sub >= nclients) {
        bench_log(1, "subscribed %d/%d", subscribed_n, subs_needed);
        start_run();
    }
}

static void on_tick(uv_timer_t *t)
{
    if (scen == SC_CHURN)
        churn_kick();
    else
        pump_senders();
}

static void on_drain_check(uv_timer_t *t);

/* --metrics: rtmd's stage series now (a blocking read, at the window's
 * edges only). */
static void scrape_stages(stages_snap *snap)
{
    char err[256];
    if (!O.metrics_addr || stages_failed)
        return;
    if (stages_scrape(O.metrics_addr, snap, err, sizeof err) != 0) {
        fprintf(stderr, "rtm-bench: --metrics: %s\n", err);
        stages_failed = 1;
    }
}

static void on_window_end(uv_timer_t *t)
{
    t_win1 = uv_hrtime();
    K1 = K;
    in_window = 0;
    sample_cpu(1);
    for (int k = 0; k < O.nnodes; k++) {
        node_k[k].acked1 = node_k[k].acked;
        node_k[k].delivered1 = node_k[k].delivered;
        node_k[k].rss_kb = nodes[k].pid > 0 ? read_rss_kb(nodes[k].pid) : -1;
    }
    if (O.server_pid > 0)
        rss_after_kb = read_rss_kb(O.server_pid);
    scrape_stages(&stages1);
    phase = PH_DRAIN;
    uv_timer_stop(&tick_timer);
    t_end = t_win1 + (uint64_t)(O.drain * 1e9);
    uv_timer_start(&phase_timer, on_drain_check, 0, 10);
}

static void on_warmup_end(uv_timer_t *t)
{
    t_win0 = uv_hrtime();
    K0 = K;
    in_window = 1;
    for (int k = 0; k < O.nnodes; k++) {
        node_k[k].acked0 = node_k[k].acked;
        node_k[k].delivered0 = node_k[k].delivered;
    }
    sample_cpu(0);
    scrape_stages(&stages0);
    uv_timer_start(&phase_timer, on_window_end, (uint64_t)(O.duration * 1000), 0);
}

static void start_run(void)
{
    phase = PH_RUN;
    uv_timer_stop(&phase_timer);
    for (int i = 0; i < nclients; i++)
        if (C[i].state == S_CONNECTED)
            C[i].state = S_READY;
    bench_log(1, "run: %d ready", connected_n);
    t_run = uv_hrtime();
    issued = 0;
    if (O.warmup > 0)
        uv_timer_start(&phase_timer, on_warmup_end, (uint64_t)(O.warmup * 1000), 0);
    else
        on_warmup_end(&phase_timer);
    if (scen != SC_IDLE) {
        uv_timer_start(&tick_timer, on_tick, 1, 1);
        on_tick(&tick_timer);
    }
}

static uint64_t inflight_total(void)
{
    uint64_t n = 0;
    for (int k = 0; k < nsenders; k++)
        n += C[senders[k]].inflight;
    return n;
}

static void on_drain_check(uv_timer_t *t)
{
    int churn_busy = 0;
    if (scen == SC_CHURN)
        for (int i = 0; i < nclients; i++)
            churn_busy |= C[i].state == S_CONNECTING || C[i].state == S_CLOSING;
    int done = inflight_total() == 0 && K.delivered >= K.expected && !churn_busy;
    if (done || uv_hrtime() >= t_end) {
        drain_complete = done;
        start_close();
    }
}

static void on_close_timeout(uv_timer_t *t)
{
    fprintf(stderr, "rtm-bench: %d connections did not close in time\n", closing_left);
    finish_run();
}

static void start_close(void)
{
    phase = PH_CLOSE;
    uv_timer_stop(&phase_timer);
    closing_left = 0;
    for (int i = 0; i < nclients; i++) {
        bclient *b = &C[i];
        if (b->state == S_READY || b->state == S_CONNECTED || b->state == S_SUBSCRIBING) {
            b->state = S_CLOSING;
            closing_left++;
        }
    }
    if (!closing_left) {
        finish_run();
        return;
    }
    uv_timer_start(&phase_timer, on_close_timeout, 5000, 0);
    int left = closing_left;
    for (int i = 0; i < nclients && left > 0; i++)
        if (C[i].state == S_CLOSING) {
            left--;
            T->close(i);
        }
}

static void finish_run(void)
{
    if (phase == PH_DONE)
        return;
    phase = PH_DONE;
    uv_timer_stop(&phase_timer);
    uv_timer_stop(&tick_timer);
    uv_stop(loop);
}

/* ---- report ---- */

static const char *scen_names[] = {"p2p", "fanout", "rooms", "idle", "churn"};

static double per_s(uint64_t n, double secs)
{
    return secs > 0 ? (double)n / secs : 0;
}

static void json_histo(FILE *f, const char *name, const histo *h)
{
    fprintf(f, "\"%s\":{\"count\":%llu,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}", name,
            (unsigned long long)h->count, h_percentile(h, 50) / 1e3, h_percentile(h, 99) / 1e3,
            h_percentile(h, 99.9) / 1e3, h->max / 1e3);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void report(void)
{
    double secs = t_win1 > t_win0 ? (double)(t_win1 - t_win0) / 1e9 : 0;
    uint64_t w_sent = K1.sent - K0.sent, w_acked = K1.acked - K0.acked, w_deliv = K1.delivered - K0.delivered,
             w_logins = K1.logins - K0.logins;
    long client_rss = read_rss_kb((int)getpid());
    long ready = scen == SC_CHURN ? 0 : connected_n;
    double per_conn = -1;
    if (scen == SC_IDLE && rss_before_kb >= 0 && rss_after_kb >= 0 && ready > 0)
        per_conn = (double)(rss_after_kb - rss_before_kb) * 1024.0 / (double)ready;
    const char *transport = O.ws ? "ws" : "tcp";

    printf("rtm-bench %s %s (%s) clients=%d size=%d window=%d rate=%g measured=%.2fs\n", O.target, O.scenario,
           transport, nclients, O.size, O.window, O.rate, secs);
    if (scen != SC_CHURN)
        printf("  connected %d/%d (errors %d), subscribed %d/%d (errors %d)%s\n", connected_n, nclients,
               connect_err_n, subscribed_n, subs_needed, subscribe_err_n, setup_timed_out ? " SETUP TIMED OUT" : "");
    if (scen == SC_P2P || scen == SC_FANOUT || scen == SC_ROOMS) {
        printf("  sent %llu, acked %llu (errors %llu, send failures %llu), delivered %llu of %llu expected%s\n",
               (unsigned long long)K.sent, (unsigned long long)K.acked, (unsigned long long)K.ack_errors,
               (unsigned long long)K.send_fail, (unsigned long long)K.delivered, (unsigned long long)K.expected,
               drain_complete ? "" : " (drain incomplete)");
        printf("  window: sent %.0f/s, acked %.0f/s, delivered %.0f/s\n", per_s(w_sent, secs), per_s(w_acked, secs),
               per_s(w_deliv, secs));
        printf("  delivery latency us: p50 %.1f p99 %.1f p99.9 %.1f max %.1f (n=%llu)\n", h_percentile(lat, 50) / 1e3,
               h_percentile(lat, 99) / 1e3, h_percentile(lat, 99.9) / 1e3, lat->max / 1e3,
               (unsigned long long)lat->count);
        if (T->caps & BENCH_CAP_PUB_ACK)
            printf("  answer latency us:   p50 %.1f p99 %.1f p99.9 %.1f max %.1f (n=%llu)\n",
                   h_percentile(ack_lat, 50) / 1e3, h_percentile(ack_lat, 99) / 1e3,
                   h_percentile(ack_lat, 99.9) / 1e3, ack_lat->max / 1e3, (unsigned long long)ack_lat->count);
    }
    if (scen == SC_CHURN)
        printf("  logins %llu (errors %llu), window %.0f logins/s, login latency us p50 %.1f p99 %.1f\n",
               (unsigned long long)K.logins, (unsigned long long)K.login_errors, per_s(w_logins, secs),
               h_percentile(lat, 50) / 1e3, h_percentile(lat, 99) / 1e3);
    printf("  disconnects %llu, errors %llu, echoes %llu\n", (unsigned long long)K.disconnects,
           (unsigned long long)K.errors, (unsigned long long)K.echoes);
    if (rss_after_kb >= 0)
        printf("  server RSS %ld kB before, %ld kB after%s", rss_before_kb, rss_after_kb, per_conn >= 0 ? "" : "\n");
    if (per_conn >= 0)
        printf(", %.0f bytes per connection\n", per_conn);
    printf("  client RSS %ld kB\n", client_rss);
    const double hz = 1e9; /* cpu0/cpu1 are ns */
    for (int k = 0; k < O.nnodes; k++) {
        double cpu = node_k[k].cpu0 >= 0 && node_k[k].cpu1 >= 0 ? (double)(node_k[k].cpu1 - node_k[k].cpu0) / hz : -1;
        printf("  node %d %s:%d: clients %llu (senders %llu), window: acked %llu, delivered %llu", k, nodes[k].host,
               nodes[k].port, (unsigned long long)node_k[k].clients, (unsigned long long)node_k[k].senders,
               (unsigned long long)(node_k[k].acked1 - node_k[k].acked0),
               (unsigned long long)(node_k[k].delivered1 - node_k[k].delivered0));
        if (cpu >= 0)
            printf(", CPU %.2f s", cpu);
        printf("\n");
    }
    for (int k = 0; k < ncpu_pids; k++)
        if (cpu_pids[k].cpu0 >= 0 && cpu_pids[k].cpu1 >= 0)
            printf("  %s (pid %d and children): window CPU %.2f s\n", cpu_pids[k].name, cpu_pids[k].pid,
                   (double)(cpu_pids[k].cpu1 - cpu_pids[k].cpu0) / hz);
    for (int k = 0; k < MAX_CODES && err_codes[k].n; k++)
        printf("  error code %d: %llu\n", err_codes[k].code, (unsigned long long)err_codes[k].n);

    if (!O.json_path)
        return;
    FILE *f = fopen(O.json_path, "a");
    if (!f) {
        fprintf(stderr, "rtm-bench: cannot open %s: %s\n", O.json_path, strerror(errno));
        exit_code = 1;
        return;
    }
    fprintf(f, "{\"time\":%lld,\"target\":", (long long)time(NULL));
    json_str(f, O.target);
    fprintf(f, ",\"scenario\":\"%s\",\"label\":", scen_names[scen]);
    json_str(f, O.label ? O.label : "");
    fprintf(f, ",\"transport\":\"%s\",\"params\":{\"connections\":%d,\"senders\":%d,\"room_size\":%d,"
               "\"size\":%d,\"window\":%d,\"rate\":%g,\"warmup\":%g,\"duration\":%g,\"source_addrs\":%d},",
            transport, O.connections, scen == SC_FANOUT ? O.senders : nsenders, O.room_size, O.size, O.window,
            O.rate, O.warmup, O.duration, O.nsource_addrs);
    fprintf(f, "\"clients\":%d,\"connected\":%d,\"connect_errors\":%d,\"subscribed\":%d,\"subscribe_errors\":%d,"
               "\"setup_timed_out\":%s,\"drain_complete\":%s,",
            nclients, scen == SC_CHURN ? 0 : connected_n, connect_err_n, subscribed_n, subscribe_err_n,
            setup_timed_out ? "true" : "false", drain_complete ? "true" : "false");
    fprintf(f, "\"sent\":%llu,\"send_failures\":%llu,\"acked\":%llu,\"ack_errors\":%llu,\"delivered\":%llu,"
               "\"expected\":%llu,\"echoes\":%llu,\"errors\":%llu,\"disconnects\":%llu,\"logins\":%llu,"
               "\"login_errors\":%llu,",
            (unsigned long long)K.sent, (unsigned long long)K.send_fail, (unsigned long long)K.acked,
            (unsigned long long)K.ack_errors, (unsigned long long)K.delivered, (unsigned long long)K.expected,
            (unsigned long long)K.echoes, (unsigned long long)K.errors, (unsigned long long)K.disconnects,
            (unsigned long long)K.logins, (unsigned long long)K.login_errors);
    fprintf(f, "\"measured_s\":%.3f,\"window\":{\"sent\":%llu,\"acked\":%llu,\"delivered\":%llu,\"logins\":%llu},"
               "\"sent_per_s\":%.1f,\"acked_per_s\":%.1f,\"delivered_per_s\":%.1f,\"logins_per_s\":%.1f,",
            secs, (unsigned long long)w_sent, (unsigned long long)w_acked, (unsigned long long)w_deliv,
            (unsigned long long)w_logins, per_s(w_sent, secs), per_s(w_acked, secs), per_s(w_deliv, secs),
            per_s(w_logins, secs));
    json_histo(f, scen == SC_CHURN ? "login_latency_us" : "latency_us", lat);
    fputc(',', f);
    json_histo(f, "ack_latency_us", ack_lat);
    fprintf(f, ",\"error_codes\":{");
    for (int k = 0; k < MAX_CODES && err_codes[k].n; k++)
        fprintf(f, "%s\"%d\":%llu", k ? "," : "", err_codes[k].code, (unsigned long long)err_codes[k].n);
    fprintf(f, "},\"server_pid\":%d,\"server_rss_kb_before\":%ld,\"server_rss_kb_after\":%ld,", O.server_pid,
            rss_before_kb, rss_after_kb);
    if (per_conn >= 0)
        fprintf(f, "\"server_rss_bytes_per_conn\":%.1f,", per_conn);
    else
        fprintf(f, "\"server_rss_bytes_per_conn\":null,");
    fprintf(f, "\"client_rss_kb\":%ld", client_rss);
    /* --nodes: one entry per node; --cpu-pid: CPU seconds per named tree,
     * both over the measured window (null when a pid could not be read) */
    if (O.nnodes) {
        fprintf(f, ",\"nodes\":[");
        for (int k = 0; k < O.nnodes; k++) {
            fprintf(f, "%s{\"node\":%d,\"host\":", k ? "," : "", k);
            json_str(f, nodes[k].host);
            fprintf(f, ",\"port\":%d,\"gate_port\":%d,\"server_pid\":%d,\"clients\":%llu,\"senders\":%llu,"
                       "\"window\":{\"acked\":%llu,\"delivered\":%llu},\"cpu_s\":",
                    nodes[k].port, nodes[k].gate_port, nodes[k].pid, (unsigned long long)node_k[k].clients,
                    (unsigned long long)node_k[k].senders, (unsigned long long)(node_k[k].acked1 - node_k[k].acked0),
                    (unsigned long long)(node_k[k].delivered1 - node_k[k].delivered0));
            if (node_k[k].cpu0 >= 0 && node_k[k].cpu1 >= 0)
                fprintf(f, "%.3f", (double)(node_k[k].cpu1 - node_k[k].cpu0) / hz);
            else
                fprintf(f, "null");
            fprintf(f, ",\"rss_kb_after\":%ld}", node_k[k].rss_kb);
        }
        fprintf(f, "]");
    }
    fprintf(f, ",\"cpu_s\":{");
    for (int k = 0; k < ncpu_pids; k++) {
        fprintf(f, "%s", k ? "," : "");
        json_str(f, cpu_pids[k].name);
        if (cpu_pids[k].cpu0 >= 0 && cpu_pids[k].cpu1 >= 0)
            fprintf(f, ":%.3f", (double)(cpu_pids[k].cpu1 - cpu_pids[k].cpu0) / hz);
        else
            fprintf(f, ":null");
    }
    fprintf(f, "}}\n");
    fclose(f);
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rtm-bench --scenario p2p|fanout|rooms|idle|churn [options]\n"
            "  --target NAME          rtmd (default), mosquitto, nats, redis\n"
            "  --host ADDR            server address, 127.0.0.0/8 only (default 127.0.0.1)\n"
            "  --port N               server port (default per target)\n"
            "  --gate-port N          rtmd server gate port (default 13315)\n"
            "  --ws                   rtmd: WebSocket client gate instead of TCP\n"
            "  --pid N --secret S     rtmd project (for gettoken and auth)\n"
            "  --uid-base N           rtmd: first uid (default 1000000)\n"
            "  --rid-base N           rtmd: first room id (default 1)\n"
            "  --connections N        p2p pairs, fanout receivers, rooms users, idle connections,\n"
            "                         churn concurrent logins (default 100)\n"
            "  --senders N            fanout publishers (default 4)\n"
            "  --room-size N          rooms: users per room (default 10)\n"
            "  --size BYTES           payload size, >= %d (default 64)\n"
            "  --window N             in-flight sends per sender (default 64)\n"
            "  --rate R               total sends/s (p2p, fanout), per user (rooms), logins/s (churn);\n"
            "                         0 = open loop bounded by --window (default 0; rooms 1)\n"
            "  --warmup S --duration S  seconds before and of the measured window (default 1, 5)\n"
            "  --drain S              most seconds to wait for in-flight messages (default 3)\n"
            "  --connect-concurrency N  connects/subscribes in flight (default 256)\n"
            "  --source-addrs A,B,..  local addresses (127.x) to spread client sockets over\n"
            "  --server-pid PID       read the server's VmRSS before and after\n"
            "  --json FILE            append one JSON line with the figures\n"
            "  --label TEXT           free text copied into the JSON\n"
            "  --nodes H:P:G[:PID],.. rtmd cluster: nodes at host H (127.0.0.0/8), client gate port P\n"
            "                         (WebSocket with --ws), server gate port G, process id PID (for\n"
            "                         its CPU and memory); at most %d. Client i talks to node\n"
            "                         i %% N (a p2p pair's sender and receiver on different nodes),\n"
            "                         tokens are minted through every node. Replaces --host, --port,\n"
            "                         --gate-port and --server-pid\n"
            "  --cpu-pid NAME:PID     CPU seconds of PID and its child processes during the\n"
            "                         window, reported as cpu_s.NAME (repeatable, at most %d)\n"
            "  --metrics H:P          rtmd's HTTP listener (127.0.0.0/8): its stage histograms\n"
            "                         (rtmd_stage_*) are read at the window's start and end ...\n"
            "  --metrics-out FILE     ... and their difference written to FILE (Prometheus text)\n"
            "  -v, --verbose          progress and errors on stderr\n",
            BENCH_HDR_BYTES, BENCH_MAX_NODES, MAX_CPU_PIDS);
}

static int is_loopback(const char *a, struct sockaddr_in *out)
{
    struct sockaddr_in sa;
    if (uv_ip4_addr(a, 0, &sa) != 0)
        return 0;
    if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127)
        return 0;
    if (out)
        *out = sa;
    return 1;
}

static long num_arg(const char *name, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi) {
        fprintf(stderr, "rtm-bench: --%s must be an integer in %ld..%ld\n", name, lo, hi);
        exit(2);
    }
    return n;
}

static double real_arg(const char *name, const char *v, double lo, double hi)
{
    char *end;
    double d = strtod(v, &end);
    if (*end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "rtm-bench: --%s must be a number in %g..%g\n", name, lo, hi);
        exit(2);
    }
    return d;
}

static void parse_sources(char *list)
{
    int n = 1;
    for (char *p = list; *p; p++)
        n += *p == ',';
    src_addrs = calloc((size_t)n, sizeof *src_addrs);
    src_strs = calloc((size_t)n, sizeof *src_strs);
    int k = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
        if (*tok) {
            if (!is_loopback(tok, &src_addrs[k])) {
                fprintf(stderr, "rtm-bench: source address %s is not in 127.0.0.0/8\n", tok);
                exit(2);
            }
            src_strs[k++] = tok;
        }
    O.nsource_addrs = k;
    O.source_addrs = src_strs;
}

/* --nodes H:P:G[:PID],...: every field checked, loopback only. */
static void parse_nodes(const char *arg)
{
    char buf[4096];
    if (strlen(arg) >= sizeof buf) {
        fprintf(stderr, "rtm-bench: --nodes is too long\n");
        exit(2);
    }
    strcpy(buf, arg);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == BENCH_MAX_NODES) {
            fprintf(stderr, "rtm-bench: --nodes: at most %d nodes\n", BENCH_MAX_NODES);
            exit(2);
        }
        char *f[5];
        int nf = 0;
        char *save2 = NULL;
        for (char *p = strtok_r(tok, ":", &save2); p && nf < 5; p = strtok_r(NULL, ":", &save2))
            f[nf++] = p;
        if (nf < 3 || nf > 4 || strlen(f[0]) >= sizeof nodes[n].host || !is_loopback(f[0], NULL)) {
            fprintf(stderr, "rtm-bench: --nodes wants HOST:PORT:GATEPORT[:PID] with HOST in 127.0.0.0/8, "
                            "comma-separated\n");
            exit(2);
        }
        strcpy(nodes[n].host, f[0]);
        nodes[n].port = (int)num_arg("nodes port", f[1], 1, 65535);
        nodes[n].gate_port = (int)num_arg("nodes gate port", f[2], 1, 65535);
        nodes[n].pid = nf == 4 ? (int)num_arg("nodes pid", f[3], 1, 1 << 30) : 0;
        n++;
    }
    if (!n) {
        fprintf(stderr, "rtm-bench: --nodes names no node\n");
        exit(2);
    }
    O.nnodes = n;
    O.nodes = nodes;
}

static void parse_cpu_pid(const char *arg)
{
    const char *colon = strrchr(arg, ':');
    size_t nl = colon ? (size_t)(colon - arg) : 0;
    if (ncpu_pids == MAX_CPU_PIDS || !colon || nl == 0 || nl >= sizeof cpu_pids[0].name) {
        fprintf(stderr, "rtm-bench: --cpu-pid wants NAME:PID (NAME 1..%zu of [A-Za-z0-9_-]), at most %d\n",
                sizeof cpu_pids[0].name - 1, MAX_CPU_PIDS);
        exit(2);
    }
    for (size_t i = 0; i < nl; i++) {
        char ch = arg[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-')) {
            fprintf(stderr, "rtm-bench: --cpu-pid NAME may hold letters, digits, _ and - only\n");
            exit(2);
        }
    }
    memcpy(cpu_pids[ncpu_pids].name, arg, nl);
    cpu_pids[ncpu_pids].name[nl] = 0;
    cpu_pids[ncpu_pids].pid = (int)num_arg("cpu-pid", colon + 1, 1, 1 << 30);
    cpu_pids[ncpu_pids].cpu0 = cpu_pids[ncpu_pids].cpu1 = -1;
    ncpu_pids++;
}

static void parse_args(int argc, char **argv)
{
    enum { O_TARGET = 256, O_SCEN, O_HOST, O_PORT, O_GATE, O_WS, O_PID, O_SECRET, O_UIDB, O_RIDB, O_CONNS, O_SENDERS,
           O_ROOM, O_SIZE, O_WINDOW, O_RATE, O_WARM, O_DUR, O_DRAIN, O_CC, O_SRC, O_SPID, O_JSON, O_LABEL, O_NODES, O_CPUPID,
           O_METRICS, O_METRICS_OUT, O_HELP };
    static const struct option opts[] = {
        {"target", 1, 0, O_TARGET}, {"scenario", 1, 0, O_SCEN}, {"host", 1, 0, O_HOST},
        {"port", 1, 0, O_PORT}, {"gate-port", 1, 0, O_GATE}, {"ws", 0, 0, O_WS},
        {"pid", 1, 0, O_PID}, {"secret", 1, 0, O_SECRET}, {"uid-base", 1, 0, O_UIDB},
        {"rid-base", 1, 0, O_RIDB}, {"connections", 1, 0, O_CONNS}, {"senders", 1, 0, O_SENDERS},
        {"room-size", 1, 0, O_ROOM}, {"size", 1, 0, O_SIZE}, {"window", 1, 0, O_WINDOW},
        {"rate", 1, 0, O_RATE}, {"warmup", 1, 0, O_WARM}, {"duration", 1, 0, O_DUR},
        {"drain", 1, 0, O_DRAIN}, {"connect-concurrency", 1, 0, O_CC}, {"source-addrs", 1, 0, O_SRC},
        {"server-pid", 1, 0, O_SPID}, {"json", 1, 0, O_JSON}, {"label", 1, 0, O_LABEL},
        {"nodes", 1, 0, O_NODES}, {"cpu-pid", 1, 0, O_CPUPID}, {"metrics", 1, 0, O_METRICS},
        {"metrics-out", 1, 0, O_METRICS_OUT},
        {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    O.target = "rtmd";
    O.host = "127.0.0.1";
    O.uid_base = 1000000;
    O.rid_base = 1;
    O.connections = 100;
    O.senders = 4;
    O.room_size = 10;
    O.size = 64;
    O.window = 64;
    O.rate = -1;
    O.warmup = 1;
    O.duration = 5;
    O.drain = 3;
    O.connect_concurrency = 256;
    int c;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case O_TARGET: O.target = optarg; break;
        case O_SCEN: O.scenario = optarg; break;
        case O_HOST: O.host = optarg; break;
        case O_PORT: O.port = (int)num_arg("port", optarg, 1, 65535); break;
        case O_GATE: O.gate_port = (int)num_arg("gate-port", optarg, 1, 65535); break;
        case O_WS: O.ws = 1; break;
        case O_PID: O.pid = num_arg("pid", optarg, 1, INT64_MAX); break;
        case O_SECRET: O.secret = optarg; break;
        case O_UIDB: O.uid_base = num_arg("uid-base", optarg, 1, (1L << 61)); break;
        case O_RIDB: O.rid_base = num_arg("rid-base", optarg, 1, (1L << 61)); break;
        case O_CONNS: O.connections = (int)num_arg("connections", optarg, 1, 1000000); break;
        case O_SENDERS: O.senders = (int)num_arg("senders", optarg, 1, 10000); break;
        case O_ROOM: O.room_size = (int)num_arg("room-size", optarg, 2, 100000); break;
        case O_SIZE: O.size = (int)num_arg("size", optarg, BENCH_HDR_BYTES, 1 << 20); break;
        case O_WINDOW: O.window = (int)num_arg("window", optarg, 1, 65535); break;
        case O_RATE: O.rate = real_arg("rate", optarg, 0, 1e8); break;
        case O_WARM: O.warmup = real_arg("warmup", optarg, 0, 3600); break;
        case O_DUR: O.duration = real_arg("duration", optarg, 0.1, 3600); break;
        case O_DRAIN: O.drain = real_arg("drain", optarg, 0, 600); break;
        case O_CC: O.connect_concurrency = (int)num_arg("connect-concurrency", optarg, 1, 100000); break;
        case O_SRC: parse_sources(optarg); break;
        case O_SPID: O.server_pid = (int)num_arg("server-pid", optarg, 1, 1 << 30); break;
        case O_JSON: O.json_path = optarg; break;
        case O_LABEL: O.label = optarg; break;
        case O_NODES: parse_nodes(optarg); break;
        case O_CPUPID: parse_cpu_pid(optarg); break;
        case O_METRICS: O.metrics_addr = optarg; break;
        case O_METRICS_OUT: O.metrics_out = optarg; break;
        case 'v': O.verbose++; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc || !O.scenario) {
        usage(stderr);
        exit(2);
    }
    for (scen = 0; scen < 5 && strcmp(O.scenario, scen_names[scen]) != 0; scen++)
        ;
    if (scen == 5) {
        fprintf(stderr, "rtm-bench: unknown scenario %s\n", O.scenario);
        exit(2);
    }
    if (O.rate < 0)
        O.rate = scen == SC_ROOMS ? 1 : 0;
    if (!is_loopback(O.host, NULL)) {
        fprintf(stderr, "rtm-bench: --host must be an IPv4 address in 127.0.0.0/8\n");
        exit(2);
    }
    if (O.nnodes && (strcmp(O.target, "rtmd") != 0 || O.port || O.gate_port || O.server_pid ||
                     strcmp(O.host, "127.0.0.1") != 0)) {
        fprintf(stderr, "rtm-bench: --nodes is for --target rtmd and replaces --host, --port, --gate-port and "
                        "--server-pid\n");
        exit(2);
    }
    if (!O.metrics_addr != !O.metrics_out || (O.metrics_addr && (strcmp(O.target, "rtmd") != 0 || O.nnodes))) {
        fprintf(stderr, "rtm-bench: --metrics and --metrics-out go together, with one rtmd (no --nodes)\n");
        exit(2);
    }
    for (int k = 0; k < O.nnodes; k++)
        node_k[k].cpu0 = node_k[k].cpu1 = -1;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    /* Privileged: lift the hard limit too, up to what the kernel allows. */
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    long nr_open = 0;
    if (f) {
        if (fscanf(f, "%ld", &nr_open) != 1)
            nr_open = 0;
        fclose(f);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && nr_open > 0 && (long)rl.rlim_max < nr_open) {
        struct rlimit up = {(rlim_t)nr_open, (rlim_t)nr_open};
        setrlimit(RLIMIT_NOFILE, &up); /* fails quietly without CAP_SYS_RESOURCE */
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (uint64_t)rl.rlim_cur < (uint64_t)nclients + 64)
        fprintf(stderr, "rtm-bench: warning: RLIMIT_NOFILE %llu is below %d clients\n",
                (unsigned long long)rl.rlim_cur, nclients);
}

static const bench_target *find_target(const char *name)
{
    const bench_target *all[] = {&bench_target_rtmd, &bench_target_mosquitto, &bench_target_nats,
                                 &bench_target_redis};
    const char *names[] = {"rtmd", "mosquitto", "nats", "redis"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return all[i];
    fprintf(stderr, "rtm-bench: unknown target %s\n", name);
    exit(2);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    T = find_target(O.target);
    if (scen == SC_P2P && !(T->caps & BENCH_CAP_P2P)) {
        fprintf(stderr, "rtm-bench: target %s has no p2p scenario\n", T->name);
        return 2;
    }
    if (O.ws && !(T->caps & BENCH_CAP_WS)) {
        fprintf(stderr, "rtm-bench: target %s has no WebSocket transport\n", T->name);
        return 2;
    }
    plan();
    raise_nofile();
    loop = uv_default_loop();
    payload = malloc((size_t)O.size);
    lat = calloc(1, sizeof *lat);
    ack_lat = calloc(1, sizeof *ack_lat);
    if (!payload || !lat || !ack_lat)
        return 2;
    memset(payload, 'x', (size_t)O.size);
    uv_timer_init(loop, &tick_timer);
    uv_timer_init(loop, &phase_timer);
    if (T->init(loop, &O, nclients) != 0) {
        fprintf(stderr, "rtm-bench: target %s failed to initialise\n", T->name);
        return 1;
    }
    /* The whole run is bounded: prepare gets a deadline too. */
    uv_timer_start(&phase_timer, on_setup_timeout, (uint64_t)(setup_seconds() * 1000), 0);
    if (T->prepare) {
        if (T->prepare() != 0) {
            fprintf(stderr, "rtm-bench: target %s failed to prepare\n", T->name);
            return 1;
        }
    } else {
        bench_prepared(0);
    }
    if (phase == PH_PREPARE || phase == PH_CONNECT || phase == PH_SUBSCRIBE || phase == PH_RUN ||
        phase == PH_DRAIN || phase == PH_CLOSE)
        uv_run(loop, UV_RUN_DEFAULT);
    if (!prepare_failed) {
        if (!t_win1) { /* stopped before the window closed (setup problems) */
            t_win1 = uv_hrtime();
            K1 = K;
            sample_cpu(1);
            for (int k = 0; k < O.nnodes; k++) {
                node_k[k].acked1 = node_k[k].acked;
                node_k[k].delivered1 = node_k[k].delivered;
            }
        }
        report();
        if (O.metrics_addr && !stages_failed && stages_write_delta(&stages0, &stages1, O.metrics_out) != 0) {
            fprintf(stderr, "rtm-bench: cannot write %s: %s\n", O.metrics_out, strerror(errno));
            stages_failed = 1;
        }
    }
    if (O.metrics_addr && (stages_failed || !t_win0) && exit_code == 0)
        exit_code = 1;
    stages_free(&stages0);
    stages_free(&stages1);
    T->shutdown();
    uv_timer_stop(&tick_timer);
    uv_timer_stop(&phase_timer);
    uv_walk(loop, close_walk, NULL);
    for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT); i++)
        ;
    return exit_code;
}
