/* The prepared-statement cache of one connection, shared by the backends
 * of db.h (db_sqlite.c, db_pg.c; inside src/rtmd/store/ only).
 *
 * Statements are kept across the writes (writer) or reads (a pooled
 * reader) that use the connection, so those run for every message or page
 * are prepared once, not per call. Keyed by the text of the SQL, which the
 * cache copies, so a caller may build its SQL in a buffer of its own. An
 * entry handed out is busy until given back: the same SQL asked twice
 * before that gets a fresh statement, and eviction (round robin when full)
 * skips busy entries. Only the thread using the connection touches its
 * cache (through db_tls_conn, set by db_cache_use). A statement is the
 * backend's own, as a void pointer; drop finalizes one. */
#ifndef RTMD_DB_CACHE_H
#define RTMD_DB_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#define DB_STMT_CACHE 32

typedef void (*db_stmt_drop_fn)(void *st);

typedef struct db_stmt_cache {
    struct {
        char *sql;
        size_t len;
        void *st;
        bool busy;
    } e[DB_STMT_CACHE];
    unsigned n, next_evict;
} db_stmt_cache;

/* An idle statement of sql[0..len), now busy, or NULL. */
void *db_stmt_cache_take(db_stmt_cache *c, const char *sql, size_t len);
/* Keeps st (just prepared for sql, busy) in a free slot, or in the next
 * idle one in round robin after dropping its statement. Returns the slot,
 * or -1 when st is not kept (every entry busy, out of memory): the caller
 * then drops st when done with it. */
int db_stmt_cache_put(db_stmt_cache *c, const char *sql, size_t len, void *st, db_stmt_drop_fn drop);
/* Marks slot's statement idle again. */
void db_stmt_cache_idle(db_stmt_cache *c, int slot);
/* The slot of a kept statement, or -1. */
int db_stmt_cache_slot_of(const db_stmt_cache *c, const void *st);
/* Drops every kept statement; the cache is empty. */
void db_stmt_cache_clear(db_stmt_cache *c, db_stmt_drop_fn drop);

#endif
