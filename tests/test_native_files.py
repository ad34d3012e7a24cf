"""The native Lite runner where the transport has no stdin stream (adb's way), over the real sshd.

adb cannot stream a process's stdin reliably, so there each batch is pushed
as a request file, served by a fresh runner process from file to file, and
pulled back; bench runs the runner's own `time` mode. No phone is attached
here: these tests drive the same code over ssh with `streams_stdin` off, as
tests/test_validate.py does for the Python agent. Like tests/test_native_runner.py
they need a registered Lite runtime (the x86 runner takes its headers).
"""

import subprocess

import numpy as np
import pytest

from edgekit.bundle import read_manifest
from edgekit.devices import open_device
from edgekit.devices.base import DeviceJob
from edgekit.devices.ssh import SshTransport
from edgekit.errors import EdgekitError
from edgekit.toolchains import lite_runtime

from test_native_runner import _runtime, photos, x86_lite_bundle, x86_runner  # noqa: F401  (module fixtures)
from test_validate import start_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd-native-files"))
    yield server
    server.stop()


@pytest.fixture
def no_stdin_stream(monkeypatch):
    monkeypatch.setattr(SshTransport, "streams_stdin", False)


def _device(sshd):
    return open_device(sshd.url, work_dir=str(sshd.work_dir), ssh_options=sshd.options)


def test_nb_runs_from_pushed_files_and_equals_the_local_run(x86_runner, x86_lite_bundle, photos, sshd,
                                                            no_stdin_stream):
    job = DeviceJob(x86_lite_bundle, read_manifest(x86_lite_bundle), photos, batch=3)
    remote = _device(sshd).run(job)
    local = open_device("local").run(job)
    assert remote.runtime["runner"].startswith("edgekit native Lite runner") and not remote.partial
    assert any("one runner process per batch" in note for note in remote.notes)
    assert np.array_equal(remote.positions, local.positions)
    assert np.array_equal(remote.logits, local.logits)  # same kernels, same preprocessing: bit for bit
    copied = sorted(p.name for p in (sshd.work_dir / "native").rglob("*") if p.is_file())
    assert "edgekit-lite-runner" in copied and not [n for n in copied if n.endswith((".py", ".pyc"))]
    assert not list((sshd.work_dir / "native").glob("io-*")), "the exchange folder outlived the run"


def test_a_batch_whose_request_was_lost_is_pushed_and_run_again(x86_runner, x86_lite_bundle, sshd, tmp_path):
    from edgekit.devices.native_device import FileExchangeRunner, NativeRunner, push_native
    from edgekit.devices.remote import RemoteDevice

    device = _device(sshd)
    assert isinstance(device, RemoteDevice)
    pushed = push_native(device, x86_lite_bundle / "model.nb", read_manifest(x86_lite_bundle))
    flag = tmp_path / "lost-once"

    def losing_the_first_request(request, response):  # the first request vanishes before the runner reads it
        lose = f"if [ ! -e {flag} ]; then touch {flag}; rm -f {request}; fi; "
        return lose + pushed.command("serve", "1", stdin=request, stdout=response)

    batch = np.random.default_rng(1).normal(0, 1, (2, 3, 64, 64)).astype(np.float32)
    runner = FileExchangeRunner(device, pushed, 1, command=losing_the_first_request)
    streamed = NativeRunner(lambda: device.transport.command_argv(pushed.command("serve", "1")), device.address)
    try:
        outputs = runner(batch)
        expected = streamed(batch)
    finally:
        runner.close()
        streamed.close()
    assert flag.exists() and runner.restarts == 1
    assert np.array_equal(outputs, expected) and runner.last_seconds > 0


def test_a_runner_that_keeps_failing_is_a_clear_error(x86_runner, x86_lite_bundle, sshd):
    from edgekit.devices.native_device import FileExchangeRunner, push_native

    device = _device(sshd)
    pushed = push_native(device, x86_lite_bundle / "model.nb", read_manifest(x86_lite_bundle))
    runner = FileExchangeRunner(device, pushed, 1, retries=1, command=lambda request, response: "exit 7")
    with pytest.raises(EdgekitError, match="failed 2 times on a batch of 1"):
        runner(np.zeros((1, 3, 64, 64), np.float32))
    runner.close()


def test_bench_without_a_stdin_stream_uses_the_runners_time_mode(x86_runner, x86_lite_bundle, sshd,
                                                                 no_stdin_stream):
    from edgekit.bench import run as bench

    report = bench([str(x86_lite_bundle)], batch="1,2", iterations=4, duration=0.2, rounds=1, warmup=1,
                   device=sshd.url, device_dir=str(sshd.work_dir), ssh_options=sshd.options)
    assert [r.batch for r in report.records] == [1, 2]
    for record in report.records:
        assert any("fresh process" in note and "native Lite runner" in note for note in record.notes)
        assert record.runtime_version == "v2.13-rc" and record.latency.count >= 4 and record.latency.min_ms > 0


def test_time_mode_runs_at_least_the_asked_seconds(x86_runner, x86_lite_bundle):
    import json

    from edgekit.toolchains.native_runner import RUNNER_NAME

    argv = ["env", "-i", str(x86_runner / RUNNER_NAME), str(x86_lite_bundle / "model.nb"), "time", "1", "3", "64",
            "64", "1", "2", "1", "0.3"]
    record = json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout.splitlines()[-1])
    assert len(record["ms"]) >= 2 and sum(record["ms"]) >= 300


# ---------------------------------------------------------------- Android runtimes (no NDK or phone here)

def _library(tmp_path, name: str, needs: str) -> bytes:
    """A real shared library whose dynamic section needs `needs` (bionic's libc is `libc.so`, glibc's `libc.so.6`)."""
    (tmp_path / "stub.c").write_text("int stub(void) { return 0; }\n")
    (tmp_path / "lib.c").write_text("int stub(void); int answer(void) { return stub() + 42; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-nostdlib", f"-Wl,-soname,{needs}", "-o", str(tmp_path / needs),
                    str(tmp_path / "stub.c")], check=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-nostdlib", "-o", str(tmp_path / name), str(tmp_path / "lib.c"),
                    f"-L{tmp_path}", f"-l:{needs}"], check=True)
    return (tmp_path / name).read_bytes()


def test_a_library_that_needs_bionic_is_an_android_runtime(tmp_path):
    assert lite_runtime.library_platform(_library(tmp_path, "libphone.so", "libc.so")) == "android"
    assert lite_runtime.library_platform(_library(tmp_path, "libboard.so", "libc.so.6")) == "linux"


def test_an_android_runtime_needs_the_ndk_and_is_registered_apart(tmp_path, monkeypatch):
    from edgekit.toolchains.native_runner import android_ndk_for, build_runner

    phone = lite_runtime.LiteRuntime(arch="armv8", root=tmp_path, include=tmp_path, library=tmp_path / "x.so",
                                     companions=(), version="v2.13-rc", sha256="0" * 64, platform="android")
    assert phone.key == "android-armv8" and lite_runtime.LiteRuntime.from_dict(phone.to_dict()) == phone
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    with pytest.raises(EdgekitError, match="is for Android.*Set ANDROID_NDK_HOME to an NDK"):
        build_runner(phone)
    monkeypatch.setenv("ANDROID_NDK_HOME", str(tmp_path))
    assert android_ndk_for(phone) == tmp_path
    with pytest.raises(EdgekitError, match="has no aarch64-linux-android24-clang"):
        build_runner(phone)
