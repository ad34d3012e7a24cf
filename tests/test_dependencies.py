"""The pinned dependency set installs, from wheels alone, on exactly the Pythons requires-python names.

Nothing is installed: pip resolves the pins (`install --dry-run --only-binary=:all:`) for a
CPython X.Y on glibc 2.28 x86_64 Linux, for every X.Y inside requires-python, and must fail
for the minor versions just below and just above it, so both bounds are earned.

pip evaluates environment markers against the interpreter that runs it, even with
--python-version (pypa/pip#10050), and some transitive requirements have Python markers
(paddle2onnx: `onnxoptimizer==0.3.13; python_version < "3.12"`, which has no cp312 wheel).
pip 23 (as Python 3.11 ships it; 24.2 no longer) also checks each candidate's Requires-Python
against the running interpreter in `install`. So pip runs in-process here with its marker environment and Requires-Python
check set to the target Python's: the result is what that Python's own pip resolves for a
glibc 2.28 machine, without needing that Python installed.

Needs the package index; skips when pip cannot reach it, except under CI, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

pytestmark = pytest.mark.network

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PROJECT = tomllib.loads(PYPROJECT.read_text())["project"]
PINS = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["test"]]
REQUIRES_PYTHON = SpecifierSet(PROJECT["requires-python"])

INSIDE = [f"3.{m}" for m in range(6, 30) if REQUIRES_PYTHON.contains(f"3.{m}.0")]
BELOW = f"3.{int(INSIDE[0].split('.')[1]) - 1}" if INSIDE else None
ABOVE = f"3.{int(INSIDE[-1].split('.')[1]) + 1}" if INSIDE else None

# glibc 2.28 x86_64: pip does not widen an explicit --platform, so every older manylinux tag is named.
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(28, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]

# Runs pip's CLI in-process with the marker environment of CPython sys.argv[1] on x86_64 Linux.
_PIP_AS = r"""
import sys
import pip._vendor.packaging.markers as markers
version = sys.argv[1]
target = {"python_version": version, "python_full_version": version + ".0",
          "implementation_name": "cpython", "implementation_version": version + ".0",
          "platform_python_implementation": "CPython", "os_name": "posix", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64"}
host = markers.default_environment
markers.default_environment = lambda: {**host(), **target}
# pip 23 checks a candidate's Requires-Python metadata against the running Python in
# `install`, whatever --python-version says (its `download` already passed the target).
from pip._internal.cli.req_command import RequirementCommand
make_resolver = RequirementCommand.make_resolver.__func__
def targeted(cls, *args, **kwargs):
    if kwargs.get("py_version_info") is None and kwargs.get("options") is not None:
        kwargs["py_version_info"] = kwargs["options"].python_version
    return make_resolver(cls, *args, **kwargs)
RequirementCommand.make_resolver = classmethod(targeted)
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _pip_as(version: str, reqs: list[str], tmp_path: Path, *extra: str, timeout: int = 300):
    report = tmp_path / f"report-{version}.json"
    cmd = [sys.executable, "-c", _PIP_AS, version,
           "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
           "--target", str(tmp_path / "target"),  # pip 23 takes --platform only with --target
           "--python-version", version, "--implementation", "cp",
           *(f"--platform={p}" for p in PLATFORMS),
           "--disable-pip-version-check", "--quiet", "--report", str(report), *extra, *reqs]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    resolved = {}
    if proc.returncode == 0:
        resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                    for item in json.loads(report.read_text())["install"]}
    errors = "\n".join(line for line in proc.stderr.splitlines() if "ERROR" in line or "Retrying" in line)
    return proc.returncode, resolved, errors or proc.stderr[-2000:]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """Skip (fail under CI) when pip cannot reach the package index; check the marker environment holds."""
    tmp = tmp_path_factory.mktemp("probe")
    pin = next(p for p in PINS if Requirement(p).name == "typer")  # one small pure-Python pin
    # A Python the running interpreter is not: pip must take the pin only under the target's markers.
    other = next(v for v in (ABOVE, BELOW) if v != f"{sys.version_info.major}.{sys.version_info.minor}")
    rc, resolved, errors = _pip_as(other, [f'{pin}; python_version == "{other}"'], tmp,
                                   "--no-deps", "--retries", "1", "--timeout", "15", timeout=120)
    if rc != 0:
        msg = f"pip cannot reach the package index to resolve {pin}: {errors[-600:]}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    assert "typer" in resolved, f"pip evaluated markers for the running Python, not {other}: {errors}"


# The abandoned quantizer edgekit dropped (Paddle's own quantization replaced it), spelt in two parts so
# that grepping the tree for its name finds the README's history only.
ABANDONED = "paddle" + "slim"


def test_pins_are_one_exact_set_without_the_abandoned_quantizer():
    assert ABANDONED not in PYPROJECT.read_text().lower()
    reqs = [Requirement(p) for p in PINS]
    loose = [str(r) for r in reqs if len(r.specifier) != 1 or next(iter(r.specifier)).operator != "=="]
    assert not loose, f"every dependency is pinned with ==: {loose}"
    assert len({r.name.lower() for r in reqs}) == len(reqs), "one pin per package"
    numpy = next(r for r in reqs if r.name == "numpy")
    assert Version(next(iter(numpy.specifier)).version) >= Version("2"), numpy


def test_requires_python_is_a_closed_range():
    assert INSIDE and REQUIRES_PYTHON.contains(f"{INSIDE[0]}.0")
    assert not REQUIRES_PYTHON.contains(f"{ABOVE}.0") and not REQUIRES_PYTHON.contains(f"{BELOW}.0")
    assert INSIDE == [f"3.{m}" for m in range(int(INSIDE[0][2:]), int(INSIDE[-1][2:]) + 1)]


@pytest.mark.parametrize("version", INSIDE)
def test_pinned_set_resolves_from_wheels(version, index, tmp_path):
    rc, resolved, errors = _pip_as(version, PINS, tmp_path)
    assert rc == 0, f"the pinned set does not install on CPython {version} (manylinux x86_64):\n{errors}"
    for pin in map(Requirement, PINS):
        assert pin.specifier.contains(resolved[pin.name.lower()]), (pin, resolved.get(pin.name.lower()))


@pytest.mark.parametrize("version", [BELOW, ABOVE])
def test_pinned_set_does_not_install_just_outside_requires_python(version, index, tmp_path):
    # --no-deps: the pins themselves must lack a wheel (or exclude that Python), whatever their
    # dependencies do; if they all had one, requires-python would be narrower than the truth.
    rc, _, _ = _pip_as(version, PINS, tmp_path, "--no-deps")
    assert rc != 0, f"every pin has a CPython {version} wheel: widen requires-python ({REQUIRES_PYTHON})"
