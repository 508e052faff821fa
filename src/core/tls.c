/* Server-side TLS over memory BIOs (see tls.h). The connection's SSL reads
 * ciphertext from one memory BIO, which tls_conn_feed fills, and writes
 * ciphertext to another, which feed and seal drain into the caller's
 * output buffer. No socket is ever given to OpenSSL, so the event loop
 * stays in charge of every read and write. */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

struct tls_conn {
    SSL *ssl;
    BIO *in;  /* ciphertext received, read by SSL */
    BIO *out; /* ciphertext SSL produced, to send */
};

static void describe_error(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char reason[160] = "unknown error";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, file, reason);
}

tls_context *tls_context_load(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Idle connections give their 16 KiB record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        describe_error(err, errlen, "cannot load the certificate chain", cert_file);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        describe_error(err, errlen, "cannot load the private key", key_file);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        describe_error(err, errlen, "the private key does not match the certificate of", cert_file);
    } else {
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_context_free(tls_context *ctx)
{
    SSL_CTX_free(ctx);
}

tls_conn *tls_conn_new(tls_context *ctx)
{
    tls_conn *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ssl = SSL_new(ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->in || !t->out) {
        SSL_free(t->ssl);
        BIO_free(t->in);
        BIO_free(t->out);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    /* A memory BIO that runs dry reports "retry", not end of file. */
    BIO_set_mem_eof_return(t->in, -1);
    BIO_set_mem_eof_return(t->out, -1);
    SSL_set_bio(t->ssl, t->in, t->out); /* the SSL owns both from here */
    SSL_set_accept_state(t->ssl);
    return t;
}

void tls_conn_free(tls_conn *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

/* Moves the ciphertext SSL produced into out. */
static int drain(tls_conn *t, rtm_buf *out)
{
    char *data;
    long n = BIO_get_mem_data(t->out, &data);
    if (n <= 0)
        return 0;
    int rc = rtm_buf_append(out, data, (size_t)n);
    (void)BIO_reset(t->out);
    return rc;
}

int tls_conn_feed(tls_conn *t, const uint8_t *in, size_t len, rtm_buf *plain, rtm_buf *out)
{
    if (len > 0 && BIO_write(t->in, in, (int)len) != (int)len) {
        ERR_clear_error();
        return -1;
    }
    for (;;) {
        if (rtm_buf_reserve(plain, 16384) != 0)
            return -1;
        int n = SSL_read(t->ssl, plain->data + plain->len, (int)(plain->cap - plain->len));
        if (n > 0) {
            plain->len += (uint32_t)n;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        ERR_clear_error();
        if (drain(t, out) != 0)
            return -1;
        if (e == SSL_ERROR_WANT_READ)
            return 0;
        return -1; /* SSL_ERROR_ZERO_RETURN (close_notify), SSL_ERROR_SSL, ... */
    }
}

int tls_conn_seal(tls_conn *t, const uint8_t *plain, size_t len, rtm_buf *out)
{
    while (len > 0) {
        int chunk = len > 16384 ? 16384 : (int)len;
        int n = SSL_write(t->ssl, plain, chunk);
        if (n <= 0) {
            ERR_clear_error();
            return -1;
        }
        plain += n;
        len -= (size_t)n;
        if (drain(t, out) != 0)
            return -1;
    }
    return drain(t, out);
}
