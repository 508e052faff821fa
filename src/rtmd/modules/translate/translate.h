/* Users' languages and translation (translate.c): setlang and auth's
 * `lang` store a user's language in user_langs and on the user's sessions
 * on this node; translate asks the project's LibreTranslate-API server
 * through outbound.c, with a cache (translate_cache.h). */
#ifndef RTMD_TRANSLATE_H
#define RTMD_TRANSLATE_H

#include "server_state.h"
#include "users.h"

#include <stdbool.h>
#include <stddef.h>

#define TRANSLATE_MAX_LANG 15 /* bytes of a language code (rtmd_session.lang holds it and a NUL) */

/* A language code as the SDKs send it ("en", "zh-CHS", "pt-BR"): 1 to
 * TRANSLATE_MAX_LANG bytes of ASCII letters, digits and '-', starting with
 * a letter. The empty code (no language) is not valid here. */
bool translate_lang_valid(const char *s, size_t len);

/* A login's language (auth.c, once the session exists): a valid non-empty
 * lang (len bytes) becomes the session's and is stored for the user;
 * without one the session takes the user's stored language (another
 * session of the user on this node, or the store, read in the
 * background). */
void translate_session_login(rtmd_server *srv, rtmd_session *s, const char *lang, size_t len);

/* Project pid has a translation backend (translate_url). */
bool translate_on(rtmd_server *srv, int64_t pid);

/* The language of a user online here (its sessions'), or NULL. */
const char *translate_user_lang(rtmd_server *srv, int64_t pid, int64_t uid);

/* How a translation ended: code 0 with source (src, or the language the
 * server detected, or "") and the text; else an error code and ex. */
typedef struct translate_result {
    int64_t code;
    const char *ex;
    const char *source;
    const char *text;
    size_t len;
} translate_result;
typedef void (*translate_done_fn)(void *arg, const translate_result *r);

/* Translates text (len bytes of UTF-8, at most TRANSLATE_MAX_TEXT) from
 * src ("" = detect) into dst through project pid's backend. The same
 * (src, dst, text) asked while one is in flight waits for that one.
 * Returns 1 when answered at once from the cache (done was called), 0
 * when done will be called later on the loop, or an RTM error code (> 1:
 * 200060 no backend, 200010 too many in flight, ...) with done not called. */
#define TRANSLATE_MAX_TEXT (16 * 1024)
int64_t translate_text(rtmd_server *srv, int64_t pid, const char *src, const char *dst, const char *text, size_t len,
                       translate_done_fn done, void *arg);

#endif
