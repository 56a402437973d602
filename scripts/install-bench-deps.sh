#!/usr/bin/env bash
# Installs what `make bench` needs beyond `make deps`, only what is missing (a second run takes
# well under a second): ApacheBench for the health-endpoint load, and Patroni 4.1.5 in
# .venv-patroni for the side-by-side runs (scripts/install-patroni.sh, which `make deps` runs too).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ab >/dev/null 2>&1; then
  echo "installing apache2-utils (ab)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends apache2-utils
fi

bash scripts/install-patroni.sh
