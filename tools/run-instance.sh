#!/bin/bash
# run-instance.sh start|stop|status - a private facteur instance in ./run for
# trying things out (`make run`, `make stop`).
#
# start writes run/etc (main.cf, a master.cf derived from etc/master.cf with
# loopback ports, a self-signed certificate, a demo user), then runs
# `bin/facteur -c run/etc start` and shows what listens and how to try it.
# Entries of etc/master.cf whose daemon is not built yet are commented out in
# run/etc/master.cf, so the instance runs with whatever exists.  Run twice, it
# says the instance is already running.  Everything listens on 127.0.0.1.
#
# Environment: BIN and LIBEXEC (default ./bin and ./libexec); RUN (default
# ./run) and PORT_OFFSET (default 0, added to every port) let the system
# test run a second instance beside yours.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# As given, before the defaults: the stop hint repeats what was not default.
BIN_GIVEN=${BIN:-bin}
LIBEXEC_GIVEN=${LIBEXEC:-libexec}
BIN=${BIN:-bin}
LIBEXEC=${LIBEXEC:-libexec}
RUN=${RUN:-run}
PORT_OFFSET=${PORT_OFFSET:-0}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
case $LIBEXEC in /*) ;; *) LIBEXEC=$ROOT/$LIBEXEC ;; esac
case $RUN in /*) ;; *) RUN=$ROOT/$RUN ;; esac
case $PORT_OFFSET in *[!0-9]*|'') echo "run-instance: bad PORT_OFFSET" >&2; exit 1 ;; esac
ETC=$RUN/etc
DOMAIN=example.test
DEMO_USER=demo@$DOMAIN
DEMO_PASSWORD=demo

# Loopback ports for the inet services of etc/master.cf.
declare -A PORTS=([smtp]=2525 [submission]=2587 [smtps]=2465 [imap]=2143
                  [imaps]=2993 [pop3]=2110 [pop3s]=2995)
for name in "${!PORTS[@]}"; do PORTS[$name]=$((PORTS[$name] + PORT_OFFSET)); done

say() { printf '%s\n' "$*"; }
die() { printf 'run-instance: %s\n' "$*" >&2; exit 1; }

facteur() { "$BIN/facteur" -c "$ETC" "$@"; }

is_running() {
    [ -f "$ETC/main.cf" ] && [ -x "$BIN/facteur" ] && facteur status >/dev/null 2>&1
}

# mail_owner and setgid_group: the invoking user, or dedicated system
# accounts when run as root (mail_owner must not be root).
accounts() {
    if [ "$(id -u)" = 0 ]; then
        OWNER=facteur
        DROPGROUP=facteurdrop
        getent passwd "$OWNER" >/dev/null ||
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$OWNER"
        getent group "$DROPGROUP" >/dev/null || groupadd --system "$DROPGROUP"
    else
        OWNER=$(id -un)
        DROPGROUP=$(id -gn)
    fi
    OWNER_UID=$(id -u "$OWNER")
    OWNER_GID=$(id -g "$OWNER")
}

write_main_cf() {
    cat > "$ETC/main.cf.tmp" <<EOF
# Written by tools/run-instance.sh for \`make run\`; regenerated at each start.
queue_directory = $RUN/spool
daemon_directory = $LIBEXEC
maillog_file = $RUN/log/maillog
mail_owner = $OWNER
setgid_group = $DROPGROUP
inet_interfaces = loopback-only
myhostname = localhost
mydomain = $DOMAIN
myorigin = \$mydomain
mydestination = \$myhostname, localhost, \$mydomain
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_tls_cert_file = $ETC/tls/cert.pem
smtpd_tls_key_file = $ETC/tls/key.pem
smtpd_tls_security_level = may
auth_passdb = passwd-file:$ETC/users
auth_userdb = passwd-file:$ETC/users
home_mailbox = Maildir/
service_throttle_time = 10s
# The instance's own tables (postmap text format, read at start), not the
# system's /etc/aliases: the demo user is known here, not in /etc/passwd.
alias_maps = texthash:$ETC/aliases
local_recipient_maps = texthash:$ETC/recipients \$alias_maps
EOF
    mv "$ETC/main.cf.tmp" "$ETC/main.cf"
    printf 'postmaster %s\nroot %s\n' "$DEMO_USER" "$DEMO_USER" > "$ETC/aliases"
    printf '%s OK\n' "$DEMO_USER" > "$ETC/recipients"
}

# etc/master.cf -> run/etc/master.cf: inet services on 127.0.0.1 and the
# ports above; an entry (with its continuation lines) whose daemon is not in
# LIBEXEC is commented out, a commented one whose daemon exists is enabled.
write_master_cf() {
    local ports="" name
    for name in "${!PORTS[@]}"; do ports="$ports $name=${PORTS[$name]}"; done
    awk -v libexec="$LIBEXEC" -v ports="$ports" '
        BEGIN {
            n = split(ports, kv, " ")
            for (i = 1; i <= n; i++) { split(kv[i], p, "="); port[p[1]] = p[2] }
            print "# Written by tools/run-instance.sh from etc/master.cf for `make run`."
            print "# Entries whose daemon is not built yet are commented out (\"not built\")."
        }
        function built(cmd) { return (system("test -x \"" libexec "/" cmd "\"") == 0) }
        /^#?[a-z0-9][a-z0-9._-]*[ \t]+(inet|unix|fifo|pass)[ \t]/ {
            line = $0
            sub(/^#/, "", line)
            split(line, f, /[ \t]+/)
            enabled = built(f[8])
            if (f[2] == "inet" && (f[1] in port))
                sub(/^[^ \t]+/, "127.0.0.1:" port[f[1]], line)
            if (enabled) print line
            else print "#" line "    # not built: " f[8]
            inentry = 1
            next
        }
        /^#?[ \t]+-/ && inentry {
            line = $0
            sub(/^#/, "", line)
            print (enabled ? "" : "#") line
            next
        }
        { inentry = 0; print }
    ' "$ROOT/etc/master.cf" > "$ETC/master.cf.tmp"
    mv "$ETC/master.cf.tmp" "$ETC/master.cf"
}

make_tls() {
    [ -s "$ETC/tls/cert.pem" ] && [ -s "$ETC/tls/key.pem" ] && return 0
    mkdir -p "$ETC/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost \
        -keyout "$ETC/tls/key.pem" -out "$ETC/tls/cert.pem" >/dev/null 2>&1 ||
        die "openssl could not make the self-signed certificate"
    chmod 600 "$ETC/tls/key.pem"
}

make_users() {
    [ -s "$ETC/users" ] && return 0
    local hash
    hash=$(openssl passwd -6 "$DEMO_PASSWORD")
    mkdir -p "$RUN/mail/$DEMO_USER"
    [ "$(id -u)" = 0 ] && chown "$OWNER_UID:$OWNER_GID" "$RUN/mail/$DEMO_USER"
    # Dovecot passwd-file: user:password:uid:gid:gecos:home:shell:extra
    printf '%s:{SHA512-CRYPT}%s:%s:%s::%s::\n' "$DEMO_USER" "$hash" \
        "$OWNER_UID" "$OWNER_GID" "$RUN/mail/$DEMO_USER" > "$ETC/users.tmp"
    chmod 640 "$ETC/users.tmp"
    mv "$ETC/users.tmp" "$ETC/users"
}

show_listeners() {
    local line svc addr cmd host port state
    say "Services (${ETC#$ROOT/}/master.cf):"
    while read -r line; do
        set -- $line
        svc=$1; cmd=${8:-?}
        case $2 in
        inet)
            host=${svc%:*}; port=${svc##*:}
            if timeout 1 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then
                state="listening"
            else
                state="NOT answering"
            fi
            printf '  %-22s %-8s %s\n' "$host:$port" "$cmd" "$state" ;;
        *)
            if [ "${3:-}" = n ]; then addr=$RUN/spool/public/$svc; else addr=$RUN/spool/private/$svc; fi
            if [ -e "$addr" ]; then state="ready"; else state="MISSING"; fi
            printf '  %-22s %-8s %s\n' "${addr#$RUN/spool/}" "$cmd" "$state" ;;
        esac
    done < <(grep -E '^[^#[:space:]]' "$ETC/master.cf")
    local off
    off=$(grep -cE '^#[^ ].*# not built:' "$ETC/master.cf" || true)
    [ "$off" -gt 0 ] && say "  ($off entries disabled: daemon not built yet)"
    return 0
}

# The command that stops this instance: `make stop` for ./run (with BIN and
# LIBEXEC when they were not the defaults), else the script with RUN.
stop_command() {
    local vars=""
    [ "$BIN_GIVEN" != bin ] && vars="$vars BIN=$(printf '%q' "$BIN_GIVEN")"
    [ "$LIBEXEC_GIVEN" != libexec ] && vars="$vars LIBEXEC=$(printf '%q' "$LIBEXEC_GIVEN")"
    if [ "$RUN" = "$ROOT/run" ]; then
        printf 'make stop%s' "$vars"
        [ "$PWD" = "$ROOT" ] || printf '   (in %s)' "$ROOT"
    else
        local script=tools/run-instance.sh
        [ "$PWD" = "$ROOT" ] || script=$ROOT/$script
        printf 'RUN=%s%s %s stop' "$(printf '%q' "$RUN")" "$vars" "$(printf '%q' "$script")"
    fi
}

show_howto() {
    cat <<EOF

Try it:
  swaks --server 127.0.0.1:${PORTS[smtp]} --from you@$DOMAIN --to $DEMO_USER
    (qmgr -> local, the LMTP client -> lmtpd on private/lmtp ->
     ${RUN#$ROOT/}/mail/$DEMO_USER/Maildir/new)
  python3 -c "import smtplib; print(smtplib.LMTP('$RUN/spool/private/lmtp').ehlo())"
  swaks --server 127.0.0.1:${PORTS[submission]} --tls --auth PLAIN \\
        --auth-user $DEMO_USER --auth-password $DEMO_PASSWORD --to $DEMO_USER
  ${BIN#$ROOT/}/facteur -c ${ETC#$ROOT/} status
Log:    ${RUN#$ROOT/}/log/maillog   (tail -f ${RUN#$ROOT/}/log/maillog)
Stop:   $(stop_command)
EOF
}

start() {
    [ -x "$BIN/facteur" ] || die "$BIN/facteur is not built (run make)"
    [ -x "$LIBEXEC/master" ] || die "$LIBEXEC/master is not built yet"
    if is_running; then
        say "facteur: the mail system is already running ($(facteur status 2>&1 | sed 's/^facteur: //'))"
        show_listeners
        show_howto
        return 0
    fi
    accounts
    mkdir -p "$ETC" "$RUN/spool" "$RUN/log" "$RUN/mail"
    chmod 755 "$RUN" "$RUN/log" "$RUN/mail"
    [ "$(id -u)" = 0 ] && chown "$OWNER_UID:$OWNER_GID" "$RUN/log"
    write_main_cf
    write_master_cf
    make_tls
    make_users
    facteur start
    show_listeners
    show_howto
}

stop() {
    if ! is_running; then
        say "facteur: the mail system is not running"
        return 0
    fi
    facteur stop
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) facteur status ;;
*) die "usage: $0 start|stop|status" ;;
esac
