/* qcal visualize REPORT.h5 --image NAME -o OUT.png: the parent's and the optimized model's
 * predictions on one image of an evaluation, side by side. The report says which job, models
 * and adapter; both models run again on the image (the report keeps numbers, not pictures):
 * boxes with labels and scores for detection, masks as coloured overlays for (instance)
 * segmentation, top-k bars for classification. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "draw.h"
#include "qcal/data.h"
#include "qcal/eval.h"
#include "qcal/job.h"
#include "qcal/report.h"
#include "qcal/runtime.h"

static const char usage[] =
    "usage: qcal visualize REPORT.h5 --image NAME -o OUT.png [options]\n"
    "\n"
    "Draws the parent's (left) and the optimized model's (right) predictions on one image of\n"
    "the evaluation in REPORT.h5: detection boxes with labels and scores, segmentation and\n"
    "instance masks as coloured overlays, the top classes as bars for classification. Both\n"
    "models run again on the image, from the job, models and dataset the report names.\n"
    "\n"
    "options:\n"
    "  --image NAME   the image: its name in the report (qcal report shows them) or its index\n"
    "  -o FILE.png    the picture (written as a temporary file, renamed when complete)\n"
    "  --top N        classes (classification) or boxes (detection) drawn per model (default\n"
    "                 5 and 20)\n"
    "  --threads N    OpenMP threads\n"
    "  -h, --help     this help\n";

enum { MARGIN = 12, TEXT = 2, LINE = DRAW_TEXT_HEIGHT(TEXT) + 8, BAR = 22 };

static const uint8_t WHITE[3] = {255, 255, 255}, BLACK[3] = {0, 0, 0}, GRAY[3] = {200, 200, 200},
                     DARK[3] = {40, 40, 40};

struct panel {
    int x, y, w, h;   /* on the canvas */
    double s;         /* canvas pixels per image file pixel */
};

struct scene {
    const struct qcal_job *job;
    const struct cli_labels *lb;
    const struct qcal_image *im;
    struct cli_image_geometry geo;
    int in_w, in_h, top;
};

static const char *label(const struct cli_labels *lb, int64_t c, char *buf, size_t cap)
{
    if (c >= 0 && c < lb->n && lb->name[c][0]) return lb->name[c];
    snprintf(buf, cap, "class %lld", (long long)c);
    return buf;
}

/* The top classes as bars of their probabilities, under the panel. */
static void draw_classes(struct canvas *c, const struct scene *sc, const struct panel *p, const struct qcal_tensor *t)
{
    const int64_t n = qcal_tensor_numel(t);
    double *prob = malloc(sizeof *prob * (size_t)(n > 0 ? n : 1));
    if (!prob) return;
    qcal_scores_to_probs(t->data, n, prob);
    int64_t top[64];
    const int k = cli_top_k(t->data, n, sc->top, top);
    for (int i = 0; i < k; i++) {
        const int y = p->y + p->h + MARGIN + i * BAR;
        draw_fill(c, p->x, y, p->x + p->w, y + BAR - 4, GRAY);
        draw_fill(c, p->x, y, p->x + (int)lround(prob[top[i]] * p->w), y + BAR - 4, draw_color((int)top[i]));
        char buf[96], name[32];
        snprintf(buf, sizeof buf, "%s %.3f", label(sc->lb, top[i], name, sizeof name), prob[top[i]]);
        draw_text(c, p->x + 4, y + (BAR - 4 - DRAW_TEXT_HEIGHT(TEXT)) / 2, buf, TEXT, BLACK);
    }
    free(prob);
}

/* A class map (or instance masks) laid over the panel: each panel pixel's centre mapped into
 * the image file, the model input, then the map of mw x mh. */
static void overlay(struct canvas *c, const struct scene *sc, const struct panel *p, const void *map, bool bytes,
                    int64_t mw, int64_t mh, int instance)
{
    const struct cli_axes ax = cli_file_to_model(sc->job, &sc->geo);
    for (int j = 0; j < p->h; j++) {
        const int64_t my = (int64_t)floor(((j + 0.5) / p->s - ax.oy) / ax.sy * (double)mh / sc->in_h);
        if (my < 0 || my >= mh) continue;
        for (int i = 0; i < p->w; i++) {
            const int64_t mx = (int64_t)floor(((i + 0.5) / p->s - ax.ox) / ax.sx * (double)mw / sc->in_w);
            if (mx < 0 || mx >= mw) continue;
            const int64_t at = my * mw + mx;
            const int v = bytes ? ((const uint8_t *)map)[at] : ((const int32_t *)map)[at];
            if (v > 0) draw_blend(c, p->x + i, p->y + j, draw_color(instance >= 0 ? instance : v), 0.5f);
        }
    }
}

static void draw_segmentation(struct canvas *c, const struct scene *sc, const struct panel *p,
                              const struct qcal_tensor *t)
{
    const int64_t mh = t->dims[2], mw = t->dims[3], plane = mh * mw;
    int32_t *map = malloc(sizeof *map * (size_t)plane);
    if (!map) return;
    if (t->dims[1] > 1) qcal_argmax_map(t->data, t->dims[1], plane, map);
    else for (int64_t i = 0; i < plane; i++) map[i] = ((const float *)t->data)[i] > 0.5f;
    overlay(c, sc, p, map, false, mw, mh, -1);
    /* a legend of the classes present (0 is the background) */
    int x = p->x, y = p->y + p->h + MARGIN;
    for (int64_t k = 1; k < (t->dims[1] > 1 ? t->dims[1] : 2); k++) {
        bool present = false;
        for (int64_t i = 0; i < plane && !present; i++) present = map[i] == k;
        if (!present) continue;
        char name[32];
        const char *s = label(sc->lb, k, name, sizeof name);
        const int w = DRAW_TEXT_HEIGHT(TEXT) + 6 + draw_text_width(s, TEXT) + 12;
        if (x + w > p->x + p->w) x = p->x, y += BAR;
        if (y + BAR > c->h) break;
        draw_fill(c, x, y, x + DRAW_TEXT_HEIGHT(TEXT), y + DRAW_TEXT_HEIGHT(TEXT), draw_color((int)k));
        draw_text(c, x + DRAW_TEXT_HEIGHT(TEXT) + 6, y, s, TEXT, DARK);
        x += w;
    }
    free(map);
}

static enum qcal_status draw_detections(struct canvas *c, const struct scene *sc, const struct panel *p,
                                        const struct qcal_exec *ex)
{
    struct qcal_detections d;
    uint8_t *masks = NULL;
    enum qcal_status st = cli_detect(sc->job, ex, sc->in_w, sc->in_h, sc->top, &d, &masks);
    if (st != QCAL_OK) return st;
    for (int i = 0; masks && i < d.n; i++)
        overlay(c, sc, p, masks + (size_t)i * sc->in_w * sc->in_h, true, sc->in_w, sc->in_h, d.det[i].cls);
    for (int i = d.n - 1; i >= 0; i--) { /* the best drawn last, on top */
        const struct qcal_detection *k = &d.det[i];
        float x0 = k->x0, y0 = k->y0, x1 = k->x1, y1 = k->y1;
        cli_point_to_file(sc->job, &sc->geo, &x0, &y0);
        cli_point_to_file(sc->job, &sc->geo, &x1, &y1);
        const int X0 = p->x + (int)lround(fmax(0, x0) * p->s), Y0 = p->y + (int)lround(fmax(0, y0) * p->s);
        const int X1 = p->x + (int)lround(fmin(sc->im->width, x1) * p->s);
        const int Y1 = p->y + (int)lround(fmin(sc->im->height, y1) * p->s);
        if (X1 <= X0 || Y1 <= Y0) continue;
        const uint8_t *col = draw_color(k->cls);
        draw_rect(c, X0, Y0, X1, Y1, 2, col);
        char buf[96], name[32];
        snprintf(buf, sizeof buf, "%s %.2f", label(sc->lb, k->cls, name, sizeof name), k->score);
        const int ty = Y0 - DRAW_TEXT_HEIGHT(1) - 4 >= p->y ? Y0 - DRAW_TEXT_HEIGHT(1) - 4 : Y0;
        const int tw = draw_text_width(buf, 1) + 4;
        const int tx = X0 + tw <= p->x + p->w ? X0 : p->x + p->w - tw;
        draw_fill(c, tx, ty, tx + tw, ty + DRAW_TEXT_HEIGHT(1) + 4, col);
        draw_text(c, tx + 2, ty + 2, buf, 1, BLACK);
    }
    char line[96];
    snprintf(line, sizeof line, "%d detections >= %.3g", d.n, (double)sc->job->adapter.confidence_threshold);
    draw_text(c, p->x, p->y + p->h + MARGIN, line, TEXT, DARK);
    free(masks);
    qcal_detections_free(&d);
    return QCAL_OK;
}

/* The report's image: by name, or by its index in the dataset. */
static int64_t find_image(const struct qcal_dataset *ds, const char *root, const char *want)
{
    char name[192];
    for (int64_t i = 0; i < ds->count; i++) {
        cli_image_name(ds->paths[i], root, name, sizeof name);
        if (strcmp(name, want) == 0) return i;
    }
    char *end;
    const long long k = strtoll(want, &end, 10);
    return *want && !*end && k >= 0 && k < ds->count ? (int64_t)k : -1;
}

int cli_visualize(int argc, char **argv)
{
    enum { O_IMAGE = 1000, O_TOP, O_THREADS };
    static const struct option opts[] = {{"image", required_argument, 0, O_IMAGE}, {"output", required_argument, 0, 'o'},
                                         {"top", required_argument, 0, O_TOP},     {"threads", required_argument, 0, O_THREADS},
                                         {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *image = NULL, *out = NULL;
    int top = 0;
    enum qcal_status st = QCAL_OK;
    struct qcal_h5 *f = NULL;
    struct qcal_job *job = NULL;
    struct qcal_dataset ds = {0};
    struct cli_labels lb = {0};
    struct qcal_graph *g[2] = {NULL, NULL};
    struct qcal_plan *plan[2] = {NULL, NULL};
    struct qcal_exec *ex[2] = {NULL, NULL};
    struct qcal_tensor x = {0};
    struct qcal_image im = {0};
    struct canvas cv = {0};
    char *text = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (ch) {
        case O_IMAGE: image = optarg; break;
        case 'o': out = optarg; break;
        case O_TOP: top = atoi(optarg); break;
        case O_THREADS:
            if (atoi(optarg) < 1) {
                QCAL_LOGE("visualize: --threads must be >= 1");
                return qcal_status_exit_code(QCAL_INVALID_ARGUMENT);
            }
            omp_set_num_threads(atoi(optarg));
            break;
        case 'h': fputs(usage, stdout); return 0;
        default:
            QCAL_LOGE("visualize: unknown option or missing value in '%s' (see qcal visualize --help)", argv[optind - 1]);
            return qcal_status_exit_code(QCAL_INVALID_ARGUMENT);
        }
    }
    if (optind != argc - 1 || !image || !out || top < 0) {
        QCAL_LOGE("visualize: expected REPORT.h5, --image NAME and -o OUT.png (see qcal visualize --help)");
        return qcal_status_exit_code(QCAL_INVALID_ARGUMENT);
    }
    const char *report = argv[optind];
    char job_file[4096], adapter[64], optimized[4096];
#define CHECK(expr)                                                                                               \
    do {                                                                                                          \
        if ((st = (expr)) != QCAL_OK) goto done;                                                                  \
    } while (0)
    CHECK(qcal_h5_open(report, &f));
    CHECK(qcal_h5_read_attr_string(f, "/provenance", "job_file", job_file, sizeof job_file));
    CHECK(qcal_h5_read_attr_string(f, "/provenance", "adapter", adapter, sizeof adapter));
    CHECK(qcal_h5_read_attr_string(f, "/provenance", "optimized_model", optimized, sizeof optimized));
    size_t cap = 1 << 20;
    if (!(text = malloc(cap))) CHECK(QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory"));
    CHECK(qcal_h5_read_attr_string(f, "/provenance", "job_text", text, cap));
    /* the job as evaluated (its text), relative paths from the job file's folder */
    CHECK(qcal_job_load_string(text, strlen(text), job_file, &job));
    if (job->adapter.kind == QCAL_ADAPTER_TENSOR)
        CHECK(QCAL_ERR(QCAL_UNSUPPORTED, "%s: the tensor adapter has no predictions to draw", report));
    if (!job->validation_data.present) CHECK(QCAL_ERR(QCAL_INVALID_JOB, "%s: no validation dataset", job->path));
    CHECK(cli_load_dataset(job, &job->validation_data, &ds));
    const int64_t k = find_image(&ds, job->validation_data.source, image);
    if (k < 0)
        CHECK(QCAL_ERR(QCAL_INVALID_ARGUMENT, "%s: no image '%s' in the validation dataset (%s)", report, image,
                       job->validation_data.source));
    CHECK(cli_labels_load(job->adapter.labels, &lb));
    CHECK(cli_job_model(job, true, &g[0]));
    CHECK(cli_job_model_at(job, optimized, true, &g[1]));
    struct cli_image_input in;
    CHECK(cli_image_input(job, g[0], &in));
    x = in.t;
    if (!(x.data = qcal_malloc(qcal_tensor_bytes(&in.t)))) CHECK(QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory"));
    struct scene sc = {.job = job, .lb = &lb, .im = &im};
    CHECK(cli_image_tensor(job, &in, ds.paths[k], &x, &sc.geo, NULL));
    const struct qcal_plan_options plo = {.kernels = QCAL_KERNELS_AUTO};
    for (int m = 0; m < 2; m++) {
        CHECK(qcal_plan_create(g[m], &plo, &plan[m]));
        CHECK(qcal_exec_create(plan[m], &ex[m]));
        CHECK(qcal_exec_set_input(ex[m], 0, &x));
        CHECK(qcal_exec_run(ex[m]));
    }
    CHECK(qcal_image_load(ds.paths[k], 3, &im));
    sc.in_w = (int)(job->prep.nhwc ? in.t.dims[2] : in.t.dims[3]);
    sc.in_h = (int)(job->prep.nhwc ? in.t.dims[1] : in.t.dims[2]);
    const int kind = job->adapter.kind;
    sc.top = top ? top : kind == QCAL_ADAPTER_CLASSIFICATION ? 5 : 20;
    if (sc.top > 64 && kind == QCAL_ADAPTER_CLASSIFICATION) sc.top = 64;

    /* layout: the image name, the two titles, the panels, what goes under them */
    const int pw = im.width < 320 ? 320 : im.width > 560 ? 560 : im.width;
    const double s = (double)pw / im.width;
    const int ph = (int)lround(im.height * s);
    const int below = kind == QCAL_ADAPTER_CLASSIFICATION ? sc.top * BAR + MARGIN : 2 * BAR + MARGIN;
    cv.w = 3 * MARGIN + 2 * pw, cv.h = MARGIN + 2 * LINE + ph + below + MARGIN;
    if (!(cv.rgb = malloc((size_t)cv.w * cv.h * 3))) CHECK(QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory"));
    draw_fill(&cv, 0, 0, cv.w, cv.h, WHITE);
    char name[192];
    cli_image_name(ds.paths[k], job->validation_data.source, name, sizeof name);
    draw_text(&cv, MARGIN, MARGIN, name, TEXT, BLACK);
    static const char *const titles[2] = {"parent (FP32)", "optimized (INT8)"};
    const int out_index = job->adapter.output ? cli_output_index(ex[0], job->adapter.output) : 0;
    if (out_index < 0)
        CHECK(QCAL_ERR(QCAL_INVALID_JOB, "%s: the adapter's output '%s' is not an output of the model", job->path,
                       job->adapter.output));
    for (int m = 0; m < 2; m++) {
        const struct panel p = {MARGIN + m * (pw + MARGIN), MARGIN + 2 * LINE, pw, ph, s};
        draw_text(&cv, p.x, MARGIN + LINE, titles[m], TEXT, BLACK);
        draw_image(&cv, p.x, p.y, &im, pw, ph);
        const struct qcal_tensor *t = qcal_exec_output(ex[m], out_index);
        if (kind == QCAL_ADAPTER_CLASSIFICATION) {
            draw_classes(&cv, &sc, &p, t);
        } else if (kind == QCAL_ADAPTER_SEGMENTATION) {
            if (t->ndim != 4 || t->dims[0] != 1)
                CHECK(QCAL_ERR(QCAL_UNSUPPORTED, "%s: a segmentation output must be [1, C, H, W]", job->model));
            draw_segmentation(&cv, &sc, &p, t);
        } else {
            CHECK(draw_detections(&cv, &sc, &p, ex[m]));
        }
    }
    const struct qcal_image pic = {.width = cv.w, .height = cv.h, .channels = 3, .pixels = cv.rgb, .scale = 1};
    CHECK(qcal_png_write(out, &pic));
    printf("wrote %s (%s, %s: parent left, optimized right)\n", out, name, adapter);
#undef CHECK
done:
    free(cv.rgb);
    free(text);
    qcal_image_free(&im);
    qcal_free(x.data);
    for (int m = 0; m < 2; m++) {
        qcal_exec_destroy(ex[m]);
        qcal_plan_destroy(plan[m]);
        qcal_graph_destroy(g[m]);
    }
    cli_labels_free(&lb);
    qcal_dataset_free(&ds);
    qcal_job_destroy(job);
    qcal_h5_close(f, false);
    return qcal_status_exit_code(st);
}
