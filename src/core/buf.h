/* A growable byte buffer with a read offset: the input and output staging
 * area of connections, and the scratch space of encoders. */
#ifndef RTM_BUF_H
#define RTM_BUF_H

#include <stddef.h>
#include <stdint.h>

/* The capacity a buffer starts with when it first needs room. */
#define RTM_BUF_MIN_CAP 256
/* The most a buffer holds: lengths are 32-bit, which keeps the struct at 24
 * bytes (a connection of rtmd has three) and is far above any packet or
 * output queue limit. */
#define RTM_BUF_MAX UINT32_MAX

typedef struct rtm_buf {
    uint8_t *data;
    uint32_t len; /* bytes written */
    uint32_t off; /* bytes already consumed from the front */
    uint32_t cap;
} rtm_buf;

/* Makes room for n more bytes; returns 0, or -1 when out of memory or when
 * the buffer would hold more than RTM_BUF_MAX bytes. */
int rtm_buf_reserve(rtm_buf *b, size_t n);
int rtm_buf_append(rtm_buf *b, const void *p, size_t n);
/* Pointer to the unread bytes and their count. */
static inline uint8_t *rtm_buf_head(const rtm_buf *b) { return b->data + b->off; }
static inline size_t rtm_buf_pending(const rtm_buf *b) { return b->len - b->off; }
/* Marks n unread bytes as consumed; moves the rest to the front when worthwhile. */
void rtm_buf_consume(rtm_buf *b, size_t n);
void rtm_buf_reset(rtm_buf *b);
void rtm_buf_free(rtm_buf *b);

#endif
