/* store_file.h — the SQLite store's file: its name in data_dir, and a
 * consistent copy of it taken while rtmd may be writing (store_file.c). */
#ifndef RTMD_STORE_FILE_H
#define RTMD_STORE_FILE_H

#include <stddef.h>
#include <stdint.h>

/* The store's file name in data_dir (with its -wal and -shm beside it). */
#define STORE_FILE "rtmd.sqlite3"

/* Copies the rtmd store at path to the new file copy as of one commit:
 * `VACUUM INTO` on a read-only connection, one read transaction that in
 * WAL mode blocks neither rtmd's writer nor its readers. Refuses a file
 * that is not an rtmd store (no schema version or no messages table) and
 * checks the copy (`PRAGMA quick_check`). 0 with the copy's schema
 * version in *schema_version, or -1 with the reason in err (copy may then
 * exist, partly written: the caller removes it). */
int store_file_copy(const char *path, const char *copy, int64_t *schema_version, char *err, size_t errlen);

#endif
