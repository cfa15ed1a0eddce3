/* A YAML document as a small tree with source positions (libyaml does the parsing). */
#ifndef QCAL_YAML_TREE_H
#define QCAL_YAML_TREE_H

#include "qcal/core.h"

enum ynode_kind { YNODE_SCALAR, YNODE_SEQUENCE, YNODE_MAPPING };

struct ynode {
    int kind;
    int line, col;         /* 1-based */
    char *value;           /* SCALAR */
    bool quoted;           /* SCALAR written with quotes */
    int n;                 /* SEQUENCE items / MAPPING pairs */
    struct ynode **items;  /* SEQUENCE: n items; MAPPING: 2n (key, value) */
    int n_stored;          /* items owned (a mapping's key may wait for its value) */
};

/* Parses one document; errors name path:line:col. The tree is owned by the caller. */
enum qcal_status ynode_parse(const char *text, size_t size, const char *path, struct ynode **root_out);
void ynode_free(struct ynode *n);
const char *ynode_kind_name(int kind);

#endif
