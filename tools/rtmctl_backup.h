/* rtmctl_backup.h — `rtmctl backup FROM TO` (rtmctl_backup.c). */
#pragma once

/* Copies the SQLite store FROM (rtmd's data_dir or its rtmd.sqlite3) to
 * the new file TO and prints {"file","bytes","schema_version","ms"} as one
 * line of JSON. Returns rtmctl's exit status: 0, or 1 with the reason on
 * stderr. */
int rtmctl_backup(const char *from, const char *to);
