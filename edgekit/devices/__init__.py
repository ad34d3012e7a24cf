"""Where a bundle runs for validation: this machine, an ssh host, or an Android device over adb.

    from edgekit.devices import open_device
    device = open_device("ssh://pi@192.168.1.20", python="/home/pi/venv/bin/python")

What runs there is `edgekit/agent.py` beside `portable.py` and `openers.py` (onnx, openvino, paddle bundles), or
edgekit's native Lite runner for `.nb` bundles (`native_device.py`: ssh hosts without Python, and
`emu://aarch64`, qemu-user on this host); `transport.py` reaches the device.
"""

from __future__ import annotations

from edgekit.devices.base import DeviceJob, DeviceRun
from edgekit.errors import EdgekitError

DEVICE_FORMS = "local, ssh://HOST, ssh://USER@HOST:PORT, adb://SERIAL or emu://aarch64 (emu://armv7)"


def open_device(spec: str = "local", *, python: str | None = None, work_dir: str | None = None,
                ssh_options: dict[str, str] | None = None, timeout: float | None = None,
                stall_timeout: float = 600.0):
    """A device from its address; checked for form here, for reachability when it runs."""
    spec = (spec or "local").strip()
    if spec == "local":
        if python or work_dir or ssh_options:
            raise EdgekitError("--device-python, --device-dir and --ssh-option apply to ssh:// and adb:// "
                               "devices; the local device runs in this process.")
        from edgekit.devices.local import LocalDevice

        return LocalDevice(timeout=timeout)
    if spec.startswith("emu://"):
        if python or work_dir or ssh_options:
            raise EdgekitError("--device-python, --device-dir and --ssh-option apply to ssh:// and adb:// "
                               "devices; emu:// runs on this host.")
        from edgekit.devices.native_device import EmulatedDevice

        return EmulatedDevice(spec, timeout=timeout)
    from edgekit.devices.remote import RemoteDevice

    if spec.startswith("ssh://"):
        from edgekit.devices.ssh import SshTransport

        transport = SshTransport(spec, options=ssh_options)
    elif spec.startswith("adb://"):
        if ssh_options:
            raise EdgekitError("--ssh-option applies to ssh:// devices only.")
        from edgekit.devices.adb import AdbTransport

        transport = AdbTransport(spec)
    else:
        raise EdgekitError(f"--device {spec!r} is not a device address; expected {DEVICE_FORMS}.")
    return RemoteDevice(transport, python=python or "python3", work_dir=work_dir, timeout=timeout,
                        stall_timeout=stall_timeout)


__all__ = ["open_device", "DeviceJob", "DeviceRun", "DEVICE_FORMS"]
