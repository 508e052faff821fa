/* rtmctl: command-line tool for operators and app developers, built on
 * librtm: raw quests (ping, call), and the app-server and client commands
 * of a first session (token, send, listen, history, friends, info, data),
 * which sign their
 * server-gate requests themselves; and, over HTTP with libcurl, the
 * RealTimeCat REST API (session, rtcat-token); and the store's backup
 * (rtmctl_backup.c). It owns argument parsing,
 * output formats and exit codes:
 *   0  success
 *   1  usage error, bad input, connection failure or timeout
 *   2  the server answered with an error (its {"code","ex"} on stderr, or
 *      the REST API's {"error","description"}), or refused a login token */
#define _GNU_SOURCE /* asprintf */
#include "rtm/client.h"
#include "rtmctl_backup.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define EXIT_USAGE 1
#define EXIT_ANSWER_ERROR 2

typedef struct ctl_opts {
    double timeout_s;
    const char *key_pem;
    int bits;
    bool stream;
} ctl_opts;

/* Options of the session commands (token, send, listen, history, friends). */
typedef struct cmd_opts {
    uint64_t given;             /* bit per option (1ull << (OPT_x - OPT_FIRST_CMD)) */
    int64_t pid, uid, from, to, gid, rid, ouid, mtype, mid, num, count;
    double seconds;
    const char *secret;
    const char *token;
    const char *oinfo, *pinfo;
    const char *user;           /* rtstoken: the string user id */
    const char *room_text;      /* --room as given (rtstoken takes a string room id) */
    bool room_not_int;          /* --room is not an integer (an error but for rtstoken) */
    int64_t expire;             /* rtstoken: lifetime in seconds */
    bool desc;
    bool black;                 /* friends: the blacklist instead of the friend list */
    /* session, rtcat-token (RealTimeCat REST) */
    const char *apikey;
    const char *label, *data;
    const char *type;
    int64_t live_days, page, page_size, number;
    const char *permanent;      /* "true" or "false" (--permanent alone: "true") */
    bool permanent_value;       /* --permanent was given a value */
} cmd_opts;

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
            "  app-server commands (server gate, default port 13315; signed with --pid and --secret):\n"
            "  token HOST:PORT --uid UID    mint a login token for UID (gettoken); print it\n"
            "  send HOST:PORT --from UID (--to UID | --group GID | --room RID) [--mtype N] [--mid N] MESSAGE\n"
            "                               send MESSAGE (sendmsg, sendgroupmsg, sendroommsg);\n"
            "                               print {\"mid\":...,\"mtime\":...}\n"
            "  history HOST:PORT --uid UID (--ouid UID | --group GID | --room RID) [--num N] [--desc]\n"
            "                               read a conversation as UID (getp2pmsg, getgroupmsg,\n"
            "                               getroommsg); print the answer as JSON\n"
            "  friends HOST:PORT --uid UID [--black] list|add|del|check [UID ...]\n"
            "                               UID's friend list, or with --black its blacklist:\n"
            "                               list it (getfriends, getblacks), add or remove the UIDs\n"
            "                               (addfriends, delfriends, addblacks, delblacks; at most\n"
            "                               100), or check which UIDs are UID's friends (isfriends)\n"
            "                               or have UID on their blacklist (isblacks);\n"
            "                               print the answer as JSON\n"
            "  info HOST:PORT get (--uid UID | --group GID | --room RID)\n"
            "                               print the info of a user, group or room (getuserinfo,\n"
            "                               getgroupinfo, getroominfo) as {\"oinfo\":...,\"pinfo\":...}\n"
            "  info HOST:PORT set (--uid UID | --group GID | --room RID) [--oinfo TEXT] [--pinfo TEXT]\n"
            "                               set its open and/or private info (setuserinfo, ...);\n"
            "                               a part not given is kept\n"
            "  data HOST:PORT --uid UID (get KEY | set KEY VALUE | del KEY)\n"
            "                               a user's key-value data (dataget, dataset, datadel);\n"
            "                               get prints {\"val\":...}, or {} for an absent key\n"
            "  rtstoken HOST:PORT --user ID [--room ID] [--expire S]\n"
            "                               mint an RTS access token for string user id ID\n"
            "                               (getrtstoken; the project needs app_id and app_key);\n"
            "                               --expire 0: no expiry (default: the project's token_ttl);\n"
            "                               print it\n"
            "\n"
            "  RealTimeCat REST commands (HTTP listener, default port 8080; ADDR is HOST:PORT or an\n"
            "  http:// or https:// URL; sent with --apikey and --secret; print the answer's JSON):\n"
            "  session ADDR create [--label L] [--data D] [--live-days N] [--type p2p|rel] [--permanent]\n"
            "  session ADDR list [--page N] [--page-size N] [--permanent|--nonpermanent]\n"
            "  session ADDR get|delete ID\n"
            "  session ADDR update ID [--label L] [--data D] [--live-days N] [--permanent true|false]\n"
            "                               create, list, read, change or delete sessions (delete\n"
            "                               takes the session's tokens along and prints nothing)\n"
            "  rtcat-token ADDR create SESSION_ID [--number N] [--label L] [--data D] [--live-days N]\n"
            "                               [--type pub|sub] [--permanent]\n"
            "  rtcat-token ADDR list SESSION_ID [--page N] [--page-size N] [--permanent|--nonpermanent]\n"
            "  rtcat-token ADDR get|delete ID\n"
            "  rtcat-token ADDR update ID [--label L] [--data D] [--live-days N] [--permanent true|false]\n"
            "                               the same for a session's tokens; create prints an array\n"
            "                               when --number is over 1\n"
            "\n"
            "  operator command (on the machine of an rtmd on SQLite):\n"
            "  backup DATA_DIR FILE         copy the store in DATA_DIR (or the store file given)\n"
            "                               to the new FILE while rtmd runs: a consistent snapshot,\n"
            "                               checked and fsynced; print {\"file\",\"bytes\",...}\n"
            "\n"
            "  client command (client gate, default port 13325):\n"
            "  listen HOST:PORT --pid PID --uid UID --token TOKEN [--count N] [--seconds S]\n"
            "                               log in and print every push as one line of JSON,\n"
            "                               {\"method\":...,\"payload\":{...}}, answering each with {};\n"
            "                               stop on SIGINT/SIGTERM, after N pushes or S seconds\n"
            "\n"
            "options:\n"
            "  --timeout SECONDS   connect and answer timeout (default 10)\n"
            "  --key PEM           server public key (or a key file holding it): encrypt the link\n"
            "  --bits 128|256      AES key size for --key (default 128)\n"
            "  --stream            stream mode encryption instead of package mode\n"
            "  --pid PID           project id (default: $RTM_PID)\n"
            "  --secret SECRET     project secret (default: $RTM_SECRET; prefer the variable,\n"
            "                      command lines are visible to other users)\n"
            "  --mtype N           message type 1-127 (default 30, chat text)\n"
            "  --mid N             message id (default: random); a resend with the same mid\n"
            "                      is recognised as a duplicate\n"
            "  --num N             messages to fetch (default 10)\n"
            "  --desc              newest first\n"
            "  --black             friends: work on the blacklist\n"
            "  --oinfo TEXT        open (public) info, --pinfo TEXT private info (info set)\n"
            "  --user ID           rtstoken: string user id; --room ID there is a string too\n"
            "  --expire S          rtstoken: token lifetime in seconds, 0 = no expiry\n"
            "  --apikey KEY        RealTimeCat API key (default: $RTCAT_APIKEY); with these\n"
            "                      commands --secret is the RealTimeCat secret ($RTCAT_SECRET)\n"
            "  --verbose           log the connection life cycle on stderr\n"
            "  --help              show this help\n"
            "  --version           show the version\n"
            "\n"
            "Environment: RTM_PID and RTM_SECRET give --pid and --secret; RTCAT_APIKEY and\n"
            "RTCAT_SECRET give --apikey and --secret of session and rtcat-token.\n"
            "HOST may be a name, an IPv4 address or an IPv6 address in brackets ([::1]:13325).\n"
            "Exit status: 0 ok, 1 usage or connection error or timeout, 2 error answer\n"
            "(printed on stderr as {\"code\":...,\"ex\":...}, or the REST API's\n"
            "{\"error\":...,\"description\":...}) or a refused login token.\n");
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

/* ---- session commands ---- */

enum {
    OPT_TIMEOUT = 1,
    OPT_KEY,
    OPT_BITS,
    OPT_STREAM,
    OPT_VERBOSE,
    OPT_HELP,
    OPT_VERSION,
    OPT_FIRST_CMD,
    OPT_PID = OPT_FIRST_CMD,
    OPT_SECRET,
    OPT_UID,
    OPT_FROM,
    OPT_TO,
    OPT_GROUP,
    OPT_ROOM,
    OPT_OUID,
    OPT_MTYPE,
    OPT_MID,
    OPT_NUM,
    OPT_DESC,
    OPT_TOKEN,
    OPT_COUNT,
    OPT_SECONDS,
    OPT_BLACK,
    OPT_OINFO,
    OPT_PINFO,
    OPT_USER,
    OPT_EXPIRE,
    OPT_APIKEY,
    OPT_LABEL,
    OPT_DATA,
    OPT_LIVE_DAYS,
    OPT_TYPE,
    OPT_PERMANENT,
    OPT_NONPERMANENT,
    OPT_PAGE,
    OPT_PAGE_SIZE,
    OPT_NUMBER,
    OPT_LAST
};

#define GIVEN(opt) (1ull << ((opt) - OPT_FIRST_CMD))
_Static_assert(OPT_LAST - OPT_FIRST_CMD <= 64, "cmd_opts.given has a bit per option");

static const char *const cmd_opt_names[] = {"--pid",  "--secret", "--uid",  "--from",  "--to",    "--group",
                                            "--room", "--ouid",   "--mtype", "--mid",  "--num",   "--desc",
                                            "--token", "--count",  "--seconds", "--black",
                                            "--oinfo", "--pinfo", "--user", "--expire",
                                            "--apikey", "--label", "--data", "--live-days", "--type",
                                            "--permanent", "--nonpermanent", "--page", "--page-size",
                                            "--number"};
_Static_assert(sizeof cmd_opt_names / sizeof cmd_opt_names[0] == OPT_LAST - OPT_FIRST_CMD, "a name per option");

/* Refuses options that the command does not take. */
static int check_allowed(const cmd_opts *c, const char *cmd, uint64_t allowed)
{
    for (int opt = OPT_FIRST_CMD; opt < OPT_LAST; opt++)
        if ((c->given & GIVEN(opt)) && !(allowed & GIVEN(opt)))
            return usage_error("%s is not an option of '%s'", cmd_opt_names[opt - OPT_FIRST_CMD], cmd);
    return 0;
}

static int parse_int64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* --pid and --secret, from the command line or the environment. */
static int need_project(cmd_opts *c, bool secret)
{
    if (!(c->given & GIVEN(OPT_PID))) {
        const char *env = getenv("RTM_PID");
        if (!env || !env[0])
            return usage_error("%s", "--pid is required (or set RTM_PID)");
        if (parse_int64(env, &c->pid) != 0 || c->pid <= 0)
            return usage_error("RTM_PID must be a positive integer, not '%s'", env);
    }
    if (secret && !c->secret) {
        const char *env = getenv("RTM_SECRET");
        if (!env || !env[0])
            return usage_error("%s", "--secret is required (or set RTM_SECRET)");
        c->secret = env;
    }
    return 0;
}

static int64_t random_mid(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    r &= (uint64_t)INT64_MAX;
    return r ? (int64_t)r : 1;
}

/* Sends a signed server-gate quest with a JSON payload (taken over) and
 * returns the answer parsed as JSON in *answer (exit code 0), or reports
 * the failure and returns the exit code. */
static int server_call(const ctl_opts *o, const cmd_opts *c, const char *endpoint, const char *method,
                       json_t *payload, json_t **answer)
{
    *answer = NULL;
    char *text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    if (!text) {
        fprintf(stderr, "rtmctl: cannot encode the request\n");
        return EXIT_USAGE;
    }
    int exit_code = 0;
    rtm_client *cl = open_client(o, endpoint, &exit_code);
    if (!cl) {
        free(text);
        return exit_code;
    }
    rtm_result r;
    rtm_server_call_json(cl, c->pid, c->secret, method, text, timeout_ms(o), &r);
    free(text);
    if (r.code == 0) {
        char *json = rtm_payload_to_json(r.payload, r.payload_len);
        json_error_t jerr;
        *answer = json ? json_loads(json, JSON_DECODE_ANY, &jerr) : NULL;
        rtm_free(json);
        if (!*answer) {
            fprintf(stderr, "rtmctl: cannot convert the answer to JSON\n");
            exit_code = EXIT_USAGE;
        }
    } else {
        exit_code = report_failure(&r, method);
    }
    rtm_result_free(&r);
    rtm_client_free(cl);
    return exit_code;
}

static void print_json_line(json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s\n", text ? text : "null");
    fflush(stdout);
    free(text);
}

/* Calls method on the server gate at addr and prints the token of its
 * answer (token, rtstoken). Takes payload. */
static int print_token(const ctl_opts *o, const cmd_opts *c, const char *addr, const char *method, json_t *payload)
{
    json_t *answer;
    int rc = server_call(o, c, addr, method, payload, &answer);
    if (rc)
        return rc;
    const char *token = json_string_value(json_object_get(answer, "token"));
    if (!token) {
        fprintf(stderr, "rtmctl: the answer has no token\n");
        rc = EXIT_USAGE;
    } else {
        printf("%s\n", token);
    }
    json_decref(answer);
    return rc;
}

static int cmd_token(const ctl_opts *o, cmd_opts *c, int nargs, char **args)
{
    int rc = check_allowed(c, "token", GIVEN(OPT_PID) | GIVEN(OPT_SECRET) | GIVEN(OPT_UID));
    if (rc)
        return rc;
    if (nargs != 1)
        return usage_error("%s", "usage: rtmctl token HOST:PORT --pid PID --secret SECRET --uid UID");
    if ((rc = need_project(c, true)))
        return rc;
    if (!(c->given & GIVEN(OPT_UID)))
        return usage_error("%s", "token needs --uid");
    json_t *payload = json_pack("{sI}", "uid", (json_int_t)c->uid);
    return print_token(o, c, args[0], "gettoken", payload);
}

/* The conversation target of send and history: exactly one of peer, group
 * and room. Sets *key and *id. */
static int pick_target(const cmd_opts *c, const char *cmd, int peer_opt, const char *peer_key, const char **key,
                       int64_t *id)
{
    int n = 0;
    if (c->given & GIVEN(peer_opt)) {
        n++;
        *key = peer_key;
        *id = peer_opt == OPT_TO ? c->to : peer_opt == OPT_UID ? c->uid : c->ouid;
    }
    if (c->given & GIVEN(OPT_GROUP)) {
        n++;
        *key = "gid";
        *id = c->gid;
    }
    if (c->given & GIVEN(OPT_ROOM)) {
        if (c->room_not_int)
            return usage_error("--room needs an integer, not '%s'", c->room_text);
        n++;
        *key = "rid";
        *id = c->rid;
    }
    if (n != 1)
        return usage_error("%s needs exactly one of %s, --group and --room", cmd,
                           cmd_opt_names[peer_opt - OPT_FIRST_CMD]);
    return 0;
}

static int cmd_send(const ctl_opts *o, cmd_opts *c, int nargs, char **args)
{
    int rc = check_allowed(c, "send", GIVEN(OPT_PID) | GIVEN(OPT_SECRET) | GIVEN(OPT_FROM) | GIVEN(OPT_TO) |
                                          GIVEN(OPT_GROUP) | GIVEN(OPT_ROOM) | GIVEN(OPT_MTYPE) | GIVEN(OPT_MID));
    if (rc)
        return rc;
    if (nargs != 2)
        return usage_error("%s", "usage: rtmctl send HOST:PORT --from UID (--to UID | --group GID | --room RID) "
                                 "[--mtype N] MESSAGE");
    if ((rc = need_project(c, true)))
        return rc;
    if (!(c->given & GIVEN(OPT_FROM)))
        return usage_error("%s", "send needs --from");
    const char *key = NULL;
    int64_t target = 0;
    if ((rc = pick_target(c, "send", OPT_TO, "to", &key, &target)))
        return rc;
    int64_t mtype = (c->given & GIVEN(OPT_MTYPE)) ? c->mtype : 30;
    if (mtype < 1 || mtype > 127)
        return usage_error("--mtype must be 1-127, not %lld", (long long)mtype);
    int64_t mid = (c->given & GIVEN(OPT_MID)) ? c->mid : random_mid();
    json_t *msg = json_string(args[1]);
    if (!msg)
        return usage_error("%s", "MESSAGE must be UTF-8 text");
    const char *method = key[0] == 'g' ? "sendgroupmsg" : key[0] == 'r' ? "sendroommsg" : "sendmsg";
    json_t *payload = json_pack("{sIsIsIsIsoss}", "from", (json_int_t)c->from, key, (json_int_t)target, "mid",
                                (json_int_t)mid, "mtype", (json_int_t)mtype, "msg", msg, "attrs", "");
    json_t *answer;
    if ((rc = server_call(o, c, args[0], method, payload, &answer)))
        return rc;
    json_t *out = json_pack("{sI}", "mid", (json_int_t)mid);
    json_object_update(out, answer);
    print_json_line(out);
    json_decref(out);
    json_decref(answer);
    return 0;
}

static int cmd_history(const ctl_opts *o, cmd_opts *c, int nargs, char **args)
{
    int rc = check_allowed(c, "history", GIVEN(OPT_PID) | GIVEN(OPT_SECRET) | GIVEN(OPT_UID) | GIVEN(OPT_OUID) |
                                             GIVEN(OPT_GROUP) | GIVEN(OPT_ROOM) | GIVEN(OPT_NUM) | GIVEN(OPT_DESC));
    if (rc)
        return rc;
    if (nargs != 1)
        return usage_error("%s", "usage: rtmctl history HOST:PORT --uid UID (--ouid UID | --group GID | --room RID) "
                                 "[--num N] [--desc]");
    if ((rc = need_project(c, true)))
        return rc;
    if (!(c->given & GIVEN(OPT_UID)))
        return usage_error("%s", "history needs --uid");
    const char *key = NULL;
    int64_t target = 0;
    if ((rc = pick_target(c, "history", OPT_OUID, "ouid", &key, &target)))
        return rc;
    int64_t num = (c->given & GIVEN(OPT_NUM)) ? c->num : 10;
    if (num < 1)
        return usage_error("--num must be positive, not %lld", (long long)num);
    const char *method = key[0] == 'g' ? "getgroupmsg" : key[0] == 'r' ? "getroommsg" : "getp2pmsg";
    json_t *payload = json_pack("{sIsIsbsI}", "uid", (json_int_t)c->uid, key, (json_int_t)target, "desc",
                                (int)c->desc, "num", (json_int_t)num);
    json_t *answer;
    if ((rc = server_call(o, c, args[0], method, payload, &answer)))
        return rc;
    print_json_line(answer);
    json_decref(answer);
    return 0;
}

/* friends: one user's friend list or blacklist through the server gate. */
static int cmd_friends(const ctl_opts *o, cmd_opts *c, int nargs, char **args)
{
    static const char *const actions[][3] = {
        /* action, method on friends, method on the blacklist */
        {"list", "getfriends", "getblacks"},
        {"add", "addfriends", "addblacks"},
        {"del", "delfriends", "delblacks"},
        {"check", "isfriends", "isblacks"},
    };
    int rc = check_allowed(c, "friends", GIVEN(OPT_PID) | GIVEN(OPT_SECRET) | GIVEN(OPT_UID) | GIVEN(OPT_BLACK));
    if (rc)
        return rc;
    if (nargs < 2)
        return usage_error("%s", "usage: rtmctl friends HOST:PORT --uid UID [--black] list|add|del|check [UID ...]");
    if ((rc = need_project(c, true)))
        return rc;
    if (!(c->given & GIVEN(OPT_UID)))
        return usage_error("%s", "friends needs --uid");
    int a = -1;
    for (int i = 0; i < (int)(sizeof actions / sizeof actions[0]); i++)
        if (strcmp(args[1], actions[i][0]) == 0)
            a = i;
    if (a < 0)
        return usage_error("unknown friends action '%s' (list, add, del or check)", args[1]);
    int nuids = nargs - 2;
    if (a == 0 && nuids != 0)
        return usage_error("%s", "friends list takes no UID");
    if (a != 0 && nuids == 0)
        return usage_error("friends %s needs at least one UID", args[1]);
    json_t *uids = json_array();
    for (int i = 0; i < nuids; i++) {
        int64_t v;
        if (parse_int64(args[2 + i], &v) != 0) {
            json_decref(uids);
            return usage_error("UID must be an integer, not '%s'", args[2 + i]);
        }
        json_array_append_new(uids, json_integer((json_int_t)v));
    }
    /* The list's field: friends/blacks for add and del, fuids/buids for check. */
    const char *key = a == 3 ? (c->black ? "buids" : "fuids") : (c->black ? "blacks" : "friends");
    json_t *payload = json_pack("{sI}", "uid", (json_int_t)c->uid);
    if (a == 0)
        json_decref(uids);
    else
        json_object_set_new(payload, key, uids);
    json_t *answer;
    if ((rc = server_call(o, c, args[0], actions[a][c->black ? 2 : 1], payload, &answer)))
        return rc;
    print_json_line(answer);
    json_decref(answer);
    return 0;
}

/* info get / info set: the info of one user, group or room. */
static int cmd_info(const ctl_opts *o, cmd_opts *c, int nargs, char **args)
{
    int rc = check_allowed(c, "info", GIVEN(OPT_PID) | GIVEN(OPT_SECRET) | GIVEN(OPT_UID) | GIVEN(OPT_GROUP) |
                                          GIVEN(OPT_ROOM) | GIVEN(OPT_OINFO) | GIVEN(OPT_PINFO));
    if (rc)
        return rc;
    bool set = nargs == 2 && strcmp(args[1], "set") == 0;
    if (nargs != 2 || (!set && strcmp(args[1], "get") != 0))
        return usage_error("%s", "usage: rtmctl info HOST:PORT get|set (--uid UID | --group GID | --room RID) "
                                 "[--oinfo TEXT] [--pinfo TEXT]");
    if ((rc = need_project(c, true)))
        return rc;
    const char *key = NULL;
    int64_t target = 0;
    if ((rc = pick_target(c, "info", OPT_UID, "uid", &key, &target)))
        return rc;
    if (!set && (c->oinfo || c->pinfo))
        return usage_error("%s", "--oinfo and --pinfo are for 'info set'");
    if (set && !c->oinfo && !c->pinfo)
        return usage_error("%s", "info set needs --oinfo or --pinfo (or both)");
    const char *kind = key[0] == 'g' ? "group" : key[0] == 'r' ? "room" : "user";
    char method[32];
    snprintf(method, sizeof method, "%s%sinfo", set ? "set" : "get", kind);
    json_t *payload = json_pack("{sI}", key, (json_int_t)target);
    const char *parts[2][2] = {{"oinfo", c->oinfo}, {"pinfo", c->pinfo}};
    for (int i = 0; i < 2; i++) {
        if (!parts[i][1])
            continue;
        json_t *text = json_string(parts[i][1]);
        if (!text) {
            json_decref(payload);
            return usage_error("--%s must be UTF-8 text", parts[i][0]);
        }
        json_object_set_new(payload, parts[i][0], text);
    }
    json_t *answer;
    if ((rc = server_call(o, c, args[0], method, payload, &answer)))
        return rc;
    if (!set)
        print_json_line(answer);
    json_decref(answer);
    return 0;
}

/* data: a user's key-value data through the server gate (dataset,
 * dataget, datadel). get prints the answer as JSON, {"val":...} or {} for
 * an absent key; set and del print nothing. */
static int cmd_data(const ctl_opts *o, cmd_opts *c, int nargs, char **args)
{
    static const char usage_text[] = "usage: rtmctl data HOST:PORT --uid UID (get KEY | set KEY VALUE | del KEY)";
    int rc = check_allowed(c, "data", GIVEN(OPT_PID) | GIVEN(OPT_SECRET) | GIVEN(OPT_UID));
    if (rc)
        return rc;
    if (nargs < 3)
        return usage_error("%s", usage_text);
    const char *op = args[1];
    bool set = strcmp(op, "set") == 0;
    if (!set && strcmp(op, "get") != 0 && strcmp(op, "del") != 0)
        return usage_error("data: unknown operation '%s' (get, set or del)", op);
    if (nargs != (set ? 4 : 3))
        return usage_error("%s", usage_text);
    if ((rc = need_project(c, true)))
        return rc;
    if (!(c->given & GIVEN(OPT_UID)))
        return usage_error("%s", "data needs --uid");
    json_t *key = json_string(args[2]);
    json_t *val = set ? json_string(args[3]) : NULL;
    if (!key || (set && !val)) {
        json_decref(key);
        json_decref(val);
        return usage_error("%s", "KEY and VALUE must be UTF-8 text");
    }
    json_t *payload = json_pack("{sIso}", "uid", (json_int_t)c->uid, "key", key);
    if (set)
        json_object_set_new(payload, "val", val);
    const char *method = set ? "dataset" : op[0] == 'g' ? "dataget" : "datadel";
    json_t *answer;
    if ((rc = server_call(o, c, args[0], method, payload, &answer)))
        return rc;
    if (op[0] == 'g')
        print_json_line(answer);
    json_decref(answer);
    return 0;
}

/* rtstoken: an RTS access token for a string user id (getrtstoken). */
static int cmd_rtstoken(const ctl_opts *o, cmd_opts *c, int nargs, char **args)
{
    static const char usage_text[] =
        "usage: rtmctl rtstoken HOST:PORT --pid PID --secret SECRET --user ID [--room ID] [--expire S]";
    int rc = check_allowed(c, "rtstoken",
                           GIVEN(OPT_PID) | GIVEN(OPT_SECRET) | GIVEN(OPT_USER) | GIVEN(OPT_ROOM) | GIVEN(OPT_EXPIRE));
    if (rc)
        return rc;
    if (nargs != 1)
        return usage_error("%s", usage_text);
    if ((rc = need_project(c, true)))
        return rc;
    if (!c->user)
        return usage_error("%s", "rtstoken needs --user");
    if ((c->given & GIVEN(OPT_EXPIRE)) && c->expire < 0)
        return usage_error("--expire must be 0 or more seconds, not %lld", (long long)c->expire);
    json_t *user = json_string(c->user);
    json_t *room = c->room_text ? json_string(c->room_text) : NULL;
    if (!user || (c->room_text && !room)) {
        json_decref(user);
        json_decref(room);
        return usage_error("%s", "--user and --room must be UTF-8 text");
    }
    json_t *payload = json_pack("{so}", "uid", user);
    if (room)
        json_object_set_new(payload, "rid", room);
    if (c->given & GIVEN(OPT_EXPIRE))
        json_object_set_new(payload, "expire", json_integer((json_int_t)c->expire));
    return print_token(o, c, args[0], "getrtstoken", payload);
}

/* listen: pushes arrive on librtm's I/O thread; the main thread waits for
 * a signal, the push count, the time limit or the end of the link. */
typedef struct listen_state {
    atomic_llong printed;
    long long count;            /* 0: no limit */
    atomic_bool done;           /* count reached */
    atomic_bool closed;         /* the link closed */
} listen_state;

static void listen_on_quest(rtm_client *cl, const rtm_quest *q, void *arg)
{
    listen_state *ls = arg;
    if (q->twoway)
        rtm_client_answer(cl, q->id, NULL, 0);
    long long n = atomic_fetch_add(&ls->printed, 1) + 1;
    if (ls->count && n > ls->count)
        return;
    char *payload = rtm_payload_to_json(q->payload, q->payload_len);
    json_error_t jerr;
    json_t *p = payload ? json_loads(payload, JSON_DECODE_ANY, &jerr) : NULL;
    rtm_free(payload);
    json_t *method = json_string(q->method);
    json_t *line = json_pack("{soso}", "method", method ? method : json_null(), "payload", p ? p : json_null());
    print_json_line(line);
    json_decref(line);
    if (ls->count && n == ls->count)
        atomic_store(&ls->done, true);
}

static void listen_on_event(rtm_client *cl, enum rtm_event ev, const char *reason, void *arg)
{
    listen_state *ls = arg;
    if (ev == RTM_EVENT_CLOSED)
        atomic_store(&ls->closed, true);
}

static int cmd_listen(const ctl_opts *o, cmd_opts *c, int nargs, char **args)
{
    int rc = check_allowed(c, "listen",
                           GIVEN(OPT_PID) | GIVEN(OPT_UID) | GIVEN(OPT_TOKEN) | GIVEN(OPT_COUNT) | GIVEN(OPT_SECONDS));
    if (rc)
        return rc;
    if (nargs != 1)
        return usage_error("%s", "usage: rtmctl listen HOST:PORT --pid PID --uid UID --token TOKEN [--count N] "
                                 "[--seconds S]");
    if ((rc = need_project(c, false)))
        return rc;
    if (!(c->given & GIVEN(OPT_UID)) || !c->token)
        return usage_error("%s", "listen needs --uid and --token");
    if ((c->given & GIVEN(OPT_COUNT)) && c->count < 1)
        return usage_error("--count must be positive, not %lld", (long long)c->count);

    /* SIGINT and SIGTERM are taken with sigtimedwait below; blocked before
     * librtm starts its thread, so that it inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    listen_state ls = {.count = (c->given & GIVEN(OPT_COUNT)) ? c->count : 0};
    atomic_init(&ls.printed, 0);
    atomic_init(&ls.done, false);
    atomic_init(&ls.closed, false);
    char *host = NULL;
    uint16_t port = 0;
    if (parse_endpoint(args[0], &host, &port) != 0)
        return usage_error("bad address '%s' (expected HOST:PORT)", args[0]);
    rtm_options opt;
    rtm_options_init(&opt);
    opt.host = host;
    opt.port = port;
    opt.server_key_pem = o->key_pem;
    opt.bits = o->bits;
    opt.stream_mode = o->stream;
    opt.connect_timeout_ms = timeout_ms(o);
    opt.quest_timeout_ms = timeout_ms(o);
    opt.on_quest = listen_on_quest;
    opt.on_event = listen_on_event;
    opt.arg = &ls;
    char err[256];
    rtm_client *cl = rtm_client_new(&opt, err, sizeof err);
    free(host);
    if (!cl) {
        fprintf(stderr, "rtmctl: %s\n", err);
        return EXIT_USAGE;
    }
    rc = rtm_client_wait_connected(cl, timeout_ms(o));
    if (rc != 0) {
        rtm_client_last_error(cl, err, sizeof err);
        if (rc == FPNN_EC_CORE_TIMEOUT)
            snprintf(err, sizeof err, "connect to %s: timed out", args[0]);
        fprintf(stderr, "rtmctl: %s\n", err[0] ? err : "cannot connect");
        rtm_client_free(cl);
        return EXIT_USAGE;
    }

    char version[64];
    snprintf(version, sizeof version, "rtmctl-%s", rtm_version());
    json_t *auth = json_pack("{sIsIssss}", "pid", (json_int_t)c->pid, "uid", (json_int_t)c->uid, "token", c->token,
                             "version", version);
    char *text = auth ? json_dumps(auth, JSON_COMPACT) : NULL;
    json_decref(auth);
    rtm_result r;
    rtm_call_json(cl, "auth", text ? text : "{}", timeout_ms(o), &r);
    free(text);
    int exit_code = 0;
    if (r.code != 0) {
        exit_code = report_failure(&r, "auth");
    } else {
        char *answer = rtm_payload_to_json(r.payload, r.payload_len);
        json_error_t jerr;
        json_t *a = answer ? json_loads(answer, JSON_DECODE_ANY, &jerr) : NULL;
        rtm_free(answer);
        if (!json_is_true(json_object_get(a, "ok"))) {
            fprintf(stderr, "rtmctl: login refused: bad or expired token for uid %lld of project %lld\n",
                    (long long)c->uid, (long long)c->pid);
            exit_code = EXIT_ANSWER_ERROR;
        }
        json_decref(a);
    }
    rtm_result_free(&r);
    if (exit_code) {
        rtm_client_free(cl);
        return exit_code;
    }
    fprintf(stderr, "rtmctl: listening as uid %lld of project %lld\n", (long long)c->uid, (long long)c->pid);

    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (atomic_load(&ls.done))
            break;
        if (atomic_load(&ls.closed)) {
            rtm_client_last_error(cl, err, sizeof err);
            fprintf(stderr, "rtmctl: connection closed%s%s\n", err[0] ? ": " : "", err);
            exit_code = EXIT_USAGE;
            break;
        }
        long wait_ns = 100 * 1000000L;
        if (c->given & GIVEN(OPT_SECONDS)) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            double elapsed = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
            double left = c->seconds - elapsed;
            if (left <= 0)
                break;
            if (left < 0.1)
                wait_ns = (long)(left * 1e9) + 1;
        }
        struct timespec ts = {0, wait_ns};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM)
            break;
    }
    rtm_client_free(cl);
    return exit_code;
}

/* ---- RealTimeCat REST: session, rtcat-token ---- */

#define REST_MAX_ANSWER ((size_t)4 << 20) /* bytes of an answer body */

/* The answer body, bounded by REST_MAX_ANSWER. */
typedef struct rest_body {
    char *data;
    size_t len;
    bool too_big;
} rest_body;

static size_t rest_collect(char *ptr, size_t size, size_t n, void *arg)
{
    rest_body *b = arg;
    size_t add = size * n;
    if (add > REST_MAX_ANSWER - b->len) {
        b->too_big = true;
        return 0;
    }
    char *p = realloc(b->data, b->len + add + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, ptr, add);
    b->len += add;
    p[b->len] = '\0';
    b->data = p;
    return add;
}

/* Where and as whom: the API's base URL (ending in /v0.4) and the project's
 * key and secret. */
typedef struct rest_target {
    char *base;
    const char *apikey;
    const char *secret;
} rest_target;

static bool header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* ADDR is HOST:PORT (plain HTTP) or an http:// or https:// URL, with or
 * without the /v0.4 version path; --apikey/--secret or RTCAT_APIKEY and
 * RTCAT_SECRET. */
static int rest_open(const char *addr, cmd_opts *c, rest_target *t)
{
    t->base = NULL;
    t->apikey = c->apikey;
    t->secret = c->secret;
    if (!t->apikey || !t->apikey[0])
        t->apikey = getenv("RTCAT_APIKEY");
    if (!t->apikey || !t->apikey[0])
        return usage_error("%s", "--apikey is required (or set RTCAT_APIKEY)");
    if (!t->secret || !t->secret[0])
        t->secret = getenv("RTCAT_SECRET");
    if (!t->secret || !t->secret[0])
        return usage_error("%s", "--secret is required (or set RTCAT_SECRET)");
    if (!header_safe(t->apikey) || !header_safe(t->secret))
        return usage_error("%s", "the API key and secret cannot hold control characters");
    size_t len = strlen(addr);
    bool url = strncmp(addr, "http://", 7) == 0 || strncmp(addr, "https://", 8) == 0;
    if (!url) {
        char *host = NULL;
        uint16_t port;
        if (parse_endpoint(addr, &host, &port) != 0)
            return usage_error("bad address '%s' (expected HOST:PORT or an http:// or https:// URL)", addr);
        free(host);
    } else if (!header_safe(addr) || strchr(addr, ' ') || strchr(addr, '?') || strchr(addr, '#')) {
        return usage_error("bad URL '%s'", addr);
    }
    while (len > 0 && addr[len - 1] == '/')
        len--;
    bool versioned = len >= 5 && memcmp(addr + len - 5, "/v0.4", 5) == 0;
    if (asprintf(&t->base, "%s%.*s%s", url ? "" : "http://", (int)len, addr, versioned ? "" : "/v0.4") < 0) {
        t->base = NULL;
        fprintf(stderr, "rtmctl: out of memory\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* Sends METHOD base+PATH with the form body (NULL: none), and prints the
 * answer: its JSON as one line on stdout (nothing for an empty 2xx body);
 * an error answer (not 2xx, or an object with "error") on stderr, exit 2;
 * no answer (connection, timeout, size) exit 1. */
static int rest_call(const ctl_opts *o, const rest_target *t, const char *method, const char *path,
                     const char *form)
{
    char *url = NULL, *key_h = NULL, *secret_h = NULL;
    if (asprintf(&url, "%s%s", t->base, path) < 0 || asprintf(&key_h, "X-RTCAT-APIKEY: %s", t->apikey) < 0 ||
        asprintf(&secret_h, "X-RTCAT-SECRET: %s", t->secret) < 0) {
        fprintf(stderr, "rtmctl: out of memory\n");
        exit(EXIT_USAGE);
    }
    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "rtmctl: cannot start libcurl\n");
        exit(EXIT_USAGE);
    }
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, key_h);
    headers = curl_slist_append(headers, secret_h);
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Expect:");
    if (form)
        headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
    rest_body body = {0};
    char err[CURL_ERROR_SIZE] = "";
    long ms = (long)timeout_ms(o);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)REST_MAX_ANSWER);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rest_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "rtmctl");
    if (form)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    free(key_h);
    free(secret_h);

    int exit_code = 0;
    if (rc != CURLE_OK) {
        if (body.too_big || rc == CURLE_FILESIZE_EXCEEDED)
            fprintf(stderr, "rtmctl: %s %s: the answer is over %zu bytes\n", method, url, REST_MAX_ANSWER);
        else if (rc == CURLE_OPERATION_TIMEDOUT)
            fprintf(stderr, "rtmctl: %s %s: no answer in time\n", method, url);
        else
            fprintf(stderr, "rtmctl: %s %s: %s\n", method, url, err[0] ? err : curl_easy_strerror(rc));
        exit_code = EXIT_USAGE;
        goto out;
    }
    json_error_t jerr;
    json_t *answer = body.len ? json_loadb(body.data, body.len, JSON_DECODE_ANY, &jerr) : NULL;
    bool ok = status >= 200 && status < 300 && !json_object_get(answer, "error");
    if (ok && body.len && !answer) {
        fprintf(stderr, "rtmctl: %s %s: the answer is not JSON (%s)\n", method, url, jerr.text);
        exit_code = EXIT_USAGE;
    } else if (ok) {
        if (answer)
            print_json_line(answer);
    } else if (json_is_object(answer)) {
        char *text = json_dumps(answer, JSON_COMPACT);
        fprintf(stderr, "%s\n", text ? text : "{}");
        free(text);
        exit_code = EXIT_ANSWER_ERROR;
    } else {
        fprintf(stderr, "rtmctl: %s %s: HTTP status %ld\n", method, url, status);
        exit_code = EXIT_ANSWER_ERROR;
    }
    json_decref(answer);
out:
    free(body.data);
    free(url);
    return exit_code;
}

/* The form body, field by field (percent-encoded as curl_easy_escape does,
 * which the server decodes like the Node SDK's encodeURIComponent). */
typedef struct form_buf {
    char *text;
    size_t len;
    FILE *f;
} form_buf;

static void form_add(form_buf *b, const char *key, const char *value)
{
    if (!value)
        return;
    char *v = curl_easy_escape(NULL, value, 0);
    if (!v) {
        fprintf(stderr, "rtmctl: out of memory\n");
        exit(EXIT_USAGE);
    }
    fprintf(b->f, "%s%s=%s", ftell(b->f) ? "&" : "", key, v);
    curl_free(v);
}

static void form_add_int(form_buf *b, const char *key, bool given, int64_t v)
{
    if (!given)
        return;
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)v);
    form_add(b, key, num);
}

/* A session or token id goes into the URL path: uuid characters only. */
static int check_id(const char *id, const char *what)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64 || strspn(id, "0123456789abcdefABCDEF-") != n)
        return usage_error("bad %s '%s' (expected a uuid)", what, id);
    return 0;
}

/* session ADDR create|list|get|update|delete ...; rtcat-token ADDR
 * create SESSION_ID|list SESSION_ID|get|update|delete ID. */
static int cmd_rtcat(const ctl_opts *o, cmd_opts *c, bool tokens, int nargs, char **args)
{
    static const char session_usage[] =
        "usage: rtmctl session ADDR create [--label L] [--data D] [--live-days N] [--type p2p|rel] [--permanent]\n"
        "       rtmctl session ADDR list [--page N] [--page-size N] [--permanent|--nonpermanent]\n"
        "       rtmctl session ADDR get|delete ID\n"
        "       rtmctl session ADDR update ID [--label L] [--data D] [--live-days N] [--permanent true|false]";
    static const char token_usage[] =
        "usage: rtmctl rtcat-token ADDR create SESSION_ID [--number N] [--label L] [--data D] [--live-days N]\n"
        "                                 [--type pub|sub] [--permanent]\n"
        "       rtmctl rtcat-token ADDR list SESSION_ID [--page N] [--page-size N] [--permanent|--nonpermanent]\n"
        "       rtmctl rtcat-token ADDR get|delete ID\n"
        "       rtmctl rtcat-token ADDR update ID [--label L] [--data D] [--live-days N] [--permanent true|false]";
    const char *usage_text = tokens ? token_usage : session_usage;
    const char *cmd = tokens ? "rtcat-token" : "session";
    const uint64_t auth = GIVEN(OPT_APIKEY) | GIVEN(OPT_SECRET);
    const uint64_t fields = GIVEN(OPT_LABEL) | GIVEN(OPT_DATA) | GIVEN(OPT_LIVE_DAYS) | GIVEN(OPT_PERMANENT);
    static const char *const actions[] = {"create", "list", "get", "update", "delete"};
    enum { CREATE, LIST, GET, UPDATE, DELETE } a;
    uint64_t allowed[] = {
        [CREATE] = auth | fields | GIVEN(OPT_TYPE) | (tokens ? GIVEN(OPT_NUMBER) : 0),
        [LIST] = auth | GIVEN(OPT_PAGE) | GIVEN(OPT_PAGE_SIZE) | GIVEN(OPT_PERMANENT) | GIVEN(OPT_NONPERMANENT),
        [GET] = auth,
        [UPDATE] = auth | fields,
        [DELETE] = auth,
    };
    if (nargs < 2)
        return usage_error("%s", usage_text);
    for (a = CREATE; a <= DELETE; a++)
        if (strcmp(args[1], actions[a]) == 0)
            break;
    if (a > DELETE)
        return usage_error("unknown %s action '%s' (create, list, get, update or delete)", cmd, args[1]);
    char name[32];
    snprintf(name, sizeof name, "%s %s", cmd, actions[a]);
    int rc = check_allowed(c, name, allowed[a]);
    if (rc)
        return rc;
    /* Every action but session create and session list names an id. */
    bool has_id = tokens || a >= GET;
    if (nargs != (has_id ? 3 : 2))
        return usage_error("%s", usage_text);
    const char *id = has_id ? args[2] : NULL;
    if (id && (rc = check_id(id, tokens && a >= GET ? "token id" : "session id")))
        return rc;
    if ((c->given & GIVEN(OPT_LIVE_DAYS)) && c->live_days < 1)
        return usage_error("--live-days must be positive, not %lld", (long long)c->live_days);
    if ((c->given & GIVEN(OPT_NUMBER)) && c->number < 1)
        return usage_error("--number must be positive, not %lld", (long long)c->number);
    if ((c->given & GIVEN(OPT_PAGE)) && c->page < 1)
        return usage_error("--page must be positive, not %lld", (long long)c->page);
    if ((c->given & GIVEN(OPT_PAGE_SIZE)) && c->page_size < 1)
        return usage_error("--page-size must be positive, not %lld", (long long)c->page_size);
    if (c->type && strcmp(c->type, tokens ? "pub" : "p2p") != 0 && strcmp(c->type, tokens ? "sub" : "rel") != 0)
        return usage_error("--type must be %s, not '%s'", tokens ? "pub or sub" : "p2p or rel", c->type);
    if (a == LIST && c->permanent_value)
        return usage_error("%s", "list takes --permanent or --nonpermanent without a value");
    if (a == LIST && (c->given & GIVEN(OPT_PERMANENT)) && (c->given & GIVEN(OPT_NONPERMANENT)))
        return usage_error("%s", "--permanent and --nonpermanent exclude each other");
    if (a == UPDATE && !(c->given & fields))
        return usage_error("%s update needs at least one of --label, --data, --live-days and --permanent", cmd);

    rest_target t;
    if ((rc = rest_open(args[0], c, &t)))
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(t.base);
        fprintf(stderr, "rtmctl: cannot start libcurl\n");
        return EXIT_USAGE;
    }

    /* The path, and the form the Node SDK sends (its defaults included). */
    const char *coll = tokens ? "tokens" : "sessions";
    char path[256];
    form_buf form = {0};
    form.f = open_memstream(&form.text, &form.len);
    if (!form.f) {
        fprintf(stderr, "rtmctl: out of memory\n");
        exit(EXIT_USAGE);
    }
    const char *method = "GET";
    switch (a) {
    case CREATE:
        method = "POST";
        if (tokens) {
            snprintf(path, sizeof path, "/sessions/%s/tokens", id);
            form_add(&form, "session_id", id);
        } else {
            snprintf(path, sizeof path, "/sessions");
        }
        form_add(&form, "label", c->label);
        form_add(&form, "data", c->data);
        form_add_int(&form, "live_days", c->given & GIVEN(OPT_LIVE_DAYS), c->live_days);
        form_add(&form, "type", c->type ? c->type : tokens ? "pub" : "p2p");
        form_add(&form, "permanent", c->permanent ? c->permanent : "false");
        if (tokens)
            form_add_int(&form, "number", true, (c->given & GIVEN(OPT_NUMBER)) ? c->number : 1);
        break;
    case LIST: {
        const char *which = (c->given & GIVEN(OPT_PERMANENT))      ? "/permanent"
                            : (c->given & GIVEN(OPT_NONPERMANENT)) ? "/nonpermanent"
                                                                   : "";
        char query[80] = "", page[32] = "", size[32] = "";
        if (c->given & GIVEN(OPT_PAGE))
            snprintf(page, sizeof page, "page=%lld", (long long)c->page);
        if (c->given & GIVEN(OPT_PAGE_SIZE))
            snprintf(size, sizeof size, "page_size=%lld", (long long)c->page_size);
        if (page[0] || size[0])
            snprintf(query, sizeof query, "?%s%s%s", page, page[0] && size[0] ? "&" : "", size);
        if (tokens)
            snprintf(path, sizeof path, "/sessions/%s/tokens%s%s", id, which, query);
        else
            snprintf(path, sizeof path, "/sessions%s%s", which, query);
        break;
    }
    case GET:
    case DELETE:
        method = a == GET ? "GET" : "DELETE";
        snprintf(path, sizeof path, "/%s/%s", coll, id);
        break;
    case UPDATE:
        method = "PATCH";
        snprintf(path, sizeof path, "/%s/%s", coll, id);
        form_add(&form, tokens ? "token_id" : "session_id", id);
        form_add(&form, "label", c->label);
        form_add(&form, "permanent", c->permanent);
        form_add(&form, "data", c->data);
        form_add_int(&form, "live_days", c->given & GIVEN(OPT_LIVE_DAYS), c->live_days);
        break;
    }
    fclose(form.f);
    rc = rest_call(o, &t, method, path, form.len ? form.text : NULL);
    free(form.text);
    free(t.base);
    curl_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    ctl_opts o = {.timeout_s = 10, .bits = 128};
    cmd_opts c = {0};
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"key", required_argument, NULL, OPT_KEY},
        {"bits", required_argument, NULL, OPT_BITS},
        {"stream", no_argument, NULL, OPT_STREAM},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {"pid", required_argument, NULL, OPT_PID},
        {"secret", required_argument, NULL, OPT_SECRET},
        {"uid", required_argument, NULL, OPT_UID},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"group", required_argument, NULL, OPT_GROUP},
        {"room", required_argument, NULL, OPT_ROOM},
        {"ouid", required_argument, NULL, OPT_OUID},
        {"mtype", required_argument, NULL, OPT_MTYPE},
        {"mid", required_argument, NULL, OPT_MID},
        {"num", required_argument, NULL, OPT_NUM},
        {"desc", no_argument, NULL, OPT_DESC},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"count", required_argument, NULL, OPT_COUNT},
        {"seconds", required_argument, NULL, OPT_SECONDS},
        {"black", no_argument, NULL, OPT_BLACK},
        {"oinfo", required_argument, NULL, OPT_OINFO},
        {"pinfo", required_argument, NULL, OPT_PINFO},
        {"user", required_argument, NULL, OPT_USER},
        {"expire", required_argument, NULL, OPT_EXPIRE},
        {"apikey", required_argument, NULL, OPT_APIKEY},
        {"label", required_argument, NULL, OPT_LABEL},
        {"data", required_argument, NULL, OPT_DATA},
        {"live-days", required_argument, NULL, OPT_LIVE_DAYS},
        {"type", required_argument, NULL, OPT_TYPE},
        {"permanent", optional_argument, NULL, OPT_PERMANENT},
        {"nonpermanent", no_argument, NULL, OPT_NONPERMANENT},
        {"page", required_argument, NULL, OPT_PAGE},
        {"page-size", required_argument, NULL, OPT_PAGE_SIZE},
        {"number", required_argument, NULL, OPT_NUMBER},
        {NULL, 0, NULL, 0},
    };
    bool verbose = false;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end;
        int64_t *int_target = NULL;
        if (ch >= OPT_FIRST_CMD && ch < OPT_LAST)
            c.given |= GIVEN(ch);
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
        case OPT_PID:
            int_target = &c.pid;
            break;
        case OPT_SECRET:
            c.secret = optarg;
            break;
        case OPT_UID:
            int_target = &c.uid;
            break;
        case OPT_FROM:
            int_target = &c.from;
            break;
        case OPT_TO:
            int_target = &c.to;
            break;
        case OPT_GROUP:
            int_target = &c.gid;
            break;
        case OPT_ROOM:
            /* An integer everywhere but rtstoken, which takes a string id:
             * the commands that need an integer refuse it (pick_target). */
            c.room_text = optarg;
            c.room_not_int = parse_int64(optarg, &c.rid) != 0;
            break;
        case OPT_OUID:
            int_target = &c.ouid;
            break;
        case OPT_MTYPE:
            int_target = &c.mtype;
            break;
        case OPT_MID:
            int_target = &c.mid;
            break;
        case OPT_NUM:
            int_target = &c.num;
            break;
        case OPT_COUNT:
            int_target = &c.count;
            break;
        case OPT_DESC:
            c.desc = true;
            break;
        case OPT_BLACK:
            c.black = true;
            break;
        case OPT_TOKEN:
            c.token = optarg;
            break;
        case OPT_OINFO:
            c.oinfo = optarg;
            break;
        case OPT_PINFO:
            c.pinfo = optarg;
            break;
        case OPT_USER:
            c.user = optarg;
            break;
        case OPT_EXPIRE:
            int_target = &c.expire;
            break;
        case OPT_APIKEY:
            c.apikey = optarg;
            break;
        case OPT_LABEL:
            c.label = optarg;
            break;
        case OPT_DATA:
            c.data = optarg;
            break;
        case OPT_TYPE:
            c.type = optarg;
            break;
        case OPT_LIVE_DAYS:
            int_target = &c.live_days;
            break;
        case OPT_PAGE:
            int_target = &c.page;
            break;
        case OPT_PAGE_SIZE:
            int_target = &c.page_size;
            break;
        case OPT_NUMBER:
            int_target = &c.number;
            break;
        case OPT_NONPERMANENT:
            break;
        case OPT_PERMANENT: {
            /* --permanent, --permanent=VALUE, or --permanent true|false (the
             * next word, taken when it is one of these two: ids are uuids). */
            const char *v = optarg;
            if (!v && optind < argc && (strcmp(argv[optind], "true") == 0 || strcmp(argv[optind], "false") == 0))
                v = argv[optind++];
            c.permanent_value = v != NULL;
            if (!v || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
                c.permanent = "true";
            else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
                c.permanent = "false";
            else
                return usage_error("--permanent takes true or false, not '%s'", v);
            break;
        }
        case OPT_SECONDS:
            c.seconds = strtod(optarg, &end);
            if (*end != '\0' || end == optarg || !isfinite(c.seconds) || c.seconds <= 0)
                return usage_error("--seconds needs a positive number, not '%s'", optarg);
            break;
        default:
            if (optopt >= OPT_TIMEOUT && optopt < OPT_LAST)
                return usage_error("%s needs a value", argv[optind - 1]);
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
        /* Named from the table: with "--opt VALUE" argv[optind - 1] is the value. */
        if (int_target && parse_int64(optarg, int_target) != 0)
            return usage_error("%s needs an integer, not '%s'", cmd_opt_names[ch - OPT_FIRST_CMD], optarg);
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
    if (strcmp(cmd, "token") == 0)
        return cmd_token(&o, &c, nargs, args);
    if (strcmp(cmd, "send") == 0)
        return cmd_send(&o, &c, nargs, args);
    if (strcmp(cmd, "listen") == 0)
        return cmd_listen(&o, &c, nargs, args);
    if (strcmp(cmd, "history") == 0)
        return cmd_history(&o, &c, nargs, args);
    if (strcmp(cmd, "friends") == 0)
        return cmd_friends(&o, &c, nargs, args);
    if (strcmp(cmd, "info") == 0)
        return cmd_info(&o, &c, nargs, args);
    if (strcmp(cmd, "data") == 0)
        return cmd_data(&o, &c, nargs, args);
    if (strcmp(cmd, "rtstoken") == 0)
        return cmd_rtstoken(&o, &c, nargs, args);
    if (strcmp(cmd, "session") == 0)
        return cmd_rtcat(&o, &c, false, nargs, args);
    if (strcmp(cmd, "rtcat-token") == 0)
        return cmd_rtcat(&o, &c, true, nargs, args);
    if (c.given)
        return usage_error("'%s' takes none of the session options (--pid, --uid, ...)", cmd);
    if (strcmp(cmd, "ping") == 0) {
        if (nargs != 1)
            return usage_error("%s", "usage: rtmctl ping HOST:PORT");
        return cmd_ping(&o, args[0]);
    }
    if (strcmp(cmd, "backup") == 0) {
        if (nargs != 2)
            return usage_error("%s", "usage: rtmctl backup DATA_DIR FILE");
        return rtmctl_backup(args[0], args[1]);
    }
    if (strcmp(cmd, "call") == 0) {
        if (nargs != 3)
            return usage_error("%s", "usage: rtmctl call HOST:PORT METHOD JSON");
        return cmd_call(&o, args[0], args[1], args[2]);
    }
    return usage_error("unknown command '%s'", cmd);
}
