/* librtm helpers that need no connection (API in include/rtm/client.h):
 * JSON <-> msgpack payload conversion on top of the shared core, loading of
 * the server's public key from PEM, the SDK log level and the version. */
#include "rtm/client.h"

#include "fpnn_crypto.h"
#include "log.h"
#include "payload.h"

#include <msgpack.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef RTM_VERSION
#error "RTM_VERSION is defined by the build"
#endif

/* True when the msgpack document starts with a map header. */
static bool starts_with_map(const uint8_t *p, size_t len)
{
    return len > 0 && ((p[0] & 0xf0) == 0x80 || p[0] == 0xde || p[0] == 0xdf);
}

int rtm_payload_from_json(const char *json, size_t len, uint8_t **out, size_t *out_len)
{
    if (!json || !out || !out_len)
        return -1;
    *out = NULL;
    *out_len = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (rtm_json_to_msgpack(json, len, &sb) != 0 || !starts_with_map((const uint8_t *)sb.data, sb.size)) {
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    /* The sbuffer's storage is malloc'd: hand it over as is. */
    *out_len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}

char *rtm_payload_to_json(const void *msgpack, size_t len)
{
    if (!msgpack || len == 0)
        return NULL;
    return rtm_msgpack_to_json(msgpack, len, NULL);
}

void rtm_free(void *p)
{
    free(p);
}

int rtm_load_public_key(const char *pem_path, uint8_t out[RTM_PUBKEY_LEN], char *err, size_t errlen)
{
    char buf[256];
    if (!pem_path || !out) {
        if (err && errlen)
            snprintf(err, errlen, "no key file given");
        return -1;
    }
    int rc = fpnn_crypto_load_public_key(pem_path, out, buf, sizeof buf);
    if (err && errlen)
        snprintf(err, errlen, "%s", rc == 0 ? "" : buf);
    return rc;
}

int rtm_set_log_level(const char *name)
{
    int level = name ? rtm_log_parse_level(name) : -1;
    if (level < 0)
        return -1;
    rtm_log_set_level((enum rtm_log_level)level);
    return 0;
}

const char *rtm_version(void)
{
    return RTM_VERSION;
}
