"""Paddle Lite runtime libraries (light API, C++) that edgekit's native runner links against.

No registry has an ARM Lite runtime: users bring the `inference_lite_lib.*`
directory of a Paddle Lite release, or build one from a Paddle-Lite source
checkout (`build_from_source`: `lite/tools/build_linux.sh`, light API only,
no third-party downloads). `register` checks such a directory (headers, the
shared library, the CPU architecture in its ELF header, the Lite version
string in it) and records it in `<cache>/toolchains/lite-runtimes.json`.
`$EDGEKIT_LITE_RUNTIME` (directories separated by `os.pathsep`) registers
directories for one process, without writing anything.

The x86 runtime is the managed toolchain's `paddlelite` wheel: its `lite.so`
exports the same light API, but is a CPython 3.9 extension, so the runner also
links Debian's `libpython3.9` (pinned, downloaded like the toolchain; no
interpreter ever starts). The wheel has no headers: those come from any
registered runtime or source checkout of the same version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import re
import shlex
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from edgekit import children
from edgekit.errors import EdgekitError
from edgekit.hashing import file_sha256
from edgekit.scratch import temporary_dir
from edgekit.toolchains.lite_layout import LITE_VERSION, cache_root

RUNTIME_ENV_VAR = "EDGEKIT_LITE_RUNTIME"
REGISTRY_NAME = "lite-runtimes.json"
LIGHT_LIBRARY = "libpaddle_light_api_shared.so"
# ELF e_machine -> Lite arch (armv7 is the 32-bit ARM hard-float ABI).
_ELF_MACHINES = {183: "armv8", 40: "armv7", 62: "x86"}
# The optimizer edgekit runs writes this version into every .nb; a runtime of another version may warn
# (2.12) or crash (2.9/2.10) on such files.
OPT_VERSION = "v2.13-rc"


@dataclass(frozen=True)
class LiteRuntime:
    arch: str  # armv8 | armv7 | x86
    root: Path  # the directory the user gave
    include: Path  # holds paddle_api.h
    library: Path  # the light-API shared library the runner links
    companions: tuple[Path, ...]  # other shared libraries it needs beside it at run time
    version: str  # the Lite version string found in the library, e.g. "v2.13-rc"
    sha256: str
    platform: str = "linux"  # or "android": built against bionic with the NDK, for phones

    @property
    def key(self) -> str:
        """Its name in the registry: the arch (armv8, armv7, x86), `android-` in front for phones."""
        return self.arch if self.platform == "linux" else f"{self.platform}-{self.arch}"

    @property
    def version_matches(self) -> bool:
        return self.version == OPT_VERSION

    def to_dict(self) -> dict:
        record = asdict(self)
        record.update(root=str(self.root), include=str(self.include), library=str(self.library),
                      companions=[str(p) for p in self.companions])
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "LiteRuntime":
        return cls(arch=record["arch"], root=Path(record["root"]), include=Path(record["include"]),
                   library=Path(record["library"]), companions=tuple(Path(p) for p in record["companions"]),
                   version=record["version"], sha256=record["sha256"], platform=record.get("platform", "linux"))


def elf_arch(path: Path) -> str | None:
    """The Lite arch of an ELF shared library, from its header (None: not ELF, or another CPU)."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    (machine,) = struct.unpack("<H", header[18:20])
    return _ELF_MACHINES.get(machine)


def library_platform(data: bytes) -> str:
    """android when a library needs bionic's unversioned `libc.so` (glibc's is `libc.so.6`), else linux."""
    return "android" if b"\x00libc.so\x00" in data else "linux"


def library_version(data: bytes) -> str:
    """The Lite version string compiled into a library's bytes (the most frequent `vX.Y[-rc]` in them)."""
    counts: dict[str, int] = {}
    for match in re.finditer(rb"v2\.\d{1,2}(?:-rc\d*|\.\d+)?(?=\x00)", data):
        key = match.group().decode()
        counts[key] = counts.get(key, 0) + 1
    return max(counts, key=counts.get) if counts else "unknown"


def inspect(directory: str | Path) -> LiteRuntime:
    """Check a Lite runtime directory (`inference_lite_lib.*`, or one with include/ and lib/)."""
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise EdgekitError(f"Lite runtime {root} is not a directory; give the inference_lite_lib.* folder of a "
                           "Paddle Lite release or build (it holds cxx/include and cxx/lib).")
    base = root / "cxx" if (root / "cxx").is_dir() else root
    include, library = base / "include", base / "lib" / LIGHT_LIBRARY
    missing = [str(p.relative_to(root)) for p in (include / "paddle_api.h", include / "paddle_place.h", library)
               if not p.is_file()]
    if missing:
        raise EdgekitError(f"Lite runtime {root} lacks {', '.join(missing)}; a light-API build "
                           "(`build_linux.sh ... ` without full_publish) writes cxx/include/paddle_api.h and "
                           f"cxx/lib/{LIGHT_LIBRARY}.")
    arch = elf_arch(library)
    if arch is None:
        raise EdgekitError(f"{library} is not a shared library for a CPU edgekit knows (armv8, armv7, x86).")
    version, sha256, platform = _library_facts(library)
    return LiteRuntime(arch=arch, root=root, include=include, library=library, companions=(),
                       version=version, sha256=sha256, platform=platform)


def _library_facts(library: Path) -> tuple[str, str, str]:
    """(version, sha256, platform) of a runtime library: read once per file state, not on every lookup (registered()
    runs for every Lite build, emulated run and doctor, and the libraries are tens of MB)."""
    stat = library.stat()
    return _facts_of(str(library), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _facts_of(path: str, size: int, mtime_ns: int) -> tuple[str, str, str]:
    data = Path(path).read_bytes()  # tens of MB: read once for the version and the platform
    return library_version(data), file_sha256(Path(path)), library_platform(data)


def registry_file() -> Path:
    return cache_root() / "toolchains" / REGISTRY_NAME


def _read_registry() -> dict[str, dict]:
    path = registry_file()
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        raise EdgekitError(f"{path} is not valid JSON; delete it and register the Lite runtimes again.") from None


def register(directory: str | Path) -> LiteRuntime:
    """Check and record a runtime directory for its arch and platform (replacing an earlier one for them)."""
    runtime = inspect(directory)
    registry = _read_registry()
    registry[runtime.key] = {**runtime.to_dict(),
                              "registered": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    path = registry_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(registry, indent=1) + "\n")
    tmp.replace(path)
    return runtime


def registered() -> dict[str, LiteRuntime]:
    """key (armv8, android-armv8, ...) -> runtime: the registry, with $EDGEKIT_LITE_RUNTIME's directories on top."""
    runtimes = {key: LiteRuntime.from_dict(record) for key, record in _read_registry().items()
                if Path(record["library"]).is_file()}
    for entry in filter(None, os.environ.get(RUNTIME_ENV_VAR, "").split(os.pathsep)):
        runtime = inspect(entry)
        runtimes[runtime.key] = runtime
    return runtimes


def find(arch: str, platform: str = "linux") -> LiteRuntime | None:
    if arch == "x86" and platform == "linux":
        return x86_runtime()
    return registered().get(arch if platform == "linux" else f"{platform}-{arch}")


def headers() -> Path | None:
    """Any registered runtime's include directory: the light API's headers are the same on every arch."""
    for runtime in registered().values():
        if (runtime.include / "paddle_api.h").is_file():
            return runtime.include
    return None


def x86_runtime() -> LiteRuntime | None:
    """The managed toolchain's x86 light API as a runtime the native runner can link (None: no headers or
    no managed toolchain here)."""
    include = headers()
    if include is None:
        return None
    from edgekit.toolchains import paddle_lite

    try:
        toolchain = paddle_lite.find(install_missing=False)
    except EdgekitError:
        return None
    lite_so = toolchain.root / "site" / "paddlelite" / "lite.so" if toolchain.root else None
    if lite_so is None or not lite_so.is_file():
        return None
    # libpython3.9 joins these when the runner is built (edgekit.toolchains.native_runner).
    companions = tuple(sorted((lite_so.parent / "libs").glob("*.so")))
    version, sha256, _ = _library_facts(lite_so)
    return LiteRuntime(arch="x86", root=lite_so.parent, include=include, library=lite_so, companions=companions,
                       version=version, sha256=sha256)


def status() -> list[dict]:
    """What `edgekit doctor` and `edgekit toolchain list` show about Lite runtimes."""
    rows, runtimes = [], registered()
    phones = [key for key in ("android-armv8", "android-armv7") if key in runtimes]
    for arch in ("armv8", "armv7", *phones):
        runtime = runtimes.get(arch)
        rows.append({"arch": arch, "path": str(runtime.root) if runtime else None,
                     "version": runtime.version if runtime else None,
                     "matches_optimizer": runtime.version_matches if runtime else None})
    return rows


def _arm_state_compilers(folder: Path) -> Path:
    """`arm-linux-gnueabihf-gcc/g++` that compile in ARM state, first on PATH for Lite's build.

    Debian's armhf GCC emits Thumb-2 by default, where r7 is the frame pointer: Lite's 32-bit NEON assembly
    then has too few registers ("'asm' operand has impossible constraints", GCC 11 and 12, at the LTO link).
    `-marm` frees it, but Lite's cmake files set their own flags, so the compiler itself adds it: every
    compile and the LTO link get it (armlinux.cmake names the compilers without a path).
    """
    import shutil

    for tool in ("gcc", "g++"):
        real = shutil.which(f"arm-linux-gnueabihf-{tool}")
        if real is None:
            continue  # check_compiler has said what to install
        wrapper = folder / f"arm-linux-gnueabihf-{tool}"
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(real)} "$@" -marm\n')
        wrapper.chmod(0o755)
    return folder


def build_from_source(source: str | Path, arch: str, jobs: int | None = None, log=None) -> LiteRuntime:
    """Build a light-API runtime from a Paddle-Lite checkout (tiny_publish: C++ only, no downloads), then
    register it. About 20-30 minutes on 2 cores for armv8."""
    from edgekit.toolchains.native_runner import check_compiler

    source = Path(source).expanduser().resolve()
    script = source / "lite" / "tools" / "build_linux.sh"
    if arch not in ("armv8", "armv7"):
        raise EdgekitError(f"--arch {arch!r}: edgekit builds armv8 or armv7 Lite runtimes (armv7 means armv7hf).")
    if not script.is_file():
        raise EdgekitError(f"{source} is not a Paddle-Lite source checkout ({script.relative_to(source)} "
                           f"is missing); check out the tag matching the optimizer ({OPT_VERSION}).")
    check_compiler(arch)
    import subprocess

    lite_arch = "armv7hf" if arch == "armv7" else arch
    env = {**os.environ, "LITE_BUILD_THREADS": str(jobs or os.cpu_count() or 2)}
    with contextlib.ExitStack() as stack:
        if arch == "armv7":
            wrappers = stack.enter_context(temporary_dir("edgekit-armv7-cc"))
            env["PATH"] = f"{_arm_state_compilers(wrappers)}{os.pathsep}{env.get('PATH', '')}"
        with open(log or os.devnull, "w") as out:
            proc = children.run([str(script), f"--arch={lite_arch}", "--toolchain=gcc", "--with_extra=ON",
                                 "--with_exception=ON"], cwd=source, env=env, stdout=out, stderr=subprocess.STDOUT)
    built = source / f"build.lite.linux.{lite_arch}.gcc" / "inference_lite_lib.armlinux.{}".format(lite_arch)
    if proc.returncode != 0 or not built.is_dir():
        hint = ""
        if arch == "armv7" and log and "impossible constraints" in Path(log).read_text(errors="replace"):
            # Paddle-Lite 2.13-rc with Debian's GCC 11/12 in Thumb mode; the -marm compilers above avoid it,
            # unless objects compiled before without it are reused.
            hint = (" Paddle-Lite's 32-bit ARM inline assembly ran out of registers; edgekit compiles in ARM state "
                    "(-marm) for that, so remove a build.lite.linux.armv7hf.gcc folder built before without it, or "
                    "use the inference_lite_lib.armlinux.armv7hf archive of a Paddle Lite release "
                    "(`edgekit toolchain register-lite-runtime DIR`).")
        raise EdgekitError(f"Building the {arch} Lite runtime in {source} failed (exit {proc.returncode})"
                           + (f"; see {log}." if log else ".") + hint)
    return register(built)


__all__ = ["LiteRuntime", "inspect", "register", "registered", "find", "status", "build_from_source",
           "RUNTIME_ENV_VAR", "OPT_VERSION", "LITE_VERSION"]
