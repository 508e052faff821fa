/* rtmctl_stats.h — `rtmctl stats ADDR` (rtmctl_stats.c). */
#pragma once

#include <stdbool.h>

/* Reports what the rtmd whose /metrics is at url does, every interval_s
 * seconds, count times (0: until SIGINT or SIGTERM), as a table or JSON
 * lines. Returns rtmctl's exit status: 0, or 1 when /metrics cannot be read
 * (the reason on stderr). */
int rtmctl_stats(const char *url, double interval_s, long count, bool json, long timeout_ms);
