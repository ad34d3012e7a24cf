"""edgekit's native Lite runner (edgekit/native/lite_runner.cc), compiled once per (arch, Lite runtime).

The runner is built with the matching cross compiler (Debian's
`g++-aarch64-linux-gnu`, `g++-arm-linux-gnueabihf`, or the host `g++` for x86;
Android's NDK clang when the user points at an NDK) against the runtime's
headers, and cached under `<cache>/native-runner/<key>/` with the libraries it
needs beside it (rpath `$ORIGIN`), so the folder can be copied to a device as
it is. The key hashes the source, the runtime library and the compiler.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from importlib import resources
from pathlib import Path

from edgekit import children
from edgekit.errors import EdgekitError
from edgekit.scratch import scratch_dir
from edgekit.toolchains.lite_layout import cache_root
from edgekit.toolchains.lite_runtime import LiteRuntime

RUNNER_NAME = "edgekit-lite-runner"
COMPILERS = {"armv8": "aarch64-linux-gnu-g++", "armv7": "arm-linux-gnueabihf-g++", "x86": "g++"}
DEBIAN_COMPILERS = {"armv8": "g++-aarch64-linux-gnu", "armv7": "g++-arm-linux-gnueabihf", "x86": "g++"}
NDK_ENV_VAR = "ANDROID_NDK_HOME"


def runner_source() -> bytes:
    return resources.files("edgekit.native").joinpath("lite_runner.cc").read_bytes()


def compiler_for(arch: str, android_ndk: str | Path | None = None) -> str:
    if android_ndk:
        clang = Path(android_ndk) / "toolchains/llvm/prebuilt/linux-x86_64/bin" / {
            "armv8": "aarch64-linux-android24-clang++", "armv7": "armv7a-linux-androideabi24-clang++"}[arch]
        if not clang.is_file():
            raise EdgekitError(f"Android NDK {android_ndk} has no {clang.name}; point {NDK_ENV_VAR} at an NDK r21+.")
        return str(clang)
    return COMPILERS[arch]


def check_compiler(arch: str, android_ndk: str | Path | None = None) -> str:
    """The compiler for `arch`, or an EdgekitError that says how to install it."""
    compiler = compiler_for(arch, android_ndk)
    if shutil.which(compiler) is None and not android_ndk and _can_apt_install():
        children.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", DEBIAN_COMPILERS[arch]],
                       capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if shutil.which(compiler) is None:
        raise EdgekitError(f"The {arch} native runner needs the cross compiler {compiler}, which is not on PATH: "
                           f"`sudo apt-get install {DEBIAN_COMPILERS[arch]}` (Debian/Ubuntu).")
    return compiler


def _can_apt_install() -> bool:
    """Root with apt-get: the cross compiler is a Debian package edgekit may install itself."""
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def android_ndk_for(runtime: LiteRuntime) -> Path | None:
    """The NDK that compiles the runner for an Android runtime ($ANDROID_NDK_HOME); None for Linux runtimes."""
    if runtime.platform != "android":
        return None
    ndk = os.environ.get(NDK_ENV_VAR)
    if not ndk:
        raise EdgekitError(f"The {runtime.key} Lite runtime at {runtime.root} is for Android: the native runner is "
                           f"compiled for it with the Android NDK. Set {NDK_ENV_VAR} to an NDK r21+ folder (Android "
                           "Studio's SDK Manager installs one under Android/Sdk/ndk/).")
    return Path(ndk)


def build_runner(runtime: LiteRuntime) -> Path:
    """The runner folder for `runtime` (built on first use, then cached): runner + its shared libraries."""
    android_ndk = android_ndk_for(runtime)
    compiler = check_compiler(runtime.arch, android_ndk)
    version = children.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    key = hashlib.sha256(runner_source() + runtime.sha256.encode() + "".join(version).encode()).hexdigest()[:16]
    target = cache_root() / "native-runner" / f"{runtime.key}-{key}"
    if (target / RUNNER_NAME).is_file():
        return target
    companions = list(runtime.companions)
    if runtime.arch == "x86":  # the wheel's lite.so references CPython symbols: Debian's libpython3.9 has them
        from edgekit.toolchains.lite_provision import install_libpython

        companions.append(install_libpython() / "libpython3.9.so.1.0")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = scratch_dir(f".{target.name}.tmp", target.parent)
    try:
        (staging / "lite_runner.cc").write_bytes(runner_source())
        # The library keeps its SONAME (the wheel's lite.so calls itself liblite_pybind.so).
        soname = _soname(runtime.library) or runtime.library.name
        shutil.copy2(runtime.library, staging / soname)
        libs = staging / "libs"  # the wheel's lite.so looks for its own companions in $ORIGIN/libs
        libs.mkdir()
        for companion in companions:
            shutil.copy2(companion, libs / companion.name)
        command = [compiler, "-O2", "-std=c++11", f"-I{runtime.include}", str(staging / "lite_runner.cc"),
                   "-o", str(staging / RUNNER_NAME), f"-L{staging}", f"-L{libs}", f"-l:{soname}",
                   *[f"-l:{c.name}" for c in companions if "python" in c.name],
                   "-Wl,-rpath,$ORIGIN:$ORIGIN/libs", "-Wl,--allow-shlib-undefined"]
        if runtime.arch != "x86":
            # Boards often carry an older libstdc++ than the cross compiler; phones have no libc++_shared.
            command.append("-static-libstdc++")
        proc = children.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise EdgekitError(f"Compiling the {runtime.arch} native runner against {runtime.root} failed:\n"
                               f"{proc.stderr.strip()[-2000:]}")
        (staging / "lite_runner.cc").unlink()
        try:
            staging.rename(target)
        except OSError:  # another process built it first
            if not (target / RUNNER_NAME).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _soname(library: Path) -> str | None:
    proc = children.run(["objdump", "-p", str(library)], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.strip().startswith("SONAME"):
            return line.split()[-1]
    return None


def runner_files(folder: Path) -> list[Path]:
    """Every file of a runner folder, for copying it to a device."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


__all__ = ["android_ndk_for", "build_runner", "check_compiler", "runner_files", "RUNNER_NAME", "COMPILERS", "NDK_ENV_VAR"]
