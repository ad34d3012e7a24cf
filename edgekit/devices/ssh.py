"""ssh://[user@]host[:port]: the system OpenSSH client, never asking questions.

BatchMode means a missing key fails at once instead of waiting at a password
prompt; ServerAlive turns a dead network into exit code 255 within ~15 s.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import weakref
from pathlib import Path
from urllib.parse import urlsplit

from edgekit import children
from edgekit.errors import EdgekitError
from edgekit.scratch import scratch_dir

_HOST = re.compile(r"[A-Za-z0-9_.%:\[\]][A-Za-z0-9_.%:\[\]-]*")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
SSH_EXIT_CONNECTION = 255  # what ssh exits with when the connection itself fails


def _stop_master(exit_argv: list[str], control_dir: str, master: list) -> None:
    try:
        children.run(exit_argv, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pass  # no master to stop, or one that no longer answers
    finally:
        if master and master[0].poll() is None:
            master[0].kill()
            master[0].wait()
        shutil.rmtree(control_dir, ignore_errors=True)


class SshTransport:
    default_dir = ".cache/edgekit-device"  # relative: ssh commands start in the login user's home
    streams_stdin = True

    def __init__(self, url: str, options: dict[str, str] | None = None, connect_timeout: int = 15):
        parts = urlsplit(url)
        if parts.scheme != "ssh" or not parts.hostname:
            raise EdgekitError(f"--device {url!r} is not an ssh address: ssh://HOST, ssh://USER@HOST or "
                               "ssh://USER@HOST:PORT (e.g. ssh://pi@192.168.1.20).")
        try:
            # None: ssh's own default (or the host's Port in ~/.ssh/config).
            self.port = parts.port
        except ValueError:
            raise EdgekitError(f"--device {url!r} has an invalid port.") from None
        self.user = parts.username
        self.host = parts.hostname
        # ssh reads a destination that starts with "-" as an option (-oProxyCommand=...): never pass one.
        if not _HOST.fullmatch(self.host) or (self.user is not None and not _USER.fullmatch(self.user)):
            raise EdgekitError(f"--device {url!r}: the user or host name has characters an ssh address cannot "
                               "hold (expected letters, digits, '.', '-', '_' and not starting with '-').")
        self.options = dict(options or {})
        self.connect_timeout = connect_timeout
        self._control_dir: str | None = None
        self._master: list[subprocess.Popen] = []  # the multiplexing master, once started
        self._master_failed = False
        self.address = (f"ssh://{self.user + '@' if self.user else ''}{self.host}"
                        f"{':' + str(self.port) if self.port else ''}")

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def base_argv(self) -> list[str]:
        # ssh keeps the first value it sees for an option: the user's --ssh-option values come first and win.
        return [*self._connection_argv(), *self._multiplexing(), *self._port_argv()]

    def _connection_argv(self) -> list[str]:
        argv = ["ssh"]
        for key, value in self.options.items():
            argv += ["-o", f"{key}={value}"]
        return argv + ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                       "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]

    def _port_argv(self) -> list[str]:
        return ["-p", str(self.port)] if self.port else []

    def _multiplexing(self) -> list[str]:
        """One TCP connection for the dozen commands of a validation, instead of a handshake each.

        The master is edgekit's own child (`ssh -M -N`, no ControlPersist daemon), so it dies with edgekit
        even on SIGKILL; a master lost with its connection is started again on the next command.
        """
        if self._control_dir is None:
            # Short path: a unix socket path is limited to ~100 bytes.
            self._control_dir = str(scratch_dir("ek-ssh", "/tmp" if os.path.isdir("/tmp") else None))
            exit_argv = ["ssh", *(f"-o{key}={value}" for key, value in self.options.items()),
                         "-o", f"ControlPath={self._control_path}", *self._port_argv(), "-O", "exit",
                         self.destination]
            # Also when a caller never calls close(): at garbage collection or interpreter exit.
            self._finalizer = weakref.finalize(self, _stop_master, exit_argv, self._control_dir, self._master)
        self._ensure_master()
        return ["-o", "ControlMaster=no", "-o", f"ControlPath={self._control_path}"]

    @property
    def _control_path(self) -> str:
        return f"{self._control_dir}/m"

    def _ensure_master(self) -> None:
        alive = self._master and self._master[0].poll() is None
        if alive or self._master_failed:
            return
        argv = [*self._connection_argv(), "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-o", f"ControlPath={self._control_path}",
                *self._port_argv(), "-N", self.destination]
        proc = children.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        self._master[:] = [proc]
        deadline = time.monotonic() + self.connect_timeout + 5
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(self._control_path):
                return
            time.sleep(0.02)
        # No master (refused key, unreachable host): commands connect on their own and report why;
        # a master that never came up is not tried again.
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._master_failed = True

    def close(self) -> None:
        """Stop the shared connection (if one was started) and remove its socket directory."""
        if self._control_dir is not None:
            self._finalizer()
            self._control_dir = None

    def command_argv(self, command: str) -> list[str]:
        return [*self.base_argv(), self.destination, "--", command]

    def check(self) -> None:
        if shutil.which("ssh") is None:
            raise EdgekitError("--device ssh://... needs the OpenSSH client `ssh`, which is not on PATH "
                               "(Debian/Ubuntu: apt install openssh-client).")

    def write_file(self, remote_path: str, data: bytes, timeout: float) -> None:
        proc = children.run(self.command_argv(f"cat > {shlex.quote(remote_path)}"), input=data,
                              capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise EdgekitError(f"Writing {remote_path} on {self.address} failed: {proc.stderr.decode().strip()}")

    def send_file(self, local_path: Path, remote_path: str, timeout: float | None) -> None:
        with open(local_path, "rb") as stream:
            proc = children.run(self.command_argv(f"cat > {shlex.quote(remote_path)}"), stdin=stream,
                                  capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise EdgekitError(f"Copying {local_path} to {self.address} failed: {proc.stderr.decode().strip()}")

    def read_file(self, remote_path: str, timeout: float) -> bytes:
        proc = children.run(self.command_argv(f"cat {shlex.quote(remote_path)}"), capture_output=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise EdgekitError(f"Reading {remote_path} on {self.address} failed: {proc.stderr.decode().strip()}")
        return proc.stdout

    def fatal_error(self, returncode: int | None, stderr: str) -> str | None:
        """Failures a retry cannot fix: refused keys, unknown host keys, unknown hosts."""
        if returncode != SSH_EXIT_CONNECTION:
            return None
        if "Permission denied" in stderr:
            return (f"{self.address} refused the login ({stderr.strip()}). edgekit runs ssh with BatchMode "
                    f"(no password prompts): install a key on the device (ssh-copy-id "
                    f"{' '.join(self._port_argv() + [self.destination])}) or pass one with "
                    "--ssh-option IdentityFile=PATH.")
        if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
            return (f"{self.address}: host key verification failed. Connect once with "
                    f"`ssh {' '.join(self._port_argv() + [self.destination])}` to accept its key, or fix "
                    "~/.ssh/known_hosts.")
        if "Could not resolve hostname" in stderr:
            return f"{self.address}: unknown host ({stderr.strip()})."
        return None

    def connection_error(self, returncode: int | None, stderr: str) -> str | None:
        if returncode == SSH_EXIT_CONNECTION:
            lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
            if not lines:
                return "ssh lost the connection"
            return lines[-1] if lines[-1].startswith("ssh:") else f"ssh: {lines[-1]}"
        return None
