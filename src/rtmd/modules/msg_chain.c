/* The message writer's side of the conversation chain (msg_chain.h): a
 * cache of each conversation's newest message, so that a message's
 * prev_id costs no read, and conv_last written once per conversation per
 * run of writes rather than once per message (docs/performance.md, "The
 * conversation chain"). */
#include "msg_chain.h"

#include "hash.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TIP_SLOTS 32768 /* a power of two; emptied when half full */

struct conv_tip {
    int64_t pid, a, b; /* pid 0: a free slot (project ids are positive) */
    int conv_type;
    bool dirty;        /* conv_last to be written */
    int64_t last;      /* 0: the conversation has no message */
    int64_t unindexed; /* its messages since its newest conv_index entry */
};

struct msg_chain {
    conv_tip *tips; /* TIP_SLOTS, open addressing; NULL until used */
    unsigned ntips;
    conv_tip **dirty; /* TIP_SLOTS / 2 */
    unsigned ndirty;
    uint64_t rollbacks, deletes; /* db_rollbacks, db_deletes at the last look */
    uint64_t key;                /* of tip_slot's hash: receivers' uids are peers' choice */
};

msg_chain *msg_chain_new(void)
{
    msg_chain *c = calloc(1, sizeof(msg_chain));
    if (c)
        c->key = rtm_hash_key();
    return c;
}

void msg_chain_free(msg_chain *c)
{
    if (!c)
        return;
    free(c->tips);
    free(c->dirty);
    free(c);
}

void msg_chain_forget(msg_chain *c)
{
    if (c->tips)
        memset(c->tips, 0, TIP_SLOTS * sizeof *c->tips);
    c->ntips = 0;
    c->ndirty = 0;
}

void msg_chain_check(db_conn *db, msg_chain *c)
{
    uint64_t r = db_rollbacks(db), d = db_deletes(db);
    if (r == c->rollbacks && d == c->deletes)
        return;
    c->rollbacks = r;
    c->deletes = d;
    msg_chain_forget(c);
}

static size_t tip_slot(const msg_chain *c, int64_t pid, int type, int64_t a, int64_t b)
{
    return (size_t)rtm_hash_ids(c->key, pid, a, b, type) & (TIP_SLOTS - 1);
}

static const char *const LAST_SQL =
    "SELECT last_id, unindexed FROM conv_last WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4";
static const char *const SET_LAST_SQL =
    "INSERT INTO conv_last(pid, conv_type, conv_a, conv_b, last_id, unindexed) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    " ON CONFLICT DO UPDATE SET last_id = excluded.last_id, unindexed = excluded.unindexed";
static const char *const SPARSE_SQL =
    "INSERT OR IGNORE INTO conv_index(pid, conv_type, conv_a, conv_b, id) VALUES (?1, ?2, ?3, ?4, ?5)";

static void bind_key(db_stmt_t *st, const conv_tip *t)
{
    db_bind_int64(st, 1, t->pid);
    db_bind_int(st, 2, t->conv_type);
    db_bind_int64(st, 3, t->a);
    db_bind_int64(st, 4, t->b);
}

static int load_tip(db_conn *db, conv_tip *t)
{
    db_stmt_t *st;
    int rc = db_stmt(db, LAST_SQL, &st);
    if (rc != DB_OK)
        return rc;
    bind_key(st, t);
    rc = db_step(st);
    /* A conversation without messages: its first is indexed. */
    t->last = rc == DB_ROW ? db_column_int64(st, 0) : 0;
    t->unindexed = rc == DB_ROW ? db_column_int64(st, 1) : CHAIN_SPARSE;
    db_release(st);
    return rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
}

int msg_chain_flush(db_conn *db, msg_chain *c)
{
    int rc = DB_OK;
    for (unsigned i = 0; rc == DB_OK && i < c->ndirty; i++) {
        conv_tip *t = c->dirty[i];
        db_stmt_t *st;
        if ((rc = db_stmt(db, SET_LAST_SQL, &st)) != DB_OK)
            break;
        bind_key(st, t);
        db_bind_int64(st, 5, t->last);
        db_bind_int64(st, 6, t->unindexed);
        rc = db_step_release(st);
        t->dirty = false;
    }
    c->ndirty = 0;
    if (rc != DB_OK)
        msg_chain_forget(c);
    else if (c->ntips >= TIP_SLOTS / 2)
        msg_chain_forget(c); /* nothing is dirty: start over */
    return rc;
}

int msg_chain_tip(db_conn *db, msg_chain *c, int64_t pid, int conv_type, int64_t a, int64_t b, conv_tip **tip,
                  int64_t *prev)
{
    if (!c->tips) {
        c->tips = calloc(TIP_SLOTS, sizeof *c->tips);
        c->dirty = calloc(TIP_SLOTS / 2, sizeof *c->dirty);
        if (!c->tips || !c->dirty) {
            free(c->tips);
            free(c->dirty);
            c->tips = NULL;
            c->dirty = NULL;
            return DB_NOMEM;
        }
    }
    size_t i = tip_slot(c, pid, conv_type, a, b);
    for (; c->tips[i].pid != 0; i = (i + 1) & (TIP_SLOTS - 1)) {
        conv_tip *t = &c->tips[i];
        if (t->pid == pid && t->conv_type == conv_type && t->a == a && t->b == b) {
            *tip = t;
            *prev = t->last;
            return DB_OK;
        }
    }
    if (c->ntips >= TIP_SLOTS / 2) {
        /* Full in the middle of a run: write what is dirty, start over. */
        int rc = msg_chain_flush(db, c);
        if (rc != DB_OK)
            return rc;
        i = tip_slot(c, pid, conv_type, a, b);
    }
    conv_tip *t = &c->tips[i];
    *t = (conv_tip){pid, a, b, conv_type, false, 0, 0};
    int rc = load_tip(db, t);
    if (rc != DB_OK) {
        t->pid = 0;
        return rc;
    }
    c->ntips++;
    *tip = t;
    *prev = t->last;
    return DB_OK;
}

int msg_chain_append(db_conn *db, msg_chain *c, conv_tip *t, int64_t id)
{
    t->last = id;
    if (t->unindexed + 1 >= CHAIN_SPARSE) {
        db_stmt_t *st;
        int rc = db_stmt(db, SPARSE_SQL, &st);
        if (rc != DB_OK)
            return rc;
        bind_key(st, t);
        db_bind_int64(st, 5, id);
        if ((rc = db_step_release(st)) != DB_OK)
            return rc;
        t->unindexed = 0;
    } else {
        t->unindexed++;
    }
    if (!t->dirty) {
        t->dirty = true;
        c->dirty[c->ndirty++] = t;
    }
    return DB_OK;
}
