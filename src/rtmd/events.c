/* Subscribing to and firing lifecycle events (see events.h). */
#include "events.h"

#include "server.h"

int events_subscribe(rtmd_server *srv, rtmd_event_kind kind, rtmd_observer_fn fn)
{
    rtmd_events *e = &srv->events;
    if (kind >= RTMD_EV_COUNT || e->n[kind] == RTMD_OBSERVERS_MAX)
        return -1;
    e->fns[kind][e->n[kind]++] = fn;
    return 0;
}

void events_fire(rtmd_server *srv, const rtmd_event *ev)
{
    const rtmd_events *e = &srv->events;
    for (uint8_t i = 0; i < e->n[ev->kind]; i++)
        e->fns[ev->kind][i](srv, ev);
}
