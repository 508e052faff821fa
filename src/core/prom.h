/* Prometheus text exposition (version 0.0.4) into a bounded buffer: the
 * HELP and TYPE lines and the samples of counters and gauges. What does not
 * fit is cut off. */
#ifndef RTM_PROM_H
#define RTM_PROM_H

#include <stddef.h>
#include <stdint.h>

typedef struct prom_out {
    char *buf;
    size_t cap, len;
} prom_out;

/* Appends printf-style text. */
__attribute__((format(printf, 2, 3))) void prom_text(prom_out *o, const char *fmt, ...);
/* One metric without labels; type is "counter" or "gauge". */
void prom_metric(prom_out *o, const char *name, const char *type, const char *help, uint64_t value);
/* One metric with one label taking n values. */
void prom_labelled(prom_out *o, const char *name, const char *type, const char *help, const char *label,
                   const char *const *label_values, const uint64_t *values, size_t n);

#endif
