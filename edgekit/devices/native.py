"""Devices that run Paddle Lite bundles with edgekit's native runner: no Python needed where the model runs.

The host decodes and preprocesses every image exactly as on the local device
(`run_pipeline`), sends float32 batches to the runner over its stdin and reads
the outputs back, so every number is computed on the host from the Lite
kernels' outputs. The runner is started through a command that differs per
device: directly (x86), under qemu-user (`emu://aarch64`), or over ssh.
A dropped connection restarts the runner and resends the batch in flight.
"""

from __future__ import annotations

import struct
import subprocess
import threading
import time
from typing import Callable

import numpy as np

from edgekit.errors import EdgekitError

REQUEST = b"EKR1"
RESPONSE = b"EKO1"
RETRIES = 2


class RunnerFailed(EdgekitError):
    pass


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
        proc = subprocess.Popen(self.start_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
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
        self.proc.stdin.write(REQUEST + struct.pack("<4I", *batch.shape) + batch.tobytes())
        self.proc.stdin.flush()
        head = self._read(24)
        if head[:4] != RESPONSE:
            raise EOFError(f"unexpected reply {head[:16]!r}")
        status, rows, cols, seconds = struct.unpack("<3Id", head[4:])
        if status != 0:
            raise RunnerFailed(f"The native Lite runner on {self.what} failed on a batch of {len(batch)}.")
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
                self.proc.stdin.write(REQUEST + struct.pack("<4I", 0, 0, 0, 0))
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
