/*
 * qcal calib: activation statistics and quantization scales.
 *
 * Statistics are gathered in passes over the calibration images. In each pass every
 * OpenMP thread runs whole images through the FP32 plan with its own observer context; at
 * the end of the pass the threads' statistics are merged and reduced over MPI ranks
 * (through par). Everything reduced is order-free (min, max, integer counts and
 * fixed-point sums), so the result is the same bits for any number of ranks and threads.
 *
 *     qcal_calib_create(g, values, n, &c);               // the tensors to observe
 *     for (pass = 1; pass <= 2; pass++) {
 *         qcal_calib_begin_pass(c, pass, n_threads, n_images_total);
 *         // per thread: qcal_exec_set_observer(ex, qcal_calib_observer, qcal_calib_thread(c, tid));
 *         //             qcal_calib_observe_value(qcal_calib_thread(c, tid), input_value, &x);
 *         //             qcal_calib_image_done(qcal_calib_thread(c, tid)) after each image
 *         qcal_calib_end_pass(c);                        // collective over ranks
 *     }
 *     qcal_calib_compute(c, &options);                   // scales; searches spread over ranks
 *
 * Pass 1 finds each tensor's min and max. Pass 2 fills a 2048-bin histogram (uint64
 * counts) over a fixed range: [0, max] for non-negative tensors, [-R, R] with
 * R = max(|min|, |max|) otherwise, and sums each image's min and max in fixed point.
 * Memory is the histograms, whatever the number of images.
 */
#ifndef QCAL_CALIB_H
#define QCAL_CALIB_H

#include "qcal/graph.h"

#define QCAL_CALIB_BINS 2048

enum qcal_calib_method {
    QCAL_CALIB_MINMAX,
    QCAL_CALIB_MEAN_MINMAX,
    QCAL_CALIB_PERCENTILE,
    QCAL_CALIB_ENTROPY,
    QCAL_CALIB_MSE,
};
enum qcal_calib_preset { QCAL_PRESET_PERFORMANCE, QCAL_PRESET_MIXED };

/* "minmax" ... -> enum, -1 if unknown; and back. */
int qcal_calib_method_parse(const char *s);
const char *qcal_calib_method_name(int method);
int qcal_calib_preset_parse(const char *s);
const char *qcal_calib_preset_name(int preset);

/* Quantization of one activation tensor: x_q = clamp(round(x / scale) + zero_point). */
struct qcal_qparams {
    float lo, hi;          /* the range the method chose */
    float scale;
    int32_t zero_point;
    int32_t dtype;         /* QCAL_U8 or QCAL_I8 */
};

struct qcal_calib_stat {
    char *name;
    int value;             /* value id in the graph */
    float min, max;        /* pass 1 */
    float hist_lo, hist_hi; /* histogram range (pass 2) */
    uint64_t count;        /* finite elements seen in pass 2 */
    uint64_t *hist;        /* QCAL_CALIB_BINS counts */
    double mean_min, mean_max; /* mean over images of each image's min and max */
    struct qcal_qparams q; /* from qcal_calib_compute */
};

struct qcal_calib {
    int n;
    struct qcal_calib_stat *stats;
    int64_t images;        /* images in the pass (all ranks) */
    int pass;
    /* private */
    int n_values;
    int *stat_of_value;    /* graph value id -> stat index, -1 if not observed */
    int n_threads;
    struct qcal_calib_thread *threads;
    double *fx_scale;      /* per stat: fixed-point scale of the per-image sums */
};

struct qcal_calib_thread;

/* Observes the given value ids of g (names copied; g need not outlive c). */
enum qcal_status qcal_calib_create(const struct qcal_graph *g, const int *values, int n, struct qcal_calib **out);
void qcal_calib_destroy(struct qcal_calib *c);

/* Starts pass 1 or 2 for `n_threads` thread contexts; `images` is the number of images
 * all ranks will observe in this pass. */
enum qcal_status qcal_calib_begin_pass(struct qcal_calib *c, int pass, int n_threads, int64_t images);
struct qcal_calib_thread *qcal_calib_thread(struct qcal_calib *c, int tid);
/* The runtime observer (qcal_exec_set_observer) with a thread context as ctx. */
void qcal_calib_observer(void *ctx, const struct qcal_node *node, int n_out, struct qcal_tensor *const *outs,
                         const uint8_t *layouts);
/* Observes a tensor the plan does not produce (a model input). */
void qcal_calib_observe_value(struct qcal_calib_thread *t, int value, const struct qcal_tensor *x);
/* Closes the current image of this thread (per-image statistics). */
void qcal_calib_image_done(struct qcal_calib_thread *t);
/* Merges the threads and reduces over ranks. Collective. */
enum qcal_status qcal_calib_end_pass(struct qcal_calib *c);

struct qcal_calib_options {
    int method;            /* enum qcal_calib_method */
    int preset;            /* enum qcal_calib_preset */
    float percentile;      /* for QCAL_CALIB_PERCENTILE, e.g. 99.999 */
};
/* Chooses every tensor's range and quantization parameters from the statistics. The
 * searches (entropy, mse) are spread over ranks and threads. Collective. */
enum qcal_status qcal_calib_compute(struct qcal_calib *c, const struct qcal_calib_options *o);

/* The range searches on one histogram, exposed for tests. `hist` has n bins over
 * [0, top] (|x| histograms). Return the chosen threshold. */
double qcal_calib_entropy_threshold(const uint64_t *hist, int n, double top, int levels);
double qcal_calib_mse_threshold(const uint64_t *hist, int n, double top, int levels);
/* Percentile p (0..100) of a histogram over [lo, hi], linear inside the bin. */
double qcal_calib_hist_percentile(const uint64_t *hist, int n, double lo, double hi, double p);
/* Quantization parameters for a range under a preset; nonneg: the tensor never went
 * below zero (uint8 with zero point 0). */
struct qcal_qparams qcal_qparams_from_range(float lo, float hi, int preset, bool nonneg);
/* The integer levels a quantizer's dtype saturates to: [0, 255] for uint8, [-128, 127] for int8. */
static inline void qcal_qparams_levels(const struct qcal_qparams *q, double *qmin, double *qmax)
{
    *qmin = q->dtype == QCAL_U8 ? 0 : -128;
    *qmax = q->dtype == QCAL_U8 ? 255 : 127;
}

/* ---- Quantization error per layer (pass 3, src/calib/error.c) ----
 * For each quantized layer: y, its FP32 output, and e, its INT8-simulated twin's output
 * minus y (quant.h: qcal_quant_add_twins). Per channel, the means over all images and
 * positions of y, y^2, e and e^2, summed in fixed point (exact, any ranks and threads).
 *
 *     qcal_error_create(twin_graph, layers, n, n_threads, images, &e);
 *     // per thread: qcal_exec_set_observer(ex, qcal_error_observer, qcal_error_thread(e, tid));
 *     qcal_error_end(e);                      // collective; fills layers[j].mean
 */
struct qcal_error_layer {
    int y, error;          /* value ids in the twin graph */
    int axis;              /* channel axis of y (plain layout) */
    int64_t channels;
    double bound;          /* |y|, |e| <= bound elementwise */
    double *mean;          /* after qcal_error_end: [channel][4] means of y, y^2, e, e^2 */
    /* private */
    int64_t offset;
    double fx[2];
};
/* Per-channel histograms of quantized layers' FP32 inputs (shared bias correction: a
 * configuration with other scales estimates how its input quantization moves each layer's
 * mean output from them). Bins are logarithmic in |x| / m, m = max(|lo|, |hi|): per sign,
 * QCAL_INPUT_OCTAVES octaves below m of QCAL_INPUT_SUB equal bins each, so values near zero,
 * where rounding decides, are resolved as finely as the large ones relative to their size;
 * each bin also keeps the least and largest value it saw (a constant channel is a point).
 * Then three exact counters: values equal to 0 (or below the last octave), to lo and to hi
 * (ReLU zeros, clipped values: point masses a bin would smear). Counts are integers: the
 * same for any ranks, threads and order. */
enum {
    QCAL_INPUT_OCTAVES = 16,
    QCAL_INPUT_SUB_BITS = 3, /* the leading mantissa bits of |x| / m pick the bin in its octave */
    QCAL_INPUT_SUB = 1 << QCAL_INPUT_SUB_BITS,
    QCAL_INPUT_BINS = 2 * QCAL_INPUT_OCTAVES * QCAL_INPUT_SUB, /* negative, then positive */
    QCAL_INPUT_SLOTS = QCAL_INPUT_BINS + 3
};
struct qcal_error_input {
    int value;             /* value id in the twin graph */
    int axis;              /* channel axis (plain layout) */
    int64_t channels;
    float lo, hi;          /* the tensor's min and max over the calibration set */
    /* after qcal_error_end (owned by the qcal_calib_error): */
    uint64_t *hist;        /* [channel][QCAL_INPUT_SLOTS] */
    float *bin_min, *bin_max; /* [channel][QCAL_INPUT_BINS]: the values a bin saw (+inf/-inf: none) */
    /* private */
    int64_t offset;
};
struct qcal_error_thread;
struct qcal_calib_error {
    int n;
    struct qcal_error_layer *layers;
    int64_t images;        /* at create: at most this many images (all ranks); set to the
                            * number observed before qcal_error_end */
    /* private */
    int n_values, n_threads;
    int *role;             /* value id -> 2 * layer (+1 for the error), -1 */
    int64_t total_channels;
    int n_inputs;          /* qcal_error_add_inputs */
    struct qcal_error_input *inputs;
    int *input_role;       /* value id -> input index, -1 */
    int64_t input_channels;
    int64_t record_every;  /* inputs recorded on images whose index is a multiple of it */
    struct qcal_error_thread *threads;
};
enum qcal_status qcal_error_create(const struct qcal_graph *g, const struct qcal_error_layer *layers, int n,
                                   int n_threads, int64_t images, struct qcal_calib_error **out);
void qcal_error_destroy(struct qcal_calib_error *e);
struct qcal_error_thread *qcal_error_thread(struct qcal_calib_error *e, int tid);
void qcal_error_observer(void *ctx, const struct qcal_node *node, int n_out, struct qcal_tensor *const *outs,
                         const uint8_t *layouts);
/* Also histograms these tensors per channel (before the first image), on one image in every
 * `every` (by index in the calibration set: the same images for any ranks and threads). */
enum qcal_status qcal_error_add_inputs(struct qcal_calib_error *e, const struct qcal_error_input *in, int n,
                                       int64_t every);
/* The index (in the calibration set) of the image the thread runs next. */
void qcal_error_image(struct qcal_error_thread *th, int64_t index);
/* A graph input (no node produces it, so the observer never sees it). */
void qcal_error_observe_input(struct qcal_error_thread *th, int value, const struct qcal_tensor *x);
/* Merges the threads and reduces over ranks. Collective. */
enum qcal_status qcal_error_end(struct qcal_calib_error *e);

/* One channel's recorded inputs: its non-empty bins (count, least and largest value) and the
 * three point masses of the histogram above. */
struct qcal_input_channel {
    int64_t n;             /* non-empty bins */
    const uint64_t *count;
    const float *min, *max;
    uint64_t zero, at_lo, at_hi;
    float lo, hi;          /* the tensor's range */
};
/* E[Q(x)] over a recorded channel for the activation quantizer q (QuantizeLinear then
 * DequantizeLinear): a bin's values taken as spread evenly between the least and the
 * largest it saw, the point masses exactly. 0 for an empty channel. */
double qcal_input_mean_quantized(const struct qcal_input_channel *c, const struct qcal_qparams *q);

#endif
