/* Levelled logging (see log.h): one line per message or event, with a UTC
 * timestamp and the level, in the chosen format, written with a single
 * write(2) so that lines from the writer thread and the event loop do not
 * interleave. Peer strings are escaped by rtm_log_str; every message is
 * checked once more before it is written, so that nothing can split a line
 * or put invalid UTF-8 in it. The output is stderr or a file; reopening
 * the file swaps it in with dup2 under the same descriptor, so a thread
 * writing meanwhile writes whole lines to one file or the other. The last
 * lines at warn or error are also kept in a small ring under a mutex (the
 * store's writer thread logs too) for the admin page (rtm_log_recent). */
#include "log.h"

#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum rtm_log_level current_level = RTM_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};
static enum rtm_log_format current_format = RTM_LOG_TEXT;
static const char *const format_names[] = {"text", "logfmt", "json"};
static int log_fd = STDERR_FILENO;
static char log_path[4096]; /* "" while lines go to stderr */

/* Room for one line: a message of up to MESSAGE_MAX bytes, or an event of
 * up to EVENT_PAIRS_MAX fields of escaped values, quoted. */
#define MESSAGE_MAX 1024
#define EVENT_PAIRS_MAX 12
#define LINE_MAX_BYTES 8192

void rtm_log_set_level(enum rtm_log_level level)
{
    current_level = level;
}

int rtm_log_parse_level(const char *name)
{
    for (int i = 0; i <= RTM_LOG_OFF; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *rtm_log_level_name(int level)
{
    return level >= 0 && level <= RTM_LOG_OFF ? level_names[level] : "?";
}

const char *rtm_log_format_name(int format)
{
    return format >= 0 && format <= RTM_LOG_JSON ? format_names[format] : "?";
}

int rtm_log_enabled(enum rtm_log_level level)
{
    return level >= current_level && level < RTM_LOG_OFF;
}

void rtm_log_set_format(enum rtm_log_format format)
{
    current_format = format;
}

int rtm_log_parse_format(const char *name)
{
    for (int i = 0; i <= RTM_LOG_JSON; i++)
        if (strcmp(name, format_names[i]) == 0)
            return i;
    return -1;
}

static int open_log_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int rtm_log_open(const char *path)
{
    if (!path || !path[0]) {
        if (log_fd != STDERR_FILENO)
            close(log_fd);
        log_fd = STDERR_FILENO;
        log_path[0] = '\0';
        return 0;
    }
    if (strlen(path) >= sizeof log_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open_log_file(path);
    if (fd < 0)
        return -1;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    snprintf(log_path, sizeof log_path, "%s", path);
    return 0;
}

int rtm_log_reopen(void)
{
    if (!log_path[0])
        return 0;
    int fd = open_log_file(log_path);
    if (fd < 0)
        return -1;
    int rc = dup2(fd, log_fd) < 0 ? -1 : 0;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Length of the character at p that may appear in a log line as it is:
 * printable ASCII or a valid UTF-8 character that is no C1 control and no
 * line or paragraph separator. 0 when it must be escaped. */
static size_t plain_char_len(const uint8_t *p, size_t len)
{
    if (p[0] < 0x80)
        return p[0] >= 0x20 && p[0] != 0x7f ? 1 : 0;
    size_t n = rtm_utf8_char_len(p, len);
    if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
        return 0; /* U+0080..U+009F */
    if (n == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
        return 0; /* U+2028, U+2029 */
    return n;
}

const char *rtm_log_str(char buf[RTM_LOG_STR_SIZE], const void *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = s;
    const size_t room = RTM_LOG_STR_SIZE - 4; /* keeps space for "..." and NUL */
    size_t out = 0, pos = 0;
    while (pos < len) {
        char esc[4];
        size_t n = plain_char_len(p + pos, len - pos), elen = 0;
        const char *piece = (const char *)p + pos;
        if (n == 0 || p[pos] == '\\') {
            uint8_t b = p[pos];
            n = 1;
            piece = esc;
            esc[0] = '\\';
            elen = 2;
            if (b == '\\')
                esc[1] = '\\';
            else if (b == '\n')
                esc[1] = 'n';
            else if (b == '\r')
                esc[1] = 'r';
            else if (b == '\t')
                esc[1] = 't';
            else {
                esc[1] = 'x';
                esc[2] = hex[b >> 4];
                esc[3] = hex[b & 15];
                elen = 4;
            }
        } else {
            elen = n;
        }
        if (out + elen > room) {
            memcpy(buf + out, "...", 3);
            out += 3;
            break;
        }
        memcpy(buf + out, piece, elen);
        out += elen;
        pos += n;
    }
    buf[out] = '\0';
    return buf;
}

/* The last guard of rtm_log: every byte of text[0..len) that is not part
 * of a character allowed as it is becomes '?'. */
static void neutralize(char *text, size_t len)
{
    uint8_t *p = (uint8_t *)text;
    size_t pos = 0;
    while (pos < len) {
        size_t n = plain_char_len(p + pos, len - pos);
        if (n == 0) {
            p[pos] = '?';
            n = 1;
        }
        pos += n;
    }
}

/* ---- lines ---- */

typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
} line;

/* Appends n bytes; what does not fit (beside the closing bytes a line
 * needs: '"', '}' and '\n') is dropped. */
static void put(line *l, const char *s, size_t n)
{
    size_t room = sizeof l->buf - 4 - l->len;
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* A value in the line's format (see log.h): JSON strings, logfmt (and
 * text events) quoted only when they must be. */
static void put_value(line *l, const char *v)
{
    bool quote = current_format == RTM_LOG_JSON || !v[0] || strpbrk(v, " =\"") != NULL;
    if (quote)
        put(l, "\"", 1);
    for (const char *c = v; *c; c++) {
        if (quote && (*c == '"' || *c == '\\'))
            put(l, "\\", 1);
        put(l, c, 1);
    }
    if (quote)
        put(l, "\"", 1);
}

/* The key of a field: ' key=' (first: no space), or ',"key":' in JSON. */
static void put_key(line *l, const char *key)
{
    if (current_format == RTM_LOG_JSON) {
        put_str(l, ",\"");
        put_str(l, key);
        put_str(l, "\":");
    } else {
        put_str(l, " ");
        put_str(l, key);
        put_str(l, "=");
    }
}

/* Time and level; in text the message or event follows after two spaces
 * of padding, as the lines have always looked. */
static void put_head(line *l, enum rtm_log_level level)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    l->len = 0;
    char head[128];
    if (current_format == RTM_LOG_TEXT)
        snprintf(head, sizeof head, "%s %-5s", when, level_names[level]);
    else if (current_format == RTM_LOG_LOGFMT)
        snprintf(head, sizeof head, "ts=%s level=%s", when, level_names[level]);
    else
        snprintf(head, sizeof head, "{\"ts\":\"%s\",\"level\":\"%s\"", when, level_names[level]);
    put_str(l, head);
}

/* ---- the ring of recent warnings and errors (rtm_log_recent) ---- */

static struct {
    pthread_mutex_t lock;
    char lines[RTM_LOG_RECENT_MAX][RTM_LOG_RECENT_LINE];
    size_t next;  /* slot the next line goes to */
    size_t count; /* lines held, at most RTM_LOG_RECENT_MAX */
} recent = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Keeps the line (already valid UTF-8 without control characters: see
 * neutralize and rtm_log_str), cut at a character boundary to fit. */
static void remember(const char *text, size_t len)
{
    if (len >= RTM_LOG_RECENT_LINE) {
        len = RTM_LOG_RECENT_LINE - 1;
        while (len > 0 && ((uint8_t)text[len] & 0xC0) == 0x80)
            len--; /* text[len] would be a continuation byte: cut before its lead byte */
    }
    pthread_mutex_lock(&recent.lock);
    memcpy(recent.lines[recent.next], text, len);
    recent.lines[recent.next][len] = '\0';
    recent.next = (recent.next + 1) % RTM_LOG_RECENT_MAX;
    if (recent.count < RTM_LOG_RECENT_MAX)
        recent.count++;
    pthread_mutex_unlock(&recent.lock);
}

size_t rtm_log_recent(char out[][RTM_LOG_RECENT_LINE], size_t max)
{
    pthread_mutex_lock(&recent.lock);
    size_t n = recent.count < max ? recent.count : max;
    for (size_t i = 0; i < n; i++) {
        size_t slot = (recent.next + RTM_LOG_RECENT_MAX - n + i) % RTM_LOG_RECENT_MAX;
        memcpy(out[i], recent.lines[slot], RTM_LOG_RECENT_LINE);
    }
    pthread_mutex_unlock(&recent.lock);
    return n;
}

static void write_line(line *l, enum rtm_log_level level)
{
    if (current_format == RTM_LOG_JSON)
        l->buf[l->len++] = '}';
    if (level >= RTM_LOG_WARN)
        remember(l->buf, l->len);
    l->buf[l->len++] = '\n';
    const char *p = l->buf;
    size_t left = l->len;
    while (left > 0) {
        ssize_t n = write(log_fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* nowhere left to say so */
        p += n;
        left -= (size_t)n;
    }
}

void rtm_log(enum rtm_log_level level, const char *fmt, ...)
{
    if (!rtm_log_enabled(level))
        return;
    char msg[MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    neutralize(msg, strlen(msg));
    line l;
    put_head(&l, level);
    if (current_format == RTM_LOG_TEXT) {
        put_str(&l, " ");
        put_str(&l, msg);
    } else {
        put_key(&l, "msg");
        put_value(&l, msg);
    }
    write_line(&l, level);
}

void rtm_log_event_kv(enum rtm_log_level level, const char *event, const char *const *kv, size_t n)
{
    if (!rtm_log_enabled(level))
        return;
    line l;
    put_head(&l, level);
    if (current_format == RTM_LOG_TEXT)
        put_str(&l, " event=");
    else
        put_key(&l, "event");
    put_value(&l, event);
    for (size_t i = 0; i + 1 < n && i < 2 * EVENT_PAIRS_MAX; i += 2) {
        const char *value = kv[i + 1] ? kv[i + 1] : "";
        char escaped[RTM_LOG_STR_SIZE];
        put_key(&l, kv[i]);
        put_value(&l, rtm_log_str(escaped, value, strlen(value)));
    }
    write_line(&l, level);
}

void rtm_log_event(enum rtm_log_level level, const char *event, ...)
{
    if (!rtm_log_enabled(level))
        return;
    const char *kv[2 * EVENT_PAIRS_MAX];
    size_t n = 0;
    va_list ap;
    va_start(ap, event);
    while (n < 2 * EVENT_PAIRS_MAX) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        kv[n++] = key;
        kv[n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    rtm_log_event_kv(level, event, kv, n);
}
