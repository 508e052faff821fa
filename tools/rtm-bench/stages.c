/* stages.c — rtmd's stage histograms over the measured window (stages.h):
 * a blocking HTTP/1.0 GET of /metrics on a loopback address, the
 * rtmd_stage_* sample lines kept, and the window's difference written out. */
#define _GNU_SOURCE /* memrchr */
#include "stages.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRAPE_MAX (8u << 20) /* a /metrics page is far smaller */
#define SCRAPE_TIMEOUT_MS 2000
#define PREFIX "rtmd_stage_"

void stages_free(stages_snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->series[i]);
    free(s->series);
    free(s->value);
    *s = (stages_snap){0};
}

static int snap_add(stages_snap *s, const char *series, size_t len, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        char **ns = realloc(s->series, cap * sizeof *ns);
        if (!ns)
            return -1;
        s->series = ns;
        double *nv = realloc(s->value, cap * sizeof *nv);
        if (!nv)
            return -1;
        s->value = nv;
        s->cap = cap;
    }
    char *copy = strndup(series, len);
    if (!copy)
        return -1;
    s->series[s->n] = copy;
    s->value[s->n++] = v;
    return 0;
}

/* Keeps the "rtmd_stage_... value" lines of the body. */
static int parse_body(const char *body, stages_snap *out)
{
    for (const char *line = body; *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (len > strlen(PREFIX) && strncmp(line, PREFIX, strlen(PREFIX)) == 0) {
            const char *sp = memrchr(line, ' ', len);
            if (sp) {
                char num[64];
                size_t nl = len - (size_t)(sp + 1 - line);
                if (nl > 0 && nl < sizeof num) {
                    memcpy(num, sp + 1, nl);
                    num[nl] = '\0';
                    char *end;
                    double v = strtod(num, &end);
                    if (*end == '\0' && snap_add(out, line, (size_t)(sp - line), v) != 0)
                        return -1;
                }
            }
        }
        line = eol ? eol + 1 : line + len;
    }
    return 0;
}

static int connect_loopback(const char *addr, char *err, size_t errlen)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        snprintf(err, errlen, "--metrics wants HOST:PORT, not %s", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (*end || port < 1 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
        snprintf(err, errlen, "--metrics wants an IPv4 address in 127.0.0.0/8 and a port, not %s", addr);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int stages_scrape(const char *addr, stages_snap *out, char *err, size_t errlen)
{
    stages_free(out);
    int fd = connect_loopback(addr, err, errlen);
    if (fd < 0)
        return -1;
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        snprintf(err, errlen, "cannot send to %s: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    size_t cap = 1u << 16, len = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -1;
    long long deadline = now_ms() + SCRAPE_TIMEOUT_MS; /* for the whole answer */
    while (rc == 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = deadline - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) != 1) {
            snprintf(err, errlen, "no answer from %s within %d ms", addr, SCRAPE_TIMEOUT_MS);
            rc = -1;
            break;
        }
        if (len + 1 == cap) {
            char *nb = cap < SCRAPE_MAX ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                snprintf(err, errlen, "the /metrics page of %s is too large", addr);
                rc = -1;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read from %s: %s", addr, strerror(errno));
            rc = -1;
        } else if (r == 0) {
            break;
        } else {
            len += (size_t)r;
        }
    }
    close(fd);
    if (rc != 0) {
        free(buf);
        return -1;
    }
    buf[len] = '\0';
    const char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) != 0 || !strstr(buf, " 200 ") || !body) {
        snprintf(err, errlen, "%s answered /metrics without 200", addr);
        free(buf);
        return -1;
    }
    rc = parse_body(body + 4, out);
    free(buf);
    if (rc != 0)
        snprintf(err, errlen, "out of memory");
    else if (out->n == 0) {
        snprintf(err, errlen, "%s/metrics holds no " PREFIX "series", addr);
        rc = -1;
    }
    return rc;
}

int stages_write_delta(const stages_snap *start, const stages_snap *end, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < end->n; i++) {
        double before = 0;
        for (size_t k = 0; k < start->n; k++) {
            /* the same position first: both scrapes list the series in one order */
            size_t j = (i + k) % start->n;
            if (strcmp(start->series[j], end->series[i]) == 0) {
                before = start->value[j];
                break;
            }
        }
        fprintf(f, "%s %.9g\n", end->series[i], end->value[i] - before);
    }
    return fclose(f) == 0 ? 0 : -1;
}
