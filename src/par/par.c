/* MPI behind qcal's par interface: initialization (mpirun, srun or singleton), status
 * agreement, reductions, gathers and a non-blocking progress channel to rank 0. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/par.h"

enum { TAG_PROGRESS = 7001, TAG_PROGRESS_END = 7002 };

static int par_rank, par_size = 1;
static bool par_started, par_owner, par_failure_agreed;
static int par_failed_rank = -1; /* par_owner: we called MPI_Init, we finalize */

/* progress channel */
static int64_t progress_sent, *progress_seen;
static MPI_Request progress_req = MPI_REQUEST_NULL;

enum qcal_status qcal_par_init(int *argc, char ***argv)
{
    if (par_started) return QCAL_OK;
    int initialized = 0, provided = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return QCAL_ERR(QCAL_BACKEND_ERROR, "MPI_Init_thread failed");
        par_owner = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &par_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &par_size);
    par_started = true;
    if (par_size > 1) qcal_log_set_rank(par_rank);
    return QCAL_OK;
}

void qcal_par_finalize(void)
{
    if (!par_started) return;
    free(progress_seen);
    progress_seen = NULL;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (par_owner && !finalized) MPI_Finalize();
    par_started = false;
}

bool qcal_par_failure_agreed(void) { return par_failure_agreed; }
int qcal_par_failed_rank(void) { return par_failed_rank; }

int qcal_par_rank(void) { return par_rank; }
int qcal_par_size(void) { return par_size; }

void qcal_par_abort(int exit_code)
{
    if (par_started && par_size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
    exit(exit_code);
}

enum qcal_status qcal_par_agree(enum qcal_status st)
{
    par_failed_rank = st == QCAL_OK ? -1 : par_rank;
    if (!par_started || par_size == 1) return st;
    /* (failed, rank) pairs: MINLOC over (st == OK, rank) finds the lowest failing rank */
    struct { int ok; int rank; } in = {st == QCAL_OK, par_rank}, out;
    if (MPI_Allreduce(&in, &out, 1, MPI_2INT, MPI_MINLOC, MPI_COMM_WORLD) != MPI_SUCCESS)
        qcal_par_abort(7);
    if (out.ok) return QCAL_OK;
    par_failure_agreed = true;
    par_failed_rank = out.rank;
    int code = (int)st;
    MPI_Bcast(&code, 1, MPI_INT, out.rank, MPI_COMM_WORLD);
    return st != QCAL_OK ? st : (enum qcal_status)code;
}

static enum qcal_status allreduce(void *x, size_t n, MPI_Datatype type, MPI_Op op)
{
    if (!par_started || par_size == 1 || n == 0) return QCAL_OK;
    /* counts are int in MPI: reduce in chunks */
    int size = 0;
    MPI_Type_size(type, &size);
    char *p = x;
    for (size_t done = 0; done < n;) {
        size_t k = n - done > (1u << 28) ? (1u << 28) : n - done;
        if (MPI_Allreduce(MPI_IN_PLACE, p + done * (size_t)size, (int)k, type, op, MPI_COMM_WORLD) != MPI_SUCCESS)
            return QCAL_ERR(QCAL_BACKEND_ERROR, "MPI_Allreduce failed");
        done += k;
    }
    return QCAL_OK;
}

enum qcal_status qcal_par_allreduce_f32_min(float *x, size_t n) { return allreduce(x, n, MPI_FLOAT, MPI_MIN); }
enum qcal_status qcal_par_allreduce_f32_max(float *x, size_t n) { return allreduce(x, n, MPI_FLOAT, MPI_MAX); }
enum qcal_status qcal_par_allreduce_f64_min(double *x, size_t n) { return allreduce(x, n, MPI_DOUBLE, MPI_MIN); }
enum qcal_status qcal_par_allreduce_f64_max(double *x, size_t n) { return allreduce(x, n, MPI_DOUBLE, MPI_MAX); }
enum qcal_status qcal_par_allreduce_u64_sum(uint64_t *x, size_t n)
{
    return allreduce(x, n, MPI_UINT64_T, MPI_SUM);
}
enum qcal_status qcal_par_allreduce_i64_sum(int64_t *x, size_t n) { return allreduce(x, n, MPI_INT64_T, MPI_SUM); }

enum qcal_status qcal_par_allgather_f64(const double *mine, const int *counts, double *all)
{
    if (!par_started || par_size == 1) {
        for (int i = 0; i < counts[0]; i++) all[i] = mine[i];
        return QCAL_OK;
    }
    int *displs = malloc(sizeof(int) * (size_t)par_size);
    if (!displs) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    for (int r = 0, d = 0; r < par_size; r++) displs[r] = d, d += counts[r];
    int rc = MPI_Allgatherv(mine, counts[par_rank], MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, MPI_COMM_WORLD);
    free(displs);
    return rc == MPI_SUCCESS ? QCAL_OK : QCAL_ERR(QCAL_BACKEND_ERROR, "MPI_Allgatherv failed");
}

enum qcal_status qcal_par_allgather_bytes(const void *mine, int bytes, void *all)
{
    if (!par_started || par_size == 1) {
        memcpy(all, mine, (size_t)bytes);
        return QCAL_OK;
    }
    int rc = MPI_Allgather(mine, bytes, MPI_BYTE, all, bytes, MPI_BYTE, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? QCAL_OK : QCAL_ERR(QCAL_BACKEND_ERROR, "MPI_Allgather failed");
}

enum qcal_status qcal_par_bcast(void *data, size_t bytes)
{
    if (!par_started || par_size == 1) return QCAL_OK;
    char *p = data;
    for (size_t done = 0; done < bytes;) {
        size_t k = bytes - done > (1u << 30) ? (1u << 30) : bytes - done;
        if (MPI_Bcast(p + done, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
            return QCAL_ERR(QCAL_BACKEND_ERROR, "MPI_Bcast failed");
        done += k;
    }
    return QCAL_OK;
}

/* Ranks > 0 send their count when the previous send has completed (never blocking); rank 0
 * takes whatever has arrived. Sends from one rank arrive in order, so the last one read is
 * that rank's latest count. */
void qcal_par_progress_post(int64_t done)
{
    if (!par_started || par_size == 1) {
        progress_sent = done;
        return;
    }
    if (par_rank == 0) {
        if (!progress_seen) progress_seen = calloc((size_t)par_size, sizeof *progress_seen);
        if (progress_seen) progress_seen[0] = done;
        return;
    }
    int complete = 1;
    if (progress_req != MPI_REQUEST_NULL) MPI_Test(&progress_req, &complete, MPI_STATUS_IGNORE);
    if (!complete) return;
    progress_sent = done;
    MPI_Isend(&progress_sent, 1, MPI_INT64_T, 0, TAG_PROGRESS, MPI_COMM_WORLD, &progress_req);
}

int64_t qcal_par_progress_total(void)
{
    if (!par_started || par_size == 1) return progress_sent;
    if (par_rank != 0) return 0;
    if (!progress_seen && !(progress_seen = calloc((size_t)par_size, sizeof *progress_seen))) return 0;
    for (;;) {
        int flag = 0;
        MPI_Status s;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_PROGRESS, MPI_COMM_WORLD, &flag, &s);
        if (!flag) break;
        int64_t v = 0;
        MPI_Recv(&v, 1, MPI_INT64_T, s.MPI_SOURCE, TAG_PROGRESS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        progress_seen[s.MPI_SOURCE] = v;
    }
    int64_t total = 0;
    for (int r = 0; r < par_size; r++) total += progress_seen[r];
    return total;
}

void qcal_par_progress_end(void)
{
    if (!par_started || par_size == 1) {
        progress_sent = 0;
        return;
    }
    if (par_rank != 0) {
        if (progress_req != MPI_REQUEST_NULL) MPI_Wait(&progress_req, MPI_STATUS_IGNORE);
        int64_t end = -1;
        MPI_Send(&end, 1, MPI_INT64_T, 0, TAG_PROGRESS_END, MPI_COMM_WORLD);
    } else {
        /* a rank's END follows all its counts: drain each rank up to its END */
        for (int r = 1; r < par_size; r++) {
            for (;;) {
                MPI_Status s;
                int64_t v;
                MPI_Recv(&v, 1, MPI_INT64_T, r, MPI_ANY_TAG, MPI_COMM_WORLD, &s);
                if (s.MPI_TAG == TAG_PROGRESS_END) break;
            }
        }
        if (progress_seen)
            for (int r = 0; r < par_size; r++) progress_seen[r] = 0;
    }
    MPI_Barrier(MPI_COMM_WORLD);
}
