"""Bench on a device reached over ssh:// or adb://, through edgekit.devices' transports.

What travels: the bundle's runtime files (into the device's content-addressed
store, as `edgekit validate` sends them; files already there are not sent
again), the device agent, and one input .npy per batch size. The timing loop
runs on the device beside the runtime, in the device's own Python; only
per-call nanoseconds come back, so neither the link nor this host is in a
sample. Over ssh one timing process per bundle stays up for the whole run
(the model loaded once, like the local harness); adb has no stdin stream a
script can rely on, so there every chunk is a fresh process that loads the
model and warms up before it times. Paddle Lite `.nb` bundles are timed by
edgekit's native runner instead (no Python on the device): one serving process
over ssh, one `time` process per chunk over adb.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np

from edgekit import children, openers
from edgekit.bench.host import HostInfo
from edgekit.bench.subjects import ServedSubject, Subject, actual_precision, input_batch, open_bundle
from edgekit.errors import EdgekitError
from edgekit.targets import adapter_of

TIMEOUT_S = 120.0


def _tail(text: str, chars: int = 1500) -> str:
    return text[-chars:].strip()


class DeviceSession:
    """One device for one bench call: a work dir there, the agent installed, bundles linked in."""

    def __init__(self, spec: str, python: str | None = None, work_dir: str | None = None,
                 ssh_options: dict[str, str] | None = None):
        from edgekit.devices import open_device

        self.device = open_device(spec, python=python, work_dir=work_dir, ssh_options=ssh_options)
        self.transport = self.device.transport
        self.address = self.transport.address
        self.transport.check()
        self.run_dir = f"{self.device.base}/runs/bench-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.device.install_agent()
        self.shell(f"mkdir -p {shlex.quote(self.run_dir)}", "creating the work dir")
        self.info: dict | None = None
        self._bundles = 0

    def shell(self, command: str, what: str, timeout: float = TIMEOUT_S) -> str:
        try:
            proc = children.run(self.transport.command_argv(command), capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EdgekitError(f"On {self.address}, {what} timed out after {timeout:.0f} s.") from None
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            fatal = self.transport.fatal_error(proc.returncode, stderr)
            if fatal:  # refused key, unknown host: the transport's message says what to do
                raise EdgekitError(f"On {self.address}, {what} failed: {fatal}")
            reason = self.transport.connection_error(proc.returncode, stderr) or f"exit code {proc.returncode}"
            raise EdgekitError(f"On {self.address}, {what} failed ({reason}):\n{_tail(stderr)}")
        return proc.stdout.decode("utf-8", "replace")

    def probe(self, runtime: str) -> dict:
        out = self.shell(self.device.agent_command("probe", runtime, "--no-images"), f"starting {self.device.python}")
        try:
            info = json.loads(out.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise EdgekitError(f"On {self.address}, `{self.device.python}` printed no probe result (is it a Python "
                               f"3.8+? pass the device's Python with --device-python):\n{_tail(out)}") from None
        if info["missing"]:
            raise EdgekitError(f"{self.address} cannot bench a {runtime} bundle with {info['python_executable']}: "
                               f"it lacks {'; '.join(info['missing'])}. Install those into the device's Python (or "
                               "point --device-python at one that has them).")
        self.info = info["device"]
        return info["device"]

    def host_info(self) -> HostInfo:
        """The device as the report's host: its CPU and ISA flags (as its probe reported them); load is not read."""
        info = self.info or {}
        return HostInfo(cpu_model=info.get("cpu", ""), machine=info.get("machine", ""),
                        cpus_usable=int(info.get("cores") or 1), isa_flags=tuple(info.get("isa_flags", ())),
                        load_average_1m=None)

    def push_bundle(self, root: Path, manifest: dict) -> str:
        """Send the bundle's runtime files (not its app/) and link them under their names; the model's path."""
        from edgekit.devices.base import no_progress

        files, names = {}, {}
        for rel, meta in manifest["files"].items():
            if not rel.startswith("app/"):
                files[meta["sha256"]] = (root / rel, meta["size"])
                names[rel] = meta["sha256"]
        self.device.sync(files, self.run_dir, no_progress)
        self._bundles += 1
        bundle_dir = f"{self.run_dir}/bundle{self._bundles}"
        # Absolute link targets: the work dir may be relative to the login directory.
        links = " && ".join(f"mkdir -p {shlex.quote(str(Path(bundle_dir, rel).parent))} && "
                            f"ln -sf \"$S\"/{sha} {shlex.quote(f'{bundle_dir}/{rel}')}" for rel, sha in names.items())
        self.shell(f"S=$(cd {shlex.quote(self.device.store)} && pwd) && {links}", "linking the bundle's files")
        return f"{bundle_dir}/{manifest['artifact']['model_file']}"

    def put_input(self, name: str, array: np.ndarray) -> str:
        import io

        buffer = io.BytesIO()
        np.save(buffer, array)
        path = f"{self.run_dir}/{name}.npy"
        self.transport.write_file(path, buffer.getvalue(), TIMEOUT_S)
        return path

    def open_subject(self, path: str | Path, label: str, *, threads: int | None, precision_hint: str | None,
                     warmup: int, end_to_end: bool) -> Subject:
        root, manifest = open_bundle(path)
        if end_to_end:
            raise EdgekitError("--end-to-end runs edgekit's own preprocessing in this process; on a device, bench "
                               "inference only (drop --end-to-end).")
        runtime = manifest["target"]["runtime"]
        adapter = adapter_of(manifest)
        # .nb bundles: the native runner where a Lite runtime is registered
        if adapter.runs_natively:
            from edgekit.native.runner import NoLiteRuntime

            try:
                return self._native_subject(root, manifest, label, threads, warmup)
            except NoLiteRuntime:
                pass  # the device's own Python with paddlelite, as before
        device = self.probe(runtime)
        arch = adapter.kernel_arch(manifest)
        if adapter.why_not_on(manifest, device["machine"]):
            raise EdgekitError(f"{root} holds Paddle Lite {arch} kernels, but {self.address} has a {device['machine']} "
                               f"CPU ({device['cpu']}); bench it on a device with that instruction set.")
        threads = threads or int(device.get("cores") or 1)
        model = self.push_bundle(root, manifest)
        # The bundle's own hint unless one was asked for, for this device's CPU ("-": OpenVINO's choice).
        hint = openers.bundle_precision_hint(manifest, precision_hint, device.get("isa_flags", [])) or "-"
        index = self._bundles

        def put_input(batch: int, array: np.ndarray) -> str:
            return self.put_input(f"input{index}-b{batch}", array)

        if self.transport.streams_stdin:
            argv = self.transport.command_argv(self.device.agent_command("serve", runtime, model, str(threads), hint))
            return ServedSubject(root, manifest, label, argv, threads, put_input, where=self.address)
        return OnceSubject(self, root, manifest, label, model, threads, hint, warmup, put_input)

    def _native_subject(self, root: Path, manifest: dict, label: str, threads: int | None, warmup: int) -> Subject:
        from edgekit.devices.native_device import device_runner, push_native

        pushed = push_native(self.device, root / manifest["artifact"]["model_file"], manifest)
        cores = self.shell("nproc 2>/dev/null || getconf _NPROCESSORS_ONLN", "counting CPUs").strip() or "1"
        cpu = self.shell("grep -m1 -E '^(model name|Hardware|Model)' /proc/cpuinfo | cut -d: -f2- || true",
                         "reading the CPU model").strip()
        self.info = {"machine": pushed.machine, "cores": int(cores) if cores.isdigit() else 1, "cpu": cpu}
        threads = threads or self.info["cores"]
        if not self.transport.streams_stdin:
            return NativeTimedSubject(self, root, manifest, label, pushed, threads, max(1, warmup))
        return NativeSubject(root, manifest, label, device_runner(self.device, pushed, threads),
                             pushed.runtime.version, threads)

    def close(self) -> None:
        try:
            self.shell(f"rm -rf {shlex.quote(self.run_dir)}", "removing the run dir")
        except EdgekitError:
            pass  # the store and a stale run dir stay; nothing the results depend on
        self.transport.close()


class OnceSubject(Subject):
    """adb: every chunk a fresh `agent.py once` that loads the model, warms up, then times."""

    def __init__(self, session: DeviceSession, root: Path, manifest: dict, label: str, model: str, threads: int,
                 hint: str, warmup: int, put_input):
        self.session, self.root, self.manifest, self.label = session, root, manifest, label
        self.runtime = manifest["target"]["runtime"]
        self.runtime_version, self.runtime_precision, self.threads = "", "", threads
        self.notes = ["each chunk ran in a fresh process on the device (adb has no stdin stream), warmed up "
                      f"with {warmup} iterations"]
        self._model, self._hint, self._warmup, self._put_input = model, hint, max(1, warmup), put_input
        self._input = None

    def prepare(self, batch: int) -> None:
        self._input = self._put_input(batch, input_batch(self.manifest, batch))

    def run(self, iterations: int, seconds: float) -> list[int]:
        out = self.session.shell(self.session.device.agent_command(
            "once", self.runtime, self._model, str(self.threads), self._hint, self._input, str(self._warmup),
            str(iterations), repr(float(seconds))), f"timing {self.label}", timeout=3600)
        reply = json.loads(out.strip().splitlines()[-1])
        self.runtime_version = reply.get("runtime_version", "")
        self.runtime_precision = actual_precision(self.manifest, reply["precision"], [])
        if not reply["threads_applied"]:
            self.threads = None
        return reply["ns"]


class NativeSubject(Subject):
    """A .nb timed by edgekit's native Lite runner on the device: the model loaded once, each sample the
    runner's own clock around the tensor copies and Run(), so the link is in no sample."""

    def __init__(self, root: Path, manifest: dict, label: str, runner, runtime_version: str, threads: int):
        self.root, self.manifest, self.label = root, manifest, label
        self.runtime = manifest["target"]["runtime"]
        self.runtime_version, self.runtime_precision, self.threads = runtime_version, "as stored", threads
        self.notes = ["timed by edgekit's native Lite runner (C++ light API) on the device"]
        self._runner, self._batch = runner, None

    def prepare(self, batch: int) -> None:
        self._batch = input_batch(self.manifest, batch)
        self._runner(self._batch)  # loads the shapes once; the harness warms up on top

    def run(self, iterations: int, seconds: float) -> list[int]:
        """At least `iterations` calls and at least `seconds` of measured time, as the agent's timing loop."""
        samples, spent = [], 0.0
        while len(samples) < iterations or spent < seconds:
            self._runner(self._batch)
            samples.append(int(self._runner.last_seconds * 1e9))
            spent += self._runner.last_seconds
        return samples

    def close(self) -> None:
        self._runner.close()


class NativeTimedSubject(Subject):
    """A .nb timed where the transport has no stdin stream (adb): each run is one `edgekit-lite-runner time`
    process that loads the model, warms up and times on the device's clock (on a fixed synthetic input)."""

    def __init__(self, session: DeviceSession, root: Path, manifest: dict, label: str, pushed, threads: int,
                 warmup: int):
        self.session, self.root, self.manifest, self.label = session, root, manifest, label
        self.runtime = manifest["target"]["runtime"]
        self.runtime_version, self.runtime_precision, self.threads = pushed.runtime.version, "as stored", threads
        self.notes = ["timed by edgekit's native Lite runner (C++ light API) on the device, each chunk in a fresh "
                      f"process warmed up with {warmup} iterations (the transport has no stdin stream)"]
        self._pushed, self._warmup, self._shape = pushed, warmup, None

    def prepare(self, batch: int) -> None:
        self._shape = input_batch(self.manifest, batch).shape

    def run(self, iterations: int, seconds: float) -> list[int]:
        command = self._pushed.command("time", *map(str, self._shape), str(self._warmup), str(iterations),
                                       str(self.threads), repr(float(seconds)))
        reply = json.loads(self.session.shell(command, f"timing {self.label}", timeout=3600).strip().splitlines()[-1])
        self.runtime_version = reply.get("lite_version", self.runtime_version)
        return [int(ms * 1e6) for ms in reply["ms"]]
