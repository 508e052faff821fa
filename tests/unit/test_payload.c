/* Unit tests of payload handling (src/core/payload.h): every msgpack
 * integer width read exactly, nil, bin versus str, nested maps, JSON to
 * msgpack and back with 64-bit integers intact, and malformed bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "payload.h"
#include "rtm/fpnn.h"

/* Decodes a one-entry map {"v": <value bytes>} built by hand in buf, which
 * must outlive u. */
static void decode_value(uint8_t buf[32], const uint8_t *value, size_t n, msgpack_unpacked *u)
{
    buf[0] = 0x81;
    buf[1] = 0xa1;
    buf[2] = 'v';
    memcpy(buf + 3, value, n);
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, buf, 3 + n, u), 0);
}

static int64_t int_of(const uint8_t *value, size_t n)
{
    uint8_t buf[32];
    msgpack_unpacked u;
    decode_value(buf, value, n, &u);
    int64_t v = 0;
    assert_true(mp_get_int64(&u.data, "v", &v));
    msgpack_unpacked_destroy(&u);
    return v;
}

static void every_integer_width(void **state)
{
    assert_int_equal(int_of((const uint8_t[]){0x00}, 1), 0);
    assert_int_equal(int_of((const uint8_t[]){0x7f}, 1), 127);                           /* positive fixint */
    assert_int_equal(int_of((const uint8_t[]){0xcc, 0xff}, 2), 255);                     /* uint8 */
    assert_int_equal(int_of((const uint8_t[]){0xcd, 0xff, 0xff}, 3), 65535);             /* uint16 */
    assert_int_equal(int_of((const uint8_t[]){0xce, 0xff, 0xff, 0xff, 0xff}, 5), 4294967295LL); /* uint32 */
    assert_int_equal(int_of((const uint8_t[]){0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 0x01}, 9),
                     9007199254740993LL);                                                  /* uint64, 2^53+1 */
    assert_int_equal(int_of((const uint8_t[]){0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9),
                     INT64_MAX);
    assert_int_equal(int_of((const uint8_t[]){0xff}, 1), -1);                            /* negative fixint */
    assert_int_equal(int_of((const uint8_t[]){0xe0}, 1), -32);
    assert_int_equal(int_of((const uint8_t[]){0xd0, 0x80}, 2), -128);                    /* int8 */
    assert_int_equal(int_of((const uint8_t[]){0xd1, 0x80, 0x00}, 3), -32768);            /* int16 */
    assert_int_equal(int_of((const uint8_t[]){0xd2, 0x80, 0, 0, 0}, 5), INT32_MIN);      /* int32 */
    assert_int_equal(int_of((const uint8_t[]){0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9), INT64_MIN); /* int64 */
    /* Positive values sent in signed forms, as JS SDKs send Int64. */
    assert_int_equal(int_of((const uint8_t[]){0xd3, 0, 0x20, 0, 0, 0, 0, 0, 0x01}, 9), 9007199254740993LL);
    assert_int_equal(int_of((const uint8_t[]){0xd0, 0x05}, 2), 5);
}

static void uint64_above_int64_is_refused_as_int64(void **state)
{
    uint8_t buf[32];
    msgpack_unpacked u;
    decode_value(buf, (const uint8_t[]){0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, &u);
    int64_t i;
    uint64_t v;
    assert_false(mp_get_int64(&u.data, "v", &i));
    assert_true(mp_get_uint64(&u.data, "v", &v));
    assert_true(v == UINT64_MAX);
    msgpack_unpacked_destroy(&u);
}

static void nil_bool_str_bin(void **state)
{
    /* {"n": nil, "b": true, "s": "hi", "x": bin(2)} */
    const uint8_t buf[] = {0x84, 0xa1, 'n', 0xc0, 0xa1, 'b', 0xc3, 0xa1, 's', 0xa2, 'h', 'i',
                           0xa1, 'x', 0xc4, 0x02, 0x00, 0xff};
    msgpack_unpacked u;
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, buf, sizeof buf, &u), 0);
    const msgpack_object *n = mp_map_get(&u.data, "n");
    assert_non_null(n);
    assert_int_equal(n->type, MSGPACK_OBJECT_NIL);
    int64_t i;
    assert_false(mp_get_int64(&u.data, "n", &i));
    bool b = false;
    assert_true(mp_get_bool(&u.data, "b", &b));
    assert_true(b);
    assert_int_equal(mp_map_get(&u.data, "s")->type, MSGPACK_OBJECT_STR);
    assert_int_equal(mp_map_get(&u.data, "x")->type, MSGPACK_OBJECT_BIN);
    const char *s;
    size_t len;
    assert_true(mp_get_str(&u.data, "x", &s, &len));
    assert_int_equal(len, 2);
    assert_int_equal((uint8_t)s[1], 0xff);
    assert_null(mp_map_get(&u.data, "missing"));
    /* Re-encoding keeps bin as bin and str as str. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, u.data);
    assert_int_equal(sb.size, sizeof buf);
    assert_memory_equal(sb.data, buf, sizeof buf);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
}

static void nested_maps(void **state)
{
    /* {"a": {"b": [1, {"c": -5}]}} */
    const uint8_t buf[] = {0x81, 0xa1, 'a', 0x81, 0xa1, 'b', 0x92, 0x01, 0x81, 0xa1, 'c', 0xfb};
    msgpack_unpacked u;
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, buf, sizeof buf, &u), 0);
    const msgpack_object *a = mp_map_get(&u.data, "a");
    const msgpack_object *b = mp_map_get(a, "b");
    assert_int_equal(b->type, MSGPACK_OBJECT_ARRAY);
    int64_t c;
    assert_true(mp_get_int64(&b->via.array.ptr[1], "c", &c));
    assert_int_equal(c, -5);
    size_t jlen;
    char *json = rtm_msgpack_to_json(buf, sizeof buf, &jlen);
    assert_string_equal(json, "{\"a\":{\"b\":[1,{\"c\":-5}]}}");
    free(json);
    msgpack_unpacked_destroy(&u);
}

static void json_round_trip_keeps_int64(void **state)
{
    const char *text = "{\"big\":9223372036854775807,\"min\":-9223372036854775808,\"f\":1.5,\"s\":\"x\",\"z\":null}";
    msgpack_unpacked u;
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_JSON, (const uint8_t *)text, strlen(text), &u), 0);
    int64_t big, min;
    assert_true(mp_get_int64(&u.data, "big", &big));
    assert_true(mp_get_int64(&u.data, "min", &min));
    assert_true(big == INT64_MAX);
    assert_true(min == INT64_MIN);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, u.data);
    char *back = rtm_msgpack_to_json((const uint8_t *)sb.data, sb.size, NULL);
    assert_non_null(strstr(back, "\"big\":9223372036854775807"));
    assert_non_null(strstr(back, "\"min\":-9223372036854775808"));
    free(back);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
}

static void malformed_bodies(void **state)
{
    msgpack_unpacked u;
    /* empty body is an empty map */
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, NULL, 0, &u), 0);
    assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(u.data.via.map.size, 0);
    msgpack_unpacked_destroy(&u);
    /* not a map */
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, (const uint8_t *)"\x91\x01", 2, &u), -1);
    /* truncated */
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, (const uint8_t *)"\x81\xa1v\xcd\x01", 5, &u), -1);
    /* trailing bytes */
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, (const uint8_t *)"\x80\x80", 2, &u), -1);
    /* containers announcing more elements than there are bytes */
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, (const uint8_t *)"\xdf\xff\xff\xff\xff", 5, &u), -1);
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, (const uint8_t *)"\x81\xa1v\xdd\x10\0\0\0", 8, &u), -1);
    assert_int_equal(rtm_msgpack_check((const uint8_t *)"\x92\x01\x02", 3), 0);
    assert_int_equal(rtm_msgpack_check((const uint8_t *)"\x92\x01", 2), -1);
    assert_int_equal(rtm_msgpack_check((const uint8_t *)"\xc4\x03" "ab", 4), -1);
    assert_int_equal(rtm_msgpack_check((const uint8_t *)"\xc1", 1), -1);
    /* bad JSON, and JSON that is not an object */
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_JSON, (const uint8_t *)"{\"a\":", 5, &u), -1);
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_JSON, (const uint8_t *)"[1]", 3, &u), -1);
}

static void error_body(void **state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rtm_pack_error(&sb, 20004, "unknown method", "nope");
    msgpack_unpacked u;
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, (const uint8_t *)sb.data, sb.size, &u), 0);
    int64_t code;
    assert_true(mp_get_int64(&u.data, "code", &code));
    assert_int_equal(code, 20004);
    const char *ex;
    size_t len;
    assert_true(mp_get_str(&u.data, "ex", &ex, &len));
    assert_int_equal(len, strlen("unknown method"));
    assert_true(mp_get_str(&u.data, "raised", &ex, &len));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

static void find_without_decoding(void **state)
{
    /* {"from": 5, "list": [1, {"x": 2}], "msg": bin(3), "s": "hey"} */
    const uint8_t buf[] = {0x84, 0xa4, 'f', 'r', 'o', 'm', 0x05, 0xa4, 'l', 'i', 's', 't', 0x92, 0x01, 0x81, 0xa1, 'x',
                           0x02, 0xa3, 'm', 's', 'g', 0xc4, 0x03, 0xaa, 0xbb, 0xcc, 0xa1, 's', 0xa3, 'h', 'e', 'y'};
    assert_int_equal(rtm_msgpack_skip(buf, sizeof buf), sizeof buf);
    assert_int_equal(rtm_msgpack_skip(buf, sizeof buf - 1), 0);
    const uint8_t *v, *body;
    size_t vlen, blen;
    assert_int_equal(rtm_msgpack_map_find(buf, sizeof buf, "msg", &v, &vlen), 0);
    assert_int_equal(vlen, 5);
    assert_int_equal(rtm_msgpack_bytes(v, vlen, &body, &blen), 0);
    assert_int_equal(blen, 3);
    assert_int_equal(body[2], 0xcc);
    assert_int_equal(rtm_msgpack_map_find(buf, sizeof buf, "s", &v, &vlen), 0);
    assert_int_equal(rtm_msgpack_bytes(v, vlen, &body, &blen), 0);
    assert_memory_equal(body, "hey", 3);
    assert_int_equal(rtm_msgpack_map_find(buf, sizeof buf, "from", &v, &vlen), 0);
    assert_int_equal(rtm_msgpack_bytes(v, vlen, &body, &blen), -1); /* an integer */
    assert_int_equal(rtm_msgpack_map_find(buf, sizeof buf, "x", &v, &vlen), -1); /* only top-level keys */
    assert_int_equal(rtm_msgpack_map_find(buf, sizeof buf, "nope", &v, &vlen), -1);
    assert_int_equal(rtm_msgpack_map_find(buf, 20, "msg", &v, &vlen), -1); /* truncated */
    assert_int_equal(rtm_msgpack_map_find((const uint8_t *)"\x91\x01", 2, "msg", &v, &vlen), -1);
}

/* msgpack bytes -> JSON text (NULL when there is no JSON form). */
static char *to_json(const uint8_t *mp, size_t n)
{
    return rtm_msgpack_to_json(mp, n, NULL);
}

static void json_of_byte_strings(void **state)
{
    char *j;
    /* {"s": str "hé", "b": bin "ok"}: UTF-8 text is a string whatever its type */
    const uint8_t text[] = {0x82, 0xa1, 's', 0xa3, 'h', 0xc3, 0xa9, 0xa1, 'b', 0xc4, 0x02, 'o', 'k'};
    j = to_json(text, sizeof text);
    assert_string_equal(j, "{\"s\":\"h\xc3\xa9\",\"b\":\"ok\"}");
    free(j);
    /* NUL inside text is text */
    const uint8_t nul[] = {0x81, 0xa1, 'z', 0xa3, 'a', 0x00, 'b'};
    j = to_json(nul, sizeof nul);
    assert_string_equal(j, "{\"z\":\"a\\u0000b\"}");
    free(j);
    /* bin and str that are not UTF-8: base64 objects, losslessly */
    const uint8_t bytes[] = {0x82, 0xa1, 'b', 0xc4, 0x04, 0xff, 0x00, 0xfe, 0x80, 0xa1, 's', 0xa2, 'a', 0xc3};
    j = to_json(bytes, sizeof bytes);
    assert_string_equal(j, "{\"b\":{\"$base64\":\"/wD+gA==\"},\"s\":{\"$base64\":\"YcM=\"}}");
    free(j);
    /* an empty bin is an empty string; bytes in an array too */
    const uint8_t arr[] = {0x92, 0xc4, 0x00, 0xc4, 0x01, 0xed};
    j = to_json(arr, sizeof arr);
    assert_string_equal(j, "[\"\",{\"$base64\":\"7Q==\"}]");
    free(j);
}

static void json_keys_and_what_has_no_json_form(void **state)
{
    char *j;
    /* integer keys become decimal names */
    const uint8_t ints[] = {0x82, 0x07, 0xc3, 0xff, 0xc2};
    j = to_json(ints, sizeof ints);
    assert_string_equal(j, "{\"7\":true,\"-1\":false}");
    free(j);
    const uint8_t bad_key[] = {0x81, 0xa2, 'k', 0xff, 0x01};      /* key not UTF-8 */
    const uint8_t nul_key[] = {0x81, 0xa2, 'k', 0x00, 0x01};      /* key with NUL */
    const uint8_t nil_key[] = {0x81, 0xc0, 0x01};                 /* key of another type */
    const uint8_t ext[] = {0x81, 0xa1, 'e', 0xd4, 0x01, 0x00};    /* fixext 1 */
    const uint8_t huge[] = {0x91, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}; /* 2^63 */
    const uint8_t nan[] = {0x91, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    const uint8_t truncated[] = {0x82, 0xa1, 'a'};
    assert_null(to_json(bad_key, sizeof bad_key));
    assert_null(to_json(nul_key, sizeof nul_key));
    assert_null(to_json(nil_key, sizeof nil_key));
    assert_null(to_json(ext, sizeof ext));
    assert_null(to_json(huge, sizeof huge));
    assert_null(to_json(nan, sizeof nan));
    assert_null(to_json(truncated, sizeof truncated));
    /* nesting deeper than 64 */
    uint8_t deep[80];
    memset(deep, 0x91, sizeof deep);
    deep[sizeof deep - 1] = 0x01;
    assert_null(to_json(deep, sizeof deep));
}

static void json_strings_with_nul_decode(void **state)
{
    const char *text = "{\"m\":\"a\\u0000b\"}";
    msgpack_unpacked u;
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_JSON, (const uint8_t *)text, strlen(text), &u), 0);
    const char *m;
    size_t n;
    assert_true(mp_get_str(&u.data, "m", &m, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(m, "a\0b", 3);
    msgpack_unpacked_destroy(&u);
    /* not JSON, or JSON that is not an object: refused */
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_JSON, (const uint8_t *)"{\"a\":", 5, &u), -1);
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_JSON, (const uint8_t *)"[1]", 3, &u), -1);
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_JSON, (const uint8_t *)"{\"\\u0000\":1}", 12, &u), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_integer_width),
        cmocka_unit_test(uint64_above_int64_is_refused_as_int64),
        cmocka_unit_test(nil_bool_str_bin),
        cmocka_unit_test(nested_maps),
        cmocka_unit_test(json_round_trip_keeps_int64),
        cmocka_unit_test(malformed_bodies),
        cmocka_unit_test(error_body),
        cmocka_unit_test(find_without_decoding),
        cmocka_unit_test(json_of_byte_strings),
        cmocka_unit_test(json_keys_and_what_has_no_json_form),
        cmocka_unit_test(json_strings_with_nul_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
