#!/usr/bin/env bash
# Build dist/artifacta-box: one file that runs the server and the admin CLI on a Linux host
# with no Python installed. Then print its size and its cold-start time to the first
# `GET /health` answer (median of 3, each on a fresh data directory).
#
#   bash packaging/build.sh                 # fresh build virtualenv (what CI runs)
#   REUSE_VENV=1 bash packaging/build.sh    # keep build/pyinstaller-venv between builds
#
# The build virtualenv holds only the runtime dependencies and PyInstaller (`pip install
# '.[build]'`), so nothing from a development environment (pytest, the official clients...)
# ends up in the binary. The binary bundles the build host's Python, OpenSSL, libffi, zlib
# and SQLite, but links the host's glibc: build on the oldest distribution you deploy to.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=build/pyinstaller-venv
if [[ -z "${REUSE_VENV:-}" || ! -x "$VENV/bin/python" ]]; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
fi
# setuptools builds in build/lib and never deletes a module removed since the last build.
rm -rf build/lib build/bdist.*
"$VENV/bin/python" -m pip install -q --disable-pip-version-check '.[build]'
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps .

rm -f dist/artifacta-box
"$VENV/bin/python" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/artifacta-box.spec

dist/artifacta-box version
"$VENV/bin/python" packaging/measure.py dist/artifacta-box
