/* Unit tests of the sorted id set that groups and rooms keep their members
 * in (src/core/idset.h): order, idempotent add and delete, extreme 64-bit
 * ids, and a randomized comparison against a plain presence table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "idset.h"

static void sorted_and_distinct(void **state)
{
    (void)state;
    idset s = {0};
    assert_false(idset_has(&s, 5));
    assert_false(idset_del(&s, 5));
    assert_int_equal(idset_add(&s, 5), 1);
    assert_int_equal(idset_add(&s, -3), 1);
    assert_int_equal(idset_add(&s, INT64_MAX), 1);
    assert_int_equal(idset_add(&s, INT64_MIN), 1);
    assert_int_equal(idset_add(&s, 5), 0);
    assert_int_equal(s.n, 4);
    assert_true(s.v[0] == INT64_MIN && s.v[1] == -3 && s.v[2] == 5 && s.v[3] == INT64_MAX);
    assert_true(idset_has(&s, INT64_MAX));
    assert_true(idset_del(&s, -3));
    assert_false(idset_del(&s, -3));
    assert_int_equal(s.n, 3);
    assert_true(s.v[0] == INT64_MIN && s.v[1] == 5 && s.v[2] == INT64_MAX);
    idset_free(&s);
    assert_int_equal(s.n, 0);
}

static void randomized_against_table(void **state)
{
    (void)state;
    enum { KEYS = 2000, OPS = 100000 };
    static char present[KEYS];
    idset s = {0};
    uint32_t count = 0;
    srand(7);
    for (int op = 0; op < OPS; op++) {
        int k = rand() % KEYS;
        int64_t id = (int64_t)k * 1000003 - 1000000000;
        if (rand() % 2) {
            assert_int_equal(idset_add(&s, id), present[k] ? 0 : 1);
            count += !present[k];
            present[k] = 1;
        } else {
            assert_int_equal(idset_del(&s, id), present[k] != 0);
            count -= present[k] != 0;
            present[k] = 0;
        }
        assert_int_equal(s.n, count);
    }
    for (uint32_t i = 1; i < s.n; i++)
        assert_true(s.v[i - 1] < s.v[i]);
    for (int k = 0; k < KEYS; k++)
        assert_int_equal(idset_has(&s, (int64_t)k * 1000003 - 1000000000), present[k] != 0);
    idset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sorted_and_distinct),
        cmocka_unit_test(randomized_against_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
