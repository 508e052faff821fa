/* Unit tests of fpnn_crypto: key loading, ECDH key/IV derivation and AES-CFB
 * package and stream modes against vectors computed independently with the
 * openssl command line, round trips, and rejection of bad input. */
#include "fpnn_crypto.h"

#include <openssl/ec.h>
#include <openssl/err.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define SERVER_KEY TEST_DATA_DIR "/test_server_key.pem"
#define CLIENT_KEY TEST_DATA_DIR "/test_client_key.pem"
#define CLIENT_KEY_PKCS8 TEST_DATA_DIR "/test_client_key_pkcs8.pem"
#define P256_KEY TEST_DATA_DIR "/test_p256_key.pem"

/* Computed with:
 *   openssl ec -in KEY.pem -pubout -outform DER | tail -c 64 | xxd -p
 *   openssl pkeyutl -derive -inkey test_server_key.pem -peerkey client_pub.pem
 *   openssl dgst -md5 secret.bin */
static const char SERVER_PUB_HEX[] = "bce2c7a05e4f3578b84bc7d31e04e06e8c2260e01d6fb2b0a74af43f52025f57"
                                     "fb6052d29617ce3b569b31abb8239cb25f18ea8b1933aba7f7801eddedbf61e0";
static const char CLIENT_PUB_HEX[] = "4b4fbb16ba8d57350443354e0d7a3a1147a6000685d1a42a104fd74943d2022d"
                                     "fe347b57c9d4dacbd8dd42e13bb6ac173351277d102afb9fc9ad974a2fa0a0e7";
static const char SECRET_HEX[] = "9b44fafa282ddef05027db551f67cc0bd04bc17ea7b431a8b55ac64db1744692";
static const char KEY128_HEX[] = "9b44fafa282ddef05027db551f67cc0b";
static const char IV_HEX[] = "15502903423d6cf37cdb934b420e854b";

/* Computed with:
 *   printf '%s' "$P" | openssl enc -aes-128-cfb -K KEY128 -iv IV -nopad | xxd -p
 * (and -aes-256-cfb with the whole secret as key); *_12 is P1 then P2. */
static const char P1[] = "The quick brown fox jumps over 13 lazy dogs.";
static const char P2[] = "FPNN stream, part two!";
static const char CT128_1[] = "921eb14ab6f04952a9e31362d09f68355f0b8d3e58b1f2506d01d23fb185b6d82ff22bb68d782c27d76c7e8d";
static const char CT128_2[] = "80269a24e7f65443a7a21c3c9f986767e4f7033e03b0";
static const char CT128_12[] = "921eb14ab6f04952a9e31362d09f68355f0b8d3e58b1f2506d01d23fb185b6d82ff22bb68d782c27d76c7e8d"
                               "ea459d32e3cb8b1a49f3316a48c26fc14498986ab3f4";
static const char CT256_1[] = "5a5d03eeebe82f22088456f43281276846a1c7505bd90fe5949168152e34aed0f02a591e8d08a80ad4bb78b8";
static const char CT256_2[] = "48652880baee323306c559aa7d86283a574abcb25de2";
static const char CT256_12[] = "5a5d03eeebe82f22088456f43281276846a1c7505bd90fe5949168152e34aed0f02a591e8d08a80ad4bb78b8"
                               "0d45a322aef76ab32a6ec0b98e9bc9f96dfb4bb92eaa";

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char ch = hex[2 * i + j];
            v <<= 4;
            if (ch >= '0' && ch <= '9')
                v |= (unsigned)(ch - '0');
            else if (ch >= 'a' && ch <= 'f')
                v |= (unsigned)(ch - 'a' + 10);
            else
                fail_msg("bad hex digit %c", ch);
        }
        out[i] = (uint8_t)v;
    }
    return n;
}

static EVP_PKEY *load(const char *path)
{
    char err[256];
    EVP_PKEY *k = fpnn_crypto_load_private_key(path, err, sizeof err);
    if (k == NULL)
        fail_msg("loading %s: %s", path, err);
    return k;
}

/* The two ends of a link built from the fixed test keys. */
typedef struct {
    EVP_PKEY *server_key, *client_key;
    fpnn_crypto *server, *client;
} fixed_link;

static void fixed_link_open(fixed_link *l, int bits, bool stream)
{
    uint8_t spub[FPNN_CRYPTO_PUBKEY_LEN], cpub[FPNN_CRYPTO_PUBKEY_LEN];
    l->server_key = load(SERVER_KEY);
    l->client_key = load(CLIENT_KEY);
    assert_int_equal(fpnn_crypto_public_key(l->server_key, spub), 0);
    assert_int_equal(fpnn_crypto_public_key(l->client_key, cpub), 0);
    l->server = fpnn_crypto_new(l->server_key, cpub, sizeof cpub, bits, stream);
    l->client = fpnn_crypto_new(l->client_key, spub, sizeof spub, bits, stream);
    assert_non_null(l->server);
    assert_non_null(l->client);
}

static void fixed_link_close(fixed_link *l)
{
    fpnn_crypto_free(l->server);
    fpnn_crypto_free(l->client);
    EVP_PKEY_free(l->server_key);
    EVP_PKEY_free(l->client_key);
}

static void test_load_keys(void **state)
{
    (void)state;
    uint8_t want[FPNN_CRYPTO_PUBKEY_LEN], got[FPNN_CRYPTO_PUBKEY_LEN];

    EVP_PKEY *k = load(SERVER_KEY);
    assert_int_equal(fpnn_crypto_public_key(k, got), 0);
    unhex(SERVER_PUB_HEX, want, sizeof want);
    assert_memory_equal(got, want, sizeof want);
    EVP_PKEY_free(k);

    unhex(CLIENT_PUB_HEX, want, sizeof want);
    k = load(CLIENT_KEY);
    assert_int_equal(fpnn_crypto_public_key(k, got), 0);
    assert_memory_equal(got, want, sizeof want);
    EVP_PKEY_free(k);

    /* The same key stored as PKCS#8. */
    k = load(CLIENT_KEY_PKCS8);
    memset(got, 0, sizeof got);
    assert_int_equal(fpnn_crypto_public_key(k, got), 0);
    assert_memory_equal(got, want, sizeof want);
    EVP_PKEY_free(k);
}

static void test_load_rejects(void **state)
{
    (void)state;
    char err[256];

    err[0] = '\0';
    assert_null(fpnn_crypto_load_private_key(TEST_DATA_DIR "/no_such_key.pem", err, sizeof err));
    assert_true(strlen(err) > 0);

    /* A valid EC key on the wrong curve. */
    err[0] = '\0';
    assert_null(fpnn_crypto_load_private_key(P256_KEY, err, sizeof err));
    assert_non_null(strstr(err, "secp256k1"));

    /* Not a key at all (this source file), and no error buffer. */
    assert_null(fpnn_crypto_load_private_key(__FILE__, NULL, 0));
    assert_null(fpnn_crypto_load_private_key(NULL, err, sizeof err));
    /* Failures leave no stale errors for other OpenSSL users of the thread. */
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_generate_key(void **state)
{
    (void)state;
    EVP_PKEY *a = fpnn_crypto_generate_key();
    EVP_PKEY *b = fpnn_crypto_generate_key();
    assert_non_null(a);
    assert_non_null(b);
    uint8_t pa[FPNN_CRYPTO_PUBKEY_LEN], pb[FPNN_CRYPTO_PUBKEY_LEN];
    assert_int_equal(fpnn_crypto_public_key(a, pa), 0);
    assert_int_equal(fpnn_crypto_public_key(b, pb), 0);
    assert_memory_not_equal(pa, pb, sizeof pa);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    assert_int_equal(fpnn_crypto_public_key(NULL, pa), -1);
}

/* Known vector: key and IV of both ends equal the openssl CLI results. */
static void test_known_key_iv(void **state)
{
    (void)state;
    uint8_t key128[16], key256[32], iv[16];
    unhex(KEY128_HEX, key128, sizeof key128);
    unhex(SECRET_HEX, key256, sizeof key256);
    unhex(IV_HEX, iv, sizeof iv);

    for (int mode = 0; mode < 2; mode++) {
        fixed_link l;
        size_t len = 0;

        fixed_link_open(&l, 128, mode == 1);
        assert_int_equal(fpnn_crypto_stream_mode(l.server), mode == 1);
        assert_memory_equal(fpnn_crypto_key(l.server, &len), key128, sizeof key128);
        assert_int_equal(len, 16);
        assert_memory_equal(fpnn_crypto_key(l.client, &len), key128, sizeof key128);
        assert_int_equal(len, 16);
        assert_memory_equal(fpnn_crypto_iv(l.server), iv, sizeof iv);
        assert_memory_equal(fpnn_crypto_iv(l.client), iv, sizeof iv);
        fixed_link_close(&l);

        fixed_link_open(&l, 256, mode == 1);
        assert_memory_equal(fpnn_crypto_key(l.server, &len), key256, sizeof key256);
        assert_int_equal(len, 32);
        assert_memory_equal(fpnn_crypto_key(l.client, &len), key256, sizeof key256);
        assert_int_equal(len, 32);
        assert_memory_equal(fpnn_crypto_iv(l.server), iv, sizeof iv);
        assert_memory_equal(fpnn_crypto_iv(l.client), iv, sizeof iv);
        fixed_link_close(&l);
    }
}

/* Known vector through the hex constants given directly (no file): the peer
 * point as it would arrive in a *key quest. */
static void test_known_peer_bytes(void **state)
{
    (void)state;
    uint8_t cpub[FPNN_CRYPTO_PUBKEY_LEN], key[16], iv[16];
    unhex(CLIENT_PUB_HEX, cpub, sizeof cpub);
    unhex(KEY128_HEX, key, sizeof key);
    unhex(IV_HEX, iv, sizeof iv);
    EVP_PKEY *sk = load(SERVER_KEY);
    fpnn_crypto *c = fpnn_crypto_new(sk, cpub, sizeof cpub, 128, false);
    EVP_PKEY_free(sk); /* the link does not need the key any more */
    assert_non_null(c);
    size_t len = 0;
    assert_memory_equal(fpnn_crypto_key(c, &len), key, sizeof key);
    assert_int_equal(len, 16);
    assert_memory_equal(fpnn_crypto_iv(c), iv, sizeof iv);
    fpnn_crypto_free(c);
}

static void check_package(const uint8_t *pkg, size_t pkg_len, const char *want_hex)
{
    uint8_t want[128];
    size_t n = unhex(want_hex, want, sizeof want);
    assert_int_equal(pkg_len, 4 + n);
    assert_int_equal(pkg[0] | pkg[1] << 8 | pkg[2] << 16 | (uint32_t)pkg[3] << 24, n);
    assert_memory_equal(pkg + 4, want, n);
}

static void known_cfb_package(int bits, const char *ct1, const char *ct2)
{
    fixed_link l;
    fixed_link_open(&l, bits, false);
    rtm_buf out = {0};
    size_t n1 = sizeof P1 - 1, n2 = sizeof P2 - 1;

    /* Each package starts again from the initial IV. */
    assert_int_equal(fpnn_crypto_encrypt(l.client, (const uint8_t *)P1, n1, &out), 0);
    assert_int_equal(fpnn_crypto_encrypt(l.client, (const uint8_t *)P2, n2, &out), 0);
    assert_int_equal(fpnn_crypto_encrypt(l.client, (const uint8_t *)P1, n1, &out), 0);
    assert_int_equal(out.len, 3 * 4 + 2 * n1 + n2);
    check_package(out.data, 4 + n1, ct1);
    check_package(out.data + 4 + n1, 4 + n2, ct2);
    check_package(out.data + 8 + n1 + n2, 4 + n1, ct1);

    /* The server decrypts the bodies, in any order. */
    uint8_t plain[64];
    assert_int_equal(fpnn_crypto_decrypt_package(l.server, out.data + 8 + n1, n2, plain), 0);
    assert_memory_equal(plain, P2, n2);
    assert_int_equal(fpnn_crypto_decrypt_package(l.server, out.data + 4, n1, plain), 0);
    assert_memory_equal(plain, P1, n1);
    assert_int_equal(fpnn_crypto_decrypt_package(l.server, out.data + 12 + n1 + n2, n1, plain), 0);
    assert_memory_equal(plain, P1, n1);

    /* And the other direction gives the same bytes (same key and IV). */
    rtm_buf back = {0};
    assert_int_equal(fpnn_crypto_encrypt(l.server, (const uint8_t *)P1, n1, &back), 0);
    check_package(back.data, back.len, ct1);
    assert_int_equal(fpnn_crypto_decrypt_package(l.client, back.data + 4, n1, plain), 0);
    assert_memory_equal(plain, P1, n1);

    /* Stream-mode calls are refused on a package link. */
    assert_int_equal(fpnn_crypto_decrypt_stream(l.client, plain, 4), -1);

    rtm_buf_free(&out);
    rtm_buf_free(&back);
    fixed_link_close(&l);
}

static void test_known_cfb_package_128(void **state)
{
    (void)state;
    known_cfb_package(128, CT128_1, CT128_2);
}

static void test_known_cfb_package_256(void **state)
{
    (void)state;
    known_cfb_package(256, CT256_1, CT256_2);
}

static void known_cfb_stream(int bits, const char *ct12)
{
    fixed_link l;
    fixed_link_open(&l, bits, true);
    uint8_t want[128];
    size_t n = unhex(ct12, want, sizeof want);
    size_t n1 = sizeof P1 - 1, n2 = sizeof P2 - 1;
    assert_int_equal(n, n1 + n2);

    /* No length prefix; the second call continues the stream. */
    rtm_buf out = {0};
    assert_int_equal(fpnn_crypto_encrypt(l.server, (const uint8_t *)P1, n1, &out), 0);
    assert_int_equal(out.len, n1);
    assert_int_equal(fpnn_crypto_encrypt(l.server, NULL, 0, &out), 0);
    assert_int_equal(fpnn_crypto_encrypt(l.server, (const uint8_t *)P2, n2, &out), 0);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, want, n);

    /* Decrypted in place, split at another point than it was written. */
    assert_int_equal(fpnn_crypto_decrypt_stream(l.client, out.data, 7), 0);
    assert_int_equal(fpnn_crypto_decrypt_stream(l.client, out.data + 7, n - 7), 0);
    assert_memory_equal(out.data, P1, n1);
    assert_memory_equal(out.data + n1, P2, n2);

    /* Package-mode calls are refused on a stream link. */
    uint8_t plain[8];
    assert_int_equal(fpnn_crypto_decrypt_package(l.client, want, 8, plain), -1);

    rtm_buf_free(&out);
    fixed_link_close(&l);
}

static void test_known_cfb_stream_128(void **state)
{
    (void)state;
    known_cfb_stream(128, CT128_12);
}

static void test_known_cfb_stream_256(void **state)
{
    (void)state;
    known_cfb_stream(256, CT256_12);
}

/* Two ends with fresh keys: the client generates its key as an SDK does. */
typedef struct {
    EVP_PKEY *server_key, *client_key;
    fpnn_crypto *server, *client;
} fresh_link;

static void fresh_link_open(fresh_link *l, int bits, bool stream)
{
    uint8_t spub[FPNN_CRYPTO_PUBKEY_LEN], cpub[FPNN_CRYPTO_PUBKEY_LEN];
    l->server_key = load(SERVER_KEY);
    l->client_key = fpnn_crypto_generate_key();
    assert_non_null(l->client_key);
    assert_int_equal(fpnn_crypto_public_key(l->server_key, spub), 0);
    assert_int_equal(fpnn_crypto_public_key(l->client_key, cpub), 0);
    l->server = fpnn_crypto_new(l->server_key, cpub, sizeof cpub, bits, stream);
    l->client = fpnn_crypto_new(l->client_key, spub, sizeof spub, bits, stream);
    assert_non_null(l->server);
    assert_non_null(l->client);

    size_t ks = 0, kc = 0;
    const uint8_t *key_s = fpnn_crypto_key(l->server, &ks);
    const uint8_t *key_c = fpnn_crypto_key(l->client, &kc);
    assert_int_equal(ks, (size_t)bits / 8);
    assert_int_equal(kc, ks);
    assert_memory_equal(key_s, key_c, ks);
    assert_memory_equal(fpnn_crypto_iv(l->server), fpnn_crypto_iv(l->client), 16);
}

static void fresh_link_close(fresh_link *l)
{
    fpnn_crypto_free(l->server);
    fpnn_crypto_free(l->client);
    EVP_PKEY_free(l->server_key);
    EVP_PKEY_free(l->client_key);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* Sends packages of assorted sizes from one end and checks the other end. */
static void package_direction(fpnn_crypto *from, fpnn_crypto *to)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 4096, 65537};
    uint8_t *plain = malloc(65537), *back = malloc(65537);
    assert_non_null(plain);
    assert_non_null(back);
    rtm_buf wire = {0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        fill(plain, sizes[i], (unsigned)i + 1);
        assert_int_equal(fpnn_crypto_encrypt(from, plain, sizes[i], &wire), 0);
    }
    /* Read the packages back as a connection would: length, then body. */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_true(rtm_buf_pending(&wire) >= 4);
        const uint8_t *h = rtm_buf_head(&wire);
        size_t len = h[0] | h[1] << 8 | h[2] << 16 | (size_t)h[3] << 24;
        assert_int_equal(len, sizes[i]);
        assert_true(rtm_buf_pending(&wire) >= 4 + len);
        fill(plain, len, (unsigned)i + 1);
        if (len >= 16)
            assert_memory_not_equal(h + 4, plain, 16);
        assert_int_equal(fpnn_crypto_decrypt_package(to, h + 4, len, back), 0);
        assert_memory_equal(back, plain, len);
        rtm_buf_consume(&wire, 4 + len);
    }
    assert_int_equal(rtm_buf_pending(&wire), 0);
    rtm_buf_free(&wire);
    free(plain);
    free(back);
}

static void roundtrip_package(int bits)
{
    fresh_link l;
    fresh_link_open(&l, bits, false);
    assert_false(fpnn_crypto_stream_mode(l.client));
    package_direction(l.client, l.server);
    package_direction(l.server, l.client);
    package_direction(l.client, l.server);
    fresh_link_close(&l);
}

static void test_roundtrip_package_128(void **state)
{
    (void)state;
    roundtrip_package(128);
}

static void test_roundtrip_package_256(void **state)
{
    (void)state;
    roundtrip_package(256);
}

/* Stream mode, both directions at once: the sender writes in one set of odd
 * chunk sizes, the receiver decrypts in another. */
static void roundtrip_stream(int bits)
{
    enum { TOTAL = 20011 };
    static const size_t write_chunks[] = {1, 3, 7, 13, 16, 31, 33, 255, 1021};
    static const size_t read_chunks[] = {5, 2, 17, 1, 129, 11, 47, 997};
    fresh_link l;
    fresh_link_open(&l, bits, true);
    assert_true(fpnn_crypto_stream_mode(l.server));

    uint8_t *up = malloc(TOTAL), *down = malloc(TOTAL);
    assert_non_null(up);
    assert_non_null(down);
    fill(up, TOTAL, 7);
    fill(down, TOTAL, 8);
    rtm_buf up_wire = {0}, down_wire = {0};

    size_t up_sent = 0, down_sent = 0, up_read = 0, down_read = 0;
    for (size_t step = 0; up_read < TOTAL || down_read < TOTAL; step++) {
        size_t w = write_chunks[step % (sizeof write_chunks / sizeof write_chunks[0])];
        size_t r = read_chunks[step % (sizeof read_chunks / sizeof read_chunks[0])];
        size_t wu = w < TOTAL - up_sent ? w : TOTAL - up_sent;
        size_t wd = (w + 2) < TOTAL - down_sent ? (w + 2) : TOTAL - down_sent;
        assert_int_equal(fpnn_crypto_encrypt(l.client, up + up_sent, wu, &up_wire), 0);
        assert_int_equal(fpnn_crypto_encrypt(l.server, down + down_sent, wd, &down_wire), 0);
        up_sent += wu;
        down_sent += wd;
        assert_int_equal(up_wire.len, up_sent);
        assert_int_equal(down_wire.len, down_sent);

        size_t ru = r < up_sent - up_read ? r : up_sent - up_read;
        size_t rd = r < down_sent - down_read ? r : down_sent - down_read;
        assert_int_equal(fpnn_crypto_decrypt_stream(l.server, up_wire.data + up_read, ru), 0);
        assert_int_equal(fpnn_crypto_decrypt_stream(l.client, down_wire.data + down_read, rd), 0);
        up_read += ru;
        down_read += rd;
    }
    assert_memory_equal(up_wire.data, up, TOTAL);
    assert_memory_equal(down_wire.data, down, TOTAL);

    rtm_buf_free(&up_wire);
    rtm_buf_free(&down_wire);
    free(up);
    free(down);
    fresh_link_close(&l);
}

static void test_roundtrip_stream_128(void **state)
{
    (void)state;
    roundtrip_stream(128);
}

static void test_roundtrip_stream_256(void **state)
{
    (void)state;
    roundtrip_stream(256);
}

static void test_reject_bad_input(void **state)
{
    (void)state;
    EVP_PKEY *sk = load(SERVER_KEY);
    uint8_t pub[FPNN_CRYPTO_PUBKEY_LEN + 1];
    unhex(CLIENT_PUB_HEX, pub, sizeof pub);
    pub[FPNN_CRYPTO_PUBKEY_LEN] = 0;

    /* The good point works; everything below is a variation of it. */
    fpnn_crypto *ok = fpnn_crypto_new(sk, pub, FPNN_CRYPTO_PUBKEY_LEN, 128, false);
    assert_non_null(ok);
    fpnn_crypto_free(ok);

    /* Wrong lengths. */
    assert_null(fpnn_crypto_new(sk, pub, FPNN_CRYPTO_PUBKEY_LEN - 1, 128, false));
    assert_null(fpnn_crypto_new(sk, pub, FPNN_CRYPTO_PUBKEY_LEN + 1, 128, false));
    assert_null(fpnn_crypto_new(sk, pub, 0, 128, true));
    assert_null(fpnn_crypto_new(sk, NULL, FPNN_CRYPTO_PUBKEY_LEN, 128, false));

    /* Unsupported key sizes. */
    assert_null(fpnn_crypto_new(sk, pub, FPNN_CRYPTO_PUBKEY_LEN, 192, false));
    assert_null(fpnn_crypto_new(sk, pub, FPNN_CRYPTO_PUBKEY_LEN, 0, true));
    assert_null(fpnn_crypto_new(sk, pub, FPNN_CRYPTO_PUBKEY_LEN, 512, false));

    /* Garbage 64-byte points: off the curve, coordinates out of range, zero. */
    uint8_t bad[FPNN_CRYPTO_PUBKEY_LEN];
    memcpy(bad, pub, sizeof bad);
    bad[FPNN_CRYPTO_PUBKEY_LEN - 1] ^= 0x01;
    assert_null(fpnn_crypto_new(sk, bad, sizeof bad, 128, false));
    fill(bad, sizeof bad, 42);
    assert_null(fpnn_crypto_new(sk, bad, sizeof bad, 256, true));
    memset(bad, 0xff, sizeof bad);
    assert_null(fpnn_crypto_new(sk, bad, sizeof bad, 128, true));
    memset(bad, 0, sizeof bad);
    assert_null(fpnn_crypto_new(sk, bad, sizeof bad, 256, false));

    /* No own key, or one on another curve. */
    assert_null(fpnn_crypto_new(NULL, pub, FPNN_CRYPTO_PUBKEY_LEN, 128, false));
    EVP_PKEY *p256 = EVP_EC_gen("prime256v1");
    assert_non_null(p256);
    assert_null(fpnn_crypto_new(p256, pub, FPNN_CRYPTO_PUBKEY_LEN, 128, false));
    uint8_t out[FPNN_CRYPTO_PUBKEY_LEN];
    assert_int_equal(fpnn_crypto_public_key(p256, out), -1);
    EVP_PKEY_free(p256);

    /* NULL objects are refused, and freeing NULL is harmless. */
    rtm_buf b = {0};
    assert_int_equal(fpnn_crypto_encrypt(NULL, pub, 4, &b), -1);
    assert_int_equal(fpnn_crypto_decrypt_stream(NULL, bad, 4), -1);
    assert_int_equal(fpnn_crypto_decrypt_package(NULL, pub, 4, bad), -1);
    assert_false(fpnn_crypto_stream_mode(NULL));
    fpnn_crypto_free(NULL);
    assert_int_equal(ERR_peek_error(), 0);

    EVP_PKEY_free(sk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_keys),
        cmocka_unit_test(test_load_rejects),
        cmocka_unit_test(test_generate_key),
        cmocka_unit_test(test_known_key_iv),
        cmocka_unit_test(test_known_peer_bytes),
        cmocka_unit_test(test_known_cfb_package_128),
        cmocka_unit_test(test_known_cfb_package_256),
        cmocka_unit_test(test_known_cfb_stream_128),
        cmocka_unit_test(test_known_cfb_stream_256),
        cmocka_unit_test(test_roundtrip_package_128),
        cmocka_unit_test(test_roundtrip_package_256),
        cmocka_unit_test(test_roundtrip_stream_128),
        cmocka_unit_test(test_roundtrip_stream_256),
        cmocka_unit_test(test_reject_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
