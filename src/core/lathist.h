/* Latency histograms of the message path, per stage, for operators
 * (/metrics: rtmd_stage_seconds, rtmd_stage_count) and for measurement
 * (a table at exit with RTMD_LATHIST set in the environment).
 *
 * Log2 buckets with 4 sub-buckets each (values in ns, or counts for the
 * count stages), one process-wide set. Each stage is recorded by one
 * thread only (the loop, the store writer or the syncer, as the enum
 * says), with relaxed atomic stores; readers (the /metrics route, the
 * dump) read with relaxed loads, so a figure read while another thread
 * records may lag by the sample in flight. A sample costs a clock read
 * and a few stores. */
#ifndef RTM_LATHIST_H
#define RTM_LATHIST_H

#include <stdint.h>
#include <stdio.h>

#include "prom.h"

typedef enum lat_stage {
    /* per request or store write, recorded on the loop */
    LAT_HANDLER,     /* message quest dispatched -> store_submit */
    LAT_QUEUE,       /* store_submit -> the writer takes its batch */
    LAT_APPLY,       /* writer takes the batch -> its COMMIT returned */
    LAT_SYNC_WAIT,   /* COMMIT returned -> the syncer starts the fdatasync covering it */
    LAT_SYNC,        /* that fdatasync */
    LAT_WAKE,        /* reported (synced, or committed without fsync) -> done callback runs */
    LAT_DELIVER,     /* message done callback -> pushes and answer queued */
    LAT_FLUSH,       /* message answer queued -> the loop's writes of it started */
    LAT_SERVER,      /* message quest dispatched -> its answer's write started */
    LAT_SUBMIT_LOCK, /* the hand-over of a turn's writes waiting for the store mutex */
    /* per loop event, recorded on the loop */
    LAT_DISPATCH_RUN,  /* one store wake-up: all its done callbacks */
    LAT_DISPATCH_SIZE, /* store writes per wake-up (count) */
    LAT_CHECK_RUN,     /* one round of writes: after a store wake-up, or at a turn's end */
    LAT_CHECK_CONNS,   /* connections written per round (count) */
    /* per batch, recorded on the writer */
    LAT_B_SIZE,   /* writes per batch (count) */
    LAT_B_APPLY,  /* the batch's statements before COMMIT */
    LAT_B_COMMIT, /* COMMIT */
    LAT_B_IDLE,   /* the writer waiting for work between batches */
    LAT_B_CKPT,   /* the writer's own WAL checkpoint after a commit (SQLite) */
    /* per checkpoint, recorded on the store's checkpointer (SQLite) */
    LAT_C_RUN,    /* one PASSIVE checkpoint of the WAL */
    /* per fdatasync, recorded on the syncer */
    LAT_S_FDATASYNC, /* one fdatasync of the WAL */
    LAT_S_COMMITS,   /* writes covered by one fdatasync (count) */
    LAT_STAGES
} lat_stage;

/* Monotonic time in ns (CLOCK_MONOTONIC, the clock of uv_hrtime). */
uint64_t lat_now(void);
void lat_record(lat_stage s, uint64_t value);
/* value = now - since; nothing when since is 0 or after now. */
void lat_since(lat_stage s, uint64_t since, uint64_t now);

/* A message whose answer was queued at `queued` (its quest dispatched at
 * `received`): its FLUSH and SERVER samples are taken by lat_flushed when
 * the loop starts the writes of the turn. Loop thread. */
void lat_note_queued(uint64_t received, uint64_t queued);
void lat_flushed(uint64_t now);

/* The samples of stage s so far and their sum (ns for the time stages):
 * cumulative, so a reader takes the mean over an interval from two reads. */
void lat_totals(lat_stage s, uint64_t *count, uint64_t *sum);
/* The stage's name as /metrics labels it ("apply", "server"). */
const char *lat_stage_label(lat_stage s);

/* A table of every stage with samples (count, mean, p50, p90, p99,
 * p99.9, max). */
void lat_dump(FILE *f);
/* Every stage with samples as a Prometheus histogram: time stages as
 * rtmd_stage_seconds{stage=...}, count stages as rtmd_stage_count, on
 * fixed bucket bounds (a sample counts under the first bound at or above
 * its log2 sub-bucket's top, so within 19 % of its value). */
void lat_prom(prom_out *o);

#endif
