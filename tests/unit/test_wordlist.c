/* Unit tests of the sensitive-word matcher (src/rtmd/modules/moderation/
 * wordlist.h): the list file format and its errors, masking (overlapping
 * words, a word that is the prefix of another, case beyond ASCII, CJK,
 * bytes that are not UTF-8), the words named, an empty list, and a
 * randomized comparison against a naive search. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wordlist.h"

static wordlist *parse_ok(const char *text)
{
    char err[256] = "";
    wordlist *wl = wordlist_parse(text, strlen(text), "list", err, sizeof err);
    if (!wl)
        fail_msg("parse failed: %s", err);
    return wl;
}

/* The masked text of s, as a NUL-terminated string (static buffer). */
static const char *masked(const wordlist *wl, wordlist_scratch *sc, const char *s, size_t len, long *count)
{
    static uint8_t out[4096];
    size_t out_len = 0;
    long n = wordlist_scan(wl, (const uint8_t *)s, len, sc, out, &out_len, NULL, 0, NULL);
    assert_true(n >= 0);
    assert_true(out_len <= len);
    out[out_len] = 0;
    if (count)
        *count = n;
    return (const char *)out;
}

#define MASK(wl, sc, s) masked(wl, sc, s, strlen(s), NULL)

static void empty_list(void **state)
{
    (void)state;
    wordlist_scratch sc = {0};
    wordlist *wl = parse_ok("");
    assert_int_equal(wordlist_count(wl), 0);
    long n = -1;
    assert_string_equal(masked(wl, &sc, "anything at all", 15, &n), "anything at all");
    assert_int_equal(n, 0);
    wordlist_free(wl);
    wl = parse_ok("# only a comment\n\n   \n\t# another\n");
    assert_int_equal(wordlist_count(wl), 0);
    assert_string_equal(MASK(wl, &sc, "text"), "text");
    size_t nw = 9;
    uint32_t words[4];
    assert_int_equal(wordlist_scan(wl, (const uint8_t *)"x", 1, &sc, NULL, NULL, words, 4, &nw), 0);
    assert_int_equal(nw, 0);
    wordlist_free(wl);
    wordlist_scratch_free(&sc);
}

static void overlapping_and_prefixes(void **state)
{
    (void)state;
    wordlist_scratch sc = {0};
    wordlist *wl = parse_ok("abc\nbcd\nhe\nhello\nb\n");
    long n;
    /* abc and bcd overlap: one run of four stars. */
    assert_string_equal(masked(wl, &sc, "xabcde", 6, &n), "x****e");
    assert_int_equal(n, 4);
    /* he is a prefix of hello: both ends masked, the longer wins. */
    assert_string_equal(MASK(wl, &sc, "hello hex"), "***** **x");
    /* b inside abc, found before abc ends: the later, longer run swallows it. */
    assert_string_equal(MASK(wl, &sc, "zabcz"), "z***z");
    assert_string_equal(MASK(wl, &sc, "bb b"), "** *");
    assert_string_equal(MASK(wl, &sc, "nothing"), "nothing");
    uint32_t words[8];
    size_t nw = 0;
    assert_true(wordlist_scan(wl, (const uint8_t *)"hello abcd", 10, &sc, NULL, NULL, words, 8, &nw) > 0);
    /* distinct, in the order their first occurrence ends: he, hello, b, abc, bcd */
    assert_int_equal(nw, 5);
    const char *expect[] = {"he", "hello", "b", "abc", "bcd"};
    for (size_t i = 0; i < nw; i++) {
        size_t len;
        const char *w = wordlist_word(wl, words[i], &len);
        assert_int_equal(len, strlen(expect[i]));
        assert_memory_equal(w, expect[i], len);
    }
    /* max_words caps the list */
    assert_true(wordlist_scan(wl, (const uint8_t *)"hello abcd", 10, &sc, NULL, NULL, words, 2, &nw) > 0);
    assert_int_equal(nw, 2);
    wordlist_free(wl);
    wordlist_scratch_free(&sc);
}

static void case_beyond_ascii(void **state)
{
    (void)state;
    wordlist_scratch sc = {0};
    /* Written in one case in the list, found in any in the text. */
    wordlist *wl = parse_ok("привет\nΣΟΦΟΣ\nÉcole\nBAD WORD\nstraße\n");
    assert_string_equal(MASK(wl, &sc, "ПРИВЕТ мир"), "****** мир");
    assert_string_equal(MASK(wl, &sc, "ПрИвЕт"), "******");
    /* final sigma folds as sigma does */
    assert_string_equal(MASK(wl, &sc, "σοφος!"), "*****!");
    assert_string_equal(MASK(wl, &sc, "une ÉCOLE, une école"), "une *****, une *****");
    assert_string_equal(MASK(wl, &sc, "a Bad Word here"), "a ******** here");
    assert_string_equal(MASK(wl, &sc, "STRAßE"), "******");
    /* the words are named as written in the list */
    uint32_t words[4];
    size_t nw = 0, len;
    assert_true(wordlist_scan(wl, (const uint8_t *)"ПРИВЕТ", strlen("ПРИВЕТ"), &sc, NULL, NULL, words, 4, &nw) > 0);
    assert_int_equal(nw, 1);
    const char *w = wordlist_word(wl, words[0], &len);
    assert_int_equal(len, strlen("привет"));
    assert_memory_equal(w, "привет", len);
    assert_int_equal(wordlist_fold(0x03A3), 0x03C3); /* Σ */
    assert_int_equal(wordlist_fold(0x03C2), 0x03C3); /* ς */
    assert_int_equal(wordlist_fold(0x212A), 'k');    /* Kelvin sign */
    assert_int_equal(wordlist_fold(0x4E00), 0x4E00); /* no case */
    wordlist_free(wl);
    wordlist_scratch_free(&sc);
}

static void cjk_substrings(void **state)
{
    (void)state;
    wordlist_scratch sc = {0};
    wordlist *wl = parse_ok("傻瓜\n笨蛋\n傻\n");
    assert_string_equal(MASK(wl, &sc, "你是傻瓜吗"), "你是**吗");
    assert_string_equal(MASK(wl, &sc, "傻傻的笨蛋"), "**的**");
    assert_string_equal(MASK(wl, &sc, "ok好的"), "ok好的");
    /* a 4-byte character stays one star */
    wordlist_free(wl);
    wl = parse_ok("\xF0\x9F\x92\xA9x\n");
    assert_string_equal(MASK(wl, &sc, "a\xF0\x9F\x92\xA9X!"), "a**!");
    wordlist_free(wl);
    wordlist_scratch_free(&sc);
}

static void invalid_utf8_in_text(void **state)
{
    (void)state;
    wordlist_scratch sc = {0};
    wordlist *wl = parse_ok("abcd\nab\n傻瓜\n");
    /* The stray byte is kept; no match spans it; matches on either side stand. */
    const char t1[] = "ab\xff" "cd";
    assert_string_equal(masked(wl, &sc, t1, sizeof t1 - 1, NULL), "**\xff" "cd");
    const char t2[] = "\xc3\x28" "abcd\xe5";
    assert_string_equal(masked(wl, &sc, t2, sizeof t2 - 1, NULL), "\xc3\x28****\xe5");
    /* a truncated CJK character at the end, and an overlong form */
    const char t3[] = "傻瓜\xe5\x82";
    assert_string_equal(masked(wl, &sc, t3, sizeof t3 - 1, NULL), "**\xe5\x82");
    const char t4[] = "\xc0\xe1" "b";
    assert_string_equal(masked(wl, &sc, t4, sizeof t4 - 1, NULL), "\xc0\xe1" "b");
    /* a NUL inside the text is a character like others */
    const char t5[] = "ab\0ab";
    assert_memory_equal(masked(wl, &sc, t5, 5, NULL), "**\0**", 5);
    wordlist_free(wl);
    wordlist_scratch_free(&sc);
}

static void list_format(void **state)
{
    (void)state;
    /* BOM, CRLF, trimming, comments, folded duplicates count once */
    wordlist *wl = parse_ok("\xEF\xBB\xBF  one \r\n\ttwo words\t\r\n# three\n\nONE\nOne\n  #four\nfive");
    assert_int_equal(wordlist_count(wl), 3);
    size_t len;
    const char *w = wordlist_word(wl, 0, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(w, "one", 3);
    w = wordlist_word(wl, 1, &len);
    assert_int_equal(len, 9);
    assert_memory_equal(w, "two words", 9);
    w = wordlist_word(wl, 2, &len);
    assert_memory_equal(w, "five", 4);
    wordlist *other = parse_ok("one\nsix\nseven\n");
    assert_int_equal(wordlist_missing(wl, other), 2);    /* two words, five */
    assert_int_equal(wordlist_missing(other, wl), 2);    /* six, seven */
    assert_int_equal(wordlist_missing(other, other), 0);
    wordlist_free(other);
    wordlist_free(wl);

    char err[256];
    const struct {
        const char *text;
        const char *err;
    } bad[] = {
        {"ok\nfine\nbad\xff\n", "list:3: invalid UTF-8"},
        {"ok\nctl\x01here\n", "list:2: control character in a word"},
        {"x\n\xc0\x80\n", "list:2: invalid UTF-8"},
        {"12345678901234567890123456789012345678901234567890123456789012345\n", "list:1: word longer than 64 characters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_null(wordlist_parse(bad[i].text, strlen(bad[i].text), "list", err, sizeof err));
        assert_string_equal(err, bad[i].err);
    }
    /* 64 characters (CJK: 192 bytes) is still a word */
    char longw[64 * 3 + 2];
    for (int i = 0; i < 64; i++)
        memcpy(longw + 3 * i, "傻", 3);
    longw[192] = 0;
    wl = parse_ok(longw);
    assert_int_equal(wordlist_count(wl), 1);
    wordlist_free(wl);
    /* word count and file size bounds */
    size_t n = (WORDLIST_MAX_WORDS + 1) * 7;
    char *many = malloc(n + 1);
    assert_non_null(many);
    for (int i = 0; i <= WORDLIST_MAX_WORDS; i++)
        snprintf(many + 7 * i, 8, "%06d\n", i);
    assert_null(wordlist_parse(many, n, "list", err, sizeof err));
    assert_string_equal(err, "list:100001: more than 100000 words");
    wl = wordlist_parse(many, n - 7, "list", err, sizeof err);
    assert_non_null(wl);
    assert_int_equal(wordlist_count(wl), WORDLIST_MAX_WORDS);
    wordlist_free(wl);
    free(many);
    char *huge = calloc(1, WORDLIST_MAX_FILE_BYTES + 1);
    assert_non_null(huge);
    memset(huge, '\n', WORDLIST_MAX_FILE_BYTES + 1);
    assert_null(wordlist_parse(huge, WORDLIST_MAX_FILE_BYTES + 1, "list", err, sizeof err));
    assert_string_equal(err, "list: larger than 2097152 bytes");
    free(huge);
    assert_null(wordlist_load("/nonexistent/words.txt", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/words.txt: cannot open"));
}

/* Words that are all suffixes of each other over a long run of one
 * letter: every position ends 64 words; each is named once, every code
 * point masked (and it takes linear time: the walk of the suffix chain
 * stops at a word already named). */
static void nested_words_long_text(void **state)
{
    (void)state;
    char list[64 * 66];
    size_t n = 0;
    for (int l = 1; l <= 64; l++) {
        memset(list + n, 'a', (size_t)l);
        n += (size_t)l;
        list[n++] = '\n';
    }
    char err[256];
    wordlist *wl = wordlist_parse(list, n, "list", err, sizeof err);
    assert_non_null(wl);
    size_t len = 1 << 20, out_len = 0, nw = 0;
    uint8_t *text = malloc(len), *out = malloc(len);
    assert_true(text && out);
    memset(text, 'A', len);
    wordlist_scratch sc = {0};
    uint32_t words[100];
    assert_int_equal(wordlist_scan(wl, text, len, &sc, out, &out_len, words, 100, &nw), (long)len);
    assert_int_equal(out_len, len);
    assert_int_equal(nw, 64);
    assert_true(out[0] == '*' && out[len - 1] == '*');
    free(text);
    free(out);
    wordlist_scratch_free(&sc);
    wordlist_free(wl);
}

/* Masking compared with a naive search over a three-letter alphabet with
 * case: every code point inside any occurrence of any word is a star. */
static void randomized_against_naive(void **state)
{
    (void)state;
    static const char *const letters[] = {"a", "B", "\xc3\xa9" /* é */, "\xc3\x89" /* É */, "\xe4\xb8\x80" /* 一 */};
    static const int fold_of[] = {0, 1, 2, 2, 3}; /* the folded letter of each */
    wordlist_scratch sc = {0};
    srand(11);
    for (int round = 0; round < 300; round++) {
        int nw = rand() % 6;
        int word[6][5], wlen[6];
        char list[256] = "";
        for (int w = 0; w < nw; w++) {
            wlen[w] = 1 + rand() % 4;
            for (int i = 0; i < wlen[w]; i++) {
                int l = rand() % 5;
                word[w][i] = fold_of[l];
                strcat(list, letters[l]);
            }
            strcat(list, "\n");
        }
        wordlist *wl = parse_ok(list);
        int tlen = rand() % 30, text[30];
        char t[200] = "", expect[200] = "";
        for (int i = 0; i < tlen; i++) {
            int l = rand() % 5;
            text[i] = fold_of[l];
            strcat(t, letters[l]);
        }
        int star[30] = {0};
        for (int w = 0; w < nw; w++)
            for (int at = 0; at + wlen[w] <= tlen; at++) {
                int ok = 1;
                for (int i = 0; i < wlen[w] && ok; i++)
                    ok = text[at + i] == word[w][i];
                for (int i = 0; ok && i < wlen[w]; i++)
                    star[at + i] = 1;
            }
        const char *p = t;
        size_t e = 0;
        for (int i = 0; i < tlen; i++) {
            size_t n = ((unsigned char)*p < 0x80) ? 1 : ((unsigned char)*p < 0xe0 ? 2 : 3);
            if (star[i]) {
                expect[e++] = '*';
            } else {
                memcpy(expect + e, p, n);
                e += n;
            }
            p += n;
        }
        expect[e] = 0;
        assert_string_equal(MASK(wl, &sc, t), expect);
        /* the words named: as many as distinct (folded) words occur */
        int distinct = 0;
        for (int w = 0; w < nw; w++) {
            int occurs = 0, dup = 0;
            for (int at = 0; at + wlen[w] <= tlen && !occurs; at++) {
                occurs = 1;
                for (int i = 0; i < wlen[w] && occurs; i++)
                    occurs = text[at + i] == word[w][i];
            }
            for (int v = 0; v < w && !dup; v++)
                dup = wlen[v] == wlen[w] && memcmp(word[v], word[w], sizeof(int) * (size_t)wlen[w]) == 0;
            distinct += occurs && !dup;
        }
        uint32_t found[8];
        size_t nfound = 99;
        long m = wordlist_scan(wl, (const uint8_t *)t, strlen(t), &sc, NULL, NULL, found, 8, &nfound);
        assert_int_equal(nfound, distinct);
        assert_true((m > 0) == (distinct > 0));
        wordlist_free(wl);
    }
    wordlist_scratch_free(&sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_list),       cmocka_unit_test(overlapping_and_prefixes),
        cmocka_unit_test(case_beyond_ascii), cmocka_unit_test(cjk_substrings),
        cmocka_unit_test(invalid_utf8_in_text), cmocka_unit_test(list_format),
        cmocka_unit_test(nested_words_long_text), cmocka_unit_test(randomized_against_naive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
