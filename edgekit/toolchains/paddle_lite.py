"""The Paddle Lite toolchain: a Python that can import `paddlelite` 2.13rc0.

The `paddlelite` wheel exists only for CPython <= 3.10 and edgekit runs on
3.11, so the optimizer and the x86 light API run in a second interpreter, in
a subprocess (`lite_opt.py` to optimize, the device agent to run). Where that interpreter comes from, in order:

1. `EDGEKIT_LITE_PYTHON=/path/to/python`: one the user already has, with
   `pip install paddlelite==2.13rc0` done. Nothing is provisioned.
2. The managed toolchain in `<cache>/toolchains/paddle-lite-2.13rc0/`, made by
   `install()`: Debian bullseye's CPython 3.9 (`apt-get download` with a
   private sources list and private state, signed-by the bullseye archive
   key; nothing is installed system-wide, no root needed), unpacked with
   `dpkg-deb -x`, plus the cp39 `paddlelite` and `numpy` wheels fetched with
   `pip download`. Every download is checked against a pinned sha256; the
   unpacked tree is recorded file by file so a later `install()` re-verifies
   it offline.

`<cache>` is `$EDGEKIT_CACHE_DIR` when set, else `platformdirs.user_cache_dir("edgekit")`.

This module uses a toolchain (find it, run the optimizer, read and run `.nb`
files); provisioning is edgekit.toolchains.lite_provision, the shared layout
edgekit.toolchains.lite_layout.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from edgekit.errors import EdgekitError
# The layout's names are importable from here as before the split (tests, edgekit.build, the CLI).
from edgekit.scratch import temporary_dir
from edgekit.toolchains.lite_layout import (BRING_YOUR_OWN, CACHE_ENV_VAR, LITE_VERSION, MANIFEST_NAME,
                                            MIRROR_ENV_VAR, PYTHON_ENV_VAR, OPT_SCRIPT, TOOLCHAIN_DIRNAME, Progress,
                                            ToolchainInfo, cache_root, toolchain_dir)
from edgekit.toolchains.lite_provision import managed_info
from edgekit.toolchains.lite_provision import install as _provision
from edgekit.toolchains.process import exit_text as _exit_text
from edgekit.toolchains.process import run as _run
from edgekit.toolchains.process import tail as _tail

__all__ = ["ToolchainInfo", "find", "status", "install", "run_opt", "nb_info", "run_nb", "cache_root",
           "toolchain_dir", "LITE_VERSION", "TOOLCHAIN_DIRNAME", "PYTHON_ENV_VAR", "CACHE_ENV_VAR", "MIRROR_ENV_VAR",
           "MANIFEST_NAME", "OPT_SCRIPT", "Progress"]


# ---------------------------------------------------------------- finding

def find(install_missing: bool = False, progress: Progress | None = None) -> ToolchainInfo:
    """The toolchain to use: `$EDGEKIT_LITE_PYTHON`, else the managed one.

    With `install_missing`, a missing managed toolchain is provisioned first;
    without it, a missing one is an EdgekitError that says how to get it.
    """
    if os.environ.get(PYTHON_ENV_VAR):
        return _user_python(os.environ[PYTHON_ENV_VAR])
    managed = managed_info(toolchain_dir())
    if managed is not None:
        return managed
    if install_missing:
        return install(progress=progress)
    raise EdgekitError(
        f"The Paddle Lite toolchain is not installed (looked in {toolchain_dir()}). "
        f"Run `edgekit toolchain install paddle-lite` (or `edgekit.toolchains.paddle_lite.install()`), "
        f"which downloads a private CPython 3.9 and paddlelite {LITE_VERSION} into the edgekit cache. "
        + BRING_YOUR_OWN)


def status() -> dict:
    """What `edgekit doctor` shows: installed?, where, versions, and how it was found.

    Cheap: reads the managed toolchain's manifest without re-hashing it; a
    user-supplied interpreter is started once to ask its versions.
    """
    base = {"name": "paddle-lite", "version": LITE_VERSION, "installed": False, "source": "missing",
            "path": str(toolchain_dir()), "python": None, "python_version": None,
            "lite_version": None, "detail": ""}
    try:
        info = find(install_missing=False)
    except EdgekitError as exc:
        if os.environ.get(PYTHON_ENV_VAR):
            base.update(source=PYTHON_ENV_VAR, path=os.environ[PYTHON_ENV_VAR])
        base["detail"] = str(exc)
        return base
    base.update(info.to_dict(), installed=True,
                path=str(info.root if info.root is not None else info.python))
    return base


def _user_python(path_text: str) -> ToolchainInfo:
    python = Path(path_text).expanduser()
    if not python.is_file() or not os.access(python, os.X_OK):
        raise EdgekitError(
            f"{PYTHON_ENV_VAR} is set to {path_text!r}, which is not an executable file. "
            f"Point it at a CPython 3.8-3.10 interpreter with paddlelite=={LITE_VERSION} installed, "
            f"or unset it to use edgekit's managed toolchain.")
    proc = _run([str(python), str(OPT_SCRIPT), "probe"], env=dict(os.environ), timeout=120, check=False)
    if proc.returncode != 0:
        raise EdgekitError(
            f"{PYTHON_ENV_VAR}={path_text} cannot import paddlelite: {_tail(proc)} "
            f"Run `{python} -m pip install paddlelite=={LITE_VERSION} numpy` (needs CPython 3.8-3.10), "
            f"or unset {PYTHON_ENV_VAR} to use edgekit's managed toolchain.")
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    return ToolchainInfo(python=python, source=PYTHON_ENV_VAR, python_version=probe["python_version"],
                         lite_version=probe["paddlelite"] or probe["opt_version"])


def install(progress: Progress | None = None, force: bool = False) -> ToolchainInfo:
    """Provision the managed toolchain (a no-op that re-verifies when already cached); see lite_provision."""
    return _provision(progress=progress, force=force)


# ---------------------------------------------------------------- running

def run_opt(model_file: str | os.PathLike, params_file: str | os.PathLike, out_prefix: str | os.PathLike,
            valid_places: str = "arm", fp16: bool = False, weight_quant: str | None = None,
            toolchain: ToolchainInfo | None = None, timeout: float = 3600) -> Path:
    """Run the Paddle Lite optimizer on a legacy program; returns `<out_prefix>.nb`.

    `valid_places` is passed to `Opt.set_valid_places` ("arm", "x86", ...);
    `weight_quant` ("QUANT_INT8"/"QUANT_INT16") is Lite's weight-only
    post-training quantization. A missing toolchain is provisioned on first use.
    """
    model_file, params_file, out_prefix = Path(model_file), Path(params_file), Path(out_prefix)
    for what, path in (("model file", model_file), ("params file", params_file)):
        if not path.is_file():  # Opt would abort the process with a less helpful message
            raise EdgekitError(f"Paddle Lite optimizer: {what} {path} does not exist.")
    if weight_quant not in (None, "QUANT_INT8", "QUANT_INT16"):
        raise EdgekitError(f"weight_quant must be QUANT_INT8 or QUANT_INT16, not {weight_quant!r}.")
    toolchain = toolchain or find(install_missing=True)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    nb_path = out_prefix.with_name(out_prefix.name + ".nb")
    nb_path.unlink(missing_ok=True)  # so a stale file cannot pass for a fresh one
    cmd = [str(toolchain.python), str(OPT_SCRIPT), "opt", "--model-file", str(model_file.resolve()),
           "--params-file", str(params_file.resolve()), "--out-prefix", str(out_prefix.resolve()),
           "--valid-places", valid_places]
    if fp16:
        cmd.append("--fp16")
    if weight_quant:
        cmd += ["--weight-quant", weight_quant]
    proc = _run(cmd, env=toolchain.environment(), timeout=timeout, check=False)
    if proc.returncode != 0 or not nb_path.is_file() or nb_path.stat().st_size == 0:
        raise EdgekitError(
            f"Paddle Lite {toolchain.lite_version} optimizer failed on {model_file} "
            f"(valid places {valid_places!r}, {_exit_text(proc.returncode)}):\n{_tail(proc)}")
    _zero_version_padding(nb_path)
    return nb_path


# Naive-buffer layout (Lite 2.x): uint16 meta version, char[16] optimizer
# version (NUL-terminated), uint64 topology size, topology, then params.
_NB_VERSION_FIELD = slice(2, 18)
_NB_TOPOLOGY_OFFSET = 26
# Lite's TargetType enum, as it appears in kernel keys "op/alias/target/precision/layout".
_NB_TARGETS = {"1": "host", "2": "x86", "3": "cuda", "4": "arm", "5": "opencl", "6": "any"}


def nb_info(nb_path: str | os.PathLike) -> dict:
    """What a `.nb` says about itself: format meta version, optimizer version, kernel targets."""
    import struct

    path = Path(nb_path)
    with open(path, "rb") as stream:
        head = stream.read(_NB_TOPOLOGY_OFFSET)
        if len(head) < _NB_TOPOLOGY_OFFSET:
            raise EdgekitError(f"{path} is too short to be a Paddle Lite naive-buffer model.")
        (meta_version,) = struct.unpack_from("<H", head, 0)
        (topology_size,) = struct.unpack_from("<Q", head, _NB_TOPOLOGY_OFFSET - 8)
        topology = stream.read(min(topology_size, 1 << 30))
    opt_version = head[_NB_VERSION_FIELD].split(b"\0", 1)[0].decode("ascii", "replace")
    if not opt_version.startswith("v") or len(topology) != topology_size:
        raise EdgekitError(f"{path} is not a Paddle Lite naive-buffer model (no optimizer version in its header).")
    keys = re.findall(rb"[A-Za-z0-9_]+/[A-Za-z0-9_]+/(\d+)/\d+/\d+\x00", topology)
    targets = sorted({_NB_TARGETS.get(key.decode(), f"target{key.decode()}") for key in keys})
    return {"meta_version": meta_version, "opt_version": opt_version, "kernel_targets": targets}


def _zero_version_padding(nb_path: Path) -> None:
    """Opt leaves uninitialised bytes after the version string's NUL; zero them so builds are reproducible."""
    with open(nb_path, "r+b") as stream:
        field_bytes = stream.read(_NB_VERSION_FIELD.stop)[_NB_VERSION_FIELD]
        end = field_bytes.find(b"\0")
        if end >= 0:
            stream.seek(_NB_VERSION_FIELD.start + end)
            stream.write(b"\0" * (len(field_bytes) - end))


def foreign_kernels(nb_path: str | os.PathLike) -> set[str]:
    """The kernel targets of a `.nb` that this x86 host cannot run (empty: it runs here)."""
    return set(nb_info(nb_path)["kernel_targets"]) - {"host", "x86", "any"}


def run_nb(nb_path: str | os.PathLike, batch, toolchain: ToolchainInfo | None = None, timeout: float = 600):
    """Run an x86 `.nb` on one input batch with Paddle Lite's light API on this host; returns output 0.

    The device agent runs it inside the toolchain's interpreter, exactly as it
    runs a bundle on a device. Only `.nb` files optimized for valid place "x86"
    run here; ARM ones need an ARM device.
    """
    import numpy as np

    from edgekit.agent_files import local_agent

    nb_path = Path(nb_path)
    if not nb_path.is_file():
        raise EdgekitError(f"Paddle Lite model {nb_path} does not exist.")
    foreign = foreign_kernels(nb_path)
    if foreign:
        # The x86 light library does not refuse ARM kernels: it returns garbage. Refuse here.
        raise EdgekitError(f"{nb_path} holds {'/'.join(sorted(foreign))} kernels and cannot run on this host; "
                           "convert with arch='x86' to run it here, or run it on the device it was built for.")
    toolchain = toolchain or find(install_missing=True)
    with temporary_dir("edgekit-lite-run") as tmp:
        input_file, output_file = Path(tmp) / "input.npy", Path(tmp) / "output.npy"
        np.save(input_file, np.ascontiguousarray(batch))
        cmd = [str(toolchain.python), str(local_agent()), "infer", "paddle-lite", str(nb_path.resolve()),
               str(input_file), str(output_file)]
        proc = _run(cmd, env=toolchain.environment(), timeout=timeout, check=False)
        if proc.returncode != 0 or not output_file.is_file():
            raise EdgekitError(
                f"Paddle Lite {toolchain.lite_version} could not run {nb_path} on this host "
                f"({_exit_text(proc.returncode)}); only .nb files optimized for x86 run here:\n{_tail(proc)}")
        return np.load(output_file)
