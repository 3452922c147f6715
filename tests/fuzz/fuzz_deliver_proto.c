/*
 * fuzz_deliver_proto.c - libFuzzer target for the delivery protocol
 * checks (lib/deliver_proto.c), on the path the daemons use: attr_parse
 * with deliver_limits, then deliver_request_parse (what an agent does with
 * qmgr's request) and deliver_reply_parse (what qmgr does with an agent's
 * reply) for the recipient count the message claims.  A request that
 * passes must format back to a list that passes again with the same
 * content; a refusal must say why.  Keeps no state.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attr.h"
#include "deliver_proto.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const struct attr_list *l)
{
    struct deliver_request req, again;
    struct attr_list *back = attr_new();
    struct strbuf *why = strbuf_new(64);

    deliver_request_init(&req);
    deliver_request_init(&again);
    if (deliver_request_parse(l, &req, why) == 0) {
        deliver_request_format(&req, back);
        if (deliver_request_parse(back, &again, why) != 0 || again.nrcpt != req.nrcpt
            || strcmp(again.qid, req.qid) != 0 || strcmp(again.sender, req.sender) != 0)
            __builtin_trap();
        for (size_t i = 0; i < req.nrcpt; i++)
            if (strcmp(again.rcpts[i].addr, req.rcpts[i].addr) != 0
                || again.rcpts[i].index != req.rcpts[i].index
                || (again.rcpts[i].target == NULL) != (req.rcpts[i].target == NULL)
                || (req.rcpts[i].target != NULL
                    && (strcmp(again.rcpts[i].target, req.rcpts[i].target) != 0
                        || req.rcpts[i].uid < 1 || again.rcpts[i].uid != req.rcpts[i].uid
                        || again.rcpts[i].gid != req.rcpts[i].gid)))
                __builtin_trap();
    } else if (strbuf_len(why) == 0) {
        __builtin_trap();
    }
    deliver_request_clear(&req);
    deliver_request_clear(&again);
    attr_free(&back);
    strbuf_free(&why);
}

static void check_reply(const struct attr_list *l)
{
    struct deliver_reply rep = { 0 };
    struct strbuf *why = strbuf_new(64);
    long n = 0;

    if (attr_get_long(l, "nrcpt", &n) < 0 || n < 0 || n > DELIVER_RCPT_MAX)
        n = 1;
    if (deliver_reply_parse(l, (size_t)n, &rep, why) == 0) {
        for (size_t i = 0; i < rep.nrcpt; i++)
            if (!deliver_dsn_valid(rep.st[i].dsn))
                __builtin_trap();
    } else if (strbuf_len(why) == 0 || rep.st != NULL) {
        __builtin_trap();
    }
    deliver_reply_clear(&rep);
    strbuf_free(&why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct attr_list *l = attr_new();
    struct strbuf *why = strbuf_new(64);
    size_t used = 0;

    if (attr_parse((const char *)data, size, l, NULL, &deliver_limits, &used, why) == 1) {
        check_request(l);
        check_reply(l);
    }
    attr_free(&l);
    strbuf_free(&why);
    return 0;
}
