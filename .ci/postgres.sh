#!/bin/sh
# Make PostgreSQL's server programs (initdb, pg_ctl) available for the tests.
# Idempotent and non-interactive: installs Debian's `postgresql` package only
# when initdb is found neither on PATH nor in /usr/lib/postgresql/*/bin.
# The tests start their own throwaway cluster (tests/pgserver.py); the
# package's default cluster is not needed and is left alone.
set -eu

find_initdb() {
    if command -v initdb >/dev/null 2>&1; then
        command -v initdb
        return 0
    fi
    for f in $(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V -r); do
        if [ -x "$f" ]; then
            echo "$f"
            return 0
        fi
    done
    return 1
}

if ! INITDB=$(find_initdb); then
    echo "initdb not found: installing Debian's postgresql package" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
    INITDB=$(find_initdb) || { echo "initdb still not found after installing postgresql" >&2; exit 1; }
fi

BINDIR=$(dirname "$(readlink -f "$INITDB")")
echo "PostgreSQL binaries: $BINDIR"
"$BINDIR/initdb" --version
"$BINDIR/pg_ctl" --version
