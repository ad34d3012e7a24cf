#!/usr/bin/env bash
# The whole test suite from a fresh machine: venv, package with test extras,
# the PaddleClas 2.6.0 peer (ground truth for the zoo, installed --no-deps into
# a test-only directory, never into the venv), the system tools tests need, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
if [ ! -d .peers/paddleclas/paddleclas/ppcls ]; then
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --target .peers/paddleclas "paddleclas==2.6.0"
fi
export EDGEKIT_PADDLECLAS_PEER="$PWD/.peers/paddleclas"
# The managed Paddle Lite toolchain is provisioned once here and reused by every test.
export EDGEKIT_CACHE_DIR="${EDGEKIT_CACHE_DIR:-$PWD/.peers/cache}"
exec .venv/bin/python -m pytest -n 2 "$@"
