/* Growable byte buffer (see buf.h). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

int rtm_buf_reserve(rtm_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= n)
            return 0;
    }
    if (n > RTM_BUF_MAX - b->len)
        return -1;
    size_t need = (size_t)b->len + n;
    size_t cap = b->cap ? b->cap : RTM_BUF_MIN_CAP;
    while (cap < need)
        cap *= 2;
    if (cap > RTM_BUF_MAX)
        cap = RTM_BUF_MAX;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = (uint32_t)cap;
    return 0;
}

int rtm_buf_append(rtm_buf *b, const void *p, size_t n)
{
    if (rtm_buf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += (uint32_t)n;
    return 0;
}

void rtm_buf_consume(rtm_buf *b, size_t n)
{
    b->off += (uint32_t)n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

void rtm_buf_reset(rtm_buf *b)
{
    b->off = b->len = 0;
}

void rtm_buf_free(rtm_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->off = b->cap = 0;
}
