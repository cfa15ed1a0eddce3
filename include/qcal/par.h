/*
 * qcal par: the only door to MPI (src/par/par.c is the only file that includes mpi.h).
 *
 *     qcal_par_init(&argc, &argv);          // mpirun, srun --mpi=pmix, or alone (singleton)
 *     qcal_shard(count, qcal_par_rank(), qcal_par_size(), &begin, &end);
 *     ... each rank works on its slice ...
 *     st = qcal_par_agree(st);              // every rank learns whether any rank failed
 *     qcal_par_allreduce_u64_sum(counts, n);
 *     qcal_par_finalize();
 *
 * Failures are agreed on at every collective point instead of killing the job: a rank that
 * fails logs its own message and reaches the next qcal_par_agree with its status, so every
 * rank stops there with a non-zero status and no rank hangs. qcal_par_abort is for errors
 * that leave a rank unable to reach the next agreement.
 */
#ifndef QCAL_PAR_H
#define QCAL_PAR_H

#include "qcal/core.h"

/* Initializes MPI once (thread level FUNNELED: only the main thread talks to MPI). Safe to
 * call when the process was not started by mpirun (one rank). Sets the log's rank prefix
 * when there is more than one rank. */
enum qcal_status qcal_par_init(int *argc, char ***argv);
void qcal_par_finalize(void);
int qcal_par_rank(void);
int qcal_par_size(void);
void qcal_par_abort(int exit_code);

/* The worst status over all ranks (QCAL_OK only if every rank passed QCAL_OK). Ranks that
 * passed QCAL_OK get the status of the lowest failing rank without a new message. */
enum qcal_status qcal_par_agree(enum qcal_status st);

/* Whether a failure was agreed by every rank (all can finalize normally); a rank that
 * fails without agreement must qcal_par_abort so that no other rank waits for it. */
bool qcal_par_failure_agreed(void);
/* The lowest rank that failed at the last qcal_par_agree, -1 if none: the one whose message
 * should be shown when every rank failed the same way. */
int qcal_par_failed_rank(void);

/* In-place reductions over all ranks (no-ops on one rank). */
enum qcal_status qcal_par_allreduce_f32_min(float *x, size_t n);
enum qcal_status qcal_par_allreduce_f32_max(float *x, size_t n);
enum qcal_status qcal_par_allreduce_f64_min(double *x, size_t n);
enum qcal_status qcal_par_allreduce_f64_max(double *x, size_t n);
enum qcal_status qcal_par_allreduce_u64_sum(uint64_t *x, size_t n);
enum qcal_status qcal_par_allreduce_i64_sum(int64_t *x, size_t n);
/* Gathers every rank's f64 values in rank order onto all ranks: rank r contributes
 * counts[r] values (mine), all[] receives sum(counts) values. */
enum qcal_status qcal_par_allgather_f64(const double *mine, const int *counts, double *all);
/* Every rank's `bytes` bytes, in rank order, onto all ranks (all: size * bytes). */
enum qcal_status qcal_par_allgather_bytes(const void *mine, int bytes, void *all);
/* Rank 0 sends `bytes` bytes to every rank. */
enum qcal_status qcal_par_bcast(void *data, size_t bytes);
/* The number of items all ranks have finished, read without blocking the caller: every
 * rank posts its own count with qcal_par_progress_post; rank 0 reads the sum of the last
 * counts it received with qcal_par_progress_total. Both return immediately. */
void qcal_par_progress_post(int64_t done);
int64_t qcal_par_progress_total(void);
/* Ends a progress phase: drains pending messages (collective). */
void qcal_par_progress_end(void);

#endif
