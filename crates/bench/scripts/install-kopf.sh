#!/bin/sh
# Installs kopf for `hello-load --kopf` into a virtual environment of its own
# (target/kopf-venv by default, or the directory given), from the pinned requirements.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-target/kopf-venv}
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet -r "$here/../python/requirements-kopf.txt"
echo "kopf installed: $venv/bin/python -m kopf"
