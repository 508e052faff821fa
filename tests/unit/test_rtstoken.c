/* Unit tests of rtstoken_check (src/rtmd/modules/rtstoken.h), the check the
 * RTS-style login calls: a project's app_id and app_key, the user id, and
 * expiry told apart from forgery; and of a project without RTS settings.
 * Tokens are built with core/accesstoken.h (its format is tested on
 * hand-made bytes in test_accesstoken.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "accesstoken.h"
#include "rtstoken.h"

#define APP_ID "AbCdEf0123456789GhIjKlMn"
#define APP_KEY "0123456789abcdef0123456789abcdef"
#define NOW 1800000000u

static void project(rtmd_project *p, const char *app_id, const char *app_key)
{
    memset(p, 0, sizeof *p);
    p->pid = 7;
    snprintf(p->limits.app_id, sizeof p->limits.app_id, "%s", app_id);
    snprintf(p->limits.app_key, sizeof p->limits.app_key, "%s", app_key);
}

static size_t mint(char *out, const char *app_id, const char *key, const char *user, uint32_t expire_at)
{
    accesstoken_spec s = {.app_id = app_id, .key = key, .key_len = strlen(key), .nonce = 42,
                          .issued_at = NOW - 10, .expire_at = expire_at, .room_id = "any-room",
                          .room_len = 8, .user_id = user, .user_len = strlen(user)};
    size_t len = 0;
    assert_int_equal(accesstoken_build(&s, out, AT_TOKEN_MAX + 1, &len), AT_OK);
    return len;
}

static void accepts_its_users_token(void **state)
{
    (void)state;
    rtmd_project p;
    project(&p, APP_ID, APP_KEY);
    char tok[AT_TOKEN_MAX + 1];
    size_t len = mint(tok, APP_ID, APP_KEY, "alice@example.com", NOW + 60);
    assert_int_equal(rtstoken_check(&p, tok, len, "alice@example.com", 17, NOW), RTSTOKEN_OK);
    assert_int_equal(rtstoken_check(&p, tok, len, "alice@example.com", 17, NOW + 60), RTSTOKEN_OK);
    /* No expiry at all. */
    len = mint(tok, APP_ID, APP_KEY, "bob", 0);
    assert_int_equal(rtstoken_check(&p, tok, len, "bob", 3, UINT32_MAX), RTSTOKEN_OK);
}

static void refuses_wrong_user_key_and_app_id(void **state)
{
    (void)state;
    rtmd_project p;
    project(&p, APP_ID, APP_KEY);
    char tok[AT_TOKEN_MAX + 1];
    size_t len = mint(tok, APP_ID, APP_KEY, "alice", NOW + 60);
    assert_int_equal(rtstoken_check(&p, tok, len, "bob", 3, NOW), RTSTOKEN_INVALID);
    assert_int_equal(rtstoken_check(&p, tok, len, "alic", 4, NOW), RTSTOKEN_INVALID);
    assert_int_equal(rtstoken_check(&p, tok, len, "alicee", 6, NOW), RTSTOKEN_INVALID);
    assert_int_equal(rtstoken_check(&p, tok, len, "", 0, NOW), RTSTOKEN_INVALID);
    /* Another key, another app id (same key). */
    len = mint(tok, APP_ID, "another-key", "alice", NOW + 60);
    assert_int_equal(rtstoken_check(&p, tok, len, "alice", 5, NOW), RTSTOKEN_INVALID);
    len = mint(tok, "AbCdEf0123456789GhIjKlMo", APP_KEY, "alice", NOW + 60);
    assert_int_equal(rtstoken_check(&p, tok, len, "alice", 5, NOW), RTSTOKEN_INVALID);
    /* Garbage and truncation. */
    assert_int_equal(rtstoken_check(&p, "001", 3, "alice", 5, NOW), RTSTOKEN_INVALID);
    len = mint(tok, APP_ID, APP_KEY, "alice", NOW + 60);
    assert_int_equal(rtstoken_check(&p, tok, len - 1, "alice", 5, NOW), RTSTOKEN_INVALID);
    assert_int_equal(rtstoken_check(&p, NULL, 0, "alice", 5, NOW), RTSTOKEN_INVALID);
}

static void expired_is_told_apart(void **state)
{
    (void)state;
    rtmd_project p;
    project(&p, APP_ID, APP_KEY);
    char tok[AT_TOKEN_MAX + 1];
    size_t len = mint(tok, APP_ID, APP_KEY, "alice", NOW - 1);
    assert_int_equal(rtstoken_check(&p, tok, len, "alice", 5, NOW), RTSTOKEN_EXPIRED);
    /* An expired token of another user, or under another key, is invalid. */
    assert_int_equal(rtstoken_check(&p, tok, len, "bob", 3, NOW), RTSTOKEN_INVALID);
    len = mint(tok, APP_ID, "another-key", "alice", NOW - 1);
    assert_int_equal(rtstoken_check(&p, tok, len, "alice", 5, NOW), RTSTOKEN_INVALID);
}

static void project_without_settings(void **state)
{
    (void)state;
    rtmd_project p;
    project(&p, "", "");
    char tok[AT_TOKEN_MAX + 1];
    size_t len = mint(tok, APP_ID, APP_KEY, "alice", NOW + 60);
    assert_int_equal(rtstoken_check(&p, tok, len, "alice", 5, NOW), RTSTOKEN_DISABLED);
    assert_int_equal(rtstoken_check(NULL, tok, len, "alice", 5, NOW), RTSTOKEN_DISABLED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_its_users_token),
        cmocka_unit_test(refuses_wrong_user_key_and_app_id),
        cmocka_unit_test(expired_is_told_apart),
        cmocka_unit_test(project_without_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
