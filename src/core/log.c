/* Levelled logging to stderr (see log.h): one line per event, with a UTC
 * timestamp and the level, written with a single fputs so that lines from
 * the writer thread and the event loop do not interleave. Peer strings are
 * escaped by rtm_log_str; every line is checked once more before it is
 * written, so that nothing can split it or put invalid UTF-8 in it. */
#include "log.h"

#include "utf8.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum rtm_log_level current_level = RTM_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

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

void rtm_log(enum rtm_log_level level, const char *fmt, ...)
{
    if (level < current_level)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    neutralize(line + n, len - (size_t)n);
    line[len] = '\n';
    line[len + 1] = '\0';
    fputs(line, stderr);
}
