/*
 * fuzz_maincf.c - libFuzzer target for the main.cf parser and expander.
 *
 * Calls conf_load_buffer(), the entry point conf_load() uses, on the raw
 * bytes; on success reads every parameter back, splits every LIST value and
 * runs the unused-name check (its warnings go nowhere), then conf_unload()
 * frees everything so no state survives one input.  A failure must always
 * say why, with the file name in front.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(128);

    log_init("fuzz_maincf", 0);
    if (conf_load_buffer("fuzz/main.cf", (const char *)data, size, why) == 0) {
        for (unsigned i = 0; i < param_count; i++) {
            const char *v = conf_get(param_table[i].name);

            if (v == NULL || conf_get_value(param_table[i].name) == NULL)
                __builtin_trap();
            if (param_table[i].type == PARAM_LIST) {
                char **list = conf_list_split(v);

                for (size_t j = 0; list[j]; j++)
                    if (list[j][0] == 0)
                        __builtin_trap();
                conf_list_free(&list);
            }
        }
        char **names = conf_names_set();
        for (size_t i = 0; names[i]; i++)
            if (!conf_is_set(names[i]) || conf_get(names[i]) == NULL)
                __builtin_trap();
        conf_list_free(&names);
        (void)conf_check_unknown();
    } else if (strncmp(strbuf_str(why), "fuzz/main.cf", 12) != 0
               && strncmp(strbuf_str(why), "default of ", 11) != 0) {
        __builtin_trap();
    }
    conf_unload();
    strbuf_free(&why);
    return 0;
}
