/* FPNN packet framing: parsing and encoding of oneway quests, twoway quests
 * and answers (header layout in docs/protocol.md). Shared by rtmd and librtm;
 * knows nothing about sockets, encryption or payload contents. */
#ifndef RTM_FPNN_H
#define RTM_FPNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FPNN_MAGIC "FPNN"
/* The one protocol version there is: every FPNN SDK sends 1, and the
 * reference server declares 1 as the oldest it supports. A packet of any
 * other version (0 included) is not parsed. */
#define FPNN_VERSION 1
#define FPNN_ONEWAY_HEADER 12u
#define FPNN_TWOWAY_HEADER 16u
#define FPNN_MAX_METHOD 255u

enum fpnn_flag { FPNN_FLAG_JSON = 0x40, FPNN_FLAG_MSGPACK = 0x80 };
enum fpnn_mtype { FPNN_MT_ONEWAY = 0, FPNN_MT_TWOWAY = 1, FPNN_MT_ANSWER = 2 };

/* FPNN core error codes used by rtmd and librtm. */
enum fpnn_error {
    FPNN_EC_PROTO_UNKNOWN_ERROR = 10001,
    FPNN_EC_PROTO_NOT_SUPPORTED = 10002,
    FPNN_EC_PROTO_INVALID_PACKAGE = 10003,
    FPNN_EC_PROTO_JSON_CONVERT = 10004,
    FPNN_EC_PROTO_KEY_NOT_FOUND = 10009,
    FPNN_EC_PROTO_TYPE_CONVERT = 10010,
    FPNN_EC_CORE_UNKNOWN_ERROR = 20001,
    FPNN_EC_CORE_CONNECTION_CLOSED = 20002,
    FPNN_EC_CORE_TIMEOUT = 20003,
    FPNN_EC_CORE_UNKNOWN_METHOD = 20004,
    FPNN_EC_CORE_ENCODING = 20005,
    FPNN_EC_CORE_DECODING = 20006,
    FPNN_EC_CORE_SEND_ERROR = 20007,
    FPNN_EC_CORE_INVALID_PACKAGE = 20009,
    FPNN_EC_CORE_WORK_QUEUE_FULL = 20011,
    FPNN_EC_CORE_INVALID_CONNECTION = 20012,
    FPNN_EC_CORE_FORBIDDEN = 20013,
    FPNN_EC_CORE_SERVER_STOPPING = 20014,
};

/* A parsed packet; method and payload point into the caller's buffer. */
typedef struct fpnn_packet {
    uint8_t version;
    uint8_t flag;          /* FPNN_FLAG_JSON or FPNN_FLAG_MSGPACK */
    uint8_t mtype;         /* enum fpnn_mtype */
    uint8_t status;        /* answers only: 0 ok, else error payload */
    uint32_t seq;          /* twoway quests and answers */
    const char *method;    /* quests only, not NUL-terminated */
    size_t method_len;
    const uint8_t *payload;
    size_t payload_len;
} fpnn_packet;

/* Results of fpnn_parse besides a positive packet length. */
#define FPNN_PARSE_MORE 0       /* need more bytes */
#define FPNN_PARSE_BAD (-1)     /* not an FPNN packet: close the link */
#define FPNN_PARSE_TOO_LARGE (-2) /* larger than max_packet: close the link */

/* Parses the packet at the start of buf. Returns its total length when it
 * is complete, FPNN_PARSE_MORE when more bytes are needed, or a negative
 * FPNN_PARSE_* error. max_packet bounds header + method + payload. */
long fpnn_parse(const uint8_t *buf, size_t len, size_t max_packet, fpnn_packet *out);

/* Parses only the header and the method of the packet at the start of buf,
 * whatever its size: out gets everything but the payload (payload NULL,
 * payload_len its size) and *total the packet's whole length. Returns the
 * bytes of header and method, FPNN_PARSE_MORE, or FPNN_PARSE_BAD. For a
 * receiver that answers a packet too large to hold and skips its bytes. */
long fpnn_parse_head(const uint8_t *buf, size_t len, fpnn_packet *out, uint64_t *total);

/* Size of the encoded packet for the given parts. */
size_t fpnn_encoded_size(uint8_t mtype, size_t method_len, size_t payload_len);

/* Writes a packet into out (fpnn_encoded_size bytes). For quests ss is the
 * method length; for answers, status is the answer status. Returns bytes written. */
size_t fpnn_encode(uint8_t *out, uint8_t flag, uint8_t mtype, uint8_t status, uint32_t seq,
                   const char *method, size_t method_len, const uint8_t *payload, size_t payload_len);

/* Rewrites the seq of an encoded twoway quest or answer (fan-out patching). */
void fpnn_patch_seq(uint8_t *packet, uint32_t seq);

#ifdef __cplusplus
}
#endif
#endif
