/* The clocks, named for what they are good for: wall-clock time for what
 * is stored or sent (message times, expiries, login times), and monotonic
 * time for intervals (timeouts, rate buckets), which a change of the wall
 * clock does not move. */
#ifndef RTM_CLOCK_H
#define RTM_CLOCK_H

#include <stdint.h>

/* Milliseconds since 1970 (the wall clock). */
int64_t clock_unix_ms(void);
int64_t clock_unix_seconds(void);
/* Monotonic milliseconds since an arbitrary start: never stored or sent. */
uint64_t clock_monotonic_ms(void);

#endif
