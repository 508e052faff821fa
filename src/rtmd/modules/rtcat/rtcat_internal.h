/* What the files of the RealTimeCat module share, and nothing else
 * includes: the limits of the REST API, the model (sessions and tokens of
 * each project, token logins, the module's state) and the functions each
 * file offers the others. The public face of the module is rtcat.h. */
#ifndef RTMD_RTCAT_INTERNAL_H
#define RTMD_RTCAT_INTERNAL_H

#include "rtcat.h"

#include "cluster.h"
#include "db.h"
#include "http.h"
#include "pairmap.h"
#include "server_state.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_BODY_MAX (16u * 1024)
#define RC_LABEL_MAX 255
#define RC_DATA_MAX 1024
#define RC_NUMBER_MAX 100
#define RC_PAGE_SIZE_MAX 100
#define RC_PAGE_SIZE_DEFAULT 20
#define RC_SESSION_DAYS 30
#define RC_TOKEN_DAYS 15
#define RC_JSON_HEADERS "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"

/* ---- state ---- */

typedef struct rc_obj {
    char uuid[RTCAT_UUID_LEN + 1];
    char *label, *data; /* NULL: null */
    uint8_t type;       /* session 0 p2p / 1 rel; token 0 pub / 1 sub */
    bool permanent;
    uint32_t live_days;
    int64_t created_us, expire_us; /* expire_us 0 when permanent */
} rc_obj;

struct rc_session;

typedef struct rc_token {
    rc_obj o;
    struct rc_session *s;
    struct rc_token *prev, *next;
} rc_token;

struct rc_project;

typedef struct rc_session {
    rc_obj o;
    struct rc_project *rp;
    struct rc_session *prev, *next;
    rc_token *first, *last;
} rc_session;

typedef struct rc_project {
    const rtmd_project *p;
    bool on;                             /* serves the API now: a key, not removed */
    rc_session *first, *last;
    size_t nsessions, ntokens;           /* in memory */
    uint32_t reserved_sessions, reserved_tokens; /* creations in flight */
    int64_t last_created_us; /* the newest created_us: each creation is past it */
} rc_project;

/* A token login. */
typedef struct rc_login {
    int64_t pid, uid;
    char token[RTCAT_UUID_LEN + 1], session[RTCAT_UUID_LEN + 1];
    bool pub;
} rc_login;

/* The module's state (srv->svc->rtcat). */
struct rtcat_state {
    rtmd_server *srv;
    rc_project *projects; /* one per project that had the API (RTMD_MAX_PROJECTS);
                           * one removed or without its key stays, off */
    size_t nprojects;
    bool cluster_hooked;  /* rc_cluster_init ran */
    rc_project *demo;     /* the demo backend's project, or NULL */
    pairmap sessions;     /* uuid (two halves) -> rc_session */
    pairmap tokens;       /* uuid -> rc_token */
    pairmap logins;       /* (connection address, 0) -> rc_login */
    uv_timer_t timer;
    bool timer_closed;
    uint64_t last_purge_ms;
};

/* What a POST or PATCH body gives. Strings are NULL for null. */
typedef struct rc_fields {
    bool has_label, has_data, has_live_days, has_type, has_permanent, has_number;
    char *label, *data;
    char type[8];
    uint32_t live_days, number;
    bool permanent;
} rc_fields;

/* ---- the model (model.c) ---- */

/* The module's state, or NULL (not started, or freed). */
struct rtcat_state *rc_state(rtmd_server *srv);
rc_project *rc_project_of(struct rtcat_state *st, int64_t pid);
int64_t rc_now_us(void);
int64_t rc_created_us(rc_project *rp);
bool rc_obj_expired(const rc_obj *o, int64_t now);
bool rc_token_expired(const rc_token *t, int64_t now);
void rc_obj_clear(rc_obj *o);
/* The live or expired session / token of rp with that uuid, or NULL. */
rc_session *rc_session_get(struct rtcat_state *st, const rc_project *rp, const char *uuid, size_t len);
rc_token *rc_token_get(struct rtcat_state *st, const rc_project *rp, const char *uuid, size_t len);
/* Takes o (its strings move). NULL when out of memory. */
rc_session *rc_session_add(struct rtcat_state *st, rc_project *rp, rc_obj *o);
rc_token *rc_token_add(struct rtcat_state *st, rc_session *s, rc_obj *o);
void rc_token_free(struct rtcat_state *st, rc_token *t);
void rc_session_free(struct rtcat_state *st, rc_session *s);
/* The timer of rtcat_init: drops the expired objects each retention_interval. */
void rc_on_tick(uv_timer_t *t);

/* The load at start (module_load): the live sessions and tokens. */
typedef struct rc_load {
    struct rtcat_state *st;
    int64_t now;
    size_t sessions, tokens;
} rc_load;

int rc_load_all(db_conn *db, void *arg);

/* ---- other nodes (model.c, docs/cluster.md) ---- */

/* After a write of the session (or of one of its tokens) committed: every
 * other node reloads that session with its tokens. Returns true when
 * done(arg) runs once they have (cluster_send_all_acked), false when there
 * is nothing to wait for. */
bool rc_tell_nodes(rtmd_server *srv, int64_t pid, const char *session_uuid, cluster_acked_fn done, void *arg);
/* Registers the receiver of those records and the reload after a rejoin
 * (once). */
void rc_cluster_init(rtmd_server *srv);
/* Replaces the project's sessions and tokens in memory with the store's
 * (a project a reload adds). */
void rc_project_reload(rtmd_server *srv, int64_t pid);

/* ---- writes (writes.c): each answers the request, at once or deferred ---- */

/* Creates a session from f, with a first token when token_fields is not
 * NULL; ok_status is 201 (REST) or 200 (demo backend). */
void rc_create_session(rtmd_conn *c, const http_request *req, rc_project *rp, const rc_fields *f, int ok_status,
                       const rc_fields *token_fields);
/* Creates f->number tokens (1 by default) in s. */
void rc_create_tokens(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, const rc_fields *f,
                      int ok_status);
/* PATCH and DELETE of session s, or of its token t when t is not NULL. */
void rc_patch_object(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, rc_token *t);
void rc_delete_object(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, rc_token *t);

/* ---- JSON, bodies and the REST routes (rest.c) ---- */

/* o as the API shows it; session_id is its session's uuid for a token,
 * NULL for a session. */
json_t *rc_obj_json(const rc_obj *o, const char *session_id);
/* Answers j (taken) with the status, or 500 when it cannot be encoded:
 * through d when not NULL (a deferred answer), else on c for req. */
void rc_send_json(rtmd_conn *c, const http_request *req, http_deferred *d, int status, json_t *j,
                  const char *headers);
void rc_send_error(rtmd_conn *c, const http_request *req, http_deferred *d, int status, const char *code,
                   const char *description);
/* 400 invalid_parameter. */
void rc_bad_param(rtmd_conn *c, const http_request *req, const char *description);
void rc_fields_clear(rc_fields *f);
/* Parses the request body into f; answers 400 and returns false when bad. */
bool rc_parse_body(rtmd_conn *c, const http_request *req, rc_fields *f);
/* Every path under /v0.4/. */
void rc_route_api(rtmd_conn *c, const http_request *req);

/* ---- the demo backend's routes (demo_backend.c) ---- */

void rc_route_demo_sessions(rtmd_conn *c, const http_request *req);
void rc_route_demo_session_tokens(rtmd_conn *c, const http_request *req);
void rc_route_demo_named_tokens(rtmd_conn *c, const http_request *req);

/* ---- token logins (logins.c) ---- */

void rc_on_session_end(rtmd_server *srv, const rtmd_event *ev);
/* Kicks the token logins of the session (token NULL) or of one token. */
void rc_kick_logins(struct rtcat_state *st, const char *session, const char *token, const char *reason);

#endif
