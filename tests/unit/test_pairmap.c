/* Unit tests of the pair-keyed hash map (src/core/pairmap.h), including a
 * randomized comparison against a plain array that exercises growth and
 * backward-shift deletion, and of the keyed mix its slots come from
 * (src/core/hash.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"
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

/* The longest run of occupied slots: what a lookup may have to walk. */
static size_t longest_run(const pairmap *m)
{
    size_t longest = 0, run = 0;
    for (size_t i = 0; i < 2 * m->cap; i++) { /* twice round: runs wrap */
        run = m->slots[i & (m->cap - 1)].value ? run + 1 : 0;
        if (run > longest)
            longest = run;
    }
    return longest < m->cap ? longest : m->cap;
}

/* Ids that pile into one run of slots under one key (as a peer could pick
 * them if the key were known or fixed) spread under the process's key. */
static void ids_piled_under_one_key_spread_under_another(void **state)
{
    enum { IDS = 100 };
    const uint64_t known = 0x5eed5eed5eed5eedull, pid = 7;
    uint64_t ids[IDS];
    int n = 0;
    for (uint64_t b = 1; n < IDS; b++)
        if ((rtm_hash_pair(known, pid, b) & 4095) == 0)
            ids[n++] = b;
    int v = 1;
    pairmap piled = {.key = known}, spread = {0};
    for (int i = 0; i < IDS; i++) {
        assert_int_equal(pairmap_put(&piled, pid, ids[i], &v), 0);
        assert_int_equal(pairmap_put(&spread, pid, ids[i], &v), 0);
    }
    assert_int_equal(spread.key, rtm_hash_key());
    assert_int_equal(piled.cap, spread.cap);
    assert_int_equal(longest_run(&piled), IDS);
    assert_true(longest_run(&spread) < 30);
    for (int i = 0; i < IDS; i++)
        assert_ptr_equal(pairmap_get(&spread, pid, ids[i]), &v);
    pairmap_free(&piled);
    pairmap_free(&spread);
}

static uint64_t key_of_another_process(const char *self)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' --print-key", self);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    unsigned long long k = 0;
    assert_int_equal(fscanf(f, "%llx", &k), 1);
    assert_int_equal(pclose(f), 0);
    return k;
}

static const char *self_path;

/* Each process draws its own key: what one run of rtmd lays out, the next
 * does not. */
static void each_process_has_its_own_key(void **state)
{
    uint64_t a = key_of_another_process(self_path), b = key_of_another_process(self_path);
    assert_true(a != 0 && b != 0 && rtm_hash_key() != 0);
    assert_true(a != b);
    assert_true(a != rtm_hash_key() && b != rtm_hash_key());
}

/* Four ids mix every one of them into the low bits. */
static void four_ids_all_count(void **state)
{
    uint64_t k = rtm_hash_key();
    uint64_t h = rtm_hash_ids(k, 1, 2, 3, 4);
    assert_true(h != rtm_hash_ids(k, 1, 2, 3, 5));
    assert_true(h != rtm_hash_ids(k, 1, 2, 4, 4));
    assert_true(h != rtm_hash_ids(k, 1, 3, 3, 4));
    assert_true(h != rtm_hash_ids(k, 2, 2, 3, 4));
    assert_true(h != rtm_hash_ids(k + 1, 1, 2, 3, 4));
    assert_int_equal(rtm_hash_ids(k, 1, 2, 0, 0), rtm_hash_pair(k, 1, 2));
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print-key") == 0) {
        printf("%llx\n", (unsigned long long)rtm_hash_key());
        return 0;
    }
    self_path = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(basic),
        cmocka_unit_test(reserve_slot),
        cmocka_unit_test(randomized_against_array),
        cmocka_unit_test(ids_piled_under_one_key_spread_under_another),
        cmocka_unit_test(each_process_has_its_own_key),
        cmocka_unit_test(four_ids_all_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
