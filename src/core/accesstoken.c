/* The RTS access token format (see accesstoken.h): a strict base64 codec,
 * a bounds-checked reader of the content, the HMAC check and the writer. */
#include "accesstoken.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

/* ---- base64, standard alphabet, '=' padding required ---- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes in[0..len) into out (cap bytes). Returns the decoded length, -1
 * for text that is not canonical padded base64, -2 when it does not fit. */
static long b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (len == 0 || len % 4 != 0)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && last && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0) /* a character after '=' */
                return -1;
            v[k] = b64_value(c);
            if (v[k] < 0)
                return -1;
        }
        uint32_t quad = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* The spare bits of a padded group must be zero (canonical form). */
        if ((pad == 1 && (quad & 0xFF) != 0) || (pad == 2 && (quad & 0xFFFF) != 0))
            return -1;
        size_t bytes = 3 - (size_t)pad;
        if (cap - n < bytes)
            return -2;
        out[n++] = (uint8_t)(quad >> 16);
        if (bytes > 1)
            out[n++] = (uint8_t)(quad >> 8);
        if (bytes > 2)
            out[n++] = (uint8_t)quad;
    }
    return (long)n;
}

/* Writes base64 of in[0..len) and a NUL; out holds 4 * ceil(len / 3) + 1. */
static size_t b64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        size_t left = len - i;
        uint32_t quad = (uint32_t)in[i] << 16;
        if (left > 1)
            quad |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            quad |= in[i + 2];
        out[n++] = b64_alphabet[(quad >> 18) & 63];
        out[n++] = b64_alphabet[(quad >> 12) & 63];
        out[n++] = left > 1 ? b64_alphabet[(quad >> 6) & 63] : '=';
        out[n++] = left > 2 ? b64_alphabet[quad & 63] : '=';
    }
    out[n] = '\0';
    return n;
}

/* ---- reading the content ---- */

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static bool rd_u16(reader *r, uint16_t *v)
{
    if (r->left < 2)
        return false;
    *v = (uint16_t)(r->p[0] | r->p[1] << 8);
    r->p += 2;
    r->left -= 2;
    return true;
}

static bool rd_u32(reader *r, uint32_t *v)
{
    if (r->left < 4)
        return false;
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    r->left -= 4;
    return true;
}

/* A u16-length-prefixed field: AT_OK with *data and *len, AT_E_FORMAT when it
 * runs past the end, AT_E_TOO_LARGE when longer than max. */
static int rd_bytes(reader *r, size_t max, const uint8_t **data, size_t *len)
{
    uint16_t n;
    if (!rd_u16(r, &n))
        return AT_E_FORMAT;
    if (n > r->left)
        return AT_E_FORMAT;
    if (n > max)
        return AT_E_TOO_LARGE;
    *data = r->p;
    *len = n;
    r->p += n;
    r->left -= n;
    return AT_OK;
}

static int rd_id(reader *r, char *dst, size_t *dst_len)
{
    const uint8_t *data;
    size_t len;
    int rc = rd_bytes(r, AT_ID_MAX, &data, &len);
    if (rc != AT_OK)
        return rc;
    memcpy(dst, data, len);
    dst[len] = '\0';
    *dst_len = len;
    return AT_OK;
}

static int parse_msg(accesstoken *t)
{
    reader r = {t->msg, t->msg_len};
    int rc;
    if (!rd_u32(&r, &t->nonce) || !rd_u32(&r, &t->issued_at) || !rd_u32(&r, &t->expire_at))
        return AT_E_FORMAT;
    if ((rc = rd_id(&r, t->room_id, &t->room_len)) != AT_OK || (rc = rd_id(&r, t->user_id, &t->user_len)) != AT_OK)
        return rc;
    uint16_t count;
    if (!rd_u16(&r, &count))
        return AT_E_FORMAT;
    if ((size_t)count * 6 > r.left)
        return AT_E_FORMAT;
    if (count > AT_PRIVILEGES_MAX)
        return AT_E_TOO_LARGE;
    for (uint16_t i = 0; i < count; i++)
        if (!rd_u16(&r, &t->privileges[i].key) || !rd_u32(&r, &t->privileges[i].expire_at))
            return AT_E_FORMAT;
    t->nprivileges = count;
    return r.left == 0 ? AT_OK : AT_E_FORMAT;
}

int accesstoken_parse(const char *token, size_t len, accesstoken *out)
{
    if (token == NULL || out == NULL)
        return AT_E_FORMAT;
    if (len > AT_TOKEN_MAX)
        return AT_E_TOO_LARGE;
    if (len <= AT_VERSION_LEN + AT_APP_ID_LEN || memcmp(token, AT_VERSION, AT_VERSION_LEN) != 0)
        return AT_E_FORMAT;
    memset(out, 0, sizeof *out);
    memcpy(out->app_id, token + AT_VERSION_LEN, AT_APP_ID_LEN);
    out->app_id[AT_APP_ID_LEN] = '\0';

    uint8_t content[AT_CONTENT_MAX];
    const char *b64 = token + AT_VERSION_LEN + AT_APP_ID_LEN;
    long n = b64_decode(b64, len - AT_VERSION_LEN - AT_APP_ID_LEN, content, sizeof content);
    if (n == -2)
        return AT_E_TOO_LARGE;
    if (n < 0)
        return AT_E_FORMAT;
    reader r = {content, (size_t)n};
    const uint8_t *msg, *sig;
    size_t msg_len, sig_len;
    int rc = rd_bytes(&r, AT_MSG_MAX, &msg, &msg_len);
    if (rc != AT_OK)
        return rc;
    if ((rc = rd_bytes(&r, AT_SIGNATURE_LEN, &sig, &sig_len)) != AT_OK)
        return rc == AT_E_TOO_LARGE ? AT_E_FORMAT : rc;
    if (sig_len != AT_SIGNATURE_LEN || r.left != 0)
        return AT_E_FORMAT;
    memcpy(out->msg, msg, msg_len);
    out->msg_len = msg_len;
    memcpy(out->signature, sig, AT_SIGNATURE_LEN);
    return parse_msg(out);
}

/* ---- verifying ---- */

static bool hmac_sha256(const void *key, size_t key_len, const uint8_t *data, size_t len,
                        uint8_t out[AT_SIGNATURE_LEN])
{
    unsigned int out_len = 0;
    if (key_len > INT32_MAX)
        return false;
    return HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len) != NULL && out_len == AT_SIGNATURE_LEN;
}

static bool lapsed(uint32_t expire_at, uint64_t now_s)
{
    return expire_at != 0 && now_s > expire_at;
}

int accesstoken_verify(const accesstoken *t, const char *app_id, const void *key, size_t key_len, uint64_t now_s)
{
    if (app_id == NULL || strlen(app_id) != AT_APP_ID_LEN ||
        CRYPTO_memcmp(t->app_id, app_id, AT_APP_ID_LEN) != 0)
        return AT_E_APP_ID;
    uint8_t mac[AT_SIGNATURE_LEN];
    if (key == NULL || key_len == 0 || !hmac_sha256(key, key_len, t->msg, t->msg_len, mac) ||
        CRYPTO_memcmp(mac, t->signature, AT_SIGNATURE_LEN) != 0)
        return AT_E_SIGNATURE;
    if (lapsed(t->expire_at, now_s))
        return AT_E_EXPIRED;
    return AT_OK;
}

bool accesstoken_has_privilege(const accesstoken *t, uint16_t key, uint64_t now_s)
{
    if (lapsed(t->expire_at, now_s))
        return false;
    for (size_t i = t->nprivileges; i-- > 0;)
        if (t->privileges[i].key == key)
            return !lapsed(t->privileges[i].expire_at, now_s);
    return false;
}

/* ---- building ---- */

typedef struct writer {
    uint8_t *p;
    size_t n, cap;
} writer;

static void wr_u16(writer *w, uint16_t v)
{
    w->p[w->n++] = (uint8_t)v;
    w->p[w->n++] = (uint8_t)(v >> 8);
}

static void wr_u32(writer *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        w->p[w->n++] = (uint8_t)(v >> (8 * i));
}

static void wr_bytes(writer *w, const void *data, size_t len)
{
    wr_u16(w, (uint16_t)len);
    if (len)
        memcpy(w->p + w->n, data, len);
    w->n += len;
}

static bool app_id_ok(const char *s)
{
    if (s == NULL || strlen(s) != AT_APP_ID_LEN)
        return false;
    for (size_t i = 0; i < AT_APP_ID_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

/* The spec's privileges as the token lists them: one per key, sorted, 0
 * expanded. Returns the count, or -1 when over AT_PRIVILEGES_MAX. */
static int collect_privileges(const accesstoken_spec *s, at_privilege out[AT_PRIVILEGES_MAX])
{
    size_t n = 0;
    bool listed[4] = {false, false, false, false};
    for (size_t i = 0; i < s->nprivileges; i++)
        if (s->privileges[i].key >= 1 && s->privileges[i].key <= 3)
            listed[s->privileges[i].key] = true;
    for (size_t i = 0; i < s->nprivileges; i++) {
        at_privilege add[4] = {s->privileges[i]};
        size_t nadd = 1;
        if (s->privileges[i].key == AT_PRIV_PUBLISH_STREAM)
            for (uint16_t k = 1; k <= 3; k++)
                if (!listed[k])
                    add[nadd++] = (at_privilege){k, s->privileges[i].expire_at};
        for (size_t a = 0; a < nadd; a++) {
            size_t j = 0;
            while (j < n && out[j].key < add[a].key)
                j++;
            if (j < n && out[j].key == add[a].key) {
                out[j].expire_at = add[a].expire_at; /* a later entry wins */
                continue;
            }
            if (n == AT_PRIVILEGES_MAX)
                return -1;
            memmove(out + j + 1, out + j, (n - j) * sizeof *out);
            out[j] = add[a];
            n++;
        }
    }
    return (int)n;
}

int accesstoken_build(const accesstoken_spec *s, char *out, size_t cap, size_t *out_len)
{
    if (s == NULL || out == NULL || !app_id_ok(s->app_id) || s->key == NULL || s->key_len == 0 ||
        s->room_len > AT_ID_MAX || s->user_len > AT_ID_MAX || (s->room_len && s->room_id == NULL) ||
        (s->user_len && s->user_id == NULL) || (s->nprivileges && s->privileges == NULL))
        return AT_E_ARG;
    at_privilege privs[AT_PRIVILEGES_MAX];
    int nprivs = collect_privileges(s, privs);
    if (nprivs < 0)
        return AT_E_ARG;

    uint8_t content[AT_CONTENT_MAX];
    writer w = {content, 0, sizeof content};
    w.n = 2; /* the message's length, written below */
    wr_u32(&w, s->nonce);
    wr_u32(&w, s->issued_at);
    wr_u32(&w, s->expire_at);
    wr_bytes(&w, s->room_id, s->room_len);
    wr_bytes(&w, s->user_id, s->user_len);
    wr_u16(&w, (uint16_t)nprivs);
    for (int i = 0; i < nprivs; i++) {
        wr_u16(&w, privs[i].key);
        wr_u32(&w, privs[i].expire_at);
    }
    size_t msg_len = w.n - 2;
    content[0] = (uint8_t)msg_len;
    content[1] = (uint8_t)(msg_len >> 8);
    uint8_t mac[AT_SIGNATURE_LEN];
    if (!hmac_sha256(s->key, s->key_len, content + 2, msg_len, mac))
        return AT_E_ARG;
    wr_bytes(&w, mac, sizeof mac);

    size_t need = AT_VERSION_LEN + AT_APP_ID_LEN + 4 * ((w.n + 2) / 3) + 1;
    if (cap < need)
        return AT_E_ARG;
    memcpy(out, AT_VERSION, AT_VERSION_LEN);
    memcpy(out + AT_VERSION_LEN, s->app_id, AT_APP_ID_LEN);
    size_t n = b64_encode(content, w.n, out + AT_VERSION_LEN + AT_APP_ID_LEN);
    if (out_len)
        *out_len = AT_VERSION_LEN + AT_APP_ID_LEN + n;
    return AT_OK;
}

const char *accesstoken_strerror(int code)
{
    switch (code) {
    case AT_OK:
        return "ok";
    case AT_E_FORMAT:
        return "malformed token";
    case AT_E_TOO_LARGE:
        return "token field too large";
    case AT_E_APP_ID:
        return "token of another app id";
    case AT_E_SIGNATURE:
        return "bad token signature";
    case AT_E_EXPIRED:
        return "token expired";
    case AT_E_ARG:
        return "bad token argument";
    }
    return "unknown token error";
}
