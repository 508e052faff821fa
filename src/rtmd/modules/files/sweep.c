/* The sweep of stored files (files.c's tick starts it every
 * retention_interval seconds, and again at the next tick while a slice
 * came back full). A file goes with the last message that refers to it:
 *  1. links (file_messages) whose message is gone or deleted (history
 *     retention, delmsg, clean-ups) are dropped, 500 at a time;
 *  2. rows of files without a link are dropped, 500 at a time: those whose
 *     messages went, and uploads whose message was never stored;
 *  3. blobs no row refers to are unlinked, with the temporary files a
 *     crash left, at most 500 directory entries a run, each node in its
 *     own <data_dir>/files.
 * Everything waits file_orphan_grace seconds first: a link before its
 * message is committed, a row before its link, a blob before its row
 * (an upload that finds its bytes stored already renews the blob's time,
 * blob.c). Steps 1 and 2 run on one node of a cluster (module_job_leader);
 * step 3 on the thread pool with a reader connection of the store. */
#include "blob.h"
#include "files.h"

#include "clock.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SWEEP_SLICE 500
#define BLOB_SUBDIRS 256

typedef struct sweep_run {
    struct files_state *fs;
    int64_t cutoff;            /* unix seconds: older than this may go */
    int64_t links, rows;       /* deleted by steps 1 and 2 */
    /* step 3 */
    unsigned cursor;           /* the subdirectory to start at */
    unsigned entries;          /* directory entries looked at */
    uint64_t blobs, temps;     /* unlinked */
    char dir[sizeof ((struct files_state *)0)->blob_dir];
} sweep_run;

/* One DELETE whose ?1 is the cutoff; *deleted = the rows it took. */
static int delete_older(db_conn *db, const char *sql, int64_t cutoff, int64_t *deleted)
{
    db_stmt_t *st;
    int rc = db_stmt(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, cutoff);
    if ((rc = db_step_release(st)) == DB_OK)
        *deleted = db_changes(db);
    return rc;
}

static int delete_rows(db_conn *db, void *arg)
{
    sweep_run *r = arg;
    int rc = delete_older(db,
                          "DELETE FROM file_messages WHERE (file_id, conv_type, conv_a, conv_b) IN ("
                          " SELECT fm.file_id, fm.conv_type, fm.conv_a, fm.conv_b FROM file_messages fm"
                          " JOIN files f ON f.id = fm.file_id WHERE f.created <= ?1 AND NOT EXISTS ("
                          "  SELECT 1 FROM messages m WHERE m.mid = fm.mid AND m.from_uid = fm.from_uid"
                          "  AND m.pid = fm.pid AND m.conv_type = fm.conv_type AND m.conv_a = fm.conv_a"
                          "  AND m.conv_b = fm.conv_b AND m.deleted = 0)"
                          " LIMIT 500)",
                          r->cutoff, &r->links);
    if (rc != DB_OK)
        return rc;
    return delete_older(db,
                        "DELETE FROM files WHERE id IN (SELECT f.id FROM files f WHERE f.created <= ?1 AND NOT EXISTS ("
                        " SELECT 1 FROM file_messages fm WHERE fm.file_id = f.id) LIMIT 500)",
                        r->cutoff, &r->rows);
}

static bool is_sha256(const char *s)
{
    return strlen(s) == BLOB_SHA256_HEX && strspn(s, "0123456789abcdef") == BLOB_SHA256_HEX;
}

/* Whether a row of files names this content. */
static int blob_referenced(db_conn *db, const char *sha256, bool *yes)
{
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT 1 FROM files WHERE sha256 = ?1 LIMIT 1", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_text(st, 1, sha256, BLOB_SHA256_HEX);
    rc = db_step(st);
    *yes = rc == DB_ROW;
    db_release(st);
    return rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
}

/* Step 3, on the thread pool: the subdirectories from the cursor on,
 * until SWEEP_SLICE entries were looked at. */
static int scan_blobs(db_conn *db, void *arg)
{
    sweep_run *r = arg;
    unsigned done = 0;
    for (; done < BLOB_SUBDIRS && r->entries < SWEEP_SLICE; done++) {
        unsigned sub = (r->cursor + done) % BLOB_SUBDIRS;
        char path[sizeof r->dir + 8];
        snprintf(path, sizeof path, "%s/%02x", r->dir, sub);
        DIR *d = opendir(path);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) && r->entries < SWEEP_SLICE + 64) {
            if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
                continue;
            r->entries++;
            char file[sizeof path + 300];
            struct stat st;
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            if (lstat(file, &st) != 0 || !S_ISREG(st.st_mode) || st.st_mtime > r->cutoff)
                continue;
            bool temp = strncmp(e->d_name, ".tmp-", 5) == 0;
            if (!temp) {
                bool used;
                if (!is_sha256(e->d_name))
                    continue; /* not ours */
                int rc = blob_referenced(db, e->d_name, &used);
                if (rc != DB_OK) {
                    closedir(d);
                    return rc;
                }
                if (used)
                    continue;
            }
            if (unlink(file) == 0) {
                if (temp)
                    r->temps++;
                else
                    r->blobs++;
            }
        }
        closedir(d);
    }
    r->cursor = (r->cursor + done) % BLOB_SUBDIRS;
    return DB_OK;
}

static void sweep_end(sweep_run *r)
{
    struct files_state *fs = r->fs;
    fs->sweeping = false;
    fs->blob_cursor = r->cursor;
    fs->sweep_again = r->links == SWEEP_SLICE || r->rows == SWEEP_SLICE || r->entries >= SWEEP_SLICE;
    fs->swept_rows += (uint64_t)r->rows;
    fs->swept_blobs += r->blobs;
    if (r->rows || r->blobs || r->temps)
        LOG_INFO("files: swept %lld file rows, %llu blobs, %llu temporary files", (long long)r->rows,
                 (unsigned long long)r->blobs, (unsigned long long)r->temps);
    free(r);
}

static void blobs_scanned(void *arg, int status)
{
    sweep_run *r = arg;
    if (status != DB_OK)
        LOG_ERROR("files: the sweep of %s failed: %s", r->dir, db_errstr(status));
    sweep_end(r);
}

static void start_blob_scan(sweep_run *r)
{
    if (store_read(r->fs->srv->store, scan_blobs, blobs_scanned, r) != 0)
        sweep_end(r);
}

static void rows_deleted(void *arg, int status)
{
    sweep_run *r = arg;
    if (status != DB_OK)
        LOG_ERROR("files: the sweep of file rows failed: %s", db_errstr(status));
    start_blob_scan(r);
}

static void on_leader(void *arg, bool leader)
{
    sweep_run *r = arg;
    if (!leader || store_submit(r->fs->srv->store, delete_rows, rows_deleted, r) != 0)
        start_blob_scan(r);
}

void files_sweep(struct files_state *fs)
{
    rtmd_server *srv = fs->srv;
    if (fs->sweeping || !srv->store)
        return;
    sweep_run *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->fs = fs;
    r->cutoff = clock_unix_seconds() - (int64_t)srv->cfg.file_orphan_grace;
    r->cursor = fs->blob_cursor;
    memcpy(r->dir, fs->blob_dir, sizeof r->dir);
    fs->sweeping = true;
    if (module_job_leader(srv, MODULE_JOB_FILES, on_leader, r) != 0)
        start_blob_scan(r);
}
