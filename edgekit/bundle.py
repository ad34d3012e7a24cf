"""The bundle: a directory an app embeds, described by its edgekit.json manifest.

Bundles are written atomically: everything goes into a temporary sibling
directory that is renamed into place only once complete, so a failed or
interrupted build never leaves a half bundle behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path
from typing import Any, Iterator

from edgekit.errors import EdgekitError
from edgekit.hashing import file_sha256
from edgekit.scratch import scratch_dir, sweep
from edgekit.userfiles import prepare_parent, read_json

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
    manifest = read_json(path, "an edgekit bundle manifest (what `edgekit build` writes)", "Bundle manifest")
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA_VERSION:
        schema = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        raise EdgekitError(f"Bundle manifest {path} has schema {schema!r}; "
                           f"this edgekit reads schema {SCHEMA_VERSION}. Rebuild the bundle.")
    _check_structure(manifest, path)
    return manifest


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_inside(value) -> bool:
    """A relative path that stays inside the bundle."""
    return isinstance(value, str) and bool(value) and not Path(value).is_absolute() and ".." not in Path(value).parts


def _is_triple(value) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)


# What the readers of a bundle rely on: (section, key, check, what is expected).
_REQUIRED = [
    ("model", "name", lambda v: isinstance(v, str) and bool(v), "a model name"),
    ("model", "num_classes", _is_count, "a positive integer"),
    ("target", "name", lambda v: isinstance(v, str) and bool(v), "a target name"),
    ("target", "runtime", lambda v: isinstance(v, str) and bool(v), "a runtime name"),
    ("target", "precision", lambda v: isinstance(v, str) and bool(v), "fp32, fp16, bf16 or int8"),
    ("artifact", "model_file", _is_inside, "a file name inside the bundle"),
    ("preprocessing", "resize_short", _is_count, "a positive integer"),
    ("preprocessing", "crop", _is_count, "a positive integer"),
    ("preprocessing", "mean", _is_triple, "three numbers"),
    ("preprocessing", "std", lambda v: _is_triple(v) and all(x > 0 for x in v), "three positive numbers"),
]


def _check_structure(manifest: dict[str, Any], path: Path) -> None:
    def bad(where: str, expected: str) -> EdgekitError:
        return EdgekitError(f"Bundle manifest {path}: `{where}` is missing or malformed (expected {expected}). "
                            "The manifest was edited or truncated; rebuild the bundle with `edgekit build`.")

    for section, key, check, expected in _REQUIRED:
        block = manifest.get(section)
        if not isinstance(block, dict) or not check(block.get(key)):
            raise bad(f"{section}.{key}", expected)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise bad("files", "a table of file names to sha256 and size")
    for rel, meta in files.items():
        if not _is_inside(rel) or not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) \
                or not isinstance(meta.get("size"), int) or isinstance(meta.get("size"), bool):
            raise bad(f"files[{rel!r}]", "a file inside the bundle with its sha256 and size")


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
