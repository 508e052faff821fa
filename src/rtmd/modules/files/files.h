/* Files (issue 15): the module's state shared by its parts: tokens.c (the
 * one-time upload tokens), files.c (filetoken, the module), upload.c (the
 * file gate's methods), blob.c (content-addressed files on disk). */
#ifndef RTMD_FILES_H
#define RTMD_FILES_H

#include "module.h"
#include "tokens.h"

struct files_state {
    rtmd_server *srv;
    file_tokens tokens;
    uv_timer_t timer;   /* expires tokens, sweeps orphaned files */
    bool timer_closed;
    char blob_dir[600]; /* <data_dir>/files */
    uint64_t uploads, upload_bytes, upload_errors;
    uint32_t inflight;  /* uploads being digested, written or recorded */
    /* sweep.c */
    bool sweeping, sweep_again;
    unsigned blob_cursor;       /* the blob subdirectory the next scan starts at */
    uint64_t last_sweep_ms;
    uint64_t swept_rows, swept_blobs;
};

static inline struct files_state *files_state(rtmd_server *srv)
{
    return srv->svc->files;
}

/* The address conn reached this node on, as a URL or endpoint writes it
 * ("1.2.3.4", "[::1]"): the host of what filetoken and file messages name
 * when the configuration does not. */
void files_local_host(rtmd_conn *conn, char *out, size_t cap);

/* upload.c: the file gate's methods. */
extern const rtmd_method files_upload_methods[FILE_CMD_COUNT];

/* sweep.c: one run of the sweep of stored files (nothing when one runs). */
void files_sweep(struct files_state *fs);

/* download.c: GET and HEAD /files/<id> on the HTTP listener. */
extern const rtmd_http_route files_routes[1];

#endif
