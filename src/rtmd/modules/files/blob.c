/* Stored files on disk (see blob.h): digests, the content-addressed path,
 * the crash-safe write and the removal. Thread-pool side only. */
#include "blob.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = "0123456789abcdef"[d[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void blob_digests(const uint8_t *data, size_t len, char sha256[BLOB_SHA256_HEX + 1], char md5[BLOB_MD5_HEX + 1])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data, len, d, &n, EVP_sha256(), NULL);
    hex(d, 32, sha256);
    EVP_Digest(data, len, d, &n, EVP_md5(), NULL);
    hex(d, 16, md5);
}

int blob_path(const char *dir, const char *sha256, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%.2s/%s", dir, sha256, sha256);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* fsync of a directory, so that a name created or renamed in it lasts. */
static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* mkdir that lasts: the parent is synced when the directory is new. */
static int make_dir(const char *path, const char *parent)
{
    if (mkdir(path, 0750) == 0)
        return parent ? sync_dir(parent) : 0;
    if (errno != EEXIST)
        return errno;
    struct stat st;
    if (stat(path, &st) != 0)
        return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len > (1u << 30) ? (1u << 30) : len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int blob_store(const char *dir, const char *sha256, const uint8_t *data, size_t len, bool *existed)
{
    char sub[1024], final[1100], tmp[1200];
    *existed = false;
    if (snprintf(sub, sizeof sub, "%s/%.2s", dir, sha256) >= (int)sizeof sub ||
        blob_path(dir, sha256, final, sizeof final) != 0)
        return ENAMETOOLONG;
    int rc = make_dir(dir, NULL);
    if (rc == 0)
        rc = make_dir(sub, dir);
    if (rc != 0)
        return rc;
    struct stat st;
    if (stat(final, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == len) {
        /* Its time renewed: the sweep keeps a blob younger than
         * file_orphan_grace, so it stays while the new row is written. */
        *existed = true;
        return utimensat(AT_FDCWD, final, NULL, 0) == 0 ? 0 : errno;
    }
    unsigned char r[8];
    char rhex[17];
    if (RAND_bytes(r, sizeof r) != 1)
        return EIO;
    hex(r, sizeof r, rhex);
    snprintf(tmp, sizeof tmp, "%s/.tmp-%s-%s", sub, sha256, rhex);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return errno;
    rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = errno;
    if (close(fd) != 0 && rc == 0)
        rc = errno;
    if (rc == 0 && rename(tmp, final) != 0)
        rc = errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return sync_dir(sub);
}

int blob_remove(const char *dir, const char *sha256)
{
    char path[1100];
    if (blob_path(dir, sha256, path, sizeof path) != 0)
        return ENAMETOOLONG;
    if (unlink(path) != 0 && errno != ENOENT)
        return errno;
    return 0;
}
