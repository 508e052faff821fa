/* rtmctl_stats.c — `rtmctl stats ADDR`: what an rtmd is doing, in the
 * terminal, from its /metrics (the same counters Prometheus and the admin
 * page read). It scrapes twice per interval's worth of time and prints one
 * report per interval: connections per gate, sessions, logins and login
 * failures per second, messages per second, the answer latency of
 * messages (p99, from the "server" stage histogram), the store's commit
 * time (mean of the "apply" stage), its queue and size, slow consumers
 * dropped and protocol errors per second. As a table, or one JSON object a
 * line with --json. */
#include "rtmctl_stats.h"
#include "rtmctl_http.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define METRICS_MAX ((size_t)1 << 20) /* bytes of one /metrics answer */
#define SERIES_MAX 4096

/* One scrape: every sample line, "name{labels}" and its value. */
typedef struct scrape {
    size_t n;
    char *key[SERIES_MAX];
    double value[SERIES_MAX];
    double at; /* seconds, monotonic */
} scrape;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void scrape_free(scrape *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->key[i]);
    s->n = 0;
}

/* Parses the Prometheus text format's sample lines (comments skipped). */
static void parse(scrape *s, char *text)
{
    for (char *line = strtok(text, "\n"); line && s->n < SERIES_MAX; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *sp = strrchr(line, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        char *end;
        double v = strtod(sp + 1, &end);
        if (end == sp + 1)
            continue;
        s->key[s->n] = strdup(line);
        s->value[s->n++] = v;
    }
}

/* GET url/metrics into s: 0, or -1 with the reason on stderr. */
static int fetch(const char *url, long timeout_ms, scrape *s)
{
    ctl_http_body body = {.max = METRICS_MAX};
    char err[CURL_ERROR_SIZE];
    long status;
    CURLcode rc = ctl_http("GET", url, NULL, NULL, timeout_ms, &body, &status, err);
    int result = 0;
    if (rc != CURLE_OK) {
        fprintf(stderr, "rtmctl: GET %s: %s\n", url, err);
        result = -1;
    } else if (status != 200) {
        fprintf(stderr, "rtmctl: GET %s: HTTP status %ld\n", url, status);
        result = -1;
    } else {
        s->at = now_s();
        parse(s, body.data ? body.data : (char[]){""});
    }
    free(body.data);
    return result;
}

/* The sum of the samples of metric name whose labels contain label (NULL:
 * all of them). */
static double sum(const scrape *s, const char *name, const char *label)
{
    size_t len = strlen(name);
    double total = 0;
    for (size_t i = 0; i < s->n; i++) {
        const char *k = s->key[i];
        if (strncmp(k, name, len) != 0 || (k[len] != '{' && k[len] != '\0'))
            continue;
        if (!label || strstr(k + len, label))
            total += s->value[i];
    }
    return total;
}

static double rate(const scrape *a, const scrape *b, const char *name, const char *label)
{
    double dt = b->at - a->at;
    double d = sum(b, name, label) - sum(a, name, label);
    return dt > 0 && d > 0 ? d / dt : 0;
}

/* The upper bound (in ms) of the bucket holding quantile q of the samples
 * of stage between the two scrapes, or NAN without samples. */
static double quantile_ms(const scrape *a, const scrape *b, const char *stage, double q)
{
    char label[64];
    snprintf(label, sizeof label, "stage=\"%s\"", stage);
    double total = sum(b, "rtmd_stage_seconds_count", label) - sum(a, "rtmd_stage_seconds_count", label);
    if (total <= 0)
        return NAN;
    double best = INFINITY;
    for (size_t i = 0; i < b->n; i++) {
        const char *k = b->key[i];
        const char *le = strstr(k, "le=\"");
        if (strncmp(k, "rtmd_stage_seconds_bucket{", 26) != 0 || !strstr(k, label) || !le)
            continue;
        double bound = strncmp(le + 4, "+Inf", 4) == 0 ? INFINITY : strtod(le + 4, NULL);
        double before = 0;
        for (size_t j = 0; j < a->n; j++)
            if (strcmp(a->key[j], k) == 0)
                before = a->value[j];
        if (b->value[i] - before >= q * total && bound < best)
            best = bound;
    }
    return best * 1000;
}

static double mean_ms(const scrape *a, const scrape *b, const char *stage)
{
    char label[64];
    snprintf(label, sizeof label, "stage=\"%s\"", stage);
    double n = sum(b, "rtmd_stage_seconds_count", label) - sum(a, "rtmd_stage_seconds_count", label);
    double total = sum(b, "rtmd_stage_seconds_sum", label) - sum(a, "rtmd_stage_seconds_sum", label);
    return n > 0 ? total / n * 1000 : NAN;
}

typedef struct report {
    double client_conns, server_conns, sessions, projects;
    double logins, login_failures, messages;
    double answer_p99_ms, commit_ms, store_pending, store_mb;
    double slow, protocol_errors;
} report;

static void compute(const scrape *a, const scrape *b, report *r)
{
    r->client_conns = sum(b, "rtmd_connections", "gate=\"client_");
    r->server_conns = sum(b, "rtmd_connections", "gate=\"server_tcp\"");
    r->sessions = sum(b, "rtmd_sessions", NULL);
    r->projects = sum(b, "rtmd_projects", NULL);
    r->logins = rate(a, b, "rtmd_logins_total", "result=\"ok\"");
    r->login_failures =
        rate(a, b, "rtmd_logins_total", "result=\"denied\"") + rate(a, b, "rtmd_logins_total", "result=\"error\"");
    r->messages = rate(a, b, "rtmd_messages_total", NULL);
    r->answer_p99_ms = quantile_ms(a, b, "server", 0.99);
    r->commit_ms = mean_ms(a, b, "apply");
    r->store_pending = sum(b, "rtmd_store_pending", NULL);
    r->store_mb = sum(b, "rtmd_store_bytes", NULL) / (1024.0 * 1024.0);
    r->slow = rate(a, b, "rtmd_slow_consumers_total", NULL);
    r->protocol_errors = rate(a, b, "rtmd_protocol_errors_total", NULL);
}

static json_t *number_or_null(double v)
{
    return isfinite(v) ? json_real(round(v * 1000) / 1000) : json_null();
}

static void print_json(const report *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "client_connections", json_integer((json_int_t)r->client_conns));
    json_object_set_new(o, "server_connections", json_integer((json_int_t)r->server_conns));
    json_object_set_new(o, "sessions", json_integer((json_int_t)r->sessions));
    json_object_set_new(o, "projects", json_integer((json_int_t)r->projects));
    json_object_set_new(o, "logins_per_s", number_or_null(r->logins));
    json_object_set_new(o, "login_failures_per_s", number_or_null(r->login_failures));
    json_object_set_new(o, "messages_per_s", number_or_null(r->messages));
    json_object_set_new(o, "answer_p99_ms", number_or_null(r->answer_p99_ms));
    json_object_set_new(o, "store_commit_ms", number_or_null(r->commit_ms));
    json_object_set_new(o, "store_pending", json_integer((json_int_t)r->store_pending));
    json_object_set_new(o, "store_mib", number_or_null(r->store_mb));
    json_object_set_new(o, "slow_consumers_per_s", number_or_null(r->slow));
    json_object_set_new(o, "protocol_errors_per_s", number_or_null(r->protocol_errors));
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(o);
}

static void print_row(const report *r, bool header)
{
    if (header)
        printf("%-8s %7s %7s %8s %9s %8s %9s %8s %9s %7s %8s %7s %8s\n", "time", "clients", "servers", "sessions",
               "logins/s", "fails/s", "msgs/s", "p99_ms", "commit_ms", "store_q", "store_MB", "slow/s", "errors/s");
    char when[16];
    time_t t = time(NULL);
    strftime(when, sizeof when, "%H:%M:%S", localtime(&t));
    char p99[16] = "-", commit[16] = "-"; /* no message (or write) in the interval */
    if (isfinite(r->answer_p99_ms))
        snprintf(p99, sizeof p99, "%.2f", r->answer_p99_ms);
    if (isfinite(r->commit_ms))
        snprintf(commit, sizeof commit, "%.3f", r->commit_ms);
    printf("%-8s %7.0f %7.0f %8.0f %9.1f %8.1f %9.1f %8s %9s %7.0f %8.1f %7.1f %8.1f\n", when, r->client_conns,
           r->server_conns, r->sessions, r->logins, r->login_failures, r->messages, p99, commit, r->store_pending,
           r->store_mb, r->slow, r->protocol_errors);
}

static volatile sig_atomic_t stop_asked;
static void on_stop(int sig)
{
    (void)sig;
    stop_asked = 1;
}

int rtmctl_stats(const char *url, double interval_s, long count, bool json, long timeout_ms)
{
    static scrape a, b;
    if (fetch(url, timeout_ms, &a) != 0)
        return 1;
    if (sum(&a, "rtmd_connections", NULL) == 0 && sum(&a, "rtmd_projects", NULL) == 0) {
        fprintf(stderr, "rtmctl: %s is not the /metrics of an rtmd\n", url);
        scrape_free(&a);
        return 1;
    }
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    int result = 0;
    for (long printed = 0; !stop_asked && (count <= 0 || printed < count); printed++) {
        struct timespec wait = {(time_t)interval_s, (long)((interval_s - floor(interval_s)) * 1e9)};
        while (nanosleep(&wait, &wait) != 0 && !stop_asked)
            ;
        if (stop_asked)
            break;
        if (fetch(url, timeout_ms, &b) != 0) {
            result = 1;
            break;
        }
        report r;
        compute(&a, &b, &r);
        if (json)
            print_json(&r);
        else
            print_row(&r, printed % 20 == 0);
        fflush(stdout);
        scrape_free(&a);
        a = b;
        b.n = 0;
    }
    scrape_free(&a);
    scrape_free(&b);
    return result;
}
