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
# edgekit validate's device tests: a real OpenSSH server on 127.0.0.1 and the adb tool (Debian packages,
# installed once; needs root and apt-get, otherwise those tests say why they skip).
if { ! command -v sshd >/dev/null && [ ! -x /usr/sbin/sshd ]; } || ! command -v adb >/dev/null \
    || ! command -v ssh-keygen >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        openssh-server openssh-client adb >/dev/null; } \
      || echo "scripts/test.sh: could not install openssh-server/adb; the ssh and adb device tests will skip" >&2
  fi
fi
# A separate Python standing in for a device: only numpy, OpenCV and the runtimes, at the pinned versions,
# no edgekit. The validate runner must work with nothing more.
DEVICE_PINS=$(grep -oE '"(numpy|opencv-python|onnxruntime|openvino)==[^"]+"' pyproject.toml | tr -d '"')
if [ "$(cat .peers/device-venv/.edgekit-pins 2>/dev/null)" != "$DEVICE_PINS" ]; then
  rm -rf .peers/device-venv
  # shellcheck disable=SC2086
  if "$PY" -m venv .peers/device-venv \
      && .peers/device-venv/bin/pip install -q --disable-pip-version-check $DEVICE_PINS; then
    echo "$DEVICE_PINS" > .peers/device-venv/.edgekit-pins
  else
    rm -rf .peers/device-venv  # the ssh device tests then say it is missing
  fi
fi
# The managed Paddle Lite toolchain is provisioned once here and reused by every test.
export EDGEKIT_CACHE_DIR="${EDGEKIT_CACHE_DIR:-$PWD/.peers/cache}"
# Before pytest: the x86-lite tests skip when it is missing, and without this their outcome depended on
# whether another test had provisioned it first (a fresh clone skipped two bench tests).
case " $* " in
  *" --co "*|*" --collect-only "*) ;;
  *) .venv/bin/edgekit toolchain install paddle-lite >/dev/null \
       || echo "scripts/test.sh: the Paddle Lite toolchain did not install; its tests will say so" >&2 ;;
esac
exec .venv/bin/python -m pytest -n 2 "$@"
