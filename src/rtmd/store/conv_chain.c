/* The virtual table conv_chain: one conversation's messages, walked along
 * their chain (migration 21, store_schema.c). Each message row keeps the id
 * of its conversation's previous message (prev_id, indexed so that the next
 * one is found too), conv_last keeps each conversation's newest id, and
 * conv_index holds a sparse subset of the conversation's ids (every
 * CHAIN_SPARSE-th message, messages.c, and every message stored before
 * migration 21) from which a walk starts near an id bound.
 *
 * A query must name the conversation (pid, conv_type, conv_a and conv_b by
 * equality); bounds on id and ORDER BY id in either direction are done
 * here, every other condition by SQLite on the rows given. Bounds on mtime
 * are checked by SQLite too, and used here to start and end the walk near
 * them: messages.c never lets mtime decrease as id grows, so the messages
 * at or after a time are those from one id on (found by the bisection of
 * mtime_order.h) and a walk past a time bound finds no more. The
 * view conv_messages is this table, so every reader's SQL is the same on
 * SQLite and PostgreSQL (where conv_messages is messages itself).
 *
 * conv_chain_walked() (an SQL function on the same connection) counts the
 * message rows the walks read, for tests of how far a query walks. */
#include "conv_chain.h"
#include "mtime_order.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The table's columns, in the order of ROW_SQL after prev_id. */
enum { COL_ID, COL_PID, COL_TYPE, COL_A, COL_B, COL_MTIME = 11, NCOLS = 13 };

static const char *const SCHEMA_SQL =
    "CREATE TABLE x(id INTEGER, pid INTEGER, conv_type INTEGER, conv_a INTEGER, conv_b INTEGER,"
    " from_uid INTEGER, mid INTEGER, mtype INTEGER, msg BLOB, is_binary INTEGER, attrs TEXT,"
    " mtime INTEGER, deleted INTEGER)";

enum { ST_ROW, ST_NEXT, ST_LAST, ST_SPARSE_GE, ST_SPARSE_LE, ST_PROBE, NSTMTS };
static const char *const STMT_SQL[NSTMTS] = {
    [ST_ROW] = "SELECT prev_id, id, pid, conv_type, conv_a, conv_b, from_uid, mid, mtype, msg, is_binary,"
               " attrs, mtime, deleted FROM messages WHERE id = ?1",
    [ST_NEXT] = "SELECT id FROM messages WHERE prev_id = ?1",
    [ST_LAST] = "SELECT last_id FROM conv_last WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4",
    [ST_SPARSE_GE] = "SELECT id FROM conv_index WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
                     " AND id >= ?5 ORDER BY id LIMIT 1",
    [ST_SPARSE_LE] = "SELECT id FROM conv_index WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
                     " AND id <= ?5 ORDER BY id DESC LIMIT 1",
    [ST_PROBE] = "SELECT id, mtime FROM messages WHERE id >= ?1 ORDER BY id LIMIT 1",
};

/* idxNum: which bounds xFilter gets (id's lower, id's upper, mtime's
 * lower, mtime's upper, in that order), and the direction. */
enum {
    HAS_LOWER = 1,
    LOWER_INCL = 2,
    HAS_UPPER = 4,
    UPPER_INCL = 8,
    DESC = 16,
    HAS_MLOWER = 32,
    MLOWER_INCL = 64,
    HAS_MUPPER = 128,
    MUPPER_INCL = 256,
};

typedef struct chain_vtab {
    sqlite3_vtab base;
    sqlite3 *db;
    sqlite3_int64 *walked;    /* the connection's conv_chain_walked() */
    sqlite3_stmt *st[NSTMTS]; /* lent to one cursor at a time */
    bool lent;
} chain_vtab;

typedef struct chain_cursor {
    sqlite3_vtab_cursor base;
    sqlite3_stmt *st[NSTMTS];
    bool borrowed;           /* st are the table's */
    int64_t key[4];          /* pid, conv_type, conv_a, conv_b */
    int64_t lower, upper;    /* inclusive; INT64_MIN / INT64_MAX when open */
    int64_t mlower, mupper;  /* on mtime, the same */
    bool desc;
    sqlite3_int64 *walked;
    int64_t cur;             /* the row ST_ROW is on; 0 at the end */
} chain_cursor;

static int prepare_all(sqlite3 *db, sqlite3_stmt **st)
{
    for (int i = 0; i < NSTMTS; i++) {
        int rc = sqlite3_prepare_v3(db, STMT_SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static void finalize_all(sqlite3_stmt **st)
{
    for (int i = 0; i < NSTMTS; i++) {
        sqlite3_finalize(st[i]);
        st[i] = NULL;
    }
}

static int chain_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out, char **err)
{
    (void)argc;
    (void)argv;
    int rc = sqlite3_declare_vtab(db, SCHEMA_SQL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
    chain_vtab *v = sqlite3_malloc(sizeof *v);
    if (!v)
        return SQLITE_NOMEM;
    memset(v, 0, sizeof *v);
    v->db = db;
    v->walked = aux;
    *out = &v->base;
    (void)err;
    return SQLITE_OK;
}

static int chain_disconnect(sqlite3_vtab *base)
{
    chain_vtab *v = (chain_vtab *)base;
    finalize_all(v->st);
    sqlite3_free(v);
    return SQLITE_OK;
}

/* The bounds a plan takes on one column: its first usable lower and
 * upper one, each an argument of xFilter in the order of idxNum's flags. */
typedef struct bound_pair {
    int lower, upper; /* constraint index, or -1 */
} bound_pair;

static void take_constraint(const struct sqlite3_index_constraint *c, int i, bound_pair *b, int *flags,
                            int has_lower)
{
    /* has_lower is HAS_LOWER or HAS_MLOWER; that column's _INCL flag and
     * its upper bound's two flags are has_lower times 2, 4 and 8. */
    if (b->lower < 0 && (c->op == SQLITE_INDEX_CONSTRAINT_GT || c->op == SQLITE_INDEX_CONSTRAINT_GE)) {
        b->lower = i;
        *flags |= has_lower | (c->op == SQLITE_INDEX_CONSTRAINT_GE ? has_lower * 2 : 0);
    } else if (b->upper < 0 && (c->op == SQLITE_INDEX_CONSTRAINT_LT || c->op == SQLITE_INDEX_CONSTRAINT_LE)) {
        b->upper = i;
        *flags |= has_lower * 4 | (c->op == SQLITE_INDEX_CONSTRAINT_LE ? has_lower * 8 : 0);
    }
}

static void use_constraint(sqlite3_index_info *info, int i, int *argv, bool omit)
{
    if (i < 0)
        return;
    info->aConstraintUsage[i].argvIndex = (*argv)++;
    info->aConstraintUsage[i].omit = omit;
}

/* A plan needs the whole conversation key by equality; it takes one lower
 * and one upper bound on id (done here), the same on mtime (checked by
 * SQLite as well), and ORDER BY id either way. */
static int chain_best_index(sqlite3_vtab *base, sqlite3_index_info *info)
{
    (void)base;
    int key[4] = {-1, -1, -1, -1}, flags = 0;
    bound_pair id = {-1, -1}, mtime = {-1, -1};
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (!c->usable)
            continue;
        if (c->iColumn >= COL_PID && c->iColumn <= COL_B && c->op == SQLITE_INDEX_CONSTRAINT_EQ)
            key[c->iColumn - COL_PID] = i;
        else if (c->iColumn == COL_ID)
            take_constraint(c, i, &id, &flags, HAS_LOWER);
        else if (c->iColumn == COL_MTIME)
            take_constraint(c, i, &mtime, &flags, HAS_MLOWER);
    }
    for (int k = 0; k < 4; k++)
        if (key[k] < 0)
            return SQLITE_CONSTRAINT;
    int argv = 1;
    for (int k = 0; k < 4; k++)
        use_constraint(info, key[k], &argv, true);
    use_constraint(info, id.lower, &argv, true);
    use_constraint(info, id.upper, &argv, true);
    use_constraint(info, mtime.lower, &argv, false);
    use_constraint(info, mtime.upper, &argv, false);
    /* Newest first unless asked otherwise: the walk starts at conv_last. */
    flags |= DESC;
    if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == COL_ID) {
        if (!info->aOrderBy[0].desc)
            flags &= ~DESC;
        info->orderByConsumed = 1;
    }
    info->idxNum = flags;
    info->estimatedCost = flags & (HAS_LOWER | HAS_UPPER | HAS_MLOWER | HAS_MUPPER) ? 10.0 : 20.0;
    info->estimatedRows = 100;
    return SQLITE_OK;
}

static int chain_open(sqlite3_vtab *base, sqlite3_vtab_cursor **out)
{
    chain_vtab *v = (chain_vtab *)base;
    chain_cursor *c = sqlite3_malloc(sizeof *c);
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    c->walked = v->walked;
    int rc = SQLITE_OK;
    if (!v->lent) {
        /* The table's statements, prepared by its first cursor. */
        if (!v->st[0] && (rc = prepare_all(v->db, v->st)) != SQLITE_OK)
            finalize_all(v->st);
        if (rc == SQLITE_OK) {
            memcpy(c->st, v->st, sizeof c->st);
            c->borrowed = v->lent = true;
        }
    } else if ((rc = prepare_all(v->db, c->st)) != SQLITE_OK) {
        finalize_all(c->st);
    }
    if (rc != SQLITE_OK) {
        sqlite3_free(c);
        return rc;
    }
    *out = &c->base;
    return SQLITE_OK;
}

static int chain_close(sqlite3_vtab_cursor *base)
{
    chain_cursor *c = (chain_cursor *)base;
    if (c->borrowed) {
        for (int i = 0; i < NSTMTS; i++)
            sqlite3_reset(c->st[i]);
        ((chain_vtab *)base->pVtab)->lent = false;
    } else {
        finalize_all(c->st);
    }
    sqlite3_free(c);
    return SQLITE_OK;
}

/* One integer from a statement binding the conversation (and ?5 = arg):
 * *id is 0 when it has no row. */
static int query_id(chain_cursor *c, int which, int64_t arg, int64_t *id)
{
    sqlite3_stmt *st = c->st[which];
    sqlite3_reset(st);
    if (which == ST_NEXT) {
        sqlite3_bind_int64(st, 1, arg);
    } else {
        for (int k = 0; k < 4; k++)
            sqlite3_bind_int64(st, k + 1, c->key[k]);
        if (which != ST_LAST)
            sqlite3_bind_int64(st, 5, arg);
    }
    int rc = sqlite3_step(st);
    *id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Puts ST_ROW on message id, or ends the walk (id 0, or a row that is not
 * the conversation's, which the chain's upkeep never leaves). */
static int load(chain_cursor *c, int64_t id)
{
    sqlite3_stmt *st = c->st[ST_ROW];
    sqlite3_reset(st);
    c->cur = 0;
    if (!id)
        return SQLITE_OK;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return SQLITE_OK;
    if (rc != SQLITE_ROW)
        return rc;
    (*c->walked)++;
    for (int k = 0; k < 4; k++)
        if (sqlite3_column_int64(st, 1 + COL_PID + k) != c->key[k])
            return SQLITE_OK;
    c->cur = id;
    return SQLITE_OK;
}

/* The next row of the walk, whatever the bounds. */
static int step(chain_cursor *c)
{
    if (!c->cur)
        return SQLITE_OK;
    int64_t id = 0;
    if (c->desc) {
        sqlite3_stmt *row = c->st[ST_ROW];
        id = sqlite3_column_type(row, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(row, 0);
    } else {
        int rc = query_id(c, ST_NEXT, c->cur, &id);
        if (rc != SQLITE_OK)
            return rc;
    }
    return load(c, id);
}

/* Ends the walk once it is past the far bound, of id or of mtime. */
static void check_far_bound(chain_cursor *c)
{
    if (!c->cur)
        return;
    int64_t mtime = sqlite3_column_int64(c->st[ST_ROW], 1 + COL_MTIME);
    if (c->desc ? c->cur < c->lower || mtime < c->mlower : c->cur > c->upper || mtime > c->mupper)
        c->cur = 0;
}

/* mtime_probe_fn over the cursor's ST_PROBE. */
static int probe_row(void *ctx, int64_t at, bool *found, int64_t *id, int64_t *mtime)
{
    sqlite3_stmt *st = ((chain_cursor *)ctx)->st[ST_PROBE];
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, at);
    int rc = sqlite3_step(st);
    if ((*found = rc == SQLITE_ROW)) {
        *id = sqlite3_column_int64(st, 0);
        *mtime = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Narrows the id bounds to where the mtime bound that starts the walk
 * lets it start (mtime_order.h): the upper one going down, unless the
 * newest message is within it (the walk starts there anyway), the lower
 * one going up. The far one ends the walk instead (check_far_bound). */
static int narrow_by_time(chain_cursor *c)
{
    if (c->desc ? c->mupper == INT64_MAX : c->mlower == INT64_MIN)
        return SQLITE_OK; /* no time bound where the walk starts */
    int64_t newest = 0, from = 0;
    int rc = query_id(c, ST_LAST, 0, &newest);
    if (rc != SQLITE_OK || !newest)
        return rc;
    int64_t lo = c->lower > 0 ? c->lower : 0, hi = newest < c->upper ? newest : c->upper;
    if (lo > hi) {
        c->upper = hi; /* nothing of the conversation within the id bounds */
        return SQLITE_OK;
    }
    if (c->desc) {
        if ((rc = load(c, newest)) != SQLITE_OK)
            return rc;
        bool newest_within = c->cur && sqlite3_column_int64(c->st[ST_ROW], 1 + COL_MTIME) <= c->mupper;
        c->cur = 0;
        if (!newest_within && (rc = first_id_from_time(probe_row, c, lo, hi + 1, c->mupper + 1, &from)) == SQLITE_OK &&
            from - 1 < c->upper)
            c->upper = from - 1;
    } else if ((rc = first_id_from_time(probe_row, c, lo, hi + 1, c->mlower, &from)) == SQLITE_OK) {
        if (from > c->lower)
            c->lower = from;
        c->upper = hi; /* nothing of the conversation is newer */
    }
    return rc;
}

/* Goes to the first row of a descending walk: the newest at or below upper. */
static int start_desc(chain_cursor *c)
{
    int64_t e = 0;
    int rc = SQLITE_OK;
    if (c->upper != INT64_MAX)
        rc = query_id(c, ST_SPARSE_GE, c->upper, &e);
    if (rc == SQLITE_OK && !e)
        rc = query_id(c, ST_LAST, 0, &e);
    if (rc == SQLITE_OK)
        rc = load(c, e);
    while (rc == SQLITE_OK && c->cur && c->cur > c->upper)
        rc = step(c);
    return rc;
}

/* Goes to the first row of an ascending walk: the oldest at or above lower. */
static int start_asc(chain_cursor *c)
{
    int64_t e = 0;
    int rc = SQLITE_OK;
    if (c->lower != INT64_MIN)
        rc = query_id(c, ST_SPARSE_LE, c->lower, &e);
    if (rc == SQLITE_OK && !e) {
        /* Nothing indexed at or below lower: from the oldest message,
         * found back from the first indexed one (or the newest). */
        rc = query_id(c, ST_SPARSE_GE, INT64_MIN, &e);
        if (rc == SQLITE_OK && !e)
            rc = query_id(c, ST_LAST, 0, &e);
        if (rc == SQLITE_OK)
            rc = load(c, e);
        while (rc == SQLITE_OK && c->cur) {
            sqlite3_stmt *row = c->st[ST_ROW];
            if (sqlite3_column_type(row, 0) == SQLITE_NULL)
                break;
            int64_t here = c->cur;
            if ((rc = load(c, sqlite3_column_int64(row, 0))) == SQLITE_OK && !c->cur) {
                rc = load(c, here); /* defensive: a chain cut short starts here */
                break;
            }
        }
    } else if (rc == SQLITE_OK) {
        rc = load(c, e);
    }
    while (rc == SQLITE_OK && c->cur && c->cur < c->lower)
        rc = step(c);
    return rc;
}

/* An id bound as an inclusive one (step: +1 for a lower bound, -1 for an
 * upper one); false when nothing can match it: a bound that is not an
 * integer (rtmd binds integers only), or nothing past the last id. */
static bool take_bound(sqlite3_value *v, bool incl, int64_t step, int64_t *out)
{
    if (sqlite3_value_numeric_type(v) != SQLITE_INTEGER)
        return false;
    int64_t x = sqlite3_value_int64(v);
    if (!incl && x == (step > 0 ? INT64_MAX : INT64_MIN))
        return false;
    *out = incl ? x : x + step;
    return true;
}

/* An mtime bound the same way, SQLite checking it as well: one that is not
 * an integer leaves the walk open on that side. */
static bool take_time_bound(sqlite3_value *v, bool incl, int64_t step, int64_t *out)
{
    if (sqlite3_value_numeric_type(v) != SQLITE_INTEGER)
        return true;
    return take_bound(v, incl, step, out);
}

static int chain_filter(sqlite3_vtab_cursor *base, int idx, const char *idx_str, int argc, sqlite3_value **argv)
{
    (void)idx_str;
    chain_cursor *c = (chain_cursor *)base;
    int a = 0;
    for (int k = 0; k < 4 && a < argc; k++)
        c->key[k] = sqlite3_value_int64(argv[a++]);
    c->lower = c->mlower = INT64_MIN;
    c->upper = c->mupper = INT64_MAX;
    c->desc = idx & DESC;
    c->cur = 0;
    if ((idx & HAS_LOWER) && a < argc && !take_bound(argv[a++], idx & LOWER_INCL, 1, &c->lower))
        return SQLITE_OK;
    if ((idx & HAS_UPPER) && a < argc && !take_bound(argv[a++], idx & UPPER_INCL, -1, &c->upper))
        return SQLITE_OK;
    if ((idx & HAS_MLOWER) && a < argc && !take_time_bound(argv[a++], idx & MLOWER_INCL, 1, &c->mlower))
        return SQLITE_OK;
    if ((idx & HAS_MUPPER) && a < argc && !take_time_bound(argv[a++], idx & MUPPER_INCL, -1, &c->mupper))
        return SQLITE_OK;
    if (c->lower > c->upper || c->mlower > c->mupper)
        return SQLITE_OK;
    int rc = narrow_by_time(c);
    if (rc != SQLITE_OK || c->lower > c->upper)
        return rc;
    rc = c->desc ? start_desc(c) : start_asc(c);
    check_far_bound(c);
    return rc;
}

static int chain_next(sqlite3_vtab_cursor *base)
{
    chain_cursor *c = (chain_cursor *)base;
    int rc = step(c);
    check_far_bound(c);
    return rc;
}

static int chain_eof(sqlite3_vtab_cursor *base)
{
    return ((chain_cursor *)base)->cur == 0;
}

static int chain_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col)
{
    chain_cursor *c = (chain_cursor *)base;
    if (col >= 0 && col < NCOLS)
        sqlite3_result_value(ctx, sqlite3_column_value(c->st[ST_ROW], col + 1));
    return SQLITE_OK;
}

static int chain_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
    *rowid = ((chain_cursor *)base)->cur;
    return SQLITE_OK;
}

static const sqlite3_module chain_module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous only: no CREATE VIRTUAL TABLE */
    .xConnect = chain_connect,
    .xBestIndex = chain_best_index,
    .xDisconnect = chain_disconnect,
    .xDestroy = chain_disconnect,
    .xOpen = chain_open,
    .xClose = chain_close,
    .xFilter = chain_filter,
    .xNext = chain_next,
    .xEof = chain_eof,
    .xColumn = chain_column,
    .xRowid = chain_rowid,
};

static void walked_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    sqlite3_result_int64(ctx, *(sqlite3_int64 *)sqlite3_user_data(ctx));
}

int conv_chain_register(sqlite3 *db)
{
    sqlite3_int64 *walked = sqlite3_malloc(sizeof *walked);
    if (!walked)
        return SQLITE_NOMEM;
    *walked = 0;
    /* The module owns the count (freed at close); the function reads it. */
    int rc = sqlite3_create_module_v2(db, "conv_chain", &chain_module, walked, sqlite3_free);
    if (rc != SQLITE_OK)
        return rc;
    return sqlite3_create_function_v2(db, "conv_chain_walked", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, walked, walked_fn,
                                      NULL, NULL, NULL);
}
