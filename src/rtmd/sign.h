/* Signatures of app-server requests on the server gate (sign.c): which
 * forms are accepted, the time window, and the replay guard whose salts
 * survive restarts. */
#ifndef RTMD_SIGN_H
#define RTMD_SIGN_H

#include "methods.h"

/* Checks the signature of a server-gate request (pid, salt, sign, and ts
 * for the current form). On success sets req->project, remembers the salt
 * in memory at once and in the store through the writer, and holds the
 * request's answer until that write committed (request_hold), so that
 * nothing answered can be replayed after a crash. Returns 0, or the RTM
 * error code to answer: 200002 bad signature or unknown project, 200006
 * salt already seen (or older than what the replay guard can still tell
 * apart), 200008 time outside sign_window. */
int sign_verify(rtmd_request *req);
/* Answers a request that sign_verify refused with its code. A link whose
 * signatures failed (200002, 200008) sign_fail_max times in a row is closed
 * once the answer is written. */
void sign_refuse(rtmd_request *req, int code);

#endif
