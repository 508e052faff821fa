/* The order of messages' times: messages.c never lets mtime decrease as id
 * grows, so the messages from a time on are those from one id on. History
 * retention (retention.c) and the conversation walk (conv_chain.c) find
 * that id by the bisection here, over the rowid of messages, without an
 * index on mtime. */
#ifndef RTMD_MTIME_ORDER_H
#define RTMD_MTIME_ORDER_H

#include <stdbool.h>
#include <stdint.h>

/* Puts the first message at or after id `at` in *id and *mtime (*found
 * false when there is none) and answers 0, or an error code of the
 * caller's, which the bisection returns as it is. */
typedef int (*mtime_probe_fn)(void *ctx, int64_t at, bool *found, int64_t *id, int64_t *mtime);

/* The first id in [lo, hi] from which on no message is older than t (hi:
 * none is, below hi), one probe per step: 0 or the probe's error, *out
 * set either way. */
static inline int first_id_from_time(mtime_probe_fn probe, void *ctx, int64_t lo, int64_t hi, int64_t t,
                                     int64_t *out)
{
    int rc = 0;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2, id = 0, mtime = 0;
        bool found = false;
        if ((rc = probe(ctx, mid, &found, &id, &mtime)) != 0)
            break;
        if (found && mtime < t)
            lo = id + 1; /* older messages up to this one */
        else
            hi = mid;
    }
    *out = lo;
    return rc;
}

#endif
