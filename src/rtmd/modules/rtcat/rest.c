/* The RealTimeCat REST v0.4 API on the HTTP gate: every path under
 * /v0.4/, authenticated by X-RTCAT-APIKEY and X-RTCAT-SECRET (which name
 * the project), the parsing of request bodies (form or JSON) and paging
 * queries, and the JSON objects and error answers that writes.c and the
 * demo backend answer with too. Changes are writes.c's. */
#include "rtcat_internal.h"

#include "utf8.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- JSON ---- */

/* ISO-8601 UTC with `digits` (3 or 6) fraction digits. */
static void iso_time(int64_t us, int digits, char out[64])
{
    time_t secs = (time_t)(us / 1000000);
    int64_t frac = us % 1000000;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char head[32];
    strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    if (digits == 3)
        snprintf(out, 64, "%s.%03dZ", head, (int)(frac / 1000));
    else
        snprintf(out, 64, "%s.%06dZ", head, (int)frac);
}

json_t *rc_obj_json(const rc_obj *o, const char *session_id)
{
    char created[64], expire[64];
    iso_time(o->created_us, 6, created);
    json_t *j = json_object();
    if (!j)
        return NULL;
    json_object_set_new(j, "uuid", json_string(o->uuid));
    if (session_id)
        json_object_set_new(j, "session_id", json_string(session_id));
    json_object_set_new(j, "label", o->label ? json_string(o->label) : json_null());
    json_object_set_new(j, "type",
                        json_string(session_id ? (o->type ? "sub" : "pub") : (o->type ? "rel" : "p2p")));
    json_object_set_new(j, "permanent", json_boolean(o->permanent));
    json_object_set_new(j, "data", o->data ? json_string(o->data) : json_null());
    json_object_set_new(j, "time_created", json_string(created));
    json_object_set_new(j, "live_days", json_integer(o->live_days));
    if (o->permanent) {
        json_object_set_new(j, "expire_in", json_null());
    } else {
        iso_time(o->expire_us, 3, expire);
        json_object_set_new(j, "expire_in", json_string(expire));
    }
    return j;
}

/* Answers j (taken) with the status, or 500 when it cannot be encoded. */
void rc_send_json(rtmd_conn *c, const http_request *req, http_deferred *d, int status, json_t *j,
                  const char *headers)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    char hdr[HTTP_EXTRA_HEADERS_MAX];
    snprintf(hdr, sizeof hdr, "%s%s", RC_JSON_HEADERS, headers ? headers : "");
    static const char oom[] = "{\"error\":\"internal\",\"description\":\"out of memory\"}";
    const char *body = text ? text : oom;
    if (!text)
        status = 500;
    if (d)
        http_deferred_respond(d, status, "application/json", hdr, body, strlen(body));
    else
        http_respond_with(c, req, status, "application/json", hdr, body, strlen(body));
    free(text);
}

void rc_send_error(rtmd_conn *c, const http_request *req, http_deferred *d, int status, const char *code,
                   const char *description)
{
    json_t *j = json_object();
    if (j) {
        json_object_set_new(j, "error", json_string(code));
        json_object_set_new(j, "description", json_string(description));
    }
    rc_send_json(c, req, d, status, j, NULL);
}

void rc_bad_param(rtmd_conn *c, const http_request *req, const char *description)
{
    rc_send_error(c, req, NULL, 400, "invalid_parameter", description);
}

static void not_found(rtmd_conn *c, const http_request *req)
{
    rc_send_error(c, req, NULL, 404, "not_found", "no such session or token");
}

/* ---- request bodies and queries ---- */

void rc_fields_clear(rc_fields *f)
{
    free(f->label);
    free(f->data);
}

static bool parse_u32(const char *v, uint32_t max, uint32_t *out)
{
    if (!v || !*v || strlen(v) > 10)
        return false;
    uint64_t n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (n > max)
        return false;
    *out = (uint32_t)n;
    return true;
}

/* Sets field key from v (NULL: null). Returns NULL, or what is wrong. */
static const char *field_set(rc_fields *f, const char *key, const char *v)
{
    if (strcmp(key, "label") == 0 || strcmp(key, "data") == 0) {
        bool label = key[0] == 'l';
        size_t max = label ? RC_LABEL_MAX : RC_DATA_MAX;
        char **slot = label ? &f->label : &f->data;
        if (v && strlen(v) > max)
            return label ? "label: at most 255 bytes" : "data: at most 1024 bytes";
        if (v && !rtm_utf8_valid(v, strlen(v)))
            return label ? "label: not UTF-8" : "data: not UTF-8";
        free(*slot);
        *slot = v && *v ? strdup(v) : NULL;
        if (v && *v && !*slot)
            return "out of memory";
        if (label)
            f->has_label = true;
        else
            f->has_data = true;
        return NULL;
    }
    if (strcmp(key, "live_days") == 0) {
        if (!parse_u32(v, UINT32_MAX, &f->live_days) || f->live_days == 0)
            return "live_days: a positive integer";
        f->has_live_days = true;
        return NULL;
    }
    if (strcmp(key, "type") == 0) {
        if (!v || strlen(v) >= sizeof f->type)
            return "type: p2p or rel for a session, pub or sub for a token";
        snprintf(f->type, sizeof f->type, "%s", v);
        f->has_type = true;
        return NULL;
    }
    if (strcmp(key, "permanent") == 0) {
        if (v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0))
            f->permanent = true;
        else if (v && (strcmp(v, "false") == 0 || strcmp(v, "0") == 0))
            f->permanent = false;
        else
            return "permanent: true or false";
        f->has_permanent = true;
        return NULL;
    }
    if (strcmp(key, "number") == 0) {
        if (!parse_u32(v, UINT32_MAX, &f->number) || f->number == 0 || f->number > RC_NUMBER_MAX)
            return "number: 1 to 100";
        f->has_number = true;
        return NULL;
    }
    return NULL; /* other fields are ignored */
}

static const char *parse_form(const char *body, size_t len, rc_fields *f)
{
    static char key[64];
    char *val = malloc(len + 1);
    if (!val)
        return "out of memory";
    const char *err = NULL;
    for (size_t pos = 0; pos < len && !err;) {
        const char *p = body + pos, *amp = memchr(p, '&', len - pos);
        size_t n = amp ? (size_t)(amp - p) : len - pos;
        pos += n + 1;
        if (n == 0)
            continue;
        const char *eq = memchr(p, '=', n);
        size_t kn = eq ? (size_t)(eq - p) : n;
        long klen = http_url_decode(p, kn, key, sizeof key);
        if (klen < 0)
            continue; /* a key longer than any field: not one of ours */
        if (http_url_decode(eq ? eq + 1 : p + n, eq ? n - kn - 1 : 0, val, len + 1) < 0) {
            err = "a form value is badly escaped";
            break;
        }
        err = field_set(f, key, val);
    }
    free(val);
    return err;
}

static const char *parse_json(const char *body, size_t len, rc_fields *f)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return "the body is not a JSON object";
    }
    const char *key, *err = NULL;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (err)
            break;
        char num[32];
        const char *s;
        if (json_is_null(v))
            s = NULL;
        else if (json_is_string(v))
            s = json_string_value(v);
        else if (json_is_integer(v) && json_integer_value(v) >= 0) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            s = num;
        } else if (json_is_boolean(v))
            s = json_is_true(v) ? "true" : "false";
        else {
            if (strcmp(key, "label") == 0 || strcmp(key, "data") == 0 || strcmp(key, "live_days") == 0 ||
                strcmp(key, "type") == 0 || strcmp(key, "permanent") == 0 || strcmp(key, "number") == 0)
                err = "a field has the wrong JSON type";
            continue;
        }
        if (json_is_string(v) && strlen(s) != json_string_length(v))
            err = "a string holds a NUL";
        else
            err = field_set(f, key, s);
    }
    json_decref(root);
    return err;
}

/* Parses the request body into f; answers 400 and returns false when bad. */
bool rc_parse_body(rtmd_conn *c, const http_request *req, rc_fields *f)
{
    const char *type = http_request_header(req, "content-type");
    const char *err;
    if (type && strncasecmp(type, "application/json", 16) == 0)
        err = parse_json(req->body, req->body_len, f);
    else
        err = parse_form(req->body ? req->body : "", req->body_len, f);
    if (err) {
        rc_bad_param(c, req, err);
        return false;
    }
    return true;
}

/* page and page_size; answers 400 and returns false when bad. */
static bool parse_paging(rtmd_conn *c, const http_request *req, uint32_t *page, uint32_t *size)
{
    char v[32];
    *page = 1;
    *size = RC_PAGE_SIZE_DEFAULT;
    int r = http_query_param(req->query, "page", v, sizeof v);
    if (r < 0 || (r == 1 && (!parse_u32(v, 100000000, page) || *page == 0))) {
        rc_bad_param(c, req, "page: an integer from 1");
        return false;
    }
    r = http_query_param(req->query, "page_size", v, sizeof v);
    if (r < 0 || (r == 1 && (!parse_u32(v, RC_PAGE_SIZE_MAX, size) || *size == 0))) {
        rc_bad_param(c, req, "page_size: an integer from 1 to 100");
        return false;
    }
    return true;
}

/* ---- routes ---- */

typedef enum { F_ALL, F_PERMANENT, F_NONPERMANENT } list_filter;

static bool filter_ok(const rc_obj *o, list_filter f)
{
    return f == F_ALL || (f == F_PERMANENT) == o->permanent;
}

/* One page of the sessions of rp (s NULL) or of the tokens of s. */
static void list_objects(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, list_filter filter)
{
    uint32_t page, size;
    if (!parse_paging(c, req, &page, &size))
        return;
    int64_t now = rc_now_us();
    uint64_t skip = (uint64_t)(page - 1) * size, total = 0;
    json_t *arr = json_array();
    if (!s) {
        for (rc_session *x = rp->first; x; x = x->next) {
            if (rc_obj_expired(&x->o, now) || !filter_ok(&x->o, filter))
                continue;
            if (total >= skip && total < skip + size)
                json_array_append_new(arr, rc_obj_json(&x->o, NULL));
            total++;
        }
    } else {
        for (rc_token *t = s->first; t; t = t->next) {
            if (rc_obj_expired(&t->o, now) || !filter_ok(&t->o, filter))
                continue;
            if (total >= skip && total < skip + size)
                json_array_append_new(arr, rc_obj_json(&t->o, s->o.uuid));
            total++;
        }
    }
    char hdr[64];
    snprintf(hdr, sizeof hdr, "X-Total-Count: %llu\r\n", (unsigned long long)total);
    rc_send_json(c, req, NULL, 200, arr, hdr);
}

static void method_not_allowed(rtmd_conn *c, const http_request *req)
{
    rc_send_error(c, req, NULL, 405, "method_not_allowed", "this resource does not answer that method");
}

static bool is(const http_request *req, const char *m)
{
    if (strcmp(m, "GET") == 0 && strcmp(req->method, "HEAD") == 0)
        return true;
    return strcmp(req->method, m) == 0;
}

/* The project whose API key and secret the request carries, or NULL. */
static rc_project *authenticate(struct rtcat_state *st, const http_request *req)
{
    const char *key = http_request_header(req, "x-rtcat-apikey");
    const char *secret = http_request_header(req, "x-rtcat-secret");
    if (!key || !secret)
        return NULL;
    for (size_t i = 0; i < st->nprojects; i++) {
        const rtmd_project_config *l = &st->projects[i].p->limits;
        if (!st->projects[i].on || strcmp(l->rtcat_apikey, key) != 0)
            continue;
        size_t n = strlen(l->rtcat_secret);
        if (strlen(secret) == n && CRYPTO_memcmp(l->rtcat_secret, secret, n) == 0)
            return &st->projects[i];
        return NULL;
    }
    return NULL;
}

/* Every path under /v0.4/. */
void rc_route_api(rtmd_conn *c, const http_request *req)
{
    struct rtcat_state *st = rc_state(c->srv);
    if (req->body_len > RC_BODY_MAX) {
        rc_send_error(c, req, NULL, 413, "body_too_large", "the body is over 16 KiB");
        return;
    }
    rc_project *rp = st ? authenticate(st, req) : NULL;
    if (!rp) {
        rc_send_error(c, req, NULL, 401, "unauthorized", "missing or wrong X-RTCAT-APIKEY / X-RTCAT-SECRET");
        return;
    }
    /* Up to five segments after /v0.4/. */
    char path[sizeof req->path];
    snprintf(path, sizeof path, "%s", req->path + strlen("/v0.4/"));
    const char *seg[6] = {0};
    size_t nseg = 0;
    for (char *p = path, *save = NULL, *tok; (tok = strtok_r(p, "/", &save)) != NULL; p = NULL) {
        if (nseg == 6) {
            not_found(c, req);
            return;
        }
        seg[nseg++] = tok;
    }
    int64_t now = rc_now_us();
    if (nseg >= 1 && strcmp(seg[0], "sessions") == 0) {
        if (nseg == 1) {
            if (is(req, "GET"))
                list_objects(c, req, rp, NULL, F_ALL);
            else if (is(req, "POST")) {
                rc_fields f = {0};
                if (rc_parse_body(c, req, &f))
                    rc_create_session(c, req, rp, &f, 201, NULL);
                rc_fields_clear(&f);
            } else
                method_not_allowed(c, req);
            return;
        }
        if (nseg == 2 && (strcmp(seg[1], "permanent") == 0 || strcmp(seg[1], "nonpermanent") == 0)) {
            if (is(req, "GET"))
                list_objects(c, req, rp, NULL, seg[1][0] == 'p' ? F_PERMANENT : F_NONPERMANENT);
            else
                method_not_allowed(c, req);
            return;
        }
        rc_session *s = rc_session_get(st, rp, seg[1], strlen(seg[1]));
        if (s && rc_obj_expired(&s->o, now))
            s = NULL;
        if (nseg == 2) {
            if (!is(req, "GET") && !is(req, "PATCH") && !is(req, "DELETE"))
                method_not_allowed(c, req);
            else if (!s)
                not_found(c, req);
            else if (is(req, "GET"))
                rc_send_json(c, req, NULL, 200, rc_obj_json(&s->o, NULL), NULL);
            else if (is(req, "PATCH"))
                rc_patch_object(c, req, rp, s, NULL);
            else
                rc_delete_object(c, req, rp, s, NULL);
            return;
        }
        if (strcmp(seg[2], "tokens") == 0 && nseg == 3) {
            if (!is(req, "GET") && !is(req, "POST"))
                method_not_allowed(c, req);
            else if (!s)
                not_found(c, req);
            else if (is(req, "GET"))
                list_objects(c, req, rp, s, F_ALL);
            else {
                rc_fields f = {0};
                if (rc_parse_body(c, req, &f))
                    rc_create_tokens(c, req, rp, s, &f, 201);
                rc_fields_clear(&f);
            }
            return;
        }
        if (strcmp(seg[2], "tokens") == 0 && nseg == 4 &&
            (strcmp(seg[3], "permanent") == 0 || strcmp(seg[3], "nonpermanent") == 0)) {
            if (!is(req, "GET"))
                method_not_allowed(c, req);
            else if (!s)
                not_found(c, req);
            else
                list_objects(c, req, rp, s, seg[3][0] == 'p' ? F_PERMANENT : F_NONPERMANENT);
            return;
        }
    } else if (nseg == 2 && strcmp(seg[0], "tokens") == 0) {
        rc_token *t = rc_token_get(st, rp, seg[1], strlen(seg[1]));
        if (t && rc_token_expired(t, now))
            t = NULL;
        if (!is(req, "GET") && !is(req, "PATCH") && !is(req, "DELETE"))
            method_not_allowed(c, req);
        else if (!t)
            not_found(c, req);
        else if (is(req, "GET"))
            rc_send_json(c, req, NULL, 200, rc_obj_json(&t->o, t->s->o.uuid), NULL);
        else if (is(req, "PATCH"))
            rc_patch_object(c, req, rp, t->s, t);
        else
            rc_delete_object(c, req, rp, t->s, t);
        return;
    }
    rc_send_error(c, req, NULL, 404, "not_found", "no such resource");
}

