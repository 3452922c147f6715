/*
 * params.h - the var_ globals of every main.cf parameter.
 *
 * Every parameter is declared once, in params.def:
 *   P(name, TYPE, "default", min, max, "one-line description")
 * Types:
 *   STR   char *var_name      (the expanded value)
 *   LIST  char *var_name      (expanded; split with conf_list_split)
 *   INT   long var_name       (min/max checked)
 *   TIME  long var_name       (seconds; value may end in s, m, h, d, w)
 *   SIZE  long var_name       (bytes; min/max checked)
 *   BOOL  bool var_name       (yes/no)
 * min and max are ignored for STR, LIST and BOOL.
 * conf_load() (conf.h) sets every variable; before it they hold nothing.
 */
#ifndef FACTEUR_PARAMS_H
#define FACTEUR_PARAMS_H

#include <stdbool.h>

enum param_type { PARAM_STR, PARAM_LIST, PARAM_INT, PARAM_TIME, PARAM_SIZE, PARAM_BOOL };

#define PARAM_CTYPE_STR  char *
#define PARAM_CTYPE_LIST char *
#define PARAM_CTYPE_INT  long
#define PARAM_CTYPE_TIME long
#define PARAM_CTYPE_SIZE long
#define PARAM_CTYPE_BOOL bool

#define P(name, type, def, min, max, desc) extern PARAM_CTYPE_##type var_##name;
#include "params.def"
#undef P

struct param_desc {
    const char *name;
    enum param_type type;
    const char *def;        /* default, before $name expansion */
    long min, max;
    const char *desc;       /* one line, for facteur-conf and main.cf(5) */
    void *var;              /* &var_name */
};

/* The table, sorted by name, and its length. */
extern const struct param_desc param_table[];
extern const unsigned param_count;

/* Look a parameter up by name (binary search); NULL if unknown. */
const struct param_desc *param_find(const char *name);

#endif
