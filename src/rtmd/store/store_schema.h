/* Internal to the store: the schema migrations of the rtmd database and the
 * routine that brings a database to the version this build knows. */
#ifndef RTMD_STORE_SCHEMA_H
#define RTMD_STORE_SCHEMA_H

#include "db.h"
#include <stddef.h>

/* Schema version written by the newest migration this build carries. */
int store_schema_latest(void);

/* Reads PRAGMA user_version and applies every missing migration in order,
 * each in its own transaction that also bumps user_version. Refuses a
 * database newer than store_schema_latest(). On success returns 0 and sets
 * *version (now current) and *applied (migrations run by this call); on
 * error returns -1 with a message in err. */
int store_schema_migrate(db_conn *db, int *version, int *applied, char *err, size_t errlen);

#endif
