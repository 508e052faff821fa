/* FPNN packet framing (see include/rtm/fpnn.h): validation of headers from
 * untrusted peers and encoding of outgoing packets. */
#include "rtm/fpnn.h"

#include <string.h>

static uint32_t read_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void write_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Checks the fixed header at buf (magic, version, flag, type, method
 * length) and gives the packet's total length. Returns 1, FPNN_PARSE_MORE
 * or FPNN_PARSE_BAD. */
static long check_header(const uint8_t *buf, size_t len, uint64_t *total)
{
    /* Reject a wrong magic as soon as the bytes that exist disagree with it,
     * so that garbage is refused without waiting for a full header. */
    size_t check = len < 4 ? len : 4;
    if (memcmp(buf, FPNN_MAGIC, check) != 0)
        return FPNN_PARSE_BAD;
    if (len >= 5 && buf[4] != FPNN_VERSION)
        return FPNN_PARSE_BAD;
    if (len >= 6 && buf[5] != FPNN_FLAG_JSON && buf[5] != FPNN_FLAG_MSGPACK)
        return FPNN_PARSE_BAD;
    if (len >= 7 && buf[6] > FPNN_MT_ANSWER)
        return FPNN_PARSE_BAD;
    if (len < FPNN_ONEWAY_HEADER)
        return FPNN_PARSE_MORE;
    uint8_t mtype = buf[6], ss = buf[7];
    if (mtype != FPNN_MT_ANSWER && ss == 0)
        return FPNN_PARSE_BAD;
    size_t header = mtype == FPNN_MT_ONEWAY ? FPNN_ONEWAY_HEADER : FPNN_TWOWAY_HEADER;
    *total = (uint64_t)header + (mtype == FPNN_MT_ANSWER ? 0 : ss) + read_le32(buf + 8);
    return 1;
}

/* Fills out from a checked header; the payload's bytes may not be there. */
static size_t fill_packet(const uint8_t *buf, fpnn_packet *out)
{
    uint8_t mtype = buf[6], ss = buf[7];
    size_t header = mtype == FPNN_MT_ONEWAY ? FPNN_ONEWAY_HEADER : FPNN_TWOWAY_HEADER;
    size_t method_len = mtype == FPNN_MT_ANSWER ? 0 : ss;
    out->version = buf[4];
    out->flag = buf[5];
    out->mtype = mtype;
    out->status = mtype == FPNN_MT_ANSWER ? ss : 0;
    out->seq = mtype == FPNN_MT_ONEWAY ? 0 : read_le32(buf + 12);
    out->method = method_len ? (const char *)buf + header : NULL;
    out->method_len = method_len;
    out->payload = buf + header + method_len;
    out->payload_len = read_le32(buf + 8);
    return header + method_len;
}

long fpnn_parse(const uint8_t *buf, size_t len, size_t max_packet, fpnn_packet *out)
{
    uint64_t total = 0;
    long r = check_header(buf, len, &total);
    if (r != 1)
        return r;
    if (total > max_packet)
        return FPNN_PARSE_TOO_LARGE;
    if (len < total)
        return FPNN_PARSE_MORE;
    fill_packet(buf, out);
    return (long)total;
}

long fpnn_parse_head(const uint8_t *buf, size_t len, fpnn_packet *out, uint64_t *total)
{
    long r = check_header(buf, len, total);
    if (r != 1)
        return r;
    size_t head = (buf[6] == FPNN_MT_ONEWAY ? FPNN_ONEWAY_HEADER : FPNN_TWOWAY_HEADER) +
                  (buf[6] == FPNN_MT_ANSWER ? 0 : buf[7]);
    if (len < head)
        return FPNN_PARSE_MORE;
    fill_packet(buf, out);
    out->payload = NULL; /* not read */
    return (long)head;
}

size_t fpnn_encoded_size(uint8_t mtype, size_t method_len, size_t payload_len)
{
    if (mtype == FPNN_MT_ONEWAY)
        return FPNN_ONEWAY_HEADER + method_len + payload_len;
    if (mtype == FPNN_MT_TWOWAY)
        return FPNN_TWOWAY_HEADER + method_len + payload_len;
    return FPNN_TWOWAY_HEADER + payload_len;
}

size_t fpnn_encode(uint8_t *out, uint8_t flag, uint8_t mtype, uint8_t status, uint32_t seq,
                   const char *method, size_t method_len, const uint8_t *payload, size_t payload_len)
{
    if (mtype == FPNN_MT_ANSWER)
        method_len = 0;
    memcpy(out, FPNN_MAGIC, 4);
    out[4] = FPNN_VERSION;
    out[5] = flag;
    out[6] = mtype;
    out[7] = mtype == FPNN_MT_ANSWER ? status : (uint8_t)method_len;
    write_le32(out + 8, (uint32_t)payload_len);
    size_t pos = FPNN_ONEWAY_HEADER;
    if (mtype != FPNN_MT_ONEWAY) {
        write_le32(out + 12, seq);
        pos = FPNN_TWOWAY_HEADER;
    }
    if (method_len) {
        memcpy(out + pos, method, method_len);
        pos += method_len;
    }
    if (payload_len) {
        memcpy(out + pos, payload, payload_len);
        pos += payload_len;
    }
    return pos;
}

void fpnn_patch_seq(uint8_t *packet, uint32_t seq)
{
    write_le32(packet + 12, seq);
}
