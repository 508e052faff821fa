/* Unit tests of the FPNN packet codec (include/rtm/fpnn.h): header layouts
 * of the three packet types, partial input, limits and malformed headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rtm/fpnn.h"

static void twoway_quest_layout(void **state)
{
    uint8_t buf[64];
    const uint8_t payload[] = {0x80};
    size_t n = fpnn_encode(buf, FPNN_FLAG_MSGPACK, FPNN_MT_TWOWAY, 0, 0x01020304, "ping", 4, payload, 1);
    assert_int_equal(n, fpnn_encoded_size(FPNN_MT_TWOWAY, 4, 1));
    const uint8_t expected[] = {'F', 'P', 'N', 'N', 1, 0x80, 1, 4, 1, 0, 0, 0, 4, 3, 2, 1, 'p', 'i', 'n', 'g', 0x80};
    assert_int_equal(n, sizeof expected);
    assert_memory_equal(buf, expected, sizeof expected);

    fpnn_packet p;
    assert_int_equal(fpnn_parse(buf, n, 1024, &p), (long)n);
    assert_int_equal(p.mtype, FPNN_MT_TWOWAY);
    assert_int_equal(p.flag, FPNN_FLAG_MSGPACK);
    assert_int_equal(p.seq, 0x01020304);
    assert_int_equal(p.method_len, 4);
    assert_memory_equal(p.method, "ping", 4);
    assert_int_equal(p.payload_len, 1);
    assert_int_equal(p.payload[0], 0x80);
}

static void oneway_quest_has_no_seq(void **state)
{
    uint8_t buf[64];
    size_t n = fpnn_encode(buf, FPNN_FLAG_JSON, FPNN_MT_ONEWAY, 0, 99, "bye", 3, (const uint8_t *)"{}", 2);
    assert_int_equal(n, 12 + 3 + 2);
    assert_memory_equal(buf + 12, "bye{}", 5);
    fpnn_packet p;
    assert_int_equal(fpnn_parse(buf, n, 1024, &p), (long)n);
    assert_int_equal(p.mtype, FPNN_MT_ONEWAY);
    assert_int_equal(p.seq, 0);
    assert_memory_equal(p.method, "bye", 3);
    assert_memory_equal(p.payload, "{}", 2);
}

static void answer_carries_status(void **state)
{
    uint8_t buf[64];
    size_t n = fpnn_encode(buf, FPNN_FLAG_MSGPACK, FPNN_MT_ANSWER, 1, 7, "ignored", 7, (const uint8_t *)"\x80", 1);
    assert_int_equal(n, 17);
    fpnn_packet p;
    assert_int_equal(fpnn_parse(buf, n, 1024, &p), 17);
    assert_int_equal(p.mtype, FPNN_MT_ANSWER);
    assert_int_equal(p.status, 1);
    assert_int_equal(p.seq, 7);
    assert_null(p.method);
    fpnn_patch_seq(buf, 0xfffffffe);
    assert_int_equal(fpnn_parse(buf, n, 1024, &p), 17);
    assert_int_equal(p.seq, 0xfffffffe);
}

static void partial_input_needs_more(void **state)
{
    uint8_t buf[64];
    size_t n = fpnn_encode(buf, FPNN_FLAG_MSGPACK, FPNN_MT_TWOWAY, 0, 1, "ping", 4, (const uint8_t *)"\x80", 1);
    fpnn_packet p;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fpnn_parse(buf, i, 1024, &p), FPNN_PARSE_MORE);
    assert_int_equal(fpnn_parse(buf, n, 1024, &p), (long)n);
}

static void garbage_is_refused_early(void **state)
{
    fpnn_packet p;
    assert_int_equal(fpnn_parse((const uint8_t *)"G", 1, 1024, &p), FPNN_PARSE_BAD);
    assert_int_equal(fpnn_parse((const uint8_t *)"GARBAGE!GARBAGE!", 16, 1024, &p), FPNN_PARSE_BAD);
    uint8_t buf[64];
    size_t n = fpnn_encode(buf, FPNN_FLAG_MSGPACK, FPNN_MT_TWOWAY, 0, 1, "ping", 4, (const uint8_t *)"\x80", 1);
    buf[4] = 2; /* version */
    assert_int_equal(fpnn_parse(buf, n, 1024, &p), FPNN_PARSE_BAD);
    buf[4] = 0; /* version 0 is not FPNN 1 either */
    assert_int_equal(fpnn_parse(buf, n, 1024, &p), FPNN_PARSE_BAD);
    assert_int_equal(fpnn_parse(buf, 5, 1024, &p), FPNN_PARSE_BAD); /* refused from its fifth byte */
    buf[4] = 1;
    buf[5] = 0x20; /* flag */
    assert_int_equal(fpnn_parse(buf, n, 1024, &p), FPNN_PARSE_BAD);
    buf[5] = 0x80;
    buf[6] = 3; /* mtype */
    assert_int_equal(fpnn_parse(buf, n, 1024, &p), FPNN_PARSE_BAD);
    buf[6] = 1;
    buf[7] = 0; /* a quest without a method */
    assert_int_equal(fpnn_parse(buf, n, 1024, &p), FPNN_PARSE_BAD);
}

static void size_limit_is_checked_from_the_header(void **state)
{
    uint8_t head[16] = {'F', 'P', 'N', 'N', 1, 0x80, 1, 4, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0};
    fpnn_packet p;
    /* 4 GiB announced: refused before any payload byte arrives. */
    assert_int_equal(fpnn_parse(head, sizeof head, 1 << 20, &p), FPNN_PARSE_TOO_LARGE);
    head[8] = 0xec;
    head[9] = 0x03;
    head[10] = head[11] = 0; /* 1004 + 16 + 4 = 1024: exactly the limit */
    assert_int_equal(fpnn_parse(head, sizeof head, 1024, &p), FPNN_PARSE_MORE);
    assert_int_equal(fpnn_parse(head, sizeof head, 1023, &p), FPNN_PARSE_TOO_LARGE);
}

static void back_to_back_packets(void **state)
{
    uint8_t buf[128];
    size_t a = fpnn_encode(buf, FPNN_FLAG_MSGPACK, FPNN_MT_TWOWAY, 0, 1, "ping", 4, (const uint8_t *)"\x80", 1);
    size_t b = fpnn_encode(buf + a, FPNN_FLAG_MSGPACK, FPNN_MT_ONEWAY, 0, 0, "x", 1, NULL, 0);
    fpnn_packet p;
    assert_int_equal(fpnn_parse(buf, a + b, 1024, &p), (long)a);
    assert_int_equal(fpnn_parse(buf + a, b, 1024, &p), (long)b);
    assert_int_equal(p.payload_len, 0);
}

/* The header alone: an upload far over any limit still gives its method,
 * seq and size once the method's bytes are in, without its payload. */
static void head_without_the_payload(void **state)
{
    uint8_t buf[64];
    size_t n = fpnn_encode(buf, FPNN_FLAG_MSGPACK, FPNN_MT_TWOWAY, 0, 42, "sendfile", 8, NULL, 0);
    buf[8] = 0xff, buf[9] = 0xff, buf[10] = 0xff, buf[11] = 0x7f; /* a payload of 2 GiB - 1 */
    fpnn_packet p;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fpnn_parse_head(buf, i, &p, &total), FPNN_PARSE_MORE);
    assert_int_equal(fpnn_parse_head(buf, n, &p, &total), 16 + 8);
    assert_int_equal(total, 16 + 8 + 0x7fffffffu);
    assert_int_equal(p.mtype, FPNN_MT_TWOWAY);
    assert_int_equal(p.seq, 42);
    assert_memory_equal(p.method, "sendfile", 8);
    assert_null(p.payload);
    assert_int_equal(p.payload_len, 0x7fffffffu);
    assert_int_equal(fpnn_parse(buf, n, 1 << 20, &p), FPNN_PARSE_TOO_LARGE);
    assert_int_equal(fpnn_parse_head((const uint8_t *)"GARBAGE!GARBAGE!", 16, &p, &total), FPNN_PARSE_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(twoway_quest_layout),
        cmocka_unit_test(oneway_quest_has_no_seq),
        cmocka_unit_test(answer_carries_status),
        cmocka_unit_test(partial_input_needs_more),
        cmocka_unit_test(garbage_is_refused_early),
        cmocka_unit_test(size_limit_is_checked_from_the_header),
        cmocka_unit_test(back_to_back_packets),
        cmocka_unit_test(head_without_the_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
