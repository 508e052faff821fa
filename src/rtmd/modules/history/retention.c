/* The retention job of the history module (history.h, "Retention"): per
 * project, history older than limits.history_days or beyond
 * limits.history_max_per_conversation is deleted, once at start and then
 * every cfg.retention_interval seconds. A scan on the reader pool finds
 * the work; deletes go through the writer in bounded batches, one at a
 * time. Nodes sharing a PostgreSQL store elect one node to run it
 * (module_job_leader); a node that takes over starts from its own
 * (possibly stale, hence only longer) progress marks. history.c starts
 * and stops it. */
#include "history_internal.h"

#include "clock.h"
#include "log.h"
#include "messages.h"
#include "module.h"
#include "mtime_order.h"

#include <stdlib.h>
#include <string.h>

#define SWEEP_TICK_MS 500
#define SWEEP_TASKS_MAX 100000
#define STR_(x) #x
#define STR(x) STR_(x)
#define HISTORY_SWEEP_BATCH_SQL STR(HISTORY_SWEEP_BATCH)

struct sweep;

struct history_retention {
    rtmd_server *srv;
    uv_timer_t timer;
    bool timer_closed;
    bool swept;                /* the job ran at least once */
    uint64_t last_sweep_ms;
    struct sweep *sweep;       /* the run in progress, or NULL */
    bool asking;               /* module_job_leader in flight */
    int64_t swept_id;          /* conversations with no message above this were trimmed */
    uint64_t deleted;
    /* per project with history_days: the rows of that project below id were
     * examined by a completed days task (the next run starts there) */
    size_t ndays_done;
    struct {
        int64_t pid, id;
    } days_done[RTMD_MAX_PROJECTS];
};

uint64_t history_retention_deleted(rtmd_server *srv)
{
    return srv->svc && srv->svc->history ? srv->svc->history->retention->deleted : 0;
}

enum { TASK_DAYS = 1, TASK_CONV = 2 };

/* TASK_DAYS deletes the rows of a project older than a date without an
 * index on mtime. messages.c never lets mtime decrease as id grows, so the
 * old rows are a prefix of the rowid order, whose end (the first row not
 * older, done_id) a bisection over rowid probes finds. The task walks ids
 * [from_id, to_id) in rowid windows of at most HISTORY_SWEEP_BATCH rows
 * each, whatever their project (so a batch stays bounded among rows that
 * other projects keep), deleting the project's rows with mtime < cutoff.
 * A project's first run since start walks every row (to_id past the newest)
 * so that rows out of mtime order (written before this rule, or edited
 * while rtmd was down) go too; later runs walk from where the previous one
 * ended (done_id) to the new prefix end. */
typedef struct sweep_task {
    int64_t pid;
    int kind;
    int conv_type;
    int64_t a, b;
    int64_t cutoff;            /* TASK_DAYS: mtime below; TASK_CONV: id up to */
    int64_t from_id, to_id;    /* TASK_DAYS: ids left to examine */
    int64_t done_id;           /* TASK_DAYS: the next run starts here */
} sweep_task;

typedef struct sweep {
    struct history_retention *h;
    size_t nproj;
    struct {
        int64_t pid;
        uint32_t days, max;
    } proj[RTMD_MAX_PROJECTS];
    int64_t since_id, now_ms;
    sweep_task *tasks;
    size_t ntasks, cap;
    int64_t high_id;
    bool complete;
    size_t cur;
    int64_t batch_deleted;
    int64_t batch_end;         /* TASK_DAYS: the batch examined ids below this */
    uint64_t total;
} sweep;

static int64_t days_done_get(const struct history_retention *h, int64_t pid, bool *seen)
{
    for (size_t i = 0; i < h->ndays_done; i++)
        if (h->days_done[i].pid == pid) {
            *seen = true;
            return h->days_done[i].id;
        }
    return 0;
}

static void days_done_set(struct history_retention *h, int64_t pid, int64_t id)
{
    size_t i = 0;
    while (i < h->ndays_done && h->days_done[i].pid != pid)
        i++;
    if (i == h->ndays_done) {
        if (i == RTMD_MAX_PROJECTS)
            return;
        h->ndays_done++;
        h->days_done[i].pid = pid;
    }
    h->days_done[i].id = id;
}

static int sweep_add(sweep *sw, sweep_task t)
{
    if (sw->ntasks == SWEEP_TASKS_MAX) {
        sw->complete = false;
        return DB_OK;
    }
    if (sw->ntasks == sw->cap) {
        size_t cap = sw->cap ? sw->cap * 2 : 64;
        sweep_task *v = realloc(sw->tasks, cap * sizeof *v);
        if (!v)
            return DB_NOMEM;
        sw->tasks = v;
        sw->cap = cap;
    }
    sw->tasks[sw->ntasks++] = t;
    return DB_OK;
}

/* mtime_probe_fn over the statement ctx. */
static int probe_row(void *ctx, int64_t at, bool *found, int64_t *id, int64_t *mtime)
{
    db_stmt_t *probe = ctx;
    db_reset(probe);
    db_bind_int64(probe, 1, at);
    int rc = db_step(probe);
    if ((*found = rc == DB_ROW)) {
        *id = db_column_int64(probe, 0);
        *mtime = db_column_int64(probe, 1);
    }
    return rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
}

/* The first id (in [lo, hi], hi meaning none) from which on no row is
 * older than cutoff (mtime_order.h). */
static int first_id_not_older(db_conn *db, int64_t lo, int64_t hi, int64_t cutoff, int64_t *out)
{
    db_stmt_t *probe;
    int rc = db_stmt(db, "SELECT id, mtime FROM messages WHERE id >= ?1 ORDER BY id LIMIT 1", &probe);
    if (rc != DB_OK)
        return rc;
    rc = first_id_from_time(probe_row, probe, lo, hi, cutoff, out);
    db_release(probe);
    return rc;
}

/* The days task of project p: ids from where its last completed task
 * stopped (or the first row) up to the first row that is not too old. */
static int sweep_scan_days(db_conn *db, sweep *sw, size_t p, int64_t first_id)
{
    int64_t pid = sw->proj[p].pid;
    int64_t cutoff = sw->now_ms - (int64_t)sw->proj[p].days * 86400000;
    bool seen = false;
    int64_t from = days_done_get(sw->h, pid, &seen), end = 0;
    if (from < first_id)
        from = first_id;
    int rc = first_id_not_older(db, from, sw->high_id + 1, cutoff, &end);
    int64_t to = seen ? end : sw->high_id + 1;
    if (rc != DB_OK || from >= to)
        return rc;
    return sweep_add(sw, (sweep_task){pid, TASK_DAYS, 0, 0, 0, cutoff, from, to, end});
}

static size_t sweep_find_project(const sweep *sw, int64_t pid)
{
    for (size_t p = 0; p < sw->nproj; p++)
        if (sw->proj[p].pid == pid)
            return p;
    return sw->nproj;
}

/* The conversations with a message since the last complete run (a rowid
 * range, every project at once) that hold more than their project's
 * history_max_per_conversation messages. */
static int sweep_scan_convs(db_conn *db, sweep *sw)
{
    db_stmt_t *convs, *nth;
    int rc;
    if ((rc = db_stmt(db,
                   "SELECT pid, conv_type, conv_a, conv_b FROM messages WHERE id > ?1 AND id <= ?2"
                   " GROUP BY pid, conv_type, conv_a, conv_b",
                   &convs)) != DB_OK)
        return rc;
    if ((rc = db_stmt(db,
                   "SELECT id FROM conv_messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
                   " ORDER BY id DESC LIMIT 1 OFFSET ?5",
                   &nth)) != DB_OK) {
        db_release(convs);
        return rc;
    }
    db_bind_int64(convs, 1, sw->since_id);
    db_bind_int64(convs, 2, sw->high_id);
    while ((rc = db_step(convs)) == DB_ROW) {
        int64_t pid = db_column_int64(convs, 0);
        size_t p = sweep_find_project(sw, pid);
        if (p == sw->nproj || !sw->proj[p].max)
            continue;
        int type = db_column_int(convs, 1);
        int64_t a = db_column_int64(convs, 2), b = db_column_int64(convs, 3);
        db_reset(nth);
        db_bind_int64(nth, 1, pid);
        db_bind_int(nth, 2, type);
        db_bind_int64(nth, 3, a);
        db_bind_int64(nth, 4, b);
        db_bind_int64(nth, 5, sw->proj[p].max);
        int s = db_step(nth);
        if (s == DB_ROW) {
            rc = sweep_add(sw, (sweep_task){pid, TASK_CONV, type, a, b, db_column_int64(nth, 0), 0, 0, 0});
            if (rc != DB_OK)
                break;
        } else if (s != DB_DONE) {
            rc = s;
            break;
        }
    }
    db_release(nth);
    db_release(convs);
    return rc == DB_DONE ? DB_OK : rc;
}

static int sweep_scan(db_conn *db, void *arg)
{
    sweep *sw = arg;
    int rc = db_exec(db, "BEGIN");
    if (rc != DB_OK)
        return rc;
    /* Ids are server-wide: the newest bounds what this snapshot holds for
     * every project. */
    sw->high_id = hist_query_i64(db, NEWEST_ID_SQL, 0, 0, &rc);
    int64_t first_id = rc == DB_OK ? hist_query_i64(db, "SELECT MIN(id) FROM messages", 0, 0, &rc) : 0;
    sw->complete = true;
    bool any_max = false;
    for (size_t p = 0; p < sw->nproj && rc == DB_OK; p++) {
        any_max |= sw->proj[p].max != 0;
        if (sw->proj[p].days && sw->high_id)
            rc = sweep_scan_days(db, sw, p, first_id);
    }
    if (rc == DB_OK && any_max)
        rc = sweep_scan_convs(db, sw);
    db_exec(db, rc == DB_OK ? "COMMIT" : "ROLLBACK");
    return rc;
}

static int sweep_apply(db_conn *db, void *arg)
{
    sweep *sw = arg;
    const sweep_task *t = &sw->tasks[sw->cur];
    db_stmt_t *st;
    int rc = messages_note_id_floor(db);
    if (rc != DB_OK)
        return rc;
    if (t->kind == TASK_DAYS) {
        /* The window: from from_id up to the id of the row HISTORY_SWEEP_BATCH
         * rows on (any project), or to to_id. Reads t, writes only
         * sw->batch_*: the done callback moves the task on. */
        sw->batch_end = hist_query_i64(db,
                                  "SELECT COALESCE((SELECT id FROM messages WHERE id >= ?1 AND id < ?2"
                                  " ORDER BY id LIMIT 1 OFFSET " HISTORY_SWEEP_BATCH_SQL "), ?2)",
                                  t->from_id, t->to_id, &rc);
        if (rc != DB_OK)
            return rc;
        /* +pid: by rowid range, never by an index on pid. */
        rc = db_stmt(db, "DELETE FROM messages WHERE id >= ?1 AND id < ?2 AND +pid = ?3 AND mtime < ?4", &st);
        if (rc != DB_OK)
            return rc;
        db_bind_int64(st, 1, t->from_id);
        db_bind_int64(st, 2, sw->batch_end);
        db_bind_int64(st, 3, t->pid);
        db_bind_int64(st, 4, t->cutoff);
    } else {
        rc = db_stmt(db,
                  "DELETE FROM messages WHERE id IN (SELECT id FROM conv_messages WHERE pid = ?1 AND conv_type = ?2"
                  " AND conv_a = ?3 AND conv_b = ?4 AND id <= ?5 ORDER BY id LIMIT ?6)",
                  &st);
        if (rc != DB_OK)
            return rc;
        db_bind_int64(st, 1, t->pid);
        db_bind_int(st, 2, t->conv_type);
        db_bind_int64(st, 3, t->a);
        db_bind_int64(st, 4, t->b);
        db_bind_int64(st, 5, t->cutoff);
        db_bind_int(st, 6, HISTORY_SWEEP_BATCH);
    }
    rc = db_step(st);
    sw->batch_deleted = rc == DB_DONE ? db_changes(db) : 0;
    db_release(st);
    return rc == DB_DONE ? DB_OK : rc;
}

static void sweep_finish(sweep *sw, bool ok)
{
    struct history_retention *h = sw->h;
    if (ok && sw->complete)
        h->swept_id = sw->high_id;
    h->deleted += sw->total;
    if (sw->total)
        LOG_INFO("history retention: %llu messages deleted", (unsigned long long)sw->total);
    h->sweep = NULL;
    free(sw->tasks);
    free(sw);
}

static void sweep_step(sweep *sw);

static void sweep_batch_done(void *arg, int status)
{
    sweep *sw = arg;
    if (status != DB_OK) {
        if (status != DB_ABORT)
            LOG_ERROR("history retention: delete failed: %s", db_errstr(status));
        sweep_finish(sw, false);
        return;
    }
    sw->total += (uint64_t)sw->batch_deleted;
    sweep_task *t = &sw->tasks[sw->cur];
    if (t->kind == TASK_DAYS) {
        t->from_id = sw->batch_end;
        if (t->from_id >= t->to_id) {
            days_done_set(sw->h, t->pid, t->done_id);
            sw->cur++;
        }
    } else if (sw->batch_deleted < HISTORY_SWEEP_BATCH) {
        sw->cur++;
    }
    sweep_step(sw);
}

/* Submits the next batch, one at a time, so that the writer stays free for
 * messages between batches. */
static void sweep_step(sweep *sw)
{
    rtmd_server *srv = sw->h->srv;
    if (sw->cur >= sw->ntasks) {
        sweep_finish(sw, true);
        return;
    }
    if (srv->stopping || !srv->store || store_submit(srv->store, sweep_apply, sweep_batch_done, sw) != 0)
        sweep_finish(sw, false);
}

static void sweep_scanned(void *arg, int status)
{
    sweep *sw = arg;
    if (status != DB_OK) {
        if (status != DB_ABORT)
            LOG_ERROR("history retention: scan failed: %s", db_errstr(status));
        sweep_finish(sw, false);
        return;
    }
    LOG_DEBUG("history retention: %zu tasks for messages up to id %lld", sw->ntasks, (long long)sw->high_id);
    sweep_step(sw);
}

static void sweep_start(struct history_retention *h)
{
    rtmd_server *srv = h->srv;
    sweep *sw = calloc(1, sizeof *sw);
    if (!sw)
        return;
    sw->h = h;
    sw->since_id = h->swept_id;
    sw->now_ms = clock_unix_ms();
    for (size_t i = 0; i < srv->nprojects && sw->nproj < RTMD_MAX_PROJECTS; i++) {
        const rtmd_project *p = &srv->projects[i];
        if (p->removed || (!p->limits.history_days && !p->limits.history_max_per_conversation))
            continue;
        sw->proj[sw->nproj].pid = p->pid;
        sw->proj[sw->nproj].days = p->limits.history_days;
        sw->proj[sw->nproj].max = p->limits.history_max_per_conversation;
        sw->nproj++;
    }
    if (!sw->nproj) {
        free(sw);
        return;
    }
    h->sweep = sw;
    if (store_read(srv->store, sweep_scan, sweep_scanned, sw) != 0) {
        h->sweep = NULL;
        free(sw);
    }
}

/* Nodes sharing a PostgreSQL store: one of them sweeps (module.h). */
static void on_leader(void *arg, bool leader)
{
    struct history_retention *h = arg;
    h->asking = false;
    if (leader && !h->srv->stopping && !h->sweep)
        sweep_start(h);
}

static void on_sweep_tick(uv_timer_t *t)
{
    struct history_retention *h = t->data;
    rtmd_server *srv = h->srv;
    /* On stop, a sweep in progress gives up at its next step. */
    if (rtmd_timer_end_on_stop(srv, t, &h->timer_closed))
        return;
    uint64_t now = uv_now(srv->loop);
    if (h->sweep || h->asking || !srv->store)
        return;
    if (h->swept && now - h->last_sweep_ms < (uint64_t)srv->cfg.retention_interval * 1000u)
        return;
    h->swept = true;
    h->last_sweep_ms = now;
    h->asking = true; /* on_leader clears it (at once on SQLite) */
    if (module_job_leader(srv, MODULE_JOB_RETENTION, on_leader, h) != 0)
        h->asking = false;
}


struct history_retention *history_retention_start(rtmd_server *srv)
{
    struct history_retention *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->srv = srv;
    uv_timer_init(srv->loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, on_sweep_tick, 0, SWEEP_TICK_MS);
    return h;
}

void history_retention_stop(struct history_retention *h)
{
    if (h->sweep) {
        free(h->sweep->tasks);
        free(h->sweep);
    }
    if (rtmd_timer_release(&h->timer, h->timer_closed))
        free(h);
}
