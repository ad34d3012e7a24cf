"""External tools edgekit provisions for itself, one module per toolchain.

A toolchain lives in the user cache (`platformdirs.user_cache_dir("edgekit")`,
or `$EDGEKIT_CACHE_DIR`) under `toolchains/<name>-<version>/`, is built in a
temporary directory and renamed into place, pins the checksum of everything
it downloads, and works offline once cached.

- `paddle_lite`: a private CPython 3.9 with the `paddlelite` wheel, for the
  Paddle Lite optimizer (`opt`, `.nb` files) and its x86 light API.
"""
