/* The statement cache of a db.h connection (db_cache.h). */
#include "db_cache.h"

#include <stdlib.h>
#include <string.h>

void *db_stmt_cache_take(db_stmt_cache *c, const char *sql, size_t len)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->e[i].len == len && !c->e[i].busy && memcmp(c->e[i].sql, sql, len) == 0) {
            c->e[i].busy = true;
            return c->e[i].st;
        }
    return NULL;
}

/* A slot for a new entry: a free one, else the next idle one in round
 * robin (its statement dropped); DB_STMT_CACHE when every entry is busy. */
static unsigned free_slot(db_stmt_cache *c, db_stmt_drop_fn drop)
{
    if (c->n < DB_STMT_CACHE)
        return c->n++;
    for (unsigned tries = 0; tries < DB_STMT_CACHE; tries++) {
        unsigned slot = c->next_evict;
        c->next_evict = (c->next_evict + 1) % DB_STMT_CACHE;
        if (!c->e[slot].busy) {
            drop(c->e[slot].st);
            free(c->e[slot].sql);
            c->e[slot].st = NULL;
            c->e[slot].sql = NULL;
            return slot;
        }
    }
    return DB_STMT_CACHE;
}

int db_stmt_cache_put(db_stmt_cache *c, const char *sql, size_t len, void *st, db_stmt_drop_fn drop)
{
    char *copy = malloc(len + 1);
    unsigned slot = copy ? free_slot(c, drop) : DB_STMT_CACHE;
    if (slot == DB_STMT_CACHE) {
        free(copy);
        return -1;
    }
    memcpy(copy, sql, len + 1);
    c->e[slot].sql = copy;
    c->e[slot].len = len;
    c->e[slot].st = st;
    c->e[slot].busy = true;
    return (int)slot;
}

void db_stmt_cache_idle(db_stmt_cache *c, int slot)
{
    c->e[slot].busy = false;
}

int db_stmt_cache_slot_of(const db_stmt_cache *c, const void *st)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->e[i].st == st)
            return (int)i;
    return -1;
}

void db_stmt_cache_clear(db_stmt_cache *c, db_stmt_drop_fn drop)
{
    for (unsigned i = 0; i < c->n; i++) {
        drop(c->e[i].st);
        free(c->e[i].sql);
    }
    c->n = 0;
    c->next_evict = 0;
}
