/* The route of `GET /metrics` (metrics.c), which server.c registers: it
 * reads every layer, so it sits above them all. */
#ifndef RTMD_METRICS_H
#define RTMD_METRICS_H

#include "http.h"

extern const rtmd_http_route metrics_route;

#endif
