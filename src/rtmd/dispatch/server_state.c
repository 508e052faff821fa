/* Helpers over the server state (server_state.h). */
#include "server_state.h"

rtmd_project *rtmd_server_project_slot(const rtmd_server *srv, int64_t pid)
{
    for (size_t i = 0; i < srv->nprojects; i++)
        if (srv->projects[i].pid == pid)
            return &srv->projects[i];
    return NULL;
}

/* A pid has one slot at most (server.c gives a project back its own). */
rtmd_project *rtmd_server_project(const rtmd_server *srv, int64_t pid)
{
    rtmd_project *p = rtmd_server_project_slot(srv, pid);
    return p && !p->removed ? p : NULL;
}

size_t rtmd_server_running_projects(const rtmd_server *srv)
{
    size_t n = 0;
    for (size_t i = 0; i < srv->nprojects; i++)
        n += !srv->projects[i].removed;
    return n;
}

bool rtmd_timer_end_on_stop(rtmd_server *srv, uv_timer_t *t, bool *closed)
{
    if (!srv->stopping)
        return false;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    *closed = true;
    return true;
}

bool rtmd_timer_release(uv_timer_t *t, bool closed)
{
    if (!closed)
        uv_close((uv_handle_t *)t, NULL);
    return closed;
}
