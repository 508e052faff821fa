/* The C SDK's memory of recent message pushes (pushmsg, pushgroupmsg,
 * pushroommsg, pushbroadcastmsg) by (method, from, target, mid), so that a
 * repeated push is not passed to the application: rtmd pushes room messages
 * before their commit, and a sender's retry after a failed commit or a
 * restart reaches receivers again. Bounded: the oldest key is forgotten
 * first. Used by the I/O thread only (client.c). */
#ifndef RTM_LIBRTM_DEDUP_H
#define RTM_LIBRTM_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rtm_dedup rtm_dedup;

/* Remembers at most cap keys (1..16777216); NULL when out of memory or cap out of range. */
rtm_dedup *rtm_dedup_new(size_t cap);
void rtm_dedup_free(rtm_dedup *d);

/* Whether the push of method with this msgpack payload repeats one seen
 * before; a new one is remembered. Anything else (another method, a
 * payload without from or mid, over-long ids) is never a repeat. */
bool rtm_dedup_repeat(rtm_dedup *d, const char *method, const uint8_t *payload, size_t len);

/* Keys remembered now. */
size_t rtm_dedup_count(const rtm_dedup *d);

#endif
