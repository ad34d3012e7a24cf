"""External tools edgekit provisions for itself, one module per toolchain.

A toolchain lives in the user cache (`platformdirs.user_cache_dir("edgekit")`,
or `$EDGEKIT_CACHE_DIR`) under `toolchains/<name>-<version>/`, is built in a
temporary directory and renamed into place, pins the checksum of everything
it downloads, and works offline once cached.

- `paddle_lite`: a private CPython 3.9 with the `paddlelite` wheel, for the
  Paddle Lite optimizer (`opt`, `.nb` files) and its x86 light API.
"""

from __future__ import annotations

from edgekit.errors import EdgekitError

# The toolchains edgekit provisions itself (`edgekit toolchain install NAME`).
MANAGED = ("paddle-lite",)


def install(name: str, force: bool = False, progress=None):
    """Provision the toolchain called `name` into the user cache; returns its ToolchainInfo."""
    if name not in MANAGED:
        raise EdgekitError(f"Unknown toolchain {name!r}; edgekit manages: {', '.join(MANAGED)}.")
    from edgekit.toolchains import paddle_lite

    return paddle_lite.install(progress=progress, force=force)
