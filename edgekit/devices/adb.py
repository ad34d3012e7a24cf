"""adb://SERIAL: an Android device through the `adb` command-line tool.

adb has no stdin stream a script can rely on across versions, so files travel
with `adb push`/`adb pull` and commands run with `adb -s SERIAL shell`.
The device's Python is typically Termux's: pass it with --device-python
(e.g. /data/data/com.termux/files/usr/bin/python). Paddle Lite `.nb` bundles
need no Python: edgekit's native runner serves them from pushed files
(edgekit.devices.native_device).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from edgekit import children
from edgekit.errors import EdgekitError
from edgekit.scratch import temporary_dir

# What adb prints when the device or its connection goes away mid-command.
_DROPPED = re.compile(r"device offline|no devices/emulators found|device '[^']*' not found|protocol fault|"
                      r"error: closed|connection reset|device still authorizing", re.IGNORECASE)


class AdbTransport:
    default_dir = "/data/local/tmp/edgekit"
    streams_stdin = False

    def __init__(self, url: str, adb: str | None = None):
        parts = urlsplit(url)
        serial = parts.netloc or parts.path.lstrip("/")
        if parts.scheme != "adb" or not serial:
            raise EdgekitError(f"--device {url!r} is not adb://SERIAL (the serial `adb devices` lists, "
                               "e.g. adb://R58M123ABC or adb://192.168.1.30:5555).")
        self.serial = serial
        self.adb = adb or "adb"
        self.address = f"adb://{serial}"

    def adb_argv(self, *args: str) -> list[str]:
        return [self.adb, "-s", self.serial, *args]

    def command_argv(self, command: str) -> list[str]:
        return self.adb_argv("shell", command)

    def _adb_path(self) -> str:
        found = shutil.which(self.adb)
        if found is None:
            raise EdgekitError(f"--device {self.address} needs the Android `adb` tool, which is not on PATH. "
                               "Install Android platform-tools (Debian/Ubuntu: apt install adb) and enable USB "
                               "debugging on the device.")
        return found

    def list_devices(self) -> dict[str, str]:
        """{serial: state} as `adb devices` reports them (state: device, offline, unauthorized, ...)."""
        proc = children.run([self._adb_path(), "devices"], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise EdgekitError(f"`adb devices` failed (exit code {proc.returncode}): {proc.stderr.strip()}")
        devices = {}
        for line in proc.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 2 and not line.startswith(("List of devices", "*")):
                devices[fields[0]] = fields[1]
        return devices

    def check(self) -> None:
        devices = self.list_devices()
        state = devices.get(self.serial)
        if state == "device":
            return
        attached = ", ".join(f"{s} ({st})" for s, st in devices.items()) or "none"
        if state == "unauthorized":
            raise EdgekitError(f"{self.address} has not authorized this computer: accept the USB debugging "
                               "prompt on the device, then retry.")
        if state is not None:
            raise EdgekitError(f"{self.address} is {state}, not ready (adb devices: {attached}).")
        raise EdgekitError(f"{self.address} is not listed by `adb devices` (attached: {attached}). Connect the "
                           "device with USB debugging on, or `adb connect HOST:PORT` for a network device.")

    def _run(self, argv: list[str], timeout: float | None, what: str) -> subprocess.CompletedProcess:
        try:
            proc = children.run(argv, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EdgekitError(f"{what} on {self.address} timed out after {timeout:.0f} s.") from None
        if proc.returncode != 0:
            raise EdgekitError(f"{what} on {self.address} failed: "
                               f"{(proc.stderr or proc.stdout).decode('utf-8', 'replace').strip()}")
        return proc

    def send_file(self, local_path: Path, remote_path: str, timeout: float | None) -> None:
        self._run(self.adb_argv("push", str(local_path), remote_path), timeout, f"adb push {local_path.name}")

    def write_file(self, remote_path: str, data: bytes, timeout: float) -> None:
        with temporary_dir("edgekit-adb") as tmp:
            local = Path(tmp) / os.path.basename(remote_path)
            local.write_bytes(data)
            self.send_file(local, remote_path, timeout)

    def read_file(self, remote_path: str, timeout: float) -> bytes:
        with temporary_dir("edgekit-adb") as tmp:
            local = Path(tmp) / "pulled"
            self._run(self.adb_argv("pull", remote_path, str(local)), timeout, f"adb pull {remote_path}")
            return local.read_bytes()

    def fatal_error(self, returncode: int | None, stderr: str) -> str | None:
        if "unauthorized" in stderr:
            return f"{self.address} has not authorized this computer: accept the USB debugging prompt."
        return None

    def connection_error(self, returncode: int | None, stderr: str) -> str | None:
        if returncode in (0, None):
            return None
        match = _DROPPED.search(stderr)
        return f"adb: {match.group(0)}" if match else None

    def close(self) -> None:
        pass  # adb keeps no per-validation connection

    def describe_command(self, command: str) -> str:
        return shlex.join(self.command_argv(command))
