/* UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF), shared by the JSON answer conversion, the log escaping
 * of peer strings and the WebSocket text checks, so that all agree on what
 * valid text is. */
#ifndef RTM_UTF8_H
#define RTM_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1 to 4) of the valid UTF-8 character at p, or 0 when the bytes
 * there are not one (len bytes are readable, len > 0). */
size_t rtm_utf8_char_len(const uint8_t *p, size_t len);
/* True when all len bytes are valid UTF-8 (NUL included). */
bool rtm_utf8_valid(const void *s, size_t len);

#endif
