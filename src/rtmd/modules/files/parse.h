/* What the files module reads from peers' text, apart from the msgpack
 * the dispatcher decodes: an upload's attrs (JSON), a download's Range
 * header; and the content type of an extension. Pure functions, fuzzed
 * by tests/fuzz/fuzz_files_parse.c. */
#ifndef RTMD_FILES_PARSE_H
#define RTMD_FILES_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FILE_SIGN_HEX 32
#define FILE_NAME_MAX 255
#define FILE_EXT_MAX 16

typedef struct file_attrs {
    char sign[FILE_SIGN_HEX + 1]; /* as sent: compared without case */
    char name[FILE_NAME_MAX + 1]; /* "" when absent or longer */
    char ext[FILE_EXT_MAX + 1];   /* letters and digits only, "" otherwise */
} file_attrs;

/* Reads attrs (JSON text of len bytes, not terminated): the signature at
 * rtm.sign (the Node server SDK puts it at the top level: sign), the file
 * name at rtm.filename and the extension at rtm.ext. Returns false when
 * there is no signature of FILE_SIGN_HEX characters. */
bool file_attrs_parse(const char *attrs, size_t len, file_attrs *out);

/* A Range header ("bytes=a-b", "bytes=a-", "bytes=-n") against a body of
 * size bytes: 1 one range, [*first, *last] within the body; 0 none to
 * honour (absent, several, or not understood: the whole body); -1 none of
 * it exists (416). */
int file_range_parse(const char *header, uint64_t size, uint64_t *first, uint64_t *last);

/* The content type of an extension (any case), or NULL. */
const char *file_type_of_ext(const char *ext);

#endif
