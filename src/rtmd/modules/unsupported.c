/* Server methods of the Go server SDK for services rtmd does not offer and
 * does not plan to: audio/video rooms (RTC: adminCommand, closeRTCRoom,
 * getRTCRoomList, ...) and the IM library service (imserver_*). Each is
 * answered, whatever its payload, once the request is signed, with 200060
 * (RTM_EC_NO_CONFIG_IN_CONSOLE): the cloud's answer to a project that has
 * not enabled such a service, which the SDK reports as that code with our
 * ex, and which applications written for the cloud already treat as "this
 * service is off". The ex says that it is this server that lacks it, so
 * that no one looks for a setting, and names the method. An unknown method
 * (20004) would read as a typo or an SDK newer than the server.
 *
 * Unlike unavailable.c (features that will come), nothing here is meant to
 * be replaced, so no payload is checked. Nothing here has state. */
#include "methods.h"
#include "rtm_errors.h"
#include "module.h"

#include <stdio.h>

static void refuse(rtmd_request *req, const char *service)
{
    char ex[FPNN_MAX_METHOD + 96];
    snprintf(ex, sizeof ex, "%s: %s not supported by this server", req->method, service);
    request_error(req, RTM_EC_NO_CONFIG_IN_CONSOLE, ex);
}

/* adminCommand, closeRTCRoom, getRTCRoomList, ... */
static void method_rtc(rtmd_request *req)
{
    refuse(req, "audio/video rooms (RTC) are");
}

/* imserver_* */
static void method_imlib(rtmd_request *req)
{
    refuse(req, "the IM library service is");
}

/* As the Go server SDK names them (src/rtm/rtmServerInterface.RTC.go and
 * rtmServerInterface.IMlib.go); the server gate only. */
static const rtmd_method unsupported_methods[] = {
    {"adminCommand", GATES_SERVER, method_rtc, 0},
    {"closeRTCRoom", GATES_SERVER, method_rtc, 0},
    {"getRTCRoomList", GATES_SERVER, method_rtc, 0},
    {"getRTCRoomMemberCount", GATES_SERVER, method_rtc, 0},
    {"getRTCRoomMembers", GATES_SERVER, method_rtc, 0},
    {"inviteUserIntoRTCRoom", GATES_SERVER, method_rtc, 0},
    {"kickoutFromRTCRoom", GATES_SERVER, method_rtc, 0},
    {"pullIntoRTCRoom", GATES_SERVER, method_rtc, 0},
    {"setRTCRoomMicStatus", GATES_SERVER, method_rtc, 0},
    {"imserver_addgroupmembers", GATES_SERVER, method_imlib, 0},
    {"imserver_creategroup", GATES_SERVER, method_imlib, 0},
    {"imserver_dismissgroup", GATES_SERVER, method_imlib, 0},
    {"imserver_getapplygrant", GATES_SERVER, method_imlib, 0},
    {"imserver_getgroupinfos", GATES_SERVER, method_imlib, 0},
    {"imserver_getinvitegrant", GATES_SERVER, method_imlib, 0},
    {"imserver_getuserinfos", GATES_SERVER, method_imlib, 0},
    {"imserver_setapplygrant", GATES_SERVER, method_imlib, 0},
    {"imserver_setgroupinfos", GATES_SERVER, method_imlib, 0},
    {"imserver_setinvitegrant", GATES_SERVER, method_imlib, 0},
    {"imserver_setuserinfos", GATES_SERVER, method_imlib, 0},
};

const rtmd_module unsupported_module = {.name = "unsupported", RTMD_MODULE_METHODS(unsupported_methods)};
