/* The moderation module: each project's sensitive-word list (the file its
 * sensitive_words setting names, wordlist.h), read at start (a bad file
 * stops rtmd, naming its path and line) and again on SIGHUP (the module's
 * reload, with the settings' new path and policy: a bad file keeps the
 * list loaded before; a project a reload adds with a bad file is not
 * added); the methods profanity
 * and tcheck on both gates; and moderation_chat, which messages.c runs on
 * every chat message (mtype 30) before it is stored or pushed: masked
 * (sensitive_words_policy = mask, the default, as the cloud does) or
 * refused with 200054 (refuse).
 *
 * A project without a list answers profanity and tcheck with 200060
 * (RTM_EC_NO_CONFIG_IN_CONSOLE), as the cloud does for a feature the
 * project has not enabled, rather than passing every text: an app that
 * relies on tcheck learns that nothing checks its text. Its messages pass
 * unchanged.
 *
 * All on the loop: the lists are read and swapped there, and scans use the
 * module's one scratch. */
#include "moderation.h"

#include "log.h"
#include "methods.h"
#include "module.h"
#include "payload.h"
#include "rtm_errors.h"
#include "wordlist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Words a tcheck answer names at most (wlist). */
#define TCHECK_WLIST_MAX 100

typedef struct project_words {
    int64_t pid;
    char *path; /* the project's sensitive_words setting it was read from */
    bool refuse;
    wordlist *wl;
} project_words;

struct moderation_state {
    project_words *lists; /* RTMD_MAX_PROJECTS; the projects with a list */
    size_t nlists;
    wordlist_scratch scratch;
    uint8_t *out; /* the masked text of the last scan */
    size_t out_cap;
    uint32_t words[TCHECK_WLIST_MAX];
};

static struct moderation_state *state(rtmd_server *srv)
{
    return srv->svc->moderation;
}

static const wordlist *list_of(rtmd_server *srv, int64_t pid, bool *refuse)
{
    struct moderation_state *s = state(srv);
    for (size_t i = 0; s && i < s->nlists; i++)
        if (s->lists[i].pid == pid) {
            if (refuse)
                *refuse = s->lists[i].refuse;
            return s->lists[i].wl;
        }
    return NULL;
}

/* Scans text into s->out (and the words into s->words when nwords is not
 * NULL). Returns the scan's count (0: nothing matched) or -1. */
static long scan(struct moderation_state *s, const wordlist *wl, const char *text, size_t len, size_t *out_len,
                 size_t *nwords)
{
    if (len > s->out_cap || !s->out) {
        uint8_t *p = realloc(s->out, len ? len : 1);
        if (!p)
            return -1;
        s->out = p;
        s->out_cap = len ? len : 1;
    }
    return wordlist_scan(wl, (const uint8_t *)text, len, &s->scratch, s->out, out_len, nwords ? s->words : NULL,
                         TCHECK_WLIST_MAX, nwords);
}

enum moderation_verdict moderation_chat(rtmd_server *srv, const rtmd_project *project, const char **text,
                                        size_t *len)
{
    bool refuse = false;
    const wordlist *wl = list_of(srv, project->pid, &refuse);
    if (!wl)
        return MODERATION_PASS;
    struct moderation_state *s = state(srv);
    size_t out_len = 0;
    long n = scan(s, wl, *text, *len, &out_len, NULL);
    if (n < 0)
        return MODERATION_ERROR;
    if (n == 0)
        return MODERATION_PASS;
    if (refuse)
        return MODERATION_REFUSE;
    *text = (const char *)s->out;
    *len = out_len;
    return MODERATION_MASKED;
}

/* ---- methods ---- */

/* The payload checks of the SDKs' quests: text (str or bin) required;
 * classify (profanity) a bool when present; uid (server gate: whom the
 * text is about) an integer when present. Answers 10009/10010. */
static bool get_text(rtmd_request *req, bool classify, const char **text, size_t *len)
{
    if (!mp_get_str(req->args, "text", text, len)) {
        req_arg_error(req, "text");
        return false;
    }
    return (!classify || req_arg_optional(req, "classify", REQ_BOOL)) &&
           (req->gate != GATE_SERVER_TCP || req_arg_optional(req, "uid", REQ_INT64));
}

/* The payload checks, the project's list (none: 200060) and the scan of
 * text into s->out (and the words into s->words when nwords is not NULL).
 * Returns the scan's count (0: nothing matched), or -1 having answered. */
static long check_text(rtmd_request *req, bool classify, const wordlist **wl, size_t *out_len, size_t *nwords)
{
    const char *text;
    size_t len;
    if (!get_text(req, classify, &text, &len))
        return -1;
    *wl = list_of(req->srv, req->project->pid, NULL);
    if (!*wl) {
        char ex[FPNN_MAX_METHOD + 112];
        snprintf(ex, sizeof ex,
                 "%s is not enabled on this server: the project has no sensitive_words list (need enable config in "
                 "console)",
                 req->method);
        request_error(req, RTM_EC_NO_CONFIG_IN_CONSOLE, ex);
        return -1;
    }
    long n = scan(state(req->srv), *wl, text, len, out_len, nwords);
    if (n < 0)
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
    return n;
}

static void pack_bytes(msgpack_packer *pk, const char *key, const void *p, size_t n)
{
    mp_pack_cstr(pk, key);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, p, n);
}

/* profanity {text, classify?, uid? (server gate)} -> {text, classification}:
 * text masked (whole when nothing matched); classification is always
 * empty (the lists have no categories). */
static void method_profanity(rtmd_request *req)
{
    const wordlist *wl;
    size_t out_len = 0;
    if (check_text(req, true, &wl, &out_len, NULL) < 0)
        return;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_bytes(&pk, "text", state(req->srv)->out, out_len);
    mp_pack_cstr(&pk, "classification");
    msgpack_pack_array(&pk, 0);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* tcheck {text, uid? (server gate)} -> {result: 0} when no word occurs, else
 * {result: 2, text (masked), wlist (the words found, as written in the
 * list, at most TCHECK_WLIST_MAX)}. */
static void method_tcheck(rtmd_request *req)
{
    const wordlist *wl;
    size_t out_len = 0, nwords = 0;
    long n = check_text(req, false, &wl, &out_len, &nwords);
    if (n < 0)
        return;
    struct moderation_state *s = state(req->srv);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n ? 3 : 1);
    mp_pack_kv_int(&pk, "result", n ? 2 : 0);
    if (n) {
        pack_bytes(&pk, "text", s->out, out_len);
        mp_pack_cstr(&pk, "wlist");
        msgpack_pack_array(&pk, nwords);
        for (size_t i = 0; i < nwords; i++) {
            size_t wlen;
            const char *w = wordlist_word(wl, s->words[i], &wlen);
            msgpack_pack_str(&pk, wlen);
            msgpack_pack_str_body(&pk, w, wlen);
        }
    }
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* ---- life cycle ---- */

static project_words *words_of(struct moderation_state *s, int64_t pid)
{
    for (size_t i = 0; i < s->nlists; i++)
        if (s->lists[i].pid == pid)
            return &s->lists[i];
    return NULL;
}

static void words_drop(struct moderation_state *s, project_words *pw)
{
    wordlist_free(pw->wl);
    free(pw->path);
    *pw = s->lists[--s->nlists];
}

/* Reads p's list as its settings say into pw (a new entry, or one whose
 * list it replaces); on failure pw is unchanged and err says why (the
 * file's path and line). */
static int words_load(project_words *pw, const rtmd_project *p, char *err, size_t errlen)
{
    const char *path = p->limits.sensitive_words;
    char why[512];
    wordlist *wl = wordlist_load(path, why, sizeof why);
    char *copy = wl ? strdup(path) : NULL;
    if (!copy) {
        snprintf(err, errlen, "%s", wl ? "out of memory" : why);
        wordlist_free(wl);
        return -1;
    }
    size_t added = pw->wl ? wordlist_missing(wl, pw->wl) : wordlist_count(wl);
    size_t removed = pw->wl ? wordlist_missing(pw->wl, wl) : 0;
    wordlist_free(pw->wl);
    free(pw->path);
    pw->pid = p->pid;
    pw->path = copy;
    pw->refuse = strcmp(p->limits.sensitive_words_policy, "refuse") == 0;
    pw->wl = wl;
    LOG_INFO("moderation: project %lld: %zu sensitive words from %s (%zu added, %zu removed), chat messages %s",
             (long long)p->pid, wordlist_count(wl), path, added, removed, pw->refuse ? "refused" : "masked");
    return 0;
}

static int moderation_project_added(rtmd_server *srv, rtmd_project *p, char *err, size_t errlen)
{
    struct moderation_state *s = state(srv);
    if (!p->limits.sensitive_words[0])
        return 0;
    project_words pw = {0};
    char why[512];
    if (words_load(&pw, p, why, sizeof why) != 0) {
        snprintf(err, errlen, "project %lld: sensitive_words: %s", (long long)p->pid, why);
        return -1;
    }
    s->lists[s->nlists++] = pw;
    return 0;
}

static void moderation_project_removed(rtmd_server *srv, rtmd_project *p)
{
    struct moderation_state *s = state(srv);
    project_words *pw = words_of(s, p->pid);
    if (pw)
        words_drop(s, pw);
}

static int moderation_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct moderation_state *s = calloc(1, sizeof *s);
    if (!s || !(s->lists = calloc(RTMD_MAX_PROJECTS, sizeof *s->lists))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->moderation = s;
    for (size_t i = 0; i < srv->nprojects; i++)
        if (moderation_project_added(srv, &srv->projects[i], err, errlen) != 0)
            return -1;
    return 0;
}

/* SIGHUP: a running project's list again, from the path its settings
 * name now (none: the list goes); one that does not load keeps the old
 * list. */
static int reload_project(rtmd_server *srv, rtmd_project *p, char *why, size_t whylen)
{
    struct moderation_state *s = state(srv);
    project_words *pw = words_of(s, p->pid);
    if (!p->limits.sensitive_words[0]) {
        if (pw) {
            LOG_INFO("moderation: project %lld: no sensitive-word list any more", (long long)p->pid);
            words_drop(s, pw);
        }
        return 0;
    }
    project_words fresh = {0};
    if (words_load(pw ? pw : &fresh, p, why, whylen) != 0) {
        LOG_ERROR("moderation: project %lld: keeping its %zu sensitive words: %s", (long long)p->pid,
                  pw ? wordlist_count(pw->wl) : 0, why);
        return -1;
    }
    if (!pw)
        s->lists[s->nlists++] = fresh;
    return 0;
}

static int moderation_reload(rtmd_server *srv, char *err, size_t errlen)
{
    return state(srv) ? module_reload_projects(srv, reload_project, err, errlen) : 0;
}

static void moderation_free(rtmd_server *srv)
{
    struct moderation_state *s = state(srv);
    if (!s)
        return;
    while (s->nlists)
        words_drop(s, &s->lists[0]);
    free(s->lists);
    wordlist_scratch_free(&s->scratch);
    free(s->out);
    free(s);
    srv->svc->moderation = NULL;
}

static const rtmd_method moderation_methods[] = {
    {"profanity", GATES_CLIENT | GATES_SERVER, method_profanity, 0},
    {"tcheck", GATES_CLIENT | GATES_SERVER, method_tcheck, 0},
};

const rtmd_module moderation_module = {
    .name = "moderation",
    .init = moderation_init,
    .free = moderation_free,
    .reload = moderation_reload,
    .project_added = moderation_project_added,
    .project_removed = moderation_project_removed,
    RTMD_MODULE_METHODS(moderation_methods),
};
