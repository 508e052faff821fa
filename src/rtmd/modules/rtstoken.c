/* RTS access tokens (see rtstoken.h): the server-gate method getrtstoken,
 * which mints a token in the vendor's AccessToken format for an app
 * server, and rtstoken_check for the RTS-style login. The format itself is
 * core/accesstoken.c; the keys are the project's app_id and app_key
 * settings (config.c; derived from the secret for the demo project, see
 * server.c). No state: a token is checked by its signature alone. */
#include "rtstoken.h"

#include "accesstoken.h"
#include "clock.h"
#include "identity.h"
#include "methods.h"
#include "module.h"
#include "payload.h"
#include "rtm_errors.h"

#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

/* Longest lifetime getrtstoken grants (10 years; 0 = no expiry is allowed
 * too, as the format has it). */
#define RTSTOKEN_EXPIRE_MAX 315360000
/* Entries of a getrtstoken privileges map (the keys are 0-4). */
#define RTSTOKEN_PRIVILEGES_MAX 8
#define RTSTOKEN_PRIV_KEY_MAX AT_PRIV_SUBSCRIBE_STREAM

static uint32_t random_nonce(void);

static bool enabled(const rtmd_project *p)
{
    return p->limits.app_id[0] != '\0' && p->limits.app_key[0] != '\0';
}

int rtstoken_check(const rtmd_project *p, const char *token, size_t len, const char *user_id, size_t user_len,
                   uint64_t now_s)
{
    if (p == NULL || !enabled(p))
        return RTSTOKEN_DISABLED;
    if (token == NULL || (user_id == NULL && user_len > 0))
        return RTSTOKEN_INVALID;
    accesstoken t;
    if (accesstoken_parse(token, len, &t) != AT_OK)
        return RTSTOKEN_INVALID;
    int rc = accesstoken_verify(&t, p->limits.app_id, p->limits.app_key, strlen(p->limits.app_key), now_s);
    if (rc != AT_OK && rc != AT_E_EXPIRED)
        return RTSTOKEN_INVALID;
    /* Authentic: the user decides before the time does, so that a token of
     * another user is never reported as merely expired. */
    if (t.user_len != user_len || (user_len && memcmp(t.user_id, user_id, user_len) != 0))
        return RTSTOKEN_INVALID;
    return rc == AT_E_EXPIRED ? RTSTOKEN_EXPIRED : RTSTOKEN_OK;
}

int rtstoken_mint(const rtmd_project *p, const char *user_id, size_t user_len, uint32_t lifetime_s, uint64_t now_s,
                  char *out, size_t cap)
{
    if (p == NULL || !enabled(p))
        return RTSTOKEN_DISABLED;
    if (!identity_validate(user_id, user_len) || lifetime_s == 0 || now_s + lifetime_s > UINT32_MAX)
        return RTSTOKEN_INVALID;
    at_privilege privs[] = {{AT_PRIV_PUBLISH_STREAM, 0}, {AT_PRIV_SUBSCRIBE_STREAM, 0}};
    accesstoken_spec spec = {
        .app_id = p->limits.app_id,
        .key = p->limits.app_key,
        .key_len = strlen(p->limits.app_key),
        .nonce = random_nonce(),
        .issued_at = (uint32_t)now_s,
        .expire_at = (uint32_t)(now_s + lifetime_s),
        .room_id = "",
        .room_len = 0,
        .user_id = user_id,
        .user_len = user_len,
        .privileges = privs,
        .nprivileges = 2,
    };
    return accesstoken_build(&spec, out, cap, NULL) == AT_OK ? RTSTOKEN_OK : RTSTOKEN_INVALID;
}

/* ---- getrtstoken ---- */

/* A string id argument (uid, rid): a string id as identity.h defines it, or
 * an integer written in decimal. Returns 1 with out set (NUL-terminated),
 * 0 when absent or nil, -1 for an invalid string, -2 for another type. */
static int id_arg(const msgpack_object *o, char out[IDENTITY_STRING_MAX + 1], size_t *len)
{
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return 0;
    int64_t n;
    const char *s;
    size_t slen;
    if (mp_obj_int64(o, &n)) {
        *len = (size_t)snprintf(out, IDENTITY_STRING_MAX + 1, "%" PRId64, n);
        return 1;
    }
    if (o->type != MSGPACK_OBJECT_STR || !mp_obj_str(o, &s, &slen))
        return -2;
    if (!identity_validate(s, slen))
        return -1;
    memcpy(out, s, slen);
    out[slen] = '\0';
    *len = slen;
    return 1;
}

/* A whole number of seconds within 0..RTSTOKEN_EXPIRE_MAX. */
static bool seconds_of(const msgpack_object *o, uint32_t *out)
{
    int64_t v;
    if (!mp_obj_int64(o, &v) || v < 0 || v > RTSTOKEN_EXPIRE_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* The absolute expiry of a lifetime from now: 0 stays 0 (none). False when
 * it would not fit the format's 32-bit time. */
static bool expiry(uint64_t now, uint32_t seconds, uint32_t *out)
{
    if (seconds == 0) {
        *out = 0;
        return true;
    }
    if (now + seconds > UINT32_MAX)
        return false;
    *out = (uint32_t)(now + seconds);
    return true;
}

/* A privilege key: an integer 0-4, or its decimal text (JSON maps have
 * string keys). */
static bool privilege_key(const msgpack_object *o, uint16_t *key)
{
    int64_t v;
    if (mp_obj_int64(o, &v)) {
        if (v < 0 || v > RTSTOKEN_PRIV_KEY_MAX)
            return false;
        *key = (uint16_t)v;
        return true;
    }
    const char *s;
    size_t len;
    if (o->type != MSGPACK_OBJECT_STR || !mp_obj_str(o, &s, &len) || len != 1 || s[0] < '0' ||
        s[0] > '0' + RTSTOKEN_PRIV_KEY_MAX)
        return false;
    *key = (uint16_t)(s[0] - '0');
    return true;
}

static uint32_t random_nonce(void)
{
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = (uint32_t)clock_monotonic_ms();
    return r % 99999999u + 1; /* 1..99999999, as the vendor's generators */
}

/* server gate: getrtstoken {uid: string (or int) user id, rid?: string
 * room id, expire?: seconds (0 = never; default token_ttl), privileges?:
 * {key 0-4: seconds (0 = as long as the token)}} -> {token} */
static void method_getrtstoken(rtmd_request *req)
{
    const rtmd_project *p = req->project;
    if (!enabled(p)) {
        request_error(req, RTM_EC_NO_CONFIG_IN_CONSOLE,
                      "RTS tokens are not enabled for this project: set its app_id and app_key");
        return;
    }
    char uid[IDENTITY_STRING_MAX + 1], rid[IDENTITY_STRING_MAX + 1] = "";
    size_t uid_len = 0, rid_len = 0;
    int rc = id_arg(mp_map_get(req->args, "uid"), uid, &uid_len);
    if (rc == 0 || rc == -2) {
        req_arg_error(req, "uid");
        return;
    }
    if (rc < 0) {
        request_error(req, RTM_EC_INVALID_PID_OR_UID, "invalid uid: 1-128 characters of a-z A-Z 0-9 _ @ - .");
        return;
    }
    const msgpack_object *o = mp_map_get(req->args, "rid");
    bool empty_rid = o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == 0;
    if (!empty_rid && id_arg(o, rid, &rid_len) < 0) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid rid: 1-128 characters of a-z A-Z 0-9 _ @ - .");
        return;
    }

    uint64_t now = (uint64_t)clock_unix_seconds();
    uint32_t lifetime = p->limits.token_ttl_seconds, expire_at;
    o = mp_map_get(req->args, "expire");
    if (o && o->type != MSGPACK_OBJECT_NIL && !seconds_of(o, &lifetime)) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid expire: seconds, 0..315360000 (0 = no expiry)");
        return;
    }
    if (!expiry(now, lifetime, &expire_at)) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "expire: the expiry would pass the year 2106");
        return;
    }

    /* Default: publish (0, which adds 1-3) and subscribe (4), each as long
     * as the token, as the vendor's samples grant. */
    at_privilege privs[RTSTOKEN_PRIVILEGES_MAX] = {{AT_PRIV_PUBLISH_STREAM, 0}, {AT_PRIV_SUBSCRIBE_STREAM, 0}};
    size_t nprivs = 2;
    o = mp_map_get(req->args, "privileges");
    if (o && o->type != MSGPACK_OBJECT_NIL) {
        if (o->type != MSGPACK_OBJECT_MAP) {
            req_arg_error(req, "privileges");
            return;
        }
        if (o->via.map.size > RTSTOKEN_PRIVILEGES_MAX) {
            request_error(req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, "privileges: at most 8 entries");
            return;
        }
        nprivs = o->via.map.size;
        for (size_t i = 0; i < nprivs; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            uint32_t seconds;
            if (!privilege_key(&kv->key, &privs[i].key) || !seconds_of(&kv->val, &seconds) ||
                !expiry(now, seconds, &privs[i].expire_at)) {
                request_error(req, FPNN_EC_PROTO_TYPE_CONVERT,
                              "invalid privileges: {key 0-4: seconds 0..315360000 (0 = as long as the token)}");
                return;
            }
        }
    }

    accesstoken_spec spec = {
        .app_id = p->limits.app_id,
        .key = p->limits.app_key,
        .key_len = strlen(p->limits.app_key),
        .nonce = random_nonce(),
        .issued_at = (uint32_t)now,
        .expire_at = expire_at,
        .room_id = rid,
        .room_len = rid_len,
        .user_id = uid,
        .user_len = uid_len,
        .privileges = privs,
        .nprivileges = nprivs,
    };
    char token[AT_TOKEN_MAX + 1];
    if (accesstoken_build(&spec, token, sizeof token, NULL) != AT_OK) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "cannot build the token");
        return;
    }
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_str(&pk, "token", token);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

static const rtmd_method rtstoken_methods[] = {
    {"getrtstoken", GATES_SERVER, method_getrtstoken, 0},
};

const rtmd_module rtstoken_module = {.name = "rtstoken", RTMD_MODULE_METHODS(rtstoken_methods)};
