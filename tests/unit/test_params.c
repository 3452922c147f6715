/*
 * test_params.c - the parameter table itself: sorted and unique by name,
 * every row described, bounds sane, every default expands, converts and
 * passes its own min/max, the Postfix defaults the daemons rely on, and
 * param_find on every name and on names that are not there.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conf.h"
#include "params.h"
#include "strbuf.h"

static void test_sorted_unique(void **state)
{
    assert_true(param_count >= 150);
    for (unsigned i = 1; i < param_count; i++) {
        if (strcmp(param_table[i - 1].name, param_table[i].name) >= 0)
            fail_msg("table not sorted at %s, %s", param_table[i - 1].name,
                     param_table[i].name);
    }
}

static void test_rows_complete(void **state)
{
    for (unsigned i = 0; i < param_count; i++) {
        const struct param_desc *d = &param_table[i];

        if (d->desc == NULL || strlen(d->desc) < 10)
            fail_msg("%s: missing or too short description", d->name);
        if (strchr(d->desc, '\n'))
            fail_msg("%s: description is not one line", d->name);
        if (d->def == NULL || d->var == NULL)
            fail_msg("%s: no default or variable", d->name);
        if (!conf_name_valid(d->name, strlen(d->name)))
            fail_msg("%s: invalid name", d->name);
        switch (d->type) {
        case PARAM_INT: case PARAM_TIME: case PARAM_SIZE:
            if (d->min > d->max)
                fail_msg("%s: min > max", d->name);
            break;
        default:
            if (d->min != 0 || d->max != 0)
                fail_msg("%s: min/max set on a type that ignores them", d->name);
            break;
        }
    }
}

/* With no main.cf at all every default must load. */
static void test_defaults_load(void **state)
{
    struct strbuf *why = strbuf_new(128);

    conf_unload();
    if (conf_load_buffer("defaults", "", 0, why) < 0)
        fail_msg("defaults do not load: %s", strbuf_str(why));
    for (unsigned i = 0; i < param_count; i++) {
        const struct param_desc *d = &param_table[i];

        assert_non_null(conf_get(d->name));
        if (d->type == PARAM_STR || d->type == PARAM_LIST)
            assert_string_equal(*(char **)d->var, conf_get(d->name));
        if (d->type == PARAM_INT || d->type == PARAM_TIME || d->type == PARAM_SIZE) {
            long v = *(long *)d->var;

            if (v < d->min || v > d->max)
                fail_msg("%s: default %ld out of [%ld, %ld]", d->name, v, d->min, d->max);
        }
    }
    strbuf_free(&why);
    conf_unload();
}

static const struct {
    const char *name;
    const char *expanded;   /* NULL: only check that it is known */
} known_defaults[] = {
    { "daemon_directory", "/usr/lib/facteur" },
    { "data_directory", "/var/lib/facteur" },
    { "default_destination_concurrency_limit", "20" },
    { "default_destination_recipient_limit", "50" },
    { "default_process_limit", "100" },
    { "default_transport", "smtp" },
    { "hopcount_limit", "50" },
    { "home_mailbox", "Maildir/" },
    { "mail_owner", "facteur" },
    { "max_idle", "100s" },
    { "max_use", "100" },
    { "maximal_queue_lifetime", "5d" },
    { "message_size_limit", "10240000" },
    { "auth_failure_delay", "2s" },
    { "auth_allow_cleartext", "no" },
    { "auth_pam_service", "facteur" },
    { "process_id_directory", "pid" },
    { "queue_directory", "/var/spool/facteur" },
    { "service_throttle_time", "60s" },
    { "setgid_group", "facteurdrop" },
    { "smtpd_recipient_limit", "1000" },
    { "smtp_destination_concurrency_limit", "20" },
    { "smtpd_sasl_tls_security_options", "noanonymous" },
    { "smtp_dns_resolver_address", "" },
    { "smtpd_forbid_bare_newline", NULL },
    { "smtpd_authorized_xclient_hosts", NULL },
    { "milter_default_action", NULL },
    { "quota_full_tempfail", NULL },
    { "lmtp_save_to_detail_mailbox", NULL },
    { "virtual_uid_maps", NULL },
    { "myorigin", NULL },
    { "mydestination", NULL },
};

static void test_known_defaults(void **state)
{
    struct strbuf *why = strbuf_new(128);

    conf_unload();
    assert_int_equal(conf_load_buffer("defaults", "", 0, why), 0);
    for (size_t i = 0; i < sizeof(known_defaults) / sizeof(known_defaults[0]); i++) {
        const char *v = conf_get(known_defaults[i].name);

        if (v == NULL)
            fail_msg("%s is not declared", known_defaults[i].name);
        if (known_defaults[i].expanded && strcmp(v, known_defaults[i].expanded) != 0)
            fail_msg("%s = %s, want %s", known_defaults[i].name, v, known_defaults[i].expanded);
    }
    /* Derived defaults: myorigin is $myhostname, mydomain its tail. */
    assert_string_equal(conf_get("myorigin"), conf_get("myhostname"));
    assert_non_null(strchr(conf_get("myhostname"), '.'));
    assert_string_equal(conf_get("mydomain"), strchr(conf_get("myhostname"), '.') + 1);
    assert_non_null(strstr(conf_get("mynetworks"), "127.0.0.0/8"));
    assert_int_equal(var_smtpd_timeout, 300);
    assert_int_equal(var_maximal_queue_lifetime, 5 * 86400);
    assert_false(var_auth_allow_cleartext);
    assert_true(var_smtpd_delay_reject);
    strbuf_free(&why);
    conf_unload();
}

static void test_find(void **state)
{
    static const char *const missing[] = {
        "", "a", "zzzz", "smtpd", "smtpd_timeou", "smtpd_timeoutx", "SMTPD_TIMEOUT",
        "queue_directory ", "_", "~",
    };

    for (unsigned i = 0; i < param_count; i++)
        assert_ptr_equal(param_find(param_table[i].name), &param_table[i]);
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
        assert_null(param_find(missing[i]));
    assert_null(param_find(NULL));
    assert_int_equal(param_find("smtpd_timeout")->type, PARAM_TIME);
    assert_int_equal(param_find("message_size_limit")->type, PARAM_SIZE);
    assert_int_equal(param_find("smtpd_sasl_auth_enable")->type, PARAM_BOOL);
    assert_int_equal(param_find("mydestination")->type, PARAM_LIST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sorted_unique),
        cmocka_unit_test(test_rows_complete),
        cmocka_unit_test(test_defaults_load),
        cmocka_unit_test(test_known_defaults),
        cmocka_unit_test(test_find),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
