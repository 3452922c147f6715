#!/bin/sh
# Check the Debian packages facteur builds and tests with.  As root, install
# what is missing with apt-get; otherwise print the one line to run.
# --test adds what `make check` needs (pytest and its timeout plugin, the
# reference servers and clients the system tests drive, clang for fuzzing).
BUILD_PKGS="autoconf automake gcc make pkg-config libssl-dev libdb5.3-dev libunbound-dev libpam0g-dev libcrypt-dev libcmocka-dev libmilter-dev openssl"
TEST_PKGS="python3 python3-pytest python3-pytest-timeout swaks postfix dovecot-core dovecot-imapd dovecot-lmtpd dovecot-pop3d unbound ldnsutils fail2ban pflogsumm strace iproute2 whois libclang-rt-14-dev clang procps psmisc"
want="$BUILD_PKGS"
[ "${1:-}" = "--test" ] && want="$BUILD_PKGS $TEST_PKGS"
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "facteur: installing missing packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string localhost" | debconf-set-selections
    apt-get update -q && apt-get install -y -q $missing || exit 1
    exit 0
fi
echo "facteur: missing packages; run as root:" >&2
echo "  apt-get install$missing" >&2
exit 1
