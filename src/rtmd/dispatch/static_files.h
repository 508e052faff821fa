/* Web pages served from memory: a directory (demo_dir, admin_dir) read
 * once at start within fixed bounds, its files then served by name only,
 * so that no request touches the file system and no path can reach
 * anything outside what was loaded. Used by the demo (modules/demo.c)
 * and the admin page (modules/admin.c). */
#ifndef RTMD_STATIC_FILES_H
#define RTMD_STATIC_FILES_H

#include "http.h"

#include <stdbool.h>
#include <stddef.h>

/* Bounds of what a directory may hold; more is a start error. */
#define STATIC_FILES_MAX 64
#define STATIC_BYTES_MAX (8u * 1024 * 1024)
#define STATIC_NAME_MAX 128
/* A served path: <name> or <dir>/<name>. */
#define STATIC_PATH_MAX (2 * STATIC_NAME_MAX + 1)

typedef struct static_file {
    char name[STATIC_PATH_MAX + 1]; /* "<name>" or "<dir>/<name>" */
    const char *type;               /* its Content-Type, by extension */
    char *data;
    size_t len;
} static_file;

typedef struct static_files {
    static_file files[STATIC_FILES_MAX];
    size_t n;
} static_files;

/* Loads the regular files directly in dir and in its sub-directories (one
 * level), not following symbolic links, skipping (with a warning) names
 * outside [A-Za-z0-9_.-] or starting with a dot. setting names dir in
 * messages ("demo_dir"). Returns 0, or -1 with err set (what was loaded
 * is freed then). */
int static_files_load(static_files *sf, const char *setting, const char *dir, char *err, size_t errlen);
void static_files_free(static_files *sf);
/* The file loaded under name ("index.html", "<dir>/<name>"), or NULL. */
const static_file *static_files_find(const static_files *sf, const char *name);

/* Answers the request for path rest, the part of the URL path after
 * prefix ("/demo/"): "" is index.html, "<dir>/" that directory's
 * index.html, "<dir>" a 301 to prefix<dir>/ when it has one; a file is
 * sent with headers (HTTP_EXTRA_HEADERS_MAX at most, "Name: value\r\n"
 * lines); anything else is 404. */
void static_files_respond(rtmd_conn *c, const http_request *req, const static_files *sf, const char *prefix,
                          const char *rest, const char *headers);

#endif
