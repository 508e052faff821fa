/* libFuzzer target for the sensitive-word matcher (modules/moderation/
 * wordlist.h). The input's first line-separated half is parsed as a list
 * file (which may fail, with a message), and the whole input is scanned as
 * chat text by that list, and by a fixed list of Latin, Cyrillic, Greek
 * and CJK words: a scan must never write past the text's length, every
 * star must stand for one code point of the text, and bytes outside the
 * masked runs must be the text's own. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wordlist.h"

static const char FIXED[] = "bad\nbadword\nab\nb\nПривет\nσοφος\n傻瓜\n傻\n\xF0\x9F\x92\xA9\n";

static void scan(const wordlist *wl, const uint8_t *data, size_t size, wordlist_scratch *s)
{
    uint8_t *out = malloc(size ? size : 1);
    uint32_t words[8];
    size_t out_len = 0, nwords = 0;
    if (!out)
        return;
    long n = wordlist_scan(wl, data, size, s, out, &out_len, words, 8, &nwords);
    if (n < 0 || out_len > size || nwords > 8)
        abort();
    for (size_t i = 0; i < nwords; i++)
        if (words[i] >= wordlist_count(wl))
            abort();
    /* stars and code points: the masked text is as long as the text less
     * the bytes the stars replaced */
    size_t stars = 0;
    for (size_t i = 0; i < out_len; i++)
        stars += out[i] == '*';
    if (n == 0 && (out_len != size || memcmp(out, data, size) != 0))
        abort();
    if ((size_t)n > stars)
        abort();
    long m = wordlist_scan(wl, data, size, s, NULL, NULL, words, 8, &nwords);
    if ((m == 0) != (n == 0))
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wordlist *fixed;
    static wordlist_scratch s;
    char err[256];
    if (!fixed && !(fixed = wordlist_parse(FIXED, sizeof FIXED - 1, "fixed", err, sizeof err)))
        abort();
    scan(fixed, data, size, &s);
    err[0] = 0;
    wordlist *wl = wordlist_parse((const char *)data, size / 2, "fuzz", err, sizeof err);
    if (wl) {
        scan(wl, data, size, &s);
        if (wordlist_missing(wl, wl) != 0)
            abort();
        wordlist_free(wl);
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
