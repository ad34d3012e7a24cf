"""edgekit's native Lite runner (C++, light API): locally, over the real sshd, and under qemu-user.

The runner links a registered Lite runtime. None exists on any package
registry, so on a fresh machine these tests skip with the reason; set
EDGEKIT_LITE_RUNTIME to an `inference_lite_lib.*` folder (a Paddle Lite
release, or `edgekit toolchain build-lite-runtime`, see DEVELOPERS notes in the
README) to run them. The x86 runner takes that runtime's headers and the
managed toolchain's x86 light library, so it needs any registered runtime.
"""

import shutil
import subprocess

import numpy as np
import pytest

from edgekit import api
from edgekit.bundle import read_manifest
from edgekit.devices import open_device
from edgekit.devices.base import DeviceJob
from edgekit.toolchains import lite_runtime

from test_quantize import digits_model  # noqa: F401  (the digits-trained ResNet18 fixture, trained once)
from test_validate import start_sshd


def _runtime(arch: str):
    try:
        runtime = lite_runtime.find(arch)
    except Exception as exc:  # a broken registration is a failure, not a skip
        pytest.fail(f"the registered Lite runtimes cannot be read: {exc}")
    if runtime is None:
        needs = ("the x86 runner takes the light API's headers from a registered runtime; " if arch == "x86"
                 else f"no {arch} Paddle Lite runtime registered; ")
        pytest.skip(needs + f"set {lite_runtime.RUNTIME_ENV_VAR} to an inference_lite_lib.* folder (none is on "
                    "any package registry)")
    return runtime


@pytest.fixture(scope="module")
def x86_runner():
    from edgekit.toolchains.native_runner import build_runner

    return build_runner(_runtime("x86"))


@pytest.fixture(scope="module")
def x86_lite_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("x86lite") / "bundle"
    return api.build("SqueezeNet1_1", "x86-lite", out=out, num_classes=10, input_size=64).path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import cv2

    from edgekit.data.samples import sample_photos

    root = tmp_path_factory.mktemp("photos")
    paths = []
    for name, image in sample_photos().items():
        path = root / f"{name}.png"
        cv2.imwrite(str(path), image[:, :, ::-1])
        paths.append(path)
    return tuple(paths)


def test_x86_runner_equals_the_toolchain_python_path_bit_for_bit(x86_runner, x86_lite_bundle):
    from edgekit.native.runner import NativeRunner
    from edgekit.toolchains import paddle_lite
    from edgekit.toolchains.native_runner import RUNNER_NAME

    nb = x86_lite_bundle / "model.nb"
    batch = np.random.default_rng(0).normal(0, 1, (3, 3, 64, 64)).astype(np.float32)
    # An empty environment: no PATH, so no Python could be found even if the runner looked for one.
    argv = ["env", "-i", str(x86_runner / RUNNER_NAME), str(nb), "serve", "1"]
    runner = NativeRunner(lambda: argv, "this host")
    try:
        native = runner(batch)
        single = runner(batch[:1])
    finally:
        runner.close()
    expected = paddle_lite.run_nb(nb, batch)
    assert native.dtype == np.float32 and np.array_equal(native, expected)
    assert np.array_equal(single[0], native[0])
    info = subprocess.run(["env", "-i", str(x86_runner / RUNNER_NAME), str(nb), "info"], capture_output=True,
                          text=True, timeout=60)
    assert '"lite_version": "v2.13-rc"' in info.stdout
    timed = subprocess.run(["env", "-i", str(x86_runner / RUNNER_NAME), str(nb), "time", "1", "3", "64", "64", "2",
                            "5", "1"], capture_output=True, text=True, timeout=120)
    import json

    record = json.loads(timed.stdout.strip().splitlines()[-1])
    assert len(record["ms"]) == 5 and min(record["ms"]) > 0 and record["threads"] == 1


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd-native"))
    yield server
    server.stop()


def _ssh_device(sshd):
    return open_device(sshd.url, work_dir=str(sshd.work_dir), ssh_options=sshd.options)


def test_ssh_device_runs_nb_with_the_native_runner(x86_runner, x86_lite_bundle, photos, sshd):
    manifest = read_manifest(x86_lite_bundle)
    job = DeviceJob(x86_lite_bundle, manifest, photos, batch=2)
    remote = _ssh_device(sshd).run(job)
    local = open_device("local").run(job)
    assert remote.runtime["runner"].startswith("edgekit native Lite runner") and not remote.partial
    assert np.array_equal(remote.positions, local.positions)
    assert np.array_equal(remote.logits, local.logits)  # same kernels, same preprocessing: bit for bit
    # What was copied to the device: the runner and shared libraries, no Python anywhere.
    folder = sshd.work_dir / "native" / x86_runner.name
    copied = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert "edgekit-lite-runner" in copied and not [n for n in copied if n.endswith((".py", ".pyc"))]


def test_dropped_connection_restarts_the_runner_and_resends(x86_runner, x86_lite_bundle, photos, sshd):
    manifest = read_manifest(x86_lite_bundle)
    job = DeviceJob(x86_lite_bundle, manifest, photos, batch=1)
    killed = []

    def progress(phase, done, total, note):
        if phase == "run" and done == 1 and not killed:  # the device's runner dies after the first batch
            # This device's runner only (its command line names the device's model store).
            subprocess.run(["pkill", "-KILL", "-f", f"edgekit-lite-runner {sshd.work_dir}/store"], check=False)
            killed.append(True)

    run = _ssh_device(sshd).run(job, progress)
    local = open_device("local").run(job)
    assert killed and not run.partial and run.done == len(photos)
    assert any("restarted" in note for note in run.notes)
    assert np.array_equal(run.logits, local.logits)


# --- emulated ARM (qemu-user) ------------------------------------------------------------------------

def _needs_qemu(binary: str):
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed (apt install qemu-user)")


@pytest.mark.heavy
@pytest.mark.parametrize("model", ["ResNet18", "EfficientNetB0_small"])
def test_arm_lite_build_measures_parity_on_the_nb_under_emulation(model, tmp_path):
    _runtime("armv8")
    _needs_qemu("qemu-aarch64")
    from test_build import save_weights

    weights = save_weights(model, tmp_path / "w.pdparams")
    manifest = api.build(model, "arm-lite", weights=weights, out=tmp_path / "b", num_classes=10).manifest
    parity = manifest["parity"]
    assert parity["measured"] and parity["emulated"] and len(parity["images"]) == 2
    assert parity["max_rel_diff"] <= 1e-4 and parity["passed"]


@pytest.mark.parametrize("arch,device", [("armv8", "emu://aarch64"), ("armv7", "emu://armv7")])
def test_emulated_device_validates_an_nb(arch, device, tmp_path):
    _runtime(arch)
    _needs_qemu("qemu-aarch64" if arch == "armv8" else "qemu-arm")
    from edgekit.data.digits import make_digits_dataset
    from test_build import save_weights

    digits = make_digits_dataset(tmp_path / "digits", size=32)
    weights = save_weights("SqueezeNet1_1", tmp_path / "w.pdparams")
    bundle = api.build("SqueezeNet1_1", "arm-lite", weights=weights, out=tmp_path / "b", num_classes=10,
                       input_size=32, options={"arch": arch}).path
    report = api.validate(bundle, digits.val_list, device=device, limit=20, batch=10)
    assert report.record["device"]["emulated"] is True
    assert report.record["reference"]["max_abs_diff"] <= 1e-4
    assert any("numbers, not speed" in note for note in report.record["notes"])


def test_bench_over_ssh_times_the_nb_with_the_native_runner(x86_runner, x86_lite_bundle, sshd):
    from edgekit.bench import run as bench

    report = bench([str(x86_lite_bundle)], batch="1", iterations=5, duration=0.2, rounds=2, warmup=1,
                   device=sshd.url, device_dir=str(sshd.work_dir), ssh_options=sshd.options)
    (record,) = report.records
    assert any("native Lite runner" in note for note in record.notes)
    assert record.runtime_version == "v2.13-rc" and record.latency.count >= 10 and record.latency.median_ms > 0


def test_bench_refuses_an_emulated_device(x86_lite_bundle):
    from edgekit.bench import run as bench
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match="numbers but says nothing about its speed"):
        bench([str(x86_lite_bundle)], device="emu://aarch64")


@pytest.mark.heavy
def test_int8_arm_lite_nb_validates_within_max_drop_under_emulation(digits_model, tmp_path):
    _runtime("armv8")
    _needs_qemu("qemu-aarch64")
    import test_quantize

    digits = digits_model[1]
    bundle = test_quantize.build(digits_model, "arm-lite", tmp_path / "b", max_drop=0.02).path
    manifest = read_manifest(bundle)
    assert manifest["parity"]["emulated"] and manifest["parity"]["passed"]
    budget = manifest["recipe"]["passes"][0]["max_drop"]
    # The .nb itself, on 300 val images neither calibration nor accuracy control saw, against the FP32 source.
    report = api.validate(bundle, digits.val_list, device="emu://aarch64", limit=300, batch=50, max_drop=budget)
    assert report.record["device"]["emulated"] and report.passed, report.record["reference"]


@pytest.mark.heavy
def test_int8_accuracy_control_can_run_on_the_nb_itself(digits_model, tmp_path):
    _runtime("armv8")
    _needs_qemu("qemu-aarch64")
    import test_quantize

    result = test_quantize.build(digits_model, "arm-lite", tmp_path / "b", max_drop=0.05,
                                 options={"int8_eval": "emulated"},
                                 recipe_overrides={"ptq.holdout_images": 64, "ptq.calibration_images": 64})
    quant = read_manifest(result.path)["compression"]["quantization"]
    assert quant["evaluated_on"].startswith("the .nb itself") and quant["drop"] <= 0.05
