/* Per-user key-value data: dataset, dataget and datadel on both gates (the
 * app server names the user with `uid`, a client always works on its own
 * data), kept in the store's user_data table and nowhere else.
 *
 * Shape: a handler checks the arguments and limits it can check alone (key
 * and value sizes) on the loop, then a write goes through the writer thread
 * and is answered from its done callback, after commit; a read runs on the
 * store's reader pool with a cached statement. The limit on keys per user
 * is checked inside the write: the writer applies writes one at a time, so
 * two concurrent datasets of new keys cannot both pass it. */
#include "log.h"
#include "methods.h"
#include "module.h"
#include "payload.h"
#include "rtm_errors.h"
#include "store.h"

#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum data_op { DATA_SET, DATA_GET, DATA_DEL };

typedef struct data_job {
    rtmd_request *req;
    enum data_op op;
    int64_t pid, uid, now;
    uint32_t max_keys;
    /* results, written by apply/read */
    bool over_limit; /* DATA_SET: a new key past max_keys */
    bool found;      /* DATA_GET */
    bool binary;     /* val is (or was sent as) msgpack bin */
    size_t key_len, val_len;
    char *val;       /* DATA_GET: malloc'd copy of the stored value */
    char data[];     /* key, then (DATA_SET) the value */
} data_job;

static void job_free(data_job *j)
{
    free(j->val);
    free(j);
}

static void job_fail(data_job *j, int status)
{
    if (status != DB_ABORT)
        LOG_ERROR("userdata: %s failed: %s", j->req->method, db_errstr(status));
    module_answer_store_failure(j->req, status);
    job_free(j);
}

/* Binds ?1 pid, ?2 uid, ?3 key. */
static void bind_key(db_stmt_t *st, const data_job *j)
{
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, j->uid);
    db_bind_blob(st, 3, j->data, (int)j->key_len);
}

/* ---- writer thread ---- */

static int apply_set(db_conn *db, data_job *j)
{
    db_stmt_t *st;
    j->over_limit = false;
    /* A new key counts against the limit; replacing a present one does not.
     * On PostgreSQL the user's keys are counted under their advisory lock,
     * so that sets through several nodes see each other. */
    int rc = module_limit_lock(db, MODULE_LIMIT_USER_DATA, j->pid, j->uid);
    if (rc != DB_OK)
        return rc;
    rc = db_stmt(db,
                  "SELECT EXISTS (SELECT 1 FROM user_data WHERE pid = ?1 AND uid = ?2 AND key = ?3),"
                  " (SELECT COUNT(*) FROM user_data WHERE pid = ?1 AND uid = ?2)",
                  &st);
    if (rc != DB_OK)
        return rc;
    bind_key(st, j);
    rc = db_step(st);
    bool present = false;
    int64_t count = 0;
    if (rc == DB_ROW) {
        present = db_column_int(st, 0) != 0;
        count = db_column_int64(st, 1);
        rc = DB_OK;
    }
    db_release(st);
    if (rc != DB_OK)
        return rc;
    if (!present && count >= (int64_t)j->max_keys) {
        j->over_limit = true;
        return DB_OK;
    }
    rc = db_stmt(db,
              "INSERT INTO user_data(pid, uid, key, val, val_binary, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
              " ON CONFLICT(pid, uid, key) DO UPDATE SET val = excluded.val, val_binary = excluded.val_binary,"
              " updated_at = excluded.updated_at",
              &st);
    if (rc != DB_OK)
        return rc;
    bind_key(st, j);
    db_bind_blob(st, 4, j->data + j->key_len, (int)j->val_len);
    db_bind_int(st, 5, j->binary);
    db_bind_int64(st, 6, j->now);
    return db_step_release(st);
}

static int apply_del(db_conn *db, data_job *j)
{
    db_stmt_t *st;
    int rc = db_stmt(db, "DELETE FROM user_data WHERE pid = ?1 AND uid = ?2 AND key = ?3", &st);
    if (rc != DB_OK)
        return rc;
    bind_key(st, j);
    return db_step_release(st);
}

static int apply_write(db_conn *db, void *arg)
{
    data_job *j = arg;
    return j->op == DATA_SET ? apply_set(db, j) : apply_del(db, j);
}

static void write_done(void *arg, int status)
{
    data_job *j = arg;
    if (status != DB_OK) {
        job_fail(j, status);
        return;
    }
    if (j->over_limit) {
        char ex[96];
        snprintf(ex, sizeof ex, "a user holds at most %u keys", j->max_keys);
        request_error(j->req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, ex);
    } else {
        request_answer_empty(j->req);
    }
    job_free(j);
}

/* ---- reader pool ---- */

static int read_get(db_conn *db, void *arg)
{
    data_job *j = arg;
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT val, val_binary FROM user_data WHERE pid = ?1 AND uid = ?2 AND key = ?3", &st);
    if (rc != DB_OK)
        return rc;
    bind_key(st, j);
    bool row = false;
    rc = db_step_row(st, &row);
    if (rc == DB_OK && row) {
        const void *p = db_column_blob(st, 0);
        size_t n = (size_t)db_column_bytes(st, 0);
        j->val = malloc(n ? n : 1);
        if (!j->val) {
            rc = DB_NOMEM;
        } else {
            if (n)
                memcpy(j->val, p, n);
            j->val_len = n;
            j->binary = db_column_int(st, 1) != 0;
            j->found = true;
        }
    }
    db_release(st);
    return rc;
}

static void get_done(void *arg, int status)
{
    data_job *j = arg;
    if (status != DB_OK) {
        job_fail(j, status);
        return;
    }
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    /* An absent key answers {}: the SDKs read `val` when it is there (the Go
     * SDK gives "" without it, the JS SDKs hand the map over as it is). */
    msgpack_pack_map(&pk, j->found ? 1 : 0);
    if (j->found) {
        mp_pack_cstr(&pk, "val");
        if (j->binary) {
            msgpack_pack_bin(&pk, j->val_len);
            msgpack_pack_bin_body(&pk, j->val, j->val_len);
        } else {
            msgpack_pack_str(&pk, j->val_len);
            msgpack_pack_str_body(&pk, j->val, j->val_len);
        }
    }
    request_answer(j->req, &body);
    msgpack_sbuffer_destroy(&body);
    job_free(j);
}

/* ---- methods ---- */

/* A required str-or-bin field (10009 missing or nil, 10010 another type). */
static bool arg_bytes(rtmd_request *req, const char *key, const char **s, size_t *len, bool *binary)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    if (!o || !mp_obj_str(o, s, len)) {
        req_arg_error(req, key);
        return false;
    }
    if (binary)
        *binary = o->type == MSGPACK_OBJECT_BIN;
    return true;
}

/* The user a request works on and its key: server {uid, key}, client {key}
 * (always the caller's own data; a `uid` it sends is ignored). Answers the
 * request and returns NULL on a bad argument. */
static data_job *job_for(rtmd_request *req, enum data_op op)
{
    int64_t uid = req->uid;
    if (req->gate == GATE_SERVER_TCP && !req_arg_int64(req, "uid", &uid))
        return NULL;
    const char *key, *val = NULL;
    size_t key_len, val_len = 0;
    bool binary = false;
    if (!arg_bytes(req, "key", &key, &key_len, NULL))
        return NULL;
    if (op == DATA_SET && !arg_bytes(req, "val", &val, &val_len, &binary))
        return NULL;
    const rtmd_project_config *lim = &req->project->limits;
    if (key_len == 0) {
        request_error(req, RTM_EC_EMPTY_PARAMETER, "empty key");
        return NULL;
    }
    if (key_len > lim->max_data_key_bytes) {
        char ex[64];
        snprintf(ex, sizeof ex, "key longer than %u bytes", lim->max_data_key_bytes);
        request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, ex);
        return NULL;
    }
    if (op == DATA_SET && val_len > lim->max_data_value_bytes) {
        char ex[64];
        snprintf(ex, sizeof ex, "val longer than %u bytes", lim->max_data_value_bytes);
        request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, ex);
        return NULL;
    }
    data_job *j = calloc(1, sizeof *j + key_len + val_len);
    if (!j) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return NULL;
    }
    j->req = req;
    j->op = op;
    j->pid = req->project->pid;
    j->uid = uid;
    j->now = clock_unix_seconds();
    j->max_keys = lim->max_data_keys_per_user;
    j->binary = binary;
    j->key_len = key_len;
    j->val_len = val_len;
    memcpy(j->data, key, key_len);
    if (val_len)
        memcpy(j->data + key_len, val, val_len);
    return j;
}

static void run(data_job *j)
{
    rtmd_request *req = j->req;
    int rc = j->op == DATA_GET ? store_read(req->srv->store, read_get, get_done, j)
                               : store_submit(req->srv->store, apply_write, write_done, j);
    if (rc != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        job_free(j);
    }
}

/* both gates: dataset {uid (server), key, val} -> {} */
static void method_dataset(rtmd_request *req)
{
    data_job *j = job_for(req, DATA_SET);
    if (j)
        run(j);
}

/* both gates: dataget {uid (server), key} -> {val} or {} when absent */
static void method_dataget(rtmd_request *req)
{
    data_job *j = job_for(req, DATA_GET);
    if (j) {
        /* val_len was the request's (0); the read sets it. */
        j->binary = false;
        run(j);
    }
}

/* both gates: datadel {uid (server), key} -> {}, also for an absent key */
static void method_datadel(rtmd_request *req)
{
    data_job *j = job_for(req, DATA_DEL);
    if (j)
        run(j);
}

static const rtmd_method userdata_methods[] = {
    {"dataset", GATES_SERVER | GATES_CLIENT, method_dataset, 0},
    {"dataget", GATES_SERVER | GATES_CLIENT, method_dataget, 0},
    {"datadel", GATES_SERVER | GATES_CLIENT, method_datadel, 0},
};

const rtmd_module userdata_module = {
    .name = "userdata",
    RTMD_MODULE_METHODS(userdata_methods),
};
