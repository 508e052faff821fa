/* hash: the process's random key for the keyed mix of ids (see hash.h). */
#include "hash.h"

#include <pthread.h>
#include <sys/random.h>
#include <time.h>

static uint64_t process_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void draw_key(void)
{
    uint64_t k = 0;
    if (getrandom(&k, sizeof k, 0) != (ssize_t)sizeof k) {
        /* getrandom fails only on kernels before 3.17: a key that still
         * differs between processes and runs. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&k;
    }
    process_key = k ? k : 1;
}

uint64_t rtm_hash_key(void)
{
    pthread_once(&key_once, draw_key);
    return process_key;
}
