import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PEER_SCRIPT = Path(__file__).parent / "peer" / "paddleclas_ref.py"


def _peer_dir() -> Path | None:
    path = Path(os.environ.get("EDGEKIT_PADDLECLAS_PEER", REPO / ".peers" / "paddleclas"))
    return path if (path / "paddleclas" / "ppcls").is_dir() else None


@pytest.fixture(scope="session")
def paddleclas_peer() -> Path:
    """PaddleClas 2.6.0 unpacked --no-deps into a test-only directory (scripts/test.sh makes it)."""
    peer = _peer_dir()
    if peer is None:
        msg = ("PaddleClas 2.6.0 peer not found: run scripts/test.sh, or "
               "`pip install --no-deps --target .peers/paddleclas paddleclas==2.6.0`.")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return peer


def run_peer(peer: Path, *args: str, timeout: int = 600, env: dict | None = None) -> None:
    env = {**os.environ, "EDGEKIT_PADDLECLAS_PEER": str(peer), **(env or {})}
    proc = subprocess.run([sys.executable, str(PEER_SCRIPT), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"PaddleClas peer failed ({args[:1]}):\n{proc.stderr[-4000:]}")


@pytest.fixture(scope="session")
def peer_spec(paddleclas_peer, tmp_path_factory):
    """{paddleclas builder name: {state-dict key: shape}} for every zoo model."""
    from edgekit.zoo import get_entry, list_models

    names = sorted({get_entry(n).paddleclas_name for n in list_models()})
    out = tmp_path_factory.mktemp("peer") / "spec.json"
    run_peer(paddleclas_peer, "spec", str(out), *names)
    return json.loads(out.read_text())


@pytest.fixture(scope="session")
def peer_logits(paddleclas_peer, tmp_path_factory):
    """Callable (paddleclas name, size) -> dir with weights.pdparams, input.npy, logits.npy."""

    def make(name: str, size: int, seed: int = 7) -> Path:
        out = tmp_path_factory.mktemp(f"logits-{name}")
        run_peer(paddleclas_peer, "logits", str(out), name, str(size), str(seed))
        return out

    return make


def arm_emulation_available() -> bool:
    """An armv8 Lite runtime is registered and qemu-aarch64 is installed: arm-lite builds then measure parity
    on the .nb under emulation (otherwise they record `measured: false`)."""
    import shutil

    from edgekit.toolchains import lite_runtime

    return lite_runtime.registered().get("armv8") is not None and shutil.which("qemu-aarch64") is not None


def assert_arm_parity(parity: dict) -> None:
    if arm_emulation_available():
        assert parity["measured"] and parity["emulated"] and parity["passed"], parity
    else:
        assert parity["measured"] is False and "cannot run" in parity["reason"]
