"""Provisioning the managed Paddle Lite toolchain: download, check, unpack, record, verify.

`install()` builds `<cache>/toolchains/paddle-lite-2.13rc0/` from Debian
bullseye's CPython 3.9 (`apt-get download` with a private sources list and
private state, signed-by the bullseye archive key; nothing is installed
system-wide, no root needed), unpacked with `dpkg-deb -x`, plus the cp39
`paddlelite` and `numpy` wheels fetched with `pip download`. Every download
is checked against a pinned sha256; the unpacked tree is recorded file by file
in its manifest so a later `install()` re-verifies it offline.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.hashing import file_sha256
from edgekit.scratch import scratch_dir
from edgekit.toolchains.lite_layout import (BRING_YOUR_OWN, LITE_VERSION, MANIFEST_NAME, MIRROR_ENV_VAR,
                                            PYTHON_IN_PREFIX, OPT_SCRIPT, SITE, TOOLCHAIN_DIRNAME, Progress,
                                            ToolchainInfo, managed_env, toolchain_dir)
from edgekit.toolchains.process import run as _run
from edgekit.toolchains.process import tail as _tail


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
# The x86 native runner links the wheel's lite.so, a CPython 3.9 extension module; Debian's libpython3.9
# provides the Python symbols it references (no interpreter ever starts). Fetched only for that runner.
LIBPYTHON = Pinned("libpython3.9", "3.9.2-1", "libpython3.9_3.9.2-1_amd64.deb",
                   "97647869e7e9db643a7eeab949b7d140f9a175814fcc94289be70d426aa5fd1a")
# The bullseye-only keyring first; the combined Debian keyring also holds the bullseye keys.
DEBIAN_KEYRINGS = (
    Path("/usr/share/keyrings/debian-archive-bullseye-automatic.gpg"),
    Path("/usr/share/keyrings/debian-archive-keyring.gpg"),
)
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"


# ---------------------------------------------------------------- the installed toolchain's manifest

def managed_info(root: Path) -> ToolchainInfo | None:
    """The managed toolchain at `root` when its manifest is this edgekit's (pins match), else None."""
    manifest = read_manifest(root)
    if manifest is None or not (root / PYTHON_IN_PREFIX).is_file():
        return None
    return ToolchainInfo(python=root / PYTHON_IN_PREFIX, source="managed",
                         python_version=manifest["python_version"], lite_version=manifest["lite_version"],
                         root=root)


def read_manifest(root: Path) -> dict | None:
    """`root`'s toolchain.json, or None when it is missing, unreadable or lists other pins."""
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    expected = pins_as_dict()
    if manifest.get("pins") != expected:  # written by another edgekit version: not ours to trust
        return None
    return manifest


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
            problem = verify(root)
            if problem is None:
                report("Verified cached Paddle Lite toolchain", 1, 1)
                return managed_info(root)
            report(f"Cached toolchain is damaged ({problem}); reinstalling", 0, 1)
        _check_can_provision()
        staging = scratch_dir(f".{TOOLCHAIN_DIRNAME}.tmp", root.parent)
        try:
            _build(staging, report)
            _swap_into_place(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return managed_info(root)


def libpython_dir() -> Path:
    return toolchain_dir().parent / f"libpython3.9-{LIBPYTHON.version}" / "usr" / "lib" / "x86_64-linux-gnu"


def install_libpython() -> Path:
    """Debian's libpython3.9 unpacked into the cache (pinned, like the toolchain); returns its lib directory."""
    target = libpython_dir()
    root = target.parents[2]
    root.parent.mkdir(parents=True, exist_ok=True)
    with _install_lock(root.parent / f".{root.name}.lock"):
        if (target / "libpython3.9.so.1.0").is_file():
            return target
        _check_can_provision()
        staging = scratch_dir(f".{root.name}.tmp", root.parent)
        try:
            keyring = _debian_keyring()
            apt = _PrivateApt(staging / "apt", _debian_mirror(), keyring)
            apt.update()
            apt.download([LIBPYTHON], staging)
            _check_sha256(staging / LIBPYTHON.filename, LIBPYTHON)
            _run(["dpkg-deb", "-x", str(staging / LIBPYTHON.filename), str(staging / "tree")], timeout=600)
            (staging / "tree").rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


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
                           + BRING_YOUR_OWN)


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
        _install_wheel(downloads / pin.filename, staging / SITE)
    shutil.rmtree(downloads)
    shutil.rmtree(staging / "apt")

    step("Compiling the toolchain's Python modules")
    final_root = toolchain_dir()
    env = managed_env(staging)
    # Bytecode now, naming the final paths, so every later run starts ~1.3 s faster from a
    # read-only tree. Not checked: a module that does not compile only costs speed.
    _run([str(staging / PYTHON_IN_PREFIX), "-m", "compileall", "-q", "-j", "0",
          "-s", str(staging), "-p", str(final_root),
          str(staging / "prefix/usr/lib/python3.9"), str(staging / SITE)], env=env, timeout=1200, check=False)

    step("Checking that the toolchain imports paddlelite")
    proc = _run([str(staging / PYTHON_IN_PREFIX), str(OPT_SCRIPT), "probe"], env=env, timeout=300, check=False)
    if proc.returncode != 0:
        raise EdgekitError(f"The freshly built Paddle Lite toolchain does not start on this machine:\n"
                           f"{_tail(proc)}\n" + BRING_YOUR_OWN)
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    manifest = {"name": "paddle-lite", "lite_version": probe["paddlelite"], "opt_version": probe["opt_version"],
                "python_version": probe["python_version"], "debian_mirror": apt.mirror,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "pins": pins_as_dict(), "files": record_files(staging)}
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
                f"{_tail(proc)}\n" + BRING_YOUR_OWN)

    def download(self, pins: Sequence[Pinned], dest: Path) -> None:
        proc = _run(["apt-get", *self.options, "download", *(f"{pin.name}={pin.version}" for pin in pins)],
                    cwd=dest, timeout=1800, check=False)
        missing = [f"{pin.name} {pin.version}" for pin in pins if not (dest / pin.filename).is_file()]
        if proc.returncode != 0 or missing:
            raise EdgekitError(f"apt-get could not download {', '.join(missing) or 'the packages'} "
                               f"from {self.mirror}:\n{_tail(proc)}\n" + BRING_YOUR_OWN)


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
            + (f" (it offered {found})" if found else "") + f":\n{_tail(proc)}\n" + BRING_YOUR_OWN)


def _install_wheel(wheel: Path, site: Path) -> None:
    """Unpack a wheel into `site` the way pip would for a plain library (no scripts)."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            name = member.filename
            data_dir = re.match(r"[^/]+\.data/(purelib|platlib)/(.+)", name)
            if data_dir:
                name = data_dir.group(2)
            elif re.match(r"[^/]+\.data/", name):
                continue  # scripts/headers/data: the optimizer is driven from lite_opt.py
            if member.is_dir() or ".." in Path(name).parts or name.startswith("/"):
                continue
            target = site / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _check_sha256(path: Path, pin: Pinned) -> None:
    actual = file_sha256(path)
    if actual != pin.sha256:
        raise EdgekitError(f"{path.name} does not match its pinned checksum (sha256 {actual}, "
                           f"expected {pin.sha256}); refusing to use it.")


def pins_as_dict() -> dict:
    return {pin.filename: pin.sha256 for pin in (*DEBIAN_PACKAGES, *WHEELS)}


def record_files(root: Path) -> dict[str, str]:
    """sha256 of every regular file (symlinks as 'link:<target>'), relative to root."""
    record = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            record[relative] = f"link:{os.readlink(path)}"
        elif path.is_file():
            record[relative] = file_sha256(path)
    return record


def verify(root: Path) -> str | None:
    """None when the cached toolchain is intact, else what is wrong with it."""
    manifest = read_manifest(root)
    if manifest is None:
        return f"no {MANIFEST_NAME} for paddlelite {LITE_VERSION} with the expected pins"
    for relative, expected in manifest["files"].items():
        path = root / relative
        if expected.startswith("link:"):
            ok = path.is_symlink() and f"link:{os.readlink(path)}" == expected
        else:
            ok = path.is_file() and not path.is_symlink() and file_sha256(path) == expected
        if not ok:
            return f"{relative} is missing or modified"
    return None


@contextmanager
def _install_lock(path: Path):
    import fcntl  # Linux only, like provisioning itself

    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
