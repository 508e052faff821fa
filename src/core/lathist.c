/* Latency histograms of the message path (see lathist.h): the buckets,
 * the answers waiting for the loop's writes, the dump and the Prometheus
 * lines. */
#include "lathist.h"

#include <time.h>

#define NB 256 /* 64 powers of two, 4 sub-buckets each */

typedef struct hist {
    uint64_t b[NB];
    uint64_t sum, max;
    uint64_t n; /* in a snapshot only: the sum of b */
} hist;

static hist H[LAT_STAGES];

/* One thread records a stage: a relaxed load and store are enough. */
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static const struct {
    const char *label; /* the stage label in /metrics */
    const char *what;  /* the dump's description */
    int is_count;
} INFO[LAT_STAGES] = {
    [LAT_HANDLER] = {"handler", "message: dispatch -> submit", 0},
    [LAT_QUEUE] = {"queue", "write: submit -> batch taken", 0},
    [LAT_APPLY] = {"apply", "write: batch taken -> committed", 0},
    [LAT_SYNC_WAIT] = {"sync_wait", "write: committed -> sync started", 0},
    [LAT_SYNC] = {"sync", "write: fdatasync covering it", 0},
    [LAT_WAKE] = {"wake", "write: reported -> done callback", 0},
    [LAT_DELIVER] = {"deliver", "message: done -> answer queued", 0},
    [LAT_FLUSH] = {"flush", "message: answer queued -> written", 0},
    [LAT_SERVER] = {"server", "message: dispatch -> answer written", 0},
    [LAT_SUBMIT_LOCK] = {"submit_lock", "loop: hand-over lock wait", 0},
    [LAT_DISPATCH_RUN] = {"dispatch_run", "loop: one store wake-up", 0},
    [LAT_DISPATCH_SIZE] = {"dispatch_size", "loop: writes per store wake-up", 1},
    [LAT_CHECK_RUN] = {"check_run", "loop: one round of writes", 0},
    [LAT_CHECK_CONNS] = {"check_conns", "loop: connections per round of writes", 1},
    [LAT_B_SIZE] = {"batch_size", "writer: writes per batch", 1},
    [LAT_B_APPLY] = {"batch_apply", "writer: batch statements", 0},
    [LAT_B_COMMIT] = {"batch_commit", "writer: COMMIT", 0},
    [LAT_B_IDLE] = {"writer_idle", "writer: idle between batches", 0},
    [LAT_B_CKPT] = {"writer_checkpoint", "writer: its own WAL checkpoint", 0},
    [LAT_C_RUN] = {"checkpoint", "checkpointer: one WAL checkpoint", 0},
    [LAT_S_FDATASYNC] = {"fdatasync", "syncer: fdatasync", 0},
    [LAT_S_COMMITS] = {"ops_per_sync", "syncer: writes per fdatasync", 1},
};

uint64_t lat_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned bucket_of(uint64_t v)
{
    if (v < 4)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return 4 * e + (unsigned)((v >> (e - 2)) & 3);
}

/* The largest value of bucket i. */
static uint64_t bucket_top(unsigned i)
{
    if (i < 8)
        return i < 4 ? i : 3; /* 4..7 are never used */
    unsigned e = i / 4, sub = i % 4;
    uint64_t lo = (uint64_t)(4 + sub) << (e - 2);
    return lo + ((uint64_t)1 << (e - 2)) - 1;
}

void lat_record(lat_stage s, uint64_t value)
{
    hist *h = &H[s];
    unsigned k = bucket_of(value);
    STORE(h->b[k], h->b[k] + 1);
    STORE(h->sum, h->sum + value);
    if (value > h->max)
        STORE(h->max, value);
}

void lat_since(lat_stage s, uint64_t since, uint64_t now)
{
    if (since && now >= since)
        lat_record(s, now - since);
}

/* ---- answers waiting for the loop's writes (loop thread) ---- */

#define NOTES_MAX 4096 /* a turn with more answers samples the first ones */
static struct {
    uint64_t received, queued;
} notes[NOTES_MAX];
static size_t nnotes;

void lat_note_queued(uint64_t received, uint64_t queued)
{
    if (nnotes < NOTES_MAX) {
        notes[nnotes].received = received;
        notes[nnotes].queued = queued;
        nnotes++;
    }
}

void lat_flushed(uint64_t now)
{
    for (size_t i = 0; i < nnotes; i++) {
        lat_since(LAT_FLUSH, notes[i].queued, now);
        lat_since(LAT_SERVER, notes[i].received, now);
    }
    nnotes = 0;
}

/* ---- output ---- */

/* A snapshot of one stage, read once. */
static void snapshot(lat_stage s, hist *out)
{
    const hist *h = &H[s];
    for (unsigned i = 0; i < NB; i++)
        out->b[i] = LOAD(h->b[i]);
    out->sum = LOAD(h->sum);
    out->max = LOAD(h->max);
    out->n = 0;
    for (unsigned i = 0; i < NB; i++)
        out->n += out->b[i];
}

void lat_totals(lat_stage s, uint64_t *count, uint64_t *sum)
{
    hist h;
    snapshot(s, &h);
    *count = h.n;
    *sum = h.sum;
}

const char *lat_stage_label(lat_stage s)
{
    return INFO[s].label;
}

static uint64_t percentile(const hist *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(p * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < NB; i++) {
        seen += h->b[i];
        if (seen > want) {
            uint64_t top = bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}

static void fmt_value(char *out, size_t cap, uint64_t v, int is_count)
{
    if (is_count)
        snprintf(out, cap, "%llu", (unsigned long long)v);
    else if (v < 10000)
        snprintf(out, cap, "%.2fus", (double)v / 1e3);
    else if (v < 10000000)
        snprintf(out, cap, "%.0fus", (double)v / 1e3);
    else
        snprintf(out, cap, "%.1fms", (double)v / 1e6);
}

void lat_dump(FILE *f)
{
    fprintf(f, "lathist: %-38s %9s %9s %9s %9s %9s %9s %9s\n", "stage", "count", "mean", "p50", "p90", "p99",
            "p99.9", "max");
    for (int s = 0; s < LAT_STAGES; s++) {
        hist h;
        snapshot((lat_stage)s, &h);
        if (h.n == 0)
            continue;
        uint64_t vals[6] = {h.sum / h.n,           percentile(&h, 0.5),   percentile(&h, 0.9),
                            percentile(&h, 0.99), percentile(&h, 0.999), h.max};
        char v[6][32];
        for (int i = 0; i < 6; i++)
            fmt_value(v[i], sizeof v[i], vals[i], INFO[s].is_count);
        fprintf(f, "lathist: %-38s %9llu %9s %9s %9s %9s %9s %9s\n", INFO[s].what, (unsigned long long)h.n, v[0],
                v[1], v[2], v[3], v[4], v[5]);
    }
}

/* Fixed bucket bounds, so that every scrape has the same series: seconds
 * (in ns) from 5 us to 10 s, counts in powers of two. */
static const uint64_t TIME_BOUNDS[] = {
    5000,      10000,      25000,      50000,      100000,     250000,      500000,
    1000000,   2500000,    5000000,    10000000,   25000000,   50000000,    100000000,
    250000000, 500000000,  1000000000, 2500000000, 5000000000, 10000000000,
};
static const uint64_t COUNT_BOUNDS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};

static void prom_stage(prom_out *o, const char *name, lat_stage s, const hist *h)
{
    int is_count = INFO[s].is_count;
    const uint64_t *bounds = is_count ? COUNT_BOUNDS : TIME_BOUNDS;
    size_t nbounds = is_count ? sizeof COUNT_BOUNDS / sizeof COUNT_BOUNDS[0]
                              : sizeof TIME_BOUNDS / sizeof TIME_BOUNDS[0];
    uint64_t cum = 0;
    unsigned i = 0;
    for (size_t k = 0; k < nbounds; k++) {
        for (; i < NB && bucket_top(i) <= bounds[k]; i++)
            cum += h->b[i];
        if (is_count)
            prom_text(o, "%s_bucket{stage=\"%s\",le=\"%llu\"} %llu\n", name, INFO[s].label,
                      (unsigned long long)bounds[k], (unsigned long long)cum);
        else
            prom_text(o, "%s_bucket{stage=\"%s\",le=\"%g\"} %llu\n", name, INFO[s].label, (double)bounds[k] / 1e9,
                      (unsigned long long)cum);
    }
    prom_text(o, "%s_bucket{stage=\"%s\",le=\"+Inf\"} %llu\n", name, INFO[s].label, (unsigned long long)h->n);
    if (is_count)
        prom_text(o, "%s_sum{stage=\"%s\"} %llu\n", name, INFO[s].label, (unsigned long long)h->sum);
    else
        prom_text(o, "%s_sum{stage=\"%s\"} %.9f\n", name, INFO[s].label, (double)h->sum / 1e9);
    prom_text(o, "%s_count{stage=\"%s\"} %llu\n", name, INFO[s].label, (unsigned long long)h->n);
}

void lat_prom(prom_out *o)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *name = pass ? "rtmd_stage_count" : "rtmd_stage_seconds";
        prom_text(o, "# HELP %s %s\n# TYPE %s histogram\n", name,
                  pass ? "Sizes on the message path: writes per batch, per fdatasync, per store wake-up;"
                         " connections written per loop turn."
                       : "Time per stage of the message path and the store, from quest to written answer.",
                  name);
        for (int s = 0; s < LAT_STAGES; s++) {
            if (INFO[s].is_count != pass)
                continue;
            hist h;
            snapshot((lat_stage)s, &h);
            prom_stage(o, name, (lat_stage)s, &h);
        }
    }
}
