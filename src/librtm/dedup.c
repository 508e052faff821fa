/* Recent message pushes by (method, from, target, mid) (dedup.h): a ring of
 * keys in arrival order, indexed by an open-addressing table (linear
 * probing, backward-shift deletion) of ring positions. */
#include "dedup.h"

#include "hash.h"
#include "payload.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 600   /* method kind, mid, two ids of at most 255 bytes */
#define ID_MAX 255

typedef struct key {
    uint64_t hash;
    uint16_t len;
    uint8_t *bytes;   /* NULL: ring slot unused */
} key;

struct rtm_dedup {
    key *ring;
    size_t cap, head, count;  /* head: the oldest key's position */
    uint32_t *index;          /* ring position + 1, 0 empty */
    size_t mask;
};

rtm_dedup *rtm_dedup_new(size_t cap)
{
    if (cap == 0 || cap > (1u << 24))
        return NULL;
    rtm_dedup *d = calloc(1, sizeof *d);
    size_t n = 1;
    while (n < cap * 2)
        n <<= 1;
    if (d) {
        d->ring = calloc(cap, sizeof *d->ring);
        d->index = calloc(n, sizeof *d->index);
        d->cap = cap;
        d->mask = n - 1;
    }
    if (!d || !d->ring || !d->index) {
        rtm_dedup_free(d);
        return NULL;
    }
    return d;
}

void rtm_dedup_free(rtm_dedup *d)
{
    if (!d)
        return;
    if (d->ring)
        for (size_t i = 0; i < d->cap; i++)
            free(d->ring[i].bytes);
    free(d->ring);
    free(d->index);
    free(d);
}

size_t rtm_dedup_count(const rtm_dedup *d)
{
    return d ? d->count : 0;
}

/* Appends an id (integer or string) of the payload to k; false when
 * missing, of another type or too long. */
static bool put_id(uint8_t *k, size_t *len, const msgpack_object *o)
{
    if (!o)
        return false;
    int64_t v;
    if (mp_obj_int64(o, &v)) {
        k[(*len)++] = 'i';
        memcpy(k + *len, &v, sizeof v);
        *len += sizeof v;
        return true;
    }
    const char *s;
    size_t n;
    if (o->type != MSGPACK_OBJECT_STR || !mp_obj_str(o, &s, &n) || n > ID_MAX)
        return false;
    k[(*len)++] = 's';
    k[(*len)++] = (uint8_t)n;
    memcpy(k + *len, s, n);
    *len += n;
    return true;
}

/* The key of a message push into k; 0 when it is not one. */
static size_t push_key(const char *method, const msgpack_object *p, uint8_t k[KEY_MAX])
{
    static const struct {
        const char *method, *target;
    } kinds[] = {{"pushmsg", "to"}, {"pushgroupmsg", "gid"}, {"pushroommsg", "rid"}, {"pushbroadcastmsg", NULL}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(method, kinds[i].method) != 0)
            continue;
        size_t len = 0;
        int64_t mid;
        const msgpack_object *m = mp_map_get(p, "mid");
        if (!m || !mp_obj_int64(m, &mid))
            return 0;
        k[len++] = (uint8_t)i;
        memcpy(k + len, &mid, sizeof mid);
        len += sizeof mid;
        if (!put_id(k, &len, mp_map_get(p, "from")))
            return 0;
        if (kinds[i].target && !put_id(k, &len, mp_map_get(p, kinds[i].target)))
            return 0;
        return len;
    }
    return 0;
}

/* The index slot holding ring position pos, or of hash h and bytes; with
 * bytes NULL, finds pos. Returns the slot, or the empty slot ending the probe. */
static size_t find_slot(const rtm_dedup *d, uint64_t h, const uint8_t *bytes, size_t len, size_t pos)
{
    size_t i = h & d->mask;
    for (;; i = (i + 1) & d->mask) {
        uint32_t e = d->index[i];
        if (e == 0)
            return i;
        const key *k = &d->ring[e - 1];
        if (bytes ? (k->hash == h && k->len == len && memcmp(k->bytes, bytes, len) == 0) : e - 1 == pos)
            return i;
    }
}

/* Removes index slot i, shifting the entries of its probe run back. */
static void index_del(rtm_dedup *d, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & d->mask;
        uint32_t e = d->index[j];
        if (e == 0)
            break;
        size_t home = d->ring[e - 1].hash & d->mask;
        /* e may move to i when its home is not in (i, j]. */
        if (((j - home) & d->mask) >= ((j - i) & d->mask)) {
            d->index[i] = e;
            i = j;
        }
    }
    d->index[i] = 0;
}

bool rtm_dedup_repeat(rtm_dedup *d, const char *method, const uint8_t *payload, size_t len)
{
    if (!d || strncmp(method, "push", 4) != 0)
        return false;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    uint8_t k[KEY_MAX];
    size_t klen = 0;
    if (msgpack_unpack_next(&u, (const char *)payload, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP)
        klen = push_key(method, &u.data, k);
    msgpack_unpacked_destroy(&u);
    if (klen == 0)
        return false;
    uint64_t h = rtm_hash64(k, klen);
    size_t slot = find_slot(d, h, k, klen, 0);
    if (d->index[slot] != 0)
        return true;
    uint8_t *copy = malloc(klen);
    if (!copy)
        return false; /* not remembered: passed on */
    size_t pos;
    if (d->count == d->cap) {
        pos = d->head; /* forget the oldest */
        index_del(d, find_slot(d, d->ring[pos].hash, NULL, 0, pos));
        free(d->ring[pos].bytes);
        d->head = (d->head + 1) % d->cap;
        d->count--;
        slot = find_slot(d, h, k, klen, 0);
    } else {
        pos = (d->head + d->count) % d->cap;
    }
    d->ring[pos] = (key){h, (uint16_t)klen, copy};
    memcpy(copy, k, klen);
    d->index[slot] = (uint32_t)pos + 1;
    d->count++;
    return false;
}
