/* Moderation of text by the projects' sensitive-word lists (moderation.c):
 * what messages.c asks before a chat message is stored and pushed. */
#ifndef RTMD_MODERATION_H
#define RTMD_MODERATION_H

#include "server_state.h"

#include <stddef.h>

enum moderation_verdict {
    MODERATION_PASS,    /* no list, or no word in the text: send it as it is */
    MODERATION_MASKED,  /* *text, *len now name the masked text */
    MODERATION_REFUSE,  /* the project refuses such messages (200054) */
    MODERATION_ERROR,   /* out of memory */
};

/* Applies the project's list and sensitive_words_policy to a chat text
 * (mtype 30; any bytes: what is not UTF-8 is kept and never matched). On
 * MODERATION_MASKED, *text and *len are replaced by the masked text (one
 * '*' per matched code point, never longer), which lives in the module
 * until the next call on the loop: copy it before anything else may
 * moderate. */
enum moderation_verdict moderation_chat(rtmd_server *srv, const rtmd_project *project, const char **text,
                                        size_t *len);

#endif
