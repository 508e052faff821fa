/* Prometheus text exposition (see prom.h). */
#include "prom.h"

#include <stdarg.h>
#include <stdio.h>

void prom_text(prom_out *o, const char *fmt, ...)
{
    if (o->len >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
    if (o->len > o->cap)
        o->len = o->cap;
}

void prom_metric(prom_out *o, const char *name, const char *type, const char *help, uint64_t value)
{
    prom_text(o, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, (unsigned long long)value);
}

void prom_labelled(prom_out *o, const char *name, const char *type, const char *help, const char *label,
                   const char *const *label_values, const uint64_t *values, size_t n)
{
    prom_text(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < n; i++)
        prom_text(o, "%s{%s=\"%s\"} %llu\n", name, label, label_values[i], (unsigned long long)values[i]);
}
