/*
 * qcal job files: YAML (libyaml) turned into plain structs, close to OpenVINO Accuracy
 * Checker configs. Paths are resolved relative to the job file; unknown keys, wrong types
 * and bad values are errors naming the file, line and column and what was expected.
 * docs/job-format.md lists every key with its default.
 *
 *     struct qcal_job *job = NULL;
 *     if (qcal_job_load("jobs/mobilenet_v2.yml", &job) != QCAL_OK) return 1;
 *     ... job->model, job->prep, job->adapter ...
 *     qcal_job_destroy(job);
 */
#ifndef QCAL_JOB_H
#define QCAL_JOB_H

#include "qcal/data.h"

#define QCAL_JOB_MAX_INPUTS 8

enum qcal_color { QCAL_COLOR_RGB, QCAL_COLOR_BGR, QCAL_COLOR_GRAY };

struct qcal_job_input {
    char *name;              /* NULL: the model's input in this position */
    int ndim;                /* 0: the model's own shape */
    int64_t shape[QCAL_MAX_DIMS];
    bool nhwc;               /* layout the model takes */
    int color;               /* enum qcal_color */
    bool decode_scaling;     /* JPEGs may decode at 1/2..1/8 scale before a shrinking resize */
};

struct qcal_job_dataset {
    bool present;
    char *source;            /* folder of images, or a list file */
    char *annotations;       /* file or folder, by format */
    int annotation_format;   /* enum qcal_data_format */
    char *masks;             /* segmentation masks folder */
    char *imageset;          /* VOC/masks image ids file */
    char *classes;           /* class names file */
    int64_t subset;          /* 0: all */
    bool subset_random;
    int64_t seed;
    bool skip_bad_images;
};

enum qcal_adapter_kind {
    QCAL_ADAPTER_TENSOR, QCAL_ADAPTER_CLASSIFICATION, QCAL_ADAPTER_SSD, QCAL_ADAPTER_YOLO,
    QCAL_ADAPTER_SEGMENTATION, QCAL_ADAPTER_INSTANCE_SEGMENTATION,
};

struct qcal_job_adapter {
    int kind;                /* enum qcal_adapter_kind */
    char *labels;            /* labels file, one per line */
    int top_k;
    float confidence_threshold, nms_threshold;
    int background_class;    /* -1: none */
    int n_anchors;
    float *anchors;          /* owned */
    char *output;            /* output name to read; NULL: the first */
};

#define QCAL_JOB_MAX_METRICS 8
struct qcal_job_metric {
    char *type;              /* accuracy, map, coco_map, mean_iou, pixel_accuracy, ... */
    int top_k;
    float iou_threshold;
};

#define QCAL_JOB_MAX_IGNORED 64
#define QCAL_JOB_MAX_SWEEP 16
/* A calibration setting given as a list: the values of one axis of a sweep (qcal sweep). */
struct qcal_job_sweep_dim {
    const char *key;         /* subset | preset | method | percentile | bias_correction | ignored */
    int n;
    char *values[QCAL_JOB_MAX_SWEEP]; /* as written in the job; ignored: "N:name\n" and "T:type\n" lines */
};
struct qcal_job_calibration {
    char *preset;            /* performance | mixed */
    char *method;            /* minmax | mean_minmax | percentile | entropy | mse */
    int64_t subset;
    float percentile;
    bool bias_correction;
    int n_ignored_names, n_ignored_types;
    char *ignored_names[QCAL_JOB_MAX_IGNORED], *ignored_types[QCAL_JOB_MAX_IGNORED];
    /* sweep axes, outermost first (subset, preset, method, percentile, bias_correction,
     * ignored); the fields above hold each list's first value */
    int n_sweep;
    struct qcal_job_sweep_dim sweep[6];
};

struct qcal_job_benchmark {
    int batch, streams, threads; /* streams/threads 0: automatic */
    double time;             /* seconds; 0 with iterations set */
    int64_t iterations;
};

/* accuracy_aware: the accuracy budget of an INT8 model (POT's AccuracyAwareQuantization). */
enum qcal_drop_type { QCAL_DROP_ABSOLUTE, QCAL_DROP_RELATIVE };
struct qcal_job_accuracy_aware {
    bool present;
    float max_drop;          /* default 0.01 */
    int drop_type;           /* enum qcal_drop_type */
    int64_t ranking_subset;  /* default 300 */
    int metric;              /* -1: the annotated metric of the adapter, else agreement; or accuracy, top5,
                                voc_map, coco_map, coco_segm_map, mean_iou, pixel_accuracy, agreement */
};

struct qcal_job {
    char *path, *dir;        /* the job file and its folder */
    char *text;              /* the file as read (for provenance) */
    char *model;             /* resolved path */
    int n_inputs;
    struct qcal_job_input inputs[QCAL_JOB_MAX_INPUTS];
    struct qcal_prep prep;   /* for the first input; nhwc from its layout */
    struct qcal_job_dataset calibration_data, validation_data;
    struct qcal_job_adapter adapter;
    int n_metrics;
    struct qcal_job_metric metrics[QCAL_JOB_MAX_METRICS];
    struct qcal_job_calibration calibration;
    struct qcal_job_benchmark benchmark;
    struct qcal_job_accuracy_aware accuracy_aware;
};

/* Loads and validates `path`; *job_out owned by the caller (qcal_job_destroy, NULL-safe).
 * Fails with QCAL_INVALID_JOB (or QCAL_IO_ERROR) and one message "FILE:LINE:COL: ...". */
enum qcal_status qcal_job_load(const char *path, struct qcal_job **job_out);
enum qcal_status qcal_job_load_string(const char *text, size_t size, const char *path, struct qcal_job **job_out);
void qcal_job_destroy(struct qcal_job *job);

#endif
