/* TLS for the server side of a connection, through OpenSSL with memory
 * BIOs: the caller owns the socket and hands received bytes in, and gets
 * back the plaintext and the bytes to send. Used for wss:// and https://.
 * A context holds the certificate chain and key; connections keep the
 * context they started with, so a reload affects only new connections. */
#ifndef RTM_TLS_H
#define RTM_TLS_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ssl_ctx_st tls_context;
typedef struct tls_conn tls_conn;

/* Loads a PEM certificate chain (leaf first) and its PEM private key into a
 * new server context: TLS 1.2 or newer, buffers released while idle. On
 * failure returns NULL with a message that names the file in err. */
tls_context *tls_context_load(const char *cert_file, const char *key_file, char *err, size_t errlen);
/* Drops the caller's reference; connections still using it keep theirs. */
void tls_context_free(tls_context *ctx);

tls_conn *tls_conn_new(tls_context *ctx);
void tls_conn_free(tls_conn *t);

/* Feeds received bytes: appends the plaintext they complete to plain, and
 * what must be sent back (handshake records, alerts) to out. Returns 0, or
 * -1 when the link must close (a failed handshake, a bad record, the
 * peer's close_notify, or out of memory); out may still hold an alert. */
int tls_conn_feed(tls_conn *t, const uint8_t *in, size_t len, rtm_buf *plain, rtm_buf *out);
/* Encrypts plaintext into records appended to out. Returns 0 or -1. */
int tls_conn_seal(tls_conn *t, const uint8_t *plain, size_t len, rtm_buf *out);

#endif
