/* What the files of the history module share, and nothing else includes:
 * the job that carries one request from the loop to the store and back
 * (history_job.c), stored messages as rows and on the wire, the argument
 * and SQL helpers, the conversation methods (conversations.c) that
 * history.c registers, and the retention job (retention.c) that history.c
 * starts and stops. The public face of the module is history.h. */
#ifndef RTMD_HISTORY_INTERNAL_H
#define RTMD_HISTORY_INTERNAL_H

#include "history.h"
#include "methods.h"
#include "payload.h"
#include "store.h"

#include <msgpack.h>
#include "db.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSG_COLS "id, from_uid, mtype, mid, deleted, msg, attrs, mtime, is_binary"
#define CHAT_MTYPES_SQL " AND mtype BETWEEN 30 AND 50"
#define MTYPES_SQL_MAX (HISTORY_MTYPES_MAX * 22 + 32)
/* The newest message id of the server, the last row in rowid order. Ids are
 * server-wide and increasing, so it bounds every project's ids: "read up to
 * it" marks every message of a project that the snapshot holds. */
#define NEWEST_ID_SQL "SELECT MAX(id) FROM messages"
/* The newest message id of one conversation (SQL text of each key), NULL
 * when it has none: ORDER BY id DESC LIMIT 1 over conv_messages, which
 * SQLite merges from the conversation index and the rows above its mark
 * (a MAX(id) over the view would read the whole conversation). */
#define CONV_NEWEST_ID_SQL(pid, type, a, b)                                                          \
    "(SELECT id FROM conv_messages WHERE pid = " pid " AND conv_type = " type " AND conv_a = " a     \
    " AND conv_b = " b " ORDER BY id DESC LIMIT 1)"

struct history_retention;

/* The module's state (srv->svc->history). */
struct history_state {
    struct history_retention *retention;
};

/* ---- messages as read from the store (history_job.c) ---- */

typedef struct hmsg {
    int64_t id, from_uid, mid, mtime;
    int64_t mtype;
    bool deleted, binary;
    char *msg, *attrs;
    size_t msg_len, attrs_len;
} hmsg;

void hmsg_free(hmsg *m);
/* Reads a row selected with MSG_COLS. A deleted message keeps no content. */
int hmsg_from_row(db_stmt_t *st, hmsg *m);
void hmsg_pack_body(msgpack_packer *pk, const hmsg *m);
/* [id, from | direction, mtype, mid, deleted, msg, attrs, mtime]; with
 * p2p the second item is 1 if self sent it, else 2. */
/* from_s, when not NULL, names the sender instead of its uid (a room
 * history page of a string-id session). */
void hmsg_pack(msgpack_packer *pk, const hmsg *m, bool p2p, int64_t self, const char *from_s);
/* What one message adds to an answer, a generous bound of its packing. */
size_t hmsg_cost(const hmsg *m);

/* ---- jobs (history_job.c) ---- */

enum job_kind {
    J_HISTORY,
    J_GETMSG,
    J_DELMSG,
    J_MSGNUM,
    J_UNREAD,       /* getunread */
    J_SESSIONS,     /* getsession */
    J_P2PUNREAD,    /* getp2punread */
    J_GROUPUNREAD,  /* getgroupunread */
    J_CONVLIST,     /* the five conversation lists */
    J_CLEAN,        /* cleanunread */
    J_REMOVESESSION,
};

typedef struct conv_item {
    int64_t xid;
    int64_t last_id;
    int64_t unread;
    bool has_last;
    hmsg last;
} conv_item;

typedef struct conv_list {
    conv_item *v;
    size_t n, cap;
} conv_list;

typedef struct hjob {
    rtmd_request *req;
    enum job_kind kind;
    int64_t pid, uid;          /* uid: the caller, or the user asked about */
    bool client;
    bool named_from;           /* getroommsg of a string-id session: from as string ids */

    /* one conversation (history, getmsg, delmsg, getmsgnum) */
    int conv_type;
    int64_t conv_a, conv_b;
    bool desc;
    int64_t num, begin, end, lastid;
    int64_t from, mid;         /* getmsg / delmsg */
    char mtypes[MTYPES_SQL_MAX];

    /* unread and lists */
    bool want_p2p, want_group, unread_only, clear, both_lists;
    bool mtime_given;
    int64_t mtime;
    int64_t *ids;              /* asked uids / the caller's gids */
    size_t nids;
    int64_t *gids;             /* getunread / getsession / lists: the caller's groups */
    size_t ngids;

    /* results */
    hmsg *msgs;
    size_t nmsgs;
    conv_list p2p, group;
    int64_t max_id;            /* newest message id of the project (clear) */
    int64_t sender, count;
    bool found;
    hmsg one;

    /* a marker write after the read: (mark_type, mark_xid) read up to mark_id */
    int mark_type;
    int64_t mark_xid, mark_id;
    bool mark_removed;
    msgpack_sbuffer answer;
    bool answer_ready;
    size_t answer_budget;      /* bytes of messages one answer may carry */
} hjob;


void conv_list_free(conv_list *l);

/* A job for req, or NULL after answering an error. Answers stay within
 * max_packet: answer_budget is what its messages may take. */
hjob *hjob_new(rtmd_request *req, enum job_kind kind);
void hjob_free(hjob *j);
/* Answers the store failure status (a stop, or a storage error) and frees. */
void hjob_fail(hjob *j, int status);
/* Starts the answer of a job whose read ended with status: packs into
 * j->answer through pk and returns true, or answers the failure and
 * returns false. */
bool hjob_answer_begin(hjob *j, int status, msgpack_packer *pk);
/* Sends j->answer and frees. */
void hjob_answer(hjob *j);
/* Answers now, or after the read-marker write (mark_type, mark_xid up to
 * mark_id) when the job asks for one. */
void hjob_finish_with_mark(hjob *j);
/* The write of a read marker (writer thread). */
int hjob_apply_mark(db_conn *db, void *arg);
/* A history write (read marker, delmsg) committed: answers what the job
 * prepared, or {}. */
void hjob_write_done(void *arg, int status);

/* ---- argument helpers (answer the request on failure) ---- */

/* An optional integer: absent and nil leave *out as it is. */
bool hist_opt_i64(rtmd_request *req, const char *key, int64_t *out, bool *given);
/* mtypes: an array of integers, at most HISTORY_MTYPES_MAX. Writes the SQL
 * condition into sql: the given types, else the chat types (chat_default)
 * or nothing. */
bool hist_arg_mtypes(rtmd_request *req, char *sql, size_t cap, bool chat_default);

/* ---- SQL helpers (reader pool or writer thread) ---- */

/* Binds ?1..?4 to the job's project and a conversation (pid, conv_type,
 * conv_a, conv_b), as every per-conversation query of the module names them. */
void hist_bind_conv(db_stmt_t *st, hjob *j, int type, int64_t a, int64_t b);
/* The first column of the first row of sql with ?1 = a and ?2 = b (those
 * it has); 0 when no row. */
int64_t hist_query_i64(db_conn *db, const char *sql, int64_t a, int64_t b, int *rc);
/* Runs fn inside one read transaction, so that it sees one snapshot. */
int hist_in_read_txn(db_conn *db, int (*fn)(db_conn *, hjob *), hjob *j);

/* ---- unread and conversations (conversations.c) ---- */

void conv_method_getunread(rtmd_request *req);
void conv_method_getsession(rtmd_request *req);
void conv_method_unread_counts(rtmd_request *req);
void conv_method_convlist(rtmd_request *req);
/* cleanunread and removesession */
void conv_method_mark(rtmd_request *req);

/* ---- retention (retention.c) ---- */

/* Starts the retention job's timer; NULL when out of memory. */
struct history_retention *history_retention_start(rtmd_server *srv);
/* Stops it; a sweep in progress is dropped. */
void history_retention_stop(struct history_retention *r);

#endif
