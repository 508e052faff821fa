/* rtmd entry point: command line (--config FILE, --KEY=VALUE overrides of
 * any configuration setting, --version, --help), then the server's life. */
#include "config.h"
#include "lathist.h"
#include "log.h"
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rtmd [--config FILE] [--SETTING=VALUE ...]\n"
            "       rtmd --version | --help\n"
            "\n"
            "rtmd is a self-hosted real-time messaging server speaking the FPNN RTM\n"
            "protocol: client gate over TCP and WebSocket, server gate for app\n"
            "servers, and HTTP for health and metrics.\n"
            "\n"
            "Every setting of the configuration file (see etc/rtmd.conf.example) can\n"
            "be given on the command line and wins over the file, for example:\n"
            "  --data_dir=DIR          where the SQLite store lives (./data)\n"
            "  --listen_host=ADDR      address of every listener (0.0.0.0)\n"
            "  --client_tcp_port=N     client gate, FPNN over TCP (13325)\n"
            "  --client_ws_port=N      client gate, FPNN over WebSocket (13321)\n"
            "  --server_tcp_port=N     server gate for app servers (13315)\n"
            "  --http_port=N           health, metrics (8080)\n"
            "  --key_pem=FILE          secp256k1 private key enabling encrypted links\n"
            "  --tls_cert=FILE         PEM certificate chain enabling wss and https\n"
            "  --tls_key=FILE          its PEM private key\n"
            "  --client_wss_port=N     client gate, FPNN over WebSocket over TLS (13322)\n"
            "  --https_port=N          health, metrics over TLS (8443)\n"
            "  --log_level=LEVEL       debug, info, warn, error or off (info)\n"
            "A port of 0 picks a free port; -1 disables the listener.\n"
            "\n"
            "When ready, rtmd prints one 'listen GATE HOST:PORT' line per listener,\n"
            "one 'project pid=..' line per project, one 'rts pid=.. app_id=..' line per\n"
            "project with RTS tokens, one 'rtcat pid=.. apikey=..' line per project with\n"
            "the RealTimeCat API (with the secret and keys of the store's demo project\n"
            "only: configured ones are in the file), then 'rtmd VERSION ready'.\n"
            "SIGTERM or SIGINT stop it gracefully; a second signal exits at once.\n"
            "SIGHUP reads the configuration again and applies what can change while\n"
            "running (logged; the rest waits for a restart), then the TLS certificate and\n"
            "the sensitive-word lists; SIGUSR1 reopens log_file.\n");
}

/* Splits "--key=value" or "--key value"; returns the number of argv entries used. */
static int split_option(int argc, char **argv, int i, char *key, size_t keycap, const char **value)
{
    const char *arg = argv[i] + 2;
    const char *eq = strchr(arg, '=');
    if (eq) {
        snprintf(key, keycap, "%.*s", (int)(eq - arg), arg);
        *value = eq + 1;
        return 1;
    }
    snprintf(key, keycap, "%s", arg);
    if (i + 1 >= argc)
        return -1;
    *value = argv[i + 1];
    return 2;
}

/* The command line, kept for SIGHUP: the configuration is read again the
 * same way (defaults, the file, then the command-line settings). */
typedef struct command_line {
    int argc;
    char **argv;
} command_line;

/* Builds the configuration from the command line into cfg. Returns 0, or
 * the exit status (2) with the message in err. */
static int load_configuration(const command_line *cl, rtmd_config *cfg, char *err, size_t errlen)
{
    int argc = cl->argc;
    char **argv = cl->argv;
    rtmd_config_defaults(cfg);
    /* The configuration file first, so that command-line settings win. */
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0)
            path = i + 1 < argc ? argv[i + 1] : NULL;
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
        else
            continue;
        if (!path) {
            snprintf(err, errlen, "--config needs a file");
            return 2;
        }
        if (rtmd_config_load_file(cfg, path, err, errlen) != 0)
            return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--config=", 9) == 0)
            continue;
        if (strncmp(argv[i], "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[i]);
            return 2;
        }
        char key[128];
        const char *value = NULL;
        int used = split_option(argc, argv, i, key, sizeof key, &value);
        if (used < 0) {
            snprintf(err, errlen, "%s needs a value (see --help)", argv[i]);
            return 2;
        }
        if (rtmd_config_set(cfg, key, value, err, errlen) != 0)
            return 2;
        i += used - 1;
    }
    if (rtmd_config_check(cfg, "command line", err, errlen) != 0)
        return 2;
    return 0;
}

static int reload_configuration(void *arg, rtmd_config *cfg, char *err, size_t errlen)
{
    return load_configuration(arg, cfg, err, errlen) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static rtmd_config cfg;
    char err[512];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-v") == 0) {
            printf("rtmd %s\n", RTMD_VERSION);
            return 0;
        }
    }
    static command_line cl;
    cl.argc = argc;
    cl.argv = argv;
    int status = load_configuration(&cl, &cfg, err, sizeof err);
    if (status != 0) {
        fprintf(stderr, "rtmd: %s\n", err);
        return status;
    }
    rtm_log_set_level((enum rtm_log_level)cfg.log_level);
    rtm_log_set_format((enum rtm_log_format)cfg.log_format);
    if (rtm_log_open(cfg.log_file) != 0) {
        fprintf(stderr, "rtmd: log_file %s: %s\n", cfg.log_file, strerror(errno));
        return 1;
    }

    static rtmd_server srv;
    uv_loop_t *loop = uv_default_loop();
    if (rtmd_server_init(&srv, loop, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "rtmd: %s\n", err);
        return 1;
    }
    rtmd_server_reload_from(&srv, reload_configuration, &cl);
    rtmd_server_print_ready(&srv);
    LOG_INFO("rtmd %s serving", RTMD_VERSION);
    int code = rtmd_server_run(&srv);
    if (getenv("RTMD_LATHIST"))
        lat_dump(stderr);
    rtmd_server_free(&srv);
    uv_loop_close(loop);
    return code;
}
