/* What the job subcommands share: the job's model prepared with its input shapes, and one
 * image decoded and preprocessed into the model's input tensor. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qcal/par.h"
#include "qcal/job.h"
#include "qcal/onnx.h"
#include "qcal/runtime.h"

enum qcal_status cli_job_model(const struct qcal_job *job, bool fuse, struct qcal_graph **g_out)
{
    return cli_job_model_at(job, job->model, fuse, g_out);
}

enum qcal_status cli_job_model_at(const struct qcal_job *job, const char *path, bool fuse, struct qcal_graph **g_out)
{
    struct qcal_graph *g = NULL;
    enum qcal_status st = qcal_onnx_load(path, &g);
    if (st != QCAL_OK) return st;
    struct qcal_input_shape shapes[QCAL_JOB_MAX_INPUTS];
    int n_shapes = 0;
    for (int i = 0; i < job->n_inputs; i++) {
        if (!job->inputs[i].ndim) continue;
        shapes[n_shapes].name = job->inputs[i].name ? job->inputs[i].name
                                                    : (i < g->n_inputs ? g->values[g->inputs[i]].name : NULL);
        shapes[n_shapes].ndim = job->inputs[i].ndim;
        memcpy(shapes[n_shapes].dims, job->inputs[i].shape, sizeof shapes[n_shapes].dims);
        n_shapes++;
    }
    struct qcal_prepare_options po = {.n_shapes = n_shapes, .shapes = shapes, .optimize = fuse, .fold_batchnorm = true};
    if ((st = qcal_model_prepare(g, &po)) != QCAL_OK) {
        qcal_graph_destroy(g);
        return st;
    }
    *g_out = g;
    return QCAL_OK;
}

enum qcal_status cli_image_input(const struct qcal_job *job, const struct qcal_graph *g, struct cli_image_input *in)
{
    return cli_image_batch_input(job, g, 1, in);
}

enum qcal_status cli_image_batch_input(const struct qcal_job *job, const struct qcal_graph *g, int64_t batch,
                                       struct cli_image_input *in)
{
    memset(in, 0, sizeof *in);
    if (g->n_inputs != 1)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: images feed models with one input; this one has %d", job->model,
                        g->n_inputs);
    in->t = g->values[g->inputs[0]].t;
    in->t.data = NULL;
    char shape[96];
    if (in->t.ndim != 4 || in->t.dims[0] != batch || in->t.dtype != QCAL_F32)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: image input must be float32 [%lld, C, H, W] (or NHWC), is %s %s",
                        job->model, (long long)batch, qcal_dtype_name(in->t.dtype),
                        qcal_shape_str(&in->t, shape, sizeof shape));
    in->t.dims[0] = 1;
    in->channels = (int)(job->prep.nhwc ? in->t.dims[3] : in->t.dims[1]);
    if (in->channels != 1 && in->channels != 3)
        return QCAL_ERR(QCAL_UNSUPPORTED, "%s: image input has %d channels; 1 or 3 expected%s", job->model,
                        in->channels, job->prep.nhwc ? "" : " (layout NHWC in the job?)");
    /* decode_scaling: the first geometric step, if a resize, says how small a JPEG may decode */
    for (int k = 0; job->n_inputs && job->inputs[0].decode_scaling && k < job->prep.n; k++) {
        const struct qcal_prep_step *s = &job->prep.steps[k];
        if (s->kind == QCAL_PREP_CENTER_CROP) break;
        if (s->kind != QCAL_PREP_RESIZE) continue;
        if (s->mode == QCAL_RESIZE_EXACT) in->min_w = s->width, in->min_h = s->height;
        else if (s->mode == QCAL_RESIZE_SHORTER_SIDE) in->min_w = in->min_h = s->width;
        break;
    }
    return QCAL_OK;
}

enum qcal_status cli_image_tensor(const struct qcal_job *job, const struct cli_image_input *in, const char *path,
                                  struct qcal_tensor *x, struct cli_image_geometry *geo, double *decode_seconds)
{
    struct qcal_image im;
    double t0 = qcal_now();
    enum qcal_status s = qcal_image_load_scaled(path, in->channels == 1 ? 1 : 3, in->min_w, in->min_h, &im);
    if (decode_seconds) *decode_seconds += qcal_now() - t0;
    if (s != QCAL_OK) return s;
    float *work = qcal_malloc(2 * sizeof(float) * qcal_prep_work_floats(&job->prep, im.width, im.height, im.channels));
    s = work ? qcal_prep_run(&job->prep, &im, path, work, x) : QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", path);
    qcal_free(work);
    if (geo) *geo = (struct cli_image_geometry){im.width, im.height, im.scale};
    qcal_image_free(&im);
    return s;
}

/* Every rank reaches the same agreement points, so one rank's failure stops all of them
 * at the next one with a non-zero status (par.h). Error messages are held back until then
 * and only the lowest failing rank prints its own: one line, whatever the number of ranks
 * that failed the same way (a bad option, a missing file). */
static char held_error[2048];

void cli_hold_errors(void) { qcal_log_capture(held_error, sizeof held_error); }

enum qcal_status cli_agree(enum qcal_status st)
{
    enum qcal_status all = qcal_par_agree(st);
    if (all != QCAL_OK && qcal_par_failed_rank() == qcal_par_rank() && held_error[0]) {
        qcal_log_capture(NULL, 0);
        QCAL_LOGE("%s", held_error);
    }
    cli_hold_errors();
    return all;
}

enum qcal_status cli_image_outcome(int64_t n, enum qcal_status *status, char **errors, int64_t *ok_out)
{
    enum qcal_status st = QCAL_OK;
    int64_t ok = 0;
    for (int64_t k = 0; k < n; k++) {
        if (status[k] == QCAL_OK) {
            ok++;
            continue;
        }
        if (status[k] == CLI_NOT_RUN) continue;
        if (status[k] == CLI_SKIPPED) {
            if (errors[k]) QCAL_LOGW("skipped: %s", errors[k]);
            continue;
        }
        if (st == QCAL_OK) st = QCAL_ERR(status[k], "%s", errors[k] ? errors[k] : qcal_status_str(status[k]));
    }
    for (int64_t k = 0; k < n; k++) free(errors[k]);
    free(errors);
    free(status);
    if (ok_out) *ok_out = ok;
    return st;
}

enum qcal_status cli_image_outcome_new(int64_t n, enum qcal_status **status, char ***errors)
{
    *status = calloc((size_t)n + 1, sizeof **status);
    *errors = calloc((size_t)n + 1, sizeof **errors);
    if (*status && *errors) return QCAL_OK;
    free(*status), free(*errors);
    return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
}
