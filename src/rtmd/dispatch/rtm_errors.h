/* RTM error codes (200001-200999) answered by rtmd's methods, as the RTM
 * SDKs know them (RTMConfig.ERROR_CODE), in one place. FPNN core codes are
 * in include/rtm/fpnn.h. */
#ifndef RTMD_RTM_ERRORS_H
#define RTMD_RTM_ERRORS_H

enum rtm_error {
    RTM_EC_INVALID_PID_OR_UID = 200001,
    RTM_EC_INVALID_PID_OR_SIGN = 200002,
    /* The file gate (modules/files/), named as the SDKs' tables name them:
     * a file token that is unknown, used, expired or issued for another
     * sender, command or target; attrs without the file's signature, or
     * (rtmd's choice, not the name's) a signature that does not match;
     * an mtype outside 40-50. */
    RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN = 200003,
    RTM_EC_ATTRS_WITHOUT_SIGN_OR_EXT = 200004,
    RTM_EC_INVALID_MTYPE = 200005,
    RTM_EC_SAME_SIGN = 200006,             /* salt already used: sign again with a new one */
    RTM_EC_INVALID_FILE_MTYPE = 200007,
    RTM_EC_INVALID_SERVER_TIME = 200008,   /* ts (or salt time) outside sign_window */
    RTM_EC_API_FREQUENCY_LIMITED = 200010,
    RTM_EC_MESSAGE_FREQUENCY_LIMITED = 200011,
    RTM_EC_FORBIDDEN_METHOD = 200020,
    RTM_EC_PERMISSION_DENIED = 200021,
    RTM_EC_UNAUTHORIZED = 200022,
    RTM_EC_DUPLICATED_AUTH = 200023,
    RTM_EC_AUTH_DENIED = 200024,
    RTM_EC_INVALID_AUTH_TOKEN = 200027,
    RTM_EC_LARGE_MESSAGE_OR_ATTRS = 200030,
    RTM_EC_LARGE_FILE_OR_ATTRS = 200031,   /* file gate: a file over max_file_bytes, attrs over max_attrs_bytes */
    RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS = 200032,
    RTM_EC_EMPTY_PARAMETER = 200033,
    RTM_EC_NOT_IN_ROOM = 200040,
    RTM_EC_NOT_GROUP_MEMBER = 200041,
    RTM_EC_MAX_GROUP_MEMBER_COUNT = 200042,
    RTM_EC_NOT_FRIEND = 200043,            /* p2p_require_friend: the receiver does not count the sender as a friend */
    RTM_EC_BANNED_IN_GROUP = 200044,
    RTM_EC_BANNED_IN_ROOM = 200045,
    RTM_EC_ENTER_TOO_MANY_ROOMS = 200047,
    RTM_EC_MAX_FRIEND_COUNT = 200048,
    /* The receiver has the sender on its blacklist. rtm-doc's table has no
     * code for it; the SDKs' ErrorCode tables (C#, C++) name 200049
     * RTM_EC_BLOCKED_USER. */
    RTM_EC_BLOCKED_USER = 200049,
    RTM_EC_SEND_TO_SELF = 200052,
    RTM_EC_DUPLICATED_MID = 200053,
    RTM_EC_SENSITIVE_WORDS = 200054,       /* "sensitiveWords matched": refused by the sensitive-word list */
    RTM_EC_NOT_ONLINE = 200055,
    RTM_EC_NO_CONFIG_IN_CONSOLE = 200060,  /* the feature is not enabled ("need enable config in console") */
    RTM_EC_MESSAGE_NOT_FOUND = 200070,
    /* rtmd's own: not in the SDKs' tables, which report it as code and ex. */
    RTM_EC_STORAGE_QUOTA_EXCEEDED = 200080,
    /* P2Server (p2server.c): sendservermsg before setserverparams, and
     * what became of the POST to the app server. */
    RTM_EC_P2SERVER_NOT_SET = 200090,
    RTM_EC_APP_SERVER_TIMEOUT = 200091,
    RTM_EC_APP_SERVER_UNREACHABLE = 200092,     /* refused, name unknown, no route, TLS failed */
    RTM_EC_APP_SERVER_REPLY_TOO_LARGE = 200093, /* reply body over 64 KiB */
    RTM_EC_APP_SERVER_FAILED = 200094,          /* a broken reply, or anything else */
    /* translate (translate/): the project's translation server failed;
     * rtmd's own codes beside P2Server's (rtm-doc names none for it) */
    RTM_EC_TRANSLATE_TIMEOUT = 200095,      /* no answer within translate_timeout_ms */
    RTM_EC_TRANSLATE_UNREACHABLE = 200096,  /* refused, name unknown, no route, TLS failed */
    RTM_EC_TRANSLATE_FAILED = 200097,       /* an HTTP error, an answer that is not LibreTranslate's, ... */
    RTM_EC_UNKNOWN_ERROR = 200999,
};

#endif
