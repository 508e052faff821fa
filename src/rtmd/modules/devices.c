/* Push registration of users: device tokens (adddevice, removedevice, and
 * rtmd's own getdevices on the server gate) and per-conversation push
 * options (addoption, removeoption, getoption), kept in the store's
 * user_devices and push_options tables and nowhere else. The app server
 * names the user with `uid`; a client always works on its own devices and
 * options. Nothing here sends a push: the offline push sender (a later
 * webhook issue) reads these two tables (docs/rtm-methods.md).
 *
 * Shape: arguments are checked on the loop, a change is one write through
 * the writer thread answered after commit, a read runs on the reader pool
 * with cached statements. Limits that depend on what is stored (devices
 * and options per user) are applied inside the write, where writes run one
 * at a time.
 *
 * Devices: a token belongs to one user of a project (a device that logs in
 * as another user moves its token there); adding a present token again
 * refreshes it; past max_devices_per_user the user's least recently added
 * token goes (tokens rotate, and apps rarely remove the old ones).
 *
 * Options: kind 0 mutes p2p pushes from the peer xid, kind 1 pushes of
 * group xid; for the message types in mtypes, or for every type when
 * mtypes is missing or empty or holds 0 (the Go SDK documents 0 as "all",
 * and getoption answers [0] for such an option). Adding types joins them to
 * an option; removing types takes them out, and an option left with none
 * is gone; removing without mtypes drops the option. Removing some types of
 * an "every type" option leaves it as it is. */
#include "clock.h"
#include "log.h"
#include "methods.h"
#include "module.h"
#include "payload.h"
#include "rtm_errors.h"
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEVICE_TOKEN_MAX 4096 /* FCM tokens reach a few hundred bytes, APNs 32 bytes in hex */
#define DEVICE_APPTYPE_MAX 32
#define OPTION_MTYPES_MAX 128 /* elements of one mtypes array */
#define MTYPE_COUNT 128       /* mtypes are 0..127 */

enum dev_op { DEV_ADD, DEV_REMOVE, DEV_LIST, OPT_ADD, OPT_REMOVE, OPT_GET };

typedef struct device_row {
    char *apptype;
    char *token;
    size_t token_len;
} device_row;

typedef struct option_row {
    int kind;
    int64_t xid;
    uint8_t n;           /* 0: every type */
    uint8_t mtypes[MTYPE_COUNT];
} option_row;

typedef struct dev_job {
    rtmd_request *req;
    enum dev_op op;
    int64_t pid, uid, now_ms;
    uint32_t limit;
    /* DEV_ADD / DEV_REMOVE */
    const char *token;   /* in data */
    size_t token_len;
    char apptype[DEVICE_APPTYPE_MAX + 1];
    /* OPT_ADD / OPT_REMOVE */
    int kind;
    int64_t xid;
    bool all;                 /* no types named: every type */
    bool set[MTYPE_COUNT];    /* the types named */
    /* results */
    bool over_limit;
    device_row *devices;
    size_t ndevices;
    option_row *options;
    size_t noptions;
    char data[];
} dev_job;

static void job_free(dev_job *j)
{
    for (size_t i = 0; i < j->ndevices; i++) {
        free(j->devices[i].apptype);
        free(j->devices[i].token);
    }
    free(j->devices);
    free(j->options);
    free(j);
}

static void job_fail(dev_job *j, int status)
{
    if (status != DB_ABORT)
        LOG_ERROR("devices: %s failed: %s", j->req->method, db_errstr(status));
    module_answer_store_failure(j->req, status);
    job_free(j);
}

/* Runs a statement of ?1 pid, ?2 uid and the blob ?3 (may be NULL) and the
 * integers ?4, ?5 (when the statement has them) to its end. */
static int exec4(db_conn *db, const char *sql, const dev_job *j, const void *blob, size_t blob_len, int64_t a,
                 int64_t b)
{
    db_stmt_t *st;
    int rc = db_stmt(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    int np = db_bind_count(st);
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, j->uid);
    if (np >= 3)
        db_bind_blob(st, 3, blob ? blob : "", (int)blob_len);
    if (np >= 4)
        db_bind_int64(st, 4, a);
    if (np >= 5)
        db_bind_int64(st, 5, b);
    return db_step_release(st);
}

/* ---- devices (writer thread) ---- */

static int apply_device_add(db_conn *db, dev_job *j)
{
    /* On PostgreSQL, adds for one user through several nodes take turns
     * (the count and added_at below read the user's rows). */
    int rc = module_limit_lock(db, MODULE_LIMIT_DEVICES, j->pid, j->uid);
    if (rc != DB_OK)
        return rc;
    /* The token leaves any other user of the project. */
    rc = exec4(db, "DELETE FROM user_devices WHERE pid = ?1 AND uid <> ?2 AND devicetoken = ?3", j, j->token,
                   j->token_len, 0, 0);
    if (rc != DB_OK)
        return rc;
    db_stmt_t *st;
    rc = db_stmt(db,
              /* added_at orders a user's tokens: the clock, but always past the
               * user's newest, so two adds within one millisecond keep their order. */
              "INSERT INTO user_devices(pid, uid, devicetoken, apptype, added_at) VALUES (?1, ?2, ?3, ?4,"
              " max(?5, (SELECT coalesce(max(added_at), 0) + 1 FROM user_devices WHERE pid = ?1 AND uid = ?2)))"
              " ON CONFLICT(pid, uid, devicetoken) DO UPDATE SET apptype = excluded.apptype,"
              " added_at = excluded.added_at",
              &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, j->uid);
    db_bind_blob(st, 3, j->token, (int)j->token_len);
    db_bind_text(st, 4, j->apptype, -1);
    db_bind_int64(st, 5, j->now_ms);
    if ((rc = db_step_release(st)) != DB_OK)
        return rc;
    /* Past the limit the least recently added tokens go (added_at is
     * unique per user, see above; the token only breaks ties of rows
     * stored before it was). The huge LIMIT means none, in a form SQLite
     * and PostgreSQL both accept. */
    return exec4(db,
                 "DELETE FROM user_devices WHERE pid = ?1 AND uid = ?2 AND devicetoken IN (SELECT devicetoken"
                 " FROM user_devices WHERE pid = ?1 AND uid = ?2 ORDER BY added_at DESC, devicetoken DESC"
                 " LIMIT 9223372036854775807 OFFSET ?4)",
                 j, NULL, 0, j->limit, 0);
}

static int apply_device_remove(db_conn *db, dev_job *j)
{
    return exec4(db, "DELETE FROM user_devices WHERE pid = ?1 AND uid = ?2 AND devicetoken = ?3", j, j->token,
                 j->token_len, 0, 0);
}

/* ---- options (writer thread) ---- */

static void set_from_blob(bool *set, const uint8_t *p, size_t n, bool *all)
{
    memset(set, 0, MTYPE_COUNT * sizeof *set);
    *all = n == 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < MTYPE_COUNT)
            set[p[i]] = true;
}

static size_t blob_from_set(const bool *set, uint8_t *out)
{
    size_t n = 0;
    for (int t = 0; t < MTYPE_COUNT; t++)
        if (set[t])
            out[n++] = (uint8_t)t;
    return n;
}

/* Reads the stored option of (kind, xid): *present, and its types. */
static int read_option(db_conn *db, dev_job *j, bool *present, bool *all, bool *set)
{
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT mtypes FROM push_options WHERE pid = ?1 AND uid = ?2 AND kind = ?3 AND xid = ?4", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, j->uid);
    db_bind_int(st, 3, j->kind);
    db_bind_int64(st, 4, j->xid);
    rc = db_step_row(st, present);
    if (rc == DB_OK && *present)
        set_from_blob(set, db_column_blob(st, 0), (size_t)db_column_bytes(st, 0), all);
    db_release(st);
    return rc;
}

static int write_option(db_conn *db, dev_job *j, bool all, const bool *set)
{
    uint8_t blob[MTYPE_COUNT];
    size_t n = all ? 0 : blob_from_set(set, blob);
    db_stmt_t *st;
    int rc = db_stmt(db,
                  "INSERT INTO push_options(pid, uid, kind, xid, mtypes) VALUES (?1, ?2, ?3, ?4, ?5)"
                  " ON CONFLICT(pid, uid, kind, xid) DO UPDATE SET mtypes = excluded.mtypes",
                  &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, j->uid);
    db_bind_int(st, 3, j->kind);
    db_bind_int64(st, 4, j->xid);
    db_bind_blob(st, 5, n ? (const void *)blob : "", (int)n);
    return db_step_release(st);
}

static int delete_option(db_conn *db, dev_job *j)
{
    return exec4(db, "DELETE FROM push_options WHERE pid = ?1 AND uid = ?2 AND kind = ?4 AND xid = ?5", j, NULL, 0,
                 j->kind, j->xid);
}

static int apply_option_add(db_conn *db, dev_job *j)
{
    bool present, all = false, set[MTYPE_COUNT];
    j->over_limit = false;
    int rc = module_limit_lock(db, MODULE_LIMIT_PUSH_OPTIONS, j->pid, j->uid);
    if (rc == DB_OK)
        rc = read_option(db, j, &present, &all, set);
    if (rc != DB_OK)
        return rc;
    if (!present) {
        db_stmt_t *st;
        rc = db_stmt(db, "SELECT COUNT(*) FROM push_options WHERE pid = ?1 AND uid = ?2", &st);
        if (rc != DB_OK)
            return rc;
        db_bind_int64(st, 1, j->pid);
        db_bind_int64(st, 2, j->uid);
        int64_t count = 0;
        rc = db_step(st);
        if (rc == DB_ROW) {
            count = db_column_int64(st, 0);
            rc = DB_OK;
        }
        db_release(st);
        if (rc != DB_OK)
            return rc;
        if (count >= (int64_t)j->limit) {
            j->over_limit = true;
            return DB_OK;
        }
        memset(set, 0, sizeof set);
    }
    if (j->all || (present && all))
        return write_option(db, j, true, set);
    for (int t = 0; t < MTYPE_COUNT; t++)
        set[t] = set[t] || j->set[t];
    return write_option(db, j, false, set);
}

static int apply_option_remove(db_conn *db, dev_job *j)
{
    if (j->all)
        return delete_option(db, j);
    bool present, all = false, set[MTYPE_COUNT];
    int rc = read_option(db, j, &present, &all, set);
    if (rc != DB_OK || !present || all)
        return rc;
    bool left = false;
    for (int t = 0; t < MTYPE_COUNT; t++) {
        set[t] = set[t] && !j->set[t];
        left = left || set[t];
    }
    return left ? write_option(db, j, false, set) : delete_option(db, j);
}

static int apply_write(db_conn *db, void *arg)
{
    dev_job *j = arg;
    switch (j->op) {
    case DEV_ADD:
        return apply_device_add(db, j);
    case DEV_REMOVE:
        return apply_device_remove(db, j);
    case OPT_ADD:
        return apply_option_add(db, j);
    case OPT_REMOVE:
        return apply_option_remove(db, j);
    default:
        return DB_MISUSE;
    }
}

static void write_done(void *arg, int status)
{
    dev_job *j = arg;
    if (status != DB_OK) {
        job_fail(j, status);
        return;
    }
    if (j->over_limit) {
        char ex[96];
        snprintf(ex, sizeof ex, "a user has push options for at most %u conversations", j->limit);
        request_error(j->req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, ex);
    } else {
        request_answer_empty(j->req);
    }
    job_free(j);
}

/* ---- reads (reader pool) ---- */

static char *copy_bytes(const void *p, size_t n)
{
    char *out = malloc(n + 1);
    if (out) {
        if (n)
            memcpy(out, p, n);
        out[n] = '\0';
    }
    return out;
}

static int read_devices(db_conn *db, dev_job *j)
{
    db_stmt_t *st;
    int rc = db_stmt(db,
                  "SELECT apptype, devicetoken FROM user_devices WHERE pid = ?1 AND uid = ?2"
                  " ORDER BY added_at, devicetoken LIMIT ?3",
                  &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, j->uid);
    db_bind_int64(st, 3, j->limit);
    j->devices = calloc(j->limit ? j->limit : 1, sizeof *j->devices);
    if (!j->devices) {
        db_release(st);
        return DB_NOMEM;
    }
    while ((rc = db_step(st)) == DB_ROW && j->ndevices < j->limit) {
        device_row *d = &j->devices[j->ndevices];
        d->apptype = copy_bytes(db_column_text(st, 0), (size_t)db_column_bytes(st, 0));
        d->token_len = (size_t)db_column_bytes(st, 1);
        d->token = copy_bytes(db_column_blob(st, 1), d->token_len);
        if (!d->apptype || !d->token) {
            free(d->apptype);
            free(d->token);
            rc = DB_NOMEM;
            break;
        }
        j->ndevices++;
    }
    db_release(st);
    return rc == DB_DONE || rc == DB_ROW ? DB_OK : rc;
}

static int read_options(db_conn *db, dev_job *j)
{
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT kind, xid, mtypes FROM push_options WHERE pid = ?1 AND uid = ?2 ORDER BY kind, xid LIMIT ?3",
                  &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, j->uid);
    db_bind_int64(st, 3, j->limit);
    size_t cap = 0;
    while ((rc = db_step(st)) == DB_ROW) {
        if (j->noptions == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            option_row *v = realloc(j->options, ncap * sizeof *v);
            if (!v) {
                rc = DB_NOMEM;
                break;
            }
            j->options = v;
            cap = ncap;
        }
        option_row *o = &j->options[j->noptions++];
        o->kind = db_column_int(st, 0);
        o->xid = db_column_int64(st, 1);
        size_t n = (size_t)db_column_bytes(st, 2);
        const uint8_t *p = db_column_blob(st, 2);
        o->n = 0;
        for (size_t i = 0; i < n && i < MTYPE_COUNT; i++)
            o->mtypes[o->n++] = p[i];
    }
    db_release(st);
    return rc == DB_DONE ? DB_OK : rc;
}

static int read_job(db_conn *db, void *arg)
{
    dev_job *j = arg;
    return j->op == DEV_LIST ? read_devices(db, j) : read_options(db, j);
}

static void pack_bytes(msgpack_packer *pk, const char *p, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, p, n);
}

static void pack_options(msgpack_packer *pk, const dev_job *j, int kind)
{
    uint32_t n = 0;
    for (size_t i = 0; i < j->noptions; i++)
        n += j->options[i].kind == kind;
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < j->noptions; i++) {
        const option_row *o = &j->options[i];
        if (o->kind != kind)
            continue;
        /* Keys are the ids as decimal text: the Go SDK reads string keys. */
        char id[24];
        int len = snprintf(id, sizeof id, "%" PRId64, o->xid);
        pack_bytes(pk, id, (size_t)len);
        if (o->n == 0) {
            msgpack_pack_array(pk, 1);
            msgpack_pack_int(pk, 0);
        } else {
            msgpack_pack_array(pk, o->n);
            for (uint8_t k = 0; k < o->n; k++)
                msgpack_pack_int(pk, o->mtypes[k]);
        }
    }
}

static void read_done(void *arg, int status)
{
    dev_job *j = arg;
    if (status != DB_OK) {
        job_fail(j, status);
        return;
    }
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    if (j->op == DEV_LIST) {
        msgpack_pack_map(&pk, 1);
        mp_pack_cstr(&pk, "devices");
        msgpack_pack_array(&pk, (uint32_t)j->ndevices);
        for (size_t i = 0; i < j->ndevices; i++) {
            msgpack_pack_map(&pk, 2);
            mp_pack_kv_str(&pk, "apptype", j->devices[i].apptype);
            mp_pack_cstr(&pk, "devicetoken");
            pack_bytes(&pk, j->devices[i].token, j->devices[i].token_len);
        }
    } else {
        msgpack_pack_map(&pk, 2);
        mp_pack_cstr(&pk, "p2p");
        pack_options(&pk, j, 0);
        mp_pack_cstr(&pk, "group");
        pack_options(&pk, j, 1);
    }
    request_answer(j->req, &body);
    msgpack_sbuffer_destroy(&body);
    job_free(j);
}

/* ---- methods ---- */

static dev_job *job_new(rtmd_request *req, enum dev_op op, size_t extra)
{
    int64_t uid = req->uid;
    if (req->gate == GATE_SERVER_TCP && !req_arg_int64(req, "uid", &uid))
        return NULL;
    dev_job *j = calloc(1, sizeof *j + extra);
    if (!j) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return NULL;
    }
    j->req = req;
    j->op = op;
    j->pid = req->project->pid;
    j->uid = uid;
    j->now_ms = clock_unix_ms();
    return j;
}

static void run(dev_job *j)
{
    rtmd_request *req = j->req;
    bool read = j->op == DEV_LIST || j->op == OPT_GET;
    int rc = read ? store_read(req->srv->store, read_job, read_done, j)
                  : store_submit(req->srv->store, apply_write, write_done, j);
    if (rc != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        job_free(j);
    }
}

/* A required, non-empty str-or-bin field of at most max bytes: 10009
 * missing, 10010 another type, 200033 empty, 200030 too long. */
static bool arg_text(rtmd_request *req, const char *key, size_t max, const char **s, size_t *len, bool *binary)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    if (!o || !mp_obj_str(o, s, len)) {
        req_arg_error(req, key);
        return false;
    }
    char ex[80];
    if (*len == 0) {
        snprintf(ex, sizeof ex, "empty '%s'", key);
        request_error(req, RTM_EC_EMPTY_PARAMETER, ex);
        return false;
    }
    if (*len > max) {
        snprintf(ex, sizeof ex, "'%s' longer than %zu bytes", key, max);
        request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, ex);
        return false;
    }
    if (binary)
        *binary = o->type == MSGPACK_OBJECT_BIN;
    return true;
}

/* both gates: adddevice {uid (server), apptype, devicetoken} -> {} */
static void method_adddevice(rtmd_request *req)
{
    const char *apptype, *token;
    size_t apptype_len, token_len;
    if (req->gate == GATE_SERVER_TCP && !mp_map_get(req->args, "uid")) {
        req_arg_error(req, "uid");
        return;
    }
    if (!arg_text(req, "apptype", DEVICE_APPTYPE_MAX, &apptype, &apptype_len, NULL) ||
        !arg_text(req, "devicetoken", DEVICE_TOKEN_MAX, &token, &token_len, NULL))
        return;
    if (memchr(apptype, '\0', apptype_len)) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid 'apptype'");
        return;
    }
    dev_job *j = job_new(req, DEV_ADD, token_len);
    if (!j)
        return;
    memcpy(j->apptype, apptype, apptype_len);
    j->apptype[apptype_len] = '\0';
    memcpy(j->data, token, token_len);
    j->token = j->data;
    j->token_len = token_len;
    j->limit = req->project->limits.max_devices_per_user;
    run(j);
}

/* both gates: removedevice {uid (server), devicetoken} -> {}, also for a
 * token the user does not have */
static void method_removedevice(rtmd_request *req)
{
    const char *token;
    size_t token_len;
    if (req->gate == GATE_SERVER_TCP && !mp_map_get(req->args, "uid")) {
        req_arg_error(req, "uid");
        return;
    }
    if (!arg_text(req, "devicetoken", DEVICE_TOKEN_MAX, &token, &token_len, NULL))
        return;
    dev_job *j = job_new(req, DEV_REMOVE, token_len);
    if (!j)
        return;
    memcpy(j->data, token, token_len);
    j->token = j->data;
    j->token_len = token_len;
    run(j);
}

/* server (rtmd's own): getdevices {uid} -> {devices: [{apptype, devicetoken}]},
 * least recently added first */
static void method_getdevices(rtmd_request *req)
{
    dev_job *j = job_new(req, DEV_LIST, 0);
    if (!j)
        return;
    j->limit = req->project->limits.max_devices_per_user;
    run(j);
}

/* The conversation and types of addoption/removeoption: {type: 0 p2p | 1
 * group, xid, mtypes?}. Answers and returns false on a bad argument. */
static bool option_args(rtmd_request *req, dev_job *j)
{
    int64_t type;
    if (!req_arg_int64(req, "type", &type) || !req_arg_int64(req, "xid", &j->xid))
        return false;
    if (type != 0 && type != 1) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid 'type': 0 p2p or 1 group");
        return false;
    }
    j->kind = (int)type;
    j->all = true;
    const msgpack_object *o = mp_map_get(req->args, "mtypes");
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return true;
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        req_arg_error(req, "mtypes");
        return false;
    }
    if (o->via.array.size > OPTION_MTYPES_MAX) {
        request_error(req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, "too many mtypes");
        return false;
    }
    bool zero = false;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        int64_t t;
        if (!mp_obj_int64(&o->via.array.ptr[i], &t)) {
            req_arg_error(req, "mtypes");
            return false;
        }
        if (t < 0 || t >= MTYPE_COUNT) {
            request_error(req, RTM_EC_INVALID_MTYPE, "invalid mtype, should be in [0-127] (0: every type)");
            return false;
        }
        if (t == 0)
            zero = true;
        else
            j->set[t] = true;
        j->all = false;
    }
    if (zero)
        j->all = true;
    return true;
}

/* both gates: addoption / removeoption {uid (server), type, xid, mtypes?} -> {} */
static void method_option_change(rtmd_request *req)
{
    bool add = strcmp(req->method, "addoption") == 0;
    dev_job *j = job_new(req, add ? OPT_ADD : OPT_REMOVE, 0);
    if (!j)
        return;
    if (!option_args(req, j)) {
        job_free(j);
        return;
    }
    j->limit = req->project->limits.max_push_options_per_user;
    run(j);
}

/* both gates: getoption {uid (server)} -> {p2p: {"xid": [mtypes]}, group:
 * {"gid": [mtypes]}}, [0] for every type */
static void method_getoption(rtmd_request *req)
{
    dev_job *j = job_new(req, OPT_GET, 0);
    if (!j)
        return;
    /* What addoption lets a user hold, bounded by the setting's range. */
    j->limit = 100000;
    run(j);
}

static const rtmd_method devices_methods[] = {
    {"adddevice", GATES_SERVER | GATES_CLIENT, method_adddevice, 0},
    {"removedevice", GATES_SERVER | GATES_CLIENT, method_removedevice, 0},
    {"getdevices", GATES_SERVER, method_getdevices, 0},
    {"addoption", GATES_SERVER | GATES_CLIENT, method_option_change, 0},
    {"removeoption", GATES_SERVER | GATES_CLIENT, method_option_change, 0},
    {"getoption", GATES_SERVER | GATES_CLIENT, method_getoption, 0},
};

const rtmd_module devices_module = {
    .name = "devices",
    RTMD_MODULE_METHODS(devices_methods),
};
