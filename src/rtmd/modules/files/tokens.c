/* File tokens (see tokens.h): a table by key, a count per sender and a
 * list in issue order, which is expiry order (one TTL for all). */
#include "tokens.h"

#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const file_cmd_info file_cmds[FILE_CMD_COUNT] = {
    [FILE_CMD_P2P] = {"sendfile", "to", "sendmsg"},
    [FILE_CMD_MULTI] = {"sendfiles", "tos", "sendmsgs"},
    [FILE_CMD_GROUP] = {"sendgroupfile", "gid", "sendgroupmsg"},
    [FILE_CMD_ROOM] = {"sendroomfile", "rid", "sendroommsg"},
    [FILE_CMD_BROADCAST] = {"broadcastfile", NULL, "broadcastmsg"},
};

int file_cmd_find(const char *name, size_t len)
{
    for (int i = 0; i < FILE_CMD_COUNT; i++)
        if (strlen(file_cmds[i].name) == len && memcmp(file_cmds[i].name, name, len) == 0)
            return i;
    return -1;
}

static uintptr_t sender_count(const file_tokens *ts, int64_t pid, int64_t from)
{
    return (uintptr_t)pairmap_get(&ts->per_sender, (uint64_t)pid, (uint64_t)from);
}

static void sender_add(file_tokens *ts, int64_t pid, int64_t from, int delta)
{
    uintptr_t n = sender_count(ts, pid, from) + (uintptr_t)(intptr_t)delta;
    if (n == 0)
        pairmap_del(&ts->per_sender, (uint64_t)pid, (uint64_t)from);
    else
        pairmap_put(&ts->per_sender, (uint64_t)pid, (uint64_t)from, (void *)n); /* replaces: no allocation */
}

file_token *file_tokens_issue(file_tokens *ts, const file_token *t, uint64_t now_ms, uint32_t ttl_s,
                              bool *over_limit)
{
    *over_limit = sender_count(ts, t->pid, t->from) >= FILE_TOKENS_PER_SENDER;
    if (*over_limit)
        return NULL;
    file_token *n = malloc(sizeof *n);
    if (!n)
        return NULL;
    *n = *t;
    uint8_t r[16];
    do {
        if (RAND_bytes(r, sizeof r) != 1) {
            free(n);
            return NULL;
        }
        memcpy(&n->hi, r, 8);
        memcpy(&n->lo, r + 8, 8);
    } while (pairmap_get(&ts->by_key, n->hi, n->lo));
    n->expires_ms = now_ms + (uint64_t)ttl_s * 1000u;
    /* The count's slot first: a put of a new count may allocate. */
    if (pairmap_put(&ts->per_sender, (uint64_t)t->pid, (uint64_t)t->from,
                    (void *)(sender_count(ts, t->pid, t->from) + 1)) != 0) {
        free(n);
        return NULL;
    }
    if (pairmap_put(&ts->by_key, n->hi, n->lo, n) != 0) {
        sender_add(ts, t->pid, t->from, -1);
        free(n);
        return NULL;
    }
    n->next = NULL;
    n->prev = ts->newest;
    if (ts->newest)
        ts->newest->next = n;
    else
        ts->oldest = n;
    ts->newest = n;
    ts->issued++;
    return n;
}

/* The token text is the two halves of the key as 16 hex digits each. */
file_token *file_tokens_find(file_tokens *ts, const char *hex, size_t len, uint64_t now_ms)
{
    char text[FILE_TOKEN_HEX + 1], *lo_text = text + FILE_TOKEN_HEX / 2;
    if (len != FILE_TOKEN_HEX)
        return NULL;
    memcpy(text, hex, FILE_TOKEN_HEX); /* hex is a peer's string: not terminated */
    text[FILE_TOKEN_HEX] = '\0';
    if (strspn(text, "0123456789abcdefABCDEF") != FILE_TOKEN_HEX)
        return NULL;
    uint64_t lo = strtoull(lo_text, NULL, 16);
    *lo_text = '\0';
    uint64_t hi = strtoull(text, NULL, 16);
    file_token *t = pairmap_get(&ts->by_key, hi, lo);
    return t && t->expires_ms > now_ms ? t : NULL;
}

void file_tokens_hex(const file_token *t, char out[FILE_TOKEN_HEX + 1])
{
    snprintf(out, FILE_TOKEN_HEX + 1, "%016" PRIx64 "%016" PRIx64, t->hi, t->lo);
}

static void unlink_token(file_tokens *ts, file_token *t)
{
    pairmap_del(&ts->by_key, t->hi, t->lo);
    sender_add(ts, t->pid, t->from, -1);
    if (t->prev)
        t->prev->next = t->next;
    else
        ts->oldest = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        ts->newest = t->prev;
    free(t->tos);
    free(t);
}

void file_tokens_drop(file_tokens *ts, file_token *t)
{
    ts->used++;
    unlink_token(ts, t);
}

size_t file_tokens_expire(file_tokens *ts, uint64_t now_ms)
{
    size_t n = 0;
    while (ts->oldest && ts->oldest->expires_ms <= now_ms) {
        unlink_token(ts, ts->oldest);
        n++;
    }
    ts->expired += n;
    return n;
}

void file_tokens_free(file_tokens *ts)
{
    while (ts->oldest)
        unlink_token(ts, ts->oldest);
    pairmap_free(&ts->by_key);
    pairmap_free(&ts->per_sender);
}
