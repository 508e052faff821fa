/* Levelled logging, shared by rtmd, librtm and the tools: one line per
 * message or event, as text (the default), logfmt or JSON, to stderr or a
 * file that can be reopened for log rotation; and the one escaping of
 * strings that come from peers before they reach a log line. */
#ifndef RTM_LOG_H
#define RTM_LOG_H

#include <stddef.h>

enum rtm_log_level { RTM_LOG_DEBUG = 0, RTM_LOG_INFO, RTM_LOG_WARN, RTM_LOG_ERROR, RTM_LOG_OFF };

void rtm_log_set_level(enum rtm_log_level level);
/* Parses "debug", "info", "warn", "error" or "off"; returns -1 if unknown. */
int rtm_log_parse_level(const char *name);
/* The name of a level or a format ("?" when out of range). */
const char *rtm_log_level_name(int level);
const char *rtm_log_format_name(int format);

/* Line formats. Every line has the time (UTC, milliseconds), the level and
 * either a message (LOG_INFO(...)) or an event with its fields
 * (rtm_log_event):
 *   text    2026-12-04T15:38:09.123Z info  store: ...
 *           2026-12-04T15:38:09.123Z info  event=conn_open conn=7 gate=client_tcp peer=127.0.0.1:50112
 *   logfmt  ts=2026-12-04T15:38:09.123Z level=info msg="store: ..."
 *           ts=... level=info event=conn_open conn=7 gate=client_tcp peer=127.0.0.1:50112
 *   json    {"ts":"2026-12-04T15:38:09.123Z","level":"info","msg":"store: ..."}
 *           {"ts":"...","level":"info","event":"conn_open","conn":"7",...}
 * Keys are fixed names; values are text. A logfmt value is quoted when it
 * is empty or holds a space, '=' or '"', with '"' and '\' escaped by a
 * backslash; a JSON value is a JSON string. Decoding either gives the text
 * as the text format shows it (peer strings as rtm_log_str wrote them). */
enum rtm_log_format { RTM_LOG_TEXT = 0, RTM_LOG_LOGFMT, RTM_LOG_JSON };
void rtm_log_set_format(enum rtm_log_format format);
/* Parses "text", "logfmt" or "json"; returns -1 if unknown. */
int rtm_log_parse_format(const char *name);

/* Lines go to the file at path from now on (appended to, created with mode
 * 0640), or to stderr when path is NULL or empty. 0, or -1 with errno set
 * and the output unchanged. */
int rtm_log_open(const char *path);
/* Opens the file again under its name (after a log rotation moved it) and
 * swaps it in for the open one without a moment with no log: 0, or -1 with
 * errno set and the old file kept. Nothing to do (0) on stderr. */
int rtm_log_reopen(void);
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

/* Writes one event: its name, then pairs of key and value (C strings),
 * ending with NULL: rtm_log_event(RTM_LOG_INFO, "conn_open", "conn", id,
 * "gate", gate, NULL). Keys are the caller's fixed names ([a-z0-9_]);
 * values go through rtm_log_str, so a peer's bytes are escaped there. */
void rtm_log_event(enum rtm_log_level level, const char *event, ...) __attribute__((sentinel));
/* The same with the fields in an array: kv[0] key, kv[1] value, ... (n
 * entries, n even); a NULL value is written empty. */
void rtm_log_event_kv(enum rtm_log_level level, const char *event, const char *const *kv, size_t n);
/* The last lines written at warn or error (as written, without the
 * newline, cut to fit), oldest first: copies up to max of them into out
 * and returns how many. Any thread. */
#define RTM_LOG_RECENT_MAX 20
#define RTM_LOG_RECENT_LINE 512
size_t rtm_log_recent(char out[][RTM_LOG_RECENT_LINE], size_t max);
/* Whether a line of level would be written (to skip preparing its fields). */
int rtm_log_enabled(enum rtm_log_level level);

#define LOG_DEBUG(...) rtm_log(RTM_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) rtm_log(RTM_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) rtm_log(RTM_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) rtm_log(RTM_LOG_ERROR, __VA_ARGS__)

#endif
