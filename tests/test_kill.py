"""A build SIGKILLed at a random point of its longest child step leaves no process, no half bundle, and
nothing the next run does not sweep. (validate --device has its kill test in test_validate.py, beside
the sshd it needs.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.bundle import read_manifest, verify_files
from killing import Killable, leftovers, run_edgekit


@pytest.fixture(scope="module")
def calib_list(tmp_path_factory) -> Path:
    from edgekit.data.digits import make_digits_dataset

    return make_digits_dataset(tmp_path_factory.mktemp("kill-digits"), size=32).train_list


def _complete_or_absent(out: Path) -> None:
    if out.exists():
        verify_files(out, read_manifest(out))


def _kill_then_rerun(args: list[str], out: Path, tmp_path: Path, child: str, seed: int) -> None:
    args = [*args, "--no-cache"]  # a cached bundle would be restored without running the step to kill
    command = Killable([*args, "--out", str(out)], tmp_path)
    killed = command.kill_when(lambda: command.has_child(child), seed=seed, spread=0.3)
    assert killed, f"the build ended before {child} started:\n{command.output()}"
    assert command.survivors() == [], "processes outlived the killed build"
    _complete_or_absent(out)
    assert leftovers(command.tmpdir) or leftovers(out.parent), "the kill left nothing: did it hit the build?"

    again = run_edgekit([*args, "--out", str(out), "--force"], command.tmpdir)
    assert again.returncode == 0, again.stdout + again.stderr
    verify_files(out, read_manifest(out))
    # The dead build's partial bundle and work folders are gone; the live one cleaned up after itself.
    assert leftovers(out.parent, command.tmpdir) == []


@pytest.mark.parametrize("seed", [1, 2])
def test_killed_export_leaves_nothing_behind(tmp_path, seed):
    args = ["build", "SqueezeNet1_1", "--target", "onnx", "--input-size", "32"]
    _kill_then_rerun(args, tmp_path / "out dir" / "bundle", tmp_path, "_legacy_worker", seed)


def test_killed_quantizer_leaves_nothing_behind(tmp_path, calib_list):
    args = ["build", "SqueezeNet1_1", "--target", "paddle", "--recipe", "ptq-int8", "--calib", str(calib_list),
            "--calib-limit", "32", "--max-drop", "1", "--num-classes", "10", "--input-size", "32"]
    _kill_then_rerun(args, tmp_path / "int8", tmp_path, "_ptq_worker", seed=3)


def test_a_live_builds_scratch_is_never_swept(tmp_path):
    """Only dead owners' scratch goes: a folder of this (running) process stays."""
    from edgekit.scratch import scratch_dir, sweep

    mine = scratch_dir(".bundle.partial", tmp_path)
    dead = tmp_path / ".bundle.partial-ek999999999_1-abc"
    dead.mkdir()
    untagged = tmp_path / ".bundle.partial-someone-else"
    untagged.mkdir()
    assert sweep(tmp_path, ".bundle.partial-") == [dead]
    assert mine.is_dir() and untagged.is_dir()
