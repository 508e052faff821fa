/* Users' languages and translation (translate.c): setlang and auth's
 * `lang` store a user's language in user_langs and on the user's sessions
 * on this node; translate asks the project's LibreTranslate-API server
 * through outbound.c, with a cache. */
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

#endif
