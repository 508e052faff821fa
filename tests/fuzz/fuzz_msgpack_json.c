/* libFuzzer target for the msgpack -> JSON answer conversion
 * (rtm_msgpack_to_json), which every answer to a JSON quest goes through.
 * Arbitrary bytes are converted; a result must be valid UTF-8 and valid
 * JSON that converts back to msgpack. The error answer that replaces an
 * answer with no JSON form must always convert, whatever bytes the method
 * name holds: the first up to 255 bytes of the input serve as one. */
#include "payload.h"
#include "rtm/fpnn.h"
#include "utf8.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void check_json(const char *text, size_t len)
{
    if (!text)
        return;
    if (strlen(text) != len || !rtm_utf8_valid(text, len))
        __builtin_trap();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (rtm_json_to_msgpack(text, len, &sb) != 0)
        __builtin_trap(); /* what we write, we must read */
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = 0;
    char *json = rtm_msgpack_to_json(data, size, &len);
    check_json(json, len);
    free(json);

    char method[FPNN_MAX_METHOD + 1];
    size_t n = size < FPNN_MAX_METHOD ? size : FPNN_MAX_METHOD;
    memcpy(method, data, n);
    method[n] = '\0';
    msgpack_sbuffer err;
    msgpack_sbuffer_init(&err);
    rtm_pack_error(&err, FPNN_EC_CORE_ENCODING, "answer cannot be expressed in JSON", method);
    json = rtm_msgpack_to_json((const uint8_t *)err.data, err.size, &len);
    if (!json)
        __builtin_trap();
    check_json(json, len);
    free(json);
    msgpack_sbuffer_destroy(&err);
    return 0;
}
