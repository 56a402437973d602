#!/usr/bin/env bash
# Installs what pgwarden needs on Debian 12, only what is missing, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# prometheus: its promtool checks and unit-tests deploy/prometheus/ (make test); pgbouncer: the
# PgBouncer routing test and bench run one on loopback (neither service is started: policy-rc.d);
# curl: deploy/pgbouncer/pgbouncer-follow asks its agent whether it leads; chromium and
# chromium-driver: the web view's browser test (neither starts a service).
for pkg in postgresql-15 postgresql-client-15 etcd-server etcd-client haproxy nftables iproute2 python3-venv \
    prometheus pgbouncer curl chromium chromium-driver; do
  have "$pkg" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps Debian from starting the default PostgreSQL cluster, etcd, HAProxy,
  # Prometheus and PgBouncer: pgwarden and its tests start their own instances on their own
  # addresses.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  rm -f /usr/sbin/policy-rc.d
fi

# Debian's python3 is readable by every user (pyenv's under /root is not), so the agent can run
# as postgres or as a per-node test user.
PY=/usr/bin/python3
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi

# Patroni in .venv-patroni: the migration tests run a real Patroni cluster and move it to pgwarden.
bash scripts/install-patroni.sh
