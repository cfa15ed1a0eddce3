/* qcal report REPORT.h5: an evaluation report in the terminal (summary, accuracy, the
 * outputs' distances, the per-image table), or its per-image table as CSV / the whole as
 * JSON for scripts. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qcal/report.h"

static const char usage[] =
    "usage: qcal report REPORT.h5 [--sort [-]COLUMN] [--only-differences] [--top N] [--csv | --json]\n"
    "\n"
    "Prints what qcal evaluate wrote (docs/report-format.md): the models, the summary, the\n"
    "accuracy of both models, the distance of each output, then the per-image table.\n"
    "\n"
    "options:\n"
    "  --sort COLUMN       order the images by a column of /comparison/images, ascending;\n"
    "                      -COLUMN descending (ties keep dataset order)\n"
    "  --only-differences  only the images where the optimized model's prediction differs\n"
    "                      from the parent's (another class; a class map not identical)\n"
    "  --top N             the first N images after sorting and filtering\n"
    "  --csv               the per-image table as CSV (all columns, full precision)\n"
    "  --json              summary, accuracy and per-image table as one JSON object\n"
    "  -h, --help          this help\n";

struct table {
    int64_t rows;
    int cols;
    char **names;
    bool *is_string;
    double **num;  /* per column, NULL for strings */
    char ***str;   /* per column, NULL for numbers */
};

static void table_free(struct table *t)
{
    for (int c = 0; c < t->cols; c++) {
        free(t->names ? t->names[c] : NULL);
        free(t->num ? t->num[c] : NULL);
        for (int64_t r = 0; t->str && t->str[c] && r < t->rows; r++) free(t->str[c][r]);
        free(t->str ? t->str[c] : NULL);
    }
    free(t->names);
    free(t->is_string);
    free(t->num);
    free(t->str);
}

static enum qcal_status table_read(struct qcal_h5 *f, const char *path, struct table *t)
{
    memset(t, 0, sizeof *t);
    enum qcal_status st = qcal_h5_table_columns(f, path, &t->rows, &t->cols, &t->names, &t->is_string);
    if (st != QCAL_OK) return st;
    t->num = calloc((size_t)t->cols + 1, sizeof *t->num);
    t->str = calloc((size_t)t->cols + 1, sizeof *t->str);
    if (!t->num || !t->str) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
    int64_t rows;
    for (int c = 0; c < t->cols && st == QCAL_OK; c++)
        st = t->is_string[c] ? qcal_h5_read_column_strings(f, path, t->names[c], &t->str[c], &rows)
                             : qcal_h5_read_column_f64(f, path, t->names[c], &t->num[c], &rows);
    return st;
}

static int column(const struct table *t, const char *name)
{
    for (int c = 0; c < t->cols; c++)
        if (strcmp(t->names[c], name) == 0) return c;
    return -1;
}

/* Sorting rows by a column (stable: ties in dataset order). */
static const struct table *sort_t;
static int sort_col, sort_dir;
static int by_column(const void *a, const void *b)
{
    const int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    int c;
    if (sort_t->is_string[sort_col]) {
        c = strcmp(sort_t->str[sort_col][i], sort_t->str[sort_col][j]);
    } else {
        const double x = sort_t->num[sort_col][i], y = sort_t->num[sort_col][j];
        c = isnan(x) || isnan(y) ? isnan(x) - isnan(y) : (x > y) - (x < y);
    }
    return c ? c * sort_dir : (i > j) - (i < j);
}

static void print_value(const struct table *t, int c, int64_t r, bool full)
{
    if (t->is_string[c]) {
        printf("%s", t->str[c][r]);
        return;
    }
    const double v = t->num[c][r];
    if (v == floor(v) && fabs(v) < 1e15) printf("%.0f", v);
    else printf(full ? "%.17g" : "%.6g", v);
}

static void json_number(double v)
{
    if (isnan(v) || isinf(v)) printf("null");
    else if (v == floor(v) && fabs(v) < 1e15) printf("%.0f", v);
    else printf("%.17g", v);
}

/* An attribute the report may not have (by adapter): false, without a message, if absent. */
static bool optional_attr(struct qcal_h5 *f, const char *obj, const char *name, double *v)
{
    char quiet[512];
    qcal_log_capture(quiet, sizeof quiet);
    const bool ok = qcal_h5_read_attr_f64(f, obj, name, v) == QCAL_OK;
    qcal_log_capture(NULL, 0);
    return ok;
}

static const char *const summary_keys[] = {
    "images", "top1_agreement", "labelled_images", "mean_iou_agreement", "optimized_detections",
    "parent_detections", "matches", "identical_images", "map_vs_parent"};
static const char *const accuracy_keys[] = {
    "parent_top1", "optimized_top1", "top1_drop", "parent_top5", "optimized_top5",
    /* detection */
    "objects", "parent_voc_map_11pt", "optimized_voc_map_11pt", "voc_map_11pt_drop", "parent_voc_map",
    "optimized_voc_map", "voc_map_drop", "parent_coco_map", "optimized_coco_map", "coco_map_drop",
    "parent_coco_map50", "optimized_coco_map50", "coco_map50_drop", "parent_coco_map75", "optimized_coco_map75",
    "coco_map75_drop", "parent_coco_segm_map", "optimized_coco_segm_map", "coco_segm_map_drop",
    "parent_coco_segm_map50", "optimized_coco_segm_map50", "coco_segm_map50_drop",
    /* segmentation against masks */
    "pixels", "parent_mean_iou", "optimized_mean_iou", "mean_iou_drop", "parent_pixel_accuracy",
    "optimized_pixel_accuracy", "pixel_accuracy_drop"};

/* The attributes `keys` of obj that the report has, as one JSON object. */
static void json_attrs(struct qcal_h5 *f, const char *obj, const char *const *keys, size_t n)
{
    double v;
    putchar('{');
    for (size_t k = 0, first = 1; k < n; k++)
        if (optional_attr(f, obj, keys[k], &v)) {
            printf("%s\"%s\": ", first ? "" : ", ", keys[k]);
            json_number(v);
            first = 0;
        }
    putchar('}');
}

int cli_report(int argc, char **argv)
{
    enum { O_SORT = 1000, O_DIFF, O_TOP, O_CSV, O_JSON };
    static const struct option opts[] = {{"sort", required_argument, 0, O_SORT}, {"only-differences", no_argument, 0, O_DIFF},
                                         {"top", required_argument, 0, O_TOP},   {"csv", no_argument, 0, O_CSV},
                                         {"json", no_argument, 0, O_JSON},       {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *sort = NULL;
    bool diff = false, csv = false, json = false;
    int64_t top = -1;
    enum qcal_status st = QCAL_OK;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case O_SORT: sort = optarg; break;
        case O_DIFF: diff = true; break;
        case O_TOP: top = atoll(optarg); break;
        case O_CSV: csv = true; break;
        case O_JSON: json = true; break;
        case 'h': fputs(usage, stdout); return 0;
        default:
            QCAL_LOGE("report: unknown option or missing value in '%s' (see qcal report --help)", argv[optind - 1]);
            return qcal_status_exit_code(QCAL_INVALID_ARGUMENT);
        }
    }
    if (optind != argc - 1 || (csv && json)) {
        QCAL_LOGE("report: expected one REPORT.h5 and at most one of --csv, --json (see qcal report --help)");
        return qcal_status_exit_code(QCAL_INVALID_ARGUMENT);
    }
    struct qcal_h5 *f = NULL;
    struct table t = {0}, d = {0};
    int64_t *order = NULL;
    char adapter[64] = "", parent[1024] = "", optimized[1024] = "";
    if ((st = qcal_h5_open(argv[optind], &f)) != QCAL_OK) goto done;
    char quiet[512];
    qcal_log_capture(quiet, sizeof quiet);
    const bool is_report = qcal_h5_read_attr_string(f, "/provenance", "adapter", adapter, sizeof adapter) == QCAL_OK;
    qcal_log_capture(NULL, 0);
    if (!is_report) {
        st = QCAL_ERR(QCAL_INVALID_DATA, "%s: not a qcal evaluate report (no /provenance adapter)", argv[optind]);
        goto done;
    }
    qcal_h5_read_attr_string(f, "/provenance", "parent_model", parent, sizeof parent);
    qcal_h5_read_attr_string(f, "/provenance", "optimized_model", optimized, sizeof optimized);
    if ((st = table_read(f, "/comparison/images", &t)) != QCAL_OK) goto done;
    if ((st = table_read(f, "/comparison/tensors", &d)) != QCAL_OK) goto done;
    /* the rows to show: filtered, sorted, cut */
    order = malloc(sizeof *order * (size_t)(t.rows + 1));
    if (!order) {
        st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    const int pc = column(&t, "parent_class"), oc = column(&t, "optimized_class"), iou = column(&t, "mean_iou");
    int64_t n = 0;
    for (int64_t r = 0; r < t.rows; r++) {
        const bool differs = pc >= 0 && oc >= 0 ? t.num[pc][r] != t.num[oc][r] : iou >= 0 ? t.num[iou][r] < 1.0 : false;
        if (!diff || differs) order[n++] = r;
    }
    if (sort) {
        sort_dir = sort[0] == '-' ? -1 : 1;
        sort_col = column(&t, sort + (sort[0] == '-'));
        if (sort_col < 0) {
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--sort %s: %s has no such column", sort, argv[optind]);
            goto done;
        }
        sort_t = &t;
        qsort(order, (size_t)n, sizeof *order, by_column);
    }
    if (top >= 0 && top < n) n = top;
    double v;
    if (csv) {
        for (int c = 0; c < t.cols; c++) printf("%s%s", c ? "," : "", t.names[c]);
        putchar('\n');
        for (int64_t k = 0; k < n; k++) {
            for (int c = 0; c < t.cols; c++) {
                if (c) putchar(',');
                if (t.is_string[c]) {
                    putchar('"');
                    for (const char *s = t.str[c][order[k]]; *s; s++) printf(*s == '"' ? "\"\"" : "%c", *s);
                    putchar('"');
                } else {
                    print_value(&t, c, order[k], true);
                }
            }
            putchar('\n');
        }
        goto done;
    }
    if (json) {
        printf("{\"adapter\": ");
        cli_json_string(stdout, adapter);
        printf(", \"parent_model\": ");
        cli_json_string(stdout, parent);
        printf(", \"optimized_model\": ");
        cli_json_string(stdout, optimized);
        printf(", \"summary\": ");
        json_attrs(f, "/summary", summary_keys, sizeof summary_keys / sizeof *summary_keys);
        printf(", \"accuracy\": ");
        json_attrs(f, "/accuracy", accuracy_keys, sizeof accuracy_keys / sizeof *accuracy_keys);
        printf(", \"images\": [");
        for (int64_t k = 0; k < n; k++) {
            printf("%s{", k ? ", " : "");
            for (int c = 0; c < t.cols; c++) {
                printf("%s\"%s\": ", c ? ", " : "", t.names[c]);
                if (t.is_string[c]) cli_json_string(stdout, t.str[c][order[k]]);
                else json_number(t.num[c][order[k]]);
            }
            putchar('}');
        }
        printf("]}\n");
        goto done;
    }
    printf("%s: %s comparison of %lld images\n  parent:    %s\n  optimized: %s\n", argv[optind], adapter,
           (long long)t.rows, parent, optimized);
    for (size_t k = 0; k < sizeof summary_keys / sizeof *summary_keys; k++)
        if (k && optional_attr(f, "/summary", summary_keys[k], &v))
            printf(v == floor(v) ? "  %-26s %.0f\n" : "  %-26s %.4f\n", summary_keys[k], v);
    for (size_t k = 0; k < sizeof accuracy_keys / sizeof *accuracy_keys; k++)
        if (optional_attr(f, "/accuracy", accuracy_keys[k], &v))
            printf(v == floor(v) && fabs(v) > 1 ? "  %-26s %.0f\n" : "  %-26s %.4f\n", accuracy_keys[k], v);
    /* each output over the images: the worst cosine and SNR, the largest difference */
    int n_names = 0;
    char **names = NULL;
    qcal_h5_read_strings(f, "/comparison/output_names", &n_names, &names);
    const int dout = column(&d, "output"), dcos = column(&d, "cosine"), dsnr = column(&d, "snr_db"),
              dmax = column(&d, "max_abs");
    for (int o = 0; dout >= 0 && dcos >= 0 && dsnr >= 0 && dmax >= 0 && o < n_names; o++) {
        double cmin = INFINITY, smin = INFINITY, mmax = 0;
        for (int64_t r = 0; r < d.rows; r++) {
            if (d.num[dout][r] != o) continue;
            cmin = fmin(cmin, d.num[dcos][r]), smin = fmin(smin, d.num[dsnr][r]), mmax = fmax(mmax, d.num[dmax][r]);
        }
        printf("  output %-12s cosine >= %.6f, SNR >= %.1f dB, max |diff| %.4g\n", names[o], cmin, smin, mmax);
    }
    for (int o = 0; o < n_names; o++) free(names[o]);
    free(names);
    printf("images%s%s%s (%lld of %lld):\n", diff ? ", only differences" : "", sort ? ", sorted by " : "",
           sort ? sort : "", (long long)n, (long long)t.rows);
    for (int c = 0; c < t.cols; c++) printf("%s%s", c ? "  " : "  ", t.names[c]);
    putchar('\n');
    for (int64_t k = 0; k < n; k++) {
        for (int c = 0; c < t.cols; c++) {
            printf("  ");
            print_value(&t, c, order[k], false);
        }
        putchar('\n');
    }
done:
    free(order);
    table_free(&t);
    table_free(&d);
    if (f) qcal_h5_close(f, false);
    return qcal_status_exit_code(st);
}
