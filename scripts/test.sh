#!/usr/bin/env bash
# Runs every test: formatting, lints, the Rust test suites, and the end-to-end tests
# (kubectl and Python hooks against `metacontroller dev`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Python environment for the end-to-end tests (created once, reused afterwards).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import kubernetes, pytest' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo build --quiet -p metacontroller
cargo test --workspace --quiet
.venv/bin/python -m pytest tests/e2e -q
