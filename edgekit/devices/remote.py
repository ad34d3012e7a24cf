"""Validation on a machine reached over a transport (ssh, adb).

The protocol, whatever the transport:

1. copy the agent (agent.py + portable.py + openers.py) into the device's work dir and probe it:
   OS, CPU, Python, and whether numpy, OpenCV and the bundle's runtime import;
2. send the bundle's files and the images into a content-addressed store
   (BASE/store/<sha256>), skipping what is already there;
3. start the agent on a job file in a fresh run dir; it streams one line per
   batch (logits included), so the host holds every finished batch even if
   the connection drops; after a drop, reconnect once and resume at the first
   missing batch; if that fails too, what arrived is kept and marked partial;
4. pull the agent's result file and check it against what was streamed;
5. remove the run dir (the store stays: the next run sends nothing it holds).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgekit import agent
from edgekit.agent_files import AGENT_SCRIPT, agent_dirname, agent_sources
from edgekit.devices.archives import send_archives
from edgekit.devices.base import BatchCollector, DeviceJob, DeviceRun, Progress, no_progress
from edgekit.devices.transport import SHORT_TIMEOUT, Transport, tail, run_command, stream_command
from edgekit.errors import EdgekitError
from edgekit.hashing import file_sha256
from edgekit.targets import adapter_of



class RemoteDevice:
    """A device reached through `transport`, running the agent with its own `python`."""

    def __init__(self, transport: Transport, python: str = "python3", work_dir: str | None = None,
                 stall_timeout: float = 600.0, timeout: float | None = None, retries: int = 1):
        self.transport = transport
        self.python = python
        self.base = (work_dir or transport.default_dir).rstrip("/") or "/"
        self.stall_timeout = stall_timeout
        self.timeout = timeout
        self.retries = retries
        self.agent_dir = f"{self.base}/{agent_dirname()}"
        self.agent_path = f"{self.agent_dir}/{AGENT_SCRIPT}"

    @property
    def address(self) -> str:
        return self.transport.address

    @property
    def store(self) -> str:
        return f"{self.base}/store"

    # ---------------------------------------------------------- commands

    def agent_command(self, *args: str) -> str:
        """The shell command that runs the agent on the device (paths relative to the login dir work)."""
        return " ".join(shlex.quote(a) for a in (self.python, self.agent_path, *args))

    def _shell(self, command: str, *, input: bytes | None = None, timeout: float | None = SHORT_TIMEOUT,
               what: str) -> subprocess.CompletedProcess:
        """Run a short command; one retry when the connection drops; EdgekitError when it fails."""
        for attempt in range(self.retries + 1):
            proc = run_command(self.transport.command_argv(command), input=input, timeout=timeout)
            stderr = proc.stderr.decode("utf-8", "replace")
            if proc.returncode == 0:
                return proc
            fatal = self.transport.fatal_error(proc.returncode, stderr)
            if fatal:
                raise EdgekitError(fatal)
            dropped = self.transport.connection_error(proc.returncode, stderr)
            if dropped and attempt == self.retries:
                raise EdgekitError(f"On {self.address}, {what} failed, twice: {dropped}.")
            if not dropped:
                raise EdgekitError(f"On {self.address}, {what} failed (exit code {proc.returncode}):\n"
                                   f"{tail(stderr + proc.stdout.decode('utf-8', 'replace'))}")
        raise AssertionError("unreachable")

    def agent_json(self, *args: str, what: str, input: bytes | None = None, input_path: str | None = None,
                     timeout: float = SHORT_TIMEOUT):
        """Run an agent subcommand that prints JSON; `input` goes to its stdin, or where stdin cannot
        stream (adb), into `input_path` on the device, named as the last argument."""
        if input is not None and not self.transport.streams_stdin:
            self.transport.write_file(input_path, input, SHORT_TIMEOUT)
            args, input = (*args, input_path), None
        proc = self._shell(self.agent_command(*args), what=what, input=input, timeout=timeout)
        lines = [ln for ln in proc.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
        try:
            return json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            raise EdgekitError(f"On {self.address}, {what}: the runner printed no JSON "
                               f"(is {self.python} a Python 3.8+?):\n{tail(proc.stdout.decode())}") from None

    # ---------------------------------------------------------- steps

    def install_agent(self) -> None:
        mkdir = "mkdir -p " + " ".join(shlex.quote(d) for d in (self.base, self.store, f"{self.base}/runs",
                                                                 self.agent_dir))
        # The agent script goes last: its presence means the directory is complete.
        files = sorted(agent_sources().items(), key=lambda item: item[0] == AGENT_SCRIPT)
        if self.transport.streams_stdin:
            for name, content in files:
                quoted = shlex.quote(f"{self.agent_dir}/{name}")
                # Written under a temporary name: a dropped copy never leaves a truncated file behind.
                copy = f"cat > {quoted}.part && mv {quoted}.part {quoted}"
                self._shell(f"{mkdir} && {{ test -f {quoted} || {{ {copy}; }}; }}", input=content,
                            what="copying the agent")
        else:
            self._shell(mkdir, what="creating the work dir")
            for name, content in files:
                self.transport.write_file(f"{self.agent_dir}/{name}", content, SHORT_TIMEOUT)

    def probe(self, runtime: str) -> dict:
        """Install the agent and ask the device what it is and what it has."""
        self.install_agent()
        proc = run_command(self.transport.command_argv(self.agent_command("probe", runtime)))
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            fatal = self.transport.fatal_error(proc.returncode, stderr)
            if fatal:
                raise EdgekitError(fatal)
            dropped = self.transport.connection_error(proc.returncode, stderr)
            if dropped:
                raise EdgekitError(f"{self.address} did not answer the probe ({dropped}).")
            raise EdgekitError(f"On {self.address}, `{self.python}` could not start the runner (exit code "
                               f"{proc.returncode}); pass the device's Python 3.8+ with --device-python:\n"
                               f"{tail(stderr)}")
        try:
            info = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise EdgekitError(f"On {self.address}, the runner's probe printed no JSON:\n"
                               f"{tail(proc.stdout.decode() + stderr)}") from None
        if info.get("missing"):
            raise EdgekitError(f"{self.address} cannot run this validation with {info.get('python_executable')}: "
                               f"it lacks {'; '.join(info['missing'])}. Install those into the device's Python "
                               "(or point --device-python at one that has them).")
        return info

    def sync(self, files: dict[str, tuple[Path, int]], run_dir: str, progress: Progress) -> int:
        """Make the store hold every {sha256: (local path, size)}; returns the bytes sent."""
        wanted = json.dumps([[sha, size] for sha, (_, size) in files.items()]).encode()
        missing = self.agent_json("have", self.store, input=wanted, input_path=f"{run_dir}/wanted.json",
                                    what="checking which files the device already has")
        to_send = [(sha, *files[sha]) for sha in missing]
        total = sum(size for _, _, size in to_send)
        progress("push", 0, total, f"{len(files) - len(missing)} of {len(files)} files already on the device")
        if to_send:
            send_archives(self, to_send, run_dir, total, progress)
            still = self.agent_json("have", self.store, input=wanted, input_path=f"{run_dir}/wanted.json",
                                      what="checking the copied files")
            if still:
                raise EdgekitError(f"{len(still)} files did not arrive intact on {self.address} (checksum "
                                   "mismatch after copying); check the device's free space and retry.")
        return total

    def _write(self, remote_path: str, data: bytes, mkdir: bool = False) -> None:
        if self.transport.streams_stdin:
            quoted = shlex.quote(remote_path)
            prefix = f"mkdir -p {shlex.quote(os.path.dirname(remote_path))} && " if mkdir else ""
            self._shell(f"{prefix}cat > {quoted}", input=data, what=f"writing {remote_path}")
        else:
            if mkdir:
                self._shell(f"mkdir -p {shlex.quote(os.path.dirname(remote_path))}", what="creating a directory")
            self.transport.write_file(remote_path, data, SHORT_TIMEOUT)

    def cleanup(self, run_dir: str) -> str | None:
        """Remove a run dir; the reason it could not be removed, or None."""
        proc = run_command(self.transport.command_argv(f"rm -rf {shlex.quote(run_dir)}"))
        if proc.returncode != 0:
            return f"could not remove {run_dir} on {self.address}: {tail(proc.stderr.decode(), 300)}"
        return None

    # ---------------------------------------------------------- the run

    def run(self, job: DeviceJob, progress: Progress = no_progress) -> DeviceRun:
        from edgekit.targets import adapter_of

        self.transport.check()
        try:
            # .nb bundles: the native runner, no Python needed (streaming over ssh, from pushed files over adb)
            if adapter_of(job.manifest).runs_natively:
                from edgekit.devices.native_device import run_remote
                from edgekit.native.runner import NoLiteRuntime

                try:
                    return run_remote(self, job, progress)
                except NoLiteRuntime as missing:  # the agent with the device's own paddlelite, if it has one
                    run = self._run(job, progress)
                    run.notes.append(f"ran with the Python agent: {missing}")
                    return run
            return self._run(job, progress)
        finally:
            self.transport.close()

    def _run(self, job: DeviceJob, progress: Progress) -> DeviceRun:
        runtime = job.runtime
        probe = self.probe(runtime)
        adapter = adapter_of(job.manifest)
        lite_arch = adapter.kernel_arch(job.manifest)
        machine = probe["device"]["machine"]
        if adapter.why_not_on(job.manifest, machine):
            raise EdgekitError(f"{job.bundle} holds Paddle Lite {lite_arch} kernels, but {self.address} has a "
                               f"{machine} CPU ({probe['device']['cpu']}); validate it on a device with that "
                               "instruction set.")
        model_files, images, files = self._content(job, progress)
        run_dir = f"{self.base}/runs/{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        job_spec = {"protocol": agent.PROTOCOL, "runtime": runtime, "store": self.store,
                    "model_file": job.manifest["artifact"]["model_file"], "model_files": model_files,
                    "preprocessing": job.manifest["preprocessing"], "batch": job.batch, "threads": job.threads,
                    "workers": job.workers, "images": images, "lite_arch": lite_arch,
                    "precision_hint": job.manifest["artifact"].get("precision_hint")}
        notes: list[str] = []
        try:
            self._write(f"{run_dir}/job.json", json.dumps(job_spec).encode(), mkdir=True)
            self.sync(files, run_dir, progress)
            result = self._run_with_retry(job, run_dir, probe, progress, notes)
        finally:
            problem = self.cleanup(run_dir)
            if problem:
                notes.append(problem)
        return result

    def _content(self, job: DeviceJob, progress: Progress):
        """sha256 of the bundle's runtime files (from its verified manifest) and of every image."""
        files: dict[str, tuple[Path, int]] = {}
        model_files = {}
        for rel, meta in job.manifest["files"].items():
            if rel.startswith("app/"):
                continue  # the example app is for people, not for validation
            model_files[rel] = meta["sha256"]
            files[meta["sha256"]] = (job.bundle / rel, meta["size"])
        hashed = 0
        total = len(job.images)

        def hash_image(path: Path):
            try:
                return file_sha256(path), path.stat().st_size
            except OSError:  # missing or unreadable: the runner reports it as a failed image
                return None, 0

        images = []
        with ThreadPoolExecutor(max_workers=4) as pool:
            for path, (sha, size) in zip(job.images, pool.map(hash_image, job.images)):
                images.append(sha)
                if sha:
                    files[sha] = (path, size)
                hashed += 1
                if hashed % 256 == 0 or hashed == total:
                    progress("hash", hashed, total, None)
        return model_files, images, files

    def _run_with_retry(self, job: DeviceJob, run_dir: str, probe: dict, progress: Progress,
                        notes: list[str]) -> DeviceRun:
        total = len(job.images)
        num_classes = job.manifest["model"]["num_classes"]
        collector = BatchCollector()
        state = {"device": probe["device"], "runtime": {"name": job.runtime,
                                                         "version": probe["versions"].get(job.runtime, "")},
                 "seconds": 0.0, "infer_seconds": 0.0}
        retries_left = self.retries
        partial_reason = None
        while True:
            start = collector.done
            attempt = {"end": None, "error": None, "seconds": 0.0, "infer_seconds": 0.0,
                       "digest": hashlib.sha256(), "noise": []}

            def on_line(line: str) -> None:
                if not line.startswith(agent.EVENT_PREFIX):
                    attempt["noise"] = (attempt["noise"] + [line])[-20:]  # runtime log lines, kept for errors
                    return
                try:
                    event = json.loads(line[len(agent.EVENT_PREFIX):])
                except json.JSONDecodeError:
                    return  # a line cut by a dropped connection; its batch is redone
                kind = event.get("event")
                if kind == "start":
                    state["device"] = event["device"]
                    state["runtime"] = {"name": event["runtime"], "version": event["version"],
                                        "precision": event["precision"]}
                elif kind == "batch":
                    logits = None
                    if "logits" in event:
                        raw = base64.b64decode(event["logits"])
                        attempt["digest"].update(raw)
                        logits = np.frombuffer(raw, dtype="<f4").reshape(event["shape"])
                    collector.add(event["positions"], logits, event["failed"], event["done"])
                    attempt["seconds"], attempt["infer_seconds"] = event["seconds"], event["infer_seconds"]
                    progress("run", collector.done, total, None)
                elif kind == "end":
                    attempt["end"] = event
                elif kind == "error":
                    attempt["error"] = event["message"]

            argv = self.transport.command_argv(
                self.agent_command("run", f"{run_dir}/job.json", "--start", str(start)))
            try:
                returncode, stderr = stream_command(argv, on_line, stall_timeout=self.stall_timeout,
                                                    timeout=self.timeout)
            except KeyboardInterrupt:
                partial_reason = f"interrupted after {collector.done} of {total} images"
                break
            state["seconds"] += attempt["seconds"]
            state["infer_seconds"] += attempt["infer_seconds"]
            if attempt["end"] is not None:
                mismatch = self._check_result(run_dir, start, attempt, notes)
                if mismatch:
                    partial_reason = mismatch
                break
            if attempt["error"]:
                message = attempt["error"]
                if collector.done == 0:
                    raise EdgekitError(f"The runner on {self.address} stopped: {message}")
                partial_reason = f"the runner stopped after {collector.done} of {total} images: {message}"
                break
            dropped = self.transport.connection_error(returncode, stderr)
            if dropped and retries_left > 0:
                retries_left -= 1
                notes.append(f"connection dropped after {collector.done} of {total} images ({dropped}); "
                             f"retried once, resuming at image {collector.done}")
                progress("run", collector.done, total, notes[-1])
                continue
            why = dropped or (f"exit code {returncode}" if returncode is not None else "stopped")
            # ssh's own message is already in `dropped`; otherwise the runner's last words explain the end.
            detail = "" if dropped else tail(stderr + "\n" + "\n".join(attempt["noise"]), 600)
            if collector.done == 0:
                raise EdgekitError(f"Validation on {self.address} produced no results ({why})"
                                   + (f":\n{detail}" if detail else "."))
            if not dropped:
                what = "the run ended early"
            else:
                what = "the connection dropped again" if retries_left < self.retries else "the connection dropped"
            partial_reason = f"{what} after {collector.done} of {total} images ({why})"
            if detail:
                partial_reason += f": {detail}"
            break
        positions, logits = collector.arrays(num_classes)
        return DeviceRun(positions=positions, logits=logits, failures=collector.failures, done=collector.done,
                         seconds=state["seconds"], infer_seconds=state["infer_seconds"],
                         device={"kind": self.address.split("://")[0], "address": self.address, **state["device"]},
                         runtime=state["runtime"], partial=partial_reason is not None,
                         partial_reason=partial_reason, notes=notes)

    def _check_result(self, run_dir: str, start: int, attempt: dict, notes: list[str]) -> str | None:
        """Pull the runner's result file; it must describe exactly the logits that were streamed.

        Returns why the run cannot be trusted, or None."""
        remote = f"{run_dir}/result-{start}.json"
        try:
            result = json.loads(self.transport.read_file(remote, SHORT_TIMEOUT))
        except (EdgekitError, ValueError) as exc:
            notes.append(f"could not pull {remote} from {self.address} to cross-check the streamed logits: {exc}")
            return None
        if result.get("logits_sha256") != attempt["digest"].hexdigest():
            return (f"the runner's result file {remote} does not match the logits streamed from it (sha256 "
                    "differs): the transfer was corrupted, so these numbers are not trustworthy; run it again")
        return None
