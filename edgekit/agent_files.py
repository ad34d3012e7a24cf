"""The device agent as it travels: `agent.py` beside `portable.py` and `openers.py`, under one content hash.

Devices get the three files in one directory named by that hash (a changed agent
is a new directory, never a half-updated one). Interpreters on this host
that are not edgekit's (the Paddle Lite toolchain's Python) run a local copy.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from edgekit import agent, openers, portable
from edgekit.scratch import scratch_dir

AGENT_SCRIPT = "agent.py"


@lru_cache(maxsize=1)
def agent_sources() -> dict[str, bytes]:
    """File name -> content of everything the agent needs on a device."""
    return {Path(module.__file__).name: Path(module.__file__).read_bytes() for module in (agent, portable, openers)}


def agent_digest() -> str:
    digest = hashlib.sha256()
    for name, content in sorted(agent_sources().items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()[:12]


def agent_dirname() -> str:
    return f"agent-{agent_digest()}"


def local_agent() -> Path:
    """agent.py in a directory of this host's temp dir, beside portable.py and openers.py; written once,
    atomically."""
    final = Path(tempfile.gettempdir()) / f"edgekit-{agent_dirname()}"
    if not (final / AGENT_SCRIPT).is_file():
        staging = scratch_dir(f".{final.name}", final.parent)
        for name, content in agent_sources().items():
            (staging / name).write_bytes(content)
        try:
            os.rename(staging, final)
        except OSError:  # another process got there first; its copy is identical
            for child in staging.iterdir():
                child.unlink()
            staging.rmdir()
    return final / AGENT_SCRIPT
