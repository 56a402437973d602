#!/usr/bin/env bash
# Installs what `make bench` needs beyond `make deps`, only what is missing (a second run takes
# well under a second): ApacheBench for the health-endpoint load, and Patroni 4.1.5 (etcd3 extra)
# in .venv-patroni for the side-by-side runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ab >/dev/null 2>&1; then
  echo "installing apache2-utils (ab)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends apache2-utils
fi

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
