/*
 * params.c - the var_ globals and the parameter table built from params.def.
 *
 * Owns one variable per main.cf parameter and the read-only param_table that
 * describes them (name, type, default, bounds, description, &var).  conf.c
 * fills the variables; everything else reads them.  The table is sorted by
 * name in params.def itself (test_params checks it), so lookup is a binary
 * search and nothing is sorted at run time.
 */
#include <stddef.h>
#include <string.h>

#include "params.h"

#define P(name, type, def, min, max, desc) PARAM_CTYPE_##type var_##name;
#include "params.def"
#undef P

const struct param_desc param_table[] = {
#define P(name, type, def, min, max, desc) \
    { #name, PARAM_##type, def, min, max, desc, (void *)&var_##name },
#include "params.def"
#undef P
};

const unsigned param_count = sizeof(param_table) / sizeof(param_table[0]);

const struct param_desc *param_find(const char *name)
{
    size_t lo = 0, hi = param_count;

    if (name == NULL)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(name, param_table[mid].name);

        if (cmp == 0)
            return &param_table[mid];
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
