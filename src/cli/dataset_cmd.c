/* `qcal dataset JOB.yml`: what a job's dataset resolves to (images, labels, boxes, masks),
 * as a summary or as JSON, for checking a dataset configuration before a long job. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcal/job.h"
#include "cli.h"

enum qcal_status cli_load_dataset(const struct qcal_job *job, const struct qcal_job_dataset *d, struct qcal_dataset *ds)
{
    (void)job;
    struct qcal_dataset_spec spec = {.source = d->source, .annotations = d->annotations, .imageset = d->imageset,
                                     .masks = d->masks, .classes = d->classes, .format = d->annotation_format};
    enum qcal_status st = qcal_dataset_load(&spec, ds);
    if (st == QCAL_OK) st = qcal_dataset_subset(ds, d->subset, d->subset_random, (uint64_t)d->seed);
    if (st != QCAL_OK) qcal_dataset_free(ds);
    return st;
}

static const char *const format_names[] = {"none", "imagenet", "subfolders", "voc", "coco", "masks"};

static void print_json(const struct qcal_dataset *ds, int64_t begin, int64_t end)
{
    printf("{\"format\": \"%s\", \"count\": %lld, \"classes\": [", format_names[ds->format], (long long)ds->count);
    for (int c = 0; c < ds->n_classes; c++) {
        if (c) printf(", ");
        cli_json_string(stdout, ds->classes[c]);
    }
    printf("],\n \"class_ids\": [");
    for (int c = 0; ds->class_ids && c < ds->n_classes; c++) printf("%s%d", c ? ", " : "", ds->class_ids[c]);
    printf("],\n \"images\": [\n");
    for (int64_t i = begin; i < end; i++) {
        printf("  {\"index\": %lld, \"path\": ", (long long)ds->index[i]);
        cli_json_string(stdout, ds->paths[i]);
        printf(", \"label\": %lld", (long long)ds->labels[i]);
        if (ds->mask_paths) {
            printf(", \"mask\": ");
            cli_json_string(stdout, ds->mask_paths[i]);
        }
        if (ds->obj_begin) {
            printf(", \"objects\": [");
            for (int64_t k = ds->obj_begin[i]; k < ds->obj_begin[i + 1]; k++) {
                const struct qcal_object *o = &ds->objects[k];
                printf("%s[%d, %.9g, %.9g, %.9g, %.9g, %d, %d", k > ds->obj_begin[i] ? ", " : "", o->cls, o->x0, o->y0,
                       o->x1, o->y1, o->difficult, o->crowd);
                if (o->segm >= 0) {
                    const struct qcal_segm *sg = &ds->segms[o->segm];
                    printf(", \"%s\", [", sg->kind == QCAL_SEGM_RLE ? "rle" : "polygons");
                    for (int64_t v = sg->begin; v < sg->end; v++)
                        printf("%s%.17g", v > sg->begin ? ", " : "", ds->values[v]);
                    printf("]");
                }
                printf("]");
            }
            printf("]");
        }
        printf("}%s\n", i + 1 < end ? "," : "");
    }
    printf(" ]}\n");
}

/* Writes every object mask (DIR/<index>_<object>.npy) and every PNG mask (DIR/<index>.npy)
 * of images [begin, end) as uint8 arrays [H, W]. */
static enum qcal_status draw_masks(const struct qcal_dataset *ds, int64_t begin, int64_t end, const char *dir)
{
    enum qcal_status st = QCAL_OK;
    char path[8192];
    for (int64_t i = begin; st == QCAL_OK && i < end; i++) {
        if (ds->mask_paths) {
            struct qcal_mask m;
            if ((st = qcal_mask_load(ds->mask_paths[i], &m)) != QCAL_OK) break;
            struct qcal_tensor t = {.dtype = QCAL_U8, .ndim = 2, .dims = {m.height, m.width}, .data = m.pixels};
            snprintf(path, sizeof path, "%s/%lld.npy", dir, (long long)ds->index[i]);
            st = qcal_npy_write(path, &t);
            qcal_mask_free(&m);
        }
        for (int64_t k = ds->obj_begin ? ds->obj_begin[i] : 0; ds->obj_begin && k < ds->obj_begin[i + 1]; k++) {
            const struct qcal_object *o = &ds->objects[k];
            if (o->segm < 0) continue;
            const struct qcal_segm *sg = &ds->segms[o->segm];
            struct qcal_tensor t = {.dtype = QCAL_U8, .ndim = 2, .dims = {sg->height, sg->width}};
            if (!(t.data = malloc((size_t)sg->width * (size_t)sg->height))) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "out of memory");
            st = qcal_segm_draw(ds, o->segm, t.data);
            snprintf(path, sizeof path, "%s/%lld_%lld.npy", dir, (long long)ds->index[i],
                     (long long)(k - ds->obj_begin[i]));
            if (st == QCAL_OK) st = qcal_npy_write(path, &t);
            free(t.data);
            if (st != QCAL_OK) break;
        }
    }
    return st;
}

static const char usage[] =
    "usage: qcal dataset JOB.yml [--split validation|calibration] [--json] [--shard RANK/RANKS]\n"
    "                            [--draw-masks DIR]\n"
    "\n"
    "Loads the job's dataset (images, annotations, subset) and prints a summary, or every\n"
    "image with its label, boxes and masks as JSON. --shard shows one rank's slice;\n"
    "--draw-masks writes the masks (PNG masks decoded, COCO polygons/RLE drawn) as .npy.\n";

int cli_dataset(int argc, char **argv)
{
    enum { O_SPLIT = 1000, O_JSON, O_SHARD, O_DRAW };
    static const struct option opts[] = {{"split", required_argument, 0, O_SPLIT},
                                         {"json", no_argument, 0, O_JSON},
                                         {"shard", required_argument, 0, O_SHARD},
                                         {"draw-masks", required_argument, 0, O_DRAW},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    enum qcal_status st = QCAL_OK;
    struct qcal_job *job = NULL;
    struct qcal_dataset ds = {0};
    bool json = false, calibration = false;
    const char *draw_dir = NULL;
    int rank = 0, ranks = 1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_SPLIT:
            if (strcmp(optarg, "validation") && strcmp(optarg, "calibration")) {
                st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--split '%s': expected validation or calibration", optarg);
                goto cleanup;
            }
            calibration = !strcmp(optarg, "calibration");
            break;
        case O_JSON: json = true; break;
        case O_DRAW: draw_dir = optarg; break;
        case O_SHARD:
            if (sscanf(optarg, "%d/%d", &rank, &ranks) != 2 || ranks < 1 || rank < 0 || rank >= ranks) {
                st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "--shard '%s': expected RANK/RANKS with 0 <= RANK < RANKS", optarg);
                goto cleanup;
            }
            break;
        case 'h': fputs(usage, stdout); goto cleanup;
        default:
            st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "dataset: unknown option or missing value in '%s'", argv[optind - 1]);
            goto cleanup;
        }
    }
    if (optind + 1 != argc) {
        st = QCAL_ERR(QCAL_INVALID_ARGUMENT, "dataset: give exactly one job file (see qcal dataset --help)");
        goto cleanup;
    }
    QCAL_CHECK(qcal_job_load(argv[optind], &job));
    const struct qcal_job_dataset *d = calibration ? &job->calibration_data : &job->validation_data;
    if (!d->present) {
        st = QCAL_ERR(QCAL_INVALID_JOB, "%s: no %s dataset in the job", job->path,
                      calibration ? "calibration" : "validation");
        goto cleanup;
    }
    QCAL_CHECK(cli_load_dataset(job, d, &ds));
    int64_t begin, end;
    qcal_shard(ds.count, rank, ranks, &begin, &end);
    if (draw_dir) QCAL_CHECK(draw_masks(&ds, begin, end, draw_dir));
    if (json) {
        print_json(&ds, begin, end);
    } else {
        int64_t labelled = 0;
        for (int64_t i = 0; i < ds.count; i++) labelled += ds.labels[i] >= 0;
        printf("%s dataset: %lld images (%lld..%lld on rank %d of %d), format %s, %d classes, %lld labelled images, "
               "%lld objects, %lld masks%s\n",
               calibration ? "calibration" : "validation", (long long)ds.count, (long long)begin, (long long)end - 1,
               rank, ranks, format_names[ds.format], ds.n_classes, (long long)labelled, (long long)ds.n_objects,
               (long long)(ds.mask_paths ? ds.count : ds.n_segms), ds.mask_paths ? " (PNG)" : "");
    }
cleanup:
    qcal_dataset_free(&ds);
    qcal_job_destroy(job);
    return qcal_status_exit_code(st);
}
