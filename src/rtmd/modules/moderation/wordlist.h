/* A sensitive-word list and its multi-pattern matcher: the list is parsed
 * from a UTF-8 text file (one word or phrase a line), folded to case-less
 * code points and compiled into an Aho-Corasick automaton; a scan of a
 * text finds every occurrence of every word in one pass, case-insensitive
 * beyond ASCII (Latin-1, Greek, Cyrillic, ...) and without word boundaries
 * (substrings: CJK has no spaces). Scans mask what matched (one '*' per
 * code point) and name the words found. A list is immutable once built, so
 * one may be read while a newer one is built (a reload). Knows nothing of
 * rtmd; moderation.c applies it to projects. */
#ifndef RTMD_WORDLIST_H
#define RTMD_WORDLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds of a list file: bytes of the file, words in it (after blank and
 * comment lines), code points of one word. */
#define WORDLIST_MAX_FILE_BYTES (2 * 1024 * 1024)
#define WORDLIST_MAX_WORDS 100000
#define WORDLIST_MAX_WORD_CHARS 64

typedef struct wordlist wordlist;

/* The growable working memory of scans: one per thread that scans (the
 * loop's in rtmd), reused from scan to scan; zero-initialised before its
 * first use, wordlist_scratch_free at the end. */
typedef struct wordlist_scratch {
    uint32_t *spans; /* [start, end) byte pairs of the masked runs */
    size_t nspans, spans_cap;
    uint32_t *seen;  /* per word of the largest list scanned: the scan that last found it */
    size_t seen_cap;
    uint32_t gen;    /* this scan's stamp */
} wordlist_scratch;

/* Parses list text. Lines end in LF or CRLF; spaces and tabs around a
 * line are dropped; blank lines and lines whose first other character is
 * '#' are skipped; a UTF-8 byte order mark at the start is skipped. Every
 * other line is a word: valid UTF-8, no control characters but tab, at
 * most WORDLIST_MAX_WORD_CHARS code points. Words equal after case folding
 * count once (the first spelling is the one reported). On error returns
 * NULL and writes "source:line: message" (or "source: message") in err. */
wordlist *wordlist_parse(const char *text, size_t len, const char *source, char *err, size_t errlen);
/* Reads and parses a file of at most WORDLIST_MAX_FILE_BYTES; messages
 * name the path. */
wordlist *wordlist_load(const char *path, char *err, size_t errlen);
void wordlist_free(wordlist *wl);

/* Distinct words of the list, and word i as written in the file (after
 * trimming; not NUL-terminated). */
size_t wordlist_count(const wordlist *wl);
const char *wordlist_word(const wordlist *wl, size_t i, size_t *len);
/* How many words of a are not in b, compared as written (a reload's log). */
size_t wordlist_missing(const wordlist *a, const wordlist *b);

/* The case folding of matching: the simple (one code point to one)
 * lower-case of the upper-case of cp (libunistring), so that 'Σ', 'σ' and
 * final 'ς' all fold to 'σ', 'K' (Kelvin) to 'k', 'ſ' to 's'. */
uint32_t wordlist_fold(uint32_t cp);

/* Scans text (len bytes, any bytes: a byte that is not part of valid
 * UTF-8 is kept as it is, never masked, and no match spans it). With out
 * (room for len bytes) writes the text with every code point inside an
 * occurrence of a word replaced by one '*' into out, its length in
 * *out_len (never more than len). With words (room for max_words), writes
 * the indexes of the distinct words that occur, in the order of their
 * first occurrence's end (at one end, longest first), at most max_words,
 * their count in *nwords. Linear in len whatever the list: the failure
 * steps are amortized over the characters, and each word named costs one
 * step.
 * Returns 0 when no word occurs, else a positive count (with out: the
 * code points masked; without: the places where words end), or -1 when
 * the scratch cannot grow (out of memory). */
long wordlist_scan(const wordlist *wl, const uint8_t *text, size_t len, wordlist_scratch *s, uint8_t *out,
                   size_t *out_len, uint32_t *words, size_t max_words, size_t *nwords);

void wordlist_scratch_free(wordlist_scratch *s);

#endif
