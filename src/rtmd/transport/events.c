/* Subscribing to and firing lifecycle events (see events.h). */
#include "events.h"

int events_subscribe(rtmd_events *e, rtmd_event_kind kind, rtmd_observer_fn fn)
{
    if (kind >= RTMD_EV_COUNT || e->n[kind] == RTMD_OBSERVERS_MAX)
        return -1;
    e->fns[kind][e->n[kind]++] = fn;
    return 0;
}

void events_fire(const rtmd_events *e, struct rtmd_server *srv, const rtmd_event *ev)
{
    for (uint8_t i = 0; i < e->n[ev->kind]; i++)
        e->fns[ev->kind][i](srv, ev);
}
