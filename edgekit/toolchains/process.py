"""Running a toolchain's programs as subprocesses, with errors that say what failed and show its output."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from edgekit import children
from edgekit.errors import EdgekitError


def run(cmd: Sequence[str], env: dict | None = None, cwd: Path | None = None, timeout: float = 600,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run a tool to completion, output captured; a missing tool, a timeout or (with `check`) a failure
    is an EdgekitError."""
    try:
        proc = children.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True,
                              errors="replace", timeout=timeout)
    except FileNotFoundError as exc:
        raise EdgekitError(f"Cannot run {cmd[0]}: {exc}.") from exc
    except subprocess.TimeoutExpired as exc:
        raise EdgekitError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} did not finish within {timeout:.0f} s.") from exc
    if check and proc.returncode != 0:
        raise EdgekitError(f"{' '.join(cmd[:3])} failed (exit code {proc.returncode}):\n{tail(proc)}")
    return proc


def exit_text(returncode: int) -> str:
    """How a process ended, in words: its exit code, or the signal that killed it."""
    if returncode < 0:  # Lite's fatal errors abort or crash rather than raise
        import signal

        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def tail(proc: subprocess.CompletedProcess, chars: int = 3000) -> str:
    """The last `chars` of a finished process's stdout and stderr, for an error message."""
    text = "\n".join(part.strip() for part in (proc.stdout, proc.stderr) if part and part.strip())
    return text[-chars:] if text else "(no output)"
