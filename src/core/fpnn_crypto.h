/* Encrypted FPNN links (docs/protocol.md section 3): secp256k1 ECDH key
 * agreement, key and IV derivation, and AES-CFB in package mode (each packet
 * framed by a 4-byte little-endian length and encrypted from a fresh IV) or
 * stream mode (one continuous CFB stream per direction). Used by rtmd for
 * the server gate and the client TCP gate, and by librtm. */
#ifndef RTM_FPNN_CRYPTO_H
#define RTM_FPNN_CRYPTO_H

#include "buf.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FPNN_CRYPTO_PUBKEY_LEN 64 /* uncompressed point without the 0x04 prefix */

typedef struct fpnn_crypto fpnn_crypto;

/* Loads a secp256k1 private key from a PEM file (SEC1 "EC PRIVATE KEY" or
 * PKCS#8). Returns NULL and fills err on failure. */
EVP_PKEY *fpnn_crypto_load_private_key(const char *pem_path, char *err, size_t errlen);
/* Writes the 64-byte public key of a private key. Returns 0 or -1. */
int fpnn_crypto_public_key(EVP_PKEY *key, uint8_t out[FPNN_CRYPTO_PUBKEY_LEN]);
/* Reads the 64-byte public key from a PEM public key or private key file
 * (what a client is given to reach an encrypted server). Returns 0 or -1. */
int fpnn_crypto_load_public_key(const char *pem_path, uint8_t out[FPNN_CRYPTO_PUBKEY_LEN], char *err, size_t errlen);
/* Generates a fresh secp256k1 key pair (client side, and tests). */
EVP_PKEY *fpnn_crypto_generate_key(void);

/* Derives the link state from our private key and the peer's 64-byte public
 * key (bits 128 or 256). Returns NULL on a bad point or bits value. The
 * caller keeps ownership of own_key, which may be freed afterwards. */
fpnn_crypto *fpnn_crypto_new(EVP_PKEY *own_key, const uint8_t *peer_pub, size_t peer_pub_len, int bits,
                             bool stream_mode);
void fpnn_crypto_free(fpnn_crypto *c);
bool fpnn_crypto_stream_mode(const fpnn_crypto *c);
/* The derived key (16 or 32 bytes) and IV (16 bytes), for tests. */
const uint8_t *fpnn_crypto_key(const fpnn_crypto *c, size_t *len);
const uint8_t *fpnn_crypto_iv(const fpnn_crypto *c);

/* Encrypts one outgoing packet and appends it to out: package mode writes
 * the 4-byte length then the ciphertext; stream mode continues the stream. */
int fpnn_crypto_encrypt(fpnn_crypto *c, const uint8_t *in, size_t len, rtm_buf *out);
/* Stream mode: decrypts incoming bytes in place, continuing the stream. */
int fpnn_crypto_decrypt_stream(fpnn_crypto *c, uint8_t *data, size_t len);
/* Package mode: decrypts one package body (without its length prefix) into
 * out, which has room for len bytes. */
int fpnn_crypto_decrypt_package(fpnn_crypto *c, const uint8_t *in, size_t len, uint8_t *out);

#endif
