"""The Paddle Lite toolchain: a Python that can import `paddlelite` 2.13rc0.

The `paddlelite` wheel exists only for CPython <= 3.10 and edgekit runs on
3.11, so the optimizer and the x86 light API run in a second interpreter, in
a subprocess (`lite_runner.py`). Where that interpreter comes from, in order:

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
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from edgekit.errors import EdgekitError

LITE_VERSION = "2.13rc0"
TOOLCHAIN_DIRNAME = f"paddle-lite-{LITE_VERSION}"
PYTHON_ENV_VAR = "EDGEKIT_LITE_PYTHON"
CACHE_ENV_VAR = "EDGEKIT_CACHE_DIR"
MIRROR_ENV_VAR = "EDGEKIT_DEBIAN_MIRROR"
MANIFEST_NAME = "toolchain.json"
RUNNER = Path(__file__).with_name("lite_runner.py")

# Progress callback for the CLI: (step description, steps done, total steps).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Pinned:
    """One download, pinned by version and by the sha256 of the exact file."""

    name: str
    version: str
    filename: str
    sha256: str


# Bullseye's main suite is frozen at its final point release (11.11), so these
# versions stay on the mirrors; apt checks them against the signed index too.
DEBIAN_SUITE = "bullseye"
DEBIAN_PACKAGES = (
    Pinned("python3.9-minimal", "3.9.2-1", "python3.9-minimal_3.9.2-1_amd64.deb",
           "5d6003c5c20223a2547ac4976e09a9ec778dbe351507a6292bef3b60df5f4aa7"),
    Pinned("libpython3.9-minimal", "3.9.2-1", "libpython3.9-minimal_3.9.2-1_amd64.deb",
           "594283526d67e03e3c4e96534f6bfe5da1bf41da5d49360553c9b79fbf08c4ab"),
    Pinned("libpython3.9-stdlib", "3.9.2-1", "libpython3.9-stdlib_3.9.2-1_amd64.deb",
           "32ac64d959ac2dbc5bb289532fc9834dab8f671b5455695a3a9315aad973c65b"),
    Pinned("python3.9", "3.9.2-1", "python3.9_3.9.2-1_amd64.deb",
           "12f8b47632cc26b986bfc4c882fc98e7036d406143ae8bb1dbfff6b61d7c8993"),
    Pinned("libssl1.1", "1.1.1w-0+deb11u1", "libssl1.1_1.1.1w-0+deb11u1_amd64.deb",
           "aadf8b4b197335645b230c2839b4517aa444fd2e8f434e5438c48a18857988f7"),
    Pinned("libffi7", "3.3-6", "libffi7_3.3-6_amd64.deb",
           "30ca89bfddae5fa6e0a2a044f22b6e50cd17c4bc6bc850c579819aeab7101f0f"),
    Pinned("libmpdec3", "2.5.1-1", "libmpdec3_2.5.1-1_amd64.deb",
           "816404866f754d5662d69db50072018dccb78cf372fc38e0be961fab0f57d741"),
)
WHEELS = (
    Pinned("paddlelite", LITE_VERSION, "paddlelite-2.13rc0-cp39-cp39-manylinux1_x86_64.whl",
           "a92974188b903103b64700745b043619845e56d5500c5985bc4498e7b136c87a"),
    # The light API's Tensor.from_numpy/numpy need numpy; 1.26 is the last line with cp39 wheels.
    Pinned("numpy", "1.26.4", "numpy-1.26.4-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
           "f870204a840a60da0b12273ef34f7051e98c3b5961b61b0c2c1be6dfd64fbcd3"),
)
# The bullseye-only keyring first; the combined Debian keyring also holds the bullseye keys.
DEBIAN_KEYRINGS = (
    Path("/usr/share/keyrings/debian-archive-bullseye-automatic.gpg"),
    Path("/usr/share/keyrings/debian-archive-keyring.gpg"),
)
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"

_PYTHON_IN_PREFIX = Path("prefix/usr/bin/python3.9")
_PYTHONHOME_IN_PREFIX = Path("prefix/usr")
_LIBDIR_IN_PREFIX = Path("prefix/usr/lib/x86_64-linux-gnu")
_SITE = Path("site")

_BRING_YOUR_OWN = (
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
        return _managed_env(self.root) if self.root is not None else dict(os.environ)

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


# ---------------------------------------------------------------- locations

def cache_root() -> Path:
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("edgekit"))


def toolchain_dir() -> Path:
    return cache_root() / "toolchains" / TOOLCHAIN_DIRNAME


# ---------------------------------------------------------------- finding

def find(install_missing: bool = False, progress: Progress | None = None) -> ToolchainInfo:
    """The toolchain to use: `$EDGEKIT_LITE_PYTHON`, else the managed one.

    With `install_missing`, a missing managed toolchain is provisioned first;
    without it, a missing one is an EdgekitError that says how to get it.
    """
    if os.environ.get(PYTHON_ENV_VAR):
        return _user_python(os.environ[PYTHON_ENV_VAR])
    managed = _managed_info(toolchain_dir())
    if managed is not None:
        return managed
    if install_missing:
        return install(progress=progress)
    raise EdgekitError(
        f"The Paddle Lite toolchain is not installed (looked in {toolchain_dir()}). "
        f"Run `edgekit toolchain install paddle-lite` (or `edgekit.toolchains.paddle_lite.install()`), "
        f"which downloads a private CPython 3.9 and paddlelite {LITE_VERSION} into the edgekit cache. "
        + _BRING_YOUR_OWN)


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
    proc = _run([str(python), str(RUNNER), "probe"], env=dict(os.environ), timeout=120, check=False)
    if proc.returncode != 0:
        raise EdgekitError(
            f"{PYTHON_ENV_VAR}={path_text} cannot import paddlelite: {_tail(proc)} "
            f"Run `{python} -m pip install paddlelite=={LITE_VERSION} numpy` (needs CPython 3.8-3.10), "
            f"or unset {PYTHON_ENV_VAR} to use edgekit's managed toolchain.")
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    return ToolchainInfo(python=python, source=PYTHON_ENV_VAR, python_version=probe["python_version"],
                         lite_version=probe["paddlelite"] or probe["opt_version"])


def _managed_env(root: Path) -> dict[str, str]:
    # The host's PYTHON* and LD_LIBRARY_PATH belong to edgekit's 3.11, not to this 3.9.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k != "LD_LIBRARY_PATH"}
    env.update(PYTHONHOME=str(root / _PYTHONHOME_IN_PREFIX), PYTHONPATH=str(root / _SITE),
               PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1",
               LD_LIBRARY_PATH=str(root / _LIBDIR_IN_PREFIX))
    return env


def _managed_info(root: Path) -> ToolchainInfo | None:
    manifest = _read_manifest(root)
    if manifest is None or not (root / _PYTHON_IN_PREFIX).is_file():
        return None
    return ToolchainInfo(python=root / _PYTHON_IN_PREFIX, source="managed",
                         python_version=manifest["python_version"], lite_version=manifest["lite_version"],
                         root=root)


def _read_manifest(root: Path) -> dict | None:
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    expected = _pins_as_dict()
    if manifest.get("pins") != expected:  # written by another edgekit version: not ours to trust
        return None
    return manifest


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
    cmd = [str(toolchain.python), str(RUNNER), "opt", "--model-file", str(model_file.resolve()),
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


def run_nb(nb_path: str | os.PathLike, inputs, toolchain: ToolchainInfo | None = None,
           timeout: float = 600):
    """Run an x86 `.nb` with Paddle Lite's light API on this host; returns output 0.

    `inputs` is one array or a sequence of arrays, fed to inputs 0, 1, ... in
    order. Only `.nb` files optimized for valid place "x86" run here; ARM ones
    need an ARM device.
    """
    import numpy as np

    nb_path = Path(nb_path)
    if not nb_path.is_file():
        raise EdgekitError(f"Paddle Lite model {nb_path} does not exist.")
    foreign = set(nb_info(nb_path)["kernel_targets"]) - {"host", "x86", "any"}
    if foreign:
        # The x86 light library does not refuse ARM kernels: it returns garbage. Refuse here.
        raise EdgekitError(f"{nb_path} holds {'/'.join(sorted(foreign))} kernels and cannot run on this host; "
                           "convert with arch='x86' to run it here, or run it on the device it was built for.")
    arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    toolchain = toolchain or find(install_missing=True)
    with tempfile.TemporaryDirectory(prefix="edgekit-lite-run-") as tmp:
        input_files = []
        for index, array in enumerate(arrays):
            input_files.append(Path(tmp) / f"input{index}.npy")
            np.save(input_files[-1], np.ascontiguousarray(array))
        output_file = Path(tmp) / "output.npy"
        cmd = [str(toolchain.python), str(RUNNER), "run", "--nb", str(nb_path.resolve()),
               "--inputs", *map(str, input_files), "--output", str(output_file)]
        proc = _run(cmd, env=toolchain.environment(), timeout=timeout, check=False)
        if proc.returncode != 0 or not output_file.is_file():
            raise EdgekitError(
                f"Paddle Lite {toolchain.lite_version} could not run {nb_path} on this host "
                f"({_exit_text(proc.returncode)}); only .nb files optimized for x86 run here:\n{_tail(proc)}")
        return np.load(output_file)


# ---------------------------------------------------------------- installing

def install(progress: Progress | None = None, force: bool = False) -> ToolchainInfo:
    """Provision the managed toolchain (a no-op that re-verifies when already cached).

    Built in a temporary directory beside the final one and renamed into
    place, under a file lock so concurrent installs (test workers) download
    once. With `force`, a fresh copy replaces the cached one.
    """
    report = progress or (lambda step, done, total: None)
    root = toolchain_dir()
    root.parent.mkdir(parents=True, exist_ok=True)
    with _install_lock(root.parent / f".{TOOLCHAIN_DIRNAME}.lock"):
        if root.exists() and not force:
            report("Verifying cached Paddle Lite toolchain", 0, 1)
            problem = _verify(root)
            if problem is None:
                report("Verified cached Paddle Lite toolchain", 1, 1)
                return _managed_info(root)
            report(f"Cached toolchain is damaged ({problem}); reinstalling", 0, 1)
        _check_can_provision()
        staging = Path(tempfile.mkdtemp(prefix=f".{TOOLCHAIN_DIRNAME}.tmp-", dir=root.parent))
        try:
            _build(staging, report)
            _swap_into_place(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _managed_info(root)


def _check_can_provision() -> None:
    reason = None
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        reason = f"it needs Linux on x86_64 and this is {platform.system()} on {platform.machine()}"
    elif shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        reason = ("it downloads Debian packages with apt-get and unpacks them with dpkg-deb, "
                  "and this machine lacks them")
    elif _debian_keyring() is None:
        reason = ("apt must verify Debian bullseye's signatures and no Debian archive keyring was found "
                  f"({', '.join(map(str, DEBIAN_KEYRINGS))}; the `debian-archive-keyring` package provides it)")
    if reason:
        raise EdgekitError(f"edgekit cannot provision the Paddle Lite toolchain here: {reason}. "
                           + _BRING_YOUR_OWN)


def _debian_keyring() -> Path | None:
    return next((path for path in DEBIAN_KEYRINGS if path.is_file()), None)


def _debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses, else deb.debian.org."""
    if os.environ.get(MIRROR_ENV_VAR):
        return os.environ[MIRROR_ENV_VAR].rstrip("/")
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        try:
            lines = source.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.split("#", 1)[0]
            match = re.search(r"(https?://\S+/debian)/?(?:\s|$)", line)
            if match:
                return match.group(1)
    return DEFAULT_DEBIAN_MIRROR


def _build(staging: Path, report: Callable[[str, int, int], None]) -> None:
    total = 2 + len(WHEELS) + 3
    done = 0

    def step(text: str) -> None:
        nonlocal done
        report(text, done, total)
        done += 1

    downloads = staging / "downloads"
    downloads.mkdir()
    apt = _PrivateApt(staging / "apt", _debian_mirror(), _debian_keyring())
    step(f"Reading the Debian {DEBIAN_SUITE} package index from {apt.mirror}")
    apt.update()
    step(f"Downloading {len(DEBIAN_PACKAGES)} Debian packages (CPython 3.9 and the libraries it needs)")
    apt.download(DEBIAN_PACKAGES, downloads)  # one apt-get run: each run re-reads the whole index
    for pin in DEBIAN_PACKAGES:
        _check_sha256(downloads / pin.filename, pin)
    for pin in WHEELS:
        step(f"Downloading {pin.name} {pin.version} (cp39 wheel)")
        _pip_download(pin, downloads)
        _check_sha256(downloads / pin.filename, pin)

    step("Unpacking")
    for pin in DEBIAN_PACKAGES:
        _run(["dpkg-deb", "-x", str(downloads / pin.filename), str(staging / "prefix")], timeout=600)
    for pin in WHEELS:
        _install_wheel(downloads / pin.filename, staging / _SITE)
    shutil.rmtree(downloads)
    shutil.rmtree(staging / "apt")

    step("Compiling the toolchain's Python modules")
    final_root = toolchain_dir()
    env = _managed_env(staging)
    # Bytecode now, naming the final paths, so every later run starts ~1.3 s faster from a
    # read-only tree. Not checked: a module that does not compile only costs speed.
    _run([str(staging / _PYTHON_IN_PREFIX), "-m", "compileall", "-q", "-j", "0",
          "-s", str(staging), "-p", str(final_root),
          str(staging / "prefix/usr/lib/python3.9"), str(staging / _SITE)], env=env, timeout=1200, check=False)

    step("Checking that the toolchain imports paddlelite")
    proc = _run([str(staging / _PYTHON_IN_PREFIX), str(RUNNER), "probe"], env=env, timeout=300, check=False)
    if proc.returncode != 0:
        raise EdgekitError(f"The freshly built Paddle Lite toolchain does not start on this machine:\n"
                           f"{_tail(proc)}\n" + _BRING_YOUR_OWN)
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    manifest = {"name": "paddle-lite", "lite_version": probe["paddlelite"], "opt_version": probe["opt_version"],
                "python_version": probe["python_version"], "debian_mirror": apt.mirror,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "pins": _pins_as_dict(), "files": _record(staging)}
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    staging.chmod(0o755)  # mkdtemp made it private; the toolchain is as readable as any cache
    report("Paddle Lite toolchain ready", total, total)


def _swap_into_place(staging: Path, root: Path) -> None:
    if root.exists():
        trash = root.with_name(f".{root.name}.old-{os.getpid()}")
        os.rename(root, trash)
        os.rename(staging, root)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(staging, root)


class _PrivateApt:
    """apt-get with its own sources list, state and cache: reads the archive, installs nothing."""

    def __init__(self, home: Path, mirror: str, keyring: Path):
        self.home, self.mirror = home, mirror
        for sub in ("state/lists/partial", "cache/archives/partial", "etc"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        sources = home / "etc" / "sources.list"
        sources.write_text(f"deb [arch=amd64 signed-by={keyring}] {mirror} {DEBIAN_SUITE} main\n")
        self.options = [
            "-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", "Dir::Etc::Preferences=/dev/null", "-o", "Dir::Etc::PreferencesParts=/dev/null",
            "-o", f"Dir::State={home / 'state'}", "-o", "Dir::State::status=/dev/null",
            "-o", f"Dir::Cache={home / 'cache'}", "-o", "APT::Architecture=amd64",
            "-o", "APT::Architectures::=amd64", "-o", "Acquire::Languages=none",
            "-o", "Debug::NoLocking=1",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # As root apt drops to the _apt user, which cannot write into our 0700 temp dir.
            self.options += ["-o", "APT::Sandbox::User=root"]

    def update(self) -> None:
        proc = _run(["apt-get", *self.options, "update"], timeout=900, check=False)
        # apt-get exits 0 when the index could not be fetched ("W: Failed to fetch"): read its output.
        if proc.returncode != 0 or re.search(r"^(E:|Err:|W: GPG error|W: Failed to fetch)",
                                             proc.stdout + proc.stderr, re.M):
            raise EdgekitError(
                f"apt-get could not read the signed Debian {DEBIAN_SUITE} index from {self.mirror} "
                f"(set {MIRROR_ENV_VAR} to another Debian mirror if this one is unreachable):\n"
                f"{_tail(proc)}\n" + _BRING_YOUR_OWN)

    def download(self, pins: Sequence[Pinned], dest: Path) -> None:
        proc = _run(["apt-get", *self.options, "download", *(f"{pin.name}={pin.version}" for pin in pins)],
                    cwd=dest, timeout=1800, check=False)
        missing = [f"{pin.name} {pin.version}" for pin in pins if not (dest / pin.filename).is_file()]
        if proc.returncode != 0 or missing:
            raise EdgekitError(f"apt-get could not download {', '.join(missing) or 'the packages'} "
                               f"from {self.mirror}:\n{_tail(proc)}\n" + _BRING_YOUR_OWN)


def _pip_download(pin: Pinned, dest: Path) -> None:
    """Fetch one cp39 wheel through pip (and so through the user's index settings)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--implementation", "cp", "--python-version", "3.9",
           "--abi", "cp39", "--platform", "manylinux2014_x86_64", "--dest", str(dest),
           f"{pin.name}=={pin.version}"]
    proc = _run(cmd, timeout=1800, check=False)
    if proc.returncode != 0 or not (dest / pin.filename).is_file():
        found = sorted(p.name for p in dest.glob(f"{pin.name}-*.whl"))
        raise EdgekitError(
            f"pip could not download {pin.filename} from the package index"
            + (f" (it offered {found})" if found else "") + f":\n{_tail(proc)}\n" + _BRING_YOUR_OWN)


def _install_wheel(wheel: Path, site: Path) -> None:
    """Unpack a wheel into `site` the way pip would for a plain library (no scripts)."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            name = member.filename
            data_dir = re.match(r"[^/]+\.data/(purelib|platlib)/(.+)", name)
            if data_dir:
                name = data_dir.group(2)
            elif re.match(r"[^/]+\.data/", name):
                continue  # scripts/headers/data: the optimizer is driven from lite_runner.py
            if member.is_dir() or ".." in Path(name).parts or name.startswith("/"):
                continue
            target = site / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _check_sha256(path: Path, pin: Pinned) -> None:
    actual = _sha256(path)
    if actual != pin.sha256:
        raise EdgekitError(f"{path.name} does not match its pinned checksum (sha256 {actual}, "
                           f"expected {pin.sha256}); refusing to use it.")


def _pins_as_dict() -> dict:
    return {pin.filename: pin.sha256 for pin in (*DEBIAN_PACKAGES, *WHEELS)}


def _record(root: Path) -> dict[str, str]:
    """sha256 of every regular file (symlinks as 'link:<target>'), relative to root."""
    record = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            record[relative] = f"link:{os.readlink(path)}"
        elif path.is_file():
            record[relative] = _sha256(path)
    return record


def _verify(root: Path) -> str | None:
    """None when the cached toolchain is intact, else what is wrong with it."""
    manifest = _read_manifest(root)
    if manifest is None:
        return f"no {MANIFEST_NAME} for paddlelite {LITE_VERSION} with the expected pins"
    for relative, expected in manifest["files"].items():
        path = root / relative
        if expected.startswith("link:"):
            ok = path.is_symlink() and f"link:{os.readlink(path)}" == expected
        else:
            ok = path.is_file() and not path.is_symlink() and _sha256(path) == expected
        if not ok:
            return f"{relative} is missing or modified"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _install_lock(path: Path):
    import fcntl  # Linux only, like provisioning itself

    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], env: dict | None = None, cwd: Path | None = None, timeout: float = 600,
         check: bool = True) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True,
                              errors="replace", timeout=timeout)
    except FileNotFoundError as exc:
        raise EdgekitError(f"Cannot run {cmd[0]}: {exc}.") from exc
    except subprocess.TimeoutExpired as exc:
        raise EdgekitError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} did not finish within {timeout:.0f} s.") from exc
    if check and proc.returncode != 0:
        raise EdgekitError(f"{' '.join(cmd[:3])} failed (exit code {proc.returncode}):\n{_tail(proc)}")
    return proc


def _exit_text(returncode: int) -> str:
    if returncode < 0:  # Lite's fatal errors abort or crash rather than raise
        import signal

        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _tail(proc: subprocess.CompletedProcess, chars: int = 3000) -> str:
    text = "\n".join(part.strip() for part in (proc.stdout, proc.stderr) if part and part.strip())
    return text[-chars:] if text else "(no output)"
