/* stages.h — rtmd's stage histograms over rtm-bench's measured window:
 * /metrics (the rtmd_stage_* series, docs/performance.md) read at the
 * window's start and end, and their difference written as Prometheus text,
 * so that the table bench/report.py draws from it covers the window only
 * (not log-in, warm-up and drain). */
#ifndef RTM_BENCH_STAGES_H
#define RTM_BENCH_STAGES_H

#include <stddef.h>

/* The rtmd_stage_* samples of one scrape: series text and value, in the
 * order /metrics printed them. */
typedef struct stages_snap {
    char **series;
    double *value;
    size_t n, cap;
} stages_snap;

/* Reads http://ADDR/metrics (ADDR "HOST:PORT", HOST in 127.0.0.0/8; one
 * blocking request, at most 2 s) into *out, which is emptied first. 0, or
 * -1 with the reason in err. */
int stages_scrape(const char *addr, stages_snap *out, char *err, size_t errlen);

/* Writes "series value" lines of end minus start for every series in end
 * (a series missing from start counts from 0) to path. 0, or -1. */
int stages_write_delta(const stages_snap *start, const stages_snap *end, const char *path);

void stages_free(stages_snap *s);

#endif
