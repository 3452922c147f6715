# facteur top-level Makefile (GNU make, non-recursive).
#
# Works from a fresh clone: config.mk is made by configure, which is made by
# autoreconf, so the first `make` runs both.  Sources are found by wildcard,
# so a new lib module, daemon file, command or test needs no edit here:
#   lib/*.c            -> build/libfacteur.a
#   DAEMON/*.c         -> libexec/DAEMON      (one directory a daemon)
#   cmd/NAME.c         -> bin/NAME            (one file a command; shared code is lib)
#   tests/unit/test_*.c -> build/tests/test_* (cmocka)
#   tests/fuzz/fuzz_*.c -> build/fuzz/fuzz_*  (replay driver; libFuzzer with `make fuzz`)
# `make SANITIZE=1 ...` builds with ASan+UBSan into build-asan/ (used by check-asan).

include config.mk

ifeq ($(SANITIZE),1)
O := build-asan
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
O := build
SAN :=
endif
BIN := $(if $(filter 1,$(SANITIZE)),$(O)/bin,bin)
LIBEXEC := $(if $(filter 1,$(SANITIZE)),$(O)/libexec,libexec)

WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wformat=2 -Wno-format-nonliteral
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Ilib $(WARN) $(CFLAGS) $(SAN) -MMD -MP
ALL_LDFLAGS := $(SAN) $(CONF_LDFLAGS) -Wl,--as-needed
LIBS := $(SSL_LIBS) $(DB_LIBS) $(UNBOUND_LIBS) $(PAM_LIBS) $(CRYPT_LIBS)

DAEMON_DIRS := master smtpd smtp qmgr lmtpd imapd pop3d authd pickup anvil pipe
DAEMONS := $(foreach d,$(DAEMON_DIRS),$(if $(wildcard $(d)/*.c),$(d)))
CMDS := $(patsubst cmd/%.c,%,$(wildcard cmd/*.c))
UNIT := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
FUZZ := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

LIB_SRC := $(wildcard lib/*.c)
LIB_OBJ := $(patsubst %.c,$(O)/%.o,$(LIB_SRC))
LIBA := $(O)/libfacteur.a

.PHONY: all run stop check check-asan bench install clean distclean fuzz man deps
all: $(addprefix $(LIBEXEC)/,$(DAEMONS)) $(addprefix $(BIN)/,$(CMDS)) \
     $(addprefix $(O)/tests/,$(UNIT)) $(addprefix $(O)/fuzz/,$(FUZZ)) man/main.cf.5

config.mk: configure config.mk.in
	./configure --quiet
configure: configure.ac
	@tools/deps.sh
	autoreconf -fi

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBA): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

define daemon_rule
$(LIBEXEC)/$(1): $(patsubst %.c,$(O)/%.o,$(wildcard $(1)/*.c)) $(LIBA)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_rule,$(d))))

$(addprefix $(BIN)/,$(CMDS)): $(BIN)/%: $(O)/cmd/%.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(addprefix $(O)/tests/,$(UNIT)): $(O)/tests/%: $(O)/tests/unit/%.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(CMOCKA_LIBS)

$(addprefix $(O)/fuzz/,$(FUZZ)): $(O)/fuzz/%: $(O)/tests/fuzz/%.o $(O)/tests/fuzz/replay.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# main.cf(5) is generated from the one parameter table.
man/main.cf.5: man/main.cf.5.in lib/params.def $(BIN)/facteur-conf
	$(BIN)/facteur-conf -m < man/main.cf.5.in > $@.$$$$.tmp && mv $@.$$$$.tmp $@

# libFuzzer builds (clang), for long fuzzing sessions by hand.
FUZZ_OUT ?= $(O)-fuzz
fuzz: $(LIB_SRC)
	@mkdir -p $(FUZZ_OUT)
	for f in $(FUZZ); do clang -std=gnu11 -D_GNU_SOURCE -Ilib -g -O1 -fsanitize=fuzzer,address,undefined \
	  -o $(FUZZ_OUT)/$$f tests/fuzz/$$f.c $(LIB_SRC) $(LIBS) || exit 1; done

# Missing build dependencies: install them as root, or say the one line to run.
deps:
	@tools/deps.sh

run: deps all
	@BIN=$(BIN) LIBEXEC=$(LIBEXEC) tools/run-instance.sh start
stop:
	@BIN=$(BIN) LIBEXEC=$(LIBEXEC) tools/run-instance.sh stop

check: deps all
	@/usr/bin/python3 tests/run_all.py --build $(O) --bin $(BIN) --libexec $(LIBEXEC)

check-asan:
	@$(MAKE) --no-print-directory SANITIZE=1 CFLAGS="-O1 -g" check

bench: all
	@FACTEUR_BIN=$(abspath $(BIN)) FACTEUR_LIBEXEC=$(abspath $(LIBEXEC)) /usr/bin/python3 tests/bench/run_bench.py

install: all
	@tools/install.sh "$(DESTDIR)" "$(BIN)" "$(LIBEXEC)"

clean:
	rm -rf build build-asan build-fuzz bin libexec
distclean: clean
	rm -rf config.mk config.log config.status configure autom4te.cache run

-include $(shell find $(O) -name '*.d' 2>/dev/null)
