/* Downloads of stored files on the HTTP listener: GET and HEAD
 * /files/<id>, the id the upload got (upload.c). The row is read through
 * the store's readers; the file is sent in parts from its blob (blob.h)
 * as the connection drains (conn_send_source), never read whole. The
 * parts are read with pread on the loop: 64 KiB from the page cache at a
 * time. Answers: the stored Content-Type, Content-Length, single byte
 * ranges (206; 416 when none of it exists), the sha256 as ETag with
 * If-None-Match (304), and caching for ever (a file's bytes never change). */
#include "blob.h"
#include "files.h"
#include "parse.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_ID_HEX 32
#define CACHE_CONTROL "Cache-Control: private, max-age=31536000, immutable\r\n"

typedef struct download {
    conn_source src;           /* first: the transport hands it back */
    http_deferred answer;
    struct files_state *fs;
    char id[FILE_ID_HEX + 1];
    char range[128];           /* the Range header, or "" */
    char if_none_match[256];
    /* The row, read by the store's reader. */
    bool found;
    char sha256[BLOB_SHA256_HEX + 1];
    int64_t size;
    char content_type[128];
    /* What is being sent. */
    int fd;
    uint64_t offset, left;
} download;

static bool is_id(const char *s)
{
    return strlen(s) == FILE_ID_HEX && strspn(s, "0123456789abcdef") == FILE_ID_HEX;
}

static int read_row(db_conn *db, void *arg)
{
    download *d = arg;
    db_stmt_t *st;
    int rc = db_prepare(db, "SELECT sha256, size, content_type FROM files WHERE id = ?1", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_text(st, 1, d->id, FILE_ID_HEX);
    bool row = false;
    rc = db_step_row(st, &row);
    if (rc == DB_OK && row) {
        const char *sha = db_column_text(st, 0), *type = db_column_text(st, 2);
        d->found = sha && strlen(sha) == BLOB_SHA256_HEX;
        if (d->found)
            memcpy(d->sha256, sha, BLOB_SHA256_HEX + 1);
        d->size = db_column_int64(st, 1);
        snprintf(d->content_type, sizeof d->content_type, "%s", type ? type : "application/octet-stream");
    }
    db_finalize(st);
    return rc;
}

/* Whether If-None-Match names the ETag (or is "*"). */
static bool etag_matches(const char *h, const char *sha256)
{
    if (!h[0])
        return false;
    if (strcmp(h, "*") == 0)
        return true;
    return strstr(h, sha256) != NULL;
}

static long fill(conn_source *src, uint8_t *buf, size_t cap)
{
    download *d = (download *)src;
    if (d->left == 0)
        return 0;
    size_t want = d->left < cap ? (size_t)d->left : cap;
    ssize_t n;
    do
        n = pread(d->fd, buf, want, (off_t)d->offset);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        LOG_ERROR("files: reading file %s: %s", d->id, n < 0 ? strerror(errno) : "shorter than stored");
        return -1;
    }
    d->offset += (uint64_t)n;
    d->left -= (uint64_t)n;
    return n;
}

static void download_free(download *d)
{
    if (d->fd >= 0)
        close(d->fd);
    free(d);
}

static void sent(conn_source *src, rtmd_conn *c, bool finished)
{
    download *d = (download *)src;
    http_deferred_source_done(&d->answer, c, finished);
    download_free(d);
}

static void error_answer(download *d, int status, const char *code, const char *text)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"description\":\"%s\"}", code, text);
    http_deferred_respond(&d->answer, status, "application/json", NULL, body, (size_t)n);
    download_free(d);
}

static void row_read(void *arg, int status)
{
    download *d = arg;
    if (status != DB_OK) {
        LOG_ERROR("files: reading file %s failed: %s", d->id, db_errstr(status));
        error_answer(d, 503, "unavailable", "storage error");
        return;
    }
    if (!d->found) {
        error_answer(d, 404, "not_found", "no such file");
        return;
    }
    char etag[BLOB_SHA256_HEX + 16], headers[HTTP_EXTRA_HEADERS_MAX];
    snprintf(etag, sizeof etag, "\"%s\"", d->sha256);
    if (etag_matches(d->if_none_match, d->sha256)) {
        snprintf(headers, sizeof headers, "ETag: %s\r\n" CACHE_CONTROL, etag);
        /* 304 carries no body: its Content-Length is 0 here */
        http_deferred_respond(&d->answer, 304, d->content_type, headers, NULL, 0);
        download_free(d);
        return;
    }
    char path[1100];
    struct stat st;
    if (blob_path(d->fs->blob_dir, d->sha256, path, sizeof path) != 0 ||
        (d->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(d->fd, &st) != 0 || st.st_size != d->size) {
        LOG_ERROR("files: the blob of file %s (%s) is missing or not its size", d->id, path);
        error_answer(d, 404, "not_found", "no such file");
        return;
    }
    uint64_t size = (uint64_t)d->size, first = 0, last = size ? size - 1 : 0;
    int r = file_range_parse(d->range, size, &first, &last);
    if (r < 0) {
        snprintf(headers, sizeof headers, "Content-Range: bytes */%" PRIu64 "\r\nAccept-Ranges: bytes\r\n", size);
        http_deferred_respond(&d->answer, 416, "text/plain", headers, "", 0);
        download_free(d);
        return;
    }
    int n = snprintf(headers, sizeof headers, "ETag: %s\r\n" CACHE_CONTROL "Accept-Ranges: bytes\r\n", etag);
    if (r > 0)
        snprintf(headers + n, sizeof headers - (size_t)n, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n",
                 first, last, size);
    d->offset = first;
    d->left = size ? last - first + 1 : 0;
    d->src.fill = fill;
    d->src.done = sent;
    if (!http_deferred_respond_source(&d->answer, r > 0 ? 206 : 200, d->content_type, headers, d->left, &d->src))
        download_free(d);
}

/* GET and HEAD /files/<id> */
static void route_file(rtmd_conn *c, const http_request *req)
{
    const char *id = req->path + strlen("/files/");
    if (!is_id(id)) {
        http_respond_error(c, req, 404, "not_found", "no such file");
        return;
    }
    download *d = calloc(1, sizeof *d);
    if (!d) {
        http_respond_error(c, req, 503, "unavailable", "out of memory");
        return;
    }
    d->fd = -1;
    d->fs = files_state(c->srv);
    memcpy(d->id, id, FILE_ID_HEX + 1);
    const char *range = http_request_header(req, "range"), *inm = http_request_header(req, "if-none-match");
    snprintf(d->range, sizeof d->range, "%s", range ? range : "");
    snprintf(d->if_none_match, sizeof d->if_none_match, "%s", inm ? inm : "");
    http_defer(c, req, &d->answer);
    if (store_read(c->srv->store, read_row, row_read, d) != 0)
        error_answer(d, 503, "unavailable", "server stopping");
}

const rtmd_http_route files_routes[1] = {
    {"GET", "/files/*", route_file},
};
