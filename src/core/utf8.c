/* UTF-8 validation (see utf8.h). */
#include "utf8.h"

size_t rtm_utf8_char_len(const uint8_t *p, size_t len)
{
    uint8_t b = p[0];
    if (b < 0x80)
        return 1;
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3;
        if (b == 0xe0)
            lo = 0xa0; /* overlong */
        else if (b == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4;
        if (b == 0xf0)
            lo = 0x90; /* overlong */
        else if (b == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

bool rtm_utf8_valid(const void *s, size_t len)
{
    const uint8_t *p = s;
    size_t pos = 0;
    while (pos < len) {
        size_t n = rtm_utf8_char_len(p + pos, len - pos);
        if (n == 0)
            return false;
        pos += n;
    }
    return true;
}
