/* libFuzzer target for the FPNN decoder: packet framing of a byte stream
 * followed by payload decoding (msgpack or JSON) and JSON conversion, as
 * rtmd does for every packet from a peer, and the in-place key lookup that
 * rtm-bench uses on pushes. */
#include "payload.h"
#include "rtm/fpnn.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        fpnn_packet p;
        long r = fpnn_parse(data + pos, size - pos, 1 << 20, &p);
        if (r <= 0)
            break;
        const uint8_t *v, *body;
        size_t vlen, blen;
        if (rtm_msgpack_map_find(p.payload, p.payload_len, "msg", &v, &vlen) == 0)
            rtm_msgpack_bytes(v, vlen, &body, &blen);
        msgpack_unpacked u;
        if (rtm_payload_decode(p.flag, p.payload, p.payload_len, &u) == 0) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_object(&pk, u.data);
            free(rtm_msgpack_to_json((const uint8_t *)sb.data, sb.size, NULL));
            msgpack_sbuffer_destroy(&sb);
            msgpack_unpacked_destroy(&u);
        }
        pos += (size_t)r;
    }
    return 0;
}
