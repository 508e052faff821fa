/* rtmctl: command-line tool for operators and app developers, built on
 * librtm. It owns argument parsing, output formats and exit codes:
 *   0  success
 *   1  usage error, bad input, connection failure or timeout
 *   2  the server answered with an error (its {"code","ex"} on stderr) */
#include "rtm/client.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 1
#define EXIT_ANSWER_ERROR 2

typedef struct ctl_opts {
    double timeout_s;
    const char *key_pem;
    int bits;
    bool stream;
} ctl_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rtmctl [options] COMMAND ...\n"
            "\n"
            "commands:\n"
            "  ping HOST:PORT               send a `ping` quest and print the round-trip time\n"
            "  call HOST:PORT METHOD JSON   send quest METHOD with the JSON object as payload;\n"
            "                               print the answer as one line of JSON\n"
            "\n"
            "options:\n"
            "  --timeout SECONDS   connect and answer timeout (default 10)\n"
            "  --key PEM           server public key (or a key file holding it): encrypt the link\n"
            "  --bits 128|256      AES key size for --key (default 128)\n"
            "  --stream            stream mode encryption instead of package mode\n"
            "  --verbose           log the connection life cycle on stderr\n"
            "  --help              show this help\n"
            "  --version           show the version\n"
            "\n"
            "HOST may be a name, an IPv4 address or an IPv6 address in brackets ([::1]:13325).\n"
            "Exit status: 0 ok, 1 usage or connection error or timeout, 2 error answer\n"
            "(printed on stderr as {\"code\":...,\"ex\":...}).\n");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rtmctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'rtmctl --help'.\n");
    va_end(ap);
    return EXIT_USAGE;
}

/* Splits HOST:PORT (or [V6]:PORT) into host (malloc'd) and port. */
static int parse_endpoint(const char *s, char **host, uint16_t *port)
{
    const char *colon;
    const char *hbeg = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        hbeg = s + 1;
        hlen = (size_t)(close - hbeg);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen))
            return -1; /* bare IPv6 needs brackets */
    }
    if (hlen == 0)
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p <= 0 || p > 65535)
        return -1;
    *host = strndup(hbeg, hlen);
    if (!*host)
        return -1;
    *port = (uint16_t)p;
    return 0;
}

static unsigned timeout_ms(const ctl_opts *o)
{
    double ms = o->timeout_s * 1000.0;
    if (ms < 1)
        ms = 1;
    if (ms > 86400000.0)
        ms = 86400000.0;
    return (unsigned)ms;
}

static rtm_client *open_client(const ctl_opts *o, const char *endpoint, int *exit_code)
{
    char *host = NULL;
    uint16_t port = 0;
    if (parse_endpoint(endpoint, &host, &port) != 0) {
        *exit_code = usage_error("bad address '%s' (expected HOST:PORT)", endpoint);
        return NULL;
    }
    rtm_options opt;
    rtm_options_init(&opt);
    opt.host = host;
    opt.port = port;
    opt.server_key_pem = o->key_pem;
    opt.bits = o->bits;
    opt.stream_mode = o->stream;
    opt.connect_timeout_ms = timeout_ms(o);
    opt.quest_timeout_ms = timeout_ms(o);
    char err[256];
    rtm_client *c = rtm_client_new(&opt, err, sizeof err);
    free(host);
    if (!c) {
        fprintf(stderr, "rtmctl: %s\n", err);
        *exit_code = EXIT_USAGE;
        return NULL;
    }
    int rc = rtm_client_wait_connected(c, timeout_ms(o));
    if (rc != 0) {
        rtm_client_last_error(c, err, sizeof err);
        if (rc == FPNN_EC_CORE_TIMEOUT)
            snprintf(err, sizeof err, "connect to %s: timed out", endpoint);
        fprintf(stderr, "rtmctl: %s\n", err[0] ? err : "cannot connect");
        rtm_client_free(c);
        *exit_code = EXIT_USAGE;
        return NULL;
    }
    return c;
}

/* Prints a failed call: server errors as JSON (exit 2), local ones as text. */
static int report_failure(const rtm_result *r, const char *what)
{
    if (r->local) {
        if (r->code == FPNN_EC_CORE_TIMEOUT)
            fprintf(stderr, "rtmctl: %s: no answer in time (%s)\n", what, r->ex);
        else
            fprintf(stderr, "rtmctl: %s: %s (%lld)\n", what, r->ex, (long long)r->code);
        return EXIT_USAGE;
    }
    json_t *e = json_object();
    json_object_set_new(e, "code", json_integer((json_int_t)r->code));
    json_t *ex = json_string(r->ex); /* NULL when ex is not UTF-8 */
    if (!ex)
        ex = json_stringn_nocheck(r->ex, strlen(r->ex));
    json_object_set_new(e, "ex", ex);
    char *text = json_dumps(e, JSON_COMPACT);
    fprintf(stderr, "%s\n", text ? text : "{}");
    free(text);
    json_decref(e);
    return EXIT_ANSWER_ERROR;
}

static int cmd_ping(const ctl_opts *o, const char *endpoint)
{
    int exit_code = 0;
    rtm_client *c = open_client(o, endpoint, &exit_code);
    if (!c)
        return exit_code;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rtm_result r;
    rtm_call(c, "ping", NULL, 0, timeout_ms(o), &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (r.code == 0) {
        printf("ping %s: answer in %.3f ms\n", endpoint, ms);
        exit_code = 0;
    } else {
        exit_code = report_failure(&r, "ping");
    }
    rtm_result_free(&r);
    rtm_client_free(c);
    return exit_code;
}

static int cmd_call(const ctl_opts *o, const char *endpoint, const char *method, const char *json)
{
    if (strlen(method) == 0 || strlen(method) > FPNN_MAX_METHOD)
        return usage_error("bad method name '%s'", method);
    json_error_t jerr;
    json_t *doc = json_loads(json, JSON_DECODE_ANY, &jerr);
    if (!doc) {
        fprintf(stderr, "rtmctl: payload is not valid JSON: %s (line %d, column %d)\n", jerr.text, jerr.line,
                jerr.column);
        return EXIT_USAGE;
    }
    bool is_object = json_is_object(doc);
    json_decref(doc);
    if (!is_object) {
        fprintf(stderr, "rtmctl: payload must be a JSON object, like {}\n");
        return EXIT_USAGE;
    }
    int exit_code = 0;
    rtm_client *c = open_client(o, endpoint, &exit_code);
    if (!c)
        return exit_code;
    rtm_result r;
    rtm_call_json(c, method, json, timeout_ms(o), &r);
    if (r.code == 0) {
        char *text = rtm_payload_to_json(r.payload, r.payload_len);
        if (text) {
            printf("%s\n", text);
            rtm_free(text);
        } else {
            fprintf(stderr, "rtmctl: cannot convert the answer to JSON\n");
            exit_code = EXIT_USAGE;
        }
    } else {
        exit_code = report_failure(&r, method);
    }
    rtm_result_free(&r);
    rtm_client_free(c);
    return exit_code;
}

int main(int argc, char **argv)
{
    ctl_opts o = {.timeout_s = 10, .bits = 128};
    enum { OPT_TIMEOUT = 1, OPT_KEY, OPT_BITS, OPT_STREAM, OPT_VERBOSE, OPT_HELP, OPT_VERSION };
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"key", required_argument, NULL, OPT_KEY},
        {"bits", required_argument, NULL, OPT_BITS},
        {"stream", no_argument, NULL, OPT_STREAM},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    bool verbose = false;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case OPT_TIMEOUT:
            o.timeout_s = strtod(optarg, &end);
            if (*end != '\0' || end == optarg || !isfinite(o.timeout_s) || o.timeout_s <= 0)
                return usage_error("--timeout needs a positive number of seconds, not '%s'", optarg);
            break;
        case OPT_KEY:
            o.key_pem = optarg;
            break;
        case OPT_BITS:
            if (strcmp(optarg, "128") == 0)
                o.bits = 128;
            else if (strcmp(optarg, "256") == 0)
                o.bits = 256;
            else
                return usage_error("--bits must be 128 or 256, not '%s'", optarg);
            break;
        case OPT_STREAM:
            o.stream = true;
            break;
        case OPT_VERBOSE:
            verbose = true;
            break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("rtmctl %s\n", rtm_version());
            return 0;
        default:
            if (optopt >= OPT_TIMEOUT && optopt <= OPT_BITS)
                return usage_error("%s needs a value", argv[optind - 1]);
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    /* rtmctl reports failures itself; the SDK's own lines only on request. */
    rtm_set_log_level(verbose ? "debug" : "off");
    if ((o.stream || o.bits != 128) && !o.key_pem)
        fprintf(stderr, "rtmctl: warning: --bits and --stream have no effect without --key\n");

    if (optind >= argc)
        return usage_error("%s", "no command given");
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    if (strcmp(cmd, "ping") == 0) {
        if (nargs != 1)
            return usage_error("%s", "usage: rtmctl ping HOST:PORT");
        return cmd_ping(&o, args[0]);
    }
    if (strcmp(cmd, "call") == 0) {
        if (nargs != 3)
            return usage_error("%s", "usage: rtmctl call HOST:PORT METHOD JSON");
        return cmd_call(&o, args[0], args[1], args[2]);
    }
    return usage_error("unknown command '%s'", cmd);
}
