/* peer_fifo.h — the cookie queue the peer targets (target_mosquitto.c,
 * target_nats.c, target_redis.c) keep per client: publishes are acked in the
 * order they were made, so a ring of cookies is all the bookkeeping an ack
 * needs. The ring grows by doubling (bounded by the engine's window) and is
 * reused across reconnects, so the hot path allocates nothing. */
#ifndef RTM_BENCH_PEER_FIFO_H
#define RTM_BENCH_PEER_FIFO_H

#include <stdint.h>
#include <stdlib.h>

typedef struct peer_fifo {
    uint64_t *v;
    uint32_t head;   /* index of the oldest cookie */
    uint32_t count;
    uint32_t cap;    /* power of two, or 0 */
} peer_fifo;

static inline int peer_fifo_push(peer_fifo *f, uint64_t cookie)
{
    if (f->count == f->cap) {
        uint32_t ncap = f->cap ? f->cap * 2 : 16;
        uint64_t *nv = malloc((size_t)ncap * sizeof *nv);
        if (!nv)
            return -1;
        for (uint32_t k = 0; k < f->count; k++)
            nv[k] = f->v[(f->head + k) & (f->cap - 1)];
        free(f->v);
        f->v = nv;
        f->head = 0;
        f->cap = ncap;
    }
    f->v[(f->head + f->count) & (f->cap - 1)] = cookie;
    f->count++;
    return 0;
}

/* The oldest cookie; the queue must not be empty. */
static inline uint64_t peer_fifo_pop(peer_fifo *f)
{
    uint64_t c = f->v[f->head];
    f->head = (f->head + 1) & (f->cap - 1);
    f->count--;
    return c;
}

/* Undo the newest push (the publish it stood for failed). */
static inline void peer_fifo_drop_last(peer_fifo *f)
{
    if (f->count)
        f->count--;
}

static inline void peer_fifo_free(peer_fifo *f)
{
    free(f->v);
    f->v = NULL;
    f->head = f->count = f->cap = 0;
}

#endif
