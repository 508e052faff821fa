/* The store of rtmd (see store.h), on SQLite (the default) or PostgreSQL:
 * creating the data directory, opening the database with its pragmas and
 * migrations (store_schema.c), the writer thread with its queue and group
 * commit, handing completions back to the event loop, the start-up project
 * helpers and the orderly close.
 *
 * On PostgreSQL (store_open_postgres) the same writer, readers and
 * completions run on libpq connections: a batch is one transaction begun
 * with BEGIN, a commit is durable when the server answers it (its
 * synchronous_commit decides, as fsync does here), so there is no syncer
 * thread, no WAL file and no PRAGMA; pooled readers are connections of
 * their own.
 *
 * Durability: the database runs in WAL mode with synchronous=NORMAL, so a
 * COMMIT hands the WAL pages to the OS without waiting for the disk (SQLite
 * still syncs the WAL before each checkpoint and the database after it).
 * With fsync on (the default) the commit is made durable by the syncer
 * thread: it fdatasyncs the WAL file after the commit and only then are the
 * batch's writes reported, so a write whose done callback saw DB_OK
 * survives kill -9 and power loss. The syncer runs beside the writer: while
 * the disk flushes one commit the writer already applies the next batch,
 * instead of waiting for the disk inside COMMIT (synchronous=FULL); one
 * fdatasync covers every commit made before it started. Patient writes
 * (store_submit_patient: their effects already seen, only their done
 * callbacks wait) start a batch at most once per patient interval while
 * nothing else is queued, so that several loop turns share a commit and a
 * sync (wait_out_patient_interval). With fsync off a
 * reported write is in the OS and survives kill -9 of rtmd, but the last
 * commits may be lost if the machine loses power.
 *
 * Checkpoints (SQLite): the writer's COMMIT never checkpoints (SQLite's
 * automatic checkpoint copied 1000 frames inside it, ~10 ms that every
 * queued write waited for). A checkpointer thread with its own connection
 * runs a PASSIVE checkpoint whenever the WAL grew by STORE_CKPT_START
 * frames since it was last woken, copying while the writer goes on. Such
 * a checkpoint never finds the WAL whole, so the writer restarts it: after
 * a commit that leaves STORE_CKPT_RESTART frames or more, the checkpointer
 * is woken again until at most STORE_CKPT_TAIL frames are left to copy
 * (or it chased the writer for STORE_CKPT_START more frames), and then,
 * while it is idle, the writer runs a PASSIVE checkpoint itself: with so
 * little to copy it is short, and with no other writer it copies it all,
 * so the next write transaction starts the WAL again from its beginning
 * (same file: the syncer's descriptor stays valid). A reader still on old
 * frames may keep it from copying them or from restarting the WAL for a
 * moment; past STORE_CKPT_HARD frames
 * the writer waits for the checkpointer and runs a RESTART checkpoint,
 * which waits (up to the lock wait) for such readers: the WAL is bounded
 * whatever happens. A checkpoint syncs the WAL before copying and the
 * database after it (synchronous=NORMAL), so it changes nothing to what
 * the syncer reports.
 *
 * SQL goes through db.h (db_sqlite.c, db_pg.c), never an engine's API
 * directly; what is SQLite's here is the file, its WAL and the PRAGMAs.
 *
 * Threads: the writer connection is used by store_open, then only by the
 * writer thread, then by store_close after the thread is joined. The reader
 * connection is used on the loop thread only. A pooled reader connection
 * (store_read) is used by one pool thread at a time, handed over through
 * the idle pool under rmu, together with its statement cache. The syncer only syncs the WAL
 * file through a descriptor of its own. The queue, the committed and
 * completed lists and the counters are guarded by s->mu; the held and
 * ready lists (writes not yet handed over, done callbacks not yet run) are
 * the loop's. */
#define _GNU_SOURCE /* SCHED_BATCH */
#include "store.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lathist.h"
#include "log.h"
#include "store_file.h"
#include "store_schema.h"

#define STORE_DEFAULT_BATCH 256

#define STORE_MAX_IDLE_READERS 8

/* WAL checkpoints, in frames (a frame is a page, 4 KiB): the checkpointer
 * is woken every STORE_CKPT_START frames, the writer checkpoints from
 * STORE_CKPT_RESTART on (~32 MiB) once at most STORE_CKPT_TAIL frames are
 * left to copy, and waits for a complete one past STORE_CKPT_HARD (see
 * the file comment). */
#define STORE_CKPT_START 1000
#define STORE_CKPT_RESTART 8000
#define STORE_CKPT_HARD (4 * STORE_CKPT_RESTART)
#define STORE_CKPT_TAIL 256

/* PostgreSQL: how long a batch waits for a lost connection to come back
 * before its writes fail, and the longest pause between two attempts. */
#define STORE_RECONNECT_WAIT_MS 10000
#define STORE_RECONNECT_PAUSE_MS 1000

/* A pooled read-only connection; its statement cache travels with it. */
typedef struct reader {
    db_conn *db;
} reader;

typedef struct store_op {
    store_apply_fn apply;
    store_apply_many_fn apply_many; /* may apply a run of such ops at once */
    store_done_fn done;
    void *arg;
    int status;
    bool patient;        /* store_submit_patient */
    struct store_op *next;
    /* lathist.h: submitted, taken by the writer, committed, sync begun and
     * done (0: not reached) */
    uint64_t t_submit, t_take, t_commit, t_sync0, t_sync1;
} store_op;

typedef struct op_list {
    store_op *head;
    store_op *tail;
} op_list;

struct store {
    uv_loop_t *loop;
    uv_async_t *async;   /* own allocation: freed by its close callback */
    uv_prepare_t *handoff; /* hands the turn's writes over; own allocation too */
    void (*after_dispatch)(void *); /* store_on_dispatched */
    void *after_dispatch_arg;
    db_conn *wdb;        /* writer connection */
    db_conn *rdb;        /* reader connection (loop thread, start-up) */
    unsigned batch_max;
    uint64_t patient_ns; /* store_set_patient_interval, set before the first write */
    int schema_version;
    int migrations_applied;

    uv_thread_t thread;
    int thread_started;
    uv_thread_t syncer;
    int syncer_started;
    uv_mutex_t mu;
    uv_cond_t cv;        /* the writer waits for submissions */
    uv_cond_t sync_cv;   /* the syncer waits for commits */
    int sync_ready;      /* mu and both condition variables initialised */
    bool fsync;          /* writes are reported after the syncer's fdatasync */
    int wal_fd;          /* syncer thread only; -1 until opened */
    struct statx wal_id; /* syncer thread only: the file wal_fd names */

    /* Guarded by mu. */
    op_list queue;       /* submitted, not yet taken by the writer */
    size_t queued;       /* ops in queue */
    size_t queued_urgent; /* of them, not patient */
    bool writer_waits_out; /* in the patient interval: no wake-up for patient ops */
    op_list committed;   /* applied (or failed), waiting for the syncer */
    op_list completed;   /* applied (or failed), done not yet run */
    size_t pending;      /* submitted and not yet reported */
    uint64_t commits;
    uint64_t syncs;      /* fdatasyncs of the WAL done by the syncer */
    int stopping;        /* the writer exits once the queue is empty */
    int writer_done;     /* the syncer exits once committed is empty */

    /* Loop thread only. */
    op_list held;        /* submitted in this loop turn, not yet queued */
    size_t nheld;
    size_t nheld_urgent; /* of them, not patient */
    op_list ready;       /* taken from completed, done not yet run */
    size_t nready;
    int closing;         /* store_close has begun: no more submits */
    int dispatching;     /* depth of done-callback dispatch */
    int free_deferred;   /* store_close ran inside a dispatch: free after it */
    int referenced;      /* the async handle holds the loop alive */

    /* Reads (store_read) run on libuv's thread pool with pooled read-only
     * connections; WAL lets them run beside the writer. */
    char path[1024];     /* SQLite: the database file */
    char *pg_url;        /* PostgreSQL: the connection string (never logged) */
    uv_mutex_t rmu;      /* guards idle_readers */
    reader *idle_readers[STORE_MAX_IDLE_READERS];
    int nidle;
    size_t reads_inflight; /* loop thread only */

    /* SQLite's WAL checkpoints (see the file comment). cdb is used by the
     * checkpointer thread only; the rest is guarded by mu. */
    db_conn *cdb;
    uv_thread_t ckpointer;
    int ckpt_started;
    uv_cond_t ckpt_cv;   /* the checkpointer waits to be woken, the writer
                          * past the hard bound for a checkpoint to end */
    int ckpt_wanted;     /* the checkpointer is woken */
    int ckpt_busy;       /* a checkpoint runs (checkpointer or writer) */
    int ckpt_stop;
    int ckpt_mark;       /* WAL frames when the checkpointer was last woken */
    int wal_frames;      /* in the WAL after the writer's last commit */
    int ckpt_log;        /* WAL frames and frames copied at the end of */
    int ckpt_done;       /* the last checkpoint */
    store_wal_stats wal; /* counters for /metrics */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void on_prepare(uv_prepare_t *h);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- op lists ---- */

static void list_push(op_list *l, store_op *op)
{
    op->next = NULL;
    if (l->tail)
        l->tail->next = op;
    else
        l->head = op;
    l->tail = op;
}

static store_op *list_pop(op_list *l)
{
    store_op *op = l->head;
    if (op) {
        l->head = op->next;
        if (!l->head)
            l->tail = NULL;
        op->next = NULL;
    }
    return op;
}

/* Detaches up to max ops from the front of l. */
static op_list list_take(op_list *l, unsigned max)
{
    op_list out = {l->head, l->head};
    unsigned n = 1;
    while (n < max && out.tail->next) {
        out.tail = out.tail->next;
        n++;
    }
    l->head = out.tail->next;
    if (!l->head)
        l->tail = NULL;
    out.tail->next = NULL;
    return out;
}

static void list_append(op_list *l, op_list *more)
{
    if (!more->head)
        return;
    if (l->tail)
        l->tail->next = more->head;
    else
        l->head = more->head;
    l->tail = more->tail;
}

/* ---- writer thread ---- */

/* Marks every op of [from, to] whose status is OK as failed with rc. */
static void fail_range(store_op *from, store_op *to, int rc)
{
    for (store_op *p = from; p; p = p->next) {
        if (p->status == DB_OK)
            p->status = rc;
        if (p == to)
            break;
    }
}

/* Runs one statement of the batch machinery (BEGIN, SAVEPOINT, RELEASE,
 * COMMIT, ...) through the statement cache: they run several times per
 * message, and parsing them each time cost as much as the insert. */
static int exec_cached(db_conn *db, const char *sql)
{
    db_stmt_t *st;
    int rc = db_stmt(db, sql, &st);
    return rc == DB_OK ? db_step_release(st) : rc;
}

/* Runs op's apply; DB_DONE counts as success. */
static int apply_op(db_conn *db, store_op *op)
{
    int st = op->apply(db, op->arg);
    return st == DB_DONE ? DB_OK : st;
}

/* The last op of the run of ops from op on that share op's apply_many
 * (op itself when it has none), and the run's length in *n. */
static store_op *run_end(store_op *op, size_t *n)
{
    store_op *end = op;
    *n = 1;
    while (op->apply_many && end->next && end->next->apply_many == op->apply_many) {
        end = end->next;
        (*n)++;
    }
    return end;
}

/* Applies the ops from first on (n of them) in one apply_many call;
 * DB_DONE counts as success. */
static int apply_run(db_conn *db, store_op *first, size_t n)
{
    void **args = malloc(n * sizeof *args);
    if (!args)
        return DB_NOMEM; /* the replay applies them one by one */
    store_op *p = first;
    for (size_t i = 0; i < n; i++, p = p->next)
        args[i] = p->arg;
    int st = first->apply_many(db, args, n);
    free(args);
    return st == DB_DONE ? DB_OK : st;
}

/* Applies one batch in one transaction. Ops first run bare: a savepoint
 * around every op cost about a sixth of the p2p throughput, and ops rarely
 * fail. When one fails (or ends the transaction), everything since BEGIN is
 * rolled back and applied again from the transaction's first op, each op
 * now in a savepoint, so that only the failing op fails, as if savepoints
 * had been used from the start; the rest of the batch keeps them. A run
 * of consecutive ops sharing an apply_many is applied by one call of it
 * while no op has failed; if it fails, the replay applies each op of the
 * run alone. Ops before the failing one thus run twice: an apply must take its results
 * from the database and its arguments (every apply of rtmd does), since a
 * first run's writes may be undone. Sets every op's status; returns the
 * number of transactions committed. *lost says that the connection was
 * gone before COMMIT was sent (PostgreSQL): nothing of the batch is
 * committed then, and it may run again on a new connection. */
static unsigned run_batch(db_conn *db, op_list *batch, bool *lost)
{
    *lost = false;
    unsigned commits = 0;
    int in_txn = 0;
    int guarded = 0;   /* a savepoint per op: an op of this batch failed */
    store_op *txn_first = NULL;
    store_op *last = NULL;

    store_op *op = batch->head;
    while (op) {
        last = op;
        op->status = DB_OK;
        if (!in_txn) {
            /* SQLite: take the write lock now, not at the first write. */
            int rc = exec_cached(db, db_is_postgres(db) ? "BEGIN" : "BEGIN IMMEDIATE");
            if (rc != DB_OK) {
                LOG_ERROR("store: BEGIN failed: %s", db_errmsg(db));
                op->status = rc;
                op = op->next;
                continue;
            }
            in_txn = 1;
            txn_first = op;
        }
        if (!guarded) {
            size_t n;
            store_op *end = run_end(op, &n);
            int st = n > 1 ? apply_run(db, op, n) : apply_op(db, op);
            if (st == DB_OK && db_in_transaction(db)) {
                for (store_op *p = op; p != end;) {
                    p = p->next;
                    p->status = DB_OK;
                }
                last = end;
                op = end->next;
                continue;
            }
            /* Undo the transaction and apply it again with savepoints. */
            if (db_in_transaction(db) && exec_cached(db, "ROLLBACK") != DB_OK)
                LOG_ERROR("store: ROLLBACK failed: %s", db_errmsg(db));
            in_txn = 0;
            guarded = 1;
            op = txn_first;
            continue;
        }
        int rc = exec_cached(db, "SAVEPOINT store_op");
        if (rc != DB_OK) {
            op->status = rc;
        } else {
            int st = apply_op(db, op);
            op->status = st;
            if (!db_in_transaction(db)) {
                /* The transaction is gone (an I/O error, a full disk or an
                 * apply that ended it): everything since BEGIN is undone. */
                int e = st != DB_OK ? st : DB_MISUSE;
                LOG_ERROR("store: batch transaction aborted by a write: %s", db_errstr(e));
                fail_range(txn_first, op, e);
                in_txn = 0;
                op = op->next;
                continue;
            }
            if (st == DB_OK) {
                rc = exec_cached(db, "RELEASE store_op");
            } else {
                rc = exec_cached(db, "ROLLBACK TO store_op");
                if (rc == DB_OK)
                    rc = exec_cached(db, "RELEASE store_op");
            }
            if (rc != DB_OK && op->status == DB_OK)
                op->status = rc;
        }
        if (rc != DB_OK && !db_in_transaction(db)) {
            fail_range(txn_first, op, rc);
            in_txn = 0;
        }
        op = op->next;
    }

    if (db_connection_lost(db)) {
        *lost = true;
        return commits;
    }
    if (in_txn) {
        uint64_t t0 = lat_now();
        lat_since(LAT_B_APPLY, txn_first && txn_first->t_take ? txn_first->t_take : t0, t0);
        int rc = exec_cached(db, "COMMIT");
        lat_since(LAT_B_COMMIT, t0, lat_now());
        if (rc == DB_OK) {
            commits++;
        } else {
            /* A connection lost here leaves the outcome unknown: the writes
             * fail, and a client that sends again is recognised by its
             * message id where the write has one. */
            LOG_ERROR("store: COMMIT failed: %s", db_errmsg(db));
            fail_range(txn_first, last, rc);
            if (db_in_transaction(db))
                exec_cached(db, "ROLLBACK");
        }
    }
    return commits;
}

/* Connects the writer again, pausing between attempts, until deadline_ms
 * (uv_hrtime in ms). 0 when connected, -1 when the deadline passed. */
static int reconnect_until(store *s, uint64_t deadline_ms)
{
    unsigned pause = 50;
    for (;;) {
        if (db_reconnect(s->wdb) == DB_OK) {
            LOG_INFO("store: connected to PostgreSQL again");
            return 0;
        }
        uint64_t now = uv_hrtime() / 1000000;
        if (now >= deadline_ms) {
            LOG_ERROR("store: PostgreSQL unreachable for %d s (%s): failing the waiting writes",
                      STORE_RECONNECT_WAIT_MS / 1000, db_errmsg(s->wdb));
            return -1;
        }
        uint64_t left = deadline_ms - now;
        uv_sleep((unsigned)(left < pause ? left : pause));
        pause = pause * 2 > STORE_RECONNECT_PAUSE_MS ? STORE_RECONNECT_PAUSE_MS : pause * 2;
    }
}

/* Runs a batch; on PostgreSQL a batch that lost its connection before its
 * COMMIT committed nothing, so it runs again once the connection is back,
 * waiting at most STORE_RECONNECT_WAIT_MS; past that its writes fail with
 * DB_IOERR. */
static unsigned run_batch_connected(store *s, op_list *batch)
{
    uint64_t deadline = 0;
    for (;;) {
        if (db_connection_lost(s->wdb)) {
            if (!deadline) {
                LOG_WARN("store: lost the connection to PostgreSQL (%s); writes wait for it", db_errmsg(s->wdb));
                deadline = uv_hrtime() / 1000000 + STORE_RECONNECT_WAIT_MS;
            }
            if (reconnect_until(s, deadline) != 0) {
                for (store_op *op = batch->head; op; op = op->next)
                    op->status = DB_IOERR;
                return 0;
            }
        }
        bool lost;
        unsigned commits = run_batch(s->wdb, batch, &lost);
        if (!lost)
            return commits;
    }
}

/* Hands applied (and, with fsync on, synced) ops to the loop. Called with
 * s->mu held, which is released while the loop is woken. */
static void report_locked(store *s, op_list *ops)
{
    list_append(&s->completed, ops);
    uv_mutex_unlock(&s->mu);
    uv_async_send(s->async);
    uv_mutex_lock(&s->mu);
}

/* ---- the threads beside the loop ---- */

/* The writer, the syncer and the checkpointer run as SCHED_BATCH: woken,
 * they take a core that is free but do not preempt the loop (or a client on
 * the same machine) in the middle of its turn. Measured with rtm-bench,
 * builds alternated: server CPU 5-15 % lower in rooms and p2p (fewer
 * switches), rooms delivery p99 lower, p2p answer latency unchanged
 * (docs/performance.md). A refusal is harmless: the thread keeps the
 * default policy. */
static void run_as_batch(void)
{
#ifdef SCHED_BATCH
    struct sched_param sp = {.sched_priority = 0};
    if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
        LOG_DEBUG("store: SCHED_BATCH refused: %s", strerror(errno));
#endif
}

/* ---- WAL checkpoints (SQLite) ---- */

/* Counts a checkpoint that answered rc with the WAL at log frames, done
 * of them copied; with s->mu held. */
static void ckpt_account_locked(store *s, int rc, int log, int done, uint64_t *runs)
{
    if (log < 0 || done < 0) {
        LOG_WARN("store: WAL checkpoint failed: %s", db_errstr(rc));
        return;
    }
    (*runs)++;
    /* A smaller WAL than at the last checkpoint was started again since. */
    int before = log < s->ckpt_log ? 0 : s->ckpt_done;
    if (done > before)
        s->wal.frames_checkpointed += (uint64_t)(done - before);
    s->ckpt_log = log;
    s->ckpt_done = done;
}

/* One checkpoint on db (the writer's or the checkpointer's connection),
 * timed in stage and counted in runs; with s->mu held, released while it
 * runs. */
static void checkpoint_locked(store *s, db_conn *db, int mode, lat_stage stage, uint64_t *runs)
{
    s->ckpt_busy = 1;
    uv_mutex_unlock(&s->mu);
    int log, done;
    uint64_t t0 = lat_now();
    int rc = db_wal_checkpoint(db, mode, &log, &done);
    lat_since(stage, t0, lat_now());
    uv_mutex_lock(&s->mu);
    ckpt_account_locked(s, rc, log, done, runs);
    s->ckpt_busy = 0;
    uv_cond_broadcast(&s->ckpt_cv);
}

/* The writer's own checkpoint; with s->mu held. */
static void writer_checkpoint_locked(store *s, int mode)
{
    checkpoint_locked(s, s->wdb, mode, LAT_B_CKPT, &s->wal.checkpoints_writer);
}

/* After a commit of the writer: wakes the checkpointer, or checkpoints to
 * restart the WAL (see the file comment). With s->mu held; true when the
 * writer checkpointed. */
static bool wal_after_commit_locked(store *s)
{
    int frames = db_wal_frames(s->wdb);
    if (frames < s->wal_frames) {
        s->wal.restarts++;
        s->ckpt_mark = 0;
        s->ckpt_log = s->ckpt_done = 0;
    }
    s->wal_frames = frames;
    s->wal.wal_frames = (uint64_t)frames;
    if (frames >= STORE_CKPT_HARD) {
        while (s->ckpt_busy)
            uv_cond_wait(&s->ckpt_cv, &s->mu);
        writer_checkpoint_locked(s, DB_CKPT_RESTART);
        return true;
    }
    if (s->ckpt_busy)
        return false;
    if (frames >= STORE_CKPT_RESTART) {
        /* The checkpointer copies what is left until little is, or until
         * it has chased the writer for STORE_CKPT_START frames. */
        if (frames - s->ckpt_done <= STORE_CKPT_TAIL || frames >= STORE_CKPT_RESTART + STORE_CKPT_START) {
            writer_checkpoint_locked(s, DB_CKPT_PASSIVE);
            return true;
        }
        if (!s->ckpt_wanted) {
            s->ckpt_wanted = 1;
            uv_cond_broadcast(&s->ckpt_cv);
        }
    } else if (frames - s->ckpt_mark >= STORE_CKPT_START) {
        s->ckpt_mark = frames;
        s->ckpt_wanted = 1;
        uv_cond_broadcast(&s->ckpt_cv);
    }
    return false;
}

static void checkpointer_main(void *arg)
{
    store *s = arg;
    run_as_batch();
    uv_mutex_lock(&s->mu);
    for (;;) {
        while (!s->ckpt_stop && (!s->ckpt_wanted || s->ckpt_busy))
            uv_cond_wait(&s->ckpt_cv, &s->mu);
        if (s->ckpt_stop)
            break;
        s->ckpt_wanted = 0;
        checkpoint_locked(s, s->cdb, DB_CKPT_PASSIVE, LAT_C_RUN, &s->wal.checkpoints_thread);
    }
    uv_mutex_unlock(&s->mu);
}

/* ---- writer thread (main) ---- */

/* The queue's first batch_max ops, with the counts kept. s->mu held. */
static op_list take_batch(store *s)
{
    op_list batch = list_take(&s->queue, s->batch_max);
    for (store_op *p = batch.head; p; p = p->next) {
        s->queued--;
        s->queued_urgent -= !p->patient;
    }
    return batch;
}

/* While every queued op is patient (its effects already seen; only its
 * done callback waits for the commit), a batch starts at most once per
 * patient interval after the previous one was taken, so that the writes of
 * several loop turns share one commit and one sync (docs/performance.md,
 * "Patient writes"). An urgent op, a full batch or a stop ends the wait;
 * the loop's hand-overs of patient ops do not wake the writer meanwhile.
 * s->mu held. */
static void wait_out_patient_interval(store *s, uint64_t last_take)
{
    if (!s->patient_ns || !last_take)
        return;
    uint64_t until = last_take + s->patient_ns;
    s->writer_waits_out = true;
    for (;;) {
        uint64_t now = uv_hrtime();
        if (s->queued_urgent || s->queued >= s->batch_max || s->stopping || now >= until)
            break;
        uv_cond_timedwait(&s->cv, &s->mu, until - now);
    }
    s->writer_waits_out = false;
}

static void writer_main(void *arg)
{
    store *s = arg;
    run_as_batch();
    db_cache_use(s->wdb);
    uv_mutex_lock(&s->mu);
    uint64_t idle0 = lat_now(), last_take = 0;
    for (;;) {
        while (!s->queue.head && !s->stopping)
            uv_cond_wait(&s->cv, &s->mu);
        if (!s->queue.head)
            break;
        wait_out_patient_interval(s, last_take);
        last_take = uv_hrtime();
        op_list batch = take_batch(s);
        uv_mutex_unlock(&s->mu);

        uint64_t t_take = lat_now();
        lat_since(LAT_B_IDLE, idle0, t_take);
        unsigned nops = 0;
        for (store_op *p = batch.head; p; p = p->next, nops++)
            p->t_take = t_take;
        lat_record(LAT_B_SIZE, nops);
        unsigned commits = run_batch_connected(s, &batch);
        uint64_t t_commit = lat_now();
        for (store_op *p = batch.head; p; p = p->next)
            p->t_commit = t_commit;
        idle0 = t_commit;

        uv_mutex_lock(&s->mu);
        s->commits += commits;
        if (s->fsync) {
            list_append(&s->committed, &batch);
            uv_cond_signal(&s->sync_cv);
        } else {
            report_locked(s, &batch);
        }
        if (commits > 0 && s->cdb && wal_after_commit_locked(s))
            idle0 = lat_now(); /* the checkpoint is not idle time */
    }
    s->writer_done = 1;
    uv_cond_signal(&s->sync_cv);
    uv_mutex_unlock(&s->mu);
    db_cache_use(NULL);
}

/* ---- syncer thread ---- */

/* True when a and b (statx with at least STATX_INO) are the same file. */
static bool same_file(const struct statx *a, const struct statx *b)
{
    return a->stx_ino == b->stx_ino && a->stx_dev_major == b->stx_dev_major && a->stx_dev_minor == b->stx_dev_minor;
}

/* fdatasync of the WAL file through the syncer's own descriptor (fsync
 * works on the file, whichever descriptor names it). The descriptor is
 * opened again if the path now names another file. The path is checked for
 * its inode only: asking for a file's times (stat, fstat) on a kernel with
 * fine-grained timestamps makes the next write to it store new ones, and
 * on ext4 without a journal every fdatasync of the WAL then wrote its inode
 * too, a second disk write per sync (docs/performance.md, "The syncer's
 * stat"). Returns 0 or an errno. */
static int sync_wal(store *s, const char *wal_path)
{
    struct statx by_path;
    if (statx(AT_FDCWD, wal_path, 0, STATX_INO, &by_path) != 0)
        return errno;
    if (s->wal_fd >= 0 && !same_file(&s->wal_id, &by_path)) {
        close(s->wal_fd);
        s->wal_fd = -1;
    }
    if (s->wal_fd < 0) {
        if ((s->wal_fd = open(wal_path, O_RDONLY | O_CLOEXEC)) < 0)
            return errno;
        if (statx(s->wal_fd, "", AT_EMPTY_PATH, STATX_INO, &s->wal_id) != 0) {
            int err = errno;
            close(s->wal_fd);
            s->wal_fd = -1;
            return err;
        }
    }
    return fdatasync(s->wal_fd) == 0 ? 0 : errno;
}

static void syncer_main(void *arg)
{
    store *s = arg;
    char wal_path[sizeof s->path + 4];
    snprintf(wal_path, sizeof wal_path, "%s-wal", s->path);
    run_as_batch();
    uv_mutex_lock(&s->mu);
    for (;;) {
        while (!s->committed.head && !s->writer_done)
            uv_cond_wait(&s->sync_cv, &s->mu);
        if (!s->committed.head)
            break;
        op_list synced = s->committed;
        s->committed = (op_list){NULL, NULL};
        uv_mutex_unlock(&s->mu);

        uint64_t t0 = lat_now();
        int err = sync_wal(s, wal_path);
        uint64_t t1 = lat_now();
        lat_record(LAT_S_FDATASYNC, t1 - t0);
        unsigned nops = 0;
        for (store_op *p = synced.head; p; p = p->next, nops++) {
            p->t_sync0 = t0;
            p->t_sync1 = t1;
        }
        lat_record(LAT_S_COMMITS, nops);
        if (err != 0) {
            LOG_ERROR("store: fdatasync of %s failed: %s", wal_path, strerror(err));
            fail_range(synced.head, synced.tail, DB_IOERR);
        }

        uv_mutex_lock(&s->mu);
        s->syncs += err == 0;
        report_locked(s, &synced);
    }
    uv_mutex_unlock(&s->mu);
}

/* Lets the writer finish the queue and the syncer the commits, and joins
 * them and the checkpointer. */
static void store_stop_threads(store *s)
{
    uv_mutex_lock(&s->mu);
    s->stopping = 1;
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    if (s->thread_started)
        uv_thread_join(&s->thread);
    s->thread_started = 0;
    if (s->syncer_started)
        uv_thread_join(&s->syncer);
    s->syncer_started = 0;
    if (s->ckpt_started) {
        uv_mutex_lock(&s->mu);
        s->ckpt_stop = 1;
        uv_cond_broadcast(&s->ckpt_cv);
        uv_mutex_unlock(&s->mu);
        uv_thread_join(&s->ckpointer);
    }
    s->ckpt_started = 0;
}

/* ---- completions on the loop ---- */

/* Keeps the loop alive exactly while writes are pending. */
static void update_ref(store *s)
{
    if (!s->async || s->closing)
        return;
    size_t pending = store_pending(s) - s->reads_inflight;
    if (pending > 0 && !s->referenced) {
        uv_ref((uv_handle_t *)s->async);
        s->referenced = 1;
    } else if (pending == 0 && s->referenced) {
        uv_unref((uv_handle_t *)s->async);
        s->referenced = 0;
    }
}

/* Takes the completed ops under one lock, then runs their done callbacks
 * one at a time, so that a callback may call store_close (which drains the
 * rest itself). Returns how many ran. */
static unsigned dispatch(store *s)
{
    s->dispatching++;
    uint64_t t_run = lat_now();
    unsigned nops = 0;
    uv_mutex_lock(&s->mu);
    size_t taken = 0;
    for (store_op *p = s->completed.head; p; p = p->next)
        taken++;
    list_append(&s->ready, &s->completed);
    s->completed = (op_list){NULL, NULL};
    s->pending -= taken;
    uv_mutex_unlock(&s->mu);
    s->nready += taken;
    while (!s->free_deferred) {
        store_op *op = list_pop(&s->ready);
        if (!op)
            break;
        s->nready--;
        uint64_t now = lat_now();
        nops++;
        lat_since(LAT_QUEUE, op->t_submit, op->t_take);
        lat_since(LAT_APPLY, op->t_take, op->t_commit);
        if (op->t_sync0) {
            lat_since(LAT_SYNC_WAIT, op->t_commit, op->t_sync0);
            lat_since(LAT_SYNC, op->t_sync0, op->t_sync1);
            lat_since(LAT_WAKE, op->t_sync1, now);
        } else {
            lat_since(LAT_WAKE, op->t_commit, now);
        }
        if (op->done)
            op->done(op->arg, op->status);
        free(op);
    }
    if (nops) {
        lat_since(LAT_DISPATCH_RUN, t_run, lat_now());
        lat_record(LAT_DISPATCH_SIZE, nops);
    }
    s->dispatching--;
    return nops;
}

/* Closes a reader (with its cached statements). */
static void reader_close(reader *r)
{
    db_close(r->db);
    free(r);
}

static void store_free(store *s)
{
    if (s->reads_inflight > 0)
        return; /* the last read to finish frees the store */
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    free(s->pg_url);
    if (s->sync_ready) {
        for (int i = 0; i < s->nidle; i++)
            reader_close(s->idle_readers[i]);
        uv_cond_destroy(&s->ckpt_cv);
        uv_cond_destroy(&s->sync_cv);
        uv_cond_destroy(&s->cv);
        uv_mutex_destroy(&s->mu);
        uv_mutex_destroy(&s->rmu);
    }
    free(s);
}

static void on_async(uv_async_t *h)
{
    store *s = h->data;
    unsigned ran = dispatch(s);
    if (s->free_deferred) {
        if (s->dispatching == 0)
            store_free(s);
        return;
    }
    if (ran && s->after_dispatch)
        s->after_dispatch(s->after_dispatch_arg);
    update_ref(s);
}

void store_on_dispatched(store *s, void (*fn)(void *arg), void *arg)
{
    s->after_dispatch = fn;
    s->after_dispatch_arg = arg;
}

static void on_handle_closed(uv_handle_t *h)
{
    free(h);
}

/* Closes the completion and hand-over handles; their close callbacks free
 * them. */
static void close_loop_handles(store *s)
{
    if (s->async) {
        s->async->data = NULL;
        uv_close((uv_handle_t *)s->async, on_handle_closed);
        s->async = NULL;
    }
    if (s->handoff) {
        uv_close((uv_handle_t *)s->handoff, on_handle_closed);
        s->handoff = NULL;
    }
}

/* ---- open ---- */

/* mkdir -p: parents with 0755 (less the umask), the leaf with 0700. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    size_t n = strlen(dir);
    if (n == 0) {
        set_err(err, errlen, "data directory is empty");
        return -1;
    }
    char *p = strdup(dir);
    if (!p) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    for (char *c = p + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            set_err(err, errlen, "cannot create %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *c = '/';
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        set_err(err, errlen, "cannot create %s: %s", p, strerror(errno));
        free(p);
        return -1;
    }
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s is not a directory", p);
        free(p);
        return -1;
    }
    free(p);
    return 0;
}

static int enable_wal(db_conn *db, const char *path, char *err, size_t errlen)
{
    db_stmt_t *st = NULL;
    int ok = 0;
    if (db_prepare(db, "PRAGMA journal_mode = WAL", &st) == DB_OK && db_step(st) == DB_ROW) {
        const char *mode = db_column_text(st, 0);
        ok = mode && strcmp(mode, "wal") == 0;
    }
    if (!ok)
        set_err(err, errlen, "cannot switch %s to WAL mode: %s", path, db_errmsg(db));
    if (st)
        db_finalize(st);
    return ok ? 0 : -1;
}

/* Allocates a store with its defaults; NULL when memory ran out. */
static store *store_alloc(uv_loop_t *loop, unsigned batch_max, bool fsync)
{
    store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->batch_max = batch_max ? batch_max : STORE_DEFAULT_BATCH;
    s->fsync = fsync;
    s->wal_fd = -1;
    return s;
}

/* Opens the SQLite database at s->path: migrations, WAL, the reader. */
static int open_sqlite(store *s, char *err, size_t errlen)
{
    s->wdb = db_open(s->path, DB_OPEN_CREATE, err, errlen);
    if (!s->wdb)
        return -1;
    /* Migrate first, so that a database this build refuses is left as it
     * was; WAL mode is then recorded in the file for every connection. */
    char merr[256];
    if (store_schema_migrate(s->wdb, &s->schema_version, &s->migrations_applied, merr, sizeof merr) != 0) {
        set_err(err, errlen, "%s: %s", s->path, merr);
        return -1;
    }
    if (enable_wal(s->wdb, s->path, err, errlen) != 0 || db_wal_manual(s->wdb) != DB_OK)
        return -1;
    s->rdb = db_open(s->path, DB_OPEN_READWRITE, err, errlen);
    if (!s->rdb)
        return -1;
    s->cdb = db_open(s->path, DB_OPEN_READWRITE, err, errlen);
    return s->cdb ? 0 : -1;
}

/* Connects the writer and the reader to PostgreSQL and brings the schema
 * to this build's version. */
static int open_postgres(store *s, char *err, size_t errlen)
{
    s->wdb = db_open_postgres(s->pg_url, DB_OPEN_CREATE, err, errlen);
    if (!s->wdb)
        return -1;
    char merr[256];
    if (store_schema_migrate(s->wdb, &s->schema_version, &s->migrations_applied, merr, sizeof merr) != 0) {
        set_err(err, errlen, "PostgreSQL: %s", merr);
        return -1;
    }
    s->rdb = db_open_postgres(s->pg_url, DB_OPEN_READWRITE, err, errlen);
    return s->rdb ? 0 : -1;
}

/* Starts a thread that runs beside the writer (the syncer, the
 * checkpointer); when it cannot start, stops the threads already running
 * and closes the completion handle. */
static int start_beside_writer(store *s, uv_thread_t *thread, void (*main_fn)(void *), const char *name,
                               int *started, char *err, size_t errlen)
{
    int rc = uv_thread_create(thread, main_fn, s);
    if (rc != 0) {
        set_err(err, errlen, "cannot start the %s thread: %s", name, uv_strerror(rc));
        store_stop_threads(s);
        close_loop_handles(s);
        return -1;
    }
    *started = 1;
    return 0;
}

/* Sets up the locks, the completion handle and the threads of a store
 * whose connections are open; `where` names the database in the log. */
static int store_start(store *s, const char *where, char *err, size_t errlen)
{
    if (uv_mutex_init(&s->mu) != 0) {
        set_err(err, errlen, "cannot create the store mutex");
        return -1;
    }
    if (uv_cond_init(&s->cv) != 0) {
        uv_mutex_destroy(&s->mu);
        set_err(err, errlen, "cannot create the store condition variable");
        return -1;
    }
    if (uv_cond_init(&s->sync_cv) != 0) {
        uv_cond_destroy(&s->cv);
        uv_mutex_destroy(&s->mu);
        set_err(err, errlen, "cannot create the store condition variable");
        return -1;
    }
    if (uv_cond_init(&s->ckpt_cv) != 0) {
        uv_cond_destroy(&s->sync_cv);
        uv_cond_destroy(&s->cv);
        uv_mutex_destroy(&s->mu);
        set_err(err, errlen, "cannot create the store condition variable");
        return -1;
    }
    if (uv_mutex_init(&s->rmu) != 0) {
        uv_cond_destroy(&s->ckpt_cv);
        uv_cond_destroy(&s->sync_cv);
        uv_cond_destroy(&s->cv);
        uv_mutex_destroy(&s->mu);
        set_err(err, errlen, "cannot create the store reader mutex");
        return -1;
    }
    s->sync_ready = 1;

    s->async = malloc(sizeof *s->async);
    if (!s->async) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    int rc = uv_async_init(s->loop, s->async, on_async);
    if (rc != 0) {
        free(s->async);
        s->async = NULL;
        set_err(err, errlen, "uv_async_init: %s", uv_strerror(rc));
        return -1;
    }
    s->async->data = s;
    uv_unref((uv_handle_t *)s->async);
    s->handoff = malloc(sizeof *s->handoff);
    if (!s->handoff || uv_prepare_init(s->loop, s->handoff) != 0) {
        free(s->handoff);
        s->handoff = NULL;
        close_loop_handles(s);
        set_err(err, errlen, "cannot set up the store's hand-over handle");
        return -1;
    }
    s->handoff->data = s;
    uv_prepare_start(s->handoff, on_prepare);
    uv_unref((uv_handle_t *)s->handoff);

    rc = uv_thread_create(&s->thread, writer_main, s);
    if (rc != 0) {
        set_err(err, errlen, "cannot start the writer thread: %s", uv_strerror(rc));
        close_loop_handles(s);
        return -1;
    }
    s->thread_started = 1;
    if (s->fsync && start_beside_writer(s, &s->syncer, syncer_main, "syncer", &s->syncer_started, err, errlen) != 0)
        return -1;
    if (s->cdb &&
        start_beside_writer(s, &s->ckpointer, checkpointer_main, "checkpointer", &s->ckpt_started, err, errlen) != 0)
        return -1;

    if (s->migrations_applied > 0)
        LOG_INFO("store: %s at schema version %d (%d migration%s applied)", where, s->schema_version,
                 s->migrations_applied, s->migrations_applied == 1 ? "" : "s");
    else
        LOG_INFO("store: %s at schema version %d", where, s->schema_version);
    return 0;
}

/* Frees a store that failed to open. */
static void store_discard(store *s)
{
    db_close(s->cdb);
    db_close(s->rdb);
    db_close(s->wdb);
    store_free(s);
}

store *store_open(uv_loop_t *loop, const char *data_dir, unsigned batch_max, bool fsync, char *err,
                  size_t errlen)
{
    if (!loop || !data_dir) {
        set_err(err, errlen, "store_open: no loop or data directory");
        return NULL;
    }
    if (make_dirs(data_dir, err, errlen) != 0)
        return NULL;
    store *s = store_alloc(loop, batch_max, fsync);
    if (!s) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    if ((size_t)snprintf(s->path, sizeof s->path, "%s/%s", data_dir, STORE_FILE) >= sizeof s->path) {
        set_err(err, errlen, "data directory path too long: %s", data_dir);
        store_discard(s);
        return NULL;
    }
    if (open_sqlite(s, err, errlen) != 0 || store_start(s, s->path, err, errlen) != 0) {
        store_discard(s);
        return NULL;
    }
    return s;
}

store *store_open_postgres(uv_loop_t *loop, const char *conninfo, unsigned batch_max, char *err, size_t errlen)
{
    if (!loop || !conninfo || !*conninfo) {
        set_err(err, errlen, "store_open_postgres: no loop or connection string");
        return NULL;
    }
    /* No syncer: PostgreSQL answers a COMMIT once it is durable. */
    store *s = store_alloc(loop, batch_max, false);
    if (s && !(s->pg_url = strdup(conninfo))) {
        store_free(s);
        s = NULL;
    }
    if (!s) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    if (open_postgres(s, err, errlen) != 0 || store_start(s, "PostgreSQL", err, errlen) != 0) {
        store_discard(s);
        return NULL;
    }
    return s;
}

int store_schema_version(store *s)
{
    return s->schema_version;
}

int store_migrations_applied(store *s)
{
    return s->migrations_applied;
}

/* ---- start-up helpers (reader connection) ---- */

int store_load_projects(store *s, store_project *out, size_t cap, size_t *count)
{
    *count = 0;
    db_stmt_t *st = NULL;
    int rc = db_prepare(s->rdb, "SELECT pid, secret, created_at FROM projects ORDER BY pid", &st);
    if (rc != DB_OK) {
        LOG_ERROR("store: cannot load projects: %s", db_errmsg(s->rdb));
        return -1;
    }
    size_t n = 0;
    int ret = 0;
    while ((rc = db_step(st)) == DB_ROW) {
        if (n == cap) {
            LOG_ERROR("store: the database holds more than %zu projects", cap);
            ret = -1;
            break;
        }
        int64_t pid = db_column_int64(st, 0);
        const char *secret = db_column_text(st, 1);
        int len = db_column_bytes(st, 1);
        if (!secret || (size_t)len >= sizeof out[n].secret) {
            LOG_ERROR("store: project %lld has an invalid secret", (long long)pid);
            ret = -1;
            break;
        }
        out[n].pid = pid;
        memcpy(out[n].secret, secret, (size_t)len + 1);
        out[n].created_at = db_column_int64(st, 2);
        n++;
    }
    if (ret == 0 && rc != DB_DONE) {
        LOG_ERROR("store: cannot load projects: %s", db_errmsg(s->rdb));
        ret = -1;
    }
    db_finalize(st);
    *count = n;
    return ret;
}

int store_ensure_project(store *s, int64_t pid, const char *secret)
{
    if (!secret || strlen(secret) >= sizeof(((store_project *)0)->secret)) {
        LOG_ERROR("store: project %lld: missing or too long secret", (long long)pid);
        return -1;
    }
    db_stmt_t *st = NULL;
    int rc = db_prepare(s->rdb, "INSERT INTO projects(pid, secret, created_at) VALUES(?1, ?2, ?3) "
                                "ON CONFLICT(pid) DO NOTHING", &st);
    if (rc == DB_OK) {
        db_bind_int64(st, 1, pid);
        db_bind_text(st, 2, secret, -1);
        db_bind_int64(st, 3, (int64_t)time(NULL));
        rc = db_step(st);
    }
    db_finalize(st);
    if (rc != DB_DONE) {
        LOG_ERROR("store: cannot add project %lld: %s", (long long)pid, db_errmsg(s->rdb));
        return -1;
    }
    if (db_changes(s->rdb) > 0) {
        LOG_INFO("store: added project %lld", (long long)pid);
        return 0;
    }

    /* Already known: keep it, but say so if the secret differs. */
    rc = db_prepare(s->rdb, "SELECT secret FROM projects WHERE pid = ?1", &st);
    if (rc == DB_OK) {
        db_bind_int64(st, 1, pid);
        if (db_step(st) == DB_ROW) {
            const char *stored = db_column_text(st, 0);
            if (!stored || strcmp((const char *)stored, secret) != 0)
                LOG_WARN("store: project %lld already exists with another secret; keeping the stored one",
                         (long long)pid);
        }
    }
    db_finalize(st);
    return 0;
}

int store_step_finalize(db_stmt_t *st)
{
    int rc = db_step(st);
    db_finalize(st);
    return rc == DB_DONE ? DB_OK : rc;
}

int store_run_startup(store *s, store_apply_fn fn, void *arg)
{
    return fn(s->rdb, arg);
}

/* ---- writes ---- */

int store_submit(store *s, store_apply_fn apply, store_done_fn done, void *arg)
{
    return store_submit_many(s, apply, NULL, done, arg);
}

static int submit(store *s, store_apply_fn apply, store_apply_many_fn apply_many, store_done_fn done, void *arg,
                  bool patient)
{
    if (!s || s->closing || !apply)
        return -1;
    store_op *op = calloc(1, sizeof *op);
    if (!op)
        return -1;
    op->apply = apply;
    op->apply_many = apply_many;
    op->done = done;
    op->arg = arg;
    op->patient = patient;
    op->t_submit = lat_now();
    list_push(&s->held, op);
    s->nheld++;
    s->nheld_urgent += !patient;
    if (!s->referenced) {
        uv_ref((uv_handle_t *)s->async);
        s->referenced = 1;
    }
    return 0;
}

int store_submit_many(store *s, store_apply_fn apply, store_apply_many_fn apply_many, store_done_fn done,
                      void *arg)
{
    return submit(s, apply, apply_many, done, arg, false);
}

int store_submit_patient(store *s, store_apply_fn apply, store_apply_many_fn apply_many, store_done_fn done,
                         void *arg)
{
    return submit(s, apply, apply_many, done, arg, true);
}

void store_set_patient_interval(store *s, uint64_t us)
{
    s->patient_ns = us * 1000;
}

/* One lock and one wake-up for all the writes submitted since the last
 * hand-over. It runs before the loop waits for events (a prepare handle),
 * so after the turn's pushes and answers were written (on_check): a writer
 * woken per write took the lock from the loop, and the loop's core from it,
 * in the middle of its turn. */
void store_hand_over(store *s)
{
    if (!s->held.head)
        return;
    uint64_t t0 = lat_now();
    uv_mutex_lock(&s->mu);
    lat_since(LAT_SUBMIT_LOCK, t0, lat_now());
    list_append(&s->queue, &s->held);
    s->pending += s->nheld;
    s->queued += s->nheld;
    s->queued_urgent += s->nheld_urgent;
    if (!s->writer_waits_out || s->nheld_urgent || s->queued >= s->batch_max)
        uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    s->held = (op_list){NULL, NULL};
    s->nheld = 0;
    s->nheld_urgent = 0;
}

static void on_prepare(uv_prepare_t *h)
{
    store_hand_over(h->data);
}

size_t store_pending(store *s)
{
    uv_mutex_lock(&s->mu);
    size_t n = s->pending;
    uv_mutex_unlock(&s->mu);
    return n + s->nheld + s->nready + s->reads_inflight;
}

/* ---- reads ---- */

typedef struct read_op {
    uv_work_t work;
    store *s;
    store_apply_fn fn;
    store_done_fn done;
    void *arg;
    int status;
} read_op;

static void read_work(uv_work_t *w)
{
    read_op *op = w->data;
    store *s = op->s;
    reader *r = NULL;
    uv_mutex_lock(&s->rmu);
    if (s->nidle > 0)
        r = s->idle_readers[--s->nidle];
    uv_mutex_unlock(&s->rmu);
    if (r && db_connection_lost(r->db)) { /* PostgreSQL closed it while idle */
        reader_close(r);
        r = NULL;
    }
    if (!r) {
        char err[256];
        r = calloc(1, sizeof *r);
        db_conn *db = NULL;
        if (r)
            db = s->pg_url ? db_open_postgres(s->pg_url, DB_OPEN_READONLY, err, sizeof err)
                           : db_open(s->path, DB_OPEN_READONLY, err, sizeof err);
        if (!db) {
            LOG_ERROR("store: %s", r ? err : "out of memory for a reader");
            free(r);
            op->status = DB_CANTOPEN;
            return;
        }
        r->db = db;
    }
    /* This thread holds r until it goes back to the pool: fn's statements
     * come from, and go back to, r's cache. */
    db_cache_use(r->db);
    op->status = op->fn(r->db, op->arg);
    db_cache_use(NULL);
    uv_mutex_lock(&s->rmu);
    if (s->nidle < STORE_MAX_IDLE_READERS && !db_connection_lost(r->db)) {
        s->idle_readers[s->nidle++] = r;
        r = NULL;
    }
    uv_mutex_unlock(&s->rmu);
    if (r)
        reader_close(r);
}

static void read_after(uv_work_t *w, int status)
{
    read_op *op = w->data;
    store *s = op->s;
    s->reads_inflight--;
    if (op->done)
        op->done(op->arg, status == UV_ECANCELED ? DB_ABORT : op->status);
    free(op);
    if (s->closing && s->reads_inflight == 0 && s->dispatching == 0)
        store_free(s);
}

int store_read(store *s, store_apply_fn fn, store_done_fn done, void *arg)
{
    if (!s || s->closing || !fn)
        return -1;
    read_op *op = calloc(1, sizeof *op);
    if (!op)
        return -1;
    op->work.data = op;
    op->s = s;
    op->fn = fn;
    op->done = done;
    op->arg = arg;
    if (uv_queue_work(s->loop, &op->work, read_work, read_after) != 0) {
        free(op);
        return -1;
    }
    s->reads_inflight++;
    return 0;
}

int64_t store_disk_bytes(const store *s)
{
    if (store_is_postgres(s))
        return -1;
    char wal[sizeof s->path + 8];
    snprintf(wal, sizeof wal, "%s-wal", s->path);
    struct stat db, log;
    int64_t total = stat(s->path, &db) == 0 ? (int64_t)db.st_size : 0;
    if (stat(wal, &log) == 0)
        total += (int64_t)log.st_size;
    return total;
}

bool store_is_postgres(const store *s)
{
    return s && s->pg_url;
}

uint64_t store_commit_count(store *s)
{
    uv_mutex_lock(&s->mu);
    uint64_t n = s->commits;
    uv_mutex_unlock(&s->mu);
    return n;
}

uint64_t store_sync_count(store *s)
{
    uv_mutex_lock(&s->mu);
    uint64_t n = s->syncs;
    uv_mutex_unlock(&s->mu);
    return n;
}

void store_wal_stats_get(store *s, store_wal_stats *out)
{
    uv_mutex_lock(&s->mu);
    *out = s->wal;
    uv_mutex_unlock(&s->mu);
}

/* ---- close ---- */

void store_close(store *s)
{
    if (!s || s->closing)
        return;
    store_hand_over(s);
    s->closing = 1;

    store_stop_threads(s);

    /* Every op is in the completed list now; report them here. */
    dispatch(s);

    close_loop_handles(s);

    db_close(s->rdb);
    s->rdb = NULL;
    db_close(s->cdb);
    s->cdb = NULL;
    if (!s->pg_url && db_exec(s->wdb, "PRAGMA wal_checkpoint(TRUNCATE)") != DB_OK)
        LOG_WARN("store: WAL checkpoint failed: %s", db_errmsg(s->wdb));
    int rc = db_close(s->wdb);
    if (rc != DB_OK)
        LOG_ERROR("store: closing the database failed: %s", db_errstr(rc));
    s->wdb = NULL;
    LOG_INFO("store: closed");

    if (s->dispatching > 0)
        s->free_deferred = 1;   /* called from a done callback: on_async frees */
    else
        store_free(s);
}
