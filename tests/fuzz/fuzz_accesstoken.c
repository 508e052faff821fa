/* libFuzzer target for the RTS access token reader (core/accesstoken.h):
 * parses arbitrary bytes as a token; a token that parses must have every
 * field within its bounds, verify without reading past them, and, when
 * built again from its fields with the same key, verify and parse back to
 * the same fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "accesstoken.h"

#define KEY "fuzz-key"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static accesstoken t, back;
    int rc = accesstoken_parse((const char *)data, size, &t);
    if (rc != AT_OK) {
        if (rc != AT_E_FORMAT && rc != AT_E_TOO_LARGE)
            abort();
        return 0;
    }
    if (size > AT_TOKEN_MAX || t.room_len > AT_ID_MAX || t.user_len > AT_ID_MAX ||
        t.nprivileges > AT_PRIVILEGES_MAX || t.msg_len > AT_MSG_MAX)
        abort();
    rc = accesstoken_verify(&t, t.app_id, KEY, strlen(KEY), t.issued_at);
    if (rc != AT_OK && rc != AT_E_APP_ID && rc != AT_E_SIGNATURE && rc != AT_E_EXPIRED)
        abort();
    (void)accesstoken_has_privilege(&t, AT_PRIV_SUBSCRIBE_STREAM, t.issued_at);

    /* Rebuild (app ids that build refuses are skipped). */
    accesstoken_spec s = {.app_id = t.app_id, .key = KEY, .key_len = strlen(KEY), .nonce = t.nonce,
                          .issued_at = t.issued_at, .expire_at = t.expire_at, .room_id = t.room_id,
                          .room_len = t.room_len, .user_id = t.user_id, .user_len = t.user_len,
                          .privileges = t.privileges, .nprivileges = t.nprivileges};
    char out[AT_TOKEN_MAX + 1];
    size_t len;
    if (accesstoken_build(&s, out, sizeof out, &len) != AT_OK)
        return 0;
    if (len > AT_TOKEN_MAX || accesstoken_parse(out, len, &back) != AT_OK ||
        accesstoken_verify(&back, t.app_id, KEY, strlen(KEY), 0) != AT_OK || back.nonce != t.nonce ||
        back.expire_at != t.expire_at || back.user_len != t.user_len ||
        memcmp(back.user_id, t.user_id, t.user_len) != 0 || back.room_len != t.room_len ||
        memcmp(back.room_id, t.room_id, t.room_len) != 0)
        abort();
    return 0;
}
