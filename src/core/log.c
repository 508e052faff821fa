/* Levelled logging to stderr (see log.h): one line per event, with a UTC
 * timestamp and the level, written with a single fputs so that lines from
 * the writer thread and the event loop do not interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum rtm_log_level current_level = RTM_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void rtm_log_set_level(enum rtm_log_level level)
{
    current_level = level;
}

int rtm_log_parse_level(const char *name)
{
    for (int i = 0; i <= RTM_LOG_OFF; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void rtm_log(enum rtm_log_level level, const char *fmt, ...)
{
    if (level < current_level)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len] = '\n';
    line[len + 1] = '\0';
    fputs(line, stderr);
}
