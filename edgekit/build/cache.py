"""The build cache: a bundle is reused when every input of its build matches an earlier one.

The key is the sha256 of the build's inputs, resolved by `plan_build`: the model and class count, the
weights' sha256 (or every file of --inference-model, or the random-init seed), labels, target, options,
precision, the resolved recipe (with the sha256 of any file it names, e.g. a distillation teacher), the
preprocessing, the calibration set (every image's sha256 and label, in order), edgekit's version and the
digest of its own source, and the tools' versions. Entries live under `<edgekit cache>/builds/<key>/`
(`bundle/` + `entry.json`); a hit copies the bundle into --out atomically, so the files are the earlier
build's byte for byte (its manifest too: `created` and `weights.source` are the first build's).

    result = cached_build(plan_build("ResNet18", "onnx", weights="w.pdparams"))
    result.cache.hit, result.cache.key
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from edgekit.build.plan import BuildPlan
from edgekit.build.run import BuildResult, run_build
from edgekit.bundle import atomic_directory, read_manifest, verify_files
from edgekit.hashing import file_sha256
from edgekit.scratch import scratch_dir

ENTRY = "entry.json"
KEY_VERSION = 1  # bumped when what the key covers changes, so old entries stop matching


def cache_dir() -> Path:
    from edgekit.toolchains.lite_layout import cache_root

    return cache_root() / "builds"


@lru_cache(maxsize=None)
def source_digest() -> str:
    """sha256 over edgekit's own code and data files: a changed checkout never reuses an older build."""
    import edgekit

    root = Path(edgekit.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml", ".json", ".cc", ".tmpl", ".txt")
                       and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for data in ("_targets", "_recipes"):  # shipped as data packages beside the code
        try:
            from importlib import resources

            for entry in sorted(resources.files(f"edgekit.{data}").iterdir(), key=lambda e: e.name):
                if entry.name.endswith(".yaml"):
                    digest.update(entry.name.encode() + b"\0" + entry.read_bytes() + b"\0")
        except ModuleNotFoundError:
            pass
    return digest.hexdigest()


def _tools(plan: BuildPlan) -> dict[str, Any]:
    import importlib.metadata

    from edgekit.build.manifest import tool_versions

    tools = tool_versions()
    for dist in ("scikit-image", "ml_dtypes"):  # parity photos; INT8 quantization's dtypes
        try:
            tools[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {**tools, "target_extras": plan.adapter.manifest_extras(plan.options)}


def _weights(plan: BuildPlan) -> dict[str, Any]:
    if plan.weights:
        return {"pdparams_sha256": file_sha256(plan.weights)}
    if plan.inference_model:
        files = sorted(p for p in plan.inference_model.rglob("*") if p.is_file())
        return {"inference_model": {p.relative_to(plan.inference_model).as_posix(): file_sha256(p) for p in files}}
    return {"random_init_seed": plan.seed}


def _files_named(value: Any) -> dict[str, str]:
    """sha256 of every existing file a recipe field names (a teacher's weights, ...)."""
    found: dict[str, str] = {}
    if isinstance(value, dict):
        for item in value.values():
            found.update(_files_named(item))
    elif isinstance(value, list):
        for item in value:
            found.update(_files_named(item))
    elif isinstance(value, str) and ("/" in value or value.endswith(".pdparams")) and Path(value).is_file():
        found[value] = file_sha256(value)
    return found


def _calibration(plan: BuildPlan) -> str | None:
    if plan.compression is None:
        return None
    digest = hashlib.sha256()
    for sample in plan.compression.data.samples:
        try:
            content = file_sha256(sample.path)
        except OSError:  # unreadable: the build skips and counts it; the key records that it was missing
            content = "unreadable"
        digest.update(f"{sample.label}:{content}\n".encode())
    return digest.hexdigest()


def build_inputs(plan: BuildPlan) -> dict[str, Any]:
    """Everything the bundle depends on, JSON-ready; its sha256 is the cache key."""
    recipe = plan.recipe.to_manifest() if plan.recipe else {"name": plan.precision}
    return {
        "key_version": KEY_VERSION,
        "model": plan.model, "num_classes": plan.num_classes, "weights": _weights(plan), "labels": plan.labels,
        "target": plan.target.name, "precision": plan.precision, "options": plan.options,
        # The recipe's fields say everything it does; a file it names (a teacher) counts by content.
        "recipe": recipe, "recipe_files": _files_named(recipe.get("passes", [])),
        "preprocessing": plan.preprocessing.to_dict() if plan.preprocessing else None,
        "calibration": _calibration(plan),
        "edgekit_source": source_digest(), "tools": _tools(plan),
    }


def key_of(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def build_key(plan: BuildPlan) -> str:
    return key_of(build_inputs(plan))


@dataclass
class CacheInfo:
    """How a build used the cache: `hit` (reused), `stored` (built now and kept), or neither (--no-cache)."""

    key: str | None
    hit: bool
    stored: bool
    seconds: float  # restore time for a hit, build time otherwise
    first_built: str | None = None  # when a hit's bundle was built
    build_seconds: float | None = None  # how long that first build took

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "hit": self.hit, "stored": self.stored, "seconds": round(self.seconds, 3),
                "first_built": self.first_built, "build_seconds": self.build_seconds}


@dataclass
class CachedBuildResult(BuildResult):
    cache: CacheInfo | None = None


@dataclass
class CacheEntry:
    key: str
    path: Path
    model: str
    target: str
    recipe: str
    created: str
    last_used: float
    size: int
    build_seconds: float

    @property
    def bundle(self) -> Path:
        return self.path / "bundle"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "path": str(self.path), "model": self.model, "target": self.target,
                "recipe": self.recipe, "created": self.created,
                "last_used": dt.datetime.fromtimestamp(self.last_used, dt.timezone.utc).isoformat(timespec="seconds"),
                "size": self.size, "build_seconds": self.build_seconds}


def _read_entry(path: Path) -> CacheEntry | None:
    try:
        meta = json.loads((path / ENTRY).read_text())
        return CacheEntry(key=meta["key"], path=path, model=meta["model"], target=meta["target"],
                          recipe=meta["recipe"], created=meta["created"], last_used=(path / ENTRY).stat().st_mtime,
                          size=meta["size"], build_seconds=meta["build_seconds"])
    except (OSError, ValueError, KeyError):
        return None  # half-written or foreign: neither listed nor reused (prune removes it)


def lookup(key: str, root: Path | None = None) -> CacheEntry | None:
    """The entry for `key` if its bundle still verifies (a damaged entry is dropped, not reused)."""
    path = (root or cache_dir()) / key
    entry = _read_entry(path) if path.is_dir() else None
    if entry is None:
        return None
    try:
        verify_files(entry.bundle, read_manifest(entry.bundle))
    except Exception:  # any damage: rebuild rather than hand out a bad bundle
        shutil.rmtree(path, ignore_errors=True)
        return None
    return entry


def store(key: str, bundle: Path, build_seconds: float, root: Path | None = None) -> CacheEntry:
    """Copy a freshly built bundle into the cache (atomically: a reader sees all of it or nothing)."""
    root = root or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(bundle)
    tmp = scratch_dir(f".{key[:12]}.partial", root)  # a killed store leaves it for the next one to sweep
    try:
        shutil.copytree(bundle, tmp / "bundle")
        meta = {"key": key, "model": manifest["model"]["name"], "target": manifest["target"]["name"],
                "recipe": (manifest.get("recipe") or {}).get("name", manifest["target"]["precision"]),
                "created": manifest.get("created"), "build_seconds": round(build_seconds, 2),
                "size": sum(p.stat().st_size for p in (tmp / "bundle").rglob("*") if p.is_file())}
        (tmp / ENTRY).write_text(json.dumps(meta, indent=1) + "\n")
        try:
            tmp.rename(root / key)
        except OSError:  # another process stored the same key first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _read_entry(root / key)


def restore(entry: CacheEntry, out: Path, force: bool) -> dict[str, Any]:
    """Copy the cached bundle to `out` (atomically, as a build would write it); returns its manifest."""
    with atomic_directory(out, force) as tmp:
        shutil.copytree(entry.bundle, tmp, dirs_exist_ok=True)
    os.utime(entry.path / ENTRY)  # last use, for prune
    return read_manifest(out)


def cached_build(plan: BuildPlan, progress: Callable[[str], None] | None = None, *, use_cache: bool = True,
                 root: Path | None = None) -> CachedBuildResult:
    """`run_build(plan)`, or the earlier bundle of the same inputs; the result's `cache` says which."""
    start = time.perf_counter()
    if not use_cache:
        built = run_build(plan, progress=progress)
        return CachedBuildResult(built.path, read_manifest(built.path), built.steps,
                                 cache=CacheInfo(None, False, False, time.perf_counter() - start))
    if progress:
        progress("hashing build inputs")
    key = build_key(plan)
    entry = lookup(key, root)
    if entry is not None:
        if progress:
            progress(f"reusing cached build {key[:12]}")
        manifest = restore(entry, plan.out, plan.force)
        return CachedBuildResult(plan.out, manifest, [], cache=CacheInfo(
            key, True, False, time.perf_counter() - start, first_built=entry.created,
            build_seconds=entry.build_seconds))
    built = run_build(plan, progress=progress)
    seconds = time.perf_counter() - start
    store(key, built.path, seconds, root)
    # The manifest as written (run_build's copy lacks the file table write_manifest adds).
    return CachedBuildResult(built.path, read_manifest(built.path), built.steps,
                             cache=CacheInfo(key, False, True, seconds))


def cached_bundle(plan: BuildPlan, progress: Callable[[str], None] | None = None,
                  root: Path | None = None) -> Path:
    """The cache entry's own bundle for `plan`, built and stored first on a miss: for callers that only run it
    (validate's FP32 reference), so nothing is copied out. `plan.out` is not written."""
    import dataclasses

    key = build_key(plan)
    entry = lookup(key, root)
    if entry is None:
        start = time.perf_counter()
        scratch = scratch_dir(".reference-build")
        try:
            built = run_build(dataclasses.replace(plan, out=scratch / "bundle", force=True), progress=progress)
            entry = store(key, built.path, time.perf_counter() - start, root)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    os.utime(entry.path / ENTRY)  # last use, for prune
    return entry.bundle


# --------------------------------------------------------------------------- ls / prune


def entries(root: Path | None = None) -> list[CacheEntry]:
    """Every complete entry, most recently used first."""
    root = root or cache_dir()
    found = [e for p in _dirs(root) if (e := _read_entry(p)) is not None]
    return sorted(found, key=lambda e: e.last_used, reverse=True)


def _dirs(root: Path) -> Iterator[Path]:
    if root.is_dir():
        yield from (p for p in root.iterdir() if p.is_dir())


@dataclass
class PruneResult:
    removed: list[CacheEntry]
    kept: list[CacheEntry]
    freed: int
    partial_removed: int  # interrupted stores and unreadable entries

    def to_dict(self) -> dict[str, Any]:
        return {"removed": [e.to_dict() for e in self.removed], "kept": len(self.kept), "freed": self.freed,
                "partial_removed": self.partial_removed}


def prune(*, older_than_days: float | None = None, max_size: int | None = None, everything: bool = False,
          dry_run: bool = False, root: Path | None = None) -> PruneResult:
    """Remove entries unused for `older_than_days`, then least recently used ones beyond `max_size` bytes
    (or all of them); interrupted or unreadable entries always go."""
    root = root or cache_dir()
    # An unreadable entry an hour old is an interrupted store, not one in progress.
    stale = time.time() - 3600
    partial = [p for p in _dirs(root) if _read_entry(p) is None and (everything or p.stat().st_mtime < stale)]
    kept = entries(root)
    removed: list[CacheEntry] = []
    if everything:
        removed, kept = kept, []
    if older_than_days is not None:
        cutoff = time.time() - older_than_days * 86400
        removed += [e for e in kept if e.last_used < cutoff]
        kept = [e for e in kept if e.last_used >= cutoff]
    if max_size is not None:
        total = 0
        within = []
        for entry in kept:  # most recently used first
            total += entry.size
            (within if total <= max_size else removed).append(entry)
        kept = within
    if not dry_run:
        for path in [e.path for e in removed] + partial:
            shutil.rmtree(path, ignore_errors=True)
    return PruneResult(removed, kept, sum(e.size for e in removed), len(partial))
