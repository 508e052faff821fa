/* WebSocket server side (see ws.h): the upgrade check and its 101 answer,
 * and RFC 6455 framing of our own.
 *
 * Why our own framing: the client gate holds one ws_conn per WebSocket link,
 * and the wslay event context we used before cost 9,440 bytes of heap per
 * connection (measured with mallinfo2 around wslay_event_context_server_init)
 * against a budget of 4 KiB of server memory per idle authenticated link.
 * The server side of RFC 6455 is small, so we frame ourselves: an idle
 * ws_conn is one small struct and holds no buffer.
 *
 * Receiving (ws_feed):
 *  - a frame header is gathered in a 14-byte inline array, so it may arrive
 *    split across any number of ws_feed calls; its first two bytes are
 *    checked as soon as they are there (reserved bits, opcode, mask bit,
 *    control frame size and FIN, continuation state);
 *  - data frame payload is unmasked into a growable message buffer that is
 *    freed (not kept) once the message has been delivered through
 *    on_message; text messages must be valid UTF-8 (else close 1007);
 *  - control frame payload (at most 125 bytes) goes to a buffer of its exact
 *    size that lives until the frame is answered: a ping gets a pong with
 *    the same payload, a pong is ignored, a close gets a close echoing its
 *    status code and ends the link (ws_feed returns -1);
 *  - a protocol violation gets close 1002, a message above max_message
 *    close 1009; either way ws_feed returns -1 and the link is over.
 *
 * Sending: every frame goes straight to the send callback, unmasked and
 * unfragmented: header and payload in one call for small frames, two calls
 * (header, then the caller's payload) for larger ones; nothing is queued.
 * ws_send_binary and ws_close may therefore be called from inside
 * on_message (which must not free the connection); the message buffer is
 * detached before on_message runs, so it stays valid during the call.
 *
 * ws_closed is true once a close frame was sent or received (or the link
 * failed): nothing more may be sent, and the caller may drop the socket
 * after writing out what it holds. After our own close, data messages still
 * in flight are delivered until the peer's close arrives. */
#include "ws.h"

#include "utf8.h"

#include <openssl/evp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- handshake ---------------------------------------------------------- */

void ws_accept_key(const char *key, char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, key, strlen(key)) == 1 &&
             EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (ok)
        EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 chars + NUL */
}

/* True if the comma-separated header value lists token (any case). */
static bool has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m == tlen && strncasecmp(p, token, tlen) == 0)
            return true;
        p = end;
    }
    return false;
}

static bool is_b64(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

/* A base64 encoding of 16 bytes: 22 characters and "==". */
static bool valid_key(const char *key)
{
    if (strlen(key) != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (int i = 0; i < 22; i++) {
        if (!is_b64(key[i]))
            return false;
    }
    return true;
}

/* Faults are reported in this order: wrong path (404), not a GET or not
 * an upgrade to websocket (400), version other than 13 (426; the caller's
 * answer should carry "Sec-WebSocket-Version: 13"), bad key (400). A
 * Sec-WebSocket-Protocol offer is ignored: no subprotocol is selected. A
 * response that does not fit resp_cap, or a hashing failure, gives 500. */
int ws_handshake_response(const http_request *req, const char *path, char *resp, size_t resp_cap, int *status)
{
    int dummy;
    if (!status)
        status = &dummy;
    *status = 400;
    if (strcmp(req->path, path) != 0) {
        *status = 404;
        return -1;
    }
    if (strcmp(req->method, "GET") != 0)
        return -1;
    const char *upgrade = http_request_header(req, "upgrade");
    const char *connection = http_request_header(req, "connection");
    if (!upgrade || !has_token(upgrade, "websocket"))
        return -1;
    if (!connection || !has_token(connection, "upgrade"))
        return -1;
    const char *version = http_request_header(req, "sec-websocket-version");
    if (!version || strcmp(version, "13") != 0) {
        *status = 426;
        return -1;
    }
    const char *key = http_request_header(req, "sec-websocket-key");
    if (!key || !valid_key(key))
        return -1;

    char accept[29];
    ws_accept_key(key, accept);
    if (accept[0] == '\0') {
        *status = 500;
        return -1;
    }
    int n = snprintf(resp, resp_cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "\r\n",
                     accept);
    if (n < 0 || (size_t)n >= resp_cap) {
        *status = 500;
        return -1;
    }
    *status = 101;
    return n;
}

/* ---- framing ------------------------------------------------------------ */

/* Frame header bits (RFC 6455 section 5.2). */
#define WS_FIN 0x80
#define WS_RSV_BITS 0x70
#define WS_OPCODE_BITS 0x0f
#define WS_MASK_BIT 0x80
#define WS_LEN_BITS 0x7f
#define WS_LEN_16 126 /* a 16-bit length follows */
#define WS_LEN_64 127 /* a 64-bit length follows */

#define WS_OP_CONT 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xa

#define WS_MAX_CONTROL_PAYLOAD 125
#define WS_MASK_SIZE 4
#define WS_MIN_HEADER 2
#define WS_MAX_CLIENT_HEADER (WS_MIN_HEADER + 8 + WS_MASK_SIZE) /* 14 */
#define WS_MAX_SERVER_HEADER (WS_MIN_HEADER + 8)                /* unmasked */
/* Frames with at most this much payload go out in one send call. */
#define WS_SMALL_FRAME WS_MAX_CONTROL_PAYLOAD

/* Close status codes (RFC 6455 section 7.4.1). */
#define WS_CLOSE_PROTOCOL_ERROR 1002
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_INTERNAL_ERROR 1011

/* What the internal steps return: go on, or the link is over (a close was
 * exchanged, or the link failed). */
#define WS_GO_ON 0
#define WS_STOP (-1)

/* 80 bytes: one per WebSocket connection of rtmd, so sizes are 32-bit
 * (messages are bounded by max_message) and the callbacks are shared. */
struct ws_conn {
    const ws_callbacks *cb;
    void *ud;
    /* the data message being reassembled: NULL/0 when none is open */
    uint8_t *msg;
    /* payload of the control frame being received, NULL when none */
    uint8_t *ctrl;
    uint32_t max_message;
    uint32_t msg_len, msg_cap;
    uint32_t remaining;                /* payload bytes of the frame still to come */
    uint8_t hdr[WS_MAX_CLIENT_HEADER]; /* the frame header gathered so far */
    uint8_t hdr_len, hdr_need;         /* bytes in hdr, bytes the header has */
    uint8_t mask[WS_MASK_SIZE];
    uint8_t mask_pos;   /* index into mask of the next payload byte */
    uint8_t opcode;     /* of the current frame */
    uint8_t ctrl_len;   /* payload length of the current control frame */
    uint8_t msg_opcode; /* TEXT or BINARY while a message is open, else 0 */
    bool fin;           /* of the current frame */
    bool in_payload;    /* header complete, reading payload */
    bool close_sent, close_received, failed;
};

static bool is_control(uint8_t opcode)
{
    return (opcode & 0x08) != 0;
}

static void reset_frame(ws_conn *ws)
{
    ws->in_payload = false;
    ws->hdr_len = 0;
    ws->hdr_need = WS_MIN_HEADER;
    ws->mask_pos = 0;
}

static void free_message(ws_conn *ws)
{
    free(ws->msg);
    ws->msg = NULL;
    ws->msg_len = ws->msg_cap = 0;
    ws->msg_opcode = 0;
}

static void free_control(ws_conn *ws)
{
    free(ws->ctrl);
    ws->ctrl = NULL;
    ws->ctrl_len = 0;
}

void ws_set_max_message(ws_conn *ws, size_t max_message)
{
    uint32_t bound = max_message < UINT32_MAX ? (uint32_t)max_message : UINT32_MAX;
    ws->max_message = bound > ws->msg_len ? bound : ws->msg_len; /* the open message's bytes stay valid */
}

ws_conn *ws_conn_new(const ws_callbacks *cb, void *ud, size_t max_message)
{
    ws_conn *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->cb = cb;
    ws->ud = ud;
    ws_set_max_message(ws, max_message);
    reset_frame(ws);
    return ws;
}

void ws_conn_free(ws_conn *ws)
{
    if (!ws)
        return;
    free_message(ws);
    free_control(ws);
    free(ws);
}

size_t ws_conn_buffered(const ws_conn *ws)
{
    return ws->msg_cap + (ws->ctrl ? ws->ctrl_len : 0);
}

/* ---- output --- */

/* Writes an unmasked frame header with FIN set; returns its size. */
static size_t encode_header(uint8_t *out, uint8_t opcode, size_t len)
{
    size_t n = 0;
    out[n++] = (uint8_t)(WS_FIN | opcode);
    if (len < WS_LEN_16) {
        out[n++] = (uint8_t)len;
    } else if (len <= 0xffff) {
        out[n++] = WS_LEN_16;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = WS_LEN_64;
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)((uint64_t)len >> shift);
    }
    return n;
}

/* Sends one whole frame through the send callback; a failure fails the
 * link. */
static int send_frame(ws_conn *ws, uint8_t opcode, const uint8_t *payload, size_t len)
{
    uint8_t frame[WS_MAX_SERVER_HEADER + WS_SMALL_FRAME];
    size_t n = encode_header(frame, opcode, len);
    int rc = -1;
    if (ws->cb->send) {
        if (len <= WS_SMALL_FRAME) {
            if (len)
                memcpy(frame + n, payload, len);
            rc = ws->cb->send(ws->ud, frame, n + len);
        } else {
            rc = ws->cb->send(ws->ud, frame, n);
            if (rc == 0)
                rc = ws->cb->send(ws->ud, payload, len);
        }
    }
    if (rc != 0) {
        ws->failed = true;
        return -1;
    }
    return 0;
}

/* Sends our close frame: with a status code, or empty when status is 0
 * (the answer to a close that carried none). */
static int send_close(ws_conn *ws, uint16_t status)
{
    uint8_t payload[2] = { (uint8_t)(status >> 8), (uint8_t)status };
    ws->close_sent = true;
    return send_frame(ws, WS_OP_CLOSE, payload, status ? sizeof payload : 0);
}

/* Ends the link on a fault of the peer: close with status (unless our
 * close already went out). */
static int fail_link(ws_conn *ws, uint16_t status)
{
    if (!ws->close_sent && !ws->failed)
        (void)send_close(ws, status);
    ws->failed = true;
    return WS_STOP;
}

int ws_send_binary(ws_conn *ws, const uint8_t *data, size_t len)
{
    if (ws->failed || ws->close_sent)
        return -1;
    return send_frame(ws, WS_OP_BINARY, data, len);
}

int ws_close(ws_conn *ws, uint16_t status)
{
    if (ws->failed || ws->close_sent)
        return -1;
    return send_close(ws, status);
}

bool ws_closed(const ws_conn *ws)
{
    return ws->failed || ws->close_sent || ws->close_received;
}

/* ---- validation --- */

/* Status codes a peer may send (RFC 6455 section 7.4 and the IANA
 * registry): not 1004-1006 or 1015, which never go on the wire. */
static bool close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* Checks the first two header bytes against the connection's state;
 * returns 0 or the close status to fail with. Sets hdr_need. */
static uint16_t check_header_start(ws_conn *ws)
{
    uint8_t b0 = ws->hdr[0], b1 = ws->hdr[1];
    uint8_t opcode = b0 & WS_OPCODE_BITS;
    uint8_t len7 = b1 & WS_LEN_BITS;
    if (b0 & WS_RSV_BITS)
        return WS_CLOSE_PROTOCOL_ERROR; /* no extension was negotiated */
    if (!(b1 & WS_MASK_BIT))
        return WS_CLOSE_PROTOCOL_ERROR; /* clients must mask */
    switch (opcode) {
    case WS_OP_CONT:
        if (!ws->msg_opcode)
            return WS_CLOSE_PROTOCOL_ERROR; /* nothing to continue */
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (ws->msg_opcode)
            return WS_CLOSE_PROTOCOL_ERROR; /* the open message is unfinished */
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!(b0 & WS_FIN) || len7 > WS_MAX_CONTROL_PAYLOAD)
            return WS_CLOSE_PROTOCOL_ERROR;
        break;
    default:
        return WS_CLOSE_PROTOCOL_ERROR;
    }
    size_t ext = len7 == WS_LEN_16 ? 2 : len7 == WS_LEN_64 ? 8 : 0;
    ws->hdr_need = (uint8_t)(WS_MIN_HEADER + ext + WS_MASK_SIZE);
    return 0;
}

/* Decodes the complete header into the frame state; returns 0 or the close
 * status to fail with. */
static uint16_t parse_header(ws_conn *ws)
{
    const uint8_t *h = ws->hdr;
    uint8_t len7 = h[1] & WS_LEN_BITS;
    size_t pos = WS_MIN_HEADER;
    uint64_t len = len7;
    if (len7 == WS_LEN_16) {
        len = ((uint64_t)h[2] << 8) | h[3];
        pos += 2;
    } else if (len7 == WS_LEN_64) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[pos + i];
        pos += 8;
        if (len >> 63)
            return WS_CLOSE_PROTOCOL_ERROR; /* the top bit must be 0 */
    }
    memcpy(ws->mask, h + pos, WS_MASK_SIZE);
    ws->mask_pos = 0;
    ws->fin = (h[0] & WS_FIN) != 0;
    ws->opcode = h[0] & WS_OPCODE_BITS;
    if (is_control(ws->opcode)) {
        ws->ctrl_len = (uint8_t)len; /* at most 125: checked at the start */
        if (len) {
            ws->ctrl = malloc(len);
            if (!ws->ctrl)
                return WS_CLOSE_INTERNAL_ERROR;
        }
    } else {
        if (len > ws->max_message - ws->msg_len)
            return WS_CLOSE_TOO_BIG;
        if (ws->opcode != WS_OP_CONT)
            ws->msg_opcode = ws->opcode;
    }
    ws->remaining = (uint32_t)len; /* at most max_message or 125: checked above */
    ws->in_payload = true;
    return 0;
}

/* ---- input --- */

/* Takes header bytes from data; *used tells how many. */
static int read_header(ws_conn *ws, const uint8_t *data, size_t len, size_t *used)
{
    size_t n = 0;
    while (n < len && ws->hdr_len < ws->hdr_need) {
        ws->hdr[ws->hdr_len++] = data[n++];
        uint16_t status = 0;
        if (ws->hdr_len == WS_MIN_HEADER)
            status = check_header_start(ws);
        else if (ws->hdr_len == ws->hdr_need)
            status = parse_header(ws);
        if (status) {
            *used = n;
            return fail_link(ws, status);
        }
    }
    *used = n;
    return WS_GO_ON;
}

/* Makes room for add more bytes of the open message. The buffer doubles,
 * but never beyond max_message, nor beyond the end of the final frame. */
static bool reserve_message(ws_conn *ws, size_t add)
{
    size_t need = (size_t)ws->msg_len + add;
    if (need <= ws->msg_cap)
        return true;
    size_t cap = (size_t)ws->msg_cap * 2 > need ? (size_t)ws->msg_cap * 2 : need;
    if (cap > ws->max_message)
        cap = ws->max_message;
    if (ws->fin && cap > (size_t)ws->msg_len + ws->remaining)
        cap = (size_t)ws->msg_len + ws->remaining;
    uint8_t *p = realloc(ws->msg, cap);
    if (!p)
        return false;
    ws->msg = p;
    ws->msg_cap = (uint32_t)cap;
    return true;
}

/* Copies n payload bytes to dst, removing the frame's mask. */
static void unmask(ws_conn *ws, uint8_t *dst, const uint8_t *src, size_t n)
{
    unsigned pos = ws->mask_pos;
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] ^ ws->mask[(pos + i) & 3];
    ws->mask_pos = (uint8_t)((pos + n) & 3);
}

/* Takes payload bytes of the current frame from data. */
static int read_payload(ws_conn *ws, const uint8_t *data, size_t len, size_t *used)
{
    size_t n = len < ws->remaining ? len : ws->remaining;
    *used = n;
    if (is_control(ws->opcode)) {
        unmask(ws, ws->ctrl + (ws->ctrl_len - ws->remaining), data, n);
    } else {
        if (!reserve_message(ws, n))
            return fail_link(ws, WS_CLOSE_INTERNAL_ERROR);
        unmask(ws, ws->msg + ws->msg_len, data, n);
        ws->msg_len += n;
    }
    ws->remaining -= n;
    return WS_GO_ON;
}

/* Hands a complete message to on_message and frees its buffer. */
static int deliver_message(ws_conn *ws)
{
    static const uint8_t empty[1];
    uint8_t *data = ws->msg;
    size_t len = ws->msg_len;
    bool binary = ws->msg_opcode == WS_OP_BINARY;
    if (!binary && !rtm_utf8_valid(data, len))
        return fail_link(ws, WS_CLOSE_INVALID_DATA);
    /* detached first: on_message may send, and the next frame starts clean */
    ws->msg = NULL;
    ws->msg_len = ws->msg_cap = 0;
    ws->msg_opcode = 0;
    if (ws->cb->on_message)
        ws->cb->on_message(ws->ud, data ? data : empty, len, binary);
    free(data);
    return ws->failed ? WS_STOP : WS_GO_ON;
}

/* The peer's close: checks its payload, answers it (unless our close went
 * out already) and ends the link. */
static int handle_close(ws_conn *ws, const uint8_t *payload, size_t len)
{
    uint16_t code = 0;
    if (len == 1)
        return fail_link(ws, WS_CLOSE_PROTOCOL_ERROR);
    if (len >= 2) {
        code = (uint16_t)((payload[0] << 8) | payload[1]);
        if (!close_code_valid(code))
            return fail_link(ws, WS_CLOSE_PROTOCOL_ERROR);
        if (!rtm_utf8_valid(payload + 2, len - 2))
            return fail_link(ws, WS_CLOSE_INVALID_DATA);
    }
    ws->close_received = true;
    if (!ws->close_sent)
        (void)send_close(ws, code);
    return WS_STOP;
}

/* Acts on a control frame whose payload is complete. */
static int handle_control(ws_conn *ws)
{
    int rc = WS_GO_ON;
    switch (ws->opcode) {
    case WS_OP_PING:
        if (!ws->close_sent && send_frame(ws, WS_OP_PONG, ws->ctrl, ws->ctrl_len) != 0)
            rc = WS_STOP;
        break;
    case WS_OP_CLOSE:
        rc = handle_close(ws, ws->ctrl, ws->ctrl_len);
        break;
    default: /* pong: nothing to do */
        break;
    }
    free_control(ws);
    return rc;
}

/* The current frame is complete. */
static int finish_frame(ws_conn *ws)
{
    bool control = is_control(ws->opcode);
    bool fin = ws->fin;
    reset_frame(ws);
    if (control)
        return handle_control(ws);
    return fin ? deliver_message(ws) : WS_GO_ON;
}

int ws_feed(ws_conn *ws, const uint8_t *data, size_t len)
{
    if (ws->failed || ws->close_received)
        return -1;
    size_t off = 0;
    while (off < len) {
        size_t used = 0;
        int rc = ws->in_payload ? read_payload(ws, data + off, len - off, &used)
                                : read_header(ws, data + off, len - off, &used);
        off += used;
        if (rc == WS_GO_ON && ws->in_payload && ws->remaining == 0)
            rc = finish_frame(ws);
        if (rc != WS_GO_ON) {
            free_message(ws);
            free_control(ws);
            return -1;
        }
    }
    return 0;
}
