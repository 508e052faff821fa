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
 * error returns -1 with a message in err. On a PostgreSQL connection
 * (db_is_postgres) it is store_schema_pg_migrate. */
int store_schema_migrate(db_conn *db, int *version, int *applied, char *err, size_t errlen);

/* The same on PostgreSQL (store_schema_pg.c): the version is the row of
 * table rtmd_schema; an empty database is created at the latest version in
 * one transaction (*applied = 1), a current one is left alone (0), a newer
 * or an older one that this build has no PostgreSQL migration for is
 * refused. Nodes starting at once are serialized by the advisory lock
 * STORE_SCHEMA_PG_LOCK_KEY, held by each schema transaction. */
int store_schema_pg_migrate(db_conn *db, int *version, int *applied, char *err, size_t errlen);
#define STORE_SCHEMA_PG_LOCK_KEY "8247337095822272621" /* "rtmdschm" read as a big-endian int64 */

#endif
