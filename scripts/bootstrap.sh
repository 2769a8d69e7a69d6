#!/usr/bin/env bash
# Installs what xaproxy needs on a fresh Debian machine, then runs one thing:
#   scripts/bootstrap.sh demo   start two local MariaDB shards and serve the demo schema
#   scripts/bootstrap.sh test   run the whole test suite
#   scripts/bootstrap.sh bench  run the benchmarks (bench/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

packages=(mariadb-server mariadb-client mariadb-plugin-spider sysbench haproxy docker-compose
          libmariadb-dev pkg-config gcc python3-venv python3-dev
          # the client matrix (tests/integration/test_client_matrix.py): PHP, Perl, Java
          php-cli php-mysql libdbd-mariadb-perl libmariadb-java)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# A JDK and node only when the machine has none (any version runs the scripts).
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'
# mycli pins an older sqlglot than the proxy: it gets a virtualenv of its own.
if [ ! -x .venv-mycli/bin/mycli ]; then
    "$PYTHON" -m venv .venv-mycli
    .venv-mycli/bin/pip install -q 'mycli>=1.27' >/dev/null
fi
# The node clients of the matrix, at the versions of package-lock.json.
(cd tests/clients/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

case "${1:-test}" in
    demo) shift; exec .venv/bin/xaproxy demo "$@" ;;
    test) shift; exec .venv/bin/python -m pytest -q "$@" ;;
    bench) shift; exec .venv/bin/python -m bench "$@" ;;
    *) echo "usage: $0 demo|test|bench" >&2; exit 2 ;;
esac
