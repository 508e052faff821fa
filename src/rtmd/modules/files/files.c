/* The files module: `filetoken` on the client and server gates (a
 * one-time token, tokens.h, and the file gate's endpoint), the module's
 * life cycle and its periodic tick (token expiry). The uploads are
 * upload.c's, the files on disk blob.c's, the downloads download.c's. */
#include "files.h"

#include "log.h"
#include "payload.h"
#include "rtm_errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void files_local_host(rtmd_conn *conn, char *out, size_t cap)
{
    struct sockaddr_storage local;
    int len = sizeof local;
    char host[INET6_ADDRSTRLEN] = "127.0.0.1";
    if (uv_tcp_getsockname(&conn->tcp, (struct sockaddr *)&local, &len) == 0) {
        if (local.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&local, host, sizeof host);
        else
            uv_ip4_name((struct sockaddr_in *)&local, host, sizeof host);
    }
    snprintf(out, cap, strchr(host, ':') ? "[%s]" : "%s", host);
}

/* "host:port" of the file gate for a caller on conn: file_endpoint, or
 * the address the caller reached this node on with the file TCP port.
 * Returns false when the file gate does not listen on TCP. */
static bool file_endpoint(rtmd_server *srv, rtmd_conn *conn, char *out, size_t cap)
{
    if (srv->cfg.file_endpoint[0]) {
        snprintf(out, cap, "%s", srv->cfg.file_endpoint);
        return true;
    }
    const rtmd_listener *l = &srv->listeners[ENDPOINT_FILE_TCP];
    if (!l->active)
        return false;
    char host[INET6_ADDRSTRLEN + 2];
    files_local_host(conn, host, sizeof host);
    snprintf(out, cap, "%s:%d", host, l->port);
    return true;
}

/* filetoken {from (server gate), cmd, to | tos | gid | rid} -> {token,
 * endpoint}. Only the field cmd names is read (the Python SDK sends to,
 * gid and rid together); broadcastfile is the app server's alone. */
static void method_filetoken(rtmd_request *req)
{
    file_token t = {.pid = req->project->pid, .from = req->uid, .by_app_server = req->gate == GATE_SERVER_TCP};
    if (t.by_app_server && !req_arg_int64(req, "from", &t.from))
        return;
    const msgpack_object *cmd = mp_map_get(req->args, "cmd");
    if (!cmd || (cmd->type != MSGPACK_OBJECT_STR && cmd->type != MSGPACK_OBJECT_BIN)) {
        req_arg_error(req, "cmd");
        return;
    }
    int c = file_cmd_find(cmd->via.str.ptr, cmd->via.str.size); /* str and bin share their layout */
    if (c < 0 || (c == FILE_CMD_BROADCAST && !t.by_app_server)) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid 'cmd'");
        return;
    }
    t.cmd = (file_cmd)c;
    if (c == FILE_CMD_MULTI) {
        if (!req_arg_ids(req, "tos", req->project->limits.max_receivers, false, &t.tos, &t.ntos))
            return;
    } else if (file_cmds[c].target && !req_arg_int64(req, file_cmds[c].target, &t.target)) {
        return;
    }
    struct files_state *fs = files_state(req->srv);
    char endpoint[320];
    if (!file_endpoint(req->srv, req->conn, endpoint, sizeof endpoint)) {
        free(t.tos);
        request_error(req, RTM_EC_NO_CONFIG_IN_CONSOLE, "the file gate is not enabled on this server");
        return;
    }
    bool over;
    file_token *issued = file_tokens_issue(&fs->tokens, &t, uv_now(req->srv->loop), req->srv->cfg.file_token_ttl, &over);
    if (!issued) {
        free(t.tos);
        if (over)
            request_error(req, RTM_EC_API_FREQUENCY_LIMITED, "too many file tokens outstanding");
        else
            request_error(req, RTM_EC_UNKNOWN_ERROR, "cannot issue a file token");
        return;
    }
    char hex[FILE_TOKEN_HEX + 1];
    file_tokens_hex(issued, hex);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_str(&pk, "token", hex);
    mp_pack_kv_str(&pk, "endpoint", endpoint);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* ---- life cycle ---- */

static void on_tick(uv_timer_t *t)
{
    struct files_state *fs = t->data;
    if (rtmd_timer_end_on_stop(fs->srv, t, &fs->timer_closed))
        return;
    uint64_t now = uv_now(fs->srv->loop);
    file_tokens_expire(&fs->tokens, now);
    if (fs->sweep_again || now - fs->last_sweep_ms >= (uint64_t)fs->srv->cfg.retention_interval * 1000u) {
        fs->last_sweep_ms = now;
        files_sweep(fs);
    }
}

static int files_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct files_state *fs = calloc(1, sizeof *fs);
    if (!fs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    fs->srv = srv;
    srv->svc->files = fs;
    snprintf(fs->blob_dir, sizeof fs->blob_dir, "%s/files", srv->cfg.data_dir);
    /* On PostgreSQL nothing else makes data_dir; an upload that finds no
     * place for its file is answered an error then (upload.c). */
    if (mkdir(srv->cfg.data_dir, 0750) != 0 && errno != EEXIST)
        LOG_WARN("files: cannot make data_dir %s: %s", srv->cfg.data_dir, strerror(errno));
    uv_timer_init(srv->loop, &fs->timer);
    fs->timer.data = fs;
    uv_timer_start(&fs->timer, on_tick, 1000, 1000);
    if (methods_register(srv->methods, files_upload_methods, FILE_CMD_COUNT) != 0) {
        snprintf(err, errlen, "files: cannot register the file gate's methods");
        return -1;
    }
    return 0;
}

static void files_free(rtmd_server *srv)
{
    struct files_state *fs = srv->svc->files;
    if (!fs)
        return;
    file_tokens_free(&fs->tokens);
    srv->svc->files = NULL;
    if (rtmd_timer_release(&fs->timer, fs->timer_closed))
        free(fs);
}

static void files_metrics(const rtmd_server *srv, prom_out *out)
{
    const struct files_state *fs = srv->svc->files;
    if (!fs)
        return;
    prom_metric(out, "rtmd_file_tokens", "gauge", "File tokens issued and not used or expired yet.",
                fs->tokens.by_key.count);
    prom_metric(out, "rtmd_file_uploads_total", "counter", "Files received on the file gate and stored.",
                fs->uploads);
    prom_metric(out, "rtmd_file_upload_bytes_total", "counter", "Bytes of the files received and stored.",
                fs->upload_bytes);
    prom_metric(out, "rtmd_file_upload_errors_total", "counter", "Uploads whose file could not be written.",
                fs->upload_errors);
    prom_metric(out, "rtmd_files_swept_total", "counter", "Rows of stored files the sweep deleted.", fs->swept_rows);
    prom_metric(out, "rtmd_file_blobs_swept_total", "counter", "Files on disk the sweep removed.", fs->swept_blobs);
}

static const rtmd_method files_methods[] = {
    {"filetoken", GATES_CLIENT | GATES_SERVER, method_filetoken, 0},
};

const rtmd_module files_module = {
    .name = "files",
    .init = files_init,
    .free = files_free,
    .metrics = files_metrics,
    RTMD_MODULE_METHODS(files_methods),
    RTMD_MODULE_ROUTES(files_routes),
};
