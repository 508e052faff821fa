/* rtmctl_backup.c — `rtmctl backup`: a consistent copy of the SQLite store
 * of an rtmd that may be running, for operators to keep and restore.
 *
 * The copy itself is the store's (store_file_copy: one read transaction,
 * the store as of one commit, blocking neither rtmd's writer nor its
 * readers). This file owns the files around it: the copy is written under
 * a temporary name next to the target, fsynced, then linked to the target
 * name, which must not exist, and the directory fsynced: a backup never
 * overwrites a file and never leaves a partial one behind. */
#include "rtmctl_backup.h"
#include "store_file.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The store file: FROM itself, or FROM/rtmd.sqlite3 when FROM is a
 * directory (rtmd's data_dir). */
static int store_path(const char *from, char *out, size_t cap)
{
    struct stat st;
    if (stat(from, &st) != 0) {
        fprintf(stderr, "rtmctl: backup: %s: %s\n", from, strerror(errno));
        return -1;
    }
    int n = S_ISDIR(st.st_mode) ? snprintf(out, cap, "%s/%s", from, STORE_FILE) : snprintf(out, cap, "%s", from);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "rtmctl: backup: path too long: %s\n", from);
        return -1;
    }
    if (access(out, R_OK) != 0) {
        fprintf(stderr, "rtmctl: backup: %s: %s\n", out, strerror(errno));
        return -1;
    }
    return 0;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static long long ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (long long)(t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void print_report(const char *to, off_t bytes, int64_t version, long long ms)
{
    json_t *report = json_pack("{s:s, s:I, s:I, s:I}", "file", to, "bytes", (json_int_t)bytes, "schema_version",
                               (json_int_t)version, "ms", (json_int_t)ms);
    char *text = report ? json_dumps(report, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(report);
}

int rtmctl_backup(const char *from, const char *to)
{
    char src[4096], tmp[4096], dir_buf[4096], err[512];
    if (store_path(from, src, sizeof src) != 0)
        return 1;
    if (access(to, F_OK) == 0) {
        fprintf(stderr, "rtmctl: backup: %s exists; a backup never overwrites a file\n", to);
        return 1;
    }
    int n = snprintf(tmp, sizeof tmp, "%s.partial-%ld", to, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        fprintf(stderr, "rtmctl: backup: path too long: %s\n", to);
        return 1;
    }
    snprintf(dir_buf, sizeof dir_buf, "%s", to);

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t version = -1;
    struct stat st;
    int result = 1;
    if (store_file_copy(src, tmp, &version, err, sizeof err) != 0) {
        fprintf(stderr, "rtmctl: backup: %s\n", err);
        goto out;
    }
    if (fsync_path(tmp, O_RDONLY) != 0 || stat(tmp, &st) != 0) {
        fprintf(stderr, "rtmctl: backup: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    /* link() fails when the target appeared meanwhile: nothing is overwritten. */
    if (link(tmp, to) != 0) {
        fprintf(stderr, "rtmctl: backup: %s: %s\n", to, strerror(errno));
        goto out;
    }
    if (fsync_path(dirname(dir_buf), O_RDONLY | O_DIRECTORY) != 0) {
        fprintf(stderr, "rtmctl: backup: syncing the directory of %s: %s\n", to, strerror(errno));
        unlink(to);
        goto out;
    }
    print_report(to, st.st_size, version, ms_since(&t0));
    result = 0;
out:
    unlink(tmp);
    return result;
}
