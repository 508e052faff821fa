/* Unit tests of the RTS access token format (src/core/accesstoken.h).
 *
 * The reference token below is put together by hand from the published
 * format, field by field, with an HMAC-SHA256 signature and a base64 text
 * computed outside rtmd (Python's hmac and base64 modules over the same
 * bytes); parse must read exactly those fields, verify must accept it with
 * its key, and build must produce it byte for byte. Then the failures:
 * wrong key, wrong app id, expiry (told apart from forgery), truncation,
 * bad base64, oversized fields and trailing bytes, each with a token built
 * here (base64 by OpenSSL's encoder, not rtmd's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "accesstoken.h"

#define APP_ID "5f8d1c2b3a4e6f7081920a1b"
#define APP_KEY "rtmd-test-app-key"
#define ISSUED 1700000000u  /* 0x6553F100 */
#define EXPIRES 1700003600u /* 0x6553FF10: one hour later */
#define SUB_EXPIRES 1700001800u /* 0x6553F808: subscribe for half an hour */

/* msg, field by field (all integers little-endian). */
static const uint8_t ref_msg[] = {
    0x04, 0x03, 0x02, 0x01,                   /* nonce 0x01020304 */
    0x00, 0xF1, 0x53, 0x65,                   /* issued_at 1700000000 */
    0x10, 0xFF, 0x53, 0x65,                   /* expire_at 1700003600 */
    0x05, 0x00, 'r', 'o', 'o', 'm', '1',      /* room_id "room1" */
    0x05, 0x00, 'a', 'l', 'i', 'c', 'e',      /* user_id "alice" */
    0x05, 0x00,                               /* 5 privileges, sorted by key */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,       /* 0 PublishStream, no own expiry */
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00,       /* 1 audio (added with 0) */
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00,       /* 2 video (added with 0) */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00,       /* 3 data (added with 0) */
    0x04, 0x00, 0x08, 0xF8, 0x53, 0x65,      /* 4 SubscribeStream until 1700001800 */
};

/* HMAC-SHA256("rtmd-test-app-key", ref_msg), computed outside rtmd. */
static const char ref_sig_hex[] = "6e05d1f28670bbecb30d30a1a8d7d1e48d908f05e8cb97f204fc3640335fdca6";

/* "001" + app id + base64(u16 58 + ref_msg + u16 32 + signature), computed
 * outside rtmd. */
static const char ref_token[] =
    "001" APP_ID "OgAEAwIBAPFTZRD/U2UFAHJvb20xBQBhbGljZQUAAAAAAAAAAQAAAAAAAgAAAAAAAwAAAAAABAAI+FNlIABuBdHyhnC77LMNMKGo"
    "19HkjZCPBejLl/IE/DZAM1/cpg==";

static void unhex(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* A token string around arbitrary content bytes, base64 by OpenSSL. */
static char *token_of(const char *app_id, const uint8_t *content, size_t len)
{
    size_t cap = 3 + strlen(app_id) + 4 * ((len + 2) / 3) + 1;
    char *t = malloc(cap);
    assert_non_null(t);
    int n = snprintf(t, cap, "001%s", app_id);
    EVP_EncodeBlock((unsigned char *)t + n, content, (int)len);
    return t;
}

/* content = u16 len + msg, u16 len + sig (sig computed with key). */
static size_t content_of(const uint8_t *msg, size_t msg_len, const char *key, uint8_t *out)
{
    size_t n = 0;
    out[n++] = (uint8_t)msg_len;
    out[n++] = (uint8_t)(msg_len >> 8);
    memcpy(out + n, msg, msg_len);
    n += msg_len;
    unsigned int sig_len = 0;
    out[n++] = 32;
    out[n++] = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), msg, msg_len, out + n, &sig_len);
    assert_int_equal(sig_len, 32);
    return n + 32;
}

static void reference_parses(void **state)
{
    (void)state;
    accesstoken t;
    assert_int_equal(accesstoken_parse(ref_token, strlen(ref_token), &t), AT_OK);
    assert_string_equal(t.app_id, APP_ID);
    assert_int_equal(t.nonce, 0x01020304);
    assert_int_equal(t.issued_at, ISSUED);
    assert_int_equal(t.expire_at, EXPIRES);
    assert_int_equal(t.room_len, 5);
    assert_string_equal(t.room_id, "room1");
    assert_int_equal(t.user_len, 5);
    assert_string_equal(t.user_id, "alice");
    assert_int_equal(t.nprivileges, 5);
    for (uint16_t k = 0; k < 5; k++) {
        assert_int_equal(t.privileges[k].key, k);
        assert_int_equal(t.privileges[k].expire_at, k == 4 ? SUB_EXPIRES : 0);
    }
    assert_int_equal(t.msg_len, sizeof ref_msg);
    assert_memory_equal(t.msg, ref_msg, sizeof ref_msg);
    uint8_t sig[32];
    unhex(ref_sig_hex, sig, sizeof sig);
    assert_memory_equal(t.signature, sig, sizeof sig);
}

static void reference_verifies(void **state)
{
    (void)state;
    accesstoken t;
    assert_int_equal(accesstoken_parse(ref_token, strlen(ref_token), &t), AT_OK);
    assert_int_equal(accesstoken_verify(&t, APP_ID, APP_KEY, strlen(APP_KEY), ISSUED), AT_OK);
    /* The second named by expire_at is still valid; the next is not. */
    assert_int_equal(accesstoken_verify(&t, APP_ID, APP_KEY, strlen(APP_KEY), EXPIRES), AT_OK);
    assert_int_equal(accesstoken_verify(&t, APP_ID, APP_KEY, strlen(APP_KEY), EXPIRES + 1), AT_E_EXPIRED);
    /* Wrong key, wrong app id: never "expired", whatever the time. */
    assert_int_equal(accesstoken_verify(&t, APP_ID, "rtmd-test-app-kez", 17, ISSUED), AT_E_SIGNATURE);
    assert_int_equal(accesstoken_verify(&t, APP_ID, "rtmd-test-app-kez", 17, EXPIRES + 1), AT_E_SIGNATURE);
    assert_int_equal(accesstoken_verify(&t, APP_ID, APP_KEY, 0, ISSUED), AT_E_SIGNATURE);
    assert_int_equal(accesstoken_verify(&t, "5f8d1c2b3a4e6f7081920a1c", APP_KEY, strlen(APP_KEY), ISSUED),
                     AT_E_APP_ID);
    assert_int_equal(accesstoken_verify(&t, "5f8d1c2b3a4e6f7081920a1", APP_KEY, strlen(APP_KEY), ISSUED),
                     AT_E_APP_ID);
    assert_int_equal(accesstoken_verify(&t, NULL, APP_KEY, strlen(APP_KEY), ISSUED), AT_E_APP_ID);
}

static void reference_builds(void **state)
{
    (void)state;
    /* As an app server would ask: publish (0, adding 1-3) and subscribe. */
    const at_privilege privs[] = {{AT_PRIV_SUBSCRIBE_STREAM, SUB_EXPIRES}, {AT_PRIV_PUBLISH_STREAM, 0}};
    accesstoken_spec s = {.app_id = APP_ID, .key = APP_KEY, .key_len = strlen(APP_KEY), .nonce = 0x01020304,
                          .issued_at = ISSUED, .expire_at = EXPIRES, .room_id = "room1", .room_len = 5,
                          .user_id = "alice", .user_len = 5, .privileges = privs, .nprivileges = 2};
    char out[AT_TOKEN_MAX + 1];
    size_t len = 0;
    assert_int_equal(accesstoken_build(&s, out, sizeof out, &len), AT_OK);
    assert_int_equal(len, strlen(ref_token));
    assert_string_equal(out, ref_token);
    /* Too small a buffer is refused, not overrun. */
    char small[40];
    assert_int_equal(accesstoken_build(&s, small, sizeof small, &len), AT_E_ARG);
}

static void privileges_and_expiry(void **state)
{
    (void)state;
    accesstoken t;
    assert_int_equal(accesstoken_parse(ref_token, strlen(ref_token), &t), AT_OK);
    assert_true(accesstoken_has_privilege(&t, AT_PRIV_PUBLISH_STREAM, ISSUED));
    assert_true(accesstoken_has_privilege(&t, AT_PRIV_PUBLISH_VIDEO, EXPIRES));
    assert_true(accesstoken_has_privilege(&t, AT_PRIV_SUBSCRIBE_STREAM, SUB_EXPIRES));
    assert_false(accesstoken_has_privilege(&t, AT_PRIV_SUBSCRIBE_STREAM, SUB_EXPIRES + 1));
    /* The token's expiry ends every privilege, even one without its own. */
    assert_false(accesstoken_has_privilege(&t, AT_PRIV_PUBLISH_STREAM, EXPIRES + 1));
    assert_false(accesstoken_has_privilege(&t, 5, ISSUED));
}

/* Explicit 1-3 beside 0 keep their own expiry; duplicates: the last wins. */
static void build_privilege_rules(void **state)
{
    (void)state;
    const at_privilege privs[] = {{AT_PRIV_PUBLISH_VIDEO, 111}, {AT_PRIV_PUBLISH_STREAM, 222},
                                  {7, 1}, {7, 2}};
    accesstoken_spec s = {.app_id = APP_ID, .key = "k", .key_len = 1, .user_id = "u", .user_len = 1,
                          .privileges = privs, .nprivileges = 4};
    char out[AT_TOKEN_MAX + 1];
    assert_int_equal(accesstoken_build(&s, out, sizeof out, NULL), AT_OK);
    accesstoken t;
    assert_int_equal(accesstoken_parse(out, strlen(out), &t), AT_OK);
    assert_int_equal(accesstoken_verify(&t, APP_ID, "k", 1, 4000000000u), AT_OK); /* expire_at 0: never */
    assert_int_equal(t.nprivileges, 5);
    const at_privilege want[] = {{0, 222}, {1, 222}, {2, 111}, {3, 222}, {7, 2}};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(t.privileges[i].key, want[i].key);
        assert_int_equal(t.privileges[i].expire_at, want[i].expire_at);
    }
    assert_int_equal(t.room_len, 0);
    assert_string_equal(t.room_id, "");
}

static void build_refuses_bad_arguments(void **state)
{
    (void)state;
    char out[AT_TOKEN_MAX + 1];
    char big[AT_ID_MAX + 1];
    memset(big, 'x', sizeof big);
    accesstoken_spec ok = {.app_id = APP_ID, .key = "k", .key_len = 1, .user_id = "u", .user_len = 1};
    assert_int_equal(accesstoken_build(&ok, out, sizeof out, NULL), AT_OK);
    accesstoken_spec s = ok;
    s.app_id = "5f8d1c2b3a4e6f7081920a1"; /* 23 characters */
    assert_int_equal(accesstoken_build(&s, out, sizeof out, NULL), AT_E_ARG);
    s.app_id = "5f8d1c2b3a4e6f7081920a1-";
    assert_int_equal(accesstoken_build(&s, out, sizeof out, NULL), AT_E_ARG);
    s = ok;
    s.key_len = 0;
    assert_int_equal(accesstoken_build(&s, out, sizeof out, NULL), AT_E_ARG);
    s = ok;
    s.user_id = big;
    s.user_len = AT_ID_MAX + 1;
    assert_int_equal(accesstoken_build(&s, out, sizeof out, NULL), AT_E_ARG);
    s.user_len = AT_ID_MAX; /* the bound itself is fine */
    assert_int_equal(accesstoken_build(&s, out, sizeof out, NULL), AT_OK);
    s = ok;
    s.room_id = big;
    s.room_len = AT_ID_MAX + 1;
    assert_int_equal(accesstoken_build(&s, out, sizeof out, NULL), AT_E_ARG);
    at_privilege many[AT_PRIVILEGES_MAX + 1];
    for (uint16_t i = 0; i < AT_PRIVILEGES_MAX + 1; i++)
        many[i] = (at_privilege){(uint16_t)(10 + i), 0};
    s = ok;
    s.privileges = many;
    s.nprivileges = AT_PRIVILEGES_MAX + 1;
    assert_int_equal(accesstoken_build(&s, out, sizeof out, NULL), AT_E_ARG);
    /* 0 expands to four entries: 29 others + 0 is 33, one too many. */
    many[0].key = 0;
    s.nprivileges = AT_PRIVILEGES_MAX - 2;
    assert_int_equal(accesstoken_build(&s, out, sizeof out, NULL), AT_E_ARG);
}

/* The largest token build allows parses back, and fits AT_TOKEN_MAX. */
static void largest_token_round_trips(void **state)
{
    (void)state;
    char id[AT_ID_MAX];
    memset(id, '@', sizeof id);
    at_privilege many[AT_PRIVILEGES_MAX];
    for (uint16_t i = 0; i < AT_PRIVILEGES_MAX; i++)
        many[i] = (at_privilege){(uint16_t)(100 + i), 0xFFFFFFFFu};
    accesstoken_spec s = {.app_id = APP_ID, .key = APP_KEY, .key_len = strlen(APP_KEY), .nonce = 0xFFFFFFFFu,
                          .issued_at = 1, .expire_at = 0xFFFFFFFFu, .room_id = id, .room_len = sizeof id,
                          .user_id = id, .user_len = sizeof id, .privileges = many,
                          .nprivileges = AT_PRIVILEGES_MAX};
    char out[AT_TOKEN_MAX + 1];
    size_t len;
    assert_int_equal(accesstoken_build(&s, out, sizeof out, &len), AT_OK);
    assert_true(len <= AT_TOKEN_MAX);
    accesstoken t;
    assert_int_equal(accesstoken_parse(out, len, &t), AT_OK);
    assert_int_equal(accesstoken_verify(&t, APP_ID, APP_KEY, strlen(APP_KEY), 0xFFFFFFFFu), AT_OK);
    assert_int_equal(t.user_len, AT_ID_MAX);
    assert_int_equal(t.nprivileges, AT_PRIVILEGES_MAX);
}

static void truncated_tokens_fail(void **state)
{
    (void)state;
    accesstoken t;
    size_t full = strlen(ref_token);
    for (size_t n = 0; n < full; n++)
        assert_int_equal(accesstoken_parse(ref_token, n, &t), AT_E_FORMAT);
    /* Cut after whole base64 groups, then re-padded: still short content. */
    uint8_t content[128];
    size_t clen = content_of(ref_msg, sizeof ref_msg, APP_KEY, content);
    for (size_t cut = 0; cut < clen; cut++) {
        char *tok = token_of(APP_ID, content, cut);
        assert_int_equal(accesstoken_parse(tok, strlen(tok), &t), AT_E_FORMAT);
        free(tok);
    }
    char *tok = token_of(APP_ID, content, clen);
    assert_string_equal(tok, ref_token);
    free(tok);
}

static void bad_base64_fails(void **state)
{
    (void)state;
    accesstoken t;
    size_t full = strlen(ref_token);
    char buf[512];
    assert_true(full < sizeof buf);
    const struct {
        size_t at;
        char c;
    } edits[] = {
        {40, '*'}, {40, '-'}, {40, '_'}, /* outside the standard alphabet (url-safe too) */
        {40, ' '}, {40, '\n'}, {40, '\0'},
        {40, '='},                       /* padding in the middle */
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        memcpy(buf, ref_token, full + 1);
        buf[edits[i].at] = edits[i].c;
        assert_int_equal(accesstoken_parse(buf, full, &t), AT_E_FORMAT);
    }
    /* Without its padding. */
    assert_int_equal(accesstoken_parse(ref_token, full - 2, &t), AT_E_FORMAT);
    /* A character after the padding. */
    memcpy(buf, ref_token, full + 1);
    buf[full - 1] = 'A';
    buf[full - 2] = '=';
    assert_int_equal(accesstoken_parse(buf, full, &t), AT_E_FORMAT);
    /* Non-zero spare bits in the last group ("pg==" -> "ph=="). */
    memcpy(buf, ref_token, full + 1);
    assert_int_equal(buf[full - 3], 'g');
    buf[full - 3] = 'h';
    assert_int_equal(accesstoken_parse(buf, full, &t), AT_E_FORMAT);
    /* Another version. */
    memcpy(buf, ref_token, full + 1);
    buf[2] = '2';
    assert_int_equal(accesstoken_parse(buf, full, &t), AT_E_FORMAT);
    assert_int_equal(accesstoken_parse(NULL, 0, &t), AT_E_FORMAT);
}

/* A flipped bit anywhere in the signed message or the signature is a bad
 * signature (the base64 stays valid: only bytes change). */
static void altered_tokens_fail_verification(void **state)
{
    (void)state;
    uint8_t content[128];
    size_t clen = content_of(ref_msg, sizeof ref_msg, APP_KEY, content);
    accesstoken t;
    for (size_t i = 2 + 12; i < clen; i++) { /* after the lengths would move the structure */
        if (i == 2 + sizeof ref_msg || i == 3 + sizeof ref_msg)
            continue; /* the signature's length */
        content[i] ^= 0x01;
        char *tok = token_of(APP_ID, content, clen);
        int rc = accesstoken_parse(tok, strlen(tok), &t);
        if (rc == AT_OK)
            assert_int_equal(accesstoken_verify(&t, APP_ID, APP_KEY, strlen(APP_KEY), ISSUED), AT_E_SIGNATURE);
        free(tok);
        content[i] ^= 0x01;
    }
    /* And in the first 12 bytes (nonce, times): always parses, never verifies. */
    for (size_t i = 2; i < 14; i++) {
        content[i] ^= 0x80;
        char *tok = token_of(APP_ID, content, clen);
        assert_int_equal(accesstoken_parse(tok, strlen(tok), &t), AT_OK);
        assert_int_equal(accesstoken_verify(&t, APP_ID, APP_KEY, strlen(APP_KEY), ISSUED), AT_E_SIGNATURE);
        free(tok);
        content[i] ^= 0x80;
    }
}

/* Message bytes: a u16-prefixed string of len c's. */
static size_t put_str(uint8_t *p, size_t len, char c)
{
    p[0] = (uint8_t)len;
    p[1] = (uint8_t)(len >> 8);
    memset(p + 2, c, len);
    return 2 + len;
}

static int parse_msg_bytes(const uint8_t *msg, size_t len)
{
    uint8_t content[2048];
    size_t clen = content_of(msg, len, APP_KEY, content);
    char *tok = token_of(APP_ID, content, clen);
    accesstoken t;
    int rc = accesstoken_parse(tok, strlen(tok), &t);
    if (rc == AT_OK)
        rc = accesstoken_verify(&t, APP_ID, APP_KEY, strlen(APP_KEY), ISSUED);
    free(tok);
    return rc;
}

static void oversized_and_trailing_fail(void **state)
{
    (void)state;
    uint8_t msg[1600];
    size_t n;
    /* A user id one byte over the bound, correctly signed. */
    memset(msg, 0, 12);
    n = 12 + put_str(msg + 12, 1, 'r');
    n += put_str(msg + n, AT_ID_MAX + 1, 'u');
    msg[n++] = 0;
    msg[n++] = 0;
    assert_int_equal(parse_msg_bytes(msg, n), AT_E_TOO_LARGE);
    /* The same at the bound verifies. */
    n = 12 + put_str(msg + 12, 1, 'r');
    n += put_str(msg + n, AT_ID_MAX, 'u');
    msg[n++] = 0;
    msg[n++] = 0;
    assert_int_equal(parse_msg_bytes(msg, n), AT_OK);
    /* A room id over the bound. */
    n = 12 + put_str(msg + 12, AT_ID_MAX + 1, 'r');
    n += put_str(msg + n, 1, 'u');
    msg[n++] = 0;
    msg[n++] = 0;
    assert_int_equal(parse_msg_bytes(msg, n), AT_E_TOO_LARGE);
    /* One privilege over the bound, all present. */
    n = 12 + put_str(msg + 12, 1, 'r');
    n += put_str(msg + n, 1, 'u');
    msg[n++] = AT_PRIVILEGES_MAX + 1;
    msg[n++] = 0;
    memset(msg + n, 0, 6 * (AT_PRIVILEGES_MAX + 1));
    size_t with_privs = n + 6 * (AT_PRIVILEGES_MAX + 1);
    assert_int_equal(parse_msg_bytes(msg, with_privs), AT_E_TOO_LARGE);
    /* A count that claims more entries than there are bytes. */
    msg[n - 2] = 0xFF;
    msg[n - 1] = 0xFF;
    assert_int_equal(parse_msg_bytes(msg, with_privs), AT_E_FORMAT);
    /* A string length past the end of the message. */
    n = 12;
    msg[n++] = 0x10;
    msg[n++] = 0x00;
    msg[n++] = 'r';
    assert_int_equal(parse_msg_bytes(msg, n), AT_E_FORMAT);
    /* A byte after the privileges (signed, so only the form can refuse it). */
    n = 12 + put_str(msg + 12, 1, 'r');
    n += put_str(msg + n, 1, 'u');
    msg[n++] = 0;
    msg[n++] = 0;
    assert_int_equal(parse_msg_bytes(msg, n), AT_OK);
    msg[n++] = 0;
    assert_int_equal(parse_msg_bytes(msg, n), AT_E_FORMAT);

    /* Content-level: a byte after the signature, a short signature, a
     * message length past the content. */
    uint8_t content[256];
    size_t clen = content_of(ref_msg, sizeof ref_msg, APP_KEY, content);
    accesstoken t;
    content[clen] = 0;
    char *tok = token_of(APP_ID, content, clen + 1);
    assert_int_equal(accesstoken_parse(tok, strlen(tok), &t), AT_E_FORMAT);
    free(tok);
    content[2 + sizeof ref_msg] = 31;
    tok = token_of(APP_ID, content, clen - 1);
    assert_int_equal(accesstoken_parse(tok, strlen(tok), &t), AT_E_FORMAT);
    free(tok);
    content[2 + sizeof ref_msg] = 32;
    content[0] = 0xFF;
    content[1] = 0x00;
    tok = token_of(APP_ID, content, clen);
    assert_int_equal(accesstoken_parse(tok, strlen(tok), &t), AT_E_FORMAT);
    free(tok);
    /* A token string longer than any token rtmd accepts. */
    size_t huge_len = AT_TOKEN_MAX + 4;
    char *huge = malloc(huge_len + 1);
    assert_non_null(huge);
    memcpy(huge, ref_token, 27);
    memset(huge + 27, 'A', huge_len - 27);
    huge[huge_len] = '\0';
    assert_int_equal(accesstoken_parse(huge, huge_len, &t), AT_E_TOO_LARGE);
    free(huge);
    assert_string_equal(accesstoken_strerror(AT_E_EXPIRED), "token expired");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_parses),
        cmocka_unit_test(reference_verifies),
        cmocka_unit_test(reference_builds),
        cmocka_unit_test(privileges_and_expiry),
        cmocka_unit_test(build_privilege_rules),
        cmocka_unit_test(build_refuses_bad_arguments),
        cmocka_unit_test(largest_token_round_trips),
        cmocka_unit_test(truncated_tokens_fail),
        cmocka_unit_test(bad_base64_fails),
        cmocka_unit_test(altered_tokens_fail_verification),
        cmocka_unit_test(oversized_and_trailing_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
