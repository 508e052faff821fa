/* Unit tests of the housekeeping walk (rtmd_sweep in src/rtmd/transport/conn.h):
 * the share each tick visits, and that a pass visits every connection it
 * started with exactly once, within its ticks, while visits and the loop
 * close connections (the one the walk resumes at included) and new ones
 * join at the head. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conn.h"

#define POOL 6000

/* A connection list as the server keeps it: new ones at the head, and
 * rtmd_sweep_unlinking told before one leaves. */
typedef struct fake_list {
    rtmd_conn *head;
    uint64_t n;
    rtmd_sweep sweep;
    rtmd_conn *pool[POOL];
    uint64_t next_id;
    bool linked[POOL];
    bool in_pass[POOL];    /* linked when the current pass started */
    unsigned visits[POOL]; /* in the current pass */
    uint64_t rng;
    unsigned close_in_visit; /* per mille: a visit closes its connection, the next one, a random one */
} fake_list;

static uint64_t next_random(fake_list *l)
{
    l->rng = l->rng * 6364136223846793005u + 1442695040888963407u;
    return l->rng >> 33;
}

static rtmd_conn *add_conn(fake_list *l)
{
    if (l->next_id >= POOL)
        return NULL;
    rtmd_conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->id = l->next_id++;
    l->pool[c->id] = c;
    l->linked[c->id] = true;
    c->next = l->head;
    if (l->head)
        l->head->prev = c;
    l->head = c;
    l->n++;
    return c;
}

static void remove_conn(fake_list *l, rtmd_conn *c)
{
    if (!c || !l->linked[c->id])
        return;
    rtmd_sweep_unlinking(&l->sweep, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->linked[c->id] = false;
    l->n--;
    l->pool[c->id] = NULL;
    free(c);
}

static rtmd_conn *random_linked(fake_list *l)
{
    if (l->n == 0)
        return NULL;
    for (int tries = 0; tries < 64; tries++) {
        rtmd_conn *c = l->pool[next_random(l) % l->next_id];
        if (c)
            return c;
    }
    return l->head;
}

static void visit(rtmd_conn *c, void *arg)
{
    fake_list *l = arg;
    assert_true(l->linked[c->id]); /* never a connection that left */
    l->visits[c->id]++;
    if (l->close_in_visit == 0)
        return;
    unsigned roll = (unsigned)(next_random(l) % 1000);
    if (roll < l->close_in_visit)
        remove_conn(l, l->sweep.next); /* where the walk resumes */
    roll = (unsigned)(next_random(l) % 1000);
    if (roll < l->close_in_visit)
        remove_conn(l, random_linked(l));
    roll = (unsigned)(next_random(l) % 1000);
    if (roll < l->close_in_visit)
        remove_conn(l, c);
}

static fake_list *new_list(unsigned ticks_per_pass, unsigned nconns)
{
    fake_list *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->sweep.ticks_per_pass = ticks_per_pass;
    l->rng = 42;
    for (unsigned i = 0; i < nconns; i++)
        add_conn(l);
    return l;
}

static void free_list(fake_list *l)
{
    while (l->head)
        remove_conn(l, l->head);
    free(l);
}

static void start_pass(fake_list *l)
{
    for (uint64_t i = 0; i < l->next_id; i++) {
        l->in_pass[i] = l->linked[i];
        l->visits[i] = 0;
    }
}

/* Every connection the pass started with and that is still there was
 * visited once; none was visited twice. */
static void check_pass(fake_list *l)
{
    for (uint64_t i = 0; i < l->next_id; i++) {
        assert_true(l->visits[i] <= 1);
        if (l->in_pass[i] && l->linked[i])
            assert_int_equal(l->visits[i], 1);
    }
    assert_null(l->sweep.next);
}

static void quota_shares_what_is_left(void **state)
{
    (void)state;
    assert_int_equal(rtmd_sweep_quota(0, 0, 10), 0);
    assert_int_equal(rtmd_sweep_quota(1000, 1000, 10), 100);
    assert_int_equal(rtmd_sweep_quota(1001, 1001, 10), 101); /* rounded up */
    assert_int_equal(rtmd_sweep_quota(5, 5, 10), 1);          /* at least one while any is left */
    assert_int_equal(rtmd_sweep_quota(900, 900, 9), 100);
    assert_int_equal(rtmd_sweep_quota(100, 50, 10), 5);       /* no more than the list holds */
    assert_int_equal(rtmd_sweep_quota(7, 1000, 1), 7);        /* the last tick takes all */
    assert_int_equal(rtmd_sweep_quota(7, 1000, 0), 7);
    assert_int_equal(rtmd_sweep_quota(1000000, 1000000, 10), 100000);
}

/* A steady list: each tick visits a tenth, each pass visits all once. */
static void steady_list_visited_once_a_pass(void **state)
{
    (void)state;
    fake_list *l = new_list(10, 1000);
    for (int pass = 0; pass < 3; pass++) {
        start_pass(l);
        for (int t = 0; t < 10; t++)
            assert_int_equal(rtmd_sweep_tick(&l->sweep, l->head, l->n, visit, l), 100);
        check_pass(l);
    }
    free_list(l);
}

/* Fewer connections than ticks: one a tick, then nothing until the next pass. */
static void few_connections(void **state)
{
    (void)state;
    fake_list *l = new_list(10, 3);
    for (int pass = 0; pass < 2; pass++) {
        start_pass(l);
        uint64_t total = 0;
        for (int t = 0; t < 10; t++) {
            uint64_t v = rtmd_sweep_tick(&l->sweep, l->head, l->n, visit, l);
            assert_int_equal(v, t < 3 ? 1 : 0);
            total += v;
        }
        assert_int_equal(total, 3);
        check_pass(l);
    }
    free_list(l);
    /* An empty list costs nothing. */
    l = new_list(10, 0);
    assert_int_equal(rtmd_sweep_tick(&l->sweep, l->head, l->n, visit, l), 0);
    free_list(l);
}

/* Connections accepted during a pass join at the head: the pass goes on
 * where it was and visits them in the next one. */
static void new_connections_wait_for_next_pass(void **state)
{
    (void)state;
    fake_list *l = new_list(10, 100);
    start_pass(l);
    for (int t = 0; t < 10; t++) {
        assert_int_equal(rtmd_sweep_tick(&l->sweep, l->head, l->n, visit, l), 10);
        for (int k = 0; k < 50; k++)
            add_conn(l);
    }
    check_pass(l);
    for (uint64_t i = 100; i < l->next_id; i++)
        assert_int_equal(l->visits[i], 0);
    start_pass(l); /* 600 now */
    for (int t = 0; t < 10; t++)
        assert_int_equal(rtmd_sweep_tick(&l->sweep, l->head, l->n, visit, l), 60);
    check_pass(l);
    free_list(l);
}

/* Closes everywhere: in visits (the visited connection, the one the walk
 * resumes at, any other) and between ticks, with connections joining too.
 * Each pass still visits what it started with once, never a closed one,
 * and ends within its ticks. */
static void churn_never_loses_the_walk(void **state)
{
    (void)state;
    fake_list *l = new_list(10, 2000);
    l->close_in_visit = 20;
    for (int pass = 0; pass < 12; pass++) {
        start_pass(l);
        uint64_t share = (l->n + 9) / 10;
        for (int t = 0; t < 10; t++) {
            /* Closes make the share of later ticks grow, but not much. */
            assert_true(rtmd_sweep_tick(&l->sweep, l->head, l->n, visit, l) <= 2 * share);
            unsigned closes = (unsigned)(next_random(l) % 40), opens = (unsigned)(next_random(l) % 40);
            for (unsigned k = 0; k < closes; k++)
                remove_conn(l, random_linked(l));
            for (unsigned k = 0; k < opens; k++)
                add_conn(l);
        }
        check_pass(l);
    }
    /* Closing the connection the walk resumes at, between ticks. */
    start_pass(l);
    rtmd_sweep_tick(&l->sweep, l->head, l->n, visit, l);
    assert_non_null(l->sweep.next);
    for (int k = 0; k < 5 && l->sweep.next; k++)
        remove_conn(l, l->sweep.next);
    for (int t = 1; t < 10; t++)
        rtmd_sweep_tick(&l->sweep, l->head, l->n, visit, l);
    check_pass(l);
    free_list(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quota_shares_what_is_left),
        cmocka_unit_test(steady_list_visited_once_a_pass),
        cmocka_unit_test(few_connections),
        cmocka_unit_test(new_connections_wait_for_next_pass),
        cmocka_unit_test(churn_never_loses_the_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
