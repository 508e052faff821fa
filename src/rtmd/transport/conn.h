/* The transport: gates and listeners, connections (accepting within the
 * budgets, framing, TLS and FPNN encryption, bounded output flushed once
 * per loop turn, deferred closing), the connection list's housekeeping
 * walk, and the transport's metrics. It knows nothing above framing:
 * complete input goes to the handlers the server set, and what happens to
 * a connection is announced as lifecycle events (events.h). */
#ifndef RTMD_CONN_H
#define RTMD_CONN_H

#include "buf.h"
#include "config.h"
#include "events.h"
#include "fpnn_crypto.h"
#include "pairmap.h"
#include "tls.h"
#include "ws.h"
#include "rtm/fpnn.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct rtmd_server;
struct http_request;

typedef enum rtmd_gate {
    GATE_CLIENT_TCP = 0,
    GATE_CLIENT_WS,
    GATE_SERVER_TCP,
    GATE_HTTP,
    GATE_FILE_TCP, /* the file gate (modules/files/): uploads with a file token, no login */
    GATE_FILE_WS,
    GATE_COUNT
} rtmd_gate;

#define GATE_BIT(g) (1u << (g))
#define GATES_CLIENT (GATE_BIT(GATE_CLIENT_TCP) | GATE_BIT(GATE_CLIENT_WS))
#define GATES_SERVER GATE_BIT(GATE_SERVER_TCP)
#define GATES_FILE (GATE_BIT(GATE_FILE_TCP) | GATE_BIT(GATE_FILE_WS))
#define GATES_FPNN (GATES_CLIENT | GATES_SERVER | GATES_FILE)
/* Whether a gate frames FPNN in WebSocket messages. */
#define GATE_IS_WS(g) ((g) == GATE_CLIENT_WS || (g) == GATE_FILE_WS)

const char *rtmd_gate_name(rtmd_gate gate);

/* One listening socket. A gate may have two: plain and over TLS (the
 * client WebSocket gate, and HTTP). */
typedef enum rtmd_endpoint {
    ENDPOINT_CLIENT_TCP = 0,
    ENDPOINT_CLIENT_WS,
    ENDPOINT_CLIENT_WSS,
    ENDPOINT_SERVER_TCP,
    ENDPOINT_HTTP,
    ENDPOINT_HTTPS,
    ENDPOINT_FILE_TCP,
    ENDPOINT_FILE_WS,
    ENDPOINT_FILE_WSS,
    ENDPOINT_COUNT
} rtmd_endpoint;

typedef struct rtmd_listener {
    uv_tcp_t tcp;
    struct rtmd_server *srv;
    const char *name; /* as printed on the listen line */
    rtmd_gate gate;
    int port;         /* bound port (resolved when configured as 0) */
    bool active;
    bool tls;
} rtmd_listener;

/* How the bytes of a connection are framed on the wire. */
typedef enum conn_framing {
    FRAMING_FPNN = 0,      /* plain FPNN packets over TCP */
    FRAMING_FPNN_PACKAGE,  /* encrypted, package mode */
    FRAMING_FPNN_STREAM,   /* encrypted, stream mode */
    FRAMING_WS_HANDSHAKE,  /* waiting for the HTTP upgrade */
    FRAMING_WS,            /* one FPNN packet per binary WebSocket message */
    FRAMING_HTTP,          /* plain HTTP requests */
} conn_framing;

typedef struct rtmd_conn {
    uv_tcp_t tcp;                  /* first: handles cast back to the conn */
    struct rtmd_server *srv;
    struct rtmd_conn *prev, *next; /* all live connections */
    struct rtmd_conn *dirty_next;  /* connections with output to flush */
    uint64_t id;
    unsigned refs;                 /* the socket + requests still in progress */
    uint32_t next_seq;             /* seq of server quests */
    uint8_t gate;                  /* rtmd_gate; one byte, like the flags below:
                                    * every byte of an idle connection counts */
    uint8_t framing;               /* conn_framing */
    /* Flags in bits, so that the connection's bytes before its buffers
     * stay at eight. */
    bool closing : 1;              /* uv_close called or requested */
    bool dirty : 1;                /* on the flush list */
    bool writing : 1;              /* a uv_write is in flight */
    bool close_after_flush : 1;    /* close once the output is written */
    bool handshaken : 1;           /* a valid first packet / upgrade was seen */
    bool authenticated : 1;        /* logged in (client gates) or signed once (server
                                    * gate): see conn_authenticated */
    bool tls : 1;                  /* accepted on a TLS listener: tls_state, not crypto */
    bool http_answer_later : 1;    /* the HTTP handler answers later (http_defer): a
                                    * "Connection: close" and the requests behind it
                                    * wait for that answer */

    rtm_buf in;                    /* received, not yet parsed bytes */
    rtm_buf out;                   /* encoded bytes waiting for the next write */
    rtm_buf inflight;              /* bytes of the write in flight */

    union {
        fpnn_crypto *crypto;       /* FPNN encryption after `*key` (TCP gates) */
        tls_conn *tls_state;       /* TLS (wss and https) */
    };
    ws_conn *ws;

    void *caller;                  /* who is on this link, kept by the module that
                                    * authorizes its gate (users.c's session on the
                                    * client gates); the transport never reads it */
    struct rtmd_address_count *address; /* its source address's count, when that is limited */
    struct conn_source *source;    /* a body sent in parts (conn_send_source), or NULL */
    uint32_t prelogin_held;        /* input buffer bytes counted in srv->prelogin_bytes */
    uint32_t discard;              /* bytes of an oversized upload still to skip (file gate) */

    uint64_t created_ms;
    uint64_t last_recv_ms;
    uint64_t last_ping_ms;
} rtmd_conn;

/* What conn.c hands complete input to (set by rtmd_server_init, so that
 * the transport names no dispatcher or router): an FPNN packet of a
 * client or server gate (returns 0, or -1 when the connection must be
 * closed), and an HTTP request of the HTTP gate. */
typedef int (*rtmd_packet_handler)(rtmd_conn *c, const fpnn_packet *pkt);
/* A quest over the file gate's packet limit, its payload skipped: the
 * header and method only, and its whole size. */
typedef int (*rtmd_oversized_handler)(rtmd_conn *c, const fpnn_packet *pkt, uint64_t size);
typedef void (*rtmd_http_handler)(rtmd_conn *c, const struct http_request *req);

/* Housekeeping (login, handshake and idle deadlines, keepalive pings,
 * idle buffers) visits the connections in slices, as Redis clientsCron
 * does, so that a tick costs the same whatever their number: a pass over
 * the list lasts RTMD_HOUSEKEEPING_HZ ticks (one second), and each tick
 * visits an equal share of what the pass has left. The walk starts at the
 * head; connections accepted meanwhile join at the head and wait for the
 * next pass. So a connection present when a pass starts is visited in that
 * pass: two visits are about a second apart while the number of
 * connections is steady, and always less than two seconds apart (with the
 * ticks on time). */
#define RTMD_HOUSEKEEPING_HZ 10

typedef struct rtmd_sweep {
    rtmd_conn *next;          /* where the walk resumes; NULL once the pass ended */
    uint64_t left;            /* connections of this pass not visited yet, at most */
    unsigned tick;            /* ticks of this pass done */
    unsigned ticks_per_pass;
} rtmd_sweep;

typedef void rtmd_sweep_visit(rtmd_conn *c, void *arg);

/* How many connections one tick visits: the pass's unvisited ones (at most
 * `left`, and no more than the `nconns` in the list) shared over the
 * `ticks_left` ticks of the pass, rounded up; the last tick takes all. */
uint64_t rtmd_sweep_quota(uint64_t left, uint64_t nconns, unsigned ticks_left);
/* One tick: starts a pass at `head` when the last one is over, then visits
 * the quota of connections from where the walk stopped. A visit may close
 * (and unlink) any connection. Returns how many were visited. */
uint64_t rtmd_sweep_tick(rtmd_sweep *s, rtmd_conn *head, uint64_t nconns, rtmd_sweep_visit *visit, void *arg);
/* Called as c leaves the list, so that the walk never resumes at a
 * connection that is gone. */
void rtmd_sweep_unlinking(rtmd_sweep *s, const rtmd_conn *c);

typedef struct rtmd_metrics {
    uint64_t accepted[GATE_COUNT];
    uint64_t closed[GATE_COUNT];
    uint64_t refused[GATE_COUNT];   /* over a connection budget (max_*connections*) */
    uint64_t current[GATE_COUNT];
    uint64_t packets_in;
    uint64_t packets_out;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t protocol_errors;
    uint64_t slow_consumers;        /* dropped for an output queue over the limit */
    uint64_t timeouts;              /* closed by handshake, login or idle timeout */
    uint64_t logins[3];             /* answered logins by result (rtmd_login_result, methods.c) */
} rtmd_metrics;

/* How a login ended (a client's auth): granted, refused ({ok: false}), or
 * answered with an error. */
typedef enum rtmd_login_result { LOGIN_OK, LOGIN_DENIED, LOGIN_ERROR, LOGIN_RESULTS } rtmd_login_result;

/* The transport's state, one per event loop; the server embeds it first
 * (struct rtmd_server's first member), so that conn.c reaches it from a
 * connection's srv pointer without knowing the server. */
typedef struct rtmd_net {
    uv_loop_t *loop;
    const rtmd_config *cfg;
    EVP_PKEY *key;                  /* private key of encrypted links, or NULL */
    tls_context *tls;               /* certificate of the TLS listeners, or NULL */
    rtmd_packet_handler on_packet;  /* set by the server: the dispatcher */
    rtmd_oversized_handler on_oversized; /* the same for an oversized upload */
    rtmd_http_handler on_http;      /* set by the server: the HTTP router */
    rtmd_events events;             /* lifecycle event subscriptions (events.h) */
    bool refusing;                  /* stopping: new connections are refused */

    rtmd_conn *conns;
    rtmd_sweep sweep;               /* the housekeeping walk over conns */
    rtmd_conn *dirty;
    rtmd_conn **closing;            /* closed, to be torn down (conn_finish_closes) */
    size_t nclosing, closing_cap;
    uint64_t nconns;
    uint32_t gate_conns[GATE_COUNT]; /* open connections per gate, for the budgets */
    pairmap address_counts[GATE_COUNT]; /* source address -> rtmd_address_count */
    uint64_t prelogin_bytes;        /* input buffers of links not authenticated yet */
    uint32_t file_max_packet;       /* largest packet of the file gate (an upload), set by the server */
    uint64_t next_conn_id;
    rtmd_metrics metrics;

    rtm_buf push_scratch;           /* per-connection copy of a push being sent */
    rtm_buf tls_plain;              /* plaintext of one TLS read, parsed at once */
    rtm_buf decrypted;              /* package-mode decryption space: one packet is
                                     * decrypted and handled at a time */
    uint8_t readbuf[65536];         /* shared by all reads of this loop */
    rtm_buf scratch;                /* encoding space for answers and quests */
} rtmd_net;

/* The transport state of c's server. */
static inline rtmd_net *conn_net(const rtmd_conn *c)
{
    return (rtmd_net *)(void *)c->srv;
}

/* Connection API used by the dispatcher and HTTP. */
void conn_ref(rtmd_conn *c);
void conn_unref(rtmd_conn *c);
/* Queues an encoded FPNN packet (framing, encryption applied here). */
int conn_send_packet(rtmd_conn *c, const uint8_t *packet, size_t len);
/* Queues raw bytes as they are (HTTP responses, the WebSocket upgrade). */
int conn_send_raw(rtmd_conn *c, const void *data, size_t len);
/* "ip:port" of the peer, for logs and events, written into buf. */
#define RTMD_PEER_LEN 64
const char *conn_peer(rtmd_conn *c, char buf[RTMD_PEER_LEN]);
/* Logs event at info with the connection's fields (conn, gate, peer), then
 * the n entries of kv: key, value, key, value... (log.h, rtm_log_event). */
void conn_log_event(rtmd_conn *c, const char *event, const char *const *kv, size_t n);
/* Frees the output buffers of a connection with nothing to write (the
 * housekeeping tick calls it for idle connections). */
void conn_release_idle_buffers(rtmd_conn *c);
/* The link proved who it is: a client logged in (auth.c), or an app
 * server made a validly signed request (methods.c). From then on it is
 * bound by max_packet instead of prelogin_max_packet, has no login
 * deadline, and its buffers leave the pre-login budget. */
void conn_authenticated(rtmd_conn *c);
/* Heap bytes the connection holds in buffers (input, output, WebSocket
 * message being received). */
size_t conn_buffer_bytes(const rtmd_conn *c);
/* Closes, dropping queued output: the connection stops reading and
 * writing now and is torn down (session ended, modules told, socket
 * closed) by conn_finish_closes, so callers in the middle of a walk over
 * sessions or members may close connections safely. */
void conn_close(rtmd_conn *c, const char *reason);
/* Tears down every connection closed since the last call; the loop's check
 * handler calls it before flushing output. */
void conn_finish_closes(rtmd_net *net);
/* Connections closed and not torn down yet. */
static inline bool conn_closes_pending(const rtmd_net *net)
{
    return net->nclosing > 0;
}
/* Closes once queued output is written. */
void conn_close_after_flush(rtmd_conn *c);
/* Sends a twoway quest from the server (e.g. ping); the answer is ignored
 * beyond marking the link alive. */
int conn_send_quest(rtmd_conn *c, const char *method, const uint8_t *payload, size_t len);
/* Sends a quest packet encoded once for many connections (push.h): a
 * twoway one gets this connection's next seq. */
int conn_send_push(rtmd_conn *c, const uint8_t *packet, size_t len);

/* A body sent in parts, so that a large one is never held in memory
 * whole (a stored file, modules/files/): each time the connection's
 * output has drained the transport asks fill for the next part, at most
 * cap bytes into buf; fill returns how many it wrote, 0 at the end, or -1
 * on an error (the connection is closed then, the body being cut short).
 * done runs once: finished true after the last part was queued, false
 * when the connection closed first; the caller frees its source there. */
#define CONN_SOURCE_CHUNK 65536
typedef struct conn_source {
    long (*fill)(struct conn_source *src, uint8_t *buf, size_t cap);
    void (*done)(struct conn_source *src, rtmd_conn *c, bool finished);
    uint8_t buf[CONN_SOURCE_CHUNK];
} conn_source;
/* Starts sending src after what is queued (one source at a time per
 * connection; returns -1 without calling done when c is closing or has
 * one already). */
int conn_send_source(rtmd_conn *c, conn_source *src);

/* Frees the per-address connection counts (conn.c), at server free. */
void conn_free_address_counts(rtmd_net *net);
/* Bytes queued on c that the kernel has not taken yet (conn.c). */
size_t conn_undelivered_bytes(rtmd_conn *c);
/* Listener callback accepting a connection (conn.c). */
void rtmd_on_connection(uv_stream_t *server_stream, int status);
/* Writes the queued output of every connection that has some (conn.c). */
size_t rtmd_flush_dirty(rtmd_net *net);
/* The deferred answer of an HTTP request (http_defer) went out: the
 * requests that arrived behind it are parsed now. */
void conn_http_answered(rtmd_conn *c);

#endif
