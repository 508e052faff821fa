/* The conversation walk of the SQLite store: the virtual table conv_chain,
 * which the view conv_messages reads (store_schema.c, migration 21). */
#ifndef RTMD_CONV_CHAIN_H
#define RTMD_CONV_CHAIN_H

#include <sqlite3.h>

/* Registers conv_chain on the connection; an SQLite result code. */
int conv_chain_register(sqlite3 *db);

#endif
