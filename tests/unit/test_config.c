/* Unit tests of the rtmd configuration (src/rtmd/config.c): defaults, the
 * example file, the file format, every kind of error with its line number,
 * projects, command-line overrides and the cross-field rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

/* etc/rtmd.conf.example, found from TEST_DATA_DIR (<root>/tests/data) by
 * trimming the string, so that tests/data need not exist. */
static const char *example_file(void)
{
    static char path[1024];
    const char *dir = TEST_DATA_DIR;
    const char *suffix = "/tests/data";
    size_t n = strlen(dir), m = strlen(suffix);
    assert_true(n >= m && strcmp(dir + n - m, suffix) == 0);
    snprintf(path, sizeof path, "%.*s/etc/rtmd.conf.example", (int)(n - m), dir);
    return path;
}

static int parse(rtmd_config *cfg, const char *text, char *err, size_t errlen)
{
    return rtmd_config_parse(cfg, text, strlen(text), "rtmd.conf", err, errlen);
}

/* Parses text into a defaulted config and expects exactly the message. */
static void expect_error(const char *text, const char *message)
{
    rtmd_config cfg, before;
    char err[512] = "";
    rtmd_config_defaults(&cfg);
    before = cfg;
    int rc = parse(&cfg, text, err, sizeof err);
    if (rc != -1 || strcmp(err, message) != 0)
        print_error("text:\n%s\nexpected: %s\n     got: %s (rc %d)\n", text, message, err, rc);
    assert_int_equal(rc, -1);
    assert_string_equal(err, message);
    /* A failed parse leaves the configuration as it was. */
    assert_memory_equal(&cfg, &before, sizeof cfg);
}

static void expect_ok(rtmd_config *cfg, const char *text)
{
    char err[512] = "";
    rtmd_config_defaults(cfg);
    int rc = parse(cfg, text, err, sizeof err);
    if (rc != 0)
        print_error("text:\n%s\nunexpected error: %s\n", text, err);
    assert_int_equal(rc, 0);
}

static void test_defaults(void **state)
{
    rtmd_config cfg;
    memset(&cfg, 0x5A, sizeof cfg);
    rtmd_config_defaults(&cfg);
    assert_string_equal(cfg.data_dir, "./data");
    assert_string_equal(cfg.store, "sqlite");
    assert_string_equal(cfg.store_url, "");
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.client_tcp_port, 13325);
    assert_int_equal(cfg.client_ws_port, 13321);
    assert_string_equal(cfg.ws_path, "/service/websocket");
    assert_int_equal(cfg.server_tcp_port, 13315);
    assert_int_equal(cfg.http_port, 8080);
    assert_string_equal(cfg.key_pem, "");
    assert_string_equal(cfg.tls_cert, "");
    assert_string_equal(cfg.tls_key, "");
    assert_int_equal(cfg.client_wss_port, 13322);
    assert_int_equal(cfg.https_port, 8443);
    assert_int_equal(cfg.max_packet, 2097152);
    assert_int_equal(cfg.max_connections, 100000);
    assert_int_equal(cfg.max_client_tcp_connections, 0);
    assert_int_equal(cfg.max_client_ws_connections, 0);
    assert_int_equal(cfg.max_server_connections, 1000);
    assert_int_equal(cfg.max_http_connections, 256);
    assert_int_equal(cfg.max_connections_per_address, 1000);
    assert_int_equal(cfg.login_timeout, 10);
    assert_int_equal(cfg.prelogin_max_packet, 65536);
    assert_int_equal(cfg.prelogin_buffer_budget, 67108864);
    assert_int_equal(cfg.max_output_queue, 4194304);
    assert_int_equal(cfg.idle_timeout, 120);
    assert_int_equal(cfg.handshake_timeout, 10);
    assert_int_equal(cfg.ping_interval, 20);
    assert_int_equal(cfg.store_batch_max, 512);
    assert_int_equal(cfg.sign_window, 300);
    assert_int_equal(cfg.sign_salts_max, 1048576);
    assert_int_equal(cfg.sign_fail_max, 5);
    assert_int_equal(cfg.log_level, RTM_LOG_INFO);
    assert_int_equal(cfg.nprojects, 0);
    char err[256];
    assert_int_equal(rtmd_config_check(&cfg, "defaults", err, sizeof err), 0);

    /* An empty text, blank lines and comments change nothing. */
    rtmd_config parsed;
    expect_ok(&parsed, "");
    assert_memory_equal(&parsed, &cfg, sizeof cfg);
    expect_ok(&parsed, "\n\n   \t\n# comment\n   # indented comment\n");
    assert_memory_equal(&parsed, &cfg, sizeof cfg);
}

/* The documented example sets every setting to its default and adds one
 * project. */
static void test_example_file(void **state)
{
    rtmd_config cfg, defaults;
    char err[512] = "";
    rtmd_config_defaults(&cfg);
    rtmd_config_defaults(&defaults);
    int rc = rtmd_config_load_file(&cfg, example_file(), err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(cfg.nprojects, 1);
    assert_int_equal(cfg.projects[0].pid, 1000001);
    assert_string_equal(cfg.projects[0].secret, "change-me-please#1");
    assert_int_equal(cfg.projects[0].max_connections, 0);
    assert_int_equal(cfg.projects[0].token_ttl_seconds, 86400);
    cfg.nprojects = 0;
    memset(cfg.projects, 0, sizeof cfg.projects);
    assert_memory_equal(&cfg, &defaults, sizeof cfg);
}

static void test_full_file(void **state)
{
    rtmd_config cfg;
    expect_ok(&cfg, "# every setting changed\n"
                    "data_dir = /var/lib/rtmd\n"
                    "listen_host = ::1\n"
                    "client_tcp_port = 0\n"
                    "client_ws_port = -1\n"
                    "ws_path = /ws\n"
                    "server_tcp_port = 23315\n"
                    "http_port = 65535\n"
                    "key_pem = /etc/rtmd/key.pem\n"
                    "tls_cert = /etc/rtmd/chain.pem\n"
                    "tls_key = /etc/rtmd/tls.key\n"
                    "client_wss_port = 443\n"
                    "https_port = -1\n"
                    "max_packet = 1024\n"
                    "max_connections = 5\n"
                    "max_client_tcp_connections = 4\n"
                    "max_client_ws_connections = 3\n"
                    "max_server_connections = 2\n"
                    "max_http_connections = 1\n"
                    "max_connections_per_address = 0\n"
                    "login_timeout = 3600\n"
                    "prelogin_max_packet = 4096\n"
                    "prelogin_buffer_budget = 1073741824\n"
                    "max_output_queue = 67108864\n"
                    "idle_timeout = 3\n"
                    "handshake_timeout = 2\n"
                    "ping_interval = 1\n"
                    "store_batch_max = 7\n"
                    "sign_window = 30\n"
                    "sign_salts_max = 16\n"
                    "sign_fail_max = 0\n"
                    "log_level = debug\n"
                    "\n"
                    "[project]\n"
                    "pid = 2147483647\n"
                    "secret = s3cr3t!!\n"
                    "max_connections = 10\n"
                    "token_ttl = 1\n"
                    "legacy_sign = 1\n");
    assert_string_equal(cfg.data_dir, "/var/lib/rtmd");
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.client_tcp_port, 0);
    assert_int_equal(cfg.client_ws_port, -1);
    assert_string_equal(cfg.ws_path, "/ws");
    assert_int_equal(cfg.server_tcp_port, 23315);
    assert_int_equal(cfg.http_port, 65535);
    assert_string_equal(cfg.key_pem, "/etc/rtmd/key.pem");
    assert_string_equal(cfg.tls_cert, "/etc/rtmd/chain.pem");
    assert_string_equal(cfg.tls_key, "/etc/rtmd/tls.key");
    assert_int_equal(cfg.client_wss_port, 443);
    assert_int_equal(cfg.https_port, -1);
    assert_int_equal(cfg.max_packet, 1024);
    assert_int_equal(cfg.max_connections, 5);
    assert_int_equal(cfg.max_client_tcp_connections, 4);
    assert_int_equal(cfg.max_client_ws_connections, 3);
    assert_int_equal(cfg.max_server_connections, 2);
    assert_int_equal(cfg.max_http_connections, 1);
    assert_int_equal(cfg.max_connections_per_address, 0);
    assert_int_equal(cfg.login_timeout, 3600);
    assert_int_equal(cfg.prelogin_max_packet, 4096);
    assert_int_equal(cfg.prelogin_buffer_budget, 1073741824);
    assert_int_equal(cfg.max_output_queue, 67108864);
    assert_int_equal(cfg.idle_timeout, 3);
    assert_int_equal(cfg.handshake_timeout, 2);
    assert_int_equal(cfg.ping_interval, 1);
    assert_int_equal(cfg.store_batch_max, 7);
    assert_int_equal(cfg.sign_window, 30);
    assert_int_equal(cfg.sign_salts_max, 16);
    assert_int_equal(cfg.sign_fail_max, 0);
    assert_int_equal(cfg.log_level, RTM_LOG_DEBUG);
    assert_int_equal(cfg.nprojects, 1);
    assert_true(cfg.projects[0].pid == INT32_MAX);
    assert_string_equal(cfg.projects[0].secret, "s3cr3t!!");
    assert_int_equal(cfg.projects[0].max_connections, 10);
    assert_int_equal(cfg.projects[0].token_ttl_seconds, 1);
    assert_int_equal(cfg.projects[0].legacy_sign, 1);

    /* Whitespace around '=' is optional; tabs count as whitespace. */
    expect_ok(&cfg, "http_port=81\n\tlog_level\t=\toff\t\n  max_packet   =   4096   # bytes\n");
    assert_int_equal(cfg.http_port, 81);
    assert_int_equal(cfg.log_level, RTM_LOG_OFF);
    assert_int_equal(cfg.max_packet, 4096);

    /* The other log levels; no final newline. */
    expect_ok(&cfg, "log_level = warn");
    assert_int_equal(cfg.log_level, RTM_LOG_WARN);
    expect_ok(&cfg, "log_level = error\n");
    assert_int_equal(cfg.log_level, RTM_LOG_ERROR);
    expect_ok(&cfg, "log_level = info\n");
    assert_int_equal(cfg.log_level, RTM_LOG_INFO);
}

static void test_quoted_values(void **state)
{
    rtmd_config cfg;
    expect_ok(&cfg, "data_dir = \"/srv/my data # not a comment\"   # a comment\n"
                    "key_pem = \"\"\n"
                    "listen_host = \"127.0.0.1\"\n"
                    "http_port = \"8081\"\n"
                    "[project]\n"
                    "pid = 1\n"
                    "secret = \"a\\\"b\\\\c#d-e\"\n");
    assert_string_equal(cfg.data_dir, "/srv/my data # not a comment");
    assert_string_equal(cfg.key_pem, "");
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.http_port, 8081);
    assert_int_equal(cfg.nprojects, 1);
    assert_string_equal(cfg.projects[0].secret, "a\"b\\c#d-e");
}

static void test_crlf(void **state)
{
    rtmd_config cfg;
    expect_ok(&cfg, "# windows\r\n"
                    "\r\n"
                    "http_port = 8090\r\n"
                    "data_dir = \"/x y\"\r\n"
                    "[project]\r\n"
                    "pid = 7\r\n"
                    "secret = abcdefgh\r\n");
    assert_int_equal(cfg.http_port, 8090);
    assert_string_equal(cfg.data_dir, "/x y");
    assert_int_equal(cfg.nprojects, 1);
    assert_int_equal(cfg.projects[0].pid, 7);
    assert_string_equal(cfg.projects[0].secret, "abcdefgh");

    /* A byte order mark at the very start is skipped. */
    expect_ok(&cfg, "\xEF\xBB\xBFhttp_port = 8091\n");
    assert_int_equal(cfg.http_port, 8091);

    /* Line numbers count CRLF lines; a lone CR is refused. */
    expect_error("\r\n\r\nfoo = 1\r\n", "rtmd.conf:3: unknown setting 'foo'");
    expect_error("http_port = 1\rhttp_port = 2\n", "rtmd.conf:1: control character 0x0D is not allowed");
}

static void test_syntax_errors(void **state)
{
    expect_error("# x\n\n\nfoo = 1\n", "rtmd.conf:4: unknown setting 'foo'");
    expect_error("http_port\n", "rtmd.conf:1: expected '=' after 'http_port' (lines are 'key = value')");
    expect_error("\n= 5\n", "rtmd.conf:2: missing setting name before '='");
    expect_error("http_port 80\n", "rtmd.conf:1: expected '=' after 'http_port' (lines are 'key = value')");
    expect_error("data_dir = /a b\n", "rtmd.conf:1: data_dir: a value containing spaces must be double-quoted");
    expect_error("data_dir = /a#b\n", "rtmd.conf:1: data_dir: a value containing '#' must be double-quoted");
    expect_error("data_dir =#b\n", "rtmd.conf:1: data_dir: a value containing '#' must be double-quoted");
    expect_error("data_dir = a\"b\n", "rtmd.conf:1: data_dir: stray '\"' (double-quote the whole value)");
    expect_error("\ndata_dir = \"/a b\n", "rtmd.conf:2: data_dir: missing closing '\"'");
    expect_error("data_dir = \"/a\" b\n", "rtmd.conf:1: data_dir: unexpected text after the closing '\"'");
    expect_error("data_dir = \"/a\\n\"\n",
                 "rtmd.conf:1: data_dir: inside quotes '\\' may only be followed by '\"' or '\\'");
    expect_error("[projects]\n", "rtmd.conf:1: unknown section (the only section is [project])");
    expect_error("[project\n", "rtmd.conf:1: unknown section (the only section is [project])");
    expect_error("[project] pid = 1\n", "rtmd.conf:1: unexpected text after [project]");
    expect_error("http_port = 1\nhttp_port = 2\n", "rtmd.conf:2: http_port is set twice (first on line 1)");
    expect_error("HTTP_PORT = 1\n", "rtmd.conf:1: unknown setting 'HTTP_PORT'");
    expect_error("pid = 5\n", "rtmd.conf:1: 'pid' belongs in a [project] section");
    expect_error("data_dir = \"\"\n", "rtmd.conf:1: data_dir: must not be empty");
    expect_error("listen_host = localhost\n",
                 "rtmd.conf:1: listen_host: 'localhost' is not a numeric IPv4 or IPv6 address");
    expect_error("ws_path = ws\n", "rtmd.conf:1: ws_path: 'ws' must start with '/'");
    expect_error("ws_path = \"/a b\"\n",
                 "rtmd.conf:1: ws_path: '/a b' may contain only printable ASCII without spaces, '?' or '#'");
    expect_error("log_level = loud\n",
                 "rtmd.conf:1: log_level: 'loud' is not a log level (debug, info, warn, error or off)");
    expect_error("log_level = INFO\n",
                 "rtmd.conf:1: log_level: 'INFO' is not a log level (debug, info, warn, error or off)");

    /* Text checks: NUL, control characters, invalid UTF-8. */
    rtmd_config cfg;
    char err[256];
    rtmd_config_defaults(&cfg);
    assert_int_equal(rtmd_config_parse(&cfg, "http_port = 1\n\0\n", 16, "rtmd.conf", err, sizeof err), -1);
    assert_string_equal(err, "rtmd.conf:2: control character 0x00 is not allowed");
    expect_error("\n\ndata_dir = \"\x1b[31m\"\n", "rtmd.conf:3: control character 0x1B is not allowed");
    expect_error("data_dir = /\xff\n", "rtmd.conf:1: invalid UTF-8");
    expect_error("data_dir = /\xc0\xaf\n", "rtmd.conf:1: invalid UTF-8");       /* overlong */
    expect_error("data_dir = /\xed\xa0\x80\n", "rtmd.conf:1: invalid UTF-8");   /* surrogate */
    expect_error("data_dir = /\xe2\x82\n", "rtmd.conf:1: invalid UTF-8");       /* truncated */
    expect_ok(&cfg, "data_dir = \"/srv/d\xc3\xa9p\xc3\xb4t \xe2\x82\xac \xf0\x9f\x98\x80\"\n");
    assert_string_equal(cfg.data_dir, "/srv/d\xc3\xa9p\xc3\xb4t \xe2\x82\xac \xf0\x9f\x98\x80");

    /* Values that do not fit their field. */
    char text[2048];
    snprintf(text, sizeof text, "listen_host = %0100d\n", 0);
    expect_error(text, "rtmd.conf:1: listen_host: value is too long (at most 63 bytes)");
    memset(text, 'a', sizeof text);
    memcpy(text, "data_dir = /", 12);
    memcpy(text + 2040, "\n", 2);
    expect_error(text, "rtmd.conf:1: data_dir: value is too long");

    /* Messages quote at most a short prefix of a long unknown name. */
    memset(text, 'k', 200);
    memcpy(text + 200, " = 1\n", 6);
    expect_error(text, "rtmd.conf:1: unknown setting 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...'");
}

static void test_number_errors(void **state)
{
    expect_error("\n\nclient_tcp_port = 70000\n",
                 "rtmd.conf:3: client_tcp_port: '70000' is not a port (0..65535, or -1 to disable)");
    expect_error("http_port = -2\n", "rtmd.conf:1: http_port: '-2' is not a port (0..65535, or -1 to disable)");
    expect_error("http_port = 80x\n", "rtmd.conf:1: http_port: '80x' is not a port (0..65535, or -1 to disable)");
    expect_error("http_port = \n", "rtmd.conf:1: http_port: '' is not a port (0..65535, or -1 to disable)");
    expect_error("http_port = # nothing\n",
                 "rtmd.conf:1: http_port: '' is not a port (0..65535, or -1 to disable)");
    expect_error("http_port = +80\n", "rtmd.conf:1: http_port: '+80' is not a port (0..65535, or -1 to disable)");
    expect_error("http_port = 0x50\n",
                 "rtmd.conf:1: http_port: '0x50' is not a port (0..65535, or -1 to disable)");
    expect_error("http_port = 18446744073709551616\n",
                 "rtmd.conf:1: http_port: '18446744073709551616' is not a port (0..65535, or -1 to disable)");

    /* Trailing garbage, signs and non-digits. */
    expect_error("max_packet = 2M\n", "rtmd.conf:1: max_packet: '2M' is not a whole number");
    expect_error("max_packet = 4096.0\n", "rtmd.conf:1: max_packet: '4096.0' is not a whole number");
    expect_error("max_packet = \" 4096\"\n", "rtmd.conf:1: max_packet: ' 4096' is not a whole number");
    expect_error("idle_timeout = -\n", "rtmd.conf:1: idle_timeout: '-' is not a whole number");
    expect_error("idle_timeout = 1e3\n", "rtmd.conf:1: idle_timeout: '1e3' is not a whole number");

    /* Range and overflow. */
    expect_error("max_packet = 1023\n", "rtmd.conf:1: max_packet: '1023' is out of range (1024..67108864)");
    expect_error("max_packet = 67108865\n",
                 "rtmd.conf:1: max_packet: '67108865' is out of range (1024..67108864)");
    expect_error("max_packet = 4294967296\n",
                 "rtmd.conf:1: max_packet: '4294967296' is out of range (1024..67108864)");
    expect_error("max_packet = 99999999999999999999999\n",
                 "rtmd.conf:1: max_packet: '99999999999999999999999' is out of range (1024..67108864)");
    expect_error("max_packet = -4096\n", "rtmd.conf:1: max_packet: '-4096' is out of range (1024..67108864)");
    expect_error("max_connections = 0\n",
                 "rtmd.conf:1: max_connections: '0' is out of range (1..16777216)");
    expect_error("handshake_timeout = 0\n",
                 "rtmd.conf:1: handshake_timeout: '0' is out of range (1..3600)");
    expect_error("max_server_connections = 0\n",
                 "rtmd.conf:1: max_server_connections: '0' is out of range (1..16777216)");
    expect_error("max_http_connections = 0\n",
                 "rtmd.conf:1: max_http_connections: '0' is out of range (1..16777216)");
    expect_error("max_connections_per_address = -1\n",
                 "rtmd.conf:1: max_connections_per_address: '-1' is out of range (0..16777216)");
    expect_error("login_timeout = 0\n", "rtmd.conf:1: login_timeout: '0' is out of range (1..3600)");
    expect_error("prelogin_max_packet = 4095\n",
                 "rtmd.conf:1: prelogin_max_packet: '4095' is out of range (4096..67108864)");
    expect_error("prelogin_buffer_budget = 65535\n",
                 "rtmd.conf:1: prelogin_buffer_budget: '65535' is out of range (65536..1073741824)");
    expect_error("store_batch_max = 65537\n",
                 "rtmd.conf:1: store_batch_max: '65537' is out of range (1..65536)");
    expect_error("max_output_queue = 1000\n",
                 "rtmd.conf:1: max_output_queue: '1000' is out of range (1024..1073741824)");
    expect_error("ping_interval = 60\nidle_timeout = 600\n",
                 "rtmd.conf:1: ping_interval: '60' is out of range (1..59)");

    /* Leading zeros are plain decimal. */
    rtmd_config cfg;
    expect_ok(&cfg, "max_packet = 0004096\nhttp_port = -1\n");
    assert_int_equal(cfg.max_packet, 4096);
    assert_int_equal(cfg.http_port, -1);
}

static void test_cross_field(void **state)
{
    expect_error("idle_timeout = 20\n",
                 "rtmd.conf:1: ping_interval (20) must be less than idle_timeout (20)");
    expect_error("idle_timeout = 30\n\nping_interval = 45\n",
                 "rtmd.conf:3: ping_interval (45) must be less than idle_timeout (30)");
    expect_error("ping_interval = 5\nidle_timeout = 5\n",
                 "rtmd.conf:2: ping_interval (5) must be less than idle_timeout (5)");
    expect_error("client_tcp_port = 9000\n# x\nhttp_port = 9000\n",
                 "rtmd.conf:3: client_tcp_port and http_port both use port 9000");
    expect_error("http_port = 13325\n", "rtmd.conf:1: client_tcp_port and http_port both use port 13325");

    /* Free (0) and disabled (-1) listeners may repeat. */
    rtmd_config cfg;
    expect_ok(&cfg, "client_tcp_port = 0\nclient_ws_port = 0\nserver_tcp_port = -1\nhttp_port = -1\n");
    expect_ok(&cfg, "idle_timeout = 21\n");

    /* TLS: certificate and key together; its ports count only with them. */
    expect_error("tls_cert = /c.pem\n", "rtmd.conf:1: tls_cert and tls_key go together: tls_cert is set, tls_key is not");
    expect_error("\ntls_key = /k.pem\n", "rtmd.conf:2: tls_cert and tls_key go together: tls_key is set, tls_cert is not");
    expect_ok(&cfg, "https_port = 8080\n");
    expect_error("tls_cert = /c.pem\ntls_key = /k.pem\nhttps_port = 8080\n",
                 "rtmd.conf:3: http_port and https_port both use port 8080");

    /* The store: sqlite (default, no URL) or postgres with a URL. */
    expect_error("store = mysql\n", "rtmd.conf:1: store: must be sqlite or postgres");
    expect_error("\nstore = postgres\n", "rtmd.conf:2: store = postgres needs store_url (a libpq connection string)");
    expect_error("store_url = postgresql://x@h/db\n",
                 "rtmd.conf:1: store_url is for store = postgres; the SQLite store lives in data_dir");
    expect_ok(&cfg, "store = postgres\nstore_url = \"host=/run/postgresql dbname=rtmd\"\n");
    assert_string_equal(cfg.store, "postgres");
    assert_string_equal(cfg.store_url, "host=/run/postgresql dbname=rtmd");

    /* When room messages are pushed: before the commit (default) or after. */
    expect_ok(&cfg, "\n");
    assert_string_equal(cfg.room_push, "before_commit");
    expect_ok(&cfg, "room_push = after_commit\n");
    assert_string_equal(cfg.room_push, "after_commit");
    expect_ok(&cfg, "room_push = before_commit\n");
    assert_string_equal(cfg.room_push, "before_commit");
    expect_error("\nroom_push = early\n", "rtmd.conf:2: room_push: must be before_commit or after_commit");
    expect_error("room_push = \"\"\n", "rtmd.conf:1: room_push: must not be empty");
    expect_error("room_push = before_commit_or_so\n", "rtmd.conf:1: room_push: value is too long (at most 15 bytes)");

    /* The cluster: redis_url needs the shared store; node_id needs redis_url. */
    assert_string_equal(cfg.redis_url, "");
    expect_error("redis_url = redis://127.0.0.1:6379\n",
                 "rtmd.conf:1: redis_url (a cluster) needs store = postgres: the nodes share one store");
    expect_error("redis_url = http://h\n", "rtmd.conf:1: redis_url: 'http://h' is not redis://host[:port][/db]");
    expect_error("redis_url = redis://h:0\n", "rtmd.conf:1: redis_url: 'redis://h:0' is not redis://host[:port][/db]");
    expect_error("redis_url = redis://h:65536\n",
                 "rtmd.conf:1: redis_url: 'redis://h:65536' is not redis://host[:port][/db]");
    expect_error("redis_url = redis://h/x\n", "rtmd.conf:1: redis_url: 'redis://h/x' is not redis://host[:port][/db]");
    expect_error("redis_url = \"redis://h g\"\n",
                 "rtmd.conf:1: redis_url: 'redis://h g' is not redis://host[:port][/db]");
    expect_error("store = postgres\nstore_url = x\nnode_id = 3\n", "rtmd.conf:3: node_id is for a cluster: set redis_url too");
    expect_error("node_id = 0\n", "rtmd.conf:1: node_id: '0' must be 1..65535 or a name of at most 32 letters, digits, '_' or '-'");
    expect_error("node_id = 65536\n",
                 "rtmd.conf:1: node_id: '65536' must be 1..65535 or a name of at most 32 letters, digits, '_' or '-'");
    expect_error("node_id = a:b\n", "rtmd.conf:1: node_id: 'a:b' must be 1..65535 or a name of at most 32 letters, digits, '_' or '-'");
    expect_ok(&cfg, "store = postgres\nstore_url = x\nredis_url = redis://[::1]:7000/2\nnode_id = eu-1\n");
    assert_string_equal(cfg.redis_url, "redis://[::1]:7000/2");
    assert_string_equal(cfg.node_id, "eu-1");
    expect_ok(&cfg, "store = postgres\nstore_url = x\nredis_url = redis://cache.example\nnode_id = 65535\n");
    char host[64];
    int port, db;
    assert_int_equal(rtmd_redis_url_parse("redis://[::1]:7000/2", host, sizeof host, &port, &db), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7000);
    assert_int_equal(db, 2);
    assert_int_equal(rtmd_redis_url_parse("redis://cache.example", host, sizeof host, &port, &db), 0);
    assert_string_equal(host, "cache.example");
    assert_int_equal(port, 6379);
    assert_int_equal(db, 0);

    /* rtmd_config_check on a configuration built in code. */
    char err[256];
    rtmd_config_defaults(&cfg);
    cfg.idle_timeout = 10;
    assert_int_equal(rtmd_config_check(&cfg, "command line", err, sizeof err), -1);
    assert_string_equal(err, "command line: ping_interval (20) must be less than idle_timeout (10)");
    rtmd_config_defaults(&cfg);
    cfg.idle_timeout = 600;
    cfg.ping_interval = 60;
    assert_int_equal(rtmd_config_check(&cfg, "command line", err, sizeof err), -1);
    assert_string_equal(err, "command line: ping_interval (60) must be less than 60");
}

/* Per-project limits: their defaults, a section that sets them, their
 * ranges. */
static void test_project_limits(void **state)
{
    (void)state;
    rtmd_config cfg;
    expect_ok(&cfg, "[project]\npid = 1\nsecret = abcdefgh\n");
    assert_int_equal(cfg.projects[0].max_attrs_bytes, 2048);
    assert_int_equal(cfg.projects[0].max_session_attrs, 32);
    assert_int_equal(cfg.projects[0].max_session_attrs_bytes, 16384);
    expect_ok(&cfg, "[project]\npid = 1\nsecret = abcdefgh\n"
                    "max_session_attrs = 1024\nmax_session_attrs_bytes = 1\n");
    assert_int_equal(cfg.projects[0].max_session_attrs, 1024);
    assert_int_equal(cfg.projects[0].max_session_attrs_bytes, 1);
    assert_int_equal(cfg.projects[0].user_msg_rate, 100);
    assert_int_equal(cfg.projects[0].user_msg_burst, 200);
    assert_int_equal(cfg.projects[0].user_byte_rate, 1048576);
    assert_int_equal(cfg.projects[0].user_byte_burst, 4194304);
    assert_int_equal(cfg.projects[0].project_msg_rate, 10000);
    assert_int_equal(cfg.projects[0].project_msg_burst, 20000);
    assert_int_equal(cfg.projects[0].project_byte_rate, 33554432);
    assert_int_equal(cfg.projects[0].project_byte_burst, 134217728);
    assert_int_equal(cfg.projects[0].storage_quota_mb, 10240);
    expect_ok(&cfg, "[project]\npid = 1\nsecret = abcdefgh\n"
                    "user_byte_rate = 0\nuser_byte_burst = 5\nproject_msg_rate = 0\nproject_msg_burst = 6\n"
                    "project_byte_rate = 4000000000\nproject_byte_burst = 7\nstorage_quota_mb = 0\n");
    assert_int_equal(cfg.projects[0].user_byte_rate, 0);
    assert_int_equal(cfg.projects[0].user_byte_burst, 5);
    assert_int_equal(cfg.projects[0].project_msg_rate, 0);
    assert_int_equal(cfg.projects[0].project_msg_burst, 6);
    assert_true(cfg.projects[0].project_byte_rate == 4000000000u);
    assert_int_equal(cfg.projects[0].project_byte_burst, 7);
    assert_int_equal(cfg.projects[0].storage_quota_mb, 0);
    expect_error("[project]\npid = 1\nsecret = abcdefgh\nproject_msg_burst = 0\n",
                 "rtmd.conf:4: project_msg_burst: '0' is out of range (1..100000000)");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\nstorage_quota_mb = 1073741825\n",
                 "rtmd.conf:4: storage_quota_mb: '1073741825' is out of range (0..1073741824)");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\nmax_session_attrs = 0\n",
                 "rtmd.conf:4: max_session_attrs: '0' is out of range (1..1024)");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\nmax_session_attrs_bytes = 1048577\n",
                 "rtmd.conf:4: max_session_attrs_bytes: '1048577' is out of range (1..1048576)");
}

/* The file gate's settings: defaults, values, their rules, the ports
 * among the listeners' and the file gate's largest packet. */
static void test_files(void **state)
{
    (void)state;
    rtmd_config cfg;
    expect_ok(&cfg, "[project]\npid = 1\nsecret = abcdefgh\n");
    assert_int_equal(cfg.file_tcp_port, 13460);
    assert_int_equal(cfg.file_ws_port, 13461);
    assert_int_equal(cfg.file_wss_port, 13462);
    assert_int_equal(cfg.max_file_connections, 64);
    assert_int_equal(cfg.file_token_ttl, 300);
    assert_int_equal(cfg.file_orphan_grace, 3600);
    assert_string_equal(cfg.file_endpoint, "");
    assert_string_equal(cfg.file_base_url, "");
    assert_int_equal(cfg.projects[0].max_file_bytes, 5242880);
    assert_int_equal(rtmd_config_file_max_packet(&cfg), 5242880 + RTMD_FILE_PACKET_OVERHEAD);
    expect_ok(&cfg, "file_tcp_port = 1\nfile_ws_port = -1\nmax_file_connections = 2\nfile_token_ttl = 5\n"
                    "file_endpoint = files.example.com:7\nfile_base_url = \"https://cdn.example.com/x\"\n"
                    "file_orphan_grace = 9\n[project]\npid = 1\nsecret = abcdefgh\nmax_file_bytes = 10\n"
                    "[project]\npid = 2\nsecret = abcdefgh\nmax_file_bytes = 1000\n");
    assert_int_equal(cfg.file_tcp_port, 1);
    assert_int_equal(cfg.file_ws_port, -1);
    assert_int_equal(cfg.max_file_connections, 2);
    assert_int_equal(cfg.file_token_ttl, 5);
    assert_int_equal(cfg.file_orphan_grace, 9);
    assert_string_equal(cfg.file_endpoint, "files.example.com:7");
    assert_string_equal(cfg.file_base_url, "https://cdn.example.com/x");
    assert_int_equal(cfg.projects[0].max_file_bytes, 10);
    assert_int_equal(rtmd_config_file_max_packet(&cfg), 1000 + RTMD_FILE_PACKET_OVERHEAD);
    expect_error("file_endpoint = files.example.com\n", "rtmd.conf:1: file_endpoint: 'files.example.com' is not host:port");
    expect_error("file_endpoint = h:70000\n", "rtmd.conf:1: file_endpoint: 'h:70000' is not host:port");
    expect_error("file_endpoint = \"h :1\"\n",
                 "rtmd.conf:1: file_endpoint: only printable ASCII without spaces or quotes");
    expect_error("file_base_url = ftp://x\n", "rtmd.conf:1: file_base_url: 'ftp://x' must start with http:// or https://");
    expect_error("max_file_connections = 0\n", "rtmd.conf:1: max_file_connections: '0' is out of range (1..16777216)");
    expect_error("file_token_ttl = 86401\n", "rtmd.conf:1: file_token_ttl: '86401' is out of range (1..86400)");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\nmax_file_bytes = 0\n",
                 "rtmd.conf:4: max_file_bytes: '0' is out of range (1..536870912)");
    expect_error("file_ws_port = 13321\n", "rtmd.conf:1: client_ws_port and file_ws_port both use port 13321");
    expect_error("tls_cert = /c.pem\ntls_key = /k.pem\nfile_wss_port = 8443\n",
                 "rtmd.conf:3: https_port and file_wss_port both use port 8443");
}

/* RTS token settings: a valid pair, each rule, and the pair rule, with the
 * line it names; the key is never echoed. */
static void test_project_rts(void **state)
{
    (void)state;
    rtmd_config cfg;
    expect_ok(&cfg, "[project]\npid = 1\nsecret = abcdefgh\n");
    assert_string_equal(cfg.projects[0].app_id, "");
    assert_string_equal(cfg.projects[0].app_key, "");
    expect_ok(&cfg, "[project]\npid = 1\nsecret = abcdefgh\n"
                    "app_id = 0123456789abcdefABCDEF01\napp_key = \"k#1\"\n");
    assert_string_equal(cfg.projects[0].app_id, "0123456789abcdefABCDEF01");
    assert_string_equal(cfg.projects[0].app_key, "k#1");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\napp_id = 0123456789abcdefABCDEF0\napp_key = k\n",
                 "rtmd.conf:4: app_id: '0123456789abcdefABCDEF0' must be exactly 24 characters of 0-9, a-z, A-Z");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\napp_id = 0123456789abcdefABCDEF012\napp_key = k\n",
                 "rtmd.conf:4: app_id: '0123456789abcdefABCDEF012' must be exactly 24 characters of 0-9, a-z, A-Z");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\napp_id = 0123456789abcdef-BCDEF01\napp_key = k\n",
                 "rtmd.conf:4: app_id: '0123456789abcdef-BCDEF01' must be exactly 24 characters of 0-9, a-z, A-Z");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\napp_id = 0123456789abcdefABCDEF01\napp_key = \"\"\n",
                 "rtmd.conf:5: app_key: must be 1..127 printable ASCII characters without spaces");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\napp_id = 0123456789abcdefABCDEF01\napp_key = \"a b\"\n",
                 "rtmd.conf:5: app_key: must be 1..127 printable ASCII characters without spaces");
    char text[512];
    snprintf(text, sizeof text, "[project]\npid = 1\nsecret = abcdefgh\napp_id = 0123456789abcdefABCDEF01\n"
                                "app_key = %0128d\n", 0);
    expect_error(text, "rtmd.conf:5: app_key: must be 1..127 printable ASCII characters without spaces");
    snprintf(text, sizeof text, "[project]\npid = 1\nsecret = abcdefgh\napp_id = 0123456789abcdefABCDEF01\n"
                                "app_key = %0127d\n", 0);
    expect_ok(&cfg, text);
    assert_int_equal(strlen(cfg.projects[0].app_key), 127);
    /* One project per app_id, and per rtcat_apikey. */
    expect_error("[project]\npid = 1\nsecret = abcdefgh\napp_id = 0123456789abcdefABCDEF01\napp_key = k\n"
                 "[project]\npid = 2\nsecret = abcdefgh\napp_id = 0123456789abcdefABCDEF01\napp_key = j\n",
                 "rtmd.conf:9: app_id is also project 1's: it names the project");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\nrtcat_apikey = k1\nrtcat_secret = s1\n"
                 "[project]\npid = 2\nsecret = abcdefgh\n"
                 "[project]\npid = 3\nsecret = abcdefgh\nrtcat_secret = s3\nrtcat_apikey = k1\n",
                 "rtmd.conf:13: rtcat_apikey is also project 1's: it names the project");
    expect_ok(&cfg, "[project]\npid = 1\nsecret = abcdefgh\nrtcat_apikey = k1\nrtcat_secret = s1\n"
                    "app_id = 0123456789abcdefABCDEF01\napp_key = k\n"
                    "[project]\npid = 2\nsecret = abcdefgh\nrtcat_apikey = k2\nrtcat_secret = s1\n"
                    "app_id = 0123456789abcdefABCDEF02\napp_key = k\n");
    /* Both or neither; the message names the line of the one given. */
    expect_error("[project]\npid = 1\nsecret = abcdefgh\n\napp_id = 0123456789abcdefABCDEF01\n"
                 "[project]\npid = 2\nsecret = abcdefgh\n",
                 "rtmd.conf:5: app_id is set but app_key is not: RTS tokens need both");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\napp_key = k\n",
                 "rtmd.conf:4: app_key is set but app_id is not: RTS tokens need both");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\napp_id = 0123456789abcdefABCDEF01\n"
                 "app_key = k\napp_id = 0123456789abcdefABCDEF01\n",
                 "rtmd.conf:6: app_id is set twice in this section (first on line 4)");
    expect_error("app_id = 0123456789abcdefABCDEF01\n", "rtmd.conf:1: 'app_id' belongs in a [project] section");
}

/* Translation: off by default (no URL), a 5 s timeout and 100 requests in
 * flight; the key never echoed; bounds on the numbers. */
static void test_project_translate(void **state)
{
    (void)state;
    rtmd_config cfg;
    expect_ok(&cfg, "[project]\npid = 1\nsecret = abcdefgh\n");
    assert_string_equal(cfg.projects[0].translate_url, "");
    assert_string_equal(cfg.projects[0].translate_api_key, "");
    assert_int_equal(cfg.projects[0].translate_timeout_ms, 5000);
    assert_int_equal(cfg.projects[0].translate_max_inflight, 100);
    expect_ok(&cfg, "[project]\npid = 1\nsecret = abcdefgh\ntranslate_url = http://127.0.0.1:5000\n"
                    "translate_api_key = \"k#2\"\ntranslate_timeout_ms = 250\ntranslate_max_inflight = 3\n");
    assert_string_equal(cfg.projects[0].translate_url, "http://127.0.0.1:5000");
    assert_string_equal(cfg.projects[0].translate_api_key, "k#2");
    assert_int_equal(cfg.projects[0].translate_timeout_ms, 250);
    assert_int_equal(cfg.projects[0].translate_max_inflight, 3);
    expect_error("[project]\npid = 1\nsecret = abcdefgh\ntranslate_api_key = \"a b\"\n",
                 "rtmd.conf:4: translate_api_key: must be 1..255 printable ASCII characters without spaces");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\ntranslate_timeout_ms = 99\n",
                 "rtmd.conf:4: translate_timeout_ms: '99' is out of range (100..60000)");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\ntranslate_max_inflight = 0\n",
                 "rtmd.conf:4: translate_max_inflight: '0' is out of range (1..100000)");
    expect_error("translate_url = http://x\n", "rtmd.conf:1: 'translate_url' belongs in a [project] section");
}

static void test_projects(void **state)
{
    rtmd_config cfg;
    expect_ok(&cfg, "log_level = warn\n"
                    "[project]\n"
                    "pid = 11\n"
                    "secret = first-secret\n"
                    "\n"
                    "  [project]   # the second one\n"
                    "secret = \"second-secret#\"\n"
                    "pid = 22\n"
                    "max_connections = 3\n"
                    "token_ttl = 600\n");
    assert_int_equal(cfg.log_level, RTM_LOG_WARN);
    assert_int_equal(cfg.nprojects, 2);
    assert_int_equal(cfg.projects[0].pid, 11);
    assert_string_equal(cfg.projects[0].secret, "first-secret");
    assert_int_equal(cfg.projects[0].max_connections, 0);
    assert_int_equal(cfg.projects[0].token_ttl_seconds, 86400);
    assert_int_equal(cfg.projects[1].pid, 22);
    assert_string_equal(cfg.projects[1].secret, "second-secret#");
    assert_int_equal(cfg.projects[1].max_connections, 3);
    assert_int_equal(cfg.projects[1].token_ttl_seconds, 600);
    assert_ptr_equal(rtmd_config_project(&cfg, 22), &cfg.projects[1]);
    assert_ptr_equal(rtmd_config_project(&cfg, 11), &cfg.projects[0]);
    assert_null(rtmd_config_project(&cfg, 33));

    /* A second text appends its projects; a pid already known is refused. */
    char err[256];
    assert_int_equal(parse(&cfg, "[project]\npid = 33\nsecret = third-secret\n", err, sizeof err), 0);
    assert_int_equal(cfg.nprojects, 3);
    assert_int_equal(parse(&cfg, "[project]\npid = 11\nsecret = again-secret\n", err, sizeof err), -1);
    assert_string_equal(err, "rtmd.conf:2: pid: project 11 is already defined");
    assert_int_equal(cfg.nprojects, 3);

    expect_error("[project]\npid = 5\nsecret = abcdefgh\n[project]\npid = 5\nsecret = ijklmnop\n",
                 "rtmd.conf:5: pid: project 5 is already defined");
    expect_error("\n[project]\npid = 5\n\n[project]\npid = 6\nsecret = ijklmnop\n",
                 "rtmd.conf:2: [project] section has no secret");
    expect_error("[project]\npid = 5\nsecret = abcdefgh\n\n[project]\npid = 6\n# end\n",
                 "rtmd.conf:5: [project] section has no secret");
    expect_error("[project]\nsecret = abcdefgh\n", "rtmd.conf:1: [project] section has no pid");
    expect_error("[project]\n", "rtmd.conf:1: [project] section has no pid");
    expect_error("[project]\npid = 0\nsecret = abcdefgh\n",
                 "rtmd.conf:2: pid: '0' is out of range (1..2147483647: the RTM SDKs send the pid as a 32-bit integer)");
    expect_error("[project]\npid = -3\nsecret = abcdefgh\n",
                 "rtmd.conf:2: pid: '-3' is out of range (1..2147483647: the RTM SDKs send the pid as a 32-bit integer)");
    /* The Go server SDK sends the pid as an int32: 2^31 and above are refused. */
    expect_error("[project]\npid = 2147483648\nsecret = abcdefgh\n",
                 "rtmd.conf:2: pid: '2147483648' is out of range (1..2147483647: the RTM SDKs send the pid as a 32-bit integer)");
    expect_error("# projects\n[project]\nsecret = abcdefgh\npid = 4294967296\n",
                 "rtmd.conf:4: pid: '4294967296' is out of range (1..2147483647: the RTM SDKs send the pid as a 32-bit integer)");
    expect_error("[project]\npid = 9223372036854775808\nsecret = abcdefgh\n",
                 "rtmd.conf:2: pid: '9223372036854775808' is out of range (1..2147483647: the RTM SDKs send the pid as a 32-bit integer)");
    expect_error("[project]\npid = 12a\nsecret = abcdefgh\n", "rtmd.conf:2: pid: '12a' is not a whole number");
    expect_error("[project]\npid = 1\npid = 2\nsecret = abcdefgh\n",
                 "rtmd.conf:3: pid is set twice in this section (first on line 2)");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\nhttp_port = 1\n",
                 "rtmd.conf:4: 'http_port' is a top-level setting; it must come before the first [project]");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\nname = x\n",
                 "rtmd.conf:4: unknown project setting 'name'");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\ntoken_ttl = 0\n",
                 "rtmd.conf:4: token_ttl: '0' is out of range (1..31536000)");
    expect_error("[project]\npid = 1\nsecret = abcdefgh\nmax_connections = -1\n",
                 "rtmd.conf:4: max_connections: '-1' is out of range (0..16777216)");

    /* Bad secrets; the secret never appears in the message. */
    const char *bad_secret = "rtmd.conf:3: secret: must be 8..127 printable ASCII characters without spaces";
    expect_error("[project]\npid = 1\nsecret = short\n", bad_secret);
    expect_error("[project]\npid = 1\nsecret = \"has a space\"\n", bad_secret);
    expect_error("[project]\npid = 1\nsecret = \"tab\there\"\n", bad_secret);
    expect_error("[project]\npid = 1\nsecret = caf\xc3\xa9-secret\n", bad_secret);
    expect_error("[project]\npid = 1\nsecret = \"\"\n", bad_secret);
    char text[512];
    snprintf(text, sizeof text, "[project]\npid = 1\nsecret = %0128d\n", 0);
    expect_error(text, bad_secret);
    snprintf(text, sizeof text, "[project]\npid = 1\nsecret = %0127d\n", 0);
    expect_ok(&cfg, text);
    assert_int_equal(strlen(cfg.projects[0].secret), 127);

    /* At most RTMD_MAX_PROJECTS. */
    size_t size = (RTMD_MAX_PROJECTS + 1) * 64;
    char *many = malloc(size);
    assert_non_null(many);
    size_t off = 0;
    for (int i = 1; i <= RTMD_MAX_PROJECTS + 1; i++)
        off += (size_t)snprintf(many + off, size - off, "[project]\npid = %d\nsecret = secret-%d\n", i, i);
    char expected[128];
    snprintf(expected, sizeof expected, "rtmd.conf:%d: too many projects (at most %d)", RTMD_MAX_PROJECTS * 3 + 1,
             RTMD_MAX_PROJECTS);
    expect_error(many, expected);
    /* Exactly RTMD_MAX_PROJECTS is fine. */
    *strstr(many, "[project]\npid = 65\n") = '\0';
    expect_ok(&cfg, many);
    assert_int_equal(cfg.nprojects, RTMD_MAX_PROJECTS);
    assert_int_equal(cfg.projects[RTMD_MAX_PROJECTS - 1].pid, RTMD_MAX_PROJECTS);
    free(many);
}

static void test_set(void **state)
{
    rtmd_config cfg, before;
    char err[256] = "";
    rtmd_config_defaults(&cfg);
    assert_int_equal(rtmd_config_set(&cfg, "client_tcp_port", "0", err, sizeof err), 0);
    assert_int_equal(cfg.client_tcp_port, 0);
    assert_int_equal(rtmd_config_set(&cfg, "client_ws_port", "-1", err, sizeof err), 0);
    assert_int_equal(cfg.client_ws_port, -1);
    assert_int_equal(rtmd_config_set(&cfg, "data_dir", "/tmp/a b#c", err, sizeof err), 0);
    assert_string_equal(cfg.data_dir, "/tmp/a b#c");
    assert_int_equal(rtmd_config_set(&cfg, "log_level", "debug", err, sizeof err), 0);
    assert_int_equal(cfg.log_level, RTM_LOG_DEBUG);
    assert_int_equal(rtmd_config_set(&cfg, "key_pem", "", err, sizeof err), 0);
    assert_int_equal(rtmd_config_set(&cfg, "idle_timeout", "5", err, sizeof err), 0);
    assert_int_equal(cfg.idle_timeout, 5);

    /* The cross-field rules are checked by rtmd_config_check, not set. */
    assert_int_equal(rtmd_config_check(&cfg, "command line", err, sizeof err), -1);
    assert_string_equal(err, "command line: ping_interval (20) must be less than idle_timeout (5)");
    assert_int_equal(rtmd_config_set(&cfg, "ping_interval", "2", err, sizeof err), 0);
    assert_int_equal(rtmd_config_check(&cfg, "command line", err, sizeof err), 0);

    /* Errors name the option and leave the configuration unchanged. */
    before = cfg;
    assert_int_equal(rtmd_config_set(&cfg, "client_tcp_port", "70000", err, sizeof err), -1);
    assert_string_equal(err, "--client_tcp_port: '70000' is not a port (0..65535, or -1 to disable)");
    assert_int_equal(rtmd_config_set(&cfg, "max_packet", "1k", err, sizeof err), -1);
    assert_string_equal(err, "--max_packet: '1k' is not a whole number");
    assert_int_equal(rtmd_config_set(&cfg, "max_packet", "18446744073709551615", err, sizeof err), -1);
    assert_string_equal(err, "--max_packet: '18446744073709551615' is out of range (1024..67108864)");
    assert_int_equal(rtmd_config_set(&cfg, "foo", "1", err, sizeof err), -1);
    assert_string_equal(err, "--foo: unknown setting");
    assert_int_equal(rtmd_config_set(&cfg, "pid", "1", err, sizeof err), -1);
    assert_string_equal(err, "--pid: unknown setting");
    assert_int_equal(rtmd_config_set(&cfg, "data_dir", "", err, sizeof err), -1);
    assert_string_equal(err, "--data_dir: must not be empty");
    assert_int_equal(rtmd_config_set(&cfg, "data_dir", "/a\nb", err, sizeof err), -1);
    assert_string_equal(err, "--data_dir: control character 0x0A is not allowed");
    assert_int_equal(rtmd_config_set(&cfg, "data_dir", "/\xff", err, sizeof err), -1);
    assert_string_equal(err, "--data_dir: invalid UTF-8");
    assert_int_equal(rtmd_config_set(&cfg, "log_level", "verbose", err, sizeof err), -1);
    assert_string_equal(err, "--log_level: 'verbose' is not a log level (debug, info, warn, error or off)");
    assert_memory_equal(&cfg, &before, sizeof cfg);

    /* A small or absent error buffer is fine. */
    char tiny[8];
    assert_int_equal(rtmd_config_set(&cfg, "foo", "1", tiny, sizeof tiny), -1);
    assert_string_equal(tiny, "--foo: ");
    assert_int_equal(rtmd_config_set(&cfg, "foo", "1", NULL, 0), -1);
    assert_int_equal(rtmd_config_parse(&cfg, "foo = 1", 7, NULL, NULL, 0), -1);
}

/* admin_token: empty (the default: the admin page is off) or 16..127
 * printable ASCII without spaces; an error never shows the value. */
/* rtmd_config_reload's report of one change, kept by note_change. */
typedef struct change_seen {
    char name[64], from[160], to[160];
    bool applied;
    int count;
} change_seen;

static void note_change(void *arg, int64_t pid, const char *name, const char *from, const char *to, bool applied)
{
    change_seen *seen = arg;
    (void)pid;
    snprintf(seen->name, sizeof seen->name, "%s", name);
    snprintf(seen->from, sizeof seen->from, "%s", from);
    snprintf(seen->to, sizeof seen->to, "%s", to);
    seen->applied = applied;
    seen->count++;
}

static void test_admin_settings(void **state)
{
    rtmd_config cfg;
    char err[256] = "";
    rtmd_config_defaults(&cfg);
    assert_string_equal(cfg.admin_token, "");
    assert_string_equal(cfg.admin_dir, "");
    expect_ok(&cfg, "admin_token = 0123456789abcdef\nadmin_dir = /srv/admin\n");
    assert_string_equal(cfg.admin_token, "0123456789abcdef");
    assert_string_equal(cfg.admin_dir, "/srv/admin");
    assert_int_equal(rtmd_config_set(&cfg, "admin_token", "", err, sizeof err), 0);
    assert_string_equal(cfg.admin_token, "");
    char longest[RTMD_ADMIN_TOKEN_MAX];
    memset(longest, '~', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    assert_int_equal(rtmd_config_set(&cfg, "admin_token", longest, err, sizeof err), 0);
    assert_string_equal(cfg.admin_token, longest);

    static const char *const bad[] = {"has a space in it!", "tab\tin-the-middle-x", "caf\xc3\xa9-caf\xc3\xa9-caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rtmd_config_set(&cfg, "admin_token", bad[i], err, sizeof err), -1);
        assert_null(strstr(err, bad[i]));
    }
    assert_int_equal(rtmd_config_set(&cfg, "admin_token", "fifteen-chars-x", err, sizeof err), -1);
    assert_string_equal(err, "--admin_token: must be 16..127 printable ASCII characters without spaces");
    char too_long[RTMD_ADMIN_TOKEN_MAX + 1];
    memset(too_long, 'a', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    assert_int_equal(rtmd_config_set(&cfg, "admin_token", too_long, err, sizeof err), -1);
    assert_null(strstr(err, "aaaaaaaaaaaaaaaa"));
    expect_error("admin_token = \"secret with space\"\n",
                 "rtmd.conf:1: admin_token: must be 16..127 printable ASCII characters without spaces");

    /* A reload reports a new token as a secret and applies it (admin.c
     * takes its digest again). */
    rtmd_config cur, next;
    expect_ok(&cur, "admin_token = old-admin-token-0123\n");
    expect_ok(&next, "admin_token = new-admin-token-4567\n");
    change_seen seen = {0};
    rtmd_config_reload(&cur, &next, note_change, &seen);
    assert_int_equal(seen.count, 1);
    assert_string_equal(seen.name, "admin_token");
    assert_string_equal(seen.from, "(secret)");
    assert_string_equal(seen.to, "(secret)");
    assert_true(seen.applied);
    assert_string_equal(cur.admin_token, "new-admin-token-4567");
}

/* A reload's projects: the running list becomes the file's (kept ones in
 * their order, added ones after them, each reported); between configured
 * projects and none (the store's) nothing changes. */
static void test_reload_projects(void **state)
{
    (void)state;
    rtmd_config cur, next;
    expect_ok(&cur, "[project]\npid = 1\nsecret = abcdefgh\n[project]\npid = 2\nsecret = abcdefgh\n");
    expect_ok(&next, "[project]\npid = 3\nsecret = abcdefgh\n[project]\npid = 2\nsecret = abcdefgh\nmax_friends = 7\n");
    change_seen seen = {0};
    rtmd_config_reload(&cur, &next, note_change, &seen);
    assert_int_equal(seen.count, 3); /* 1 removed, 2's max_friends, 3 added (last) */
    assert_string_equal(seen.name, "[project]");
    assert_string_equal(seen.to, "added");
    assert_true(seen.applied);
    assert_int_equal(cur.nprojects, 2);
    assert_int_equal(cur.projects[0].pid, 2);
    assert_int_equal(cur.projects[0].max_friends, 7);
    assert_int_equal(cur.projects[1].pid, 3);
    assert_null(rtmd_config_project(&cur, 1));
    rtmd_config_drop_project(&cur, 2);
    assert_int_equal(cur.nprojects, 1);
    assert_int_equal(cur.projects[0].pid, 3);

    rtmd_config none;
    expect_ok(&none, "");
    seen = (change_seen){0};
    rtmd_config_reload(&cur, &none, note_change, &seen);
    assert_int_equal(seen.count, 1);
    assert_false(seen.applied);
    assert_int_equal(cur.nprojects, 1);
    seen = (change_seen){0};
    rtmd_config_reload(&none, &cur, note_change, &seen);
    assert_int_equal(seen.count, 1);
    assert_false(seen.applied);
    assert_int_equal(none.nprojects, 0);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state)
{
    rtmd_config cfg;
    char err[512];
    rtmd_config_defaults(&cfg);

    assert_int_equal(rtmd_config_load_file(&cfg, "/nonexistent/rtmd.conf", err, sizeof err), -1);
    assert_string_equal(err, "/nonexistent/rtmd.conf: cannot open: No such file or directory");

    char dir[] = "/tmp/test_config.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/rtmd.conf", dir);

    /* Messages name the file as given. */
    const char *text = "# test\nhttp_port = 8099\nbogus = 1\n";
    write_file(path, text, strlen(text));
    assert_int_equal(rtmd_config_load_file(&cfg, path, err, sizeof err), -1);
    char expected[128];
    snprintf(expected, sizeof expected, "%s:3: unknown setting 'bogus'", path);
    assert_string_equal(err, expected);
    assert_int_equal(cfg.http_port, 8080);

    text = "# test\nhttp_port = 8099\n";
    write_file(path, text, strlen(text));
    assert_int_equal(rtmd_config_load_file(&cfg, path, err, sizeof err), 0);
    assert_int_equal(cfg.http_port, 8099);

    /* Exactly 1 MiB is read; one byte more is refused. */
    size_t big = 1024 * 1024;
    char *data = malloc(big + 1);
    assert_non_null(data);
    memset(data, '\n', big + 1);
    memcpy(data, "http_port = 8098", 16);
    write_file(path, data, big);
    assert_int_equal(rtmd_config_load_file(&cfg, path, err, sizeof err), 0);
    assert_int_equal(cfg.http_port, 8098);
    write_file(path, data, big + 1);
    assert_int_equal(rtmd_config_load_file(&cfg, path, err, sizeof err), -1);
    snprintf(expected, sizeof expected, "%s: file is larger than 1048576 bytes", path);
    assert_string_equal(err, expected);
    free(data);

    /* A directory cannot be read. */
    assert_int_equal(rtmd_config_load_file(&cfg, dir, err, sizeof err), -1);
    assert_non_null(strstr(err, dir));

    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),       cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_full_file),      cmocka_unit_test(test_quoted_values),
        cmocka_unit_test(test_crlf),           cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_number_errors),  cmocka_unit_test(test_cross_field),
        cmocka_unit_test(test_projects), cmocka_unit_test(test_project_limits), cmocka_unit_test(test_project_rts), cmocka_unit_test(test_project_translate), cmocka_unit_test(test_set), cmocka_unit_test(test_admin_settings), cmocka_unit_test(test_reload_projects),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
