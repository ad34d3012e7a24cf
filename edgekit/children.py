"""Child processes that die with edgekit.

A SIGKILLed parent cannot clean up, so each child asks the kernel to kill it
when its parent goes (Linux PR_SET_PDEATHSIG, set between fork and exec). The
signal follows the thread that started the child: start long-lived children
(the ssh master) from the thread that outlives them. Off Linux there is no
such call, and children are only reaped the usual way.

    proc = children.run([sys.executable, "-m", "edgekit.export._legacy_worker", job], capture_output=True)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _die_with(parent: int):
    def arm() -> None:  # runs in the child, before exec: no Python objects beyond these two calls
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: the signal will never come
            os._exit(1)

    return arm


def die_with_parent(parent: int) -> None:
    """Called in a child that Python started itself (a process pool's initializer): the same promise."""
    if _LIBC is not None:
        _die_with(parent)()


def _guarded(kwargs: dict[str, Any]) -> dict[str, Any]:
    if _LIBC is not None and "preexec_fn" not in kwargs:
        kwargs["preexec_fn"] = _die_with(os.getpid())
    return kwargs


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run, the child killed when this process dies."""
    return subprocess.run(argv, **_guarded(kwargs))


def popen(argv, **kwargs) -> subprocess.Popen:
    """subprocess.Popen, the child killed when this process dies."""
    return subprocess.Popen(argv, **_guarded(kwargs))
