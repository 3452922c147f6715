#!/bin/bash
# install.sh DESTDIR BIN LIBEXEC - `make install`: put facteur in its FHS places.
#
#   commands (BIN/*)      -> DESTDIR/usr/sbin
#   daemons (LIBEXEC/*)   -> DESTDIR/usr/lib/facteur
#   etc/*                 -> DESTDIR/etc/facteur  (an existing file is kept when
#                            installing onto the live system, DESTDIR empty)
#   man/*.[158]           -> DESTDIR/usr/share/man/man{1,5,8}
#   queue directory       -> DESTDIR/var/spool/facteur (`facteur check` makes
#                            its subdirectories with the right owners)
# With an empty DESTDIR as root, the facteur user and the facteurdrop group
# are created if missing, as the Debian package would.
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 DESTDIR BIN LIBEXEC" >&2; exit 2; }
DESTDIR=$1
BIN=$2
LIBEXEC=$3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

install -d -m 755 "$DESTDIR/usr/sbin" "$DESTDIR/usr/lib/facteur" "$DESTDIR/etc/facteur" \
    "$DESTDIR/usr/share/man/man1" "$DESTDIR/usr/share/man/man5" "$DESTDIR/usr/share/man/man8" \
    "$DESTDIR/var/spool/facteur"

n=0
for f in "$BIN"/*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    install -m 755 "$f" "$DESTDIR/usr/sbin/$(basename "$f")"
    n=$((n + 1))
done
echo "install: $n commands in $DESTDIR/usr/sbin"
# sendmail answers as mailq and newaliases by its name (argv[0]).
if [ -f "$DESTDIR/usr/sbin/sendmail" ]; then
    ln -sfn sendmail "$DESTDIR/usr/sbin/mailq"
    ln -sfn sendmail "$DESTDIR/usr/sbin/newaliases"
fi

n=0
for f in "$LIBEXEC"/*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    install -m 755 "$f" "$DESTDIR/usr/lib/facteur/$(basename "$f")"
    n=$((n + 1))
done
echo "install: $n daemons in $DESTDIR/usr/lib/facteur"

for f in etc/*; do
    [ -f "$f" ] || continue
    dst="$DESTDIR/etc/facteur/$(basename "$f")"
    if [ -z "$DESTDIR" ] && [ -e "$dst" ]; then
        echo "install: keeping existing $dst (new default: $ROOT/$f)"
        continue
    fi
    install -m 644 "$f" "$dst"
done

for f in man/*.1 man/*.5 man/*.8; do
    [ -f "$f" ] || continue
    sect=${f##*.}
    install -m 644 "$f" "$DESTDIR/usr/share/man/man$sect/$(basename "$f")"
done

if [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ]; then
    getent passwd facteur >/dev/null ||
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin facteur
    getent group facteurdrop >/dev/null || groupadd --system facteurdrop
    chown root:root /var/spool/facteur
    chmod 755 /var/spool/facteur
    # The maildrop door: facteur-drop is setgid facteurdrop (as postdrop).
    if [ -f /usr/sbin/facteur-drop ]; then
        chgrp facteurdrop /usr/sbin/facteur-drop
        chmod 2755 /usr/sbin/facteur-drop
    fi
    echo "install: now run: facteur check && facteur start"
fi
