"""Paddle Lite bundles on devices through the native runner (edgekit.native.runner): an emulated ARM
device, or an ssh host.

`emu://aarch64` (or `emu://armv7`) runs the runner under qemu-user on this
host with a registered ARM Lite runtime: the `.nb` itself computes, with
generic NEON kernels, so the numbers are the device's numbers and the times
are not (emulation is 10-100x slower than a board, and a phone would take its
dotprod/fp16 paths). On ssh hosts the runner folder and the model are copied
once (content-addressed) and started with nothing but a shell.
"""

from __future__ import annotations

import platform
import shlex
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import portable
from edgekit.devices.base import DeviceJob, DeviceRun, Progress, no_progress
from edgekit.devices.local import run_here
from edgekit.devices.transport import SHORT_TIMEOUT
from edgekit.errors import EdgekitError
from edgekit.hashing import file_sha256
from edgekit.native.runner import (EMULATED_NOTE, EMULATOR_ALIASES, EMULATORS, END, MACHINE_ARCH, RESPONSE_HEAD,
                                   RETRIES, NativeRunner, RunnerFailed, emulated_runner, lite_runtime_for,
                                   request_frame, response_head)
from edgekit.toolchains.native_runner import RUNNER_NAME


def _version_notes(runtime) -> list[str]:
    if runtime.version_matches:
        return []
    from edgekit.toolchains.lite_runtime import OPT_VERSION

    return [f"Lite runtime {runtime.version} differs from the optimizer's {OPT_VERSION} that wrote the .nb "
            "(2.12 runtimes warn on 2.13-rc models, 2.9/2.10 crash on them)"]


def _run_with(runner: NativeRunner, job: DeviceJob, progress: Progress, timeout, device: dict, runtime,
              notes: list[str]) -> DeviceRun:
    try:
        run = run_here(job, runner, progress, timeout, device=device,
                       runtime={"name": job.runtime, "version": runtime.version, "precision": "as stored",
                                "runner": "edgekit native Lite runner (C++)"})
    finally:
        runner.close()
    if runner.restarts:
        notes.append(f"the runner was restarted {runner.restarts} time(s) after a dropped connection")
    run.notes.extend(notes)
    return run


def _check_lite_bundle(job: DeviceJob, where: str) -> None:
    from edgekit.targets import adapter_of

    if not adapter_of(job.manifest).runs_natively:
        raise EdgekitError(f"{where} runs Paddle Lite (.nb) bundles only; this bundle is for "
                           f"{job.runtime}. Validate it locally or on an ssh device instead.")


class EmulatedDevice:
    def __init__(self, spec: str, timeout: float | None = None):
        name = spec.split("://", 1)[1].strip("/").lower()
        name = EMULATOR_ALIASES.get(name, name)
        if name not in EMULATORS:
            raise EdgekitError(f"--device {spec!r}: edgekit emulates {', '.join(f'emu://{n}' for n in EMULATORS)}.")
        self.name, self.timeout = name, timeout
        self.qemu = EMULATORS[name][1]
        self.address = f"emu://{name}"

    def run(self, job: DeviceJob, progress: Progress = no_progress) -> DeviceRun:
        from edgekit.targets import adapter_of

        _check_lite_bundle(job, self.address)
        kernels = adapter_of(job.manifest).kernel_arch(job.manifest)
        if kernels not in ("armv8", "armv7"):
            raise EdgekitError(f"{self.address} runs ARM .nb files; this bundle holds {kernels} kernels.")
        runner, runtime = emulated_runner(job.model_file, self.name, job.threads or 1)
        device = {"kind": "emulated", "address": self.address, "emulated": True, "machine": self.name,
                  "host": f"{platform.machine()} {portable.cpu_model()}", "emulator": self.qemu}
        return _run_with(runner, job, progress, self.timeout, device, runtime,
                         [EMULATED_NOTE, *_version_notes(runtime)])


@dataclass(frozen=True)
class PushedNative:
    """The runner folder and a .nb on a device (paths as the device's shell sees them)."""
    runtime: object  # the LiteRuntime the runner links
    folder: str
    model: str
    machine: str  # `uname -m`

    def command(self, *args: str, stdin: str | None = None, stdout: str | None = None) -> str:
        """A shell command that runs the runner on the model (`serve THREADS`, `time ...`), in place of the
        shell, or in a subshell where its stdin/stdout are files."""
        words = " ".join(shlex.quote(a) for a in (_from(self.folder, self.model), *args))
        redirect = "".join(f" {sign} {shlex.quote(_from(self.folder, path))}"
                           for sign, path in (("<", stdin), (">", stdout)) if path)
        # LD_LIBRARY_PATH as well as the rpath: Android's linker has honoured $ORIGIN only since API 24.
        run = f"cd {shlex.quote(self.folder)} && {'' if redirect else 'exec '}env LD_LIBRARY_PATH=.:libs "
        run += f"./{RUNNER_NAME} {words}{redirect}"
        return f"({run})" if redirect else run  # a subshell: what follows runs in the login directory


def push_native(device, model_file: Path, manifest: dict, progress: Progress = no_progress) -> PushedNative:
    """Copy the runner folder and the .nb to a RemoteDevice (each once, content-addressed)."""
    from edgekit.targets import adapter_of
    from edgekit.toolchains.native_runner import build_runner, runner_files

    # Android has getprop; its programs need bionic, so its runner is the NDK's build for an Android runtime.
    asked = "uname -m; command -v getprop >/dev/null 2>&1 && echo android || echo linux"
    machine, platform = (device._shell(asked, what="asking the CPU type").stdout.decode().split() + ["", ""])[:2]
    arch = MACHINE_ARCH.get(machine)
    why_not = adapter_of(manifest).why_not_on(manifest, machine)
    if arch is None or why_not:
        raise EdgekitError(f"{device.address} is a {machine} machine: {why_not or 'no Lite runtime for it'}.")
    runtime = lite_runtime_for(arch, platform)
    folder = build_runner(runtime)
    remote_folder = f"{device.base}/native/{folder.name}"
    progress("push", 0, 1, "native runner and model")
    if not _remote_has(device, f"{remote_folder}/{RUNNER_NAME}"):
        files = runner_files(folder)
        dirs = sorted({str(Path(remote_folder) / p.relative_to(folder).parent) for p in files})
        device._shell("mkdir -p " + " ".join(shlex.quote(d) for d in dirs), what="creating the runner folder")
        # The runner itself goes last: its presence means the folder is complete.
        for path in sorted(files, key=lambda p: p.name == RUNNER_NAME):
            _send(device, path, f"{remote_folder}/{path.relative_to(folder)}")
        device._shell(f"chmod +x {shlex.quote(remote_folder + '/' + RUNNER_NAME)}", what="marking the runner")
    model = f"{device.base}/store/{file_sha256(model_file)}.nb"
    if not _remote_has(device, model):
        device._shell(f"mkdir -p {shlex.quote(device.base + '/store')}", what="creating the model store")
        _send(device, model_file, model)
    progress("push", 1, 1, None)
    return PushedNative(runtime, remote_folder, model, machine)


def device_runner(device, pushed: PushedNative, threads: int):
    """`runner(batch) -> outputs` on a RemoteDevice: one streaming runner (ssh), or one per batch from files (adb)."""
    if device.transport.streams_stdin:
        command = pushed.command("serve", str(threads))
        return NativeRunner(lambda: device.transport.command_argv(command), device.address)
    return FileExchangeRunner(device, pushed, threads)


class FileExchangeRunner:
    """The native runner where the transport has no stdin stream (adb): each batch is pushed as a request file,
    served from file to file by a fresh runner process (the model loads once per batch), and pulled back."""

    def __init__(self, device, pushed: PushedNative, threads: int, retries: int = RETRIES,
                 command=None):
        self.device, self.retries = device, retries
        self.command = command or (lambda stdin, stdout: pushed.command("serve", str(threads), stdin=stdin,
                                                                         stdout=stdout))
        self.io_dir = f"{device.base}/native/io-{uuid.uuid4().hex[:12]}"
        self.restarts, self.device_seconds, self.last_seconds = 0, 0.0, 0.0
        self._batches = 0
        self._made = False

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        for attempt in range(self.retries + 1):
            try:
                return self._exchange(batch)
            # A dropped link, a runner that died, a reply cut short (old adb reports no exit status): again.
            except (EdgekitError, EOFError) as exc:
                if attempt == self.retries:
                    raise RunnerFailed(f"The native Lite runner on {self.device.address} failed "
                                       f"{attempt + 1} times on a batch of {len(batch)}: {exc}") from None
                self.restarts += 1
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def _exchange(self, batch: np.ndarray) -> np.ndarray:
        if not self._made:
            self.device._shell(f"mkdir -p {shlex.quote(self.io_dir)}", what="creating the runner's exchange folder")
            self._made = True
        self._batches += 1
        request, response = (f"{self.io_dir}/{self._batches}.{ext}" for ext in ("in", "out"))
        self.device._write(request, request_frame(batch) + END)
        run = f"{self.command(request, response)}; status=$?; rm -f {shlex.quote(request)}; exit $status"
        self.device._shell(run, what=f"running a batch of {len(batch)}", timeout=self.device.timeout or 3600)
        data = self.device.transport.read_file(response, SHORT_TIMEOUT)
        rows, cols, seconds = response_head(data[:RESPONSE_HEAD], self.device.address, len(batch))
        if len(data) != RESPONSE_HEAD + rows * cols * 4:
            raise EdgekitError(f"the runner's reply holds {len(data)} bytes, not {RESPONSE_HEAD + rows * cols * 4}")
        self.device_seconds += seconds
        self.last_seconds = seconds
        return np.frombuffer(data[RESPONSE_HEAD:], "<f4").reshape(rows, cols).copy()

    def close(self) -> None:
        if self._made:
            self._made = False
            try:
                self.device._shell(f"rm -rf {shlex.quote(self.io_dir)}", what="removing the exchange folder")
            except EdgekitError:
                pass  # a leftover folder of request files; nothing a result depends on


def run_remote(device, job: DeviceJob, progress: Progress = no_progress) -> DeviceRun:
    """A Lite bundle on a RemoteDevice (ssh, adb): copy the runner folder and the .nb, then run the batches."""
    pushed = push_native(device, job.model_file, job.manifest, progress)
    runner = device_runner(device, pushed, job.threads or 1)
    info = {"kind": device.address.split("://", 1)[0], "address": device.address, "machine": pushed.machine}
    notes = _version_notes(pushed.runtime)
    if isinstance(runner, FileExchangeRunner):
        notes.append("one runner process per batch, from pushed files (the transport has no stdin stream)")
    return _run_with(runner, job, progress, device.timeout, info, pushed.runtime, notes)


def _from(folder: str, path: str) -> str:
    """`path` as seen from inside `folder` (both relative to the login directory, or both absolute)."""
    return path if path.startswith("/") else "../" * len(Path(folder).parts) + path


def _remote_has(device, path: str) -> bool:
    proc = device._shell(f"test -f {shlex.quote(path)} && echo yes || echo no", what="checking the device's cache")
    return proc.stdout.decode().strip() == "yes"


def _send(device, local: Path, remote: str) -> None:
    device.transport.send_file(local, remote + ".part", None)
    device._shell(f"mv {shlex.quote(remote + '.part')} {shlex.quote(remote)}", what=f"storing {local.name}")
