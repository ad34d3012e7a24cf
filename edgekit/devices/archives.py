"""Moving files into a device's content-addressed store as tar archives (members named by sha256)."""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

from edgekit import children
from edgekit.devices.base import Progress
from edgekit.devices.transport import SHORT_TIMEOUT, tail
from edgekit.errors import EdgekitError

TAR_CHUNK_BYTES = 256 << 20  # per pushed archive where a transport cannot stream (adb)


def send_archives(device, to_send, run_dir: str, total: int, progress: Progress) -> None:
    """Send [(sha256, path, size)] into the device's store as tar archives named by content.

    Streamed into the agent's `unpack` where the transport streams stdin (ssh; one retry on a dropped
    connection), else as archives of bounded size pushed and then unpacked (adb).
    """
    sent = 0

    def write_tar(stream, items):
        nonlocal sent
        with tarfile.open(fileobj=stream, mode="w|") as archive:
            for sha, path, size in items:
                # The content under its sha256 name; symlinks (e.g. class folders of links) are followed.
                with open(path, "rb") as content:
                    info = tarfile.TarInfo(sha)
                    info.size = os.fstat(content.fileno()).st_size
                    info.mode = 0o644
                    archive.addfile(info, content)
                sent += size
                progress("push", sent, total, None)

    if device.transport.streams_stdin:
        for attempt in range(device.retries + 1):
            argv = device.transport.command_argv(device.agent_command("unpack", device.store))
            # Output to files, not pipes: a chatty remote cannot block us while we are still writing.
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                proc = children.popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err)
                try:
                    write_tar(proc.stdin, to_send)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
                try:
                    proc.wait(timeout=SHORT_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                err.seek(0)
                stderr = err.read().decode("utf-8", "replace")
            if proc.returncode == 0:
                return
            dropped = device.transport.connection_error(proc.returncode, stderr)
            if not dropped or attempt == device.retries:
                raise EdgekitError(f"Copying files to {device.address} failed "
                                   f"({dropped or f'exit code {proc.returncode}'}):\n{tail(stderr)}")
            sent = 0  # resend; files that did arrive are skipped by the checksum check afterwards
        return
    # Transports without a stdin stream (adb): archives of bounded size, pushed then unpacked.
    chunk: list = []
    chunk_bytes = 0
    for index, item in enumerate(to_send):
        chunk.append(item)
        chunk_bytes += item[2]
        if chunk_bytes >= TAR_CHUNK_BYTES or index == len(to_send) - 1:
            with tempfile.NamedTemporaryFile(suffix=".tar") as local_tar:
                write_tar(local_tar, chunk)
                local_tar.flush()
                remote_tar = f"{run_dir}/incoming.tar"
                device.transport.send_file(Path(local_tar.name), remote_tar, None)
                device.agent_json("unpack", device.store, remote_tar, what="unpacking copied files",
                                  timeout=3600)
            chunk, chunk_bytes = [], 0
