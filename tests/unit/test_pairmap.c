/* Unit tests of the pair-keyed hash map (src/core/pairmap.h), including a
 * randomized comparison against a plain array that exercises growth and
 * backward-shift deletion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pairmap.h"

static void basic(void **state)
{
    pairmap m = {0};
    int x = 1, y = 2;
    assert_null(pairmap_get(&m, 1, 2));
    assert_null(pairmap_del(&m, 1, 2));
    assert_int_equal(pairmap_put(&m, 1, 2, &x), 0);
    assert_int_equal(pairmap_put(&m, 2, 1, &y), 0);
    assert_ptr_equal(pairmap_get(&m, 1, 2), &x);
    assert_ptr_equal(pairmap_get(&m, 2, 1), &y);
    assert_int_equal(pairmap_put(&m, 1, 2, &y), 0);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(pairmap_del(&m, 1, 2), &y);
    assert_null(pairmap_get(&m, 1, 2));
    assert_int_equal(m.count, 1);
    pairmap_free(&m);
}

static void reserve_slot(void **state)
{
    pairmap m = {0};
    int x = 1;
    void **slot = pairmap_reserve(&m, 7, 8);
    assert_non_null(slot);
    assert_null(*slot);
    *slot = &x;
    assert_int_equal(m.count, 1);
    slot = pairmap_reserve(&m, 7, 8);
    assert_ptr_equal(*slot, &x);
    assert_int_equal(m.count, 1);
    assert_ptr_equal(pairmap_get(&m, 7, 8), &x);
    assert_ptr_equal(pairmap_del(&m, 7, 8), &x);
    assert_int_equal(m.count, 0);
    pairmap_free(&m);
}

static void randomized_against_array(void **state)
{
    enum { KEYS = 3000, OPS = 200000 };
    static char present[KEYS];
    static int values[KEYS];
    pairmap m = {0};
    srand(42);
    for (int op = 0; op < OPS; op++) {
        int k = rand() % KEYS;
        uint64_t a = (uint64_t)(k % 7), b = (uint64_t)k * 1000003u; /* several keys share a */
        if (rand() % 3) {
            assert_int_equal(pairmap_put(&m, a, b, &values[k]), 0);
            present[k] = 1;
        } else {
            void *v = pairmap_del(&m, a, b);
            assert_true(present[k] ? v == &values[k] : v == NULL);
            present[k] = 0;
        }
        if (op % 1000 == 0) {
            size_t count = 0;
            for (int i = 0; i < KEYS; i++) {
                void *v = pairmap_get(&m, (uint64_t)(i % 7), (uint64_t)i * 1000003u);
                assert_true(present[i] ? v == &values[i] : v == NULL);
                count += present[i];
            }
            assert_int_equal(count, m.count);
        }
    }
    pairmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(basic),
        cmocka_unit_test(reserve_slot),
        cmocka_unit_test(randomized_against_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
