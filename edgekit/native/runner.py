"""Talking to edgekit's native Lite runner: `NativeRunner(batch) -> outputs`, like any opened runtime.

The host decodes and preprocesses every image (edgekit.devices runs the same
pipeline as on the local device), sends float32 batches to the runner over its
stdin and reads the outputs back, so every number is computed on the host from
the Lite kernels' outputs. The runner is started through a command that differs
per device: directly (x86), under qemu-user (`emulated_runner`), or over ssh.
A dropped connection restarts the runner and resends the batch in flight.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit import children
from edgekit.errors import EdgekitError

REQUEST = b"EKR1"
RESPONSE = b"EKO1"
END = REQUEST + struct.pack("<4I", 0, 0, 0, 0)  # a batch of none: the runner exits
RESPONSE_HEAD = 24  # magic, status, rows, cols, seconds
RETRIES = 2


class RunnerFailed(EdgekitError):
    pass


def request_frame(batch: np.ndarray) -> bytes:
    """One serve request: the batch as little-endian float32 NCHW."""
    batch = np.ascontiguousarray(batch, dtype="<f4")
    return REQUEST + struct.pack("<4I", *batch.shape) + batch.tobytes()


def response_head(head: bytes, what: str, batch: int) -> tuple[int, int, float]:
    """(rows, cols, the device's seconds) from a response's first RESPONSE_HEAD bytes."""
    if head[:4] != RESPONSE:
        raise EOFError(f"unexpected reply {head[:16]!r}")
    status, rows, cols, seconds = struct.unpack("<3Id", head[4:RESPONSE_HEAD])
    if status != 0:
        raise RunnerFailed(f"The native Lite runner on {what} failed on a batch of {batch}.")
    return rows, cols, seconds


class NativeRunner:
    """One runner process; `runner(batch) -> outputs` like any opened runtime."""

    def __init__(self, start_argv: Callable[[], list[str]], what: str, retries: int = RETRIES,
                 on_restart: Callable[[str], None] | None = None):
        self.start_argv, self.what, self.retries = start_argv, what, retries
        self.on_restart = on_restart or (lambda why: None)
        self.proc: subprocess.Popen | None = None
        self.stderr: list[bytes] = []
        self.device_seconds = 0.0
        self.last_seconds = 0.0
        self.restarts = 0

    def _start(self) -> subprocess.Popen:
        self.stderr = []
        proc = children.popen(self.start_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

        def drain():
            for line in proc.stderr:
                self.stderr.append(line)
                del self.stderr[:-50]

        threading.Thread(target=drain, daemon=True).start()
        return proc

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype="<f4")
        for attempt in range(self.retries + 1):
            if self.proc is not None and self.proc.poll() is not None:  # died between batches
                why = self._why(EOFError("the runner exited between batches"))
                self.close()
                self.restarts += 1
                self.on_restart(why)
            if self.proc is None:
                self.proc = self._start()
            try:
                return self._exchange(batch)
            except (BrokenPipeError, ConnectionError, EOFError) as exc:
                why = self._why(exc)
                self.close()
                if attempt == self.retries:
                    raise RunnerFailed(f"The native Lite runner on {self.what} stopped: {why}") from None
                self.restarts += 1
                self.on_restart(why)
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def _exchange(self, batch: np.ndarray) -> np.ndarray:
        self.proc.stdin.write(request_frame(batch))
        self.proc.stdin.flush()
        rows, cols, seconds = response_head(self._read(RESPONSE_HEAD), self.what, len(batch))
        self.device_seconds += seconds
        self.last_seconds = seconds  # on the device's clock: the tensor copies and Run(), not the link
        return np.frombuffer(self._read(rows * cols * 4), "<f4").reshape(rows, cols).copy()

    def _read(self, size: int) -> bytes:
        data = self.proc.stdout.read(size)
        if data is None or len(data) < size:
            raise EOFError("the runner's output ended")
        return data

    def _why(self, exc: BaseException) -> str:
        code = self.proc.poll() if self.proc else None
        tail = b"".join(self.stderr).decode("utf-8", "replace").strip()[-1500:]
        return f"{exc} (exit {code})" + (f":\n{tail}" if tail else "")

    def __del__(self):
        self.close()  # a runner nobody closed (an evaluator's cache) must not outlive its owner

    def close(self) -> None:
        if getattr(self, "proc", None) is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(END)
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


EMULATED_NOTE = "emulated: numbers, not speed (qemu-user on the build host; generic NEON kernels)"
# emu:// names -> (Lite runtime arch, qemu-user binary, the cross toolchain's sysroot)
EMULATORS = {"aarch64": ("armv8", "qemu-aarch64", "/usr/aarch64-linux-gnu"),
             "armv7": ("armv7", "qemu-arm", "/usr/arm-linux-gnueabihf")}
EMULATOR_ALIASES = {"arm64": "aarch64", "armv8": "aarch64", "armv7hf": "armv7", "arm": "armv7"}
# `uname -m` -> the Lite runtime arch that runs there
MACHINE_ARCH = {"aarch64": "armv8", "arm64": "armv8", "armv7l": "armv7", "armv8l": "armv7", "x86_64": "x86"}


class NoLiteRuntime(EdgekitError):
    """No Lite runtime is registered for the arch: a remote device falls back to the Python agent."""


def lite_runtime_for(arch: str, platform: str = "linux"):
    from edgekit.toolchains import lite_runtime

    runtime = lite_runtime.find(arch, platform)
    if runtime is not None:
        return runtime
    release = f"the inference_lite_lib.{'android' if platform == 'android' else 'armlinux'}.{arch} folder"
    if arch == "x86":
        release = "the inference_lite_lib.* folder"  # any arch: only its headers are used
        how = "x86 runner needs the light API's headers: register any Lite runtime directory first"
    elif platform == "android":
        how = (f"register the Android {arch} Lite runtime your app links; the runner is compiled for it with the "
               "NDK that ANDROID_NDK_HOME names")
    else:
        how = f"register the {arch} Lite runtime your app links"
    build = ("" if platform == "android" else " or build one: `edgekit toolchain build-lite-runtime "
             f"PADDLE_LITE_SOURCE --arch {arch if arch != 'x86' else 'armv8'}` (see the README)")
    raise NoLiteRuntime(
        f"No Paddle Lite runtime for {platform} {arch} is registered, and the native runner links one ({how}): "
        f"`edgekit toolchain register-lite-runtime DIR` with {release} of a Paddle Lite "
        f"{lite_runtime.OPT_VERSION} release{build}.")


def emulated_runner(model_file: Path, name: str = "aarch64", threads: int = 1) -> tuple[NativeRunner, object]:
    """(runner, Lite runtime) for a .nb under qemu-user; NoLiteRuntime or EdgekitError when this host cannot."""
    from edgekit.toolchains.native_runner import RUNNER_NAME, build_runner

    arch, qemu, sysroot = EMULATORS[name]
    if shutil.which(qemu) is None or not Path(sysroot).is_dir():
        package = "g++-aarch64-linux-gnu" if arch == "armv8" else "g++-arm-linux-gnueabihf"
        raise EdgekitError(f"emu://{name} needs {qemu} and the {sysroot} sysroot: "
                           f"`sudo apt-get install qemu-user {package}`.")
    runtime = lite_runtime_for(arch)
    argv = [qemu, "-L", sysroot, str(build_runner(runtime) / RUNNER_NAME), str(model_file), "serve", str(threads)]
    return NativeRunner(lambda: argv, f"emu://{name}"), runtime
