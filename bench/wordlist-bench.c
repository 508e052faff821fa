/* wordlist-bench: the cost of the sensitive-word filter per chat message
 * (src/rtmd/modules/moderation/wordlist.h), as messages.c pays it: one
 * wordlist_scan with masking per message. Not a test: prints figures for
 * docs/performance.md ("Sensitive words").
 *
 * A list of WORDS words (default 10,000), from a fixed seed: two thirds
 * Latin (4 to 10 letters, some capitalised, some with accents), one third
 * CJK (2 to 4 ideographs). Messages of chat length: Latin sentences of
 * 20 to 120 bytes made of other words, CJK sentences of 8 to 40
 * ideographs, and a mix; one message in twenty carries a word of the list
 * in another case. Each kind is scanned MESSAGES times (default 1,000,000)
 * after a warm-up, and the mean time per message is printed.
 *
 *     build/wordlist-bench [WORDS [MESSAGES]] */
#include "wordlist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL 4096 /* distinct messages of each kind, scanned in turn */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static size_t put_cp(char *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (char)(0xc0 | cp >> 6);
        p[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    p[0] = (char)(0xe0 | cp >> 12);
    p[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    p[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
}

/* A Latin word of 4..10 letters (upper: capitalised; accents: some é, ü). */
static size_t latin_word(char *p, int upper, int accents)
{
    size_t n = 0, len = 4 + next() % 7;
    for (size_t i = 0; i < len; i++) {
        uint32_t c = 'a' + next() % 26;
        if (accents && next() % 6 == 0)
            c = next() % 2 ? 0xe9 : 0xfc;
        if (upper && i == 0)
            c -= 32; /* a -> A, é -> É, ü -> Ü */
        n += put_cp(p + n, c);
    }
    return n;
}

static size_t cjk_word(char *p, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += put_cp(p + n, 0x4e00 + next() % 0x5000);
    return n;
}

typedef struct msgs {
    char *text[POOL];
    size_t len[POOL];
} msgs;

/* kind 0 Latin, 1 CJK, 2 either */
static void make_messages(msgs *m, int kind, char **words, size_t *wlen, size_t nwords, size_t *planted)
{
    char buf[512];
    for (size_t i = 0; i < POOL; i++) {
        int k = kind == 2 ? (int)(next() % 2) : kind;
        size_t n = 0, target = k == 0 ? 20 + next() % 100 : 8 + next() % 32;
        int plant = next() % 20 == 0;
        size_t at = plant ? next() % target : (size_t)-1;
        size_t count = 0;
        while ((k == 0 ? n : count) < target) {
            if (plant && (k == 0 ? n : count) >= at) {
                size_t w = next() % nwords;
                /* the word with its ASCII upper-cased: another case */
                for (size_t j = 0; j < wlen[w]; j++) {
                    char c = words[w][j];
                    buf[n + j] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
                }
                n += wlen[w];
                plant = 0;
                (*planted)++;
            } else if (k == 0) {
                n += latin_word(buf + n, next() % 8 == 0, 0);
            } else {
                n += cjk_word(buf + n, 1);
            }
            if (k == 0)
                buf[n++] = ' ';
            else if (next() % 6 == 0)
                n += put_cp(buf + n, 0xff0c); /* a full-width comma */
            count++;
        }
        m->text[i] = malloc(n);
        memcpy(m->text[i], buf, n);
        m->len[i] = n;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t nwords = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    size_t rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
    if (nwords == 0 || nwords > WORDLIST_MAX_WORDS || rounds == 0) {
        fprintf(stderr, "usage: wordlist-bench [WORDS (1..%d) [MESSAGES]]\n", WORDLIST_MAX_WORDS);
        return 2;
    }
    char **words = calloc(nwords, sizeof *words);
    size_t *wlen = calloc(nwords, sizeof *wlen);
    size_t total = 0;
    char *list = malloc(nwords * 16 + 1);
    for (size_t i = 0; i < nwords; i++) {
        char w[64];
        size_t n = i % 3 == 2 ? cjk_word(w, 2 + next() % 3) : latin_word(w, next() % 4 == 0, next() % 4 == 0);
        words[i] = malloc(n);
        memcpy(words[i], w, n);
        wlen[i] = n;
        memcpy(list + total, w, n);
        total += n;
        list[total++] = '\n';
    }
    char err[256];
    double t0 = now_s();
    wordlist *wl = wordlist_parse(list, total, "bench", err, sizeof err);
    double t1 = now_s();
    if (!wl) {
        fprintf(stderr, "wordlist-bench: %s\n", err);
        return 1;
    }
    printf("list: %zu words (%zu distinct), %zu bytes, built in %.1f ms\n", nwords, wordlist_count(wl), total,
           (t1 - t0) * 1e3);
    static const char *const kinds[] = {"Latin", "CJK", "mixed"};
    wordlist_scratch sc = {0};
    uint8_t out[512];
    for (int kind = 0; kind < 3; kind++) {
        msgs *m = calloc(1, sizeof *m);
        size_t planted = 0, bytes = 0, matched = 0;
        make_messages(m, kind, words, wlen, nwords, &planted);
        for (size_t i = 0; i < POOL; i++)
            bytes += m->len[i];
        size_t out_len;
        for (size_t i = 0; i < POOL; i++) /* warm-up, and the share that matches */
            matched += wordlist_scan(wl, (const uint8_t *)m->text[i], m->len[i], &sc, out, &out_len, NULL, 0, NULL) > 0;
        double a = now_s();
        long sink = 0;
        for (size_t r = 0; r < rounds; r++) {
            size_t i = r % POOL;
            sink += wordlist_scan(wl, (const uint8_t *)m->text[i], m->len[i], &sc, out, &out_len, NULL, 0, NULL);
        }
        double b = now_s();
        printf("%-5s messages: mean %zu bytes, %.1f%% with a word (%zu planted of %d): %.0f ns per message, "
               "%.0f MB/s (%ld)\n",
               kinds[kind], bytes / POOL, 100.0 * (double)matched / POOL, planted, POOL,
               (b - a) * 1e9 / (double)rounds, (double)bytes / POOL * (double)rounds / (b - a) / 1e6, sink % 10);
        for (size_t i = 0; i < POOL; i++)
            free(m->text[i]);
        free(m);
    }
    wordlist_scratch_free(&sc);
    wordlist_free(wl);
    for (size_t i = 0; i < nwords; i++)
        free(words[i]);
    free(words);
    free(wlen);
    free(list);
    return 0;
}
