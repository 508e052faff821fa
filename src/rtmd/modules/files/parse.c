/* Parsing of what the files module reads from peers as text (parse.h). */
#include "parse.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A JSON string member of obj, or NULL. */
static const char *json_str(json_t *obj, const char *key)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool file_attrs_parse(const char *attrs, size_t len, file_attrs *out)
{
    memset(out, 0, sizeof *out);
    json_t *root = json_loadb(attrs, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *rtm = json_is_object(root) ? json_object_get(root, "rtm") : NULL;
    const char *sign = json_str(rtm, "sign");
    if (!sign)
        sign = json_str(root, "sign");
    bool ok = sign && strlen(sign) == FILE_SIGN_HEX;
    if (ok)
        memcpy(out->sign, sign, FILE_SIGN_HEX + 1);
    const char *name = json_str(rtm, "filename");
    if (name && strlen(name) <= FILE_NAME_MAX)
        snprintf(out->name, sizeof out->name, "%s", name);
    const char *ext = json_str(rtm, "ext");
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    if (ext && ext[0] && strlen(ext) <= FILE_EXT_MAX && strspn(ext, alnum) == strlen(ext))
        snprintf(out->ext, sizeof out->ext, "%s", ext);
    json_decref(root);
    return ok;
}

/* A decimal number of digits only, into *v; false if none or too large. */
static bool number(const char *s, const char **end, uint64_t *v)
{
    if (*s < '0' || *s > '9')
        return false;
    char *e;
    errno = 0;
    *v = strtoull(s, &e, 10);
    *end = e;
    return errno == 0;
}

int file_range_parse(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0;
    const char *p = h + 6, *end;
    uint64_t a, b;
    if (*p == '-') { /* the last n bytes */
        if (!number(p + 1, &end, &b) || *end)
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (!number(p, &end, &a) || *end != '-')
        return 0;
    if (end[1]) {
        if (!number(end + 1, &end, &b) || *end || b < a)
            return 0;
    } else {
        b = UINT64_MAX;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return 1;
}

const char *file_type_of_ext(const char *ext)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"png", "image/png"},       {"jpg", "image/jpeg"},       {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},       {"webp", "image/webp"},      {"bmp", "image/bmp"},
        {"mp3", "audio/mpeg"},      {"amr", "audio/amr"},        {"aac", "audio/aac"},
        {"m4a", "audio/mp4"},       {"wav", "audio/wav"},        {"ogg", "audio/ogg"},
        {"mp4", "video/mp4"},       {"mov", "video/quicktime"},  {"webm", "video/webm"},
        {"txt", "text/plain; charset=utf-8"}, {"pdf", "application/pdf"}, {"json", "application/json"},
        {"zip", "application/zip"},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(types[i].ext, ext) == 0)
            return types[i].type;
    return NULL;
}
