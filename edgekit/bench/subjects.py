"""A bundle opened for timing: its runtime loaded, an input bound once per batch size.

Two kinds: runtimes edgekit loads in this process (onnxruntime, OpenVINO,
Paddle Inference), and runtimes in another interpreter, timed there by the
device agent (`edgekit/agent.py serve`): Paddle Lite `.nb` files in
the Lite toolchain's interpreter, and every runtime on an ssh/adb device
(see on_device.py). Both time with `portable.timed_loop`.
Either way the loop times one runtime call per sample and nothing else
(unless end-to-end was asked for).
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit import children
from edgekit.bundle import read_manifest, verify_files
from edgekit.errors import EdgekitError
from edgekit.portable import timed_loop
from edgekit.preprocessing import Preprocessing
from edgekit.scratch import scratch_dir
from edgekit.targets import adapter_of
# What the runtimes' own precision labels mean, in one vocabulary.
_PRECISION_NAMES = {"float32": "f32", "f32": "f32", "bf16": "bf16", "bfloat16": "bf16", "f16": "f16",
                    "float16": "f16", "fp32": "f32", "fp16": "f16", "int8": "int8", "i8": "int8"}


def precision_name(label: str) -> str:
    return _PRECISION_NAMES.get(str(label).lower(), str(label))


@functools.lru_cache(maxsize=4)
def _photo_inputs(preprocessing: Preprocessing) -> np.ndarray:
    from edgekit.data.preprocess import preprocess_batch
    from edgekit.data.samples import sample_photos

    return preprocess_batch(list(sample_photos().values()), preprocessing)


def input_batch(manifest: dict, batch: int) -> np.ndarray:
    """Real photos through the bundle's own preprocessing, repeated to `batch` images.

    Natural images rather than zeros or noise: no denormals, and what the model sees in use.
    """
    photos = _photo_inputs(Preprocessing.from_dict(manifest["preprocessing"]))
    rows = np.resize(np.arange(len(photos)), batch)
    return np.ascontiguousarray(photos[rows], dtype=np.float32)


def open_bundle(path: str | Path) -> tuple[Path, dict]:
    root = Path(path)
    if not root.is_dir():
        raise EdgekitError(f"Bundle {root} does not exist (expected a directory written by `edgekit build`; "
                           "or pass a zoo model name with --target T to build one and bench it).")
    manifest = read_manifest(root)
    verify_files(root, manifest)
    return root, manifest


class Subject:
    """One bundle under test. `prepare(batch)`, then `run(iterations, seconds)` -> per-call nanoseconds."""

    label: str
    root: Path
    manifest: dict
    runtime: str
    runtime_version: str
    runtime_precision: str
    threads: int | None
    notes: list[str]

    def prepare(self, batch: int) -> None:
        raise NotImplementedError

    def run(self, iterations: int, seconds: float) -> list[int]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def model(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def input_size(self) -> int:
        return int(self.manifest["preprocessing"]["crop"])


class InProcessSubject(Subject):
    """A runtime this interpreter loads (onnxruntime, OpenVINO, Paddle Inference), through its adapter."""

    def __init__(self, root: Path, manifest: dict, label: str, threads: int, precision_hint: str | None,
                 end_to_end: bool):
        self.root, self.manifest, self.label, self.threads = root, manifest, label, threads
        self.runtime = manifest["target"]["runtime"]
        self.end_to_end = end_to_end
        self.notes = []
        # precision_hint as asked (None: the bundle's own; "default": OpenVINO's); the record says what ran.
        self.backend = adapter_of(manifest).open_bundle(root, manifest, threads, precision_hint)
        self.runtime_version = str(self.backend.version)
        self.runtime_precision = actual_precision(manifest, self.backend.precision, self.notes)
        self._call = None
        self._images_dir: Path | None = None

    def prepare(self, batch: int) -> None:
        if self.end_to_end:
            from edgekit.runtime import Classifier

            classifier = Classifier(self.root, self.manifest, self.backend)
            paths = self._image_files()
            chosen = [paths[i % len(paths)] for i in range(batch)]
            # Everything an app does per request: decode, preprocess, infer, softmax, top-k.
            self._call = functools.partial(classifier.predict, chosen)
        else:
            self._call = functools.partial(self.backend, input_batch(self.manifest, batch))

    def _image_files(self) -> list[Path]:
        import cv2

        from edgekit.data.samples import sample_photos

        if self._images_dir is None:
            self._images_dir = scratch_dir("edgekit-bench-images")
            for name, image in sample_photos().items():
                cv2.imwrite(str(self._images_dir / f"{name}.jpg"), image[:, :, ::-1])
        return sorted(self._images_dir.glob("*.jpg"))

    def run(self, iterations: int, seconds: float) -> list[int]:
        return timed_loop(self._call, iterations, seconds)

    def close(self) -> None:
        if self._images_dir is not None:
            shutil.rmtree(self._images_dir, ignore_errors=True)


def actual_precision(manifest: dict, reported: str, notes: list[str]) -> str:
    """The precision a runtime computed in, in one vocabulary ("as stored": the bundle's own)."""
    stored = precision_name(manifest["target"]["precision"])
    actual = stored if reported == "as stored" else precision_name(reported)
    if stored == "int8" and actual != "int8":
        # OpenVINO reports the precision of the layers it did not quantize; the model is INT8.
        notes.append(f"layers left unquantized run in {actual}")
        return "int8"
    return actual


class ServedSubject(Subject):
    """A runtime in another interpreter (the Lite toolchain's, or a device's) with the timing loop
    beside it: `agent.py serve`, spoken to one JSON line at a time."""

    def __init__(self, root: Path, manifest: dict, label: str, argv: list[str], threads: int,
                 put_input: Callable[[int, np.ndarray], str], env: dict | None = None, where: str = "this host",
                 cleanup: Callable[[], None] | None = None):
        self.root, self.manifest, self.label = root, manifest, label
        self._cleanup = cleanup
        self.runtime = manifest["target"]["runtime"]
        self.notes = []
        self._put_input = put_input
        self._where = where
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc = children.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                      text=True, env=env)
        hello = self._reply("starting")
        self.runtime_version = hello.get("runtime_version", "")
        self.runtime_precision = actual_precision(manifest, hello["precision"], self.notes)
        self.threads = threads if hello["threads_applied"] else None
        if not hello["threads_applied"]:
            self.notes.append(f"{self.runtime} {self.runtime_version}'s Python API offers no thread control here: "
                              "it used its default thread count")

    def _reply(self, what: str) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait()
            self._stderr.seek(0)
            raise EdgekitError(f"The {self.runtime} timing process for {self.root} on {self._where} exited while "
                               f"{what} (exit code {self._proc.returncode}):\n{self._stderr.read()[-2000:]}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise EdgekitError(f"{self.runtime} on {self._where} could not run {self.root} while {what}: "
                               f"{reply.get('error')}")
        return reply

    def _send(self, request: dict, what: str) -> dict:
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the process is gone; _reply says why
        return self._reply(what)

    def prepare(self, batch: int) -> None:
        self._send({"op": "input", "path": self._put_input(batch, input_batch(self.manifest, batch))},
                   f"loading the batch-{batch} input")

    def run(self, iterations: int, seconds: float) -> list[int]:
        return self._send({"op": "time", "iterations": iterations, "seconds": seconds}, "timing")["ns"]

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()
        if self._cleanup:
            self._cleanup()


def open_helper_subject(root: Path, manifest: dict, label: str, threads: int) -> ServedSubject:
    """A bundle timed by the agent inside the helper interpreter its adapter names (Lite: the toolchain's)."""
    from edgekit.agent_files import local_agent

    model_file = root / manifest["artifact"]["model_file"]
    python, env = adapter_of(manifest).helper_interpreter(root, model_file)
    work = scratch_dir("edgekit-bench-helper")

    def put_input(batch: int, array: np.ndarray) -> str:
        np.save(work / f"batch{batch}.npy", array)
        return str(work / f"batch{batch}.npy")

    argv = [python, str(local_agent()), "serve", manifest["target"]["runtime"], str(model_file.resolve()),
            str(threads)]
    try:
        return ServedSubject(root, manifest, label, argv, threads, put_input, env=env,
                             cleanup=lambda: shutil.rmtree(work, ignore_errors=True))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def open_subject(path: str | Path, label: str, *, threads: int, precision_hint: str | None,
                 end_to_end: bool) -> Subject:
    root, manifest = open_bundle(path)
    if not adapter_of(manifest).runs_in_process():
        if end_to_end:
            raise EdgekitError(f"--end-to-end needs the runtime in this process; {root} is a Paddle Lite bundle, "
                               "which runs in the Lite toolchain's own interpreter. Bench it without --end-to-end.")
        return open_helper_subject(root, manifest, label, threads)
    return InProcessSubject(root, manifest, label, threads, precision_hint, end_to_end)
