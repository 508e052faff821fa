/* The HTTP gate's router (http.c): the handler of rtmd_http_handler. */
#ifndef RTMD_HTTP_H
#define RTMD_HTTP_H

#include "http_request.h"
#include "server.h"

void rtmd_http_handle(rtmd_conn *c, const http_request *req);

#endif
