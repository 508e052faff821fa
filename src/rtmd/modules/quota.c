/* Write rates and the storage quota (see quota.h). */
#include "quota.h"

#include "clock.h"
#include "cluster.h"
#include "log.h"
#include "methods.h"
#include "rtm_errors.h"
#include "module.h"
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_MS 1000

/* A token bucket: `rate` tokens a second, at most `burst` kept. A charge
 * of n is allowed when the bucket holds min(n, burst) tokens, and takes n:
 * the bucket may go below zero, so a write larger than the burst waits
 * for a full bucket and then leaves the sender in debt for its size. */
typedef struct rate_bucket {
    double tokens;
    uint64_t refill_ms;       /* 0: never used (full) */
} rate_bucket;

typedef struct project_quota {
    uint64_t stored;     /* bytes in the store, as last read or added */
    uint64_t reserved;   /* bytes of admitted writes not done yet */
    rate_bucket rows, bytes;
} project_quota;

/* The write rates of one online user that has sent, dropped when it goes
 * offline (a user's buckets start fresh at its next login). */
typedef struct user_rates {
    rate_bucket rows, bytes;
} user_rates;

struct quota_state {
    rtmd_server *srv;
    project_quota *projects; /* parallel to srv->projects' slots */
    pairmap users;           /* (pid, uid) -> user_rates */
    uv_timer_t timer;
    bool timer_closed;
    bool refreshing;         /* a read of storage_usage is queued */
};

/* ---- buckets ---- */

/* Refills b for now_ms and tells whether it allows a charge of cost. A
 * rate of 0 allows everything. In a cluster a bucket holds the share of
 * the limit this node enforces: rate and burst divided by split (see
 * quota.h). */
static bool bucket_allows(rate_bucket *b, uint32_t rate, uint32_t burst, unsigned split, uint64_t cost,
                          uint64_t now_ms)
{
    if (rate == 0)
        return true;
    double cap = (burst ? burst : 1) / (double)split;
    if (b->refill_ms == 0) {
        b->tokens = cap;
    } else if (now_ms > b->refill_ms) {
        b->tokens += (double)(now_ms - b->refill_ms) * rate / split / 1000.0;
    }
    if (b->tokens > cap)
        b->tokens = cap; /* also when the split grew */
    b->refill_ms = now_ms;
    double need = (double)cost < cap ? (double)cost : cap;
    return b->tokens >= need;
}

static void bucket_take(rate_bucket *b, uint32_t rate, uint64_t cost)
{
    if (rate)
        b->tokens -= (double)cost;
}

/* ---- state ---- */

static struct quota_state *state(rtmd_server *srv)
{
    return srv->svc->quota;
}

static project_quota *project_of(rtmd_server *srv, int64_t pid)
{
    rtmd_project *p = rtmd_server_project(srv, pid);
    struct quota_state *q = state(srv);
    return p && q ? &q->projects[p - srv->projects] : NULL;
}

static uint64_t quota_bytes(const rtmd_project_config *lim)
{
    return (uint64_t)lim->storage_quota_mb * 1024u * 1024u;
}

/* The user's buckets, made (full) at its first write; NULL when out of
 * memory. */
static user_rates *rates_of(struct quota_state *q, int64_t pid, int64_t uid)
{
    void **slot = pairmap_reserve(&q->users, (uint64_t)pid, (uint64_t)uid);
    if (!slot)
        return NULL;
    if (!*slot && !(*slot = calloc(1, sizeof(user_rates)))) {
        pairmap_del(&q->users, (uint64_t)pid, (uint64_t)uid);
        return NULL;
    }
    return *slot;
}

int quota_admit(rtmd_request *req, uint64_t rows, uint64_t bytes)
{
    rtmd_project *p = req->project;
    const rtmd_project_config *lim = &p->limits;
    project_quota *pq = project_of(req->srv, p->pid);
    if (!pq) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "no quota state");
        return -1;
    }
    if (lim->storage_quota_mb && pq->stored + pq->reserved + bytes > quota_bytes(lim)) {
        request_error(req, RTM_EC_STORAGE_QUOTA_EXCEEDED, "storage quota of the project exceeded");
        return -1;
    }
    if (req->gate != GATE_SERVER_TCP) {
        /* A user's buckets exist only where a user rate is set. */
        user_rates unlimited = {0};
        user_rates *u = lim->user_msg_rate || lim->user_byte_rate ? rates_of(state(req->srv), p->pid, req->uid)
                                                                  : &unlimited;
        if (!u) {
            request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
            return -1;
        }
        uint64_t now = clock_monotonic_ms();
        /* This node's share: the user's limits over the nodes holding its
         * sessions, the project's over the live nodes. */
        unsigned user_split = 1, project_split = 1;
        if (cluster_enabled(req->srv)) {
            user_split += (unsigned)cluster_holders(req->srv, p->pid, req->uid);
            project_split += (unsigned)cluster_node_count(req->srv);
        }
        /* Every bucket is refilled and asked before any is charged. */
        bool ok = bucket_allows(&u->rows, lim->user_msg_rate, lim->user_msg_burst, user_split, rows, now);
        ok = bucket_allows(&u->bytes, lim->user_byte_rate, lim->user_byte_burst, user_split, bytes, now) && ok;
        ok = bucket_allows(&pq->rows, lim->project_msg_rate, lim->project_msg_burst, project_split, rows, now) && ok;
        ok = bucket_allows(&pq->bytes, lim->project_byte_rate, lim->project_byte_burst, project_split, bytes, now) &&
             ok;
        if (!ok) {
            request_error(req, RTM_EC_API_FREQUENCY_LIMITED, "frequency limited");
            return -1;
        }
        bucket_take(&u->rows, lim->user_msg_rate, rows);
        bucket_take(&u->bytes, lim->user_byte_rate, bytes);
        bucket_take(&pq->rows, lim->project_msg_rate, rows);
        bucket_take(&pq->bytes, lim->project_byte_rate, bytes);
    }
    pq->reserved += bytes;
    return 0;
}

void quota_release(rtmd_server *srv, int64_t pid, uint64_t reserved, uint64_t stored)
{
    project_quota *pq = project_of(srv, pid);
    if (!pq)
        return;
    pq->reserved = pq->reserved > reserved ? pq->reserved - reserved : 0;
    pq->stored += stored;
}

/* ---- storage_usage ---- */

typedef struct usage_read {
    rtmd_server *srv;
    size_t n;
    int64_t *pids;
    uint64_t *bytes;         /* per entry of srv->projects */
} usage_read;

/* What each project stores: its storage_usage row, exact at every commit
 * (messages.c adds the bytes of the rows it inserts in their transaction,
 * triggers take off what deletes and edits change). */
static int read_usage(db_conn *db, usage_read *r)
{
    db_stmt_t *st = NULL;
    int rc = db_stmt(db, "SELECT bytes FROM storage_usage WHERE pid = ?1", &st);
    for (size_t i = 0; rc == DB_OK && i < r->n; i++) {
        db_reset(st);
        db_bind_int64(st, 1, r->pids[i]);
        rc = db_step(st);
        int64_t v = rc == DB_ROW ? db_column_int64(st, 0) : 0;
        r->bytes[i] = v > 0 ? (uint64_t)v : 0;
        rc = rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
    }
    if (st)
        db_release(st);
    return rc;
}

/* On the writer, on purpose: it applies writes in submission order and
 * reports them in that order, so the value read covers every write of
 * this node admitted before the read (their bytes already added by
 * quota_release when it is reported) and none after it (still reserved).
 * A pooled reader's snapshot falls at no known point of that order: a
 * write committed before it but reported after it would count twice, one
 * committed after it but reported before it not at all, until the next
 * read. The read is one primary-key lookup per project, no scan. */
static int apply_read_usage(db_conn *db, void *arg)
{
    return read_usage(db, arg);
}

static usage_read *usage_read_new(rtmd_server *srv)
{
    usage_read *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = srv;
    r->n = srv->nprojects;
    r->pids = calloc(r->n + 1, sizeof *r->pids);
    r->bytes = calloc(r->n + 1, sizeof *r->bytes);
    if (!r->pids || !r->bytes) {
        free(r->pids);
        free(r->bytes);
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < r->n; i++)
        r->pids[i] = srv->projects[i].pid;
    return r;
}

static void usage_read_free(usage_read *r)
{
    free(r->pids);
    free(r->bytes);
    free(r);
}

static void usage_read_done(void *arg, int status)
{
    usage_read *r = arg;
    struct quota_state *q = state(r->srv);
    if (q) {
        q->refreshing = false;
        if (status == DB_OK)
            for (size_t i = 0; i < r->n; i++)
                q->projects[i].stored = r->bytes[i];
        else
            LOG_WARN("quota: reading storage_usage failed: %s", db_errstr(status));
    }
    usage_read_free(r);
}

static void on_refresh_tick(uv_timer_t *t)
{
    struct quota_state *q = t->data;
    if (rtmd_timer_end_on_stop(q->srv, t, &q->timer_closed) || q->refreshing || !q->srv->store)
        return;
    usage_read *r = usage_read_new(q->srv);
    if (!r)
        return;
    q->refreshing = true;
    if (store_submit(q->srv->store, apply_read_usage, usage_read_done, r) != 0) {
        q->refreshing = false;
        usage_read_free(r);
    }
}

/* ---- module life cycle ---- */

static int quota_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct quota_state *q = calloc(1, sizeof *q);
    /* A slot for each project a reload may add: the refresh reads it. */
    if (!q || !(q->projects = calloc(RTMD_MAX_PROJECTS + 1, sizeof *q->projects))) {
        free(q);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    q->srv = srv;
    srv->svc->quota = q;
    uv_timer_init(srv->loop, &q->timer);
    q->timer.data = q;
    uv_timer_start(&q->timer, on_refresh_tick, REFRESH_MS, REFRESH_MS);
    usage_read *r = usage_read_new(srv);
    if (!r || module_load(srv, apply_read_usage, r) != DB_OK) {
        if (r)
            usage_read_free(r);
        snprintf(err, errlen, "cannot read storage_usage from the store");
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        q->projects[i].stored = r->bytes[i];
        LOG_INFO("quota: project %lld stores %llu bytes of messages", (long long)r->pids[i],
                 (unsigned long long)r->bytes[i]);
    }
    usage_read_free(r);
    return 0;
}

static void quota_free(rtmd_server *srv)
{
    struct quota_state *q = srv->svc->quota;
    if (!q)
        return;
    free(q->projects);
    for (size_t i = 0; i < q->users.cap; i++)
        free(q->users.slots[i].value);
    pairmap_free(&q->users);
    srv->svc->quota = NULL;
    if (rtmd_timer_release(&q->timer, q->timer_closed))
        free(q);
}

static void on_user_offline(rtmd_server *srv, const rtmd_event *ev)
{
    free(pairmap_del(&state(srv)->users, (uint64_t)ev->pid, (uint64_t)ev->uid));
}

static const rtmd_observer quota_observers[] = {
    {RTMD_EV_USER_OFFLINE, on_user_offline},
};

const rtmd_module quota_module = {
    .name = "quota",
    .init = quota_init,
    .free = quota_free,
    RTMD_MODULE_OBSERVERS(quota_observers),
};
