/* Unit tests of the growable byte buffer (src/core/buf.h): the first
 * capacity, growth, consuming from the front and compaction, and the 32-bit
 * limit that a reservation may not cross. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void grows_from_the_first_capacity(void **state)
{
    (void)state;
    rtm_buf b = {0};
    assert_int_equal(rtm_buf_pending(&b), 0);
    assert_int_equal(rtm_buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.cap, RTM_BUF_MIN_CAP);
    uint8_t big[1000];
    memset(big, 'x', sizeof big);
    assert_int_equal(rtm_buf_append(&b, big, sizeof big), 0);
    assert_int_equal(b.cap, 4 * RTM_BUF_MIN_CAP);
    assert_int_equal(rtm_buf_pending(&b), 1003);
    assert_memory_equal(rtm_buf_head(&b), "abcx", 4);
    rtm_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
}

static void consume_and_compact(void **state)
{
    (void)state;
    rtm_buf b = {0};
    uint8_t bytes[RTM_BUF_MIN_CAP];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)i;
    assert_int_equal(rtm_buf_append(&b, bytes, sizeof bytes), 0);
    rtm_buf_consume(&b, 200);
    assert_int_equal(rtm_buf_pending(&b), 56);
    assert_int_equal(rtm_buf_head(&b)[0], 200);
    /* Room for 150 more: the unread bytes move to the front instead of the
     * buffer growing. */
    assert_int_equal(rtm_buf_reserve(&b, 150), 0);
    assert_int_equal(b.cap, RTM_BUF_MIN_CAP);
    assert_int_equal(b.off, 0);
    assert_int_equal(rtm_buf_head(&b)[0], 200);
    rtm_buf_consume(&b, 56);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.off, 0);
    rtm_buf_free(&b);
}

/* Lengths are 32-bit: a reservation that would take the buffer past
 * RTM_BUF_MAX fails and leaves it as it was, without allocating. */
static void refuses_past_the_limit(void **state)
{
    (void)state;
    rtm_buf b = {0};
    assert_int_equal(rtm_buf_append(&b, "0123456789", 10), 0);
    uint8_t *data = b.data;
    assert_int_equal(rtm_buf_reserve(&b, RTM_BUF_MAX), -1);
    assert_int_equal(rtm_buf_reserve(&b, (size_t)RTM_BUF_MAX - 9), -1);
    assert_int_equal(rtm_buf_reserve(&b, (size_t)RTM_BUF_MAX + 1), -1);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.len, 10);
    assert_int_equal(b.cap, RTM_BUF_MIN_CAP);
    assert_memory_equal(b.data, "0123456789", 10);
    rtm_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grows_from_the_first_capacity),
        cmocka_unit_test(consume_and_compact),
        cmocka_unit_test(refuses_past_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
