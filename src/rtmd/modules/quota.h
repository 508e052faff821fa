/* What one project and one user may write: rate limits counted in stored
 * messages (rows: a sendmsgs to N receivers is N, a group, room or
 * broadcast message 1) and in stored bytes (msg and attrs of each row),
 * per user and per project, as token buckets; and the project's storage
 * quota, the bytes of msg and attrs of its stored messages.
 *
 * Rates apply to client-gate senders only: the app server holds the
 * project secret and speaks for many users, so throttling it by its users'
 * limits would let them starve it. The storage quota applies to every
 * write, both gates.
 *
 * The stored bytes of each project are kept by the store itself (table
 * storage_usage, exact at every commit since migration 16: messages.c
 * adds the bytes it inserts in the same transaction), so they survive
 * restarts and go down when retention deletes messages. This
 * module loads them at start, adds what it admits (reserved until the
 * write is done), and reads the table again through the writer once a
 * second: since the writer applies writes in order, that value includes
 * every write admitted before it, and the writes admitted after it are
 * still reserved, so usage + reserved is what the store will hold.
 *
 * In a cluster (docs/cluster.md, "Rate limits") each node enforces a
 * share of every rate and burst, with no round trip per write: a user's
 * limits divided by the number of nodes holding the user's sessions (by
 * the presence mirror, this node included), a project's by the number of
 * live nodes. The shares add up to the configured limit cluster-wide; a
 * node does not lend its unused share to another. The storage quota
 * counts the shared storage_usage, read once a second, plus this node's
 * writes since: other nodes' writes of the last second are not seen yet,
 * so a project may pass its quota by that much. */
#ifndef RTMD_QUOTA_H
#define RTMD_QUOTA_H

#include "db.h"
#include <stdbool.h>
#include <stdint.h>

struct rtmd_request;
struct rtmd_server;

/* Admits a write of `rows` stored messages and `bytes` bytes in all for
 * the sender of req. Returns 0 with the bytes reserved in the project's
 * quota, or answers the request (200010 over a rate, 200080 over the
 * storage quota) and returns -1. */
int quota_admit(struct rtmd_request *req, uint64_t rows, uint64_t bytes);
/* An admitted write of `reserved` bytes is done; `stored` of them are in
 * the store now (0 when it failed; less for duplicates). */
void quota_release(struct rtmd_server *srv, int64_t pid, uint64_t reserved, uint64_t stored);

#endif
