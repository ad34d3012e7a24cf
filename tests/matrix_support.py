"""What the matrix tests share: digits-trained small models, a plan writer, a real Ray cluster on 127.0.0.1.

The models are ResNet18 and ResNet18_vd at 32x32 whose classifiers are fitted (closed-form least squares)
on their own frozen features of the digits train split: real trained models in seconds. Artifacts are
made once per test run under a lock, so both xdist workers reuse them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

SIZE = 32
MODELS = {"r18": "ResNet18", "r18vd": "ResNet18_vd"}
RAY = Path(sys.executable).with_name("ray")


def shared_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "matrix-shared"
    root.mkdir(exist_ok=True)
    return root


@contextlib.contextmanager
def once(shared: Path, name: str):
    """Yields (path, needs_making); the other worker waits for the first and then reuses its result."""
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / f"{name}.done"
        yield shared / name, not done.exists()
        done.touch()


def fit_classifier(zoo_name: str, train_list: Path, out: Path) -> Path:
    """`zoo_name` with its last Linear layer solved by ridge regression on its frozen features."""
    import dataclasses

    import paddle

    from edgekit.data.datasets import open_dataset
    from edgekit.data.preprocess import decode_image, preprocess
    from edgekit.zoo import create_model
    from edgekit.zoo.cards import get_card

    pp = dataclasses.replace(get_card(zoo_name).preprocessing, resize_short=SIZE, crop=SIZE)
    samples = open_dataset(train_list).samples
    x = np.stack([preprocess(decode_image(s.path), pp) for s in samples])
    y = np.array([s.label for s in samples])
    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        model = create_model(zoo_name, num_classes=10)
    model.eval()
    head = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.Linear)][-1]
    captured = []
    head.register_forward_pre_hook(lambda layer, inputs: captured.append(inputs[0].numpy()))
    with paddle.no_grad():
        for i in range(0, len(x), 256):
            model(paddle.to_tensor(x[i:i + 256]))
    feats = np.concatenate(captured).astype(np.float64)
    mu, sd = feats.mean(0), feats.std(0) + 1e-6
    a = np.hstack([(feats - mu) / sd, np.ones((len(feats), 1))])
    w = np.linalg.solve(a.T @ a + 10 * np.eye(a.shape[1]), a.T @ (2 * np.eye(10)[y] - 1))
    head.weight.set_value((w[:-1] / sd[:, None]).astype(np.float32))
    head.bias.set_value((w[-1] - (mu / sd) @ w[:-1]).astype(np.float32))
    paddle.save(model.state_dict(), str(out))
    return out


def make_inputs(shared: Path) -> Path:
    """digits/, one .pdparams per model and a broken one; returns the folder (plans go beside them)."""
    from edgekit.data.digits import make_digits_dataset

    with once(shared, "inputs") as (root, needed):
        if needed:
            root.mkdir(exist_ok=True)
            digits = make_digits_dataset(root / "digits", size=SIZE)
            for key, name in MODELS.items():
                fit_classifier(name, digits.train_list, root / f"{key}.pdparams")
            # A file that exists (so the plan is fine) but holds no state dict: its cells fail at build time.
            (root / "broken.pdparams").write_bytes(b"not a pickle at all, just bytes" * 64)
        return root


def plan_text(*, models=("r18", "r18vd"), broken: bool = False, device: str = "{name: cpu0, address: local}",
              recipes: str = "[fp32, fp16]", targets: str = "[onnx, openvino]", extra: str = "") -> str:
    entries = [f"  - {{name: {MODELS[m]}, id: {m}, weights: {m}.pdparams, num_classes: 10, "
               f"labels: digits/labels.txt, input_size: {SIZE}}}" for m in models]
    if broken:
        entries.append(f"  - {{name: ResNet18, id: broken, weights: broken.pdparams, num_classes: 10, "
                       f"input_size: {SIZE}}}")
    return "\n".join([
        "name: digits matrix", "models:", *entries, f"targets: {targets}", f"recipes: {recipes}",
        "calib: digits/train_list.txt", "data: digits/val_list.txt", "validate: {limit: 100}",
        f"devices: [{device}]", "bench: {batch: 1, iterations: 10, warmup: 2, rounds: 2}", extra, ""])


def run_local(shared: Path, inputs: Path):
    """The matrix (with the broken model) run once with the local executor, its own cache dir, 2 processes:
    (the --json result, out dir, seconds, exit code, stderr)."""
    import json

    with once(shared, "local-run") as (out, needed):
        if needed:
            plan = write_plan(inputs, "plan.yaml", plan_text(broken=True))
            env = {**os.environ, "EDGEKIT_CACHE_DIR": str(shared / "cache-local")}
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", "from edgekit.cli import app; app()", "matrix", str(plan),
                                   "--out", str(out), "--jobs", "2", "--json"], env=env, capture_output=True,
                                  text=True, timeout=900)
            (out / "seconds").write_text(f"{time.perf_counter() - start:.1f}")
            (out / "stdout.json").write_text(proc.stdout)
            (out / "stderr.txt").write_text(proc.stderr)
            (out / "rc").write_text(str(proc.returncode))
        return (json.loads((out / "stdout.json").read_text()), out, float((out / "seconds").read_text()),
                int((out / "rc").read_text()), (out / "stderr.txt").read_text())


def write_plan(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.write_text(text)
    return path


def accuracy_of(records: list[dict]) -> dict[str, tuple]:
    """Per cell id: what the accuracy records say (identical bundles on identical images: identical values)."""
    return {r["id"]: (r["validation"]["top1"], r["validation"]["top5"], r["validation"]["logits_sha256"],
                      r["validation"]["reference"]["agreement"]) for r in records if r["status"] == "ok"}


# --------------------------------------------------------------------------- a real Ray cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    """`ray start --head` plus a second node offering device:cpu0, each in its own process group."""

    def __init__(self, env: dict[str, str]):
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Ray's socket paths must stay short: a temp dir directly under /tmp, removed at stop().
        self.temp = Path(tempfile.mkdtemp(prefix="ekray-", dir="/tmp"))
        self.env = {**env, "RAY_USAGE_STATS_ENABLED": "0"}
        self.groups: list[int] = []

    def _start(self, *args: str) -> None:
        proc = subprocess.Popen([str(RAY), "start", "--block", "--node-ip-address", "127.0.0.1", *args],
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.groups.append(proc.pid)

    def start(self) -> "RayCluster":
        self._start("--head", "--port", str(self.port), "--num-cpus", "2", "--include-dashboard=false",
                    "--disable-usage-stats", "--temp-dir", str(self.temp))
        self._wait_for(lambda text: "CPU" in text, "the head node")
        self._start("--address", self.address, "--num-cpus", "1", "--resources", '{"device:cpu0": 1}')
        self._wait_for(lambda text: "device:cpu0" in text, "the device node")
        return self

    def _wait_for(self, ready, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = subprocess.run([str(RAY), "status", "--address", self.address], env=self.env,
                                  capture_output=True, text=True, timeout=60)
            if proc.returncode == 0 and ready(proc.stdout):
                return
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"Ray: {what} did not come up at {self.address}")

    def stop(self) -> None:
        """SIGTERM each node's process group (raylet, GCS, workers), then SIGKILL what is left."""
        import shutil

        for sig in (signal.SIGTERM, signal.SIGKILL):
            for group in self.groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, sig)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.alive():
                time.sleep(0.3)
        shutil.rmtree(self.temp, ignore_errors=True)

    def alive(self) -> list[int]:
        """Pids still in the cluster's process groups."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ProcessLookupError):
                    # A zombie has exited; only its reaping by init is left.
                    if os.getpgid(int(entry.name)) in self.groups and \
                            (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        pids.append(int(entry.name))
        return pids


def ray_tasks(prefix: str) -> dict[int, str]:
    """{pid: title} of Ray worker processes running a task whose name starts with `prefix` (ray::NAME)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                if title.startswith(f"ray::{prefix}"):
                    found[int(entry.name)] = title
    return found


# The fixtures both matrix test modules use (imported by name there): one shared folder, one set of inputs,
# one local run per test run, whichever module asks first.

@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Path:
    return shared_root(tmp_path_factory)


@pytest.fixture(scope="session")
def inputs(shared) -> Path:
    return make_inputs(shared)


@pytest.fixture(scope="session")
def local_run(shared, inputs):
    return run_local(shared, inputs)
