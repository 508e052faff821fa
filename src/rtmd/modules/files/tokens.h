/* File tokens (filetoken, the file gate): one-time upload permissions, in
 * memory on the node that issued them (the endpoint filetoken answers is
 * that node's file gate). Each binds a project, a sender, the command and
 * its target; it lives file_token_ttl seconds and is used once; a sender
 * holds at most FILE_TOKENS_PER_SENDER at a time. */
#ifndef RTMD_FILES_TOKENS_H
#define RTMD_FILES_TOKENS_H

#include "pairmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FILE_TOKENS_PER_SENDER 16
#define FILE_TOKEN_HEX 32 /* 128 random bits */

/* The commands of filetoken and the file gate's methods, in one table. */
typedef enum file_cmd { FILE_CMD_P2P, FILE_CMD_MULTI, FILE_CMD_GROUP, FILE_CMD_ROOM, FILE_CMD_BROADCAST,
                        FILE_CMD_COUNT } file_cmd;
typedef struct file_cmd_info {
    const char *name;       /* filetoken's cmd and the file gate's method */
    const char *target;     /* the field naming the target, NULL for broadcast */
    const char *send_method; /* the message method the upload becomes */
} file_cmd_info;
extern const file_cmd_info file_cmds[FILE_CMD_COUNT];
/* The command named name[0..len), or -1. */
int file_cmd_find(const char *name, size_t len);

typedef struct file_token {
    uint64_t hi, lo;          /* the 128 bits, the key of the table */
    int64_t pid, from;
    file_cmd cmd;
    bool by_app_server;       /* issued on the server gate: the upload is sent as the app server's */
    int64_t target;           /* to, gid or rid (0 for broadcast and sendfiles) */
    int64_t *tos;             /* sendfiles: the receivers, sorted, distinct */
    uint32_t ntos;
    uint64_t expires_ms;      /* uv_now */
    struct file_token *prev, *next; /* issue order = expiry order */
} file_token;

typedef struct file_tokens {
    pairmap by_key;           /* (hi, lo) -> file_token */
    pairmap per_sender;       /* (pid, from) -> count, as a pointer-sized integer */
    file_token *oldest, *newest;
    uint64_t issued, used, expired;
} file_tokens;

/* Issues a token (t filled but hi, lo, expires_ms, links; tos is taken
 * over). Returns the new token, or NULL with *over_limit true when the
 * sender holds FILE_TOKENS_PER_SENDER, or false when out of memory or
 * without randomness. */
file_token *file_tokens_issue(file_tokens *ts, const file_token *t, uint64_t now_ms, uint32_t ttl_s,
                              bool *over_limit);
/* The live token of this text, or NULL. */
file_token *file_tokens_find(file_tokens *ts, const char *hex, size_t len, uint64_t now_ms);
/* Forgets a token (used). */
void file_tokens_drop(file_tokens *ts, file_token *t);
/* Drops the expired tokens; returns how many. */
size_t file_tokens_expire(file_tokens *ts, uint64_t now_ms);
void file_tokens_hex(const file_token *t, char out[FILE_TOKEN_HEX + 1]);
void file_tokens_free(file_tokens *ts);

#endif
