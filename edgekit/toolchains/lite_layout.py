"""The managed Paddle Lite toolchain's identity and layout: version, cache location, the files in it,
and how to start its interpreter.

Shared by using the toolchain (edgekit.toolchains.paddle_lite) and provisioning
it (edgekit.toolchains.lite_provision), so neither imports the other's internals.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

LITE_VERSION = "2.13rc0"
TOOLCHAIN_DIRNAME = f"paddle-lite-{LITE_VERSION}"
PYTHON_ENV_VAR = "EDGEKIT_LITE_PYTHON"
CACHE_ENV_VAR = "EDGEKIT_CACHE_DIR"
MIRROR_ENV_VAR = "EDGEKIT_DEBIAN_MIRROR"
MANIFEST_NAME = "toolchain.json"
# The optimizer and probe script run by the toolchain interpreter (models run through the device agent).
OPT_SCRIPT = Path(__file__).with_name("lite_opt.py")

# Progress callback for the CLI: (step description, steps done, total steps).
Progress = Callable[[str, int, int], None]

# Inside the toolchain directory.
PYTHON_IN_PREFIX = Path("prefix/usr/bin/python3.9")
PYTHONHOME_IN_PREFIX = Path("prefix/usr")
LIBDIR_IN_PREFIX = Path("prefix/usr/lib/x86_64-linux-gnu")
SITE = Path("site")

BRING_YOUR_OWN = (
    f"Alternatively point {PYTHON_ENV_VAR} at a CPython 3.8-3.10 interpreter in which "
    f"`pip install paddlelite=={LITE_VERSION} numpy` has been run "
    f"(e.g. `python3.10 -m venv ~/lite && ~/lite/bin/pip install paddlelite=={LITE_VERSION} numpy`, "
    f"then `export {PYTHON_ENV_VAR}=~/lite/bin/python`)."
)


@dataclass(frozen=True)
class ToolchainInfo:
    """A Python that imports paddlelite, and how to start it."""

    python: Path
    source: str  # "managed" or PYTHON_ENV_VAR
    python_version: str
    lite_version: str
    root: Path | None = None  # the managed toolchain directory

    def environment(self) -> dict[str, str]:
        """The full environment to start `python` with, from the current one."""
        return managed_env(self.root) if self.root is not None else dict(os.environ)

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def cache_root() -> Path:
    """`$EDGEKIT_CACHE_DIR` when set, else platformdirs' user cache dir for edgekit."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("edgekit"))


def toolchain_dir() -> Path:
    """Where the managed toolchain is (or would be) installed."""
    return cache_root() / "toolchains" / TOOLCHAIN_DIRNAME


def managed_env(root: Path) -> dict[str, str]:
    """The environment the managed interpreter under `root` starts with."""
    # The host's PYTHON* and LD_LIBRARY_PATH belong to edgekit's 3.11, not to this 3.9.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k != "LD_LIBRARY_PATH"}
    env.update(PYTHONHOME=str(root / PYTHONHOME_IN_PREFIX), PYTHONPATH=str(root / SITE),
               PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1",
               LD_LIBRARY_PATH=str(root / LIBDIR_IN_PREFIX))
    return env
