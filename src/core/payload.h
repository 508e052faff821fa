/* FPNN payloads: decoding of msgpack or JSON bodies into one msgpack object
 * model, conversion between JSON and msgpack, typed field access that
 * accepts every integer width msgpack allows, and error answer bodies. */
#ifndef RTM_PAYLOAD_H
#define RTM_PAYLOAD_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes a quest or answer body. JSON bodies (flag FPNN_FLAG_JSON) are
 * converted to msgpack first; an empty body is an empty map. The root must
 * be a map. The result owns a copy of the body, so data may go away.
 * Returns 0, or -1 for a malformed body. Free with
 * msgpack_unpacked_destroy. */
int rtm_payload_decode(uint8_t flag, const uint8_t *data, size_t len, msgpack_unpacked *out);

/* Checks that bytes hold exactly one msgpack object whose containers do not
 * announce more elements than bytes remain. Returns 0 or -1. */
int rtm_msgpack_check(const uint8_t *data, size_t len);
/* The length of the one msgpack object at data, or 0 if it is malformed
 * (same checks as rtm_msgpack_check). */
size_t rtm_msgpack_skip(const uint8_t *data, size_t len);
/* Without decoding the whole map at data: finds the value of a string key
 * and gives its encoded bytes. Returns 0, or -1 if absent or malformed. */
int rtm_msgpack_map_find(const uint8_t *data, size_t len, const char *key, const uint8_t **value, size_t *value_len);
/* The body of an encoded str or bin. Returns 0, or -1 for another type. */
int rtm_msgpack_bytes(const uint8_t *data, size_t len, const uint8_t **body, size_t *body_len);

/* Converts a JSON document to msgpack: strings (NUL included) become str,
 * integers stay exact up to 64 bits. */
int rtm_json_to_msgpack(const char *json, size_t len, msgpack_sbuffer *out);

/* The member name of the JSON object that carries bytes which are not
 * UTF-8 text: {"$base64": "<RFC 4648 base64, padded>"}. */
#define RTM_JSON_BYTES_KEY "$base64"

/* Converts the one msgpack object at data (exactly len bytes) to compact
 * JSON, without loss or not at all:
 *  - str and bin: a JSON string when the bytes are valid UTF-8 (NUL is
 *    written \u0000), else an object {"$base64": "..."} holding them;
 *  - map keys: text (valid UTF-8 without NUL) or integers (as decimal);
 *  - integers within int64, finite floats, nil, booleans, arrays as such.
 * Anything else (another key, ext, an integer above INT64_MAX, NaN or an
 * infinity, nesting deeper than 64) fails the conversion. Returns a
 * malloc'd NUL-terminated string, or NULL. */
char *rtm_msgpack_to_json(const uint8_t *data, size_t len, size_t *out_len);

/* Field access on a map object; each returns false if the key is missing
 * or of another type. Integers accept positive and negative forms of any
 * width; an unsigned value above INT64_MAX is refused by mp_get_int64. */
const msgpack_object *mp_map_get(const msgpack_object *map, const char *key);
bool mp_get_int64(const msgpack_object *map, const char *key, int64_t *out);
bool mp_get_uint64(const msgpack_object *map, const char *key, uint64_t *out);
bool mp_get_bool(const msgpack_object *map, const char *key, bool *out);
/* Accepts str and bin. The result is not NUL-terminated. */
bool mp_get_str(const msgpack_object *map, const char *key, const char **s, size_t *len);
bool mp_obj_int64(const msgpack_object *o, int64_t *out);
/* The bytes of a str or bin object; false for any other type. */
bool mp_obj_str(const msgpack_object *o, const char **s, size_t *len);

void mp_pack_cstr(msgpack_packer *pk, const char *s);
void mp_pack_kv_int(msgpack_packer *pk, const char *key, int64_t v);
void mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *v);

/* Writes the FPNN error body {code, ex, raised}. */
void rtm_pack_error(msgpack_sbuffer *out, int64_t code, const char *ex, const char *raised);

#endif
