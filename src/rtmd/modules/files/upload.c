/* The file gate's methods (sendfile, sendfiles, sendgroupfile,
 * sendroomfile, broadcastfile): no login, each upload carries a file
 * token (tokens.h). An upload is checked on the loop (token, mtype, sizes,
 * the signature's presence in attrs), digested, signature-checked and
 * written to disk on libuv's thread pool (blob.h), recorded in the store
 * (files, file_messages), and then sent as the message it stands for
 * through the very method of its kind (sendmsg, sendmsgs, sendgroupmsg,
 * sendroommsg, broadcastmsg of messages.c), as the caller that asked for
 * the token: the app server, or the logged-in user. Its answer is that
 * method's ({mtime}). */
#include "blob.h"
#include "files.h"
#include "parse.h"

#include "clock.h"
#include "log.h"
#include "messages.h"
#include "payload.h"
#include "rtm_errors.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FILE_MTYPE_MIN 40
#define FILE_MTYPE_MAX 50
#define FILE_ID_HEX 32

typedef struct upload {
    uv_work_t work;
    rtmd_request *req;
    struct files_state *fs;
    file_cmd cmd;
    bool by_app_server;
    int64_t pid, from, mid;
    const uint8_t *file;        /* in req's payload */
    size_t size;
    char token[FILE_TOKEN_HEX + 1];
    file_attrs attrs;           /* what attrs says: the uploader's sign, name, ext */
    /* Thread pool results. */
    bool sign_ok, existed;
    int write_error;            /* errno */
    char sha256[BLOB_SHA256_HEX + 1];
    /* The stored row. */
    char id[FILE_ID_HEX + 1];
    const char *content_type;
    size_t nconvs;
    conv_key convs[];           /* the conversations of the messages it becomes */
} upload;

/* ---- what the upload carries ---- */

/* Whether the upload's target is the token's; answers a bad field. *ok
 * false: answered. */
static bool target_matches(rtmd_request *req, const file_token *t, bool *ok)
{
    *ok = true;
    if (t->cmd == FILE_CMD_BROADCAST)
        return true;
    if (t->cmd == FILE_CMD_MULTI) {
        int64_t *tos;
        uint32_t n;
        if (!req_arg_ids(req, "tos", UINT32_MAX, false, &tos, &n)) {
            *ok = false;
            return false;
        }
        bool same = n == t->ntos && memcmp(tos, t->tos, n * sizeof *tos) == 0;
        free(tos);
        return same;
    }
    int64_t target;
    if (!req_arg_int64(req, file_cmds[t->cmd].target, &target)) {
        *ok = false;
        return false;
    }
    return target == t->target;
}

/* The conversations the messages of an upload go to (file_messages). */
static size_t conversations(const file_token *t, conv_key *out)
{
    switch (t->cmd) {
    case FILE_CMD_P2P:
        out[0] = conv_p2p(t->from, t->target);
        return 1;
    case FILE_CMD_MULTI: {
        size_t n = 0;
        for (uint32_t i = 0; i < t->ntos; i++)
            if (t->tos[i] != t->from)
                out[n++] = conv_p2p(t->from, t->tos[i]);
        return n;
    }
    case FILE_CMD_GROUP:
        out[0] = conv_group(t->target);
        return 1;
    case FILE_CMD_ROOM:
        out[0] = conv_room(t->target);
        return 1;
    default:
        out[0] = conv_broadcast();
        return 1;
    }
}

/* ---- sending the message ---- */

/* The URL of a stored file: file_base_url, or the HTTP listener at the
 * address the uploader reached this node on (the HTTPS one when only it
 * listens). */
static void file_url(rtmd_server *srv, rtmd_conn *conn, const char *id, char *out, size_t cap)
{
    if (srv->cfg.file_base_url[0]) {
        size_t n = strlen(srv->cfg.file_base_url);
        bool slash = srv->cfg.file_base_url[n - 1] == '/';
        snprintf(out, cap, "%s%sfiles/%s", srv->cfg.file_base_url, slash ? "" : "/", id);
        return;
    }
    char host[INET6_ADDRSTRLEN + 2];
    files_local_host(conn, host, sizeof host);
    bool tls = !srv->listeners[ENDPOINT_HTTP].active && srv->listeners[ENDPOINT_HTTPS].active;
    snprintf(out, cap, "%s://%s:%d/files/%s", tls ? "https" : "http", host,
             srv->listeners[tls ? ENDPOINT_HTTPS : ENDPOINT_HTTP].port, id);
}

/* msg of the file message: the JSON the SDKs' file-info builders read. */
static char *file_msg(const upload *u, const char *url)
{
    json_t *o = json_object();
    json_object_set_new(o, "url", json_string(url));
    json_object_set_new(o, "size", json_integer((json_int_t)u->size));
    if (u->attrs.ext[0])
        json_object_set_new(o, "ext", json_string(u->attrs.ext));
    if (u->attrs.name[0])
        json_object_set_new(o, "name", json_string(u->attrs.name));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* Turns the request into the send method's: its arguments {from, target,
 * mid, mtype, msg, attrs} and the caller the token was issued to; then
 * runs that method, which answers. */
static void send_message(upload *u)
{
    rtmd_request *req = u->req;
    rtmd_server *srv = req->srv;
    char url[700];
    file_url(srv, req->conn, u->id, url, sizeof url);
    char *msg = file_msg(u, url);
    const char *target = file_cmds[u->cmd].target;
    const msgpack_object *target_obj = target ? mp_map_get(req->args, target) : NULL;
    const msgpack_object *mtype = mp_map_get(req->args, "mtype"), *attrs = mp_map_get(req->args, "attrs");
    if (!msg) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, target_obj ? 6 : 5);
    mp_pack_kv_int(&pk, "from", u->from);
    if (target_obj) {
        mp_pack_cstr(&pk, target);
        msgpack_pack_object(&pk, *target_obj);
    }
    mp_pack_kv_int(&pk, "mid", u->mid);
    mp_pack_cstr(&pk, "mtype");
    msgpack_pack_object(&pk, *mtype);
    mp_pack_kv_str(&pk, "msg", msg);
    mp_pack_cstr(&pk, "attrs");
    msgpack_pack_object(&pk, *attrs);
    free(msg);
    msgpack_unpacked rebuilt;
    int rc = rtm_payload_decode(FPNN_FLAG_MSGPACK, (const uint8_t *)args.data, args.size, &rebuilt);
    msgpack_sbuffer_destroy(&args);
    if (rc != 0) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    msgpack_unpacked_destroy(&req->payload); /* the file's bytes go */
    req->payload = rebuilt;
    req->args = &req->payload.data;
    req->gate = u->by_app_server ? GATE_SERVER_TCP : GATE_CLIENT_TCP;
    req->uid = u->by_app_server ? 0 : u->from;
    const char *method = file_cmds[u->cmd].send_method;
    const rtmd_method *m = methods_find(srv->methods, method, strlen(method));
    if (!m) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "no send method");
        return;
    }
    m->handler(req);
}

/* ---- the store ---- */

static int insert_rows(db_conn *db, void *arg)
{
    upload *u = arg;
    db_stmt_t *st;
    int rc = db_stmt(db,
                     "INSERT INTO files(id, pid, sha256, size, content_type, name, ext, created)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                     &st);
    if (rc != DB_OK)
        return rc;
    db_bind_text(st, 1, u->id, FILE_ID_HEX);
    db_bind_int64(st, 2, u->pid);
    db_bind_text(st, 3, u->sha256, BLOB_SHA256_HEX);
    db_bind_int64(st, 4, (int64_t)u->size);
    db_bind_text(st, 5, u->content_type, (int)strlen(u->content_type));
    if (u->attrs.name[0])
        db_bind_text(st, 6, u->attrs.name, (int)strlen(u->attrs.name));
    else
        db_bind_null(st, 6);
    if (u->attrs.ext[0])
        db_bind_text(st, 7, u->attrs.ext, (int)strlen(u->attrs.ext));
    else
        db_bind_null(st, 7);
    db_bind_int64(st, 8, clock_unix_seconds());
    if ((rc = db_step_release(st)) != DB_OK)
        return rc;
    for (size_t i = 0; i < u->nconvs; i++) {
        rc = db_stmt(db,
                     "INSERT INTO file_messages(file_id, pid, conv_type, conv_a, conv_b, from_uid, mid)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                     &st);
        if (rc != DB_OK)
            return rc;
        db_bind_text(st, 1, u->id, FILE_ID_HEX);
        db_bind_int64(st, 2, u->pid);
        db_bind_int(st, 3, u->convs[i].conv_type);
        db_bind_int64(st, 4, u->convs[i].a);
        db_bind_int64(st, 5, u->convs[i].b);
        db_bind_int64(st, 6, u->from);
        db_bind_int64(st, 7, u->mid);
        if ((rc = db_step_release(st)) != DB_OK)
            return rc;
    }
    return DB_OK;
}

static void upload_finish(upload *u)
{
    u->fs->inflight--;
    free(u);
}

static void rows_inserted(void *arg, int status)
{
    upload *u = arg;
    if (status != DB_OK) {
        LOG_ERROR("files: recording file %s failed: %s", u->id, db_errstr(status));
        module_answer_store_failure(u->req, status);
    } else {
        u->fs->uploads++;
        u->fs->upload_bytes += u->size;
        send_message(u);
    }
    upload_finish(u);
}

/* ---- the thread pool ---- */

static void digest_and_store(uv_work_t *w)
{
    upload *u = w->data;
    char md5[BLOB_MD5_HEX + 1];
    blob_digests(u->file, u->size, u->sha256, md5);
    /* sign = md5(lower(md5(file)) + ":" + token), hex, any case */
    char text[BLOB_MD5_HEX + 1 + FILE_TOKEN_HEX + 1];
    int n = snprintf(text, sizeof text, "%s:%s", md5, u->token);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char expected[BLOB_MD5_HEX + 1];
    EVP_Digest(text, (size_t)n, d, &len, EVP_md5(), NULL);
    for (unsigned i = 0; i < 16; i++)
        snprintf(expected + 2 * i, 3, "%02x", d[i]);
    u->sign_ok = strncasecmp(expected, u->attrs.sign, BLOB_MD5_HEX) == 0;
    if (u->sign_ok)
        u->write_error = blob_store(u->fs->blob_dir, u->sha256, u->file, u->size, &u->existed);
}

static void digested(uv_work_t *w, int status)
{
    upload *u = w->data;
    rtmd_request *req = u->req;
    if (status == UV_ECANCELED) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    } else if (!u->sign_ok) {
        request_error(req, RTM_EC_ATTRS_WITHOUT_SIGN_OR_EXT, "file signature does not match");
    } else if (u->write_error) {
        u->fs->upload_errors++;
        LOG_ERROR("files: cannot store a file of %zu bytes in %s: %s", u->size, u->fs->blob_dir,
                  strerror(u->write_error));
        request_error(req, RTM_EC_UNKNOWN_ERROR, "cannot store the file");
    } else {
        u->file = NULL; /* on disk now */
        uint8_t r[16];
        if (RAND_bytes(r, sizeof r) != 1) {
            request_error(req, RTM_EC_UNKNOWN_ERROR, "no randomness");
        } else {
            for (size_t i = 0; i < sizeof r; i++)
                snprintf(u->id + 2 * i, 3, "%02x", r[i]);
            const char *type = u->attrs.ext[0] ? file_type_of_ext(u->attrs.ext) : NULL;
            u->content_type = type ? type : "application/octet-stream";
            if (store_submit(req->srv->store, insert_rows, rows_inserted, u) == 0)
                return;
            request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        }
    }
    upload_finish(u);
}

/* ---- the method ---- */

/* {pid, from, token, to | tos | gid | rid, mtype, file, attrs, mid} */
static void method_upload(rtmd_request *req)
{
    struct files_state *fs = files_state(req->srv);
    int cmd = file_cmd_find(req->method, strlen(req->method));
    int64_t pid, from, mtype, mid;
    const char *token;
    size_t token_len;
    if (req->oversized) { /* over every project's limit: its payload was skipped (conn.c) */
        request_error(req, RTM_EC_LARGE_FILE_OR_ATTRS, "file too large");
        return;
    }
    if (!req_arg_int64(req, "pid", &pid) || !req_arg_int64(req, "from", &from))
        return;
    const msgpack_object *tok = mp_map_get(req->args, "token");
    if (!tok || tok->type != MSGPACK_OBJECT_STR) {
        req_arg_error(req, "token");
        return;
    }
    token = tok->via.str.ptr;
    token_len = tok->via.str.size;
    rtmd_project *project = rtmd_server_project(req->srv, pid);
    file_token *t = file_tokens_find(&fs->tokens, token, token_len, uv_now(req->srv->loop));
    bool answered_ok;
    if (!project || !t || t->pid != pid || t->from != from || (int)t->cmd != cmd) {
        request_error(req, RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN, "invalid file token");
        return;
    }
    if (!target_matches(req, t, &answered_ok)) {
        if (answered_ok)
            request_error(req, RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN, "invalid file token");
        return;
    }
    if (!req_arg_int64(req, "mtype", &mtype) || !req_arg_int64(req, "mid", &mid))
        return;
    if (mtype < FILE_MTYPE_MIN || mtype > FILE_MTYPE_MAX) {
        request_error(req, RTM_EC_INVALID_FILE_MTYPE, "invalid mtype for a file, should be in [40-50]");
        return;
    }
    const msgpack_object *file = mp_map_get(req->args, "file");
    if (!file || (file->type != MSGPACK_OBJECT_BIN && file->type != MSGPACK_OBJECT_STR)) {
        req_arg_error(req, "file");
        return;
    }
    const msgpack_object *attrs = mp_map_get(req->args, "attrs");
    if (!attrs || (attrs->type != MSGPACK_OBJECT_STR && attrs->type != MSGPACK_OBJECT_BIN)) {
        req_arg_error(req, "attrs");
        return;
    }
    size_t size = file->via.bin.size; /* str and bin share their layout */
    if (size == 0) {
        request_error(req, RTM_EC_EMPTY_PARAMETER, "empty file");
        return;
    }
    if (size > project->limits.max_file_bytes) {
        request_error(req, RTM_EC_LARGE_FILE_OR_ATTRS, "file too large");
        return;
    }
    if (attrs->via.str.size > project->limits.max_attrs_bytes) {
        request_error(req, RTM_EC_LARGE_FILE_OR_ATTRS, "too large attrs");
        return;
    }
    if (fs->inflight >= req->srv->cfg.max_file_connections) {
        request_error(req, RTM_EC_API_FREQUENCY_LIMITED, "too many uploads in progress");
        return;
    }
    size_t nconvs = t->cmd == FILE_CMD_MULTI ? t->ntos : 1;
    upload *u = calloc(1, sizeof *u + nconvs * sizeof(conv_key));
    if (!u) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    if (!file_attrs_parse(attrs->via.str.ptr, attrs->via.str.size, &u->attrs)) {
        free(u);
        request_error(req, RTM_EC_ATTRS_WITHOUT_SIGN_OR_EXT, "attrs without the file's sign");
        return;
    }
    u->req = req;
    u->fs = fs;
    u->cmd = t->cmd;
    u->by_app_server = t->by_app_server;
    u->pid = pid;
    u->from = from;
    u->mid = mid;
    u->file = (const uint8_t *)file->via.bin.ptr;
    u->size = size;
    memcpy(u->token, token, FILE_TOKEN_HEX);
    u->nconvs = conversations(t, u->convs);
    req->project = project;
    file_tokens_drop(&fs->tokens, t); /* used, whatever comes of the upload */
    u->work.data = u;
    fs->inflight++;
    if (uv_queue_work(req->srv->loop, &u->work, digest_and_store, digested) != 0) {
        fs->inflight--;
        free(u);
        request_error(req, RTM_EC_UNKNOWN_ERROR, "cannot queue the upload");
    }
}

const rtmd_method files_upload_methods[FILE_CMD_COUNT] = {
    {"sendfile", GATES_FILE, method_upload, RTMD_M_OPEN},
    {"sendfiles", GATES_FILE, method_upload, RTMD_M_OPEN},
    {"sendgroupfile", GATES_FILE, method_upload, RTMD_M_OPEN},
    {"sendroomfile", GATES_FILE, method_upload, RTMD_M_OPEN},
    {"broadcastfile", GATES_FILE, method_upload, RTMD_M_OPEN},
};
