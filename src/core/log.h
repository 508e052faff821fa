/* Levelled logging to stderr, shared by rtmd, librtm and the tools. */
#ifndef RTM_LOG_H
#define RTM_LOG_H

enum rtm_log_level { RTM_LOG_DEBUG = 0, RTM_LOG_INFO, RTM_LOG_WARN, RTM_LOG_ERROR, RTM_LOG_OFF };

void rtm_log_set_level(enum rtm_log_level level);
/* Parses "debug", "info", "warn", "error" or "off"; returns -1 if unknown. */
int rtm_log_parse_level(const char *name);
void rtm_log(enum rtm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) rtm_log(RTM_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) rtm_log(RTM_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) rtm_log(RTM_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) rtm_log(RTM_LOG_ERROR, __VA_ARGS__)

#endif
