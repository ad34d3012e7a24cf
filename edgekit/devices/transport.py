"""How edgekit reaches a device: the transport protocol (ssh, adb) and running commands through it.

A transport turns a shell command into an argv (`ssh ... -- CMD`, `adb shell CMD`),
moves files, and says which failures are a dropped connection (worth one
retry) and which are final (a refused key, an unknown host).
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Protocol
from edgekit import children

SHORT_TIMEOUT = 120.0  # probe, have, small file transfers


class Transport(Protocol):
    address: str
    default_dir: str
    streams_stdin: bool

    def check(self) -> None: ...

    def command_argv(self, command: str) -> list[str]: ...

    def write_file(self, remote_path: str, data: bytes, timeout: float) -> None: ...

    def send_file(self, local_path: Path, remote_path: str, timeout: float | None) -> None: ...

    def read_file(self, remote_path: str, timeout: float) -> bytes: ...

    def connection_error(self, returncode: int | None, stderr: str) -> str | None: ...

    def fatal_error(self, returncode: int | None, stderr: str) -> str | None: ...

    def close(self) -> None: ...


def run_command(argv: list[str], *, input: bytes | None = None, timeout: float | None = SHORT_TIMEOUT
                ) -> subprocess.CompletedProcess:
    try:
        return children.run(argv, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, None, exc.stdout or b"",
                                           (exc.stderr or b"") + f"\n(timed out after {timeout:.0f} s)".encode())


def stream_command(argv: list[str], on_line: Callable[[str], None], *, stall_timeout: float,
                   timeout: float | None) -> tuple[int | None, str]:
    """Run `argv`, handing each stdout line to `on_line`; kill it when silent for `stall_timeout` s.

    Returns (exit code or None when killed, stderr tail with the reason appended).
    """
    proc = children.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr_chunks: list[bytes] = []
    last_output = [time.monotonic()]
    failure: list[BaseException] = []

    def read_stdout():
        try:
            for raw in proc.stdout:
                last_output[0] = time.monotonic()
                on_line(raw.decode("utf-8", "replace").rstrip("\n"))
        except BaseException as exc:  # surfaced below, after the process is gone
            failure.append(exc)
            proc.kill()

    def read_stderr():
        for raw in proc.stderr:
            stderr_chunks.append(raw)
            del stderr_chunks[:-200]

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for thread in readers:
        thread.start()
    started = time.monotonic()
    why_killed = None
    try:
        while proc.poll() is None:
            time.sleep(0.1)
            now = time.monotonic()
            if now - last_output[0] > stall_timeout:
                why_killed = f"no output for {stall_timeout:.0f} s"
            elif timeout is not None and now - started > timeout:
                why_killed = f"over the {timeout:.0f} s time limit"
            if why_killed:
                proc.kill()
                break
    except KeyboardInterrupt:
        proc.kill()
        raise
    finally:
        proc.wait()
        for thread in readers:
            thread.join(timeout=60)  # what the pipe still holds after the process ended
    if failure:
        raise failure[0]
    stderr = b"".join(stderr_chunks).decode("utf-8", "replace").strip()
    if why_killed:
        return None, (stderr + f"\n(stopped: {why_killed})").strip()
    return proc.returncode, stderr


def tail(text: str, chars: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= chars else "..." + text[-chars:]
