/* The RTS access token: the vendor's published "AccessToken" format that
 * the RTS-style web SDK hands to login (docs/rtm-methods.md, "RTS tokens";
 * /work/shared/docs/protocol.md section 8). Owns the format only: parse,
 * verify with a key, build. No clock, no project, no I/O: callers pass the
 * time and the key.
 *
 *   token   = "001" + app_id (24 characters) + base64(content)
 *   content = u16 len + msg, u16 len + signature      (little-endian)
 *   msg     = u32 nonce, u32 issued_at, u32 expire_at (0 = no expiry),
 *             u16 len + room_id, u16 len + user_id,
 *             u16 count, count x (u16 privilege, u32 expire_at)
 *   signature = HMAC-SHA256(app_key, msg)             (32 bytes)
 *
 * base64 is the standard alphabet (A-Z a-z 0-9 + /) with '=' padding, as
 * the vendor's generators write it; anything else (missing padding, other
 * characters, non-zero spare bits) is refused. Every length in the token
 * is checked against what is left and against the bounds below, and no
 * byte may follow the signature or the privileges: a token that is not
 * exactly one well-formed instance of the format is AT_E_FORMAT or
 * AT_E_TOO_LARGE, never read past its end.
 *
 * Expiry, as the vendor defines it: a token whose expire_at is non-zero is
 * expired once now > expire_at (the second named is still valid), and
 * then no privilege counts whatever its own expiry; a privilege whose
 * expire_at is non-zero lapses the same way on its own. Privilege 0
 * (PublishStream) stands for 1-3 as well: the generators add 1, 2 and 3
 * with the same expiry whenever 0 is added, and so does accesstoken_build. */
#ifndef RTM_ACCESSTOKEN_H
#define RTM_ACCESSTOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AT_VERSION "001"
#define AT_VERSION_LEN 3
#define AT_APP_ID_LEN 24
#define AT_SIGNATURE_LEN 32
/* Bounds rtmd puts on tokens it reads and makes (the format allows 65535
 * bytes per field; the SDK's ids are at most 128 characters). */
#define AT_ID_MAX 256          /* bytes of room_id, of user_id */
#define AT_PRIVILEGES_MAX 32   /* privilege entries */
#define AT_MSG_MAX (12 + 2 + AT_ID_MAX + 2 + AT_ID_MAX + 2 + 6 * AT_PRIVILEGES_MAX)
#define AT_CONTENT_MAX (2 + AT_MSG_MAX + 2 + AT_SIGNATURE_LEN)
/* Longest token string: version, app id, base64 of the largest content. */
#define AT_TOKEN_MAX (AT_VERSION_LEN + AT_APP_ID_LEN + 4 * ((AT_CONTENT_MAX + 2) / 3))

/* Privilege keys of the vendor's generators. */
enum {
    AT_PRIV_PUBLISH_STREAM = 0, /* stands for 1-3 too */
    AT_PRIV_PUBLISH_AUDIO = 1,
    AT_PRIV_PUBLISH_VIDEO = 2,
    AT_PRIV_PUBLISH_DATA = 3,
    AT_PRIV_SUBSCRIBE_STREAM = 4,
};

/* Results: 0 or one of these (accesstoken_strerror names them). */
enum {
    AT_OK = 0,
    AT_E_FORMAT = -1,    /* not a token of this format: version, base64, a length, truncated, trailing bytes */
    AT_E_TOO_LARGE = -2, /* a field or the whole token exceeds the bounds above */
    AT_E_APP_ID = -3,    /* made for another app id */
    AT_E_SIGNATURE = -4, /* not signed with this key (or altered) */
    AT_E_EXPIRED = -5,   /* authentic, but its expire_at has passed */
    AT_E_ARG = -6,       /* build: an argument out of the format or the bounds */
};

typedef struct at_privilege {
    uint16_t key;
    uint32_t expire_at; /* unix seconds, 0 = as long as the token */
} at_privilege;

/* A parsed token. Ids are NUL-terminated copies (they may also contain
 * NUL bytes: use the lengths). msg keeps the signed bytes as received. */
typedef struct accesstoken {
    char app_id[AT_APP_ID_LEN + 1];
    uint32_t nonce, issued_at, expire_at;
    size_t room_len, user_len;
    char room_id[AT_ID_MAX + 1];
    char user_id[AT_ID_MAX + 1];
    size_t nprivileges;
    at_privilege privileges[AT_PRIVILEGES_MAX]; /* in token order */
    size_t msg_len;
    uint8_t msg[AT_MSG_MAX];
    uint8_t signature[AT_SIGNATURE_LEN];
} accesstoken;

/* Parses token[0..len) into *out. Checks the form only (no key, no time).
 * Returns AT_OK, AT_E_FORMAT or AT_E_TOO_LARGE; on failure *out is
 * unspecified. */
int accesstoken_parse(const char *token, size_t len, accesstoken *out);

/* Checks a parsed token, in this order: its app id is app_id (24
 * characters), its signature is HMAC-SHA256(key, msg) (compared in
 * constant time), and at now_s (unix seconds) it has not expired. Returns
 * AT_OK, AT_E_APP_ID, AT_E_SIGNATURE or AT_E_EXPIRED: a forged token is
 * never reported as expired. */
int accesstoken_verify(const accesstoken *t, const char *app_id, const void *key, size_t key_len, uint64_t now_s);

/* True when the token grants privilege key at now_s: the key is listed
 * (exactly: the generators list 1-3 themselves beside 0), its own expiry
 * has not passed, and the token has not expired. A key listed twice counts
 * by its last entry. Says nothing about the signature. */
bool accesstoken_has_privilege(const accesstoken *t, uint16_t key, uint64_t now_s);

/* What accesstoken_build signs. Privileges are written sorted by key, one
 * entry per key (a later duplicate wins, as in the generators' maps); key
 * 0 adds 1, 2 and 3 with its expiry unless they are listed themselves. */
typedef struct accesstoken_spec {
    const char *app_id;  /* exactly 24 characters of [0-9a-zA-Z] */
    const void *key;
    size_t key_len;      /* at least 1 byte */
    uint32_t nonce, issued_at, expire_at;
    const char *room_id;
    size_t room_len;     /* 0..AT_ID_MAX */
    const char *user_id;
    size_t user_len;     /* 0..AT_ID_MAX */
    const at_privilege *privileges;
    size_t nprivileges;  /* at most AT_PRIVILEGES_MAX after key 0's expansion */
} accesstoken_spec;

/* Writes the token string and a NUL into out (cap bytes; AT_TOKEN_MAX + 1
 * is always enough). Returns AT_OK with *out_len set, or AT_E_ARG. */
int accesstoken_build(const accesstoken_spec *s, char *out, size_t cap, size_t *out_len);

/* A short English name of a result code ("expired", ...). */
const char *accesstoken_strerror(int code);

#endif
