"""The bundle: a directory an app embeds, described by its edgekit.json manifest.

Bundles are written atomically: everything goes into a temporary sibling
directory that is renamed into place only once complete, so a failed or
interrupted build never leaves a half bundle behind.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterator

from edgekit.errors import EdgekitError
from edgekit.hashing import file_sha256
from edgekit.scratch import scratch_dir, sweep
from edgekit.userfiles import prepare_parent

MANIFEST = "edgekit.json"
SCHEMA_VERSION = 1


def file_table(root: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under `root` except the manifest itself."""
    table = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        table[path.relative_to(root).as_posix()] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    return table


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    manifest = {**manifest, "files": file_table(root)}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def read_manifest(root: str | Path) -> dict[str, Any]:
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise EdgekitError(f"{root} is not an edgekit bundle: {MANIFEST} is missing "
                           "(build one with `edgekit build MODEL --target T`).")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EdgekitError(f"Bundle manifest {path} is not valid JSON ({exc}).") from None
    if manifest.get("schema") != SCHEMA_VERSION:
        raise EdgekitError(f"Bundle manifest {path} has schema {manifest.get('schema')!r}; "
                           f"this edgekit reads schema {SCHEMA_VERSION}. Rebuild the bundle.")
    return manifest


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Raise if any file listed in the manifest is missing or no longer matches its checksum."""
    bad = []
    for rel, meta in manifest["files"].items():
        path = root / rel
        if not path.is_file():
            bad.append(f"{rel} (missing)")
        elif path.stat().st_size != meta["size"] or file_sha256(path) != meta["sha256"]:
            bad.append(f"{rel} (checksum mismatch)")
    if bad:
        raise EdgekitError(f"Bundle {root} failed its checksum check: {', '.join(bad)}. The bundle was "
                           "modified or corrupted after it was built; rebuild it with `edgekit build`.")


@contextlib.contextmanager
def atomic_directory(dst: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary directory that replaces `dst` only if the block succeeds."""
    if dst.exists() and not force:
        raise EdgekitError(f"Output directory {dst} already exists; pass --force to replace it, "
                           "or choose another --out.")
    prepare_parent(dst, "--out")
    sweep(dst.parent, f".{dst.name}.old-")  # a build killed between its two renames
    tmp = scratch_dir(f".{dst.name}.partial", dst.parent)
    tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    try:
        yield tmp
        if dst.exists():
            old = scratch_dir(f".{dst.name}.old", dst.parent)
            dst.rename(old / "bundle")
            tmp.rename(dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
