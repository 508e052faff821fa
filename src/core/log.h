/* Levelled logging to stderr, shared by rtmd, librtm and the tools, and the
 * one escaping of strings that come from peers before they reach a log
 * line. */
#ifndef RTM_LOG_H
#define RTM_LOG_H

#include <stddef.h>

enum rtm_log_level { RTM_LOG_DEBUG = 0, RTM_LOG_INFO, RTM_LOG_WARN, RTM_LOG_ERROR, RTM_LOG_OFF };

void rtm_log_set_level(enum rtm_log_level level);
/* Parses "debug", "info", "warn", "error" or "off"; returns -1 if unknown. */
int rtm_log_parse_level(const char *name);
/* Writes one line. As a last guard, a byte of the formatted message that is
 * a control character or not part of valid UTF-8 is written as '?', so no
 * argument can split a line or put invalid text into the log; peer strings
 * go through rtm_log_str first, which keeps them readable and unambiguous. */
void rtm_log(enum rtm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Room for one escaped peer string, terminator included. */
#define RTM_LOG_STR_SIZE 256
/* Escapes len bytes from a peer (a method name, a path, a header, an id,
 * an error text...) into buf for a log line and returns buf. Printable
 * ASCII and valid UTF-8 characters stay as they are, except: backslash as
 * \\, newline \n, carriage return \r, tab \t; other control characters
 * (C0, DEL, C1, U+2028, U+2029) and bytes that are not valid UTF-8 as \xHH
 * per byte. Output longer than the buffer ends with "...". */
const char *rtm_log_str(char buf[RTM_LOG_STR_SIZE], const void *s, size_t len);

#define LOG_DEBUG(...) rtm_log(RTM_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) rtm_log(RTM_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) rtm_log(RTM_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) rtm_log(RTM_LOG_ERROR, __VA_ARGS__)

#endif
