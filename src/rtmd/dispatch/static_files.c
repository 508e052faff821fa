/* Web pages served from memory (static_files.h): the loader with its
 * bounds and name rules, the content types, and the answer to a request
 * for a loaded file. */
#include "static_files.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".map", "application/json"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
};

static const char *type_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t e = strlen(types[i].ext);
        if (n > e && strcmp(name + n - e, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

/* A name that is served: [A-Za-z0-9_.-]{1,128}, not starting with a dot. */
static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > STATIC_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

void static_files_free(static_files *sf)
{
    for (size_t i = 0; i < sf->n; i++)
        free(sf->files[i].data);
    sf->n = 0;
}

/* One load in progress: where it goes, what messages call it, and the
 * bytes still allowed. */
typedef struct loader {
    static_files *sf;
    const char *setting, *dir;
    size_t budget;
    char *err;
    size_t errlen;
} loader;

static int load_dir(loader *ld, int dirfd, const char *sub);

/* Reads one entry of a directory (not following a symbolic link): a
 * regular file within the budget, or, at the top level only (sub is
 * NULL), a sub-directory whose files are read in turn. Returns 1 loaded,
 * 0 skipped (not a regular file or a directory), -1 error. */
static int load_one(loader *ld, int dirfd, const char *sub, const char *name)
{
    static_files *sf = ld->sf;
    char shown[STATIC_PATH_MAX + 1];
    snprintf(shown, sizeof shown, "%s%s%s", sub ? sub : "", sub ? "/" : "", name);
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ELOOP || errno == ENXIO)
            return 0; /* a symbolic link, a socket */
        snprintf(ld->err, ld->errlen, "%s %s: cannot open %s: %s", ld->setting, ld->dir, shown, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return 0;
    }
    if (S_ISDIR(sb.st_mode) && !sub) {
        int r = load_dir(ld, fd, name); /* takes fd */
        return r < 0 ? -1 : 1;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return 0;
    }
    if (sf->n == STATIC_FILES_MAX) {
        close(fd);
        snprintf(ld->err, ld->errlen, "%s %s: more than %d files", ld->setting, ld->dir, STATIC_FILES_MAX);
        return -1;
    }
    if ((uint64_t)sb.st_size > ld->budget) {
        close(fd);
        snprintf(ld->err, ld->errlen, "%s %s: its files exceed %u bytes together", ld->setting, ld->dir,
                 STATIC_BYTES_MAX);
        return -1;
    }
    size_t len = (size_t)sb.st_size;
    char *data = malloc(len ? len : 1);
    size_t got = 0;
    while (data && got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!data || got != len) {
        free(data);
        snprintf(ld->err, ld->errlen, "%s %s: cannot read %s", ld->setting, ld->dir, shown);
        return -1;
    }
    static_file *f = &sf->files[sf->n++];
    snprintf(f->name, sizeof f->name, "%s", shown);
    f->type = type_of(name);
    f->data = data;
    f->len = len;
    ld->budget -= len;
    return 1;
}

/* Loads the entries of the directory open as dirfd (closed here): the
 * directory itself (sub NULL) or its sub-directory sub. */
static int load_dir(loader *ld, int dirfd, const char *sub)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        snprintf(ld->err, ld->errlen, "%s %s%s%s: %s", ld->setting, ld->dir, sub ? "/" : "", sub ? sub : "",
                 strerror(errno));
        close(dirfd);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!name_ok(e->d_name, strlen(e->d_name))) {
            if (e->d_name[0] != '.')
                LOG_WARN("%s %s: skipping '%s%s%s' (a name of A-Z a-z 0-9 _ . - is served)", ld->setting, ld->dir,
                         sub ? sub : "", sub ? "/" : "", e->d_name);
            continue;
        }
        int r = load_one(ld, dirfd, sub, e->d_name);
        if (r < 0)
            rc = -1;
        else if (r == 0)
            LOG_WARN("%s %s: skipping %s%s%s (not a regular file%s)", ld->setting, ld->dir, sub ? sub : "",
                     sub ? "/" : "", e->d_name, sub ? "; one level of directories is served" : " or directory");
    }
    closedir(d);
    return rc;
}

int static_files_load(static_files *sf, const char *setting, const char *dir, char *err, size_t errlen)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        snprintf(err, errlen, "%s %s: %s", setting, dir, strerror(errno));
        return -1;
    }
    loader ld = {sf, setting, dir, STATIC_BYTES_MAX, err, errlen};
    if (load_dir(&ld, dirfd, NULL) != 0) {
        static_files_free(sf);
        return -1;
    }
    return 0;
}

const static_file *static_files_find(const static_files *sf, const char *name)
{
    for (size_t i = 0; i < sf->n; i++)
        if (strcmp(sf->files[i].name, name) == 0)
            return &sf->files[i];
    return NULL;
}

/* The name of a loaded file for path: "" is index.html, "<dir>/" is
 * "<dir>/index.html"; each part must be a served name (name_ok), at most
 * two parts. False for anything else. */
static bool file_key(const char *path, char *key, size_t cap)
{
    const char *slash = strchr(path, '/');
    if (!slash) {
        if (*path == '\0') {
            snprintf(key, cap, "index.html");
            return true;
        }
        if (!name_ok(path, strlen(path)))
            return false;
        snprintf(key, cap, "%s", path);
        return true;
    }
    size_t dlen = (size_t)(slash - path);
    const char *file = slash + 1;
    if (!name_ok(path, dlen) || strchr(file, '/'))
        return false;
    if (*file == '\0')
        file = "index.html";
    else if (!name_ok(file, strlen(file)))
        return false;
    int n = snprintf(key, cap, "%.*s/%s", (int)dlen, path, file);
    return n > 0 && (size_t)n < cap;
}

#define PREFIX_MAX 32

void static_files_respond(rtmd_conn *c, const http_request *req, const static_files *sf, const char *prefix,
                          const char *rest, const char *headers)
{
    char key[STATIC_PATH_MAX + 1];
    if (!file_key(rest, key, sizeof key)) {
        http_respond_error(c, req, 404, "not_found", "no such resource");
        return;
    }
    const static_file *f = static_files_find(sf, key);
    if (!f && !strchr(key, '/')) {
        /* <prefix><dir>: to <prefix><dir>/ when that directory has an index. */
        char index[STATIC_NAME_MAX + sizeof "/index.html"];
        snprintf(index, sizeof index, "%.*s/index.html", STATIC_NAME_MAX, key);
        if (static_files_find(sf, index)) {
            char loc[PREFIX_MAX + STATIC_NAME_MAX + 32];
            int n = snprintf(loc, sizeof loc, "Location: %.*s%.*s/\r\n", PREFIX_MAX, prefix, STATIC_NAME_MAX, key);
            char body[PREFIX_MAX + STATIC_NAME_MAX + 16];
            int blen = snprintf(body, sizeof body, "%.*s%.*s/\n", PREFIX_MAX, prefix, STATIC_NAME_MAX, key);
            char all[sizeof loc + HTTP_EXTRA_HEADERS_MAX];
            snprintf(all, sizeof all, "%.*s%s", n, loc, headers);
            http_respond_with(c, req, 301, "text/plain; charset=utf-8", all, body, (size_t)blen);
            return;
        }
    }
    if (!f) {
        http_respond_error(c, req, 404, "not_found", "no such resource");
        return;
    }
    http_respond_with(c, req, 200, f->type, headers, f->data, f->len);
}
