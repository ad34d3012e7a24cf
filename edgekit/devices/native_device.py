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
from pathlib import Path

from edgekit import portable
from edgekit.devices.base import DeviceJob, DeviceRun, Progress, no_progress
from edgekit.devices.local import run_here
from edgekit.errors import EdgekitError
from edgekit.hashing import file_sha256
from edgekit.native.runner import (EMULATED_NOTE, EMULATOR_ALIASES, EMULATORS, MACHINE_ARCH, NativeRunner,
                                   emulated_runner, lite_runtime_for)


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


def push_native(device, model_file: Path, manifest: dict, progress: Progress = no_progress):
    """Copy the runner folder and the .nb to a RemoteDevice (each once, content-addressed).

    Returns (Lite runtime, the shell command that starts the runner's `serve` from the login directory
    without the THREADS argument, the device's `uname -m`)."""
    from edgekit.targets import adapter_of
    from edgekit.toolchains.native_runner import RUNNER_NAME, build_runner, runner_files

    if not device.transport.streams_stdin:
        raise EdgekitError(f"{device.address}: the native Lite runner streams tensors over the shell's stdin, "
                           "which edgekit's adb transport cannot do yet; validate .nb bundles over ssh:// "
                           "(or on emu://aarch64 for numbers).")
    machine = device._shell("uname -m", what="asking the CPU type").stdout.decode().strip()
    arch = MACHINE_ARCH.get(machine)
    why_not = adapter_of(manifest).why_not_on(manifest, machine)
    if arch is None or why_not:
        raise EdgekitError(f"{device.address} is a {machine} machine: {why_not or 'no Lite runtime for it'}.")
    runtime = lite_runtime_for(arch)
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
    command = (f"cd {shlex.quote(remote_folder)} && exec ./{RUNNER_NAME} "
               f"{shlex.quote(_from(remote_folder, model))} serve")
    return runtime, command, machine


def run_remote(device, job: DeviceJob, progress: Progress = no_progress) -> DeviceRun:
    """A Lite bundle on a RemoteDevice (ssh): copy the runner folder and the .nb, then stream batches."""
    runtime, command, machine = push_native(device, job.model_file, job.manifest, progress)
    command += f" {job.threads or 1}"
    runner = NativeRunner(lambda: device.transport.command_argv(command), device.address)
    info = {"kind": "ssh", "address": device.address, "machine": machine}
    return _run_with(runner, job, progress, device.timeout, info, runtime, _version_notes(runtime))


def _from(folder: str, path: str) -> str:
    """`path` as seen from inside `folder` (both relative to the login directory, or both absolute)."""
    return path if path.startswith("/") else "../" * len(Path(folder).parts) + path


def _remote_has(device, path: str) -> bool:
    proc = device._shell(f"test -f {shlex.quote(path)} && echo yes || echo no", what="checking the device's cache")
    return proc.stdout.decode().strip() == "yes"


def _send(device, local: Path, remote: str) -> None:
    device.transport.send_file(local, remote + ".part", None)
    device._shell(f"mv {shlex.quote(remote + '.part')} {shlex.quote(remote)}", what=f"storing {local.name}")
