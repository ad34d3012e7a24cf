"""Scratch files and folders that carry their owner's identity, so a later run can sweep what a killed one left.

A SIGKILL runs no `finally:`. Every temporary edgekit makes (a build's work
folder in TMPDIR, a bundle's `.NAME.partial-*` beside `--out`) is named with
an owner tag, `ek<pid>_<start>`: the process id and its start time (clock
ticks since boot, from /proc), so a recycled pid is not mistaken for the
owner. `sweep()` removes only entries whose owner is gone.

    work = scratch_dir("edgekit-build")          # /tmp/edgekit-build-ek4242_981234-k2j3...
    sweep(Path(tempfile.gettempdir()), "edgekit-")
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_TAG = re.compile(r"-ek(\d+)_(\d+)-")
# What edgekit puts in TMPDIR: build, export, bench and ssh scratch.
TMP_PREFIXES = ("edgekit-", "ek-ssh-")


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields after the last ')' are fixed.
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_tag() -> str:
    pid = os.getpid()
    return f"ek{pid}_{_start_time(pid) or 0}"


def _owner_alive(pid: int, start: int) -> bool:
    if not Path("/proc").is_dir():  # no /proc: trust the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    now = _start_time(pid)
    return now is not None and (start == 0 or now == start)


def scratch_dir(prefix: str, parent: str | os.PathLike | None = None) -> Path:
    """A new private folder `<parent>/<prefix>-<owner tag>-<random>` (parent: TMPDIR).

    What killed runs left under the same prefix is swept first, so leftovers never pile up."""
    sweep(parent if parent is not None else tempfile.gettempdir(), f"{prefix}-")
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-{owner_tag()}-", dir=parent))


@contextlib.contextmanager
def temporary_dir(prefix: str, parent: str | os.PathLike | None = None) -> Iterator[Path]:
    """scratch_dir, removed when the block ends (a kill leaves it for the next sweep)."""
    path = scratch_dir(prefix, parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stale(name: str) -> bool:
    """Whether `name` carries an owner tag of a process that no longer runs."""
    match = _TAG.search(name)
    return match is not None and not _owner_alive(int(match.group(1)), int(match.group(2)))


def sweep(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove the entries of `parent` starting with `prefix` whose owner is gone; returns what was removed."""
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(prefix) and stale(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            if not entry.exists():
                removed.append(entry)
    return removed


def sweep_tmp() -> list[Path]:
    """What killed edgekit runs left in TMPDIR."""
    tmp = tempfile.gettempdir()
    return [path for prefix in TMP_PREFIXES for path in sweep(tmp, prefix)]
