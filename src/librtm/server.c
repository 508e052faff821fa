/* librtm app-server helpers (API in include/rtm/client.h): the signature of
 * server-gate requests (upper-case hex md5 of "pid:secret:salt:method:ts"),
 * adding pid, salt, ts and sign to a msgpack payload, and blocking signed
 * calls built on rtm_call. */
#include "rtm/client.h"

#include <msgpack.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int rtm_server_sign(int64_t pid, const char *secret, int64_t salt, const char *method, int64_t ts, char sign[33])
{
    if (!secret || !method || !sign)
        return -1;
    size_t need = strlen(secret) + strlen(method) + 3 * 21 + 5;
    char *text = malloc(need);
    if (!text)
        return -1;
    int n = snprintf(text, need, "%lld:%s:%lld:%s:%lld", (long long)pid, secret, (long long)salt, method,
                     (long long)ts);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    int ok = n > 0 && (size_t)n < need && EVP_Digest(text, (size_t)n, digest, &dlen, EVP_md5(), NULL) == 1 &&
             dlen == 16;
    free(text);
    if (!ok)
        return -1;
    static const char hex[] = "0123456789ABCDEF";
    for (unsigned i = 0; i < 16; i++) {
        sign[2 * i] = hex[digest[i] >> 4];
        sign[2 * i + 1] = hex[digest[i] & 15];
    }
    sign[32] = '\0';
    return 0;
}

static bool is_signature_key(const msgpack_object *k)
{
    static const char *const keys[] = {"pid", "salt", "ts", "sign"};
    if (k->type != MSGPACK_OBJECT_STR)
        return false;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (k->via.str.size == strlen(keys[i]) && memcmp(k->via.str.ptr, keys[i], k->via.str.size) == 0)
            return true;
    return false;
}

static void pack_key(msgpack_packer *pk, const char *key)
{
    size_t n = strlen(key);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, key, n);
}

int rtm_server_sign_payload(int64_t pid, const char *secret, const char *method, const void *payload, size_t len,
                            uint8_t **out, size_t *out_len)
{
    if (!out || !out_len || !secret || !method)
        return -1;
    *out = NULL;
    *out_len = 0;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    uint32_t kept = 0;
    const msgpack_object *map = NULL;
    if (payload && len > 0) {
        size_t off = 0;
        if (msgpack_unpack_next(&u, payload, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
            u.data.type != MSGPACK_OBJECT_MAP) {
            msgpack_unpacked_destroy(&u);
            return -1;
        }
        map = &u.data;
        for (uint32_t i = 0; i < map->via.map.size; i++)
            if (!is_signature_key(&map->via.map.ptr[i].key))
                kept++;
    }
    int64_t salt = 0;
    if (RAND_bytes((unsigned char *)&salt, sizeof salt) != 1) {
        msgpack_unpacked_destroy(&u);
        return -1;
    }
    salt &= INT64_MAX; /* positive, as the server SDKs send it */
    if (salt == 0)
        salt = 1;
    int64_t ts = (int64_t)time(NULL);
    char sign[33];
    if (rtm_server_sign(pid, secret, salt, method, ts, sign) != 0) {
        msgpack_unpacked_destroy(&u);
        return -1;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, kept + 4);
    if (map)
        for (uint32_t i = 0; i < map->via.map.size; i++) {
            const msgpack_object_kv *kv = &map->via.map.ptr[i];
            if (is_signature_key(&kv->key))
                continue;
            msgpack_pack_object(&pk, kv->key);
            msgpack_pack_object(&pk, kv->val);
        }
    pack_key(&pk, "pid");
    msgpack_pack_int64(&pk, pid);
    pack_key(&pk, "salt");
    msgpack_pack_int64(&pk, salt);
    pack_key(&pk, "ts");
    msgpack_pack_int64(&pk, ts);
    pack_key(&pk, "sign");
    msgpack_pack_str(&pk, 32);
    msgpack_pack_str_body(&pk, sign, 32);
    msgpack_unpacked_destroy(&u);
    *out_len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    return *out ? 0 : -1;
}

static int64_t local_error(rtm_result *out, int64_t code, const char *ex)
{
    memset(out, 0, sizeof *out);
    out->code = code;
    out->local = true;
    out->ex = strdup(ex);
    return code;
}

int64_t rtm_server_call(rtm_client *c, int64_t pid, const char *secret, const char *method, const void *payload,
                        size_t len, unsigned timeout_ms, rtm_result *out)
{
    if (!out)
        return FPNN_EC_CORE_UNKNOWN_ERROR;
    if (!c || !secret || !method)
        return local_error(out, FPNN_EC_CORE_UNKNOWN_ERROR, "bad arguments");
    uint8_t *signed_payload = NULL;
    size_t signed_len = 0;
    if (rtm_server_sign_payload(pid, secret, method, payload, len, &signed_payload, &signed_len) != 0)
        return local_error(out, FPNN_EC_PROTO_JSON_CONVERT, "payload is not a msgpack map");
    int64_t code = rtm_call(c, method, signed_payload, signed_len, timeout_ms, out);
    free(signed_payload);
    return code;
}

int64_t rtm_server_call_json(rtm_client *c, int64_t pid, const char *secret, const char *method, const char *json,
                             unsigned timeout_ms, rtm_result *out)
{
    if (!out)
        return FPNN_EC_CORE_UNKNOWN_ERROR;
    uint8_t *payload = NULL;
    size_t len = 0;
    if (json && rtm_payload_from_json(json, strlen(json), &payload, &len) != 0)
        return local_error(out, FPNN_EC_PROTO_JSON_CONVERT, "payload is not a JSON object");
    int64_t code = rtm_server_call(c, pid, secret, method, payload, len, timeout_ms, out);
    rtm_free(payload);
    return code;
}
