"""SIGKILL a running edgekit command at a point of the test's choosing, then look for what it left.

The command runs with a marker in its environment, which every child it starts inherits: after the
kill, any process still carrying the marker outlived its parent. TMPDIR is private to the test, so
scratch left in it is visible.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

# The console script pip installed beside this interpreter: what a user runs.
EDGEKIT = [str(Path(sys.executable).with_name("edgekit"))]


def processes_with(marker: str) -> list[int]:
    """Pids whose environment holds `marker` (our own and pytest's excepted)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        if pid == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in environ.read_bytes():
                found.append(pid)
    return found


def processes_running(text: str) -> list[int]:
    """Pids whose command line holds `text`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if text.encode() in cmdline.read_bytes() and int(cmdline.parent.name) != os.getpid():
                found.append(int(cmdline.parent.name))
    return found


def children_of(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
    return kids


class Killable:
    """`edgekit ARGS` started in the background, SIGKILLed by `kill_when`."""

    def __init__(self, args: list[str], tmp: Path, cwd: Path | None = None):
        self.marker = f"EDGEKIT_KILL_TEST={uuid.uuid4().hex}"
        self.tmpdir = tmp / "tmpdir"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(self.tmpdir), self.marker.split("=")[0]: self.marker.split("=")[1]}
        self.log = open(tmp / f"killed-{uuid.uuid4().hex[:6]}.log", "w+")
        self.proc = subprocess.Popen([*EDGEKIT, *args], env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)

    def kill_when(self, ready, seed: int, spread: float = 0.5, timeout: float = 240) -> bool:
        """SIGKILL once `ready()` holds, after a seeded random extra delay of up to `spread` s.

        Returns False when the command ended on its own before that (the kill then tests nothing)."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                return False
            assert time.monotonic() < deadline, "the command never reached the point to kill it at"
            time.sleep(0.02)
        time.sleep(random.Random(seed).uniform(0, spread))
        if self.proc.poll() is not None:
            return False
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return True

    def has_child(self, name: str | None = None) -> bool:
        """Whether the command has a child process (whose command line holds `name`, if given)."""
        for pid in children_of(self.proc.pid):
            with contextlib.suppress(OSError):
                if name is None or name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return True
        return False

    def survivors(self, grace: float = 1.0) -> list[str]:
        """Command lines of processes the killed command left running (after `grace` s to die)."""
        key = self.marker
        deadline = time.monotonic() + grace
        while processes_with(key) and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = []
        for pid in processes_with(key):
            with contextlib.suppress(OSError):
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
        return lines

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()


def run_edgekit(args: list[str], tmpdir: Path, cwd: Path | None = None, timeout: float = 600):
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run([*EDGEKIT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def leftovers(*folders: Path) -> list[str]:
    """edgekit scratch in these folders: partial bundles, work folders."""
    names = []
    for folder in folders:
        if folder.is_dir():
            names += [p.name for p in folder.iterdir()
                      if ".partial-" in p.name or ".old-" in p.name or p.name.startswith(("edgekit-", "ek-ssh-"))]
    return names
