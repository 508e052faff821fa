/* Methods the RTM SDKs send for features rtmd does not offer yet:
 * moderation of media (icheck, acheck, vcheck; text is moderation/'s) and
 * speech to text (speech2text). Each checks its payload as the SDKs send it (a missing
 * required field 10009, a field of the wrong type 10010, first), then
 * answers 200060, RTM_EC_NO_CONFIG_IN_CONSOLE: the cloud's answer when a
 * feature is not enabled for the project, which the SDKs report as such
 * instead of failing on an unknown method (20004).
 *
 * Temporary: the issue that brings files and moderation to rtmd replaces
 * this module with the real methods, keeping these payload checks. Nothing
 * here has state. A backend for the media checks or speech to text plugs
 * in as translate/ does: a per-project URL in config.h, checked into an
 * outbound allowlist at start, and the method's POST through outbound.c
 * with its answer parsed and bounded (docs/architecture.md). */
#include "methods.h"
#include "payload.h"
#include "rtm_errors.h"
#include "module.h"

#include <stdio.h>
#include <string.h>

enum field_kind {
    F_TEXT, /* str (or bin) */
    F_DATA, /* str or bin: a URL or the content itself */
    F_INT,  /* any msgpack integer within int64 */
};

typedef struct field {
    const char *key;
    enum field_kind kind;
    bool required;
    unsigned gates; /* the gates the field belongs to */
} field;

#define ALL (GATES_CLIENT | GATES_SERVER)
#define SERVER GATES_SERVER

/* Fields as the WebSocket client SDK (RTMClient.js) and the Go and Node.js
 * server SDKs send them; the server forms add `uid` (whom the text is
 * about). */
static const field icheck_fields[] = {
    {"image", F_DATA, true, ALL}, {"type", F_INT, true, ALL}, {"uid", F_INT, false, SERVER}, {NULL, 0, false, 0},
};
/* acheck and speech2text */
static const field audio_fields[] = {
    {"audio", F_DATA, true, ALL}, {"type", F_INT, true, ALL},   {"lang", F_TEXT, true, ALL},
    {"codec", F_TEXT, false, ALL}, {"srate", F_INT, false, ALL}, {"uid", F_INT, false, SERVER},
    {NULL, 0, false, 0},
};
static const field vcheck_fields[] = {
    {"video", F_DATA, true, ALL}, {"type", F_INT, true, ALL}, {"videoName", F_TEXT, true, ALL},
    {"uid", F_INT, false, SERVER}, {NULL, 0, false, 0},
};

static bool kind_ok(const msgpack_object *o, enum field_kind kind)
{
    int64_t v;
    switch (kind) {
    case F_TEXT:
    case F_DATA:
        return o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN;
    case F_INT:
        return mp_obj_int64(o, &v);
    }
    return false;
}

/* Checks one field; answers 10009/10010 and returns false when it is bad. */
static bool check_field(rtmd_request *req, const char *key, enum field_kind kind, bool required)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    bool absent = !o || o->type == MSGPACK_OBJECT_NIL;
    if ((absent && required) || (!absent && !kind_ok(o, kind))) {
        req_arg_error(req, key);
        return false;
    }
    return true;
}

static bool check_fields(rtmd_request *req, const field *fields)
{
    for (const field *f = fields; f->key; f++)
        if ((f->gates & GATE_BIT(req->gate)) && !check_field(req, f->key, f->kind, f->required))
            return false;
    return true;
}

static void not_enabled(rtmd_request *req)
{
    char ex[FPNN_MAX_METHOD + 80];
    snprintf(ex, sizeof ex, "%s is not enabled on this server (need enable config in console)", req->method);
    request_error(req, RTM_EC_NO_CONFIG_IN_CONSOLE, ex);
}

#define CHECKED(name, fields)                                                                                         \
    static void method_##name(rtmd_request *req)                                                                      \
    {                                                                                                                 \
        if (check_fields(req, fields))                                                                                \
            not_enabled(req);                                                                                         \
    }
CHECKED(icheck, icheck_fields)
CHECKED(acheck, audio_fields)
CHECKED(vcheck, vcheck_fields)
CHECKED(speech2text, audio_fields)

/* Gates: where the SDKs send them. */
static const rtmd_method unavailable_methods[] = {
    {"icheck", ALL, method_icheck, 0},
    {"acheck", ALL, method_acheck, 0},           {"vcheck", ALL, method_vcheck, 0},
    {"speech2text", ALL, method_speech2text, 0},
};

const rtmd_module unavailable_module = {.name = "unavailable", RTMD_MODULE_METHODS(unavailable_methods)};
