#!/usr/bin/env bash
# Installs Patroni 4.1.5 (etcd3 extra) into .venv-patroni, once: the side-by-side benchmarks and the
# migration tests (tests/integration/test_migrate_patroni.py) run a real Patroni cluster. A second
# run finds the stamp and returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."

PATRONI_VERSION=4.1.5
VENV=.venv-patroni
stamp="$VENV/.installed-$PATRONI_VERSION"
[ -f "$stamp" ] && exit 0

# Debian's python3, not one under /root: each Patroni node runs as its own unprivileged OS user,
# which must be able to read the interpreter and the venv.
PY=/usr/bin/python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "patroni[etcd3]==$PATRONI_VERSION" 'psycopg[binary]>=3.1,<4'
chmod -R a+rX "$VENV"
"$VENV/bin/patroni" --version
touch "$stamp"
