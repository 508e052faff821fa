/* Unit tests of the log (src/core/log.h): the escaping helper keeps peer
 * strings readable and makes control characters, separators and invalid
 * UTF-8 visible escapes; rtm_log never writes a raw control character or
 * an invalid byte, whatever it is given; the logfmt and JSON formats give
 * back, once decoded, what the text format shows; and a log file reopened
 * after a rotation takes the next lines; the ring of recent warnings and
 * errors keeps the last lines at warn or error only, oldest first, cut at
 * a character boundary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"
#include "utf8.h"

static const char *esc(const char *s, size_t len)
{
    static char buf[RTM_LOG_STR_SIZE];
    return rtm_log_str(buf, s, len);
}

#define ESC(lit) esc(lit, sizeof lit - 1)

static void text_stays_as_it_is(void **state)
{
    assert_string_equal(ESC("sendmsg"), "sendmsg");
    assert_string_equal(ESC("a b'\"c"), "a b'\"c");
    assert_string_equal(ESC("caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80"),
                        "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80");
    assert_string_equal(ESC(""), "");
}

static void controls_and_backslash_are_escaped(void **state)
{
    assert_string_equal(ESC("a\nb\rc\td"), "a\\nb\\rc\\td");
    assert_string_equal(ESC("back\\slash"), "back\\\\slash");
    assert_string_equal(ESC("\x01\x1b[31m\x7f"), "\\x01\\x1b[31m\\x7f");
    assert_string_equal(ESC("nul\0end"), "nul\\x00end");
    /* C1 controls and the Unicode line and paragraph separators */
    assert_string_equal(ESC("\xc2\x85|\xe2\x80\xa8|\xe2\x80\xa9"), "\\xc2\\x85|\\xe2\\x80\\xa8|\\xe2\\x80\\xa9");
}

static void invalid_utf8_is_escaped_per_byte(void **state)
{
    assert_string_equal(ESC("a\xff" "b"), "a\\xffb");
    assert_string_equal(ESC("\xc3"), "\\xc3");                         /* truncated */
    assert_string_equal(ESC("\xc0\xaf"), "\\xc0\\xaf");                /* overlong '/' */
    assert_string_equal(ESC("\xed\xa0\x80"), "\\xed\\xa0\\x80");       /* surrogate */
    assert_string_equal(ESC("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
}

static void long_strings_are_cut_with_an_ellipsis(void **state)
{
    char in[1000];
    memset(in, '\n', sizeof in);
    const char *out = esc(in, sizeof in);
    size_t n = strlen(out);
    assert_true(n < RTM_LOG_STR_SIZE);
    assert_string_equal(out + n - 3, "...");
    assert_null(memchr(out, '\n', n));
    memset(in, 'x', sizeof in);
    out = esc(in, RTM_LOG_STR_SIZE - 4);
    assert_int_equal(strlen(out), RTM_LOG_STR_SIZE - 4); /* fits exactly: no ellipsis */
}

/* Runs rtm_log with stderr redirected to a file and returns what it wrote. */
static char *captured_log(const char *arg)
{
    fflush(stderr);
    FILE *f = tmpfile();
    assert_non_null(f);
    int saved = dup(2);
    assert_true(dup2(fileno(f), 2) >= 0);
    rtm_log(RTM_LOG_ERROR, "method %s", arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long size = ftell(f);
    assert_true(size > 0);
    char *text = calloc(1, (size_t)size + 1);
    rewind(f);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    return text;
}

static void a_log_line_is_one_line_of_valid_text(void **state)
{
    char *line = captured_log("x\nFAKE 2026-01-01 error injected\r\xff\xc3(");
    size_t n = strlen(line);
    assert_int_equal(line[n - 1], '\n');
    assert_null(memchr(line, '\n', n - 1));
    assert_null(memchr(line, '\r', n));
    assert_true(rtm_utf8_valid(line, n));
    assert_non_null(strstr(line, "method x?FAKE 2026-01-01 error injected??" "?("));
    free(line);
}

/* The lines written to a fresh log file while fn runs, in format. */
static char *logged(enum rtm_log_format format, void (*fn)(void))
{
    char path[] = "/tmp/rtm-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(rtm_log_open(path), 0);
    rtm_log_set_format(format);
    fn();
    rtm_log_set_format(RTM_LOG_TEXT);
    assert_int_equal(rtm_log_open(NULL), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    return text;
}

static void log_a_message_and_an_event(void)
{
    rtm_log(RTM_LOG_INFO, "store: %d rows", 3);
    rtm_log_event(RTM_LOG_INFO, "auth", "conn", "7", "uid", "a \"b\"\\c\n\xff", "empty", "", NULL);
    rtm_log(RTM_LOG_DEBUG, "below the level: not written");
}

static void logfmt_lines(void **state)
{
    char *text = logged(RTM_LOG_LOGFMT, log_a_message_and_an_event);
    char *second = strchr(text, '\n');
    assert_non_null(second);
    *second++ = '\0';
    assert_true(strncmp(text, "ts=", 3) == 0);
    assert_non_null(strstr(text, "Z level=info msg=\"store: 3 rows\""));
    /* The peer's value as rtm_log_str writes it (a \"b\"\\c\n\xff), quoted. */
    assert_non_null(strstr(second, " level=info event=auth conn=7 uid=\"a \\\"b\\\"\\\\\\\\c\\\\n\\\\xff\" empty=\"\"\n"));
    char *end = strchr(second, '\n');
    assert_non_null(end);
    assert_string_equal(end + 1, ""); /* the debug line was not written */
}

static void json_lines(void **state)
{
    char *text = logged(RTM_LOG_JSON, log_a_message_and_an_event);
    json_error_t err;
    json_t *lines[2];
    char *p = text;
    for (int i = 0; i < 2; i++) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = '\0';
        lines[i] = json_loads(p, 0, &err);
        assert_non_null(lines[i]);
        p = nl + 1;
    }
    assert_string_equal(p, ""); /* the debug line was not written */
    assert_string_equal(json_string_value(json_object_get(lines[0], "level")), "info");
    assert_string_equal(json_string_value(json_object_get(lines[0], "msg")), "store: 3 rows");
    assert_non_null(json_object_get(lines[0], "ts"));
    assert_string_equal(json_string_value(json_object_get(lines[1], "event")), "auth");
    assert_string_equal(json_string_value(json_object_get(lines[1], "conn")), "7");
    assert_string_equal(json_string_value(json_object_get(lines[1], "uid")), "a \"b\"\\\\c\\n\\xff");
    assert_string_equal(json_string_value(json_object_get(lines[1], "empty")), "");
    json_decref(lines[0]);
    json_decref(lines[1]);
}

static void text_events(void **state)
{
    char *text = logged(RTM_LOG_TEXT, log_a_message_and_an_event);
    assert_non_null(strstr(text, " info  store: 3 rows\n"));
    assert_non_null(strstr(text, " info  event=auth conn=7 uid=\"a "));
}

static void reopen_after_rotation(void **state)
{
    char path[] = "/tmp/rtm-test-rotate-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char rotated[64];
    snprintf(rotated, sizeof rotated, "%s.1", path);
    assert_int_equal(rtm_log_open(path), 0);
    rtm_log(RTM_LOG_WARN, "before the rotation");
    assert_int_equal(rename(path, rotated), 0);
    rtm_log(RTM_LOG_WARN, "still to the moved file");
    assert_int_equal(rtm_log_reopen(), 0);
    rtm_log(RTM_LOG_WARN, "after the reopen");
    assert_int_equal(rtm_log_open(NULL), 0);
    char buf[1024];
    FILE *f = fopen(rotated, "r");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "before the rotation"));
    assert_non_null(strstr(buf, "still to the moved file"));
    assert_null(strstr(buf, "after the reopen"));
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "after the reopen"));
    assert_null(strstr(buf, "before"));
    assert_int_equal(rtm_log_open("/nonexistent-dir/x.log"), -1);
    unlink(path);
    unlink(rotated);
}

static void utf8_validation(void **state)
{
    assert_true(rtm_utf8_valid("", 0));
    assert_true(rtm_utf8_valid("a\0b", 3));
    assert_true(rtm_utf8_valid("\xf0\x9f\x98\x80\xef\xbf\xbf", 7));
    assert_false(rtm_utf8_valid("\x80", 1));
    assert_false(rtm_utf8_valid("\xe0\x80\x80", 3));
    assert_false(rtm_utf8_valid("\xf8\x88\x80\x80\x80", 5));
    assert_false(rtm_utf8_valid("\xe4\xbd", 2));
}

static void log_warnings_for_the_ring(void)
{
    rtm_log(RTM_LOG_INFO, "an info line: not kept");
    for (int i = 0; i < RTM_LOG_RECENT_MAX + 3; i++)
        rtm_log(RTM_LOG_WARN, "warning %d", i);
    rtm_log_event(RTM_LOG_ERROR, "store_failed", "why", "disk full", NULL);
    /* A long line of 2-byte characters: cut inside one would be invalid. */
    char wide[2 * RTM_LOG_RECENT_LINE + 2];
    size_t n = 0;
    wide[n++] = 'x';
    while (n + 2 < sizeof wide) {
        wide[n++] = '\xc3';
        wide[n++] = '\xa9';
    }
    wide[n] = '\0';
    rtm_log(RTM_LOG_ERROR, "%s", wide);
}

static void recent_warnings_and_errors(void **state)
{
    logged(RTM_LOG_TEXT, log_warnings_for_the_ring);
    static char lines[RTM_LOG_RECENT_MAX + 5][RTM_LOG_RECENT_LINE];
    size_t n = rtm_log_recent(lines, RTM_LOG_RECENT_MAX + 5);
    assert_int_equal(n, RTM_LOG_RECENT_MAX);
    /* Oldest first: warnings 5 .. 22, then the event, then the long line. */
    assert_non_null(strstr(lines[0], " warn  warning 5"));
    assert_non_null(strstr(lines[RTM_LOG_RECENT_MAX - 3], " warn  warning 22"));
    assert_non_null(strstr(lines[RTM_LOG_RECENT_MAX - 2], " error event=store_failed why=\"disk full\""));
    const char *last = lines[RTM_LOG_RECENT_MAX - 1];
    assert_non_null(strstr(last, " error x\xc3\xa9"));
    assert_true(strlen(last) < RTM_LOG_RECENT_LINE);
    assert_true(strlen(last) >= RTM_LOG_RECENT_LINE - 2);
    assert_true(rtm_utf8_valid(last, strlen(last)));
    for (size_t i = 0; i < n; i++)
        assert_null(strstr(lines[i], "an info line"));
    /* Fewer asked, the newest. */
    assert_int_equal(rtm_log_recent(lines, 2), 2);
    assert_non_null(strstr(lines[0], "store_failed"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_stays_as_it_is),
        cmocka_unit_test(controls_and_backslash_are_escaped),
        cmocka_unit_test(invalid_utf8_is_escaped_per_byte),
        cmocka_unit_test(long_strings_are_cut_with_an_ellipsis),
        cmocka_unit_test(a_log_line_is_one_line_of_valid_text),
        cmocka_unit_test(utf8_validation),
        cmocka_unit_test(logfmt_lines),
        cmocka_unit_test(json_lines),
        cmocka_unit_test(text_events),
        cmocka_unit_test(reopen_after_rotation),
        cmocka_unit_test(recent_warnings_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
