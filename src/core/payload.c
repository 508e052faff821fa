/* FPNN payload decoding, JSON <-> msgpack conversion and typed field access
 * (see payload.h). JSON conversion goes through jansson, whose integers are
 * 64-bit, so ids survive both directions exactly; byte strings that are not
 * UTF-8 text cross into JSON as base64 objects (rule in payload.h). */
#include "payload.h"

#include "rtm/fpnn.h"
#include "utf8.h"

#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

static int pack_json(msgpack_packer *pk, const json_t *v, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        msgpack_pack_map(pk, json_object_size(v));
        json_object_foreach((json_t *)v, key, val) {
            mp_pack_cstr(pk, key);
            if (pack_json(pk, val, depth + 1) != 0)
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, val) {
            if (pack_json(pk, val, depth + 1) != 0)
                return -1;
        }
        return 0;
    }
    case JSON_STRING:
        return msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(v));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v));
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    }
    return -1;
}

int rtm_json_to_msgpack(const char *json, size_t len, msgpack_sbuffer *out)
{
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!root)
        return -1;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    int rc = pack_json(&pk, root, 0);
    json_decref(root);
    return rc;
}

/* A byte string (msgpack str or bin) as JSON: a string when the bytes are
 * valid UTF-8, else {"$base64": "<RFC 4648 base64 of the bytes>"}. */
static json_t *bytes_to_json(const char *p, size_t n)
{
    if (rtm_utf8_valid(p, n))
        return json_stringn_nocheck(n ? p : "", n);
    if (n > (size_t)INT_MAX / 4 * 3)
        return NULL;
    size_t b64len = 4 * ((n + 2) / 3);
    char *b64 = malloc(b64len + 1);
    if (!b64)
        return NULL;
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)p, (int)n);
    json_t *s = json_stringn_nocheck(b64, b64len);
    free(b64);
    json_t *o = s ? json_object() : NULL;
    if (!o || json_object_set_new_nocheck(o, RTM_JSON_BYTES_KEY, s) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Writes the JSON name of a map key into buf (or a malloc'd *heap when
 * longer); returns it, or NULL when the key has no JSON name: only text
 * keys (valid UTF-8 without NUL) and integers have one. */
static const char *json_key(const msgpack_object *k, char buf[64], char **heap)
{
    *heap = NULL;
    if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(buf, 64, "%llu", (unsigned long long)k->via.u64);
        return buf;
    }
    if (k->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        snprintf(buf, 64, "%lld", (long long)k->via.i64);
        return buf;
    }
    if (k->type != MSGPACK_OBJECT_STR && k->type != MSGPACK_OBJECT_BIN)
        return NULL;
    size_t n = k->via.str.size;
    if ((n && memchr(k->via.str.ptr, '\0', n)) || !rtm_utf8_valid(k->via.str.ptr, n))
        return NULL;
    char *key = buf;
    if (n >= 64 && !(key = *heap = malloc(n + 1)))
        return NULL;
    if (n)
        memcpy(key, k->via.str.ptr, n);
    key[n] = '\0';
    return key;
}

static json_t *object_to_json(const msgpack_object *o, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        /* jansson's integers are int64: a larger one would change value. */
        return o->via.u64 <= (uint64_t)INT64_MAX ? json_integer((json_int_t)o->via.u64) : NULL;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64); /* NULL for NaN and infinities */
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: /* str and bin share the layout of via.str */
        return bytes_to_json(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_EXT:
        return NULL;
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            json_t *e = object_to_json(&o->via.array.ptr[i], depth + 1);
            if (!e || json_array_append_new(a, e) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            char keybuf[64], *heap;
            const char *key = json_key(&kv->key, keybuf, &heap);
            json_t *e = key ? object_to_json(&kv->val, depth + 1) : NULL;
            int rc = e ? json_object_set_new_nocheck(m, key, e) : -1;
            free(heap);
            if (rc != 0) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    }
    return NULL;
}

char *rtm_msgpack_to_json(const uint8_t *data, size_t len, size_t *out_len)
{
    if (rtm_msgpack_check(data, len) != 0)
        return NULL;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    char *text = NULL;
    if (msgpack_unpack_next(&u, (const char *)data, len, &off) == MSGPACK_UNPACK_SUCCESS) {
        json_t *j = object_to_json(&u.data, 0);
        if (j) {
            text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
            json_decref(j);
        }
    }
    msgpack_unpacked_destroy(&u);
    if (text && out_len)
        *out_len = strlen(text);
    return text;
}

static uint64_t read_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Walks one msgpack object at p without allocating and returns its length,
 * or 0 when it is malformed or truncated, or when a container announces
 * more elements than bytes remain. msgpack-c sizes its allocations from
 * those announcements, so an unchecked five-byte header could make it ask
 * for gigabytes. */
size_t rtm_msgpack_skip(const uint8_t *p, size_t len)
{
    size_t pos = 0;
    uint64_t pending = 1; /* objects still to read; never above the bytes left */
    while (pending > 0) {
        if (pos >= len)
            return 0;
        uint8_t b = p[pos++];
        pending--;
        uint64_t count = 0; /* elements of a container */
        uint64_t skip = 0;  /* bytes of a scalar's body */
        size_t lenbytes = 0;
        bool container = false, map = false;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b <= 0x8f) {
            container = map = true;
            count = b & 0x0f;
        } else if (b <= 0x9f) {
            container = true;
            count = b & 0x0f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: lenbytes = 1; break;           /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;           /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; break;           /* bin32, str32 */
            case 0xc7: lenbytes = 1; skip = 1; break;            /* ext8 (+type) */
            case 0xc8: lenbytes = 2; skip = 1; break;            /* ext16 */
            case 0xc9: lenbytes = 4; skip = 1; break;            /* ext32 */
            case 0xca: skip = 4; break;                          /* float32 */
            case 0xcb: skip = 8; break;                          /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                          /* fixext 1..16 (+type) */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: container = true; lenbytes = 2; break;    /* array16 */
            case 0xdd: container = true; lenbytes = 4; break;    /* array32 */
            case 0xde: container = map = true; lenbytes = 2; break; /* map16 */
            case 0xdf: container = map = true; lenbytes = 4; break; /* map32 */
            default: return 0;                                   /* 0xc1: never used */
            }
            if (lenbytes) {
                if (len - pos < lenbytes)
                    return 0;
                uint64_t n = read_be(p + pos, lenbytes);
                pos += lenbytes;
                if (container)
                    count = n;
                else
                    skip += n;
            }
        }
        if (container) {
            if (map)
                count *= 2;
            if (count > len - pos || pending + count > len - pos)
                return 0;
            pending += count;
        } else {
            if (skip > len - pos)
                return 0;
            pos += (size_t)skip;
        }
    }
    return pos;
}

int rtm_msgpack_check(const uint8_t *p, size_t len)
{
    return len > 0 && rtm_msgpack_skip(p, len) == len ? 0 : -1;
}

/* Reads a str or bin header at p; returns the header length or 0. */
static size_t str_header(const uint8_t *p, size_t len, size_t *body)
{
    if (len == 0)
        return 0;
    uint8_t b = p[0];
    size_t lenbytes;
    if (b >= 0xa0 && b <= 0xbf) {
        *body = b & 0x1f;
        return 1;
    }
    if (b == 0xc4 || b == 0xd9)
        lenbytes = 1;
    else if (b == 0xc5 || b == 0xda)
        lenbytes = 2;
    else if (b == 0xc6 || b == 0xdb)
        lenbytes = 4;
    else
        return 0;
    if (len < 1 + lenbytes)
        return 0;
    *body = (size_t)read_be(p + 1, lenbytes);
    return 1 + lenbytes;
}

int rtm_msgpack_map_find(const uint8_t *p, size_t len, const char *key, const uint8_t **value, size_t *value_len)
{
    size_t pos, n;
    if (len == 0)
        return -1;
    if (p[0] >= 0x80 && p[0] <= 0x8f) {
        n = p[0] & 0x0f;
        pos = 1;
    } else if (p[0] == 0xde && len >= 3) {
        n = (size_t)read_be(p + 1, 2);
        pos = 3;
    } else if (p[0] == 0xdf && len >= 5) {
        n = (size_t)read_be(p + 1, 4);
        pos = 5;
    } else {
        return -1;
    }
    size_t klen = strlen(key);
    for (size_t i = 0; i < n; i++) {
        size_t body = 0, h = str_header(p + pos, len - pos, &body);
        bool match = h && body == klen && len - pos - h >= body && memcmp(p + pos + h, key, klen) == 0;
        size_t k = rtm_msgpack_skip(p + pos, len - pos);
        if (k == 0)
            return -1;
        pos += k;
        size_t v = rtm_msgpack_skip(p + pos, len - pos);
        if (v == 0)
            return -1;
        if (match) {
            *value = p + pos;
            *value_len = v;
            return 0;
        }
        pos += v;
    }
    return -1;
}

int rtm_msgpack_bytes(const uint8_t *p, size_t len, const uint8_t **body, size_t *body_len)
{
    size_t n = 0, h = str_header(p, len, &n);
    if (!h || len - h < n)
        return -1;
    *body = p + h;
    *body_len = n;
    return 0;
}

int rtm_payload_decode(uint8_t flag, const uint8_t *data, size_t len, msgpack_unpacked *out)
{
    msgpack_unpacked_init(out);
    static const uint8_t empty_map = 0x80;
    if (len == 0) {
        data = &empty_map;
        len = 1;
    }
    msgpack_sbuffer converted;
    msgpack_sbuffer_init(&converted);
    if (flag == FPNN_FLAG_JSON) {
        if (rtm_json_to_msgpack((const char *)data, len, &converted) != 0) {
            msgpack_sbuffer_destroy(&converted);
            return -1;
        }
        data = (const uint8_t *)converted.data;
        len = converted.size;
    }
    int rc = -1;
    /* Unpacked strings point into the bytes they were unpacked from, so the
     * body is copied into the zone that holds the objects: the result owns
     * it, a request may outlive the connection's read buffer, and one zone
     * sized after the body is usually one allocation instead of msgpack's
     * default 8 KiB chunk. */
    msgpack_zone *zone = NULL;
    if (rtm_msgpack_check(data, len) == 0 && (zone = msgpack_zone_new(2 * len + 256))) {
        char *copy = msgpack_zone_malloc_no_align(zone, len);
        size_t off = 0;
        msgpack_object obj;
        if (copy) {
            memcpy(copy, data, len);
            if (msgpack_unpack(copy, len, &off, zone, &obj) == MSGPACK_UNPACK_SUCCESS && off == len &&
                obj.type == MSGPACK_OBJECT_MAP) {
                out->zone = zone;
                out->data = obj;
                zone = NULL;
                rc = 0;
            }
        }
    }
    if (zone)
        msgpack_zone_free(zone);
    msgpack_sbuffer_destroy(&converted);
    return rc;
}

const msgpack_object *mp_map_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if ((k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN) && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

bool mp_obj_int64(const msgpack_object *o, int64_t *out)
{
    if (!o)
        return false;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    return false;
}

bool mp_get_int64(const msgpack_object *map, const char *key, int64_t *out)
{
    return mp_obj_int64(mp_map_get(map, key), out);
}

bool mp_get_uint64(const msgpack_object *map, const char *key, uint64_t *out)
{
    const msgpack_object *o = mp_map_get(map, key);
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = o->via.u64;
    return true;
}

bool mp_get_bool(const msgpack_object *map, const char *key, bool *out)
{
    const msgpack_object *o = mp_map_get(map, key);
    if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *out = o->via.boolean;
    return true;
}

bool mp_obj_str(const msgpack_object *o, const char **s, size_t *len)
{
    if (o->type != MSGPACK_OBJECT_STR && o->type != MSGPACK_OBJECT_BIN)
        return false;
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return true;
}

bool mp_get_str(const msgpack_object *map, const char *key, const char **s, size_t *len)
{
    const msgpack_object *o = mp_map_get(map, key);
    return o && mp_obj_str(o, s, len);
}

void mp_pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

void mp_pack_kv_int(msgpack_packer *pk, const char *key, int64_t v)
{
    mp_pack_cstr(pk, key);
    msgpack_pack_int64(pk, v);
}

void mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *v)
{
    mp_pack_cstr(pk, key);
    mp_pack_cstr(pk, v);
}

void rtm_pack_error(msgpack_sbuffer *out, int64_t code, const char *ex, const char *raised)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_int(&pk, "code", code);
    mp_pack_kv_str(&pk, "ex", ex);
    mp_pack_kv_str(&pk, "raised", raised);
}
