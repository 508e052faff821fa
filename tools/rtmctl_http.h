/* rtmctl_http.h — one HTTP request of rtmctl through libcurl (rtmctl_http.c):
 * the RealTimeCat REST commands and `stats` (/metrics). */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* An answer body, NUL-terminated, at most the request's max bytes. */
typedef struct ctl_http_body {
    char *data;
    size_t len;
    size_t max;
    bool too_big;
} ctl_http_body;

/* Sends METHOD url (http or https only) with headers and, unless NULL, the
 * form as its body; waits at most timeout_ms in all. Fills body (the caller
 * frees body->data) and *status. CURLE_OK, or the error with a message in
 * err (CURLE_FILESIZE_EXCEEDED or body->too_big: the answer is over max). */
CURLcode ctl_http(const char *method, const char *url, struct curl_slist *headers, const char *form, long timeout_ms,
                  ctl_http_body *body, long *status, char err[CURL_ERROR_SIZE]);
