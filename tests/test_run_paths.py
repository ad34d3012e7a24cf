"""One photo, every way edgekit runs a bundle, one answer.

For each target that runs on this host, the bundle's own `app/` example,
`edgekit.runtime.load(...)`, `edgekit validate`'s local device and the device
agent (over a real sshd on 127.0.0.1, or in the Paddle Lite toolchain's own
interpreter) must produce the same output for the same photo. They share
`edgekit/portable.py` and `edgekit/openers.py`, so a drift in any runtime default (OpenVINO's
precision hint, threads, oneDNN) or in preprocessing shows up here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit import api
from edgekit.bundle import read_manifest
from edgekit.devices import open_device
from edgekit.devices.base import DeviceJob
from edgekit.targets import adapter_of, list_targets
from edgekit.targets import get_target

HOST_TARGETS = [t.name for t in list_targets() if t.runs_on_host]
TOLERANCE = 1e-5
REPO = Path(__file__).resolve().parents[1]
DEVICE_PYTHON = REPO / ".peers" / "device-venv" / "bin" / "python"


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    import cv2

    from edgekit.data.samples import sample_photos

    name, image = next(iter(sample_photos(1).items()))
    path = tmp_path_factory.mktemp("photo") / f"{name}.png"  # lossless: every decoder reads the same pixels
    cv2.imwrite(str(path), image[:, :, ::-1])
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    from test_validate import start_sshd

    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def _app_output(bundle: Path, photo: Path, tmp_path: Path) -> np.ndarray:
    out = tmp_path / "app-output.npy"
    proc = subprocess.run([sys.executable, str(bundle / "app" / "predict.py"), str(photo), "--save-output", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert photo.name in proc.stdout  # it also prints its top-5
    return np.load(out)


def _agent_output(bundle: Path, manifest: dict, photo: Path, sshd, tmp_path: Path) -> tuple[np.ndarray, str]:
    """The device agent's output: over ssh with a device Python, or in the adapter's helper interpreter."""
    adapter = adapter_of(manifest)
    model_file = bundle / manifest["artifact"]["model_file"]
    if not adapter.runs_in_process():
        from edgekit.agent_files import local_agent
        from edgekit.runtime import load

        python, env = adapter.helper_interpreter(bundle, model_file)
        batch = load(bundle, verify=False).prepare([photo])
        np.save(tmp_path / "batch.npy", batch)
        proc = subprocess.run([python, str(local_agent()), "infer", manifest["target"]["runtime"], str(model_file),
                               str(tmp_path / "batch.npy"), str(tmp_path / "agent.npy")], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return np.load(tmp_path / "agent.npy"), "agent infer in the helper interpreter"
    # The stand-in device Python has onnxruntime/OpenVINO only; Paddle Inference runs in this venv's Python,
    # started by sshd as a bare script (the agent imports its sibling portable.py and openers.py, never edgekit).
    python = str(DEVICE_PYTHON) if DEVICE_PYTHON.is_file() and manifest["target"]["runtime"] != "paddle-inference" \
        else sys.executable
    device = open_device(sshd.url, python=python, work_dir=str(sshd.work_dir), ssh_options=sshd.options)
    run = device.run(DeviceJob(bundle, manifest, (photo,), batch=1))
    assert not run.partial and not run.failures
    return run.logits, f"agent over ssh with {python}"


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_every_way_to_run_a_bundle_gives_the_same_output(target, photo, sshd, tmp_path):
    from edgekit.runtime import load

    bundle = api.build("SqueezeNet1_1", target, out=tmp_path / "bundle", num_classes=10, input_size=64).path
    manifest = read_manifest(bundle)
    classifier = load(bundle)
    outputs = {"edgekit.runtime.load": classifier.run(classifier.prepare([photo]))}
    local = open_device("local").run(DeviceJob(bundle, manifest, (photo,), batch=1))
    outputs["edgekit validate (local device)"] = local.logits
    agent, how = _agent_output(bundle, manifest, photo, sshd, tmp_path)
    outputs[how] = agent
    if get_target(target).app == "python":
        outputs["the bundle's app/predict.py"] = _app_output(bundle, photo, tmp_path)
    reference = outputs["edgekit.runtime.load"]
    assert reference.shape == (1, 10) and np.isfinite(reference).all()
    for name, output in outputs.items():
        diff = float(np.abs(np.asarray(output, np.float64) - reference).max())
        assert diff <= TOLERANCE, f"{target}: {name} differs from edgekit.runtime.load by {diff:.3g}"
    # Every path reports the same precision: OpenVINO computes true f32 everywhere unless told otherwise.
    assert local.runtime["precision"] == classifier.backend.precision
