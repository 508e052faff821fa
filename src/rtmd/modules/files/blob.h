/* Stored files on disk (blob.c): content-addressed under
 * <data_dir>/files/<first two hex digits of sha256>/<sha256 hex>, written
 * to a temporary name in that directory, fsync'd, renamed and the
 * directory fsync'd, so that a file is whole or absent after a crash; the
 * same bytes are stored once. These functions block: they run on libuv's
 * thread pool (uv_queue_work), never on the loop. */
#ifndef RTMD_FILES_BLOB_H
#define RTMD_FILES_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLOB_SHA256_HEX 64
#define BLOB_MD5_HEX 32

/* Lower-case hex digests of data. */
void blob_digests(const uint8_t *data, size_t len, char sha256[BLOB_SHA256_HEX + 1], char md5[BLOB_MD5_HEX + 1]);

/* The path of the blob of sha256 under dir (<dir>/<2 hex>/<sha256>);
 * returns 0, or -1 when cap is too small. */
int blob_path(const char *dir, const char *sha256, char *out, size_t cap);

/* Stores data as the blob of sha256 under dir, unless a blob of that size
 * is there already (*existed then; its modification time is renewed). Returns 0, or an errno value with
 * nothing of the write left behind. */
int blob_store(const char *dir, const char *sha256, const uint8_t *data, size_t len, bool *existed);

/* Removes the blob of sha256 (a missing one is no error); returns 0 or an
 * errno value. */
int blob_remove(const char *dir, const char *sha256);

#endif
