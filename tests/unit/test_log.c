/* Unit tests of the log's handling of peer strings (src/core/log.h): the
 * escaping helper keeps text readable and makes control characters,
 * separators and invalid UTF-8 visible escapes, and rtm_log itself never
 * writes a raw control character or an invalid byte, whatever it is
 * given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_stays_as_it_is),
        cmocka_unit_test(controls_and_backslash_are_escaped),
        cmocka_unit_test(invalid_utf8_is_escaped_per_byte),
        cmocka_unit_test(long_strings_are_cut_with_an_ellipsis),
        cmocka_unit_test(a_log_line_is_one_line_of_valid_text),
        cmocka_unit_test(utf8_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
