/* Unit tests of the pure parts of messages.h: conversation keys (the p2p
 * key is the same whoever sends) and the bounded duplicate table (every
 * field of the key counts, the oldest entry goes first when it is full, a
 * re-added key is updated in place). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "messages.h"

static void conversation_keys(void **state)
{
    (void)state;
    conv_key a = conv_p2p(9, 3), b = conv_p2p(3, 9);
    assert_int_equal(a.conv_type, CONV_P2P);
    assert_true(a.a == 3 && a.b == 9);
    assert_true(b.a == 3 && b.b == 9);
    conv_key g = conv_group(77);
    assert_true(g.conv_type == CONV_GROUP && g.a == 77 && g.b == 0);
    conv_key r = conv_room(-5);
    assert_true(r.conv_type == CONV_ROOM && r.a == -5 && r.b == 0);
    conv_key x = conv_broadcast();
    assert_true(x.conv_type == CONV_BROADCAST && x.a == 0 && x.b == 0);
}

static void every_key_field_counts(void **state)
{
    (void)state;
    msg_dedup *d = msg_dedup_new(16);
    assert_non_null(d);
    int64_t mtime = 0;
    assert_false(msg_dedup_find(d, 1, conv_p2p(1, 2), 1, 100, &mtime));
    assert_int_equal(msg_dedup_add(d, 1, conv_p2p(1, 2), 1, 100, 555), 0);
    assert_true(msg_dedup_find(d, 1, conv_p2p(2, 1), 1, 100, &mtime));
    assert_int_equal(mtime, 555);
    assert_false(msg_dedup_find(d, 2, conv_p2p(1, 2), 1, 100, &mtime));   /* project */
    assert_false(msg_dedup_find(d, 1, conv_p2p(1, 3), 1, 100, &mtime));   /* conversation */
    assert_false(msg_dedup_find(d, 1, conv_group(1), 1, 100, &mtime));    /* conversation type */
    assert_false(msg_dedup_find(d, 1, conv_p2p(1, 2), 2, 100, &mtime));   /* sender */
    assert_false(msg_dedup_find(d, 1, conv_p2p(1, 2), 1, 101, &mtime));   /* mid */
    /* re-adding updates in place */
    assert_int_equal(msg_dedup_add(d, 1, conv_p2p(1, 2), 1, 100, 777), 0);
    assert_int_equal(msg_dedup_count(d), 1);
    assert_true(msg_dedup_find(d, 1, conv_p2p(1, 2), 1, 100, &mtime));
    assert_int_equal(mtime, 777);
    msg_dedup_free(d);
}

static void oldest_goes_first(void **state)
{
    (void)state;
    enum { CAP = 64, TOTAL = 1000 };
    msg_dedup *d = msg_dedup_new(CAP);
    assert_non_null(d);
    for (int64_t mid = 0; mid < TOTAL; mid++) {
        assert_int_equal(msg_dedup_add(d, 7, conv_group(3), 42, mid, 1000 + mid), 0);
        assert_true(msg_dedup_count(d) <= CAP);
    }
    assert_int_equal(msg_dedup_count(d), CAP);
    int64_t mtime;
    for (int64_t mid = 0; mid < TOTAL; mid++) {
        bool kept = mid >= TOTAL - CAP;
        assert_int_equal(msg_dedup_find(d, 7, conv_group(3), 42, mid, &mtime), kept);
        if (kept)
            assert_int_equal(mtime, 1000 + mid);
    }
    msg_dedup_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conversation_keys),
        cmocka_unit_test(every_key_field_counts),
        cmocka_unit_test(oldest_goes_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
