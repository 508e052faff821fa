/* Encoding of pushes (see push.h). */
#include "push.h"

#include "rtm/fpnn.h"

#include <string.h>

int push_encode(rtm_buf *out, const char *method, const msgpack_sbuffer *body, bool twoway)
{
    uint8_t mtype = twoway ? FPNN_MT_TWOWAY : FPNN_MT_ONEWAY;
    size_t mlen = strlen(method);
    size_t size = fpnn_encoded_size(mtype, mlen, body->size);
    rtm_buf_reset(out);
    if (mlen == 0 || mlen > FPNN_MAX_METHOD || rtm_buf_reserve(out, size) != 0)
        return -1;
    out->len = fpnn_encode(out->data, FPNN_FLAG_MSGPACK, mtype, 0, 0, method, mlen, (const uint8_t *)body->data,
                           body->size);
    return 0;
}
