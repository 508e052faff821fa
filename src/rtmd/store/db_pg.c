/* The PostgreSQL implementation of db.h on libpq. Not yet chosen by rtmd's
 * configuration: store.c opens SQLite only (db_open); this backend is
 * reached through db_open_postgres, and every db_* call on one of its
 * connections or statements lands here by the tag bit of db_backend.h.
 *
 * - SQL keeps SQLite's "?N" parameters: they become "$N" at prepare,
 *   outside string literals, quoted identifiers and comments (a bare "?"
 *   is numbered after the highest one before it, as SQLite does).
 * - Each statement is prepared once per connection under a generated
 *   name ("rtmd_<n>"), then described once (when it has parameters) for
 *   the types the server gave them; a number the SQL skips is declared
 *   bytea. While the calling thread uses the connection's
 *   statement cache (db_cache_use) statements are cached by SQL text with
 *   the same rules as SQLite's cache (busy entries neither shared nor
 *   evicted, round-robin eviction); otherwise, and for db_prepare, the
 *   statement is deallocated on release. A name cannot be deallocated in
 *   a failed transaction: it is then queued and dropped once the
 *   transaction is over.
 * - Binds are kept per statement: integers, doubles and text as text
 *   format (text is copied, so a caller's text need not end in a NUL),
 *   blobs in binary format (not copied, as with SQLite). Text bound to a
 *   bytea parameter goes in binary format too: its bytes as they are,
 *   NULs and invalid UTF-8 kept (peer strings are bytea columns). The first
 *   db_step runs PQexecPrepared; later steps walk the rows of its result
 *   (DB_ROW until DB_DONE).
 * - Results are in text format everywhere. Getters parse the text (int64,
 *   double; a boolean reads as 1 or 0); a bytea column is decoded from hex
 *   (bytea_output is set to hex at connect) into a buffer of the statement
 *   the first time a column of the row is read, so db_column_blob and
 *   db_column_text of a bytea column give its bytes (NUL-terminated) and
 *   db_column_bytes their length; any other column's blob is its text.
 * - db_changes is PQcmdTuples of the last INSERT, UPDATE, DELETE or MERGE.
 * - Errors map their SQLSTATE to DB_* codes (class 23 -> DB_CONSTRAINT,
 *   25006 -> DB_READONLY, 40001/40P01/55P03 -> DB_BUSY, class 08, 57P and
 *   58 or a lost connection -> DB_IOERR, ...), the message in db_errmsg.
 *   A failed statement leaves the transaction open and failed, so
 *   db_in_transaction stays true until ROLLBACK (or ROLLBACK TO). */
#include "db.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_backend.h"
#include "db_cache.h"
#include "log.h"

#define PG_BYTEA_OID 17
#define PG_BOOL_OID 16

enum { P_NULL = 0, P_NUM, P_TEXT, P_BLOB };

typedef struct pg_param {
    int kind;
    bool bytea; /* the server's type of the parameter (described at prepare) */
    int len;
    const void *blob; /* P_BLOB: the caller's bytes */
    char *text;       /* P_NUM, P_TEXT: our NUL-terminated copy */
    int cap;
} pg_param;

typedef struct pg_conn pg_conn;

typedef struct pg_stmt {
    pg_conn *conn;
    char name[32];
    int nparams;
    pg_param *params;
    const char **values; /* built from params at each run */
    int *lengths;
    int *formats;
    PGresult *res;
    int status; /* DB_OK before the run, then what the run answered */
    bool ran;
    int row, nrows;
    int slot; /* index in the cache, -1 when not cached */
    /* bytea columns of the current row, decoded */
    int decoded_row;
    unsigned char *dec;
    size_t dec_cap;
    int *dec_off;
    int *dec_len;
    int dec_cols;
} pg_stmt;

struct pg_conn {
    PGconn *pg;
    int mode;            /* DB_OPEN_*: read only sessions are set so again */
    db_stmt_cache cache; /* db_cache.h; the statements are pg_stmt */
    uint64_t prepares;
    uint64_t names;
    int64_t changes;
    char **zombies; /* names to DEALLOCATE once the failed transaction ends */
    size_t nzombies, capzombies;
    char errmsg[512];
};

#define CONN(c) ((pg_conn *)((uintptr_t)(c) & ~DB_PG_TAG))
#define STMT(s) ((pg_stmt *)((uintptr_t)(s) & ~DB_PG_TAG))
#define TAGGED(p) ((void *)((uintptr_t)(p) | DB_PG_TAG))

/* ---- errors ---- */

static void set_errmsg(pg_conn *c, const char *msg)
{
    snprintf(c->errmsg, sizeof c->errmsg, "%s", msg && *msg ? msg : "unknown error");
    size_t n = strlen(c->errmsg);
    while (n > 0 && (c->errmsg[n - 1] == '\n' || c->errmsg[n - 1] == ' '))
        c->errmsg[--n] = '\0';
}

static int map_sqlstate(const char *s)
{
    if (!s || strlen(s) != 5)
        return DB_ERROR;
    if (strncmp(s, "23", 2) == 0)
        return DB_CONSTRAINT; /* unique, foreign key, not null, check, exclusion */
    if (strcmp(s, "25006") == 0)
        return DB_READONLY;
    if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 || strcmp(s, "55P03") == 0)
        return DB_BUSY; /* serialization failure, deadlock, lock not available */
    if (strcmp(s, "53100") == 0)
        return DB_FULL;
    if (strcmp(s, "53200") == 0)
        return DB_NOMEM;
    if (strcmp(s, "57014") == 0)
        return DB_ABORT; /* query canceled */
    if (strncmp(s, "08", 2) == 0 || strncmp(s, "57P", 3) == 0 || strncmp(s, "58", 2) == 0)
        return DB_IOERR; /* connection, server shutting down, system I/O */
    if (strcmp(s, "XX001") == 0 || strcmp(s, "XX002") == 0)
        return DB_CORRUPT;
    return DB_ERROR;
}

/* The code of a failed result (res may be NULL: no memory or no
 * connection), its message kept in the connection. */
static int result_error(pg_conn *c, const PGresult *res)
{
    if (res) {
        const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        set_errmsg(c, primary ? primary : PQresultErrorMessage(res));
        if (PQstatus(c->pg) == CONNECTION_BAD)
            return DB_IOERR;
        return map_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
    }
    set_errmsg(c, PQerrorMessage(c->pg));
    return PQstatus(c->pg) == CONNECTION_BAD ? DB_IOERR : DB_NOMEM;
}

const char *dbpg_errmsg(db_conn *conn)
{
    return CONN(conn)->errmsg;
}

/* db_changes: the rows of the last INSERT, UPDATE, DELETE or MERGE. */
static void note_changes(pg_conn *c, PGresult *res)
{
    const char *cmd = PQcmdStatus(res);
    if (!cmd)
        return;
    if (strncmp(cmd, "INSERT ", 7) == 0 || strncmp(cmd, "UPDATE ", 7) == 0 ||
        strncmp(cmd, "DELETE ", 7) == 0 || strncmp(cmd, "MERGE ", 6) == 0)
        c->changes = strtoll(PQcmdTuples(res), NULL, 10);
}

/* ---- "?N" to "$N" ---- */

static bool ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
           (unsigned char)ch >= 0x80;
}

/* Notes that parameter n appears: *gaps becomes the count of numbers
 * below the highest that do not (SQLite allows them, PostgreSQL cannot
 * infer their types). false when out of memory. */
static bool note_param(unsigned char **used, int *cap, int n)
{
    if (n >= *cap) {
        int cap2 = n + 1 > *cap * 2 ? n + 1 : *cap * 2;
        unsigned char *u = realloc(*used, (size_t)cap2);
        if (!u)
            return false;
        memset(u + *cap, 0, (size_t)(cap2 - *cap));
        *used = u;
        *cap = cap2;
    }
    (*used)[n] = 1;
    return true;
}

/* The SQL with its parameters numbered the PostgreSQL way, in a new
 * string; *nparams is the highest number and *used (malloc'ed, indexed
 * by number, NULL when there are none) says which appear. Skips string
 * literals ('...' with '' inside, E'...' with backslash escapes), quoted
 * identifiers, -- and (nested) block comments, and dollar-quoted bodies. */
static char *rewrite_params(const char *sql, int *nparams, unsigned char **used)
{
    size_t len = strlen(sql);
    int cap = 0;
    *used = NULL;
    char *out = malloc(len * 6 + 1); /* a bare "?" may become "$NNNNN" */
    if (!out)
        return NULL;
    size_t o = 0;
    int max = 0;
    size_t i = 0;
    while (i < len) {
        char ch = sql[i];
        if (ch == '\'') {
            bool esc = i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') && (i < 2 || !ident_char(sql[i - 2]));
            out[o++] = sql[i++];
            while (i < len) {
                if (esc && sql[i] == '\\' && i + 1 < len) {
                    out[o++] = sql[i++];
                    out[o++] = sql[i++];
                    continue;
                }
                if (sql[i] == '\'') {
                    if (i + 1 < len && sql[i + 1] == '\'') {
                        out[o++] = sql[i++];
                        out[o++] = sql[i++];
                        continue;
                    }
                    out[o++] = sql[i++];
                    break;
                }
                out[o++] = sql[i++];
            }
        } else if (ch == '"') {
            out[o++] = sql[i++];
            while (i < len) {
                char c2 = sql[i];
                out[o++] = sql[i++];
                if (c2 == '"') {
                    if (i < len && sql[i] == '"') {
                        out[o++] = sql[i++];
                        continue;
                    }
                    break;
                }
            }
        } else if (ch == '-' && i + 1 < len && sql[i + 1] == '-') {
            while (i < len && sql[i] != '\n')
                out[o++] = sql[i++];
        } else if (ch == '/' && i + 1 < len && sql[i + 1] == '*') {
            int depth = 0;
            while (i < len) {
                if (sql[i] == '/' && i + 1 < len && sql[i + 1] == '*') {
                    depth++;
                    out[o++] = sql[i++];
                    out[o++] = sql[i++];
                } else if (sql[i] == '*' && i + 1 < len && sql[i + 1] == '/') {
                    out[o++] = sql[i++];
                    out[o++] = sql[i++];
                    if (--depth == 0)
                        break;
                } else {
                    out[o++] = sql[i++];
                }
            }
        } else if (ch == '$' && (i == 0 || !ident_char(sql[i - 1]))) {
            /* $tag$ ... $tag$ (a "$1" of PostgreSQL syntax passes as is) */
            size_t t = i + 1;
            while (t < len && ident_char(sql[t]) && !(sql[t] >= '0' && sql[t] <= '9' && t == i + 1))
                t++;
            if (t < len && sql[t] == '$') {
                size_t taglen = t + 1 - i;
                const char *end = NULL;
                for (size_t k = t + 1; k + taglen <= len; k++)
                    if (memcmp(sql + k, sql + i, taglen) == 0) {
                        end = sql + k;
                        break;
                    }
                size_t stop = end ? (size_t)(end - sql) + taglen : len;
                memcpy(out + o, sql + i, stop - i);
                o += stop - i;
                i = stop;
            } else {
                out[o++] = sql[i++];
            }
        } else if (ch == '?') {
            i++;
            int n = 0;
            bool digits = false;
            while (i < len && sql[i] >= '0' && sql[i] <= '9') {
                if (n < 100000)
                    n = n * 10 + (sql[i] - '0');
                digits = true;
                i++;
            }
            if (!digits)
                n = max + 1;
            if (n > max)
                max = n;
            if (!note_param(used, &cap, n)) {
                free(out);
                free(*used);
                *used = NULL;
                return NULL;
            }
            o += (size_t)sprintf(out + o, "$%d", n);
        } else {
            out[o++] = sql[i++];
        }
    }
    out[o] = '\0';
    *nparams = max;
    return out;
}

/* ---- statements ---- */

static void stmt_clear_result(pg_stmt *st)
{
    PQclear(st->res);
    st->res = NULL;
    st->ran = false;
    st->status = DB_OK;
    st->row = st->nrows = 0;
    st->decoded_row = -1;
}

static void stmt_clear_bindings(pg_stmt *st)
{
    for (int i = 0; i < st->nparams; i++) {
        st->params[i].kind = P_NULL;
        st->params[i].blob = NULL;
    }
}

static void flush_zombies(pg_conn *c);

/* Drops the server's prepared statement and frees st. */
/* Drops a prepared statement's name on the server: now, or once a failed
 * transaction is over. */
static void deallocate(pg_conn *c, const char *stmt_name)
{
    char *name = strdup(stmt_name);
    if (name && c->nzombies == c->capzombies) {
        size_t cap = c->capzombies ? c->capzombies * 2 : 8;
        char **z = realloc(c->zombies, cap * sizeof *z);
        if (z) {
            c->zombies = z;
            c->capzombies = cap;
        }
    }
    if (name && c->nzombies < c->capzombies)
        c->zombies[c->nzombies++] = name;
    else
        free(name); /* left on the server until the connection closes */
    flush_zombies(c);
}

static void stmt_free(pg_stmt *st)
{
    if (!st)
        return;
    stmt_clear_result(st);
    if (st->name[0])
        deallocate(st->conn, st->name);
    for (int i = 0; st->params && i < st->nparams; i++)
        free(st->params[i].text);
    free(st->params);
    free(st->values);
    free(st->lengths);
    free(st->formats);
    free(st->dec);
    free(st->dec_off);
    free(st->dec_len);
    free(st);
}

/* Deallocates the queued names, unless a failed transaction forbids it
 * (then later: after the next statement that ends it). */
static void flush_zombies(pg_conn *c)
{
    if (c->nzombies == 0 || PQstatus(c->pg) != CONNECTION_OK)
        return;
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS)
        return;
    char sql[64];
    for (size_t i = 0; i < c->nzombies; i++) {
        snprintf(sql, sizeof sql, "DEALLOCATE %s", c->zombies[i]);
        PGresult *res = PQexec(c->pg, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            LOG_WARN("store: postgres: %s failed: %s", sql, PQresultErrorMessage(res));
        PQclear(res);
        free(c->zombies[i]);
    }
    c->nzombies = 0;
}

/* The types the server gave the parameters of st (one Describe, right
 * after the prepare): a text bound to a bytea parameter goes in binary. */
#define PG_INT8_OID 20
#define PG_INT2_OID 21
#define PG_INT4_OID 23

/* Prepares text under the statement's next name; DB_OK or the error (kept
 * in c, logged with sql). */
static int prepare_as(pg_conn *c, pg_stmt *st, const char *sql, const char *text, int ntypes, const Oid *types)
{
    snprintf(st->name, sizeof st->name, "rtmd_%" PRIu64, ++c->names);
    PGresult *res = PQprepare(c->pg, st->name, text, ntypes, types);
    c->prepares++;
    int rc = DB_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = result_error(c, res);
        LOG_ERROR("store: cannot prepare \"%s\": %s", sql, c->errmsg);
        st->name[0] = '\0'; /* nothing to deallocate */
    }
    PQclear(res);
    return rc;
}

/* The types the server gave the parameters of st into types[]. */
static int describe_params(pg_conn *c, pg_stmt *st, const char *sql, Oid *types)
{
    PGresult *res = PQdescribePrepared(c->pg, st->name);
    int rc = DB_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = result_error(c, res);
        LOG_ERROR("store: cannot describe \"%s\": %s", sql, c->errmsg);
    } else {
        for (int i = 0; i < PQnparams(res) && i < st->nparams; i++)
            types[i] = PQparamtype(res, i);
    }
    PQclear(res);
    return rc;
}

/* Prepares sql on the server under a new name and learns the types of its
 * parameters (no second round trip when it has none). Two rules keep
 * SQLite's meaning: a number the SQL skips (SQLite allows "?1, ?3") is
 * declared bytea, which takes any bind, since the server cannot infer a
 * type for it; and a parameter the server inferred as a 16- or 32-bit
 * integer (from a literal beside it: "?1 * 1000000") is prepared again as
 * bigint, since every SQLite integer is 64-bit and the arithmetic would
 * overflow. */
static int stmt_new(pg_conn *c, const char *sql, pg_stmt **out)
{
    *out = NULL;
    flush_zombies(c);
    pg_stmt *st = calloc(1, sizeof *st);
    int nparams = 0;
    unsigned char *used = NULL;
    char *text = st ? rewrite_params(sql, &nparams, &used) : NULL;
    Oid *types = NULL;
    if (text && nparams > 0) {
        st->params = calloc((size_t)nparams, sizeof *st->params);
        st->values = calloc((size_t)nparams, sizeof *st->values);
        st->lengths = calloc((size_t)nparams, sizeof *st->lengths);
        st->formats = calloc((size_t)nparams, sizeof *st->formats);
        types = calloc((size_t)nparams, sizeof *types);
    }
    if (!text || (nparams > 0 && (!st->params || !st->values || !st->lengths || !st->formats || !types))) {
        free(text);
        free(used);
        free(types);
        if (st)
            stmt_free(st);
        set_errmsg(c, "out of memory");
        return DB_NOMEM;
    }
    st->conn = c;
    st->slot = -1;
    st->decoded_row = -1;
    st->nparams = nparams;
    for (int i = 0; i < nparams; i++)
        types[i] = used[i + 1] ? 0 : PG_BYTEA_OID;
    int rc = prepare_as(c, st, sql, text, nparams, types);
    if (rc == DB_OK && nparams > 0)
        rc = describe_params(c, st, sql, types);
    bool narrow = false;
    for (int i = 0; rc == DB_OK && i < nparams; i++)
        if (types[i] == PG_INT2_OID || types[i] == PG_INT4_OID) {
            types[i] = PG_INT8_OID;
            narrow = true;
        }
    if (narrow) {
        deallocate(c, st->name);
        rc = prepare_as(c, st, sql, text, nparams, types);
    }
    for (int i = 0; rc == DB_OK && i < nparams; i++)
        st->params[i].bytea = types[i] == PG_BYTEA_OID;
    free(text);
    free(used);
    free(types);
    if (rc != DB_OK) {
        stmt_free(st); /* deallocates a name it still has */
        return rc;
    }
    *out = st;
    return DB_OK;
}

static void free_cached(void *st)
{
    stmt_free(st);
}

int dbpg_stmt(db_conn *conn, const char *sql, db_stmt_t **out)
{
    pg_conn *c = CONN(conn);
    pg_stmt *st;
    *out = NULL;
    if (db_tls_conn != conn) {
        int rc = stmt_new(c, sql, &st);
        if (rc == DB_OK)
            *out = TAGGED(st);
        return rc;
    }
    size_t len = strlen(sql);
    st = db_stmt_cache_take(&c->cache, sql, len);
    if (st) {
        *out = TAGGED(st);
        return DB_OK;
    }
    int rc = stmt_new(c, sql, &st);
    if (rc != DB_OK)
        return rc;
    *out = TAGGED(st);
    st->slot = db_stmt_cache_put(&c->cache, sql, len, st, free_cached); /* -1: released, it is deallocated */
    return DB_OK;
}

void dbpg_release(db_stmt_t *s)
{
    pg_stmt *st = STMT(s);
    if (st->slot >= 0) {
        stmt_clear_result(st);
        stmt_clear_bindings(st);
        db_stmt_cache_idle(&st->conn->cache, st->slot);
        return;
    }
    stmt_free(st);
}

int dbpg_step_release(db_stmt_t *s)
{
    int rc = dbpg_step(s);
    dbpg_release(s);
    return rc == DB_DONE || rc == DB_ROW ? DB_OK : rc;
}

int dbpg_prepare(db_conn *conn, const char *sql, db_stmt_t **out)
{
    pg_stmt *st;
    int rc = stmt_new(CONN(conn), sql, &st);
    *out = rc == DB_OK ? TAGGED(st) : NULL;
    return rc;
}

void dbpg_finalize(db_stmt_t *s)
{
    pg_stmt *st = STMT(s);
    if (st->slot >= 0) /* a cached statement handed to db_finalize: only release */
        dbpg_release(s);
    else
        stmt_free(st);
}

/* ---- binds ---- */

static pg_param *param(pg_stmt *st, int i)
{
    return i >= 1 && i <= st->nparams ? &st->params[i - 1] : NULL;
}

static int bind_copy(pg_stmt *st, int i, const char *s, size_t len, int kind)
{
    pg_param *p = param(st, i);
    if (!p) {
        set_errmsg(st->conn, "bind index out of range");
        return DB_MISUSE;
    }
    if (len > INT32_MAX - 1)
        return DB_FULL;
    if ((size_t)p->cap < len + 1) {
        size_t cap = len + 1 < 32 ? 32 : len + 1;
        char *t = realloc(p->text, cap);
        if (!t)
            return DB_NOMEM;
        p->text = t;
        p->cap = (int)cap;
    }
    memcpy(p->text, s, len);
    p->text[len] = '\0';
    p->len = (int)len;
    p->kind = kind;
    return DB_OK;
}

int dbpg_bind_int64(db_stmt_t *s, int i, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRId64, v);
    return bind_copy(STMT(s), i, buf, (size_t)n, P_NUM);
}

int dbpg_bind_double(db_stmt_t *s, int i, double v)
{
    char buf[32];
    int n;
    if (isnan(v))
        n = snprintf(buf, sizeof buf, "NaN");
    else if (isinf(v))
        n = snprintf(buf, sizeof buf, "%s", v < 0 ? "-Infinity" : "Infinity");
    else
        n = snprintf(buf, sizeof buf, "%.17g", v);
    return bind_copy(STMT(s), i, buf, (size_t)n, P_NUM);
}

int dbpg_bind_text(db_stmt_t *s, int i, const char *t, int len)
{
    if (!t)
        return dbpg_bind_null(s, i);
    return bind_copy(STMT(s), i, t, len < 0 ? strlen(t) : (size_t)len, P_TEXT);
}

int dbpg_bind_blob(db_stmt_t *s, int i, const void *b, int len)
{
    pg_stmt *st = STMT(s);
    pg_param *p = param(st, i);
    if (!p) {
        set_errmsg(st->conn, "bind index out of range");
        return DB_MISUSE;
    }
    if (!b || len < 0) /* as SQLite: a NULL pointer binds NULL */
        return dbpg_bind_null(s, i);
    p->kind = P_BLOB;
    p->blob = b;
    p->len = len;
    return DB_OK;
}

int dbpg_bind_null(db_stmt_t *s, int i)
{
    pg_stmt *st = STMT(s);
    pg_param *p = param(st, i);
    if (!p) {
        set_errmsg(st->conn, "bind index out of range");
        return DB_MISUSE;
    }
    p->kind = P_NULL;
    p->blob = NULL;
    return DB_OK;
}

int dbpg_bind_count(db_stmt_t *s)
{
    return STMT(s)->nparams;
}

/* ---- steps ---- */

static int stmt_run(pg_stmt *st)
{
    pg_conn *c = st->conn;
    for (int i = 0; i < st->nparams; i++) {
        pg_param *p = &st->params[i];
        st->values[i] = p->kind == P_NULL ? NULL : p->kind == P_BLOB ? p->blob : p->text;
        st->lengths[i] = p->kind == P_NULL ? 0 : p->len;
        /* bytes as they are: a blob, or a text bound to a bytea parameter
         * (binary format is the raw bytes: NULs and invalid UTF-8 kept) */
        st->formats[i] = p->kind == P_BLOB || (p->kind == P_TEXT && p->bytea) ? 1 : 0;
    }
    PGresult *res = PQexecPrepared(c->pg, st->name, st->nparams, st->values, st->lengths, st->formats, 0);
    st->ran = true;
    switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
        st->res = res;
        st->nrows = PQntuples(res);
        st->row = 0;
        note_changes(c, res);
        st->status = st->nrows > 0 ? DB_ROW : DB_DONE;
        break;
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
        note_changes(c, res);
        PQclear(res);
        st->status = DB_DONE;
        break;
    default:
        st->status = result_error(c, res);
        PQclear(res);
        break;
    }
    flush_zombies(c);
    return st->status;
}

int dbpg_step(db_stmt_t *s)
{
    pg_stmt *st = STMT(s);
    if (!st->ran)
        return stmt_run(st);
    if (st->status != DB_ROW)
        return st->status;
    if (++st->row >= st->nrows) {
        st->status = DB_DONE;
        return DB_DONE;
    }
    return DB_ROW;
}

void dbpg_reset(db_stmt_t *s)
{
    stmt_clear_result(STMT(s));
}

/* ---- columns ---- */

/* The text of column i of the current row, NULL when there is none. */
static const char *cell(pg_stmt *st, int i)
{
    if (st->status != DB_ROW || !st->res || i < 0 || i >= PQnfields(st->res) ||
        PQgetisnull(st->res, st->row, i))
        return NULL;
    return PQgetvalue(st->res, st->row, i);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes every bytea column of the current row ("\x" and hex digits)
 * into the statement's buffer, so their pointers stay valid together
 * until the next step. false when out of memory or not hex. */
static bool decode_row(pg_stmt *st)
{
    if (st->decoded_row == st->row)
        return true;
    int ncols = PQnfields(st->res);
    if (ncols > st->dec_cols) {
        int *off = realloc(st->dec_off, (size_t)ncols * sizeof *off);
        if (off)
            st->dec_off = off;
        int *len = realloc(st->dec_len, (size_t)ncols * sizeof *len);
        if (len)
            st->dec_len = len;
        if (!off || !len)
            return false;
        st->dec_cols = ncols;
    }
    size_t need = 0;
    for (int i = 0; i < ncols; i++)
        if (PQftype(st->res, i) == PG_BYTEA_OID && !PQgetisnull(st->res, st->row, i))
            need += (size_t)PQgetlength(st->res, st->row, i) / 2 + 1;
    if (need > st->dec_cap) {
        unsigned char *d = realloc(st->dec, need);
        if (!d)
            return false;
        st->dec = d;
        st->dec_cap = need;
    }
    size_t o = 0;
    for (int i = 0; i < ncols; i++) {
        st->dec_off[i] = -1;
        st->dec_len[i] = 0;
        if (PQftype(st->res, i) != PG_BYTEA_OID || PQgetisnull(st->res, st->row, i))
            continue;
        const char *v = PQgetvalue(st->res, st->row, i);
        int n = PQgetlength(st->res, st->row, i);
        if (n < 2 || v[0] != '\\' || v[1] != 'x' || n % 2 != 0)
            return false;
        st->dec_off[i] = (int)o;
        for (int k = 2; k < n; k += 2) {
            int hi = hexval(v[k]), lo = hexval(v[k + 1]);
            if (hi < 0 || lo < 0)
                return false;
            st->dec[o++] = (unsigned char)(hi << 4 | lo);
        }
        st->dec_len[i] = (int)o - st->dec_off[i];
        st->dec[o++] = '\0';
    }
    st->decoded_row = st->row;
    return true;
}

static bool is_bytea(pg_stmt *st, int i)
{
    return PQftype(st->res, i) == PG_BYTEA_OID;
}

int64_t dbpg_column_int64(db_stmt_t *s, int i)
{
    pg_stmt *st = STMT(s);
    const char *v = cell(st, i);
    if (!v)
        return 0;
    if (PQftype(st->res, i) == PG_BOOL_OID)
        return v[0] == 't';
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*end == '.' || *end == 'e' || *end == 'E') { /* a numeric or float: truncated */
        double d = strtod(v, NULL);
        return d >= 9223372036854775807.0 ? INT64_MAX : d <= -9223372036854775808.0 ? INT64_MIN : (int64_t)d;
    }
    return n;
}

double dbpg_column_double(db_stmt_t *s, int i)
{
    pg_stmt *st = STMT(s);
    const char *v = cell(st, i);
    if (!v)
        return 0;
    if (PQftype(st->res, i) == PG_BOOL_OID)
        return v[0] == 't';
    return strtod(v, NULL);
}

const char *dbpg_column_text(db_stmt_t *s, int i)
{
    pg_stmt *st = STMT(s);
    const char *v = cell(st, i);
    if (!v || !is_bytea(st, i))
        return v;
    return decode_row(st) ? (const char *)st->dec + st->dec_off[i] : NULL;
}

const void *dbpg_column_blob(db_stmt_t *s, int i)
{
    return dbpg_column_text(s, i);
}

int dbpg_column_bytes(db_stmt_t *s, int i)
{
    pg_stmt *st = STMT(s);
    const char *v = cell(st, i);
    if (!v)
        return 0;
    if (!is_bytea(st, i))
        return PQgetlength(st->res, st->row, i);
    return decode_row(st) ? st->dec_len[i] : 0;
}

bool dbpg_column_is_null(db_stmt_t *s, int i)
{
    return cell(STMT(s), i) == NULL;
}

/* ---- connection ---- */

int64_t dbpg_changes(db_conn *conn)
{
    return CONN(conn)->changes;
}

uint64_t dbpg_prepare_count(db_conn *conn)
{
    return CONN(conn)->prepares;
}

int dbpg_exec(db_conn *conn, const char *sql)
{
    pg_conn *c = CONN(conn);
    PGresult *res = PQexec(c->pg, sql);
    int rc;
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        note_changes(c, res);
        rc = DB_OK;
        break;
    default:
        rc = result_error(c, res);
        break;
    }
    PQclear(res);
    flush_zombies(c);
    return rc;
}

bool dbpg_in_transaction(db_conn *conn)
{
    PGTransactionStatusType ts = PQtransactionStatus(CONN(conn)->pg);
    return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR || ts == PQTRANS_ACTIVE;
}

/* Notices (a COMMIT without a transaction, ...) go to our log, not stderr. */
static void on_notice(void *arg, const char *msg)
{
    (void)arg;
    LOG_DEBUG("store: postgres: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* Seconds a connection attempt may take when the connection string does
 * not say (libpq's own default is to wait for ever). */
#define PG_CONNECT_TIMEOUT "5"

/* The session settings every connection of the store has: UTF-8, bytea in
 * hex, and read-only transactions for DB_OPEN_READONLY. */
static int configure(pg_conn *c, char *err, size_t errlen)
{
    PQsetNoticeProcessor(c->pg, on_notice, NULL);
    const char *settings = c->mode == DB_OPEN_READONLY
                               ? "SET client_encoding = 'UTF8'; SET bytea_output = 'hex'; "
                                 "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
                               : "SET client_encoding = 'UTF8'; SET bytea_output = 'hex'";
    PGresult *res = PQexec(c->pg, settings);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        const char *m = PQresultErrorMessage(res);
        snprintf(err, errlen, "cannot configure the PostgreSQL connection: %.*s", (int)strcspn(m, "\n"), m);
    }
    PQclear(res);
    return ok ? 0 : -1;
}

db_conn *db_open_postgres(const char *conninfo, int mode, char *err, size_t errlen)
{
    pg_conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: out of memory");
        return NULL;
    }
    c->mode = mode;
    /* Later keywords win: the connection string may set its own timeout. */
    const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *const values[] = {PG_CONNECT_TIMEOUT, conninfo, NULL};
    c->pg = PQconnectdbParams(keys, values, 1);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        const char *m = c->pg ? PQerrorMessage(c->pg) : "out of memory";
        snprintf(err, errlen, "cannot connect to PostgreSQL: %.*s", (int)strcspn(m, "\n"), m);
        PQfinish(c->pg);
        free(c);
        return NULL;
    }
    if (configure(c, err, errlen) != 0) {
        PQfinish(c->pg);
        free(c);
        return NULL;
    }
    return TAGGED(c);
}

bool dbpg_connection_lost(db_conn *conn)
{
    PGconn *pg = CONN(conn)->pg;
    /* An idle connection learns that the server closed it (a restart, an
     * administrator's termination) only by reading: a non-blocking read
     * takes in the farewell, a second one the end of the stream (libpq
     * sees the end only when a read returns nothing). */
    for (int i = 0; i < 2 && PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) == PQTRANS_IDLE; i++)
        PQconsumeInput(pg);
    return PQstatus(pg) == CONNECTION_BAD;
}

/* The server dropped the session's prepared statements with it: the cache
 * forgets them (no DEALLOCATE) before the connection is made again. */
static void forget_statements(pg_conn *c)
{
    for (unsigned i = 0; i < c->cache.n; i++)
        ((pg_stmt *)c->cache.e[i].st)->name[0] = '\0';
    db_stmt_cache_clear(&c->cache, free_cached);
    for (size_t i = 0; i < c->nzombies; i++)
        free(c->zombies[i]);
    c->nzombies = 0;
}

int dbpg_reconnect(db_conn *conn)
{
    pg_conn *c = CONN(conn);
    forget_statements(c);
    PQreset(c->pg);
    char err[256];
    if (PQstatus(c->pg) != CONNECTION_OK) {
        const char *m = PQerrorMessage(c->pg);
        set_errmsg(c, m);
        return DB_IOERR;
    }
    if (configure(c, err, sizeof err) != 0) {
        set_errmsg(c, err);
        return DB_IOERR;
    }
    return DB_OK;
}

int dbpg_close(db_conn *conn)
{
    pg_conn *c = CONN(conn);
    if (db_tls_conn == conn)
        db_tls_conn = NULL;
    forget_statements(c); /* the server drops them with the session */
    free(c->zombies);
    PQfinish(c->pg);
    free(c);
    return DB_OK;
}
