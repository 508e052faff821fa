/* rtmctl_http.c — one bounded HTTP request through libcurl (rtmctl_http.h). */
#include "rtmctl_http.h"

#include <stdlib.h>
#include <string.h>

static size_t collect(char *ptr, size_t size, size_t n, void *arg)
{
    ctl_http_body *b = arg;
    size_t add = size * n;
    if (add > b->max - b->len) {
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

CURLcode ctl_http(const char *method, const char *url, struct curl_slist *headers, const char *form, long timeout_ms,
                  ctl_http_body *body, long *status, char err[CURL_ERROR_SIZE])
{
    err[0] = '\0';
    *status = 0;
    CURL *h = curl_easy_init();
    if (!h) {
        strcpy(err, "cannot start libcurl");
        return CURLE_FAILED_INIT;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)body->max);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "rtmctl");
    if (form)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK && !err[0])
        snprintf(err, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
    return rc;
}
