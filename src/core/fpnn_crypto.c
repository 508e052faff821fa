/* Encrypted FPNN links (see fpnn_crypto.h): secp256k1 key loading and
 * generation, ECDH key agreement, key/IV derivation and the AES-CFB package
 * and stream ciphers, all through the OpenSSL 3 EVP interfaces. */
#include "fpnn_crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FPNN_CURVE "secp256k1"
#define FPNN_COORD_LEN 32
#define FPNN_IV_LEN 16
/* Largest slice handed to one EVP update call (its length is an int). */
#define FPNN_CHUNK ((size_t)1 << 30)

struct fpnn_crypto {
    bool stream_mode;
    size_t key_len;
    uint8_t key[32];
    uint8_t iv[FPNN_IV_LEN];
    /* Stream mode: two running CFB streams. Package mode: contexts whose IV
     * is reset before every package, so each starts from the initial IV. */
    EVP_CIPHER_CTX *enc;
    EVP_CIPHER_CTX *dec;
};

static void set_err(char *err, size_t errlen, const char *what, const char *path)
{
    if (err == NULL || errlen == 0)
        return;
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        char detail[256];
        ERR_error_string_n(e, detail, sizeof detail);
        snprintf(err, errlen, "%s %s: %s", what, path, detail);
    } else {
        snprintf(err, errlen, "%s %s", what, path);
    }
}

/* Refuses to prompt on the terminal for the passphrase of an encrypted PEM. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* True when key is an EC key on secp256k1. */
static bool is_secp256k1(const EVP_PKEY *key)
{
    char group[64];
    size_t glen = 0;
    if (key == NULL || !EVP_PKEY_is_a(key, "EC"))
        return false;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) != 1)
        return false;
    return strcmp(group, FPNN_CURVE) == 0;
}

EVP_PKEY *fpnn_crypto_load_private_key(const char *pem_path, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (pem_path == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "no private key file given");
        return NULL;
    }
    ERR_clear_error();
    BIO *bio = BIO_new_file(pem_path, "r");
    if (bio == NULL) {
        set_err(err, errlen, "cannot open private key", pem_path);
        ERR_clear_error();
        return NULL;
    }
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (key == NULL) {
        set_err(err, errlen, "cannot read a PEM private key from", pem_path);
        ERR_clear_error();
        return NULL;
    }
    if (!is_secp256k1(key)) {
        ERR_clear_error();
        set_err(err, errlen, "not a " FPNN_CURVE " EC private key:", pem_path);
        EVP_PKEY_free(key);
        return NULL;
    }
    /* A key with a public part is needed to announce it to peers. */
    uint8_t pub[FPNN_CRYPTO_PUBKEY_LEN];
    if (fpnn_crypto_public_key(key, pub) != 0) {
        set_err(err, errlen, "private key has no usable public key:", pem_path);
        ERR_clear_error();
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

int fpnn_crypto_public_key(EVP_PKEY *key, uint8_t out[FPNN_CRYPTO_PUBKEY_LEN])
{
    if (key == NULL || out == NULL || !is_secp256k1(key))
        return -1;
    /* The affine coordinates do not depend on the point format the key was
     * stored with (compressed or not). */
    BIGNUM *x = NULL, *y = NULL;
    int rc = -1;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
        BN_bn2binpad(x, out, FPNN_COORD_LEN) == FPNN_COORD_LEN &&
        BN_bn2binpad(y, out + FPNN_COORD_LEN, FPNN_COORD_LEN) == FPNN_COORD_LEN)
        rc = 0;
    BN_free(x);
    BN_free(y);
    if (rc != 0)
        ERR_clear_error();
    return rc;
}

int fpnn_crypto_load_public_key(const char *pem_path, uint8_t out[FPNN_CRYPTO_PUBKEY_LEN], char *err, size_t errlen)
{
    ERR_clear_error();
    BIO *bio = BIO_new_file(pem_path, "r");
    if (!bio) {
        snprintf(err, errlen, "cannot open key file %s", pem_path);
        ERR_clear_error();
        return -1;
    }
    EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (!key) {
        /* A private key file also carries the public key. */
        key = fpnn_crypto_load_private_key(pem_path, err, errlen);
        if (!key) {
            snprintf(err, errlen, "%s: no secp256k1 key (expected a PEM public key or EC private key)", pem_path);
            return -1;
        }
    }
    int rc = is_secp256k1(key) ? fpnn_crypto_public_key(key, out) : -1;
    EVP_PKEY_free(key);
    ERR_clear_error();
    if (rc != 0)
        snprintf(err, errlen, "%s: not a secp256k1 key", pem_path);
    return rc == 0 ? 0 : -1;
}

EVP_PKEY *fpnn_crypto_generate_key(void)
{
    EVP_PKEY *key = EVP_EC_gen(FPNN_CURVE);
    if (key == NULL)
        ERR_clear_error();
    return key;
}

/* Builds a public-only EVP_PKEY from the peer's 64 bytes; NULL when they are
 * not a point of the curve. */
static EVP_PKEY *peer_key(const uint8_t *peer_pub)
{
    uint8_t point[1 + FPNN_CRYPTO_PUBKEY_LEN];
    char group[] = FPNN_CURVE;
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, peer_pub, FPNN_CRYPTO_PUBKEY_LEN);

    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1 ||
        EVP_PKEY_fromdata(pctx, &peer, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(peer);
        peer = NULL;
    }
    EVP_PKEY_CTX_free(pctx);
    return peer;
}

/* ECDH of own_key and the peer point into secret (room for 64 bytes).
 * Returns the secret length, or 0 on failure. */
static size_t derive_secret(EVP_PKEY *own_key, const uint8_t *peer_pub, uint8_t secret[64])
{
    EVP_PKEY *peer = peer_key(peer_pub);
    if (peer == NULL)
        return 0;
    size_t len = 0;
    EVP_PKEY_CTX *dctx = EVP_PKEY_CTX_new_from_pkey(NULL, own_key, NULL);
    /* EVP_PKEY_derive_set_peer also runs the full public key check. */
    if (dctx != NULL && EVP_PKEY_derive_init(dctx) == 1 && EVP_PKEY_derive_set_peer(dctx, peer) == 1 &&
        EVP_PKEY_derive(dctx, NULL, &len) == 1 && len > 0 && len <= 64) {
        if (EVP_PKEY_derive(dctx, secret, &len) != 1)
            len = 0;
    } else {
        len = 0;
    }
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(peer);
    return len;
}

fpnn_crypto *fpnn_crypto_new(EVP_PKEY *own_key, const uint8_t *peer_pub, size_t peer_pub_len, int bits,
                             bool stream_mode)
{
    if ((bits != 128 && bits != 256) || peer_pub == NULL || peer_pub_len != FPNN_CRYPTO_PUBKEY_LEN ||
        !is_secp256k1(own_key)) {
        ERR_clear_error();
        return NULL;
    }
    fpnn_crypto *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->stream_mode = stream_mode;

    uint8_t secret[64];
    size_t slen = derive_secret(own_key, peer_pub, secret);
    if (slen == 0)
        goto fail;

    unsigned int mdlen = 0;
    if (EVP_Digest(secret, slen, c->iv, &mdlen, EVP_md5(), NULL) != 1 || mdlen != FPNN_IV_LEN)
        goto fail;
    const EVP_CIPHER *cipher;
    if (bits == 128) {
        if (slen < 16)
            goto fail;
        c->key_len = 16;
        memcpy(c->key, secret, 16);
        cipher = EVP_aes_128_cfb128();
    } else {
        c->key_len = 32;
        if (slen == 32) {
            memcpy(c->key, secret, 32);
        } else if (EVP_Digest(secret, slen, c->key, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
            goto fail;
        }
        cipher = EVP_aes_256_cfb128();
    }

    c->enc = EVP_CIPHER_CTX_new();
    c->dec = EVP_CIPHER_CTX_new();
    if (c->enc == NULL || c->dec == NULL || EVP_EncryptInit_ex2(c->enc, cipher, c->key, c->iv, NULL) != 1 ||
        EVP_DecryptInit_ex2(c->dec, cipher, c->key, c->iv, NULL) != 1)
        goto fail;
    OPENSSL_cleanse(secret, sizeof secret);
    return c;

fail:
    OPENSSL_cleanse(secret, sizeof secret);
    fpnn_crypto_free(c);
    ERR_clear_error();
    return NULL;
}

void fpnn_crypto_free(fpnn_crypto *c)
{
    if (c == NULL)
        return;
    EVP_CIPHER_CTX_free(c->enc);
    EVP_CIPHER_CTX_free(c->dec);
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

bool fpnn_crypto_stream_mode(const fpnn_crypto *c)
{
    return c != NULL && c->stream_mode;
}

const uint8_t *fpnn_crypto_key(const fpnn_crypto *c, size_t *len)
{
    if (c == NULL) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = c->key_len;
    return c->key;
}

const uint8_t *fpnn_crypto_iv(const fpnn_crypto *c)
{
    return c != NULL ? c->iv : NULL;
}

/* Runs len bytes through ctx (CFB: output length equals input length). */
static int cfb_update(EVP_CIPHER_CTX *ctx, bool encrypt, const uint8_t *in, size_t len, uint8_t *out)
{
    while (len > 0) {
        size_t n = len < FPNN_CHUNK ? len : FPNN_CHUNK;
        int outl = 0;
        int ok = encrypt ? EVP_EncryptUpdate(ctx, out, &outl, in, (int)n)
                         : EVP_DecryptUpdate(ctx, out, &outl, in, (int)n);
        if (ok != 1 || outl != (int)n) {
            ERR_clear_error();
            return -1;
        }
        in += n;
        out += n;
        len -= n;
    }
    return 0;
}

/* Package mode: restarts ctx from the initial IV (the key is kept). */
static int restart(fpnn_crypto *c, EVP_CIPHER_CTX *ctx, bool encrypt)
{
    int ok = encrypt ? EVP_EncryptInit_ex2(ctx, NULL, NULL, c->iv, NULL)
                     : EVP_DecryptInit_ex2(ctx, NULL, NULL, c->iv, NULL);
    if (ok != 1) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

int fpnn_crypto_encrypt(fpnn_crypto *c, const uint8_t *in, size_t len, rtm_buf *out)
{
    if (c == NULL || out == NULL || (in == NULL && len > 0))
        return -1;
    if (c->stream_mode) {
        if (len == 0)
            return 0;
        if (rtm_buf_reserve(out, len) != 0)
            return -1;
        if (cfb_update(c->enc, true, in, len, out->data + out->len) != 0)
            return -1;
        out->len += len;
        return 0;
    }
    if (len > UINT32_MAX)
        return -1;
    if (rtm_buf_reserve(out, 4 + len) != 0)
        return -1;
    uint8_t *p = out->data + out->len;
    p[0] = (uint8_t)len;
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 24);
    if (len > 0 && (restart(c, c->enc, true) != 0 || cfb_update(c->enc, true, in, len, p + 4) != 0))
        return -1;
    out->len += 4 + len;
    return 0;
}

int fpnn_crypto_decrypt_stream(fpnn_crypto *c, uint8_t *data, size_t len)
{
    if (c == NULL || !c->stream_mode || (data == NULL && len > 0))
        return -1;
    if (len == 0)
        return 0;
    return cfb_update(c->dec, false, data, len, data);
}

int fpnn_crypto_decrypt_package(fpnn_crypto *c, const uint8_t *in, size_t len, uint8_t *out)
{
    if (c == NULL || c->stream_mode || ((in == NULL || out == NULL) && len > 0))
        return -1;
    if (len == 0)
        return 0;
    if (restart(c, c->dec, false) != 0)
        return -1;
    return cfb_update(c->dec, false, in, len, out);
}
