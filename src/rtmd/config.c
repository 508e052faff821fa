/* rtmd configuration (see config.h): the defaults, the strict parser of the
 * configuration file format documented in etc/rtmd.conf.example, the
 * validation of every setting, the cross-field rules, and command-line
 * overrides. All settings are described once, in the tables below. */
#include "config.h"

#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_FILE_MAX (1024 * 1024) /* load_file refuses larger files */
#define VALUE_MAX 1024                /* longest value any setting accepts, plus one */
#define ECHO_MAX 48                   /* bytes of a value or key quoted in a message */
#define MSG_MAX 512

/* ---- messages ---------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void set_msg(char *msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_msg(char *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, MSG_MAX, fmt, ap);
    va_end(ap);
}

/* Copies at most ECHO_MAX bytes of s (already known to be valid UTF-8) into
 * buf, cutting on a character boundary and marking the cut with "...". */
static const char *echo(const char *s, char buf[ECHO_MAX + 4])
{
    size_t n = strlen(s);
    if (n <= ECHO_MAX)
        return s;
    n = ECHO_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    memcpy(buf, s, n);
    memcpy(buf + n, "...", 4);
    return buf;
}

/* ---- text checks ------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0 if
 * it is malformed (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* 0 if [s, s+n) is valid UTF-8 without control characters other than tab;
 * otherwise -1 with a message in msg. */
static int check_text(const char *s, size_t n, char *msg)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] == '\t') {
            i++;
            continue;
        }
        if (p[i] < 0x20 || p[i] == 0x7F) {
            set_msg(msg, "control character 0x%02X is not allowed", p[i]);
            return -1;
        }
        size_t len = utf8_seq(p + i, n - i);
        if (len == 0) {
            set_msg(msg, "invalid UTF-8");
            return -1;
        }
        i += len;
    }
    return 0;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* ---- redis_url and node_id --------------------------------------------- */

int rtmd_redis_url_parse(const char *url, char *host, size_t hostlen, int *port, int *db)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return -1;
    const char *h = url + sizeof scheme - 1, *end;
    size_t hn;
    if (*h == '[') { /* [IPv6] */
        end = strchr(h, ']');
        if (!end)
            return -1;
        h++;
        hn = (size_t)(end - h);
        end++;
        char tmp[64];
        unsigned char addr[16];
        if (hn == 0 || hn >= sizeof tmp)
            return -1;
        memcpy(tmp, h, hn);
        tmp[hn] = 0;
        if (inet_pton(AF_INET6, tmp, addr) != 1)
            return -1;
    } else {
        end = h;
        while (isalnum((unsigned char)*end) || *end == '.' || *end == '-')
            end++;
        hn = (size_t)(end - h);
        if (hn == 0)
            return -1;
    }
    if (hn >= 256)
        return -1;
    long p = 6379, d = 0;
    if (*end == ':') {
        char *e;
        if (!isdigit((unsigned char)end[1]))
            return -1;
        errno = 0;
        p = strtol(end + 1, &e, 10);
        if (errno || p < 1 || p > 65535 || e - end > 6)
            return -1;
        end = e;
    }
    if (*end == '/') {
        char *e;
        if (!isdigit((unsigned char)end[1]))
            return -1;
        errno = 0;
        d = strtol(end + 1, &e, 10);
        if (errno || d < 0 || d > 9999 || e - end > 5)
            return -1;
        end = e;
    }
    if (*end)
        return -1;
    if (host) {
        if (hn >= hostlen)
            return -1;
        memcpy(host, h, hn);
        host[hn] = 0;
    }
    if (port)
        *port = (int)p;
    if (db)
        *db = (int)d;
    return 0;
}

/* node_id: a number 1..65535 (no leading zero) or a name of letters,
 * digits, '_' and '-' that is not all digits; it goes into Redis keys and
 * channel messages as is. */
static bool node_id_ok(const char *s, size_t n)
{
    if (n == 0 || n >= RTMD_NODE_ID_MAX)
        return false;
    bool digits = true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '-')
            return false;
        if (!isdigit(c))
            digits = false;
    }
    if (!digits)
        return true;
    return s[0] != '0' && n <= 5 && atol(s) <= 65535;
}

/* ---- settings ---------------------------------------------------------- */

enum kind {
    K_PORT,   /* int, -1..65535 */
    K_U32,    /* uint32_t, min..max */
    K_STR,    /* char array of size bytes, checked by check_str */
    K_LEVEL,  /* int, a log level name */
    K_LOG_FORMAT, /* int, a log line format name */
    K_PID,    /* int64_t, 1..2147483647: the Go server SDK sends the pid as
               * an int32 (and the RTM docs call it a 32-bit integer) */
    K_SECRET, /* char array, 8..127 printable ASCII without spaces */
    K_APP_ID, /* char array, exactly RTMD_APP_ID_LEN characters of [0-9a-zA-Z] */
    K_APP_KEY, /* char array, 1..size-1 printable ASCII without spaces, never echoed */
    K_TOKEN,   /* char array, empty or 16..size-1 printable ASCII without spaces, never echoed */
};

enum str_rule { S_ANY, S_NONEMPTY, S_HOST, S_PATH, S_REDIS, S_NODE, S_WORDS_POLICY, S_ENDPOINT, S_BASE_URL };

typedef struct setting {
    const char *name;
    enum kind kind;
    size_t offset;
    size_t size;
    int64_t min, max;
    enum str_rule rule;
    /* LIVE: read where it is used, so a reload (rtmd_config_reload) can
     * change it in place; otherwise a change takes a restart (listeners,
     * the store, and what modules parse or size at start). */
    bool live;
} setting;
#define LIVE true
#define RESTART false

#define TOP(field) offsetof(rtmd_config, field), sizeof(((rtmd_config *)0)->field)
#define PRJ(field) offsetof(rtmd_project_config, field), sizeof(((rtmd_project_config *)0)->field)

static const setting top_settings[] = {
    {"data_dir", K_STR, TOP(data_dir), 0, 0, S_NONEMPTY, RESTART},
    {"listen_host", K_STR, TOP(listen_host), 0, 0, S_HOST, RESTART},
    {"client_tcp_port", K_PORT, TOP(client_tcp_port), -1, 65535, S_ANY, RESTART},
    {"client_ws_port", K_PORT, TOP(client_ws_port), -1, 65535, S_ANY, RESTART},
    {"ws_path", K_STR, TOP(ws_path), 0, 0, S_PATH, RESTART},
    {"server_tcp_port", K_PORT, TOP(server_tcp_port), -1, 65535, S_ANY, RESTART},
    {"http_port", K_PORT, TOP(http_port), -1, 65535, S_ANY, RESTART},
    {"key_pem", K_STR, TOP(key_pem), 0, 0, S_ANY, RESTART},
    {"tls_cert", K_STR, TOP(tls_cert), 0, 0, S_ANY, LIVE},
    {"tls_key", K_STR, TOP(tls_key), 0, 0, S_ANY, LIVE},
    {"client_wss_port", K_PORT, TOP(client_wss_port), -1, 65535, S_ANY, RESTART},
    {"https_port", K_PORT, TOP(https_port), -1, 65535, S_ANY, RESTART},
    {"file_tcp_port", K_PORT, TOP(file_tcp_port), -1, 65535, S_ANY, RESTART},
    {"file_ws_port", K_PORT, TOP(file_ws_port), -1, 65535, S_ANY, RESTART},
    {"file_wss_port", K_PORT, TOP(file_wss_port), -1, 65535, S_ANY, RESTART},
    {"max_file_connections", K_U32, TOP(max_file_connections), 1, 16777216, S_ANY, RESTART},
    {"file_token_ttl", K_U32, TOP(file_token_ttl), 1, 86400, S_ANY, RESTART},
    {"file_endpoint", K_STR, TOP(file_endpoint), 0, 0, S_ENDPOINT, RESTART},
    {"file_base_url", K_STR, TOP(file_base_url), 0, 0, S_BASE_URL, RESTART},
    {"file_orphan_grace", K_U32, TOP(file_orphan_grace), 1, 31536000, S_ANY, RESTART},
    {"max_packet", K_U32, TOP(max_packet), 1024, 64 * 1024 * 1024, S_ANY, RESTART},
    {"max_connections", K_U32, TOP(max_connections), 1, 16777216, S_ANY, LIVE},
    {"max_client_tcp_connections", K_U32, TOP(max_client_tcp_connections), 0, 16777216, S_ANY, LIVE},
    {"max_client_ws_connections", K_U32, TOP(max_client_ws_connections), 0, 16777216, S_ANY, LIVE},
    {"max_server_connections", K_U32, TOP(max_server_connections), 1, 16777216, S_ANY, LIVE},
    {"max_http_connections", K_U32, TOP(max_http_connections), 1, 16777216, S_ANY, LIVE},
    {"max_connections_per_address", K_U32, TOP(max_connections_per_address), 0, 16777216, S_ANY, LIVE},
    {"login_timeout", K_U32, TOP(login_timeout), 1, 3600, S_ANY, LIVE},
    {"prelogin_max_packet", K_U32, TOP(prelogin_max_packet), 4096, 64 * 1024 * 1024, S_ANY, LIVE},
    {"prelogin_buffer_budget", K_U32, TOP(prelogin_buffer_budget), 65536, 1024 * 1024 * 1024, S_ANY, LIVE},
    {"max_output_queue", K_U32, TOP(max_output_queue), 1024, 1024 * 1024 * 1024, S_ANY, LIVE},
    {"idle_timeout", K_U32, TOP(idle_timeout), 2, 86400, S_ANY, LIVE},
    {"handshake_timeout", K_U32, TOP(handshake_timeout), 1, 3600, S_ANY, LIVE},
    {"ping_interval", K_U32, TOP(ping_interval), 1, 59, S_ANY, LIVE},
    {"store", K_STR, TOP(store), 0, 0, S_NONEMPTY, RESTART}, /* sqlite or postgres: check_cross */
    {"store_url", K_STR, TOP(store_url), 0, 0, S_ANY, RESTART},
    {"redis_url", K_STR, TOP(redis_url), 0, 0, S_REDIS, RESTART},
    {"node_id", K_STR, TOP(node_id), 0, 0, S_NODE, RESTART},
    {"store_batch_max", K_U32, TOP(store_batch_max), 1, 65536, S_ANY, RESTART},
    {"store_fsync", K_U32, TOP(store_fsync), 0, 1, S_ANY, RESTART},
    {"room_push", K_STR, TOP(room_push), 0, 0, S_NONEMPTY, RESTART}, /* before_commit or after_commit: check_cross */
    {"store_patient_interval_us", K_U32, TOP(store_patient_interval_us), 0, 100000, S_ANY, RESTART},
    {"sign_window", K_U32, TOP(sign_window), 1, 86400, S_ANY, RESTART},
    {"sign_salts_max", K_U32, TOP(sign_salts_max), 16, 16777216, S_ANY, RESTART},
    {"sign_fail_max", K_U32, TOP(sign_fail_max), 0, 255, S_ANY, LIVE},
    {"retention_interval", K_U32, TOP(retention_interval), 1, 86400, S_ANY, RESTART},
    {"log_level", K_LEVEL, TOP(log_level), 0, 0, S_ANY, LIVE},
    {"log_format", K_LOG_FORMAT, TOP(log_format), 0, 0, S_ANY, LIVE},
    {"log_file", K_STR, TOP(log_file), 0, 0, S_ANY, LIVE}, /* opened by main.c at start */
    {"demo_dir", K_STR, TOP(demo_dir), 0, 0, S_ANY, RESTART}, /* its files are checked by demo.c at start */
    {"admin_token", K_TOKEN, TOP(admin_token), 0, 0, S_ANY, LIVE}, /* admin.c takes its digest again on reload */
    {"admin_dir", K_STR, TOP(admin_dir), 0, 0, S_ANY, LIVE}, /* admin.c reads its files again on reload */
};
enum { NTOP = sizeof top_settings / sizeof top_settings[0] };

static const setting project_settings[] = {
    {"pid", K_PID, PRJ(pid), 1, INT32_MAX, S_ANY, RESTART},
    {"secret", K_SECRET, PRJ(secret), 0, 0, S_ANY, LIVE},
    {"max_connections", K_U32, PRJ(max_connections), 0, 16777216, S_ANY, LIVE},
    {"token_ttl", K_U32, PRJ(token_ttl_seconds), 1, 31536000, S_ANY, LIVE},
    {"multi_login", K_U32, PRJ(multi_login), 0, 1, S_ANY, LIVE},
    {"legacy_sign", K_U32, PRJ(legacy_sign), 0, 1, S_ANY, LIVE},
    {"max_rooms_per_user", K_U32, PRJ(max_rooms_per_user), 1, 1000, S_ANY, LIVE},
    {"room_events_max", K_U32, PRJ(room_events_max), 0, 100000, S_ANY, LIVE},
    {"max_groups", K_U32, PRJ(max_groups), 1, 10000000, S_ANY, LIVE},
    {"max_group_members", K_U32, PRJ(max_group_members), 1, 1000000, S_ANY, LIVE},
    {"max_msg_bytes", K_U32, PRJ(max_msg_bytes), 1, 16 * 1024 * 1024, S_ANY, LIVE},
    {"max_attrs_bytes", K_U32, PRJ(max_attrs_bytes), 1, 1024 * 1024, S_ANY, LIVE},
    {"max_session_attrs", K_U32, PRJ(max_session_attrs), 1, 1024, S_ANY, LIVE},
    {"max_session_attrs_bytes", K_U32, PRJ(max_session_attrs_bytes), 1, 1024 * 1024, S_ANY, LIVE},
    {"max_receivers", K_U32, PRJ(max_receivers), 1, 100000, S_ANY, LIVE},
    {"max_friends", K_U32, PRJ(max_friends), 1, 10000, S_ANY, LIVE},
    {"max_blacks", K_U32, PRJ(max_blacks), 1, 10000, S_ANY, LIVE},
    {"p2p_require_friend", K_U32, PRJ(p2p_require_friend), 0, 1, S_ANY, LIVE},
    {"user_msg_rate", K_U32, PRJ(user_msg_rate), 0, 1000000, S_ANY, LIVE},
    {"user_msg_burst", K_U32, PRJ(user_msg_burst), 1, 1000000, S_ANY, LIVE},
    {"user_byte_rate", K_U32, PRJ(user_byte_rate), 0, 1024 * 1024 * 1024, S_ANY, LIVE},
    {"user_byte_burst", K_U32, PRJ(user_byte_burst), 1, 1024 * 1024 * 1024, S_ANY, LIVE},
    {"project_msg_rate", K_U32, PRJ(project_msg_rate), 0, 100000000, S_ANY, LIVE},
    {"project_msg_burst", K_U32, PRJ(project_msg_burst), 1, 100000000, S_ANY, LIVE},
    {"project_byte_rate", K_U32, PRJ(project_byte_rate), 0, 4000000000u, S_ANY, LIVE},
    {"project_byte_burst", K_U32, PRJ(project_byte_burst), 1, 4000000000u, S_ANY, LIVE},
    {"storage_quota_mb", K_U32, PRJ(storage_quota_mb), 0, 1073741824, S_ANY, LIVE},
    {"history_days", K_U32, PRJ(history_days), 0, 36500, S_ANY, LIVE},
    {"history_max_per_conversation", K_U32, PRJ(history_max_per_conversation), 0, 100000000, S_ANY, LIVE},
    {"max_oinfo_bytes", K_U32, PRJ(max_oinfo_bytes), 0, 16 * 1024 * 1024, S_ANY, LIVE},
    {"max_pinfo_bytes", K_U32, PRJ(max_pinfo_bytes), 0, 16 * 1024 * 1024, S_ANY, LIVE},
    {"max_data_key_bytes", K_U32, PRJ(max_data_key_bytes), 1, 65535, S_ANY, LIVE},
    {"max_data_value_bytes", K_U32, PRJ(max_data_value_bytes), 1, 16 * 1024 * 1024, S_ANY, LIVE},
    {"max_data_keys_per_user", K_U32, PRJ(max_data_keys_per_user), 1, 1000000, S_ANY, LIVE},
    {"max_devices_per_user", K_U32, PRJ(max_devices_per_user), 1, 1000, S_ANY, LIVE},
    {"max_push_options_per_user", K_U32, PRJ(max_push_options_per_user), 1, 100000, S_ANY, LIVE},
    {"app_id", K_APP_ID, PRJ(app_id), 0, 0, S_ANY, LIVE}, /* one project each: end_section */
    {"app_key", K_APP_KEY, PRJ(app_key), 0, 0, S_ANY, LIVE},
    {"p2server_allow", K_STR, PRJ(p2server_allow), 0, 0, S_ANY, LIVE}, /* parsed by p2server.c at start and on reload */
    {"p2server_timeout_ms", K_U32, PRJ(p2server_timeout_ms), 100, 60000, S_ANY, LIVE},
    {"p2server_max_inflight", K_U32, PRJ(p2server_max_inflight), 1, 100000, S_ANY, LIVE},
    {"p2server_max_inflight_per_user", K_U32, PRJ(p2server_max_inflight_per_user), 1, 1000, S_ANY, LIVE},
    {"demo", K_U32, PRJ(demo), 0, 1, S_ANY, RESTART}, /* one project at most, with an app_id: checked by demo.c */
    {"rtcat_apikey", K_APP_KEY, PRJ(rtcat_apikey), 0, 0, S_ANY, LIVE}, /* one project each: end_section */
    {"rtcat_secret", K_APP_KEY, PRJ(rtcat_secret), 0, 0, S_ANY, LIVE},
    {"rtcat_demo", K_U32, PRJ(rtcat_demo), 0, 1, S_ANY, RESTART}, /* one project at most, with the key: rtcat/rtcat.c */
    {"rtcat_max_sessions", K_U32, PRJ(rtcat_max_sessions), 1, 10000000, S_ANY, LIVE},
    {"rtcat_max_tokens", K_U32, PRJ(rtcat_max_tokens), 1, 100000000, S_ANY, LIVE},
    {"rtcat_max_live_days", K_U32, PRJ(rtcat_max_live_days), 1, 36500, S_ANY, LIVE},
    {"rtcat_day_seconds", K_U32, PRJ(rtcat_day_seconds), 1, 86400, S_ANY, LIVE},
    {"sensitive_words", K_STR, PRJ(sensitive_words), 0, 0, S_ANY, LIVE}, /* moderation/ reads the file on each reload */
    {"sensitive_words_policy", K_STR, PRJ(sensitive_words_policy), 0, 0, S_WORDS_POLICY, LIVE},
    {"max_file_bytes", K_U32, PRJ(max_file_bytes), 1, 512 * 1024 * 1024, S_ANY, LIVE},
    {"translate_url", K_STR, PRJ(translate_url), 0, 0, S_ANY, LIVE}, /* checked by translate/ at start and on reload */
    {"translate_api_key", K_APP_KEY, PRJ(translate_api_key), 0, 0, S_ANY, LIVE},
    {"translate_timeout_ms", K_U32, PRJ(translate_timeout_ms), 100, 60000, S_ANY, LIVE},
    {"translate_max_inflight", K_U32, PRJ(translate_max_inflight), 1, 100000, S_ANY, LIVE},
};
enum { NPROJECT = sizeof project_settings / sizeof project_settings[0] };

/* Indexes into top_settings used by the cross-field rules. */
static int top_index(const char *name)
{
    for (int i = 0; i < NTOP; i++)
        if (strcmp(top_settings[i].name, name) == 0)
            return i;
    return -1;
}

static const setting *find_setting(const setting *table, int n, const char *name, int *index)
{
    for (int i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0) {
            *index = i;
            return &table[i];
        }
    return NULL;
}

void rtmd_config_defaults(rtmd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", "./data");
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "%s", "0.0.0.0");
    cfg->client_tcp_port = 13325;
    cfg->client_ws_port = 13321;
    snprintf(cfg->ws_path, sizeof cfg->ws_path, "%s", "/service/websocket");
    cfg->server_tcp_port = 13315;
    cfg->http_port = 8080;
    cfg->key_pem[0] = '\0';
    cfg->client_wss_port = 13322;
    cfg->https_port = 8443;
    cfg->file_tcp_port = 13460;
    cfg->file_ws_port = 13461;
    cfg->file_wss_port = 13462;
    cfg->max_file_connections = 64;
    cfg->file_token_ttl = 300;
    cfg->file_orphan_grace = 3600;
    cfg->max_packet = 2 * 1024 * 1024;
    cfg->max_connections = 100000;
    cfg->max_client_tcp_connections = 0;
    cfg->max_client_ws_connections = 0;
    cfg->max_server_connections = 1000;
    cfg->max_http_connections = 256;
    cfg->max_connections_per_address = 1000;
    cfg->login_timeout = 10;
    cfg->prelogin_max_packet = 64 * 1024;
    cfg->prelogin_buffer_budget = 64 * 1024 * 1024;
    cfg->max_output_queue = 4 * 1024 * 1024;
    cfg->idle_timeout = 120;
    cfg->handshake_timeout = 10;
    cfg->ping_interval = 20;
    snprintf(cfg->store, sizeof cfg->store, "%s", "sqlite");
    cfg->store_batch_max = 512;
    cfg->store_fsync = 1;
    cfg->store_patient_interval_us = 3000;
    snprintf(cfg->room_push, sizeof cfg->room_push, "%s", "before_commit");
    cfg->sign_window = 300;
    cfg->sign_salts_max = 1048576;
    cfg->sign_fail_max = 5;
    cfg->retention_interval = 60;
    cfg->log_level = RTM_LOG_INFO;
    cfg->log_format = RTM_LOG_TEXT;
    cfg->nprojects = 0;
}

void rtmd_project_config_defaults(rtmd_project_config *p)
{
    memset(p, 0, sizeof *p);
    p->max_connections = 0;
    p->token_ttl_seconds = 86400;
    p->multi_login = 1;
    p->max_rooms_per_user = 10;
    p->room_events_max = 500;
    p->max_groups = 10000;
    p->max_group_members = 10000;
    p->max_msg_bytes = 20480;
    p->max_attrs_bytes = 2048;
    p->max_session_attrs = 32;
    p->max_session_attrs_bytes = 16384;
    p->max_receivers = 2000;
    p->max_friends = 100;
    p->max_blacks = 1000;
    p->p2p_require_friend = 0;
    p->user_msg_rate = 100;
    p->user_msg_burst = 200;
    p->user_byte_rate = 1024 * 1024;
    p->user_byte_burst = 4 * 1024 * 1024;
    p->project_msg_rate = 10000;
    p->project_msg_burst = 20000;
    p->project_byte_rate = 32 * 1024 * 1024;
    p->project_byte_burst = 128 * 1024 * 1024;
    p->storage_quota_mb = 10240;
    p->history_days = 7;
    p->history_max_per_conversation = 500;
    p->max_oinfo_bytes = 65535;
    p->max_pinfo_bytes = 65535;
    p->max_data_key_bytes = 128;
    p->max_data_value_bytes = 65535;
    p->max_data_keys_per_user = 1000;
    p->max_devices_per_user = 10;
    p->max_push_options_per_user = 1000;
    p->rtcat_max_sessions = 10000;
    p->rtcat_max_tokens = 100000;
    p->rtcat_max_live_days = 365;
    p->rtcat_day_seconds = 86400;
    p->p2server_allow[0] = '\0';
    p->p2server_timeout_ms = 5000;
    p->p2server_max_inflight = 100;
    p->p2server_max_inflight_per_user = 4;
    snprintf(p->sensitive_words_policy, sizeof p->sensitive_words_policy, "%s", "mask");
    p->max_file_bytes = 5 * 1024 * 1024;
    p->translate_timeout_ms = 5000;
    p->translate_max_inflight = 100;
}

/* Parses a decimal integer: an optional '-' and one or more digits, nothing
 * else. Returns 0, or -1 if it is not a number, or -2 if it is a number
 * outside min..max (including one too large for 64 bits). */
static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    int neg = 0;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    if (*s == '\0')
        return -1;
    uint64_t mag = 0;
    int overflow = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (mag > (UINT64_MAX - d) / 10)
            overflow = 1;
        else
            mag = mag * 10 + d;
    }
    if (overflow)
        return -2;
    int64_t v;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return -2;
        v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return -2;
        v = (int64_t)mag;
    }
    if (v < min || v > max)
        return -2;
    *out = v;
    return 0;
}

static int check_str(const setting *st, const char *value, char *msg)
{
    char eb[ECHO_MAX + 4];
    size_t len = strlen(value);
    if (len >= st->size) {
        set_msg(msg, "%s: value is too long (at most %zu bytes)", st->name, st->size - 1);
        return -1;
    }
    switch (st->rule) {
    case S_ANY:
        return 0;
    case S_ENDPOINT:
    case S_BASE_URL: {
        /* Sent to peers as is: printable ASCII without spaces or quotes. */
        for (const char *c = value; *c; c++)
            if (*c <= ' ' || *c > '~' || *c == '"' || *c == '\\') {
                set_msg(msg, "%s: only printable ASCII without spaces or quotes", st->name);
                return -1;
            }
        if (len == 0)
            return 0; /* derived from the listeners */
        const char *colon = strrchr(value, ':');
        if (st->rule == S_ENDPOINT && (!colon || colon == value || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535 ||
                                       strspn(colon + 1, "0123456789") != strlen(colon + 1))) {
            set_msg(msg, "%s: '%s' is not host:port", st->name, echo(value, eb));
            return -1;
        }
        if (st->rule == S_BASE_URL && strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
            set_msg(msg, "%s: '%s' must start with http:// or https://", st->name, echo(value, eb));
            return -1;
        }
        return 0;
    }
    case S_NONEMPTY:
        if (len == 0) {
            set_msg(msg, "%s: must not be empty", st->name);
            return -1;
        }
        return 0;
    case S_HOST: {
        unsigned char addr[16];
        if (inet_pton(AF_INET, value, addr) != 1 && inet_pton(AF_INET6, value, addr) != 1) {
            set_msg(msg, "%s: '%s' is not a numeric IPv4 or IPv6 address", st->name, echo(value, eb));
            return -1;
        }
        return 0;
    }
    case S_PATH:
        if (value[0] != '/') {
            set_msg(msg, "%s: '%s' must start with '/'", st->name, echo(value, eb));
            return -1;
        }
        for (const char *c = value; *c; c++)
            if (*c <= ' ' || *c >= 0x7F || *c == '?' || *c == '#') {
                set_msg(msg, "%s: '%s' may contain only printable ASCII without spaces, '?' or '#'", st->name,
                        echo(value, eb));
                return -1;
            }
        return 0;
    case S_REDIS:
        if (len && rtmd_redis_url_parse(value, NULL, 0, NULL, NULL) != 0) {
            set_msg(msg, "%s: '%s' is not redis://host[:port][/db]", st->name, echo(value, eb));
            return -1;
        }
        return 0;
    case S_NODE:
        if (len && !node_id_ok(value, len)) {
            set_msg(msg, "%s: '%s' must be 1..65535 or a name of at most %d letters, digits, '_' or '-'",
                    st->name, echo(value, eb), RTMD_NODE_ID_MAX - 1);
            return -1;
        }
        return 0;
    case S_WORDS_POLICY:
        if (strcmp(value, "mask") != 0 && strcmp(value, "refuse") != 0) {
            set_msg(msg, "%s: '%s' must be mask or refuse", st->name, echo(value, eb));
            return -1;
        }
        return 0;
    }
    return 0;
}

/* A secret of min..size-1 printable ASCII characters without spaces into
 * field; the message names the rule, never the value. */
static int set_printable(const setting *st, const char *value, size_t min, char *field, char *msg)
{
    size_t len = strlen(value);
    int ok = len >= min && len < st->size;
    for (size_t i = 0; ok && i < len; i++)
        if (value[i] <= ' ' || value[i] >= 0x7F)
            ok = 0;
    if (!ok) {
        set_msg(msg, "%s: must be %zu..%zu printable ASCII characters without spaces", st->name, min, st->size - 1);
        return -1;
    }
    memcpy(field, value, len + 1);
    return 0;
}

/* Validates value for st and stores it into base (an rtmd_config or an
 * rtmd_project_config). On error returns -1 with a message that starts with
 * the setting's name. value is valid UTF-8 without control characters. */
static int apply(const setting *st, void *base, const char *value, char *msg)
{
    char *field = (char *)base + st->offset;
    char eb[ECHO_MAX + 4];
    int64_t v = 0;
    switch (st->kind) {
    case K_PORT:
        if (parse_int(value, -1, 65535, &v) != 0) {
            set_msg(msg, "%s: '%s' is not a port (0..65535, or -1 to disable)", st->name, echo(value, eb));
            return -1;
        }
        *(int *)(void *)field = (int)v;
        return 0;
    case K_U32:
    case K_PID: {
        int rc = parse_int(value, st->min, st->max, &v);
        if (rc == -1) {
            set_msg(msg, "%s: '%s' is not a whole number", st->name, echo(value, eb));
            return -1;
        }
        if (rc == -2) {
            if (st->kind == K_PID)
                set_msg(msg, "%s: '%s' is out of range (1..2147483647: the RTM SDKs send the pid as a 32-bit integer)",
                        st->name, echo(value, eb));
            else
                set_msg(msg, "%s: '%s' is out of range (%lld..%lld)", st->name, echo(value, eb),
                        (long long)st->min, (long long)st->max);
            return -1;
        }
        if (st->kind == K_PID)
            *(int64_t *)(void *)field = v;
        else
            *(uint32_t *)(void *)field = (uint32_t)v;
        return 0;
    }
    case K_STR:
        if (check_str(st, value, msg) != 0)
            return -1;
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case K_LEVEL: {
        int level = rtm_log_parse_level(value);
        if (level < 0) {
            set_msg(msg, "%s: '%s' is not a log level (debug, info, warn, error or off)", st->name,
                    echo(value, eb));
            return -1;
        }
        *(int *)(void *)field = level;
        return 0;
    }
    case K_LOG_FORMAT: {
        int format = rtm_log_parse_format(value);
        if (format < 0) {
            set_msg(msg, "%s: '%s' is not a log format (text, logfmt or json)", st->name, echo(value, eb));
            return -1;
        }
        *(int *)(void *)field = format;
        return 0;
    }
    case K_SECRET:
        /* The secret itself never appears in a message. */
        return set_printable(st, value, 8, field, msg);
    case K_APP_ID: {
        size_t len = strlen(value);
        int ok = len == RTMD_APP_ID_LEN;
        for (size_t i = 0; ok && i < len; i++)
            if (!((value[i] >= '0' && value[i] <= '9') || (value[i] >= 'a' && value[i] <= 'z') ||
                  (value[i] >= 'A' && value[i] <= 'Z')))
                ok = 0;
        if (!ok) {
            set_msg(msg, "%s: '%s' must be exactly %d characters of 0-9, a-z, A-Z", st->name, echo(value, eb),
                    RTMD_APP_ID_LEN);
            return -1;
        }
        memcpy(field, value, len + 1);
        return 0;
    }
    case K_APP_KEY:
        /* Like the secret, the key never appears in a message. */
        return set_printable(st, value, 1, field, msg);
    case K_TOKEN:
        /* Empty turns what it guards off; like a secret, never echoed. */
        if (value[0] == '\0') {
            *(char *)field = '\0';
            return 0;
        }
        return set_printable(st, value, 16, field, msg);
    }
    return -1;
}

/* ---- cross-field rules ------------------------------------------------- */

/* Checks the rules that involve more than one setting. lines, if not NULL,
 * gives for each top-level setting the line that set it (0 if none), and
 * the message names the latest line involved. */
static int check_cross(const rtmd_config *cfg, const size_t *lines, size_t *line_out, char *msg)
{
    *line_out = 0;
    int ping = top_index("ping_interval"), idle = top_index("idle_timeout");
    if (cfg->ping_interval >= cfg->idle_timeout) {
        if (lines)
            *line_out = lines[ping] > lines[idle] ? lines[ping] : lines[idle];
        set_msg(msg, "ping_interval (%u) must be less than idle_timeout (%u)", (unsigned)cfg->ping_interval,
                (unsigned)cfg->idle_timeout);
        return -1;
    }
    if (cfg->ping_interval >= 60) {
        if (lines)
            *line_out = lines[ping];
        set_msg(msg, "ping_interval (%u) must be less than 60", (unsigned)cfg->ping_interval);
        return -1;
    }
    int store = top_index("store"), url = top_index("store_url");
    if (strcmp(cfg->store, "sqlite") != 0 && strcmp(cfg->store, "postgres") != 0) {
        if (lines)
            *line_out = lines[store];
        set_msg(msg, "store: must be sqlite or postgres");
        return -1;
    }
    if (strcmp(cfg->store, "postgres") == 0 && !cfg->store_url[0]) {
        if (lines)
            *line_out = lines[store];
        set_msg(msg, "store = postgres needs store_url (a libpq connection string)");
        return -1;
    }
    if (strcmp(cfg->store, "sqlite") == 0 && cfg->store_url[0]) {
        if (lines)
            *line_out = lines[url];
        set_msg(msg, "store_url is for store = postgres; the SQLite store lives in data_dir");
        return -1;
    }
    if (strcmp(cfg->room_push, "before_commit") != 0 && strcmp(cfg->room_push, "after_commit") != 0) {
        if (lines)
            *line_out = lines[top_index("room_push")];
        set_msg(msg, "room_push: must be before_commit or after_commit");
        return -1;
    }
    if (cfg->redis_url[0] && strcmp(cfg->store, "postgres") != 0) {
        if (lines)
            *line_out = lines[top_index("redis_url")];
        set_msg(msg, "redis_url (a cluster) needs store = postgres: the nodes share one store");
        return -1;
    }
    if (cfg->node_id[0] && !cfg->redis_url[0]) {
        if (lines)
            *line_out = lines[top_index("node_id")];
        set_msg(msg, "node_id is for a cluster: set redis_url too");
        return -1;
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        int given = top_index(cfg->tls_cert[0] ? "tls_cert" : "tls_key");
        if (lines)
            *line_out = lines[given];
        set_msg(msg, "tls_cert and tls_key go together: %s is set, %s is not", top_settings[given].name,
                cfg->tls_cert[0] ? "tls_key" : "tls_cert");
        return -1;
    }
    /* Listeners that are enabled on a fixed port must not share it; the
     * TLS ones are enabled only with a certificate. */
    static const char *const ports[] = {"client_tcp_port", "client_ws_port", "server_tcp_port", "http_port",
                                        "file_tcp_port",   "file_ws_port",   "client_wss_port", "https_port",
                                        "file_wss_port"};
    size_t nports = cfg->tls_cert[0] ? 9 : 6;
    for (size_t i = 0; i < nports; i++) {
        const setting *a = &top_settings[top_index(ports[i])];
        int pa = *(const int *)(const void *)((const char *)cfg + a->offset);
        for (size_t j = i + 1; j < nports; j++) {
            const setting *b = &top_settings[top_index(ports[j])];
            int pb = *(const int *)(const void *)((const char *)cfg + b->offset);
            if (pa > 0 && pa == pb) {
                if (lines) {
                    size_t la = lines[a - top_settings], lb = lines[b - top_settings];
                    *line_out = la > lb ? la : lb;
                }
                set_msg(msg, "%s and %s both use port %d", a->name, b->name, pa);
                return -1;
            }
        }
    }
    return 0;
}

int rtmd_config_check(const rtmd_config *cfg, const char *source, char *err, size_t errlen)
{
    char msg[MSG_MAX];
    size_t line;
    if (check_cross(cfg, NULL, &line, msg) != 0) {
        set_err(err, errlen, "%s: %s", source ? source : "configuration", msg);
        return -1;
    }
    return 0;
}

/* ---- the file format --------------------------------------------------- */

typedef struct parser {
    rtmd_config cfg; /* working copy, committed only on success */
    const char *source;
    size_t line;
    size_t top_lines[NTOP];         /* line that set each top-level setting */
    int in_project;                 /* a [project] section is open */
    size_t section_line;            /* line of its header */
    size_t project_lines[NPROJECT]; /* line that set each of its settings */
    char msg[MSG_MAX];
} parser;

/* Ends the open [project] section, if any, checking its required keys. */
static int end_section(parser *ps, size_t *line_out)
{
    if (!ps->in_project)
        return 0;
    ps->in_project = 0;
    *line_out = ps->section_line;
    if (ps->project_lines[0] == 0) {
        set_msg(ps->msg, "[project] section has no pid");
        return -1;
    }
    if (ps->project_lines[1] == 0) {
        set_msg(ps->msg, "[project] section has no secret");
        return -1;
    }
    /* app_id and app_key come as a pair. */
    int id_idx = 0, key_idx = 0;
    find_setting(project_settings, NPROJECT, "app_id", &id_idx);
    find_setting(project_settings, NPROJECT, "app_key", &key_idx);
    size_t id_line = ps->project_lines[id_idx], key_line = ps->project_lines[key_idx];
    if ((id_line == 0) != (key_line == 0)) {
        *line_out = id_line ? id_line : key_line;
        set_msg(ps->msg, "%s is set but %s is not: RTS tokens need both", id_line ? "app_id" : "app_key",
                id_line ? "app_key" : "app_id");
        return -1;
    }
    /* So do rtcat_apikey and rtcat_secret. */
    int ak_idx = 0, as_idx = 0;
    find_setting(project_settings, NPROJECT, "rtcat_apikey", &ak_idx);
    find_setting(project_settings, NPROJECT, "rtcat_secret", &as_idx);
    size_t ak_line = ps->project_lines[ak_idx], as_line = ps->project_lines[as_idx];
    if ((ak_line == 0) != (as_line == 0)) {
        *line_out = ak_line ? ak_line : as_line;
        set_msg(ps->msg, "%s is set but %s is not: the RealTimeCat API needs both",
                ak_line ? "rtcat_apikey" : "rtcat_secret", ak_line ? "rtcat_secret" : "rtcat_apikey");
        return -1;
    }
    /* An app_id names its project to RTS logins, an rtcat_apikey to the
     * RealTimeCat API: two projects cannot share one. */
    const rtmd_project_config *cur = &ps->cfg.projects[ps->cfg.nprojects - 1];
    for (size_t i = 0; i + 1 < ps->cfg.nprojects; i++) {
        const rtmd_project_config *o = &ps->cfg.projects[i];
        bool app_id = id_line && strcmp(o->app_id, cur->app_id) == 0;
        if (app_id || (ak_line && strcmp(o->rtcat_apikey, cur->rtcat_apikey) == 0)) {
            *line_out = app_id ? id_line : ak_line;
            set_msg(ps->msg, "%s is also project %lld's: it names the project", app_id ? "app_id" : "rtcat_apikey",
                    (long long)o->pid);
            return -1;
        }
    }
    /* A project with an app_id (RTS) has its own defaults. */
    if (id_line) {
        int ml_idx = 0, mb_idx = 0;
        find_setting(project_settings, NPROJECT, "multi_login", &ml_idx);
        find_setting(project_settings, NPROJECT, "max_msg_bytes", &mb_idx);
        rtmd_project_config_rts_defaults(&ps->cfg.projects[ps->cfg.nprojects - 1], ps->project_lines[ml_idx] == 0,
                                         ps->project_lines[mb_idx] == 0);
    }
    return 0;
}

void rtmd_project_config_rts_defaults(rtmd_project_config *p, bool multi_login, bool max_msg_bytes)
{
    if (multi_login)
        p->multi_login = 0;
    if (max_msg_bytes)
        p->max_msg_bytes = RTMD_RTS_MAX_MSG_BYTES;
}

static int begin_section(parser *ps)
{
    size_t at;
    if (end_section(ps, &at) != 0) {
        ps->line = at;
        return -1;
    }
    if (ps->cfg.nprojects >= RTMD_MAX_PROJECTS) {
        set_msg(ps->msg, "too many projects (at most %d)", RTMD_MAX_PROJECTS);
        return -1;
    }
    rtmd_project_config_defaults(&ps->cfg.projects[ps->cfg.nprojects]);
    ps->cfg.nprojects++;
    ps->in_project = 1;
    ps->section_line = ps->line;
    memset(ps->project_lines, 0, sizeof ps->project_lines);
    return 0;
}

static int set_key(parser *ps, const char *key, const char *value)
{
    char eb[ECHO_MAX + 4];
    int idx;
    if (ps->in_project) {
        const setting *st = find_setting(project_settings, NPROJECT, key, &idx);
        if (st == NULL) {
            if (find_setting(top_settings, NTOP, key, &idx) != NULL)
                set_msg(ps->msg, "'%s' is a top-level setting; it must come before the first [project]", key);
            else
                set_msg(ps->msg, "unknown project setting '%s'", echo(key, eb));
            return -1;
        }
        if (ps->project_lines[idx] != 0) {
            set_msg(ps->msg, "%s is set twice in this section (first on line %zu)", key, ps->project_lines[idx]);
            return -1;
        }
        rtmd_project_config *p = &ps->cfg.projects[ps->cfg.nprojects - 1];
        if (apply(st, p, value, ps->msg) != 0)
            return -1;
        if (st->kind == K_PID)
            for (size_t i = 0; i + 1 < ps->cfg.nprojects; i++)
                if (ps->cfg.projects[i].pid == p->pid) {
                    set_msg(ps->msg, "pid: project %lld is already defined", (long long)p->pid);
                    return -1;
                }
        ps->project_lines[idx] = ps->line;
        return 0;
    }
    const setting *st = find_setting(top_settings, NTOP, key, &idx);
    if (st == NULL) {
        if (find_setting(project_settings, NPROJECT, key, &idx) != NULL)
            set_msg(ps->msg, "'%s' belongs in a [project] section", key);
        else
            set_msg(ps->msg, "unknown setting '%s'", echo(key, eb));
        return -1;
    }
    if (ps->top_lines[idx] != 0) {
        set_msg(ps->msg, "%s is set twice (first on line %zu)", key, ps->top_lines[idx]);
        return -1;
    }
    if (apply(st, &ps->cfg, value, ps->msg) != 0)
        return -1;
    ps->top_lines[idx] = ps->line;
    return 0;
}

/* After a value or a section header: only whitespace and a comment may
 * follow. */
static int rest_is_empty(const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        p++;
    return p == end || *p == '#';
}

/* Parses one line (without its line ending), already checked by check_text. */
static int parse_line(parser *ps, const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        p++;
    if (p == end || *p == '#')
        return 0;

    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (close != NULL && close - p == 8 && memcmp(p, "[project]", 9) == 0) {
            if (!rest_is_empty(close + 1, end)) {
                set_msg(ps->msg, "unexpected text after [project]");
                return -1;
            }
            return begin_section(ps);
        }
        set_msg(ps->msg, "unknown section (the only section is [project])");
        return -1;
    }

    char key[VALUE_MAX];
    const char *k = p;
    while (p < end && !is_ws(*p) && *p != '=' && *p != '#')
        p++;
    size_t klen = (size_t)(p - k);
    if (klen == 0) {
        set_msg(ps->msg, "missing setting name before '='");
        return -1;
    }
    if (klen >= sizeof key) {
        set_msg(ps->msg, "setting name is too long");
        return -1;
    }
    memcpy(key, k, klen);
    key[klen] = '\0';
    while (p < end && is_ws(*p))
        p++;
    if (p == end || *p != '=') {
        char eb[ECHO_MAX + 4];
        set_msg(ps->msg, "expected '=' after '%s' (lines are 'key = value')", echo(key, eb));
        return -1;
    }
    p++;
    int after_ws = 0;
    while (p < end && is_ws(*p)) {
        p++;
        after_ws = 1;
    }

    char value[VALUE_MAX];
    size_t vlen = 0;
    if (p < end && *p == '"') {
        p++;
        for (;;) {
            if (p == end) {
                set_msg(ps->msg, "%s: missing closing '\"'", key);
                return -1;
            }
            char c = *p++;
            if (c == '"')
                break;
            if (c == '\\') {
                if (p == end || (*p != '"' && *p != '\\')) {
                    set_msg(ps->msg, "%s: inside quotes '\\' may only be followed by '\"' or '\\'", key);
                    return -1;
                }
                c = *p++;
            }
            if (vlen + 1 >= sizeof value) {
                set_msg(ps->msg, "%s: value is too long", key);
                return -1;
            }
            value[vlen++] = c;
        }
        if (!rest_is_empty(p, end)) {
            set_msg(ps->msg, "%s: unexpected text after the closing '\"'", key);
            return -1;
        }
    } else if (p < end && *p == '#' && after_ws) {
        /* "key = # comment": an empty value. */
    } else {
        while (p < end && !is_ws(*p)) {
            if (*p == '#') {
                set_msg(ps->msg, "%s: a value containing '#' must be double-quoted", key);
                return -1;
            }
            if (*p == '"') {
                set_msg(ps->msg, "%s: stray '\"' (double-quote the whole value)", key);
                return -1;
            }
            if (vlen + 1 >= sizeof value) {
                set_msg(ps->msg, "%s: value is too long", key);
                return -1;
            }
            value[vlen++] = *p++;
        }
        if (!rest_is_empty(p, end)) {
            set_msg(ps->msg, "%s: a value containing spaces must be double-quoted", key);
            return -1;
        }
    }
    value[vlen] = '\0';
    return set_key(ps, key, value);
}

int rtmd_config_parse(rtmd_config *cfg, const char *text, size_t len, const char *source, char *err,
                      size_t errlen)
{
    parser *ps = calloc(1, sizeof *ps);
    if (ps == NULL) {
        set_err(err, errlen, "%s: out of memory", source ? source : "configuration");
        return -1;
    }
    ps->cfg = *cfg;
    ps->source = source ? source : "configuration";
    int rc = -1;

    const char *p = text, *end = text + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) /* a byte order mark */
        p += 3;
    while (p < end) {
        ps->line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if (eol > p && eol[-1] == '\r')
            eol--;
        if (check_text(p, (size_t)(eol - p), ps->msg) != 0 || parse_line(ps, p, eol) != 0)
            goto fail;
        p = nl ? nl + 1 : end;
    }
    size_t at;
    if (end_section(ps, &at) != 0) {
        ps->line = at;
        goto fail;
    }
    if (check_cross(&ps->cfg, ps->top_lines, &at, ps->msg) != 0) {
        if (at == 0)
            set_err(err, errlen, "%s: %s", ps->source, ps->msg);
        else
            set_err(err, errlen, "%s:%zu: %s", ps->source, at, ps->msg);
        goto out;
    }
    *cfg = ps->cfg;
    rc = 0;
    goto out;
fail:
    set_err(err, errlen, "%s:%zu: %s", ps->source, ps->line, ps->msg);
out:
    free(ps);
    return rc;
}

int rtmd_config_load_file(rtmd_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    int rc = -1;
    if (ferror(f)) {
        set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    } else if (n > CONFIG_FILE_MAX) {
        set_err(err, errlen, "%s: file is larger than %d bytes", path, CONFIG_FILE_MAX);
    } else {
        rc = rtmd_config_parse(cfg, buf, n, path, err, errlen);
    }
    free(buf);
    fclose(f);
    return rc;
}

int rtmd_config_set(rtmd_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    char msg[MSG_MAX];
    int idx;
    const setting *st = find_setting(top_settings, NTOP, key, &idx);
    if (st == NULL) {
        char eb[ECHO_MAX + 4];
        if (check_text(key, strlen(key), msg) != 0)
            set_err(err, errlen, "--?: unknown setting");
        else
            set_err(err, errlen, "--%s: unknown setting", echo(key, eb));
        return -1;
    }
    if (check_text(value, strlen(value), msg) != 0) {
        set_err(err, errlen, "--%s: %s", key, msg);
        return -1;
    }
    if (strlen(value) >= VALUE_MAX) {
        set_err(err, errlen, "--%s: value is too long", key);
        return -1;
    }
    rtmd_config work = *cfg;
    if (apply(st, &work, value, msg) != 0) {
        set_err(err, errlen, "--%s", msg);
        return -1;
    }
    *cfg = work;
    return 0;
}

const rtmd_project_config *rtmd_config_project(const rtmd_config *cfg, int64_t pid)
{
    for (size_t i = 0; i < cfg->nprojects; i++)
        if (cfg->projects[i].pid == pid)
            return &cfg->projects[i];
    return NULL;
}

uint32_t rtmd_config_file_max_packet(const rtmd_config *cfg)
{
    rtmd_project_config defaults;
    rtmd_project_config_defaults(&defaults);
    uint32_t largest = cfg->nprojects ? 0 : defaults.max_file_bytes;
    for (size_t i = 0; i < cfg->nprojects; i++)
        if (cfg->projects[i].max_file_bytes > largest)
            largest = cfg->projects[i].max_file_bytes;
    return largest + RTMD_FILE_PACKET_OVERHEAD;
}

/* ---- reload ------------------------------------------------------------ */

/* The value of st in base as text for a log line; secrets and keys never. */
static const char *value_text(const setting *st, const void *base, char *buf, size_t cap)
{
    const char *field = (const char *)base + st->offset;
    switch (st->kind) {
    case K_LEVEL:
        return rtm_log_level_name(*(const int *)(const void *)field);
    case K_LOG_FORMAT:
        return rtm_log_format_name(*(const int *)(const void *)field);
    case K_PORT:
        snprintf(buf, cap, "%d", *(const int *)(const void *)field);
        return buf;
    case K_U32:
        snprintf(buf, cap, "%u", *(const uint32_t *)(const void *)field);
        return buf;
    case K_PID:
        snprintf(buf, cap, "%lld", (long long)*(const int64_t *)(const void *)field);
        return buf;
    case K_SECRET:
    case K_APP_KEY:
    case K_TOKEN:
        return "(secret)";
    case K_STR:
    case K_APP_ID:
        snprintf(buf, cap, "\"%s\"", field);
        return buf;
    }
    return "?";
}

static bool same_value(const setting *st, const void *a, const void *b)
{
    const char *fa = (const char *)a + st->offset, *fb = (const char *)b + st->offset;
    if (st->kind == K_STR || st->kind == K_SECRET || st->kind == K_APP_ID || st->kind == K_APP_KEY ||
        st->kind == K_TOKEN)
        return strcmp(fa, fb) == 0;
    return memcmp(fa, fb, st->size) == 0;
}

/* Reports and applies the differences of one table between cur and next. */
static void reload_table(const setting *table, int n, void *cur, const void *next, int64_t pid,
                         rtmd_config_change_fn fn, void *arg)
{
    for (int i = 0; i < n; i++) {
        const setting *st = &table[i];
        if (same_value(st, cur, next))
            continue;
        char from[600], to[600];
        fn(arg, pid, st->name, value_text(st, cur, from, sizeof from), value_text(st, next, to, sizeof to), st->live);
        if (st->live)
            memcpy((char *)cur + st->offset, (const char *)next + st->offset, st->size);
    }
}

void rtmd_config_reload(rtmd_config *cur, const rtmd_config *next, rtmd_config_change_fn fn, void *arg)
{
    reload_table(top_settings, NTOP, cur, next, 0, fn, arg);
    if (!cur->nprojects != !next->nprojects) {
        /* Projects come from the store or from the configuration (server.c):
         * switching between the two takes a restart. */
        fn(arg, 0, "[project]", cur->nprojects ? "configured" : "none (the store's)",
           next->nprojects ? "configured" : "none (the store's)", false);
        return;
    }
    size_t kept = 0;
    for (size_t i = 0; i < cur->nprojects; i++) {
        rtmd_project_config *p = &cur->projects[i];
        const rtmd_project_config *q = rtmd_config_project(next, p->pid);
        if (!q) {
            fn(arg, p->pid, "[project]", "present", "removed", true);
            continue;
        }
        reload_table(project_settings, NPROJECT, p, q, p->pid, fn, arg);
        if (kept != i)
            cur->projects[kept] = *p;
        kept++;
    }
    cur->nprojects = kept;
    /* What is kept and what is added are both next's projects: they fit. */
    for (size_t i = 0; i < next->nprojects; i++)
        if (!rtmd_config_project(cur, next->projects[i].pid)) {
            fn(arg, next->projects[i].pid, "[project]", "absent", "added", true);
            cur->projects[cur->nprojects++] = next->projects[i];
        }
}

void rtmd_config_drop_project(rtmd_config *cfg, int64_t pid)
{
    for (size_t i = 0; i < cfg->nprojects; i++)
        if (cfg->projects[i].pid == pid) {
            memmove(&cfg->projects[i], &cfg->projects[i + 1], (cfg->nprojects - i - 1) * sizeof cfg->projects[0]);
            cfg->nprojects--;
            return;
        }
}
