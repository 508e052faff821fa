/* Unit tests of translation's pieces that need no server: the language
 * codes setlang, auth and translate accept (translate.h), and the cache of
 * answers (src/rtmd/modules/translate/translate_cache.h): hits, misses by
 * project and key, replacement, least recently used eviction by entries
 * and by bytes, an entry too large to keep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "translate.h"
#include "translate_cache.h"

static void test_lang_codes(void **state)
{
    (void)state;
    static const char *const good[] = {"en", "zh-CHS", "pt-BR", "zh-Hant", "x", "de1", "abcdefghijklmno"};
    static const char *const bad[] = {"", "-en", "1en", "en us", "en_US", "e/n", "abcdefghijklmnop", "é", "en\n"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(translate_lang_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(translate_lang_valid(bad[i], strlen(bad[i])));
    assert_false(translate_lang_valid("en\0x", 4)); /* a NUL inside */
}

static bool get(translate_cache *c, int64_t pid, const char *key, const char **src, char *text, size_t cap)
{
    const char *t;
    size_t n;
    if (!translate_cache_get(c, pid, key, strlen(key), src, &t, &n))
        return false;
    assert_true(n < cap);
    memcpy(text, t, n);
    text[n] = '\0';
    return true;
}

static void test_cache_hits_and_keys(void **state)
{
    (void)state;
    translate_cache *c = translate_cache_new(16, 1 << 20, 42);
    assert_non_null(c);
    const char *src;
    char text[64];
    assert_false(get(c, 1, "k", &src, text, sizeof text));
    translate_cache_put(c, 1, "k", 1, "en", "v1", 2);
    assert_true(get(c, 1, "k", &src, text, sizeof text));
    assert_string_equal(src, "en");
    assert_string_equal(text, "v1");
    /* another project, another key: misses */
    assert_false(get(c, 2, "k", &src, text, sizeof text));
    assert_false(get(c, 1, "kk", &src, text, sizeof text));
    /* keys with NULs inside are compared whole */
    translate_cache_put(c, 1, "a\0b", 3, "", "x", 1);
    const char *t;
    size_t n;
    assert_true(translate_cache_get(c, 1, "a\0b", 3, &src, &t, &n));
    assert_false(translate_cache_get(c, 1, "a\0c", 3, &src, &t, &n));
    /* a put again replaces */
    translate_cache_put(c, 1, "k", 1, "fr", "v2", 2);
    assert_true(get(c, 1, "k", &src, text, sizeof text));
    assert_string_equal(src, "fr");
    assert_string_equal(text, "v2");
    assert_int_equal(translate_cache_entries(c), 2);
    translate_cache_free(c);
}

static void test_cache_evicts_least_recently_used(void **state)
{
    (void)state;
    translate_cache *c = translate_cache_new(3, 1 << 20, 7);
    const char *src;
    char text[64];
    translate_cache_put(c, 1, "a", 1, "", "A", 1);
    translate_cache_put(c, 1, "b", 1, "", "B", 1);
    translate_cache_put(c, 1, "c", 1, "", "C", 1);
    assert_true(get(c, 1, "a", &src, text, sizeof text)); /* a is now the newest: b goes first */
    translate_cache_put(c, 1, "d", 1, "", "D", 1);
    assert_int_equal(translate_cache_entries(c), 3);
    assert_false(get(c, 1, "b", &src, text, sizeof text));
    assert_true(get(c, 1, "a", &src, text, sizeof text));
    assert_true(get(c, 1, "c", &src, text, sizeof text));
    assert_true(get(c, 1, "d", &src, text, sizeof text));
    translate_cache_free(c);

    /* by bytes: 4096 entries of 1 KiB text do not fit in 1 MiB */
    c = translate_cache_new(TRANSLATE_CACHE_ENTRIES, 1 << 20, 9);
    static char big[1024];
    memset(big, 'x', sizeof big);
    char key[32];
    for (int i = 0; i < 4096; i++) {
        snprintf(key, sizeof key, "key %d", i);
        translate_cache_put(c, 1, key, strlen(key), "en", big, sizeof big);
        assert_true(translate_cache_bytes(c) <= 1 << 20);
    }
    assert_true(translate_cache_entries(c) < 1024);
    assert_true(translate_cache_entries(c) > 512);
    const char *t;
    size_t n;
    assert_true(translate_cache_get(c, 1, "key 4095", 8, &src, &t, &n));
    assert_int_equal(n, sizeof big);
    assert_false(translate_cache_get(c, 1, "key 0", 5, &src, &t, &n));
    /* an answer larger than the whole cache is not kept, and evicts nothing */
    size_t before = translate_cache_entries(c);
    static char huge[(1 << 20) + 1];
    translate_cache_put(c, 1, "huge", 4, "en", huge, sizeof huge);
    assert_false(translate_cache_get(c, 1, "huge", 4, &src, &t, &n));
    assert_int_equal(translate_cache_entries(c), before);
    translate_cache_free(c);
}

/* Entries bounded at the production size, whatever the keys. */
static void test_cache_entry_bound(void **state)
{
    (void)state;
    translate_cache *c = translate_cache_new(TRANSLATE_CACHE_ENTRIES, TRANSLATE_CACHE_BYTES, 1);
    char key[32];
    for (int i = 0; i < 3 * TRANSLATE_CACHE_ENTRIES; i++) {
        snprintf(key, sizeof key, "%d", i);
        translate_cache_put(c, i % 3, key, strlen(key), "", "t", 1);
        assert_true(translate_cache_entries(c) <= TRANSLATE_CACHE_ENTRIES);
    }
    assert_int_equal(translate_cache_entries(c), TRANSLATE_CACHE_ENTRIES);
    translate_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lang_codes),
        cmocka_unit_test(test_cache_hits_and_keys),
        cmocka_unit_test(test_cache_evicts_least_recently_used),
        cmocka_unit_test(test_cache_entry_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
