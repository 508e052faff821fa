/* The sensitive-word list and its Aho-Corasick matcher (see wordlist.h).
 *
 * Why an automaton of our own: the matching must be case-insensitive over
 * Unicode code points (Cyrillic, Greek, Latin-1 as much as ASCII) and find
 * substrings (CJK has no word boundaries), one pass per message over
 * thousands of words. No maintained C library in Debian 12 does that:
 * Hyperscan (libhyperscan-dev) is amd64-only and its caseless mode folds
 * ASCII only; PCRE2 with a 10,000-branch alternation backtracks per
 * position; ICU's and libunistring's searches find one pattern at a time.
 * So the case folding comes from libunistring (uc_toupper, uc_tolower:
 * one code point to one, which keeps one '*' per masked code point), and
 * the automaton, over the folded code points, is here: about 300 lines
 * that libFuzzer-style hostile input cannot make slower than linear.
 *
 * Layout. The folded code points of the words are numbered (the
 * alphabet, symbols 1..n; 0 is any code point in no word, which sends the
 * scan back to the root). The trie's edges are in one array sorted by
 * (node, symbol), each node's a slice of it, searched linearly when short;
 * longer ones are looked up in a hash table of (node, symbol); a 64-bit mask per node of its children's
 * symbols (modulo 64) ends most lookups that fail (the usual case on the
 * failure chain) before any search; the root has a dense table. What a
 * step reads of a node is in one 32-byte record. Failure
 * links make it an Aho-Corasick automaton; per node, mask_len is the
 * length of the longest word ending there (masking needs only that: the
 * shorter ones ending at the same place are inside it) and dict the next
 * node along the failure chain where a word ends (naming every word). */
#include "wordlist.h"

#include "utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicase.h>

#define NONE UINT32_MAX
#define RING 64 /* >= WORDLIST_MAX_WORD_CHARS, a power of two */
#define LINEAR_MAX 4

/* A node, in one cache line's half: what a step reads. */
typedef struct ac_node {
    uint64_t bits;     /* bit (sym & 63) set for the symbol of each child:
                        * most failing lookups end on it, unsearched */
    uint32_t edges;    /* its first edge; the edges are sorted by symbol */
    uint32_t nedges;
    uint32_t fail;
    uint32_t word;     /* the word ending here, or NONE */
    uint32_t dict;     /* the next node along fail where a word ends, 0 = none */
    uint32_t mask_len; /* code points of the longest word ending here */
} ac_node;

typedef struct ac_edge {
    uint32_t sym, to;
} ac_edge;

typedef struct ac_slot {
    uint32_t node, sym, to; /* sym 0: empty */
} ac_slot;

static inline uint32_t slot_hash(uint32_t node, uint32_t sym)
{
    uint64_t x = ((uint64_t)node << 32 | sym) * 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(x >> 32);
}

struct wordlist {
    /* The words as written: text[word_off[i] .. word_off[i] + word_len[i]). */
    char *text;
    uint32_t *word_off;
    uint16_t *word_len;
    size_t nwords;
    /* The alphabet: ASCII directly, other code points in an open-addressed
     * table (key 0 = empty: NUL is never in a word). */
    uint32_t ascii_sym[128];
    uint32_t *sym_key, *sym_val;
    uint32_t sym_mask;
    uint32_t nsyms;
    /* The automaton. */
    uint32_t nnodes;
    ac_node *nodes;
    ac_edge *edges;
    ac_slot *slots;       /* every edge again, hashed by (node, symbol) */
    uint32_t slot_mask;
    uint32_t *root_next;  /* nsyms + 1: the root's child by symbol, 0 = none */
    uint32_t *word_at;    /* while building: the word ending at each node, or NONE */
};

uint32_t wordlist_fold(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    return uc_tolower(uc_toupper(cp));
}

/* Decodes the valid character of n bytes at p. */
static uint32_t decode(const uint8_t *p, size_t n)
{
    switch (n) {
    case 1:
        return p[0];
    case 2:
        return (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
    case 3:
        return (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
    default:
        return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 | (uint32_t)(p[2] & 0x3f) << 6 |
               (p[3] & 0x3f);
    }
}

static uint32_t hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* The symbol of a folded code point, 0 when no word has it. */
static inline uint32_t symbol(const wordlist *wl, uint32_t f)
{
    if (f < 0x80)
        return wl->ascii_sym[f];
    for (uint32_t i = hash32(f) & wl->sym_mask;; i = (i + 1) & wl->sym_mask) {
        if (wl->sym_key[i] == f)
            return wl->sym_val[i];
        if (wl->sym_key[i] == 0)
            return 0;
    }
}

/* The child of node by sym, or NONE. */
static inline uint32_t child(const wordlist *wl, uint32_t node, uint32_t sym)
{
    if (node == 0)
        return wl->root_next[sym] ? wl->root_next[sym] : NONE;
    const ac_node *n = &wl->nodes[node];
    if (!(n->bits >> (sym & 63) & 1))
        return NONE;
    if (n->nedges <= LINEAR_MAX) {
        const ac_edge *e = wl->edges + n->edges;
        for (uint32_t i = 0; i < n->nedges; i++)
            if (e[i].sym == sym)
                return e[i].to;
        return NONE;
    }
    for (uint32_t i = slot_hash(node, sym) & wl->slot_mask;; i = (i + 1) & wl->slot_mask) {
        const ac_slot *sl = &wl->slots[i];
        if (sl->node == node && sl->sym == sym)
            return sl->to;
        if (sl->sym == 0)
            return NONE;
    }
}

static inline uint32_t step(const wordlist *wl, uint32_t state, uint32_t sym)
{
    if (sym == 0)
        return 0;
    for (;;) {
        uint32_t next = child(wl, state, sym);
        if (next != NONE)
            return next;
        if (state == 0)
            return 0;
        state = wl->nodes[state].fail;
    }
}

/* ---- building ---- */

typedef struct builder {
    wordlist *wl;
    /* Trie edges while building: (parent, sym) -> child, open addressing. */
    uint64_t *ekey; /* parent << 32 | sym, 0 = empty (sym is never 0) */
    uint32_t *eval;
    size_t emask;
    uint32_t nedges;
    size_t cap_nodes; /* bound on nodes: total code points + 1 */
    uint8_t *depth;
} builder;

static void set_err(char *err, size_t errlen, const char *source, size_t line, const char *msg)
{
    if (!err || !errlen)
        return;
    if (line)
        snprintf(err, errlen, "%s:%zu: %s", source, line, msg);
    else
        snprintf(err, errlen, "%s: %s", source, msg);
}

static uint32_t add_symbol(wordlist *wl, uint32_t f)
{
    if (f < 0x80) {
        if (!wl->ascii_sym[f])
            wl->ascii_sym[f] = ++wl->nsyms;
        return wl->ascii_sym[f];
    }
    uint32_t i = hash32(f) & wl->sym_mask;
    for (; wl->sym_key[i]; i = (i + 1) & wl->sym_mask)
        if (wl->sym_key[i] == f)
            return wl->sym_val[i];
    wl->sym_key[i] = f;
    wl->sym_val[i] = ++wl->nsyms;
    return wl->nsyms;
}

/* The child of parent by sym, made when missing (*made). */
static uint32_t trie_child(builder *b, uint32_t parent, uint32_t sym, bool *made)
{
    uint64_t key = (uint64_t)parent << 32 | sym;
    size_t i = hash32((uint32_t)(key * 0x9e3779b97f4a7c15ULL >> 32)) & b->emask;
    for (; b->ekey[i]; i = (i + 1) & b->emask)
        if (b->ekey[i] == key) {
            *made = false;
            return b->eval[i];
        }
    uint32_t node = b->wl->nnodes++;
    b->ekey[i] = key;
    b->eval[i] = node;
    b->nedges++;
    b->depth[node] = (uint8_t)(b->depth[parent] + 1);
    b->wl->word_at[node] = NONE;
    *made = true;
    return node;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

typedef struct edge {
    uint32_t parent, sym, to;
} edge;

static int edge_cmp(const void *a, const void *b)
{
    const edge *x = a, *y = b;
    if (x->parent != y->parent)
        return x->parent < y->parent ? -1 : 1;
    return x->sym < y->sym ? -1 : x->sym > y->sym;
}

/* Turns the hash of edges into the sorted slices, the root's table, and
 * the failure, dict and mask_len of every node (breadth first). */
static int compile(builder *b)
{
    wordlist *wl = b->wl;
    uint32_t n = wl->nnodes;
    edge *edges = malloc((b->nedges ? b->nedges : 1) * sizeof *edges);
    wl->nodes = calloc(n, sizeof *wl->nodes);
    wl->edges = malloc((b->nedges ? b->nedges : 1) * sizeof *wl->edges);
    wl->root_next = calloc((size_t)wl->nsyms + 1, sizeof *wl->root_next);
    wl->slot_mask = (uint32_t)pow2_at_least(2 * (size_t)b->nedges + 2) - 1;
    wl->slots = calloc((size_t)wl->slot_mask + 1, sizeof *wl->slots);
    uint32_t *queue = malloc((size_t)n * sizeof *queue);
    int rc = -1;
    if (!edges || !wl->nodes || !wl->edges || !wl->root_next || !wl->slots || !queue)
        goto out;
    /* The alphabet's table, sized for what it holds now. */
    uint32_t mask = (uint32_t)pow2_at_least(2 * (size_t)wl->nsyms + 2) - 1;
    uint32_t *key = calloc((size_t)mask + 1, sizeof *key), *val = malloc(((size_t)mask + 1) * sizeof *val);
    if (!key || !val) {
        free(key);
        free(val);
        goto out;
    }
    for (uint32_t i = 0; i <= wl->sym_mask; i++) {
        if (!wl->sym_key[i])
            continue;
        uint32_t j = hash32(wl->sym_key[i]) & mask;
        while (key[j])
            j = (j + 1) & mask;
        key[j] = wl->sym_key[i];
        val[j] = wl->sym_val[i];
    }
    free(wl->sym_key);
    free(wl->sym_val);
    wl->sym_key = key;
    wl->sym_val = val;
    wl->sym_mask = mask;
    uint32_t k = 0;
    for (size_t i = 0; i <= b->emask; i++)
        if (b->ekey[i])
            edges[k++] = (edge){(uint32_t)(b->ekey[i] >> 32), (uint32_t)b->ekey[i], b->eval[i]};
    qsort(edges, k, sizeof *edges, edge_cmp);
    for (uint32_t i = 0; i < n; i++)
        wl->nodes[i].word = wl->word_at[i];
    for (uint32_t i = 0; i < k; i++) {
        ac_node *p = &wl->nodes[edges[i].parent];
        if (p->nedges++ == 0)
            p->edges = i;
        p->bits |= 1ULL << (edges[i].sym & 63);
        wl->edges[i] = (ac_edge){edges[i].sym, edges[i].to};
        uint32_t j = slot_hash(edges[i].parent, edges[i].sym) & wl->slot_mask;
        while (wl->slots[j].sym)
            j = (j + 1) & wl->slot_mask;
        wl->slots[j] = (ac_slot){edges[i].parent, edges[i].sym, edges[i].to};
        if (edges[i].parent == 0)
            wl->root_next[edges[i].sym] = edges[i].to;
    }
    /* Breadth first: a node's failure is shallower, so done before it. */
    uint32_t head = 0, tail = 0;
    for (uint32_t e = 0; e < wl->nodes[0].nedges; e++)
        queue[tail++] = wl->edges[wl->nodes[0].edges + e].to;
    while (head < tail) {
        ac_node *u = &wl->nodes[queue[head++]];
        const ac_node *f = &wl->nodes[u->fail];
        u->mask_len = u->word != NONE ? b->depth[u - wl->nodes] : f->mask_len;
        u->dict = f->word != NONE ? u->fail : f->dict;
        for (uint32_t e = u->edges; e < u->edges + u->nedges; e++) {
            uint32_t v = wl->edges[e].to;
            wl->nodes[v].fail = step(wl, u->fail, wl->edges[e].sym);
            queue[tail++] = v;
        }
    }
    free(wl->word_at);
    wl->word_at = NULL;
    rc = 0;
out:
    free(edges);
    free(queue);
    return rc;
}

/* One line, trimmed: checks it, folds it into cps, returns its code point
 * count, or -1 with msg. */
static long fold_word(const uint8_t *p, size_t n, uint32_t *cps, const char **msg)
{
    long count = 0;
    for (size_t i = 0; i < n;) {
        size_t len = rtm_utf8_char_len(p + i, n - i);
        if (len == 0) {
            *msg = "invalid UTF-8";
            return -1;
        }
        uint32_t cp = decode(p + i, len);
        if ((cp < 0x20 && cp != '\t') || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
            *msg = "control character in a word";
            return -1;
        }
        if (count == WORDLIST_MAX_WORD_CHARS) {
            *msg = "word longer than 64 characters";
            return -1;
        }
        cps[count++] = wordlist_fold(cp);
        i += len;
    }
    return count;
}

wordlist *wordlist_parse(const char *text, size_t len, const char *source, char *err, size_t errlen)
{
    if (len > WORDLIST_MAX_FILE_BYTES) {
        set_err(err, errlen, source, 0, "larger than 2097152 bytes");
        return NULL;
    }
    builder b = {0};
    wordlist *wl = calloc(1, sizeof *wl);
    if (!wl)
        goto oom;
    b.wl = wl;
    /* Bounds from the size: every code point of a word is a byte at least. */
    b.cap_nodes = len + 1;
    size_t lines_max = len + 1;
    if (lines_max > WORDLIST_MAX_WORDS)
        lines_max = WORDLIST_MAX_WORDS;
    wl->text = malloc(len + 1);
    wl->word_off = malloc(lines_max * sizeof *wl->word_off);
    wl->word_len = malloc(lines_max * sizeof *wl->word_len);
    wl->word_at = malloc(b.cap_nodes * sizeof *wl->word_at);
    b.depth = calloc(b.cap_nodes, 1);
    b.emask = pow2_at_least(2 * b.cap_nodes) - 1;
    b.ekey = calloc(b.emask + 1, sizeof *b.ekey);
    b.eval = malloc((b.emask + 1) * sizeof *b.eval);
    wl->sym_mask = (uint32_t)(pow2_at_least(2 * b.cap_nodes) - 1);
    wl->sym_key = calloc((size_t)wl->sym_mask + 1, sizeof *wl->sym_key);
    wl->sym_val = malloc(((size_t)wl->sym_mask + 1) * sizeof *wl->sym_val);
    if (!wl->text || !wl->word_off || !wl->word_len || !wl->word_at || !b.depth || !b.ekey || !b.eval ||
        !wl->sym_key || !wl->sym_val)
        goto oom;
    wl->nnodes = 1; /* the root */
    wl->word_at[0] = NONE;

    const uint8_t *p = (const uint8_t *)text, *end = p + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    size_t line = 0, textlen = 0;
    uint32_t cps[WORDLIST_MAX_WORD_CHARS];
    while (p < end) {
        line++;
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *eol = nl ? nl : end, *s = p;
        p = nl ? nl + 1 : end;
        if (eol > s && eol[-1] == '\r')
            eol--;
        while (s < eol && (*s == ' ' || *s == '\t'))
            s++;
        while (eol > s && (eol[-1] == ' ' || eol[-1] == '\t'))
            eol--;
        if (s == eol || *s == '#')
            continue;
        const char *msg = NULL;
        long n = fold_word(s, (size_t)(eol - s), cps, &msg);
        if (n < 0) {
            set_err(err, errlen, source, line, msg);
            goto fail;
        }
        uint32_t node = 0;
        for (long i = 0; i < n; i++) {
            bool made;
            node = trie_child(&b, node, add_symbol(wl, cps[i]), &made);
        }
        if (wl->word_at[node] != NONE)
            continue; /* the same word, folded, again */
        if (wl->nwords == WORDLIST_MAX_WORDS) {
            set_err(err, errlen, source, line, "more than 100000 words");
            goto fail;
        }
        wl->word_at[node] = (uint32_t)wl->nwords;
        wl->word_off[wl->nwords] = (uint32_t)textlen;
        wl->word_len[wl->nwords] = (uint16_t)(eol - s);
        memcpy(wl->text + textlen, s, (size_t)(eol - s));
        textlen += (size_t)(eol - s);
        wl->nwords++;
    }
    if (compile(&b) != 0)
        goto oom;
    free(b.depth);
    free(b.ekey);
    free(b.eval);
    return wl;
oom:
    set_err(err, errlen, source, 0, "out of memory");
fail:
    free(b.depth);
    free(b.ekey);
    free(b.eval);
    wordlist_free(wl);
    return NULL;
}

wordlist *wordlist_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(WORDLIST_MAX_FILE_BYTES + 1);
    wordlist *wl = NULL;
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
    } else {
        size_t n = fread(buf, 1, WORDLIST_MAX_FILE_BYTES + 1, f);
        if (ferror(f))
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        else
            wl = wordlist_parse(buf, n, path, err, errlen);
    }
    free(buf);
    fclose(f);
    return wl;
}

void wordlist_free(wordlist *wl)
{
    if (!wl)
        return;
    free(wl->text);
    free(wl->word_off);
    free(wl->word_len);
    free(wl->sym_key);
    free(wl->sym_val);
    free(wl->nodes);
    free(wl->edges);
    free(wl->slots);
    free(wl->root_next);
    free(wl->word_at);
    free(wl);
}

size_t wordlist_count(const wordlist *wl)
{
    return wl->nwords;
}

const char *wordlist_word(const wordlist *wl, size_t i, size_t *len)
{
    *len = wl->word_len[i];
    return wl->text + wl->word_off[i];
}

/* Whether b has the word (bytes as written): a scan of the word itself. */
static bool has_word(const wordlist *b, const char *w, size_t n)
{
    uint32_t state = 0;
    for (size_t i = 0; i < n;) {
        size_t len = rtm_utf8_char_len((const uint8_t *)w + i, n - i);
        state = child(b, state, symbol(b, wordlist_fold(decode((const uint8_t *)w + i, len))));
        if (state == NONE)
            return false;
        i += len;
    }
    if (b->nodes[state].word == NONE)
        return false;
    size_t blen;
    const char *bw = wordlist_word(b, b->nodes[state].word, &blen);
    return blen == n && memcmp(bw, w, n) == 0;
}

size_t wordlist_missing(const wordlist *a, const wordlist *b)
{
    size_t missing = 0;
    for (size_t i = 0; i < a->nwords; i++) {
        size_t n;
        const char *w = wordlist_word(a, i, &n);
        if (!has_word(b, w, n))
            missing++;
    }
    return missing;
}

/* ---- scanning ---- */

static int grow(uint32_t **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    uint32_t *q = realloc(*p, c * sizeof *q);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Adds the masked run [start, end): runs end in increasing order, so a new
 * one swallows the runs it overlaps or touches at the top of the stack. */
static int add_span(wordlist_scratch *s, uint32_t start, uint32_t end)
{
    while (s->nspans && s->spans[2 * s->nspans - 1] >= start) {
        uint32_t prev = s->spans[2 * s->nspans - 2];
        if (prev < start)
            start = prev;
        s->nspans--;
    }
    if (grow(&s->spans, &s->spans_cap, 2 * s->nspans + 2) != 0)
        return -1;
    s->spans[2 * s->nspans] = start;
    s->spans[2 * s->nspans + 1] = end;
    s->nspans++;
    return 0;
}

/* A new stamp for the words this scan finds, s->seen covering every word
 * of wl. */
static int start_words(wordlist_scratch *s, const wordlist *wl)
{
    size_t cap = s->seen_cap;
    if (grow(&s->seen, &s->seen_cap, wl->nwords) != 0)
        return -1;
    if (s->seen_cap > cap)
        memset(s->seen + cap, 0, (s->seen_cap - cap) * sizeof *s->seen);
    if (++s->gen == 0) {
        memset(s->seen, 0, s->seen_cap * sizeof *s->seen);
        s->gen = 1;
    }
    return 0;
}

long wordlist_scan(const wordlist *wl, const uint8_t *text, size_t len, wordlist_scratch *s, uint8_t *out,
                   size_t *out_len, uint32_t *words, size_t max_words, size_t *nwords)
{
    uint32_t ring[RING];
    uint32_t state = 0;
    size_t k = 0;
    long matches = 0;
    size_t found = 0;
    s->nspans = 0;
    if (nwords)
        *nwords = 0;
    if (words && start_words(s, wl) != 0)
        return -1;
    if (len == 0) {
        if (out_len)
            *out_len = 0;
        return 0;
    }
    if (len > UINT32_MAX)
        return -1;
    for (size_t pos = 0; pos < len; k++) {
        uint32_t sym;
        size_t n;
        if (text[pos] < 0x80) {
            n = 1;
            sym = wl->ascii_sym[text[pos] >= 'A' && text[pos] <= 'Z' ? text[pos] + 32 : text[pos]];
        } else {
            n = rtm_utf8_char_len(text + pos, len - pos);
            if (n == 0) { /* not UTF-8: kept, and no match spans it */
                state = 0;
                pos++;
                continue;
            }
            sym = symbol(wl, wordlist_fold(decode(text + pos, n)));
        }
        ring[k & (RING - 1)] = (uint32_t)pos;
        pos += n;
        state = step(wl, state, sym);
        const ac_node *node = &wl->nodes[state];
        if (!node->mask_len)
            continue;
        if (out && add_span(s, ring[(k - node->mask_len + 1) & (RING - 1)], (uint32_t)pos) != 0)
            return -1;
        matches++;
        /* Every word ending here, each once, until max_words are found. A
         * word seen before had the rest of its chain (its suffixes) seen
         * with it, so the walk stops there: each word costs one step. */
        for (uint32_t o = node->word != NONE ? state : node->dict; words && found < max_words && o;
             o = wl->nodes[o].dict) {
            uint32_t w = wl->nodes[o].word;
            if (s->seen[w] == s->gen)
                break;
            s->seen[w] = s->gen;
            words[found++] = w;
        }
    }
    long masked = 0;
    if (out) {
        size_t w = 0, from = 0;
        for (size_t i = 0; i < s->nspans; i++) {
            uint32_t a = s->spans[2 * i], b = s->spans[2 * i + 1];
            memcpy(out + w, text + from, a - from);
            w += a - from;
            for (uint32_t j = a; j < b; j++)
                if ((text[j] & 0xc0) != 0x80) {
                    out[w++] = '*';
                    masked++;
                }
            from = b;
        }
        memcpy(out + w, text + from, len - from);
        *out_len = w + len - from;
    }
    if (words)
        *nwords = found;
    return out ? masked : matches;
}

void wordlist_scratch_free(wordlist_scratch *s)
{
    free(s->spans);
    free(s->seen);
    memset(s, 0, sizeof *s);
}
