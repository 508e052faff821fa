/* rtmd configuration: defaults, the configuration file format (see
 * etc/rtmd.conf.example), and command-line overrides. Everything tunable
 * about listeners, limits, storage and projects is named here once. */
#ifndef RTMD_CONFIG_H
#define RTMD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTMD_MAX_PROJECTS 64
#define RTMD_SECRET_MAX 128
/* RTS access tokens (core/accesstoken.h, modules/rtstoken.h): the app id is
 * exactly 24 characters of [0-9a-zA-Z], as the vendor's; the app key is
 * 1..127 printable ASCII characters without spaces. */
#define RTMD_APP_ID_LEN 24
#define RTMD_APP_KEY_MAX 128
/* The admin page's token: up to 127 characters and the terminator. */
#define RTMD_ADMIN_TOKEN_MAX 128
/* RealTimeCat API key and secret: 1..127 printable ASCII without spaces. */
#define RTMD_RTCAT_KEY_MAX 128
/* node_id: at most 32 characters. */
#define RTMD_NODE_ID_MAX 33

typedef struct rtmd_project_config {
    int64_t pid;
    char secret[RTMD_SECRET_MAX];
    /* RTS access tokens: both set, or both empty (RTS tokens off). */
    char app_id[RTMD_APP_ID_LEN + 1];
    char app_key[RTMD_APP_KEY_MAX];
    /* Per-project limits. */
    uint32_t max_connections;     /* authenticated connections, 0 = server limit */
    uint32_t token_ttl_seconds;   /* lifetime of tokens minted by gettoken */
    uint32_t multi_login;         /* 1: several connections per user; 0: a new login kicks the older */
    uint32_t legacy_sign;         /* 1: also accept the older signature md5(pid:secret:salt) (see sign.c) */
    uint32_t max_rooms_per_user;  /* rooms one user may be in at once */
    uint32_t room_events_max;     /* pushroomjoined/left only in rooms of at most this many members, 0 = none */
    uint32_t max_groups;          /* groups (with members, or adds in flight) of the project (groups.c) */
    uint32_t max_group_members;   /* members of one group, adds in flight counted (groups.c) */
    uint32_t max_msg_bytes;       /* size of msg */
    uint32_t max_attrs_bytes;     /* size of attrs of a message, and of one session attribute value */
    uint32_t max_session_attrs;   /* attributes one connection may hold (addattrs, auth) */
    uint32_t max_session_attrs_bytes; /* key and value bytes of one connection's attributes */
    uint32_t max_receivers;       /* receivers of one sendmsgs */
    uint32_t max_friends;         /* uids in one user's friend list (friends.c) */
    uint32_t max_blacks;          /* uids on one user's blacklist */
    uint32_t p2p_require_friend;  /* 1: a client's p2p message needs the receiver to count the sender as a friend */
    /* Write rates of client-gate senders (quota.h), token buckets of stored
     * messages (a sendmsgs to N receivers is N) and of their bytes (msg
     * and attrs, times the messages); rate 0 = no limit. */
    uint32_t user_msg_rate;       /* stored messages per second of one user */
    uint32_t user_msg_burst;      /* ... at most this many at once */
    uint32_t user_byte_rate;      /* stored bytes per second of one user */
    uint32_t user_byte_burst;
    uint32_t project_msg_rate;    /* stored messages per second of all users of the project */
    uint32_t project_msg_burst;
    uint32_t project_byte_rate;   /* stored bytes per second of all users of the project */
    uint32_t project_byte_burst;
    uint32_t storage_quota_mb;    /* MiB of msg and attrs the project's stored messages may hold, 0 = no quota */
    uint32_t history_days;        /* days a message is kept, 0 = for ever */
    uint32_t history_max_per_conversation; /* messages kept per conversation, 0 = no limit */
    uint32_t max_oinfo_bytes;     /* open (public) info of one user, group or room (info.c) */
    uint32_t max_pinfo_bytes;     /* private info of one user, group or room (info.c) */
    /* Per-user state of userdata.c and devices.c. */
    uint32_t max_data_key_bytes;  /* key of dataset/dataget/datadel */
    uint32_t max_data_value_bytes; /* val of dataset */
    uint32_t max_data_keys_per_user; /* keys one user's data may hold */
    uint32_t max_devices_per_user; /* device tokens of one user; a new one past it replaces the oldest */
    uint32_t max_push_options_per_user; /* conversations one user has push options for */
    /* P2Server (p2server.c): the app-server URLs a client may have rtmd
     * POST to, "URL, URL, ..." (empty: P2Server off), and its bounds. */
    char p2server_allow[1024];
    uint32_t p2server_timeout_ms;        /* of one POST, connecting included */
    uint32_t p2server_max_inflight;      /* POSTs of the project in flight at once */
    uint32_t p2server_max_inflight_per_user; /* ... of one user */
    /* The demo web pages (modules/demo.c): 1 = this project is the one they
     * log in to (at most one project; it needs an app_id). */
    uint32_t demo;
    /* RealTimeCat (modules/rtcat/): the REST API key and secret (both set
     * = the API is on; the key is unique across projects), the demo
     * backend's unauthenticated routes (1 = this project; at most one; it
     * needs the key), the limits of what the project stores, and the length
     * of a "day" of live_days in seconds (86400; shorter for tests and
     * demos only). */
    char rtcat_apikey[RTMD_RTCAT_KEY_MAX];
    char rtcat_secret[RTMD_RTCAT_KEY_MAX];
    uint32_t rtcat_demo;
    uint32_t rtcat_max_sessions;
    uint32_t rtcat_max_tokens;
    uint32_t rtcat_max_live_days;
    uint32_t rtcat_day_seconds;
    /* Sensitive words (modules/moderation/): the list file (one word or
     * phrase a line; empty: no list, profanity and tcheck answer 200060),
     * and what a chat (mtype 30) message that has one becomes: "mask"
     * (the default) or "refuse" (200054). */
    char sensitive_words[512];
    char sensitive_words_policy[8];
    /* Files (modules/files/): the largest file one upload may carry. */
    uint32_t max_file_bytes;
    /* Translation (modules/translate/): the base URL of a server speaking
     * the LibreTranslate HTTP API (rtmd POSTs to <translate_url>/translate;
     * empty: translate answers 200060 and chat is pushed untranslated),
     * its API key (empty: none sent), the timeout of one request and the
     * requests of the project in flight at once (200010 past it). */
    char translate_url[1024];
    char translate_api_key[256];
    uint32_t translate_timeout_ms;
    uint32_t translate_max_inflight;
} rtmd_project_config;

typedef struct rtmd_config {
    char data_dir[512];
    char listen_host[64];
    int client_tcp_port;          /* 13325 */
    int client_ws_port;           /* 13321 */
    char ws_path[128];            /* "/service/websocket" */
    int server_tcp_port;          /* 13315 */
    int http_port;                /* 8080 */
    char key_pem[512];            /* secp256k1 private key for encrypted links; empty = off */
    char tls_cert[512];           /* PEM certificate chain for wss and https; empty = TLS off */
    char tls_key[512];            /* PEM private key of tls_cert */
    int client_wss_port;          /* 13322: WebSocket over TLS, when TLS is on */
    int https_port;               /* 8443: HTTP over TLS, when TLS is on */
    /* The file gate (modules/files/): FPNN over TCP and WebSocket (ws_path),
     * uploads that carry a token from `filetoken`; no login. */
    int file_tcp_port;            /* 13460 */
    int file_ws_port;             /* 13461 */
    int file_wss_port;            /* 13462: WebSocket over TLS, when TLS is on */
    uint32_t max_file_connections; /* links to the file gate, TCP and WebSocket together */
    uint32_t file_token_ttl;      /* seconds a file token lives */
    char file_endpoint[300];      /* host:port filetoken answers; empty: this node's address and file_tcp_port */
    char file_base_url[300];      /* prefix of file URLs (".../files/<id>"); empty: the HTTP listener's */
    uint32_t file_orphan_grace;   /* seconds a stored file may wait for its message before the sweep drops it */

    uint32_t max_packet;          /* bytes, header included */
    /* Connection budgets: a connection over one is closed on accept and
     * counted in rtmd_connections_refused_total of its gate. */
    uint32_t max_connections;     /* client connections, TCP and WebSocket gates together */
    uint32_t max_client_tcp_connections; /* of those, on the TCP gate; 0 = max_connections */
    uint32_t max_client_ws_connections;  /* of those, on the WebSocket gate; 0 = max_connections */
    uint32_t max_server_connections;     /* app-server links on the server gate */
    uint32_t max_http_connections;       /* links to the HTTP listener */
    uint32_t max_connections_per_address; /* from one source address on one gate; 0 = no limit */
    /* Links that have not authenticated: client links before a successful
     * `auth`, server-gate links before their first validly signed request. */
    uint32_t login_timeout;       /* seconds such a link may live */
    uint32_t prelogin_max_packet; /* largest packet, WebSocket message or unparsed input it may send */
    uint32_t prelogin_buffer_budget; /* bytes of unparsed input all such links hold together */
    uint32_t max_output_queue;    /* bytes queued to one connection before it is dropped */
    uint32_t idle_timeout;        /* seconds without any received byte */
    uint32_t handshake_timeout;   /* seconds to send a first packet / finish the upgrade */
    uint32_t ping_interval;       /* seconds between server pings to clients */
    /* The store: "sqlite" (the file rtmd.sqlite3 in data_dir, the default)
     * or "postgres" (the server store_url names, a libpq connection string
     * that may hold a password: never logged). */
    char store[16];
    char store_url[1024];
    /* The cluster (modules/cluster/, docs/cluster.md): the Redis server of
     * presence and routing, redis://host[:port][/db] (empty: one node, no
     * Redis), and this node's id in it (1..65535 or a name; empty: Redis
     * hands out a number at start). */
    char redis_url[300];
    char node_id[RTMD_NODE_ID_MAX];
    uint32_t store_batch_max;     /* writes per group commit */
    uint32_t store_fsync;         /* 1: commits wait for the disk; 0: for the OS (see store.c) */
    uint32_t store_patient_interval_us; /* store_set_patient_interval: room messages pushed early */
    /* When a room message is pushed (messages.c, docs/performance.md "Push
     * before commit"): "before_commit" (the default: once accepted, while
     * the sender's answer waits for the commit) or "after_commit". */
    char room_push[16];
    uint32_t sign_window;         /* seconds an app-server request's ts may differ from now */
    uint32_t sign_salts_max;      /* salts the replay guard keeps in memory (sign.c) */
    uint32_t sign_fail_max;       /* failed signatures in a row before a server-gate link is closed, 0 = never */
    uint32_t retention_interval;  /* seconds between history retention runs and token expiry passes */
    int log_level;                /* enum rtm_log_level */
    int log_format;               /* enum rtm_log_format */
    /* Where log lines go: a file appended to and reopened on SIGUSR1 (log
     * rotation), or stderr when empty. */
    char log_file[512];
    /* The demo web pages (modules/demo.c): a directory whose files rtmd
     * serves at /demo/ with unauthenticated token minting for the project
     * with demo = 1; empty = off. */
    char demo_dir[512];
    /* The admin page (modules/admin.c): the bearer token of its API
     * (empty, or 16..127 printable ASCII without spaces; a secret) and the
     * directory of the built page (admin/dist); the page needs both, the
     * API the token. Empty token = off (/admin answers 404). */
    char admin_token[RTMD_ADMIN_TOKEN_MAX];
    char admin_dir[512];

    size_t nprojects;
    rtmd_project_config projects[RTMD_MAX_PROJECTS];
} rtmd_config;

void rtmd_config_defaults(rtmd_config *cfg);
/* The limits of a project that the configuration does not name. */
void rtmd_project_config_defaults(rtmd_project_config *p);
/* The defaults that differ for a project with an app_id (RTS): multi_login
 * 0 (a newer login of a user logs the older ones out) and max_msg_bytes
 * RTMD_RTS_MAX_MSG_BYTES. Each flag says whether that setting is still a
 * default (not set explicitly), so that an explicit setting wins. */
#define RTMD_RTS_MAX_MSG_BYTES 65536
void rtmd_project_config_rts_defaults(rtmd_project_config *p, bool multi_login, bool max_msg_bytes);

/* Parses configuration text. On error returns -1, leaves cfg unchanged and
 * writes a message that names source and line into err. Projects given in
 * the text replace none of the defaults but are appended (a repeated pid is
 * an error). The cross-field rules (see rtmd_config_check) are checked once
 * the whole text is parsed. */
int rtmd_config_parse(rtmd_config *cfg, const char *text, size_t len, const char *source, char *err,
                      size_t errlen);
/* Reads and parses a file of at most 1 MiB; messages name the path. */
int rtmd_config_load_file(rtmd_config *cfg, const char *path, char *err, size_t errlen);
/* Applies one "key=value" setting as given on the command line (same keys
 * as the file's top-level settings); on error leaves cfg unchanged and the
 * message starts with "--key: ". Cross-field rules are not checked here:
 * call rtmd_config_check once all overrides are applied. */
int rtmd_config_set(rtmd_config *cfg, const char *key, const char *value, char *err, size_t errlen);
/* Checks the rules that involve several settings (ping_interval below both
 * idle_timeout and 60; enabled listeners on distinct fixed ports). On error
 * returns -1 with a message "source: ...". */
int rtmd_config_check(const rtmd_config *cfg, const char *source, char *err, size_t errlen);
/* Parses redis_url: redis://HOST[:PORT][/DB] with HOST a name, an IPv4
 * address or [IPv6]; PORT 6379 and DB 0 when not given. Returns 0 and fills
 * what is not NULL (host of hostlen bytes), or -1. */
int rtmd_redis_url_parse(const char *url, char *host, size_t hostlen, int *port, int *db);
/* The largest packet of the file gate: the largest max_file_bytes of the
 * projects (the default's when none is configured) and room for the rest
 * of an upload's fields. */
#define RTMD_FILE_PACKET_OVERHEAD (64 * 1024)
uint32_t rtmd_config_file_max_packet(const rtmd_config *cfg);
/* The project with this pid, or NULL. */
const rtmd_project_config *rtmd_config_project(const rtmd_config *cfg, int64_t pid);

/* A setting that differs between the running configuration and the one
 * read again: pid 0 for a top-level setting, else its project's; name
 * "[project]" for a project added or removed; the values as text (secrets
 * as "(secret)"); applied when it took effect at once, else it takes a
 * restart and the running value stays. */
typedef void (*rtmd_config_change_fn)(void *arg, int64_t pid, const char *name, const char *from, const char *to,
                                      bool applied);
/* SIGHUP (server.c): reports every difference between cur and next (a
 * checked configuration) to fn and copies into cur the settings that can
 * change while running (those read where they are used: limits, timeouts,
 * budgets, secrets, logging, the TLS files). Projects are matched by pid:
 * cur's list becomes next's (removed ones dropped, added ones appended
 * whole; server.c starts and stops them), unless one of the two names no
 * project (projects from the store), which takes a restart. */
void rtmd_config_reload(rtmd_config *cur, const rtmd_config *next, rtmd_config_change_fn fn, void *arg);
/* Takes the project with this pid out of cfg's list (one a reload added
 * that could not start). */
void rtmd_config_drop_project(rtmd_config *cfg, int64_t pid);

#endif
