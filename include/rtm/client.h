/* librtm public API: one FPNN connection to an rtmd gate (client or server
 * gate), optionally encrypted, with twoway and oneway quests, a blocking
 * call helper, server-pushed quests and automatic reconnection, and the
 * signing of app-server requests (rtm_server_call).
 *
 * Threading. Each rtm_client owns one I/O thread running its own libuv loop.
 * Every function below may be called from any thread: requests are handed to
 * the I/O thread through a queue. Callbacks (rtm_answer_cb, rtm_quest_cb,
 * rtm_event_cb) always run on that I/O thread, one at a time, and never
 * inside the call that registered them. A callback must not block for long
 * (it stalls the connection), must not call rtm_call, rtm_client_wait_connected
 * or rtm_client_free (they would wait for the thread that runs them; they
 * return an error instead). Sending quests and answers from a callback is
 * fine.
 *
 * Payloads are msgpack maps given as bytes (for example the data and size of
 * a msgpack_sbuffer); NULL/0 means an empty map. JSON conveniences convert
 * with exact 64-bit integers. */
#ifndef RTM_CLIENT_H
#define RTM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtm/fpnn.h" /* error codes: FPNN_EC_CORE_TIMEOUT (20003), FPNN_EC_CORE_CONNECTION_CLOSED (20002), ... */

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the functions librtm.so exports (it may be built with hidden
 * visibility so that the shared core inside it stays private). */
#if defined(__GNUC__)
#define RTM_EXPORT __attribute__((visibility("default")))
#else
#define RTM_EXPORT
#endif

#define RTM_PUBKEY_LEN 64 /* secp256k1 point without the 0x04 prefix */

typedef struct rtm_client rtm_client;

/* The outcome of a twoway quest. code is 0 for a successful answer, the
 * peer's error code for an error answer (status != 0, body {code, ex,
 * raised}), or an error made by the SDK itself (local == true):
 * FPNN_EC_CORE_TIMEOUT when no answer came in time,
 * FPNN_EC_CORE_CONNECTION_CLOSED when the link closed or could not be set
 * up, FPNN_EC_CORE_SEND_ERROR when 64 MiB already wait to be written to a
 * peer that does not read, FPNN_EC_PROTO_JSON_CONVERT for a bad JSON payload. */
typedef struct rtm_answer {
    int64_t code;
    const char *ex;           /* error text, "" on success; never NULL */
    bool local;               /* the error comes from the SDK, not from the peer */
    const uint8_t *payload;   /* answer body as msgpack (the error map for peer
                                 errors); NULL for local errors */
    size_t payload_len;
} rtm_answer;

/* Called exactly once for every quest that rtm_send_quest accepted. The
 * answer and its buffers are valid only during the call. */
typedef void (*rtm_answer_cb)(rtm_client *c, const rtm_answer *answer, void *arg);

/* A quest sent by the peer. */
typedef struct rtm_quest {
    const char *method;       /* NUL-terminated */
    const uint8_t *payload;   /* msgpack map (JSON bodies are converted) */
    size_t payload_len;
    bool twoway;
    uint64_t id;              /* for rtm_client_answer*; 0 for oneway quests */
} rtm_quest;

/* Receives the peer's quests except `ping`, which the SDK answers with an
 * empty map by itself. A twoway quest must be answered, now or later from
 * any thread, with rtm_client_answer or rtm_client_answer_error. Without a
 * handler, twoway quests are answered with error 20004 (unknown method). */
typedef void (*rtm_quest_cb)(rtm_client *c, const rtm_quest *quest, void *arg);

enum rtm_event {
    RTM_EVENT_CONNECTED = 1,      /* link up (and encryption handshake done) */
    RTM_EVENT_CONNECT_FAILED = 2, /* an attempt failed; reason says why */
    RTM_EVENT_CLOSED = 3,         /* an established link closed; reason says why */
};
typedef void (*rtm_event_cb)(rtm_client *c, enum rtm_event event, const char *reason, void *arg);

typedef struct rtm_options {
    const char *host;             /* name or address; copied */
    uint16_t port;

    /* Encryption: set one of the two to enable it. The key is the server's
     * secp256k1 public key, as a PEM file (public key, or a private key whose
     * public part is used) or as 64 raw bytes (x then y). */
    const char *server_key_pem;
    const uint8_t *server_key;    /* RTM_PUBKEY_LEN bytes; copied */
    int bits;                     /* 128 (default) or 256 */
    bool stream_mode;             /* one CFB stream per direction instead of packages */

    unsigned connect_timeout_ms;  /* TCP connect + handshake; default 10000 */
    unsigned quest_timeout_ms;    /* used when a quest gives 0; default 10000 */
    unsigned idle_timeout_ms;     /* close the link when nothing arrives for this
                                     long (rtmd pings clients); 0 = never (default) */
    size_t max_packet;            /* largest accepted incoming packet; default 16 MiB */

    /* Reconnect after a failed attempt or a lost link, waiting
     * reconnect_min_ms, doubled after each failure up to reconnect_max_ms
     * (defaults 500 and 30000), with up to 25% random jitter. Without it a
     * link is set up only by rtm_client_connect or by sending a quest. */
    bool auto_reconnect;
    unsigned reconnect_min_ms;
    unsigned reconnect_max_ms;

    rtm_event_cb on_event;
    rtm_quest_cb on_quest;
    void *arg;                    /* passed to on_event and on_quest */

    /* A message push (pushmsg, pushgroupmsg, pushroommsg, pushbroadcastmsg)
     * repeating the (method, from, to/gid/rid, mid) of one among the last
     * 10,000 is answered {} by the SDK and not passed to on_quest: rtmd
     * pushes room messages before their commit, so a sender's retry after
     * a failed commit or a restart reaches receivers again (the RTM SDKs
     * drop repeats the same way). true passes every push on. */
    bool pass_repeated_pushes;
} rtm_options;

/* Fills o with the defaults (all zero but the values documented above). */
RTM_EXPORT void rtm_options_init(rtm_options *o);

/* Creates a client and starts its I/O thread; does not connect yet. Returns
 * NULL and a message in err (may be NULL) on bad options, an unreadable key
 * or a failure to start the thread. */
RTM_EXPORT rtm_client *rtm_client_new(const rtm_options *o, char *err, size_t errlen);

/* Closes the link, reports FPNN_EC_CORE_CONNECTION_CLOSED to every quest
 * still waiting, stops the I/O thread and frees the client. Not from a
 * callback. */
RTM_EXPORT void rtm_client_free(rtm_client *c);

/* Starts connecting (and enables auto_reconnect again after a close).
 * Returns 0, or -1 when c is NULL. Outcome via on_event. */
RTM_EXPORT int rtm_client_connect(rtm_client *c);

/* Connects if needed and waits until the link is up. Returns 0, or
 * FPNN_EC_CORE_CONNECTION_CLOSED when the attempt failed (see
 * rtm_client_last_error), or FPNN_EC_CORE_TIMEOUT. Not from a callback
 * (returns FPNN_EC_CORE_FORBIDDEN there). */
RTM_EXPORT int rtm_client_wait_connected(rtm_client *c, unsigned timeout_ms);

/* Closes the link (quests waiting get FPNN_EC_CORE_CONNECTION_CLOSED) and
 * stops reconnecting until rtm_client_connect. */
RTM_EXPORT int rtm_client_close(rtm_client *c);

RTM_EXPORT bool rtm_client_is_connected(rtm_client *c);

/* Copies the reason of the last failed attempt or closed link into buf. */
RTM_EXPORT void rtm_client_last_error(rtm_client *c, char *buf, size_t len);

/* Sends a twoway quest. timeout_ms 0 means options.quest_timeout_ms. The
 * payload is copied. Returns 0 when accepted (cb will be called exactly
 * once), or -1 for bad arguments (method empty or longer than 255 bytes,
 * c or cb NULL), in which case cb is never called. A quest sent while the
 * link is down waits for it, starting a connection attempt when none is
 * under way or scheduled; if that attempt fails, cb reports
 * FPNN_EC_CORE_CONNECTION_CLOSED. Quests go out in the order they are sent. */
RTM_EXPORT int rtm_send_quest(rtm_client *c, const char *method, const void *payload, size_t len,
                              unsigned timeout_ms, rtm_answer_cb cb, void *arg);

/* Like rtm_send_quest with the payload given as JSON text, which must be an
 * object; a bad payload is reported to cb as FPNN_EC_PROTO_JSON_CONVERT. */
RTM_EXPORT int rtm_send_quest_json(rtm_client *c, const char *method, const char *json, unsigned timeout_ms,
                                   rtm_answer_cb cb, void *arg);

/* Sends a oneway quest (link handling as for rtm_send_quest). Returns 0
 * when queued, -1 for bad arguments. It is dropped silently when the link
 * cannot be set up, closes before it is written, or has 64 MiB waiting. */
RTM_EXPORT int rtm_send_oneway(rtm_client *c, const char *method, const void *payload, size_t len);

/* Answers the peer's twoway quest id (from rtm_quest). The answer is dropped
 * when the link that carried the quest is gone. Returns 0, or -1 for bad
 * arguments. */
RTM_EXPORT int rtm_client_answer(rtm_client *c, uint64_t quest_id, const void *payload, size_t len);
RTM_EXPORT int rtm_client_answer_error(rtm_client *c, uint64_t quest_id, int64_t code, const char *ex);

/* A finished blocking call; owns its buffers. */
typedef struct rtm_result {
    int64_t code;             /* as in rtm_answer */
    char *ex;                 /* never NULL after rtm_call */
    bool local;
    uint8_t *payload;         /* msgpack answer body, or NULL */
    size_t payload_len;
} rtm_result;

/* Sends a twoway quest and waits for its answer (or its timeout, which also
 * covers setting up the link). Works from a plain main() without any event
 * loop. Returns out->code. Not from a callback (returns
 * FPNN_EC_CORE_FORBIDDEN there, with local set). Free out with
 * rtm_result_free. */
RTM_EXPORT int64_t rtm_call(rtm_client *c, const char *method, const void *payload, size_t len,
                            unsigned timeout_ms, rtm_result *out);
RTM_EXPORT int64_t rtm_call_json(rtm_client *c, const char *method, const char *json, unsigned timeout_ms,
                                 rtm_result *out);
RTM_EXPORT void rtm_result_free(rtm_result *r);

/* App-server requests (server gate). Each carries pid, salt (a random
 * 64-bit integer never reused within the server's window), ts (unix
 * seconds) and sign = upper-case hex md5 of "pid:secret:salt:method:ts".
 *
 * rtm_server_sign writes that signature (32 hex digits and a NUL) into
 * sign; returns 0, or -1 for bad arguments. */
RTM_EXPORT int rtm_server_sign(int64_t pid, const char *secret, int64_t salt, const char *method, int64_t ts,
                               char sign[33]);
/* Copies the msgpack map payload (NULL/0: empty) into *out (malloc'd, free
 * with rtm_free) with pid, a fresh salt, the current ts and sign added
 * (replacing keys of those names). Returns 0, or -1 when payload is not
 * one msgpack map. */
RTM_EXPORT int rtm_server_sign_payload(int64_t pid, const char *secret, const char *method, const void *payload,
                                       size_t len, uint8_t **out, size_t *out_len);
/* rtm_call and rtm_call_json for the server gate: the payload is signed
 * for (pid, secret, method) first. A payload that is not a map (or JSON
 * object) is reported as a local FPNN_EC_PROTO_JSON_CONVERT. */
RTM_EXPORT int64_t rtm_server_call(rtm_client *c, int64_t pid, const char *secret, const char *method,
                                   const void *payload, size_t len, unsigned timeout_ms, rtm_result *out);
RTM_EXPORT int64_t rtm_server_call_json(rtm_client *c, int64_t pid, const char *secret, const char *method,
                                        const char *json, unsigned timeout_ms, rtm_result *out);

/* Payload helpers. rtm_payload_from_json converts a JSON object to msgpack
 * (malloc'd into *out; returns 0, or -1 if the text is not a JSON object).
 * rtm_payload_to_json converts msgpack to compact JSON (malloc'd, NUL
 * terminated; NULL on malformed input); bin values become strings. Free both
 * with rtm_free. */
RTM_EXPORT int rtm_payload_from_json(const char *json, size_t len, uint8_t **out, size_t *out_len);
RTM_EXPORT char *rtm_payload_to_json(const void *msgpack, size_t len);
RTM_EXPORT void rtm_free(void *p);

/* Loads a server public key from a PEM file (public key or private key) into
 * out. Returns 0, or -1 with a message in err. */
RTM_EXPORT int rtm_load_public_key(const char *pem_path, uint8_t out[RTM_PUBKEY_LEN], char *err, size_t errlen);

/* Level of the SDK's log lines on stderr: "debug" (connection life cycle),
 * "info" (the default), "warn" (protocol violations by the peer), "error"
 * or "off". Returns 0, or -1 for an unknown name. Process-wide. */
RTM_EXPORT int rtm_set_log_level(const char *name);

/* The library version, e.g. "0.1.0". */
RTM_EXPORT const char *rtm_version(void);

#ifdef __cplusplus
}
#endif
#endif
