/* libFuzzer target for the encrypted-link decoders of peer bytes: the
 * `*key` public key (a 64-byte point that may be anything), then package and
 * stream decryption of the bytes that follow, whose plaintext goes through
 * the FPNN framing as rtmd does. Byte 0 picks bits (128 or 256) and the
 * mode, bytes 1..64 are the peer's public key, the rest is ciphertext. */
#include "fpnn_crypto.h"
#include "rtm/fpnn.h"

#include <stdlib.h>
#include <string.h>

/* The key of the test suite, so that a finding replays the same way. */
static EVP_PKEY *server_key;

static void parse_all(const uint8_t *p, size_t len)
{
    fpnn_packet pkt;
    size_t pos = 0;
    long r;
    while (pos < len && (r = fpnn_parse(p + pos, len - pos, 1 << 20, &pkt)) > 0)
        pos += (size_t)r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (!server_key && !(server_key = fpnn_crypto_load_private_key(TEST_DATA_DIR "/test_server_key.pem", err, sizeof err)))
        __builtin_trap();
    if (size < 1)
        return 0;
    int bits = data[0] & 1 ? 256 : 128;
    bool stream = data[0] & 2;
    size_t publen = size - 1 < FPNN_CRYPTO_PUBKEY_LEN ? size - 1 : FPNN_CRYPTO_PUBKEY_LEN;
    if (data[0] & 4)
        publen = size - 1 < 65 ? size - 1 : 65; /* a wrong length must be refused too */
    fpnn_crypto *c = fpnn_crypto_new(server_key, data + 1, publen, bits, stream);
    if (!c)
        return 0;
    const uint8_t *rest = data + 1 + publen;
    size_t len = size - 1 - publen;
    uint8_t *plain = malloc(len ? len : 1);
    if (!plain)
        __builtin_trap();
    memcpy(plain, rest, len);
    if (stream) {
        if (fpnn_crypto_decrypt_stream(c, plain, len) == 0)
            parse_all(plain, len);
    } else {
        /* package mode: 4-byte little-endian length, then the package */
        size_t pos = 0;
        while (len - pos >= 4) {
            uint32_t n = (uint32_t)rest[pos] | (uint32_t)rest[pos + 1] << 8 | (uint32_t)rest[pos + 2] << 16 |
                         (uint32_t)rest[pos + 3] << 24;
            pos += 4;
            if (n > len - pos)
                break;
            if (fpnn_crypto_decrypt_package(c, rest + pos, n, plain) == 0)
                parse_all(plain, n);
            pos += n;
        }
    }
    free(plain);
    fpnn_crypto_free(c);
    return 0;
}
