#include "yaml_tree.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64

const char *ynode_kind_name(int kind)
{
    return kind == YNODE_SCALAR ? "a value" : kind == YNODE_SEQUENCE ? "a list" : "a mapping";
}

void ynode_free(struct ynode *n)
{
    if (!n) return;
    for (int i = 0; i < n->n_stored; i++) ynode_free(n->items[i]);
    free(n->items);
    free(n->value);
    free(n);
}

static struct ynode *new_node(int kind, const yaml_mark_t *m)
{
    struct ynode *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = kind;
        n->line = (int)m->line + 1;
        n->col = (int)m->column + 1;
    }
    return n;
}

/* Stores child at slot `count` (a mapping's keys and values alternate). */
static bool append(struct ynode *parent, struct ynode *child, int count)
{
    struct ynode **items = realloc(parent->items, sizeof *items * (size_t)(count + 2));
    if (!items) return false;
    parent->items = items;
    items[count] = child;
    parent->n_stored = count + 1;
    return true;
}

enum qcal_status ynode_parse(const char *text, size_t size, const char *path, struct ynode **root_out)
{
    enum qcal_status st = QCAL_OK;
    yaml_parser_t parser;
    yaml_event_t ev;
    struct ynode *stack[MAX_DEPTH];
    int pending[MAX_DEPTH]; /* mapping: items added so far (key/value alternate) */
    int depth = 0;
    struct ynode *root = NULL;
    bool done = false;
    *root_out = NULL;
    if (!yaml_parser_initialize(&parser)) return QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", path);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, size);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            st = QCAL_ERR(QCAL_INVALID_JOB, "%s:%zu:%zu: YAML error: %s%s%s", path, parser.problem_mark.line + 1,
                          parser.problem_mark.column + 1, parser.problem ? parser.problem : "unknown",
                          parser.context ? " " : "", parser.context ? parser.context : "");
            break;
        }
        struct ynode *node = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = true; break;
        case YAML_DOCUMENT_START_EVENT:
            if (root) {
                st = QCAL_ERR(QCAL_INVALID_JOB, "%s:%zu:%zu: a job file holds one YAML document", path,
                              ev.start_mark.line + 1, ev.start_mark.column + 1);
                done = true;
            }
            break;
        case YAML_ALIAS_EVENT:
            st = QCAL_ERR(QCAL_INVALID_JOB, "%s:%zu:%zu: YAML aliases are not supported in job files", path,
                          ev.start_mark.line + 1, ev.start_mark.column + 1);
            done = true;
            break;
        case YAML_SCALAR_EVENT:
            node = new_node(YNODE_SCALAR, &ev.start_mark);
            if (node) {
                node->value = strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
                node->quoted = ev.data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                               ev.data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
                if (!node->value) {
                    free(node);
                    node = NULL;
                }
            }
            break;
        case YAML_SEQUENCE_START_EVENT: node = new_node(YNODE_SEQUENCE, &ev.start_mark); break;
        case YAML_MAPPING_START_EVENT: node = new_node(YNODE_MAPPING, &ev.start_mark); break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: depth--; break;
        default: break;
        }
        bool is_open = ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT;
        bool is_node = is_open || ev.type == YAML_SCALAR_EVENT;
        if (is_node && !node) {
            st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", path);
            done = true;
        } else if (is_node) {
            if (depth == 0) {
                if (root) { /* cannot happen with one document, but stay safe */
                    ynode_free(node);
                    st = QCAL_ERR(QCAL_INVALID_JOB, "%s: more than one top-level node", path);
                    done = true;
                } else {
                    root = node;
                }
            } else {
                struct ynode *parent = stack[depth - 1];
                if (parent->kind == YNODE_MAPPING && pending[depth - 1] % 2 == 0 && node->kind != YNODE_SCALAR) {
                    st = QCAL_ERR(QCAL_INVALID_JOB, "%s:%d:%d: mapping keys must be plain values", path, node->line,
                                  node->col);
                    ynode_free(node);
                    done = true;
                } else if (!append(parent, node, parent->kind == YNODE_MAPPING ? pending[depth - 1] : parent->n)) {
                    ynode_free(node);
                    st = QCAL_ERR(QCAL_OUT_OF_MEMORY, "%s: out of memory", path);
                    done = true;
                } else {
                    if (parent->kind == YNODE_MAPPING) {
                        if (++pending[depth - 1] % 2 == 0) parent->n++;
                    } else {
                        parent->n++;
                    }
                }
            }
            if (!done && is_open) {
                if (depth == MAX_DEPTH) {
                    st = QCAL_ERR(QCAL_INVALID_JOB, "%s:%d:%d: nested deeper than %d levels", path, node->line,
                                  node->col, MAX_DEPTH);
                    done = true;
                } else {
                    pending[depth] = 0;
                    stack[depth++] = node;
                }
            }
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (st != QCAL_OK) {
        ynode_free(root);
        return st;
    }
    if (!root) return QCAL_ERR(QCAL_INVALID_JOB, "%s:1:1: the job file is empty", path);
    *root_out = root;
    return QCAL_OK;
}
