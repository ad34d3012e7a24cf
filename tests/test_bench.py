"""edgekit bench: records from real runtimes, interleaving, views, the TensorRT path's parsing and errors."""

from __future__ import annotations

import csv
import fcntl
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit import api
from edgekit.bench import parse_batches
from edgekit.bench.host import host_info
from edgekit.portable import timed_loop
from edgekit.bench.stats import UNSTABLE_CV, LatencyStats
from edgekit.cli import app
from edgekit.errors import EdgekitError

runner = CliRunner()
MODEL = "SqueezeNet1_1"
# Short runs: the suite checks the harness, not this machine's speed.
QUICK = {"iterations": 4, "rounds": 2, "warmup": 1}


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory, worker_id) -> Path:
    """One directory for every xdist worker of this session, so each bundle is built once."""
    base = tmp_path_factory.getbasetemp()
    return (base if worker_id == "master" else base.parent) / "bench-bundles"


@pytest.fixture(scope="session")
def bundle(shared_dir):
    """bundle(target) -> a small SqueezeNet1_1 bundle (10 classes, 64x64), built once per session."""

    def get(target: str) -> Path:
        """`target`, or `target`-int8: post-training INT8 calibrated on digits (random-init weights, any drop
        accepted: latency does not depend on weight values)."""
        shared_dir.mkdir(parents=True, exist_ok=True)
        out = shared_dir / f"{MODEL}-{target}"
        with open(shared_dir / f"{target}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits for the build instead of repeating it
            if not (out / "edgekit.json").is_file():
                if target == "x86-lite":
                    from edgekit.toolchains import paddle_lite

                    try:
                        paddle_lite.find(install_missing=False)
                    except EdgekitError as exc:
                        pytest.skip(f"Paddle Lite toolchain not installed: {exc}")
                if target.endswith("-int8"):
                    from edgekit.data.digits import make_digits_dataset

                    digits = make_digits_dataset(shared_dir / "digits", size=64)
                    api.build(MODEL, target.removesuffix("-int8"), out=out, num_classes=10, input_size=64,
                              recipe="ptq-int8", calib=digits.train_list, calib_limit=64, max_drop=1.0,
                              recipe_overrides={"ptq.calibration_images": 32, "ptq.holdout_images": 32})
                else:
                    api.build(MODEL, target, out=out, num_classes=10, input_size=64)
        return out

    return get


def _check_record(r, runtime: str, batch: int):
    d = r.to_dict()
    assert d["runtime"] == runtime and d["batch"] == batch and d["model"] == MODEL
    assert d["input_shape"] == [batch, 3, 64, 64]
    assert 0 < d["min_ms"] <= d["median_ms"] <= d["p90_ms"] <= d["p99_ms"] <= d["max_ms"]
    assert d["min_ms"] <= d["mean_ms"] <= d["max_ms"]
    assert d["iterations"] == QUICK["iterations"] and d["rounds"] == QUICK["rounds"]
    assert d["throughput_ips"] == pytest.approx(batch * 1000 / r.latency.mean_ms, rel=1e-3)
    assert d["cv"] >= 0 and d["unstable"] == (r.latency.cv > UNSTABLE_CV)
    assert d["cpu_model"] and d["device"] == "local" and d["end_to_end"] is False
    assert d["runtime_version"] and d["runtime_precision"] in ("f32", "bf16")
    # GFLOP/s from edgekit's own count at the bundle's 64x64 input, not the card's 224x224 figure.
    assert "64x64" in d["flops_source"] and 0 < d["flops_g_per_image"] < 0.2
    assert d["achieved_gflops"] == pytest.approx(d["flops_g_per_image"] * d["throughput_ips"], rel=1e-2)


# ---------------------------------------------------------------- CPU runtimes, real runs

@pytest.mark.parametrize("target,runtime", [("onnx", "onnxruntime"), ("paddle", "paddle-inference"),
                                            ("x86-lite", "paddle-lite")])
def test_records_from_each_cpu_runtime(bundle, target, runtime):
    report = api.bench(bundle(target), batch="1,2", **QUICK)
    assert report.kind == "cpu" and [r.batch for r in report.records] == [1, 2]
    for r in report.records:
        _check_record(r, runtime, r.batch)
        if runtime == "paddle-lite":
            assert r.runtime_precision == "f32"
        else:
            assert r.threads == host_info().cpus_usable  # every usable CPU, passed explicitly


def test_openvino_reports_the_precision_it_actually_ran(bundle):
    path = bundle("openvino")
    # edgekit asks OpenVINO for true f32 everywhere (build parity, validate, apps, bench) unless told otherwise.
    unhinted = api.bench(path, **QUICK).records[0]
    _check_record(unhinted, "openvino", 1)
    assert unhinted.runtime_precision == "f32"
    # OpenVINO's own default on a CPU with native bf16 is bf16; elsewhere f32. The record must say which.
    own = api.bench(path, precision_hint="default", **QUICK).records[0]
    assert own.runtime_precision == ("bf16" if host_info().has_bf16 else "f32")


def test_bundles_are_interleaved_round_by_round_and_compared(bundle):
    onnx, openvino = bundle("onnx"), bundle("openvino")
    report = api.bench([onnx, openvino], batch="1,2", iterations=6, rounds=3, warmup=1, precision_hint="f32",
                       peak=True)
    labels = [onnx.name, openvino.name]
    for batch in (1, 2):
        chunks = [c for c in report.schedule if c.batch == batch]
        # Every round runs every bundle once, and the order rotates so no bundle always goes first.
        assert [c.round for c in chunks] == [0, 0, 1, 1, 2, 2]
        assert [c.label for c in chunks] == [labels[0], labels[1], labels[1], labels[0], labels[0], labels[1]]
        assert all(c.iterations == 2 for c in chunks)
    by_key = {(r.label, r.batch): r for r in report.records}
    assert all(r.latency.count == 6 for r in report.records)
    assert [(r["batch"], r["label"], r["baseline"]) for r in report.ratios] == [(1, labels[1], labels[0]),
                                                                               (2, labels[1], labels[0])]
    for ratio in report.ratios:
        expected = by_key[(labels[1], ratio["batch"])].latency.median_ms / by_key[(labels[0], ratio["batch"])].latency.median_ms
        assert ratio["latency_ratio"] == pytest.approx(expected, rel=1e-3)
    # --peak: a measured compute peak per (runtime, precision), the faster of a MatMul and a convolution
    # chain, and each record's share of it.
    assert {(p["runtime"], p["precision"]) for p in report.peaks} == {("onnxruntime", "f32"), ("openvino", "f32")}
    for r in report.records:
        assert r.peak_gflops > 0 and (r.peak_source.startswith("1024x1024x1024 MatMul in " + r.runtime) or
                                      r.peak_source.startswith("8 x 3x3 256->256 at 28x28 convolution chain in "
                                                               + r.runtime)), r.peak_source
        assert r.to_dict()["fraction_of_peak"] == pytest.approx(r.achieved_gflops / r.peak_gflops, rel=1e-2)


# ---------------------------------------------------------------- INT8 GEMM peak and the physical peak

@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("conv", [False, True], ids=["matmul", "conv-chain"])
def test_int8_peaks_are_measured_in_integer_kernels(runtime, conv):
    from edgekit.bench.peak import measure_peak

    peak = measure_peak(runtime, "int8", threads=2, seconds=0.05, n=256, conv=conv)
    assert peak.gflops > 0 and peak.unit == "GOP/s"
    assert peak.gemm == ("8 x 3x3 256->256 at 28x28" if conv else "256x256x256")
    # The runtime's own account of what ran the MatMul / convolutions: an integer kernel, or this is no INT8 peak.
    assert peak.integer_kernel is True, peak.kernel
    assert (("QLinearConv" if conv else "QLinearMatMul") in peak.kernel if runtime == "onnxruntime" else
            "runtimePrecision u8" in peak.kernel or "runtimePrecision i8" in peak.kernel)
    assert peak.to_dict()["unit"] == "GOP/s" and not peak.note


def test_onnxruntime_fuses_the_int8_gemm_into_an_integer_matmul(tmp_path):
    """Independently of measure_peak's probe: onnxruntime's optimized graph of the INT8 GEMM."""
    import onnx
    import onnxruntime as ort

    from edgekit.bench.peak import _onnx_int8_gemm

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(_onnx_int8_gemm(tmp_path / "gemm.onnx", 64)), options,
                         providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
    assert "MatMul" not in ops and {"QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat"} & set(ops), ops


def test_paddle_inference_says_why_it_has_no_int8_peak():
    from edgekit.bench.peak import measure_peak

    peak = measure_peak("paddle-inference", "int8", threads=1)
    assert peak.gflops is None and "not measured" in peak.note and peak.source.startswith("no int8 GEMM peak")


def test_int8_records_get_their_share_of_the_int8_peak(bundle):
    fp32, int8 = bundle("onnx"), bundle("onnx-int8")
    report = api.bench([fp32, int8], peak=True, **QUICK)
    by_label = {r.label: r for r in report.records}
    record = by_label[int8.name]
    assert record.bundle_precision == "int8" and record.runtime_precision == "int8"
    assert record.ops_unit == "GOP/s" and by_label[fp32.name].ops_unit == "GFLOP/s"
    assert f" in onnxruntime int8, {record.threads} threads" in record.peak_source, record.peak_source
    # The same 2 x multiply-adds count as FP32, against the INT8 GEMM of the same runtime.
    assert record.achieved_gflops == pytest.approx(by_label[fp32.name].achieved_gflops
                                                   * record.throughput_ips / by_label[fp32.name].throughput_ips)
    assert record.to_dict()["fraction_of_peak"] == pytest.approx(record.achieved_gflops / record.peak_gflops,
                                                                 rel=1e-2)
    peaks = {(p["runtime"], p["precision"]): p for p in report.peaks}
    assert set(peaks) == {("onnxruntime", "f32"), ("onnxruntime", "int8")}
    assert peaks[("onnxruntime", "int8")]["integer_kernel"] is True
    assert peaks[("onnxruntime", "int8")]["gflops"] == pytest.approx(record.peak_gflops, rel=1e-2)
    physical = report.to_dict()["physical_peak"]
    assert physical["gflops"] > 0 and "onnxruntime f32" in physical["measured_fractions"]
    assert physical["formula"].endswith(f"= {physical['gflops']:.1f} GFLOP/s")
    from rich.console import Console

    console = Console(width=250, record=True)
    for table in __import__("edgekit.bench.views", fromlist=["tables"]).tables(report):
        console.print(table)
    text = console.export_text()
    assert "GOP/s" in text and "physical FP32" in text and physical["formula"].split(" = ")[0] in text


X86_AVX2 = {"sse", "sse2", "avx", "fma", "avx2"}


@pytest.mark.parametrize("flags,vendor,family,model,flop", [
    (X86_AVX2, "AuthenticAMD", 0x19, 0x01, 32),  # Zen 3: 2 x 256-bit FMA
    (X86_AVX2 | {"avx512f"}, "AuthenticAMD", 0x19, 0x61, 32),  # Zen 4: 512-bit ops on 256-bit pipes
    (X86_AVX2 | {"avx512f"}, "AuthenticAMD", 0x1A, 0x44, 64),  # Zen 5: 512-bit datapath
    (X86_AVX2, "AuthenticAMD", 0x17, 0x01, 16),  # Zen 1: 128-bit pipes
    (X86_AVX2, "AuthenticAMD", 0x17, 0x31, 32),  # Zen 2
    (X86_AVX2 | {"avx512f"}, "GenuineIntel", 6, 85, 64),  # Skylake-SP: 2 x 512-bit FMA
    (X86_AVX2, "GenuineIntel", 6, 63, 32),  # Haswell
    ({"sse", "sse2", "avx"}, "GenuineIntel", 6, 42, 16),  # Sandy Bridge: no FMA
    ({"sse", "sse2"}, "GenuineIntel", 6, 15, 8),
])
def test_fp32_flop_per_cycle_from_isa_flags(flags, vendor, family, model, flop):
    from edgekit.bench.limits import vector_unit

    unit = vector_unit(flags, vendor, family, model, "x86_64")
    assert unit.flop_per_cycle == flop and unit.assumption
    assert vector_unit({"fp", "asimd"}, machine="aarch64").flop_per_cycle == 16  # 2 x 128-bit NEON FMA
    assert vector_unit(set(), machine="riscv64") is None


def _cpuinfo(cpus: int, flags: str, mhz: float, cores: list[int] | None = None) -> str:
    return "\n\n".join(f"processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
                       f"model name\t: Test CPU\ncpu MHz\t\t: {mhz}\nphysical id\t: 0\n"
                       f"core id\t\t: {(cores or list(range(cpus)))[i]}\nflags\t\t: {flags}"
                       for i in range(cpus)) + "\n"


def test_physical_peak_counts_cores_not_hyperthreads(tmp_path):
    from edgekit.bench.limits import physical_peak

    flags = "fpu sse sse2 avx fma avx2 avx512f"
    # sysfs: 4 logical CPUs, 2 cores x 2 threads, 3.5 GHz max.
    for cpu, siblings in enumerate(["0,2", "1,3", "0,2", "1,3"]):
        (tmp_path / f"cpu{cpu}" / "topology").mkdir(parents=True)
        (tmp_path / f"cpu{cpu}" / "topology" / "thread_siblings_list").write_text(siblings + "\n")
        (tmp_path / f"cpu{cpu}" / "cpufreq").mkdir()
        (tmp_path / f"cpu{cpu}" / "cpufreq" / "cpuinfo_max_freq").write_text("3500000\n")
    peak = physical_peak(_cpuinfo(4, flags, 2100.0), sysfs=tmp_path, cpus={0, 1, 2, 3}, machine="x86_64")
    assert (peak.cores, peak.logical_cpus, peak.frequency_ghz, peak.flop_per_cycle) == (2, 4, 3.5, 64)
    assert peak.gflops == pytest.approx(2 * 3.5 * 64) and "cpuinfo_max_freq" in peak.frequency_source
    assert any("hyperthreads" in a for a in peak.assumptions)
    assert peak.to_dict()["formula"] == "2 cores x 3.500 GHz x 64 FP32 FLOP/cycle = 448.0 GFLOP/s"
    # Pinned to one thread of each core: still 2 cores; to both threads of one core: 1.
    assert physical_peak(_cpuinfo(4, flags, 2100.0), sysfs=tmp_path, cpus={0, 1}).cores == 2
    assert physical_peak(_cpuinfo(4, flags, 2100.0), sysfs=tmp_path, cpus={0, 2}).cores == 1


def test_physical_peak_in_a_vm_without_sysfs_topology(tmp_path):
    from edgekit.bench.limits import physical_peak

    # /proc/cpuinfo alone: two vCPUs that name one core id are one core's two threads.
    text = _cpuinfo(2, "fpu sse sse2 avx fma avx2 hypervisor", 2000.0, cores=[0, 0])
    peak = physical_peak(text, sysfs=tmp_path, cpus={0, 1}, machine="x86_64")
    assert (peak.cores, peak.frequency_ghz, peak.flop_per_cycle) == (1, 2.0, 32)
    assert peak.gflops == pytest.approx(64.0) and "cpu MHz" in peak.frequency_source
    assert peak.cores_source == "/proc/cpuinfo physical id + core id"
    assert any(a.startswith("a VM") for a in peak.assumptions)
    two = physical_peak(_cpuinfo(2, "sse sse2 avx fma avx2 hypervisor", 2000.0), sysfs=tmp_path, cpus={0, 1})
    assert two.cores == 2 and two.gflops == pytest.approx(128.0)


def test_end_to_end_includes_decoding_and_preprocessing(bundle):
    path = bundle("onnx")
    inference = api.bench(path, **QUICK).records[0]
    end_to_end = api.bench(path, end_to_end=True, **QUICK).records[0]
    assert end_to_end.end_to_end and not inference.end_to_end
    # Decoding and resizing a 512x512 JPEG costs more than a 64x64 SqueezeNet.
    assert end_to_end.latency.median_ms > inference.latency.median_ms


def test_cli_table_json_csv_and_plot(bundle, tmp_path):
    # A copy with a validation record as `edgekit validate` appends it: the plot's accuracy panel uses it.
    path = tmp_path / "validated"
    shutil.copytree(bundle("onnx"), path)
    manifest = json.loads((path / "edgekit.json").read_text())
    manifest["validations"].append({"metrics": {"top1": 0.91, "top5": 0.99}, "data": {"source": "digits/val.txt",
                                                                                     "evaluated": 360}})
    (path / "edgekit.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["bench", str(path), "--batch", "1,2", "--iters", "2", "--rounds", "1",
                                 "--warmup", "1", "--json", "--csv", str(tmp_path / "r.csv"),
                                 "--plot", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "cpu" and [r["batch"] for r in report["records"]] == [1, 2]
    assert report["host"]["cpu_model"] and report["config"]["threads"] >= 1
    assert report["accuracy"] == [{"label": "validated", "top1": 0.91, "dataset": "digits/val.txt", "images": 360,
                                   "device": None, "batch": 1, "median_ms": report["records"][0]["median_ms"]}]
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [row["batch"] for row in rows] == ["1", "2"] and rows[0]["input_shape"] == "1x3x64x64"
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = runner.invoke(app, ["bench", str(path), "--iters", "2", "--rounds", "1", "--warmup", "0"])
    assert table.exit_code == 0 and "median" in table.stdout and path.name in table.stdout


# ---------------------------------------------------------------- a device over ssh (OpenSSH on 127.0.0.1)

DEVICE_PYTHON = Path(__file__).resolve().parents[1] / ".peers" / "device-venv" / "bin" / "python"


@pytest.fixture(scope="module")
def ssh_device(tmp_path_factory):
    """A real sshd on 127.0.0.1 and a device Python without edgekit (scripts/test.sh makes .peers/device-venv)."""
    import getpass
    import os
    import socket
    import subprocess
    import time

    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None)
    if sshd is None or not DEVICE_PYTHON.is_file():
        pytest.skip("needs OpenSSH's sshd and .peers/device-venv (scripts/test.sh provides both)")
    root = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
    shutil.copyfile(root / "client_key.pub", root / "authorized_keys")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host_key\nPidFile {root}/sshd.pid\n"
        f"AuthorizedKeysFile {root}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nLogLevel ERROR\n")
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {(root / 'host_key.pub').read_text()}")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)
    server = subprocess.Popen([sshd, "-D", "-e", "-f", str(root / "sshd_config")], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield {"device": f"ssh://{getpass.getuser()}@127.0.0.1:{port}", "device_python": str(DEVICE_PYTHON),
           "device_dir": str(root / "device"),
           "ssh_options": {"IdentityFile": str(root / "client_key"), "UserKnownHostsFile": str(root / "known_hosts"),
                           "StrictHostKeyChecking": "yes"}}
    server.terminate()
    server.wait(timeout=10)


def test_bench_on_a_device_over_ssh(bundle, ssh_device):
    """The timing loop runs in the device's Python (no edgekit there); bundles interleave as on the host."""
    onnx, openvino = bundle("onnx"), bundle("openvino")
    report = api.bench([onnx, openvino], iterations=4, rounds=2, warmup=1, precision_hint="f32", **ssh_device)
    assert report.host["device"] == ssh_device["device"] and report.host["cpu_model"]
    assert [(c.round, c.label, c.batch) for c in report.schedule[:4]] == [
        (0, onnx.name, 1), (0, openvino.name, 1), (1, openvino.name, 1), (1, onnx.name, 1)]
    for r in report.records:
        assert r.device == ssh_device["device"] and r.latency.count == 4 and r.latency.min_ms > 0
        assert r.runtime_precision == "f32" and r.threads == report.host["cpus_usable"]
    assert {r.runtime_version.split("-")[0] for r in report.records} == {"1.31.1", "2026.4.1"}


def test_device_without_a_stdin_stream_times_each_chunk_in_a_fresh_process(bundle, ssh_device, monkeypatch):
    """adb's way (no stdin stream), exercised over ssh: one process per chunk, model loaded and warmed each time."""
    from edgekit.devices.ssh import SshTransport

    monkeypatch.setattr(SshTransport, "streams_stdin", False)
    report = api.bench(bundle("onnx"), iterations=3, rounds=1, warmup=1, **ssh_device)
    record = report.records[0]
    assert record.latency.count == 3 and record.runtime_version == "1.31.1" and record.runtime_precision == "f32"
    assert "fresh process" in record.notes[0]


def test_device_missing_the_runtime_is_named(bundle, ssh_device):
    with pytest.raises(EdgekitError, match="lacks paddle.inference"):
        api.bench(bundle("paddle"), iterations=1, rounds=1, warmup=0, **ssh_device)


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("args,message", [
    (["/no/such/bundle"], "neither a bundle directory nor a zoo model"),
    (["ResNet5O"], "Did you mean"),
    (["ResNet18"], "add --target"),
    (["ResNet18", "--target", "nosuch"], "nosuch"),
    (["{empty}"], "edgekit.json is missing"),
    (["{onnx}", "--batch", "1,x"], "'x' is not a whole number"),
    (["{onnx}", "--batch", "0"], "out of range"),
    (["{onnx}", "--batch", "4,4"], "listed twice"),
    (["{onnx}", "--batch", ","], "at least one batch size"),
    (["{onnx}", "--precision-hint", "f16"], "expected one of f32, bf16"),
    (["{onnx}", "--device", "ssh://pi@no-such-host.invalid"], "unknown host"),
    (["{onnx}", "--device", "usb"], "expected local"),
    (["{onnx}", "--iters", "0"], "--iters 0"),
    (["ResNet18", "--gpu", "a100"], "t4"),
])
def test_bad_input_is_exit_2_with_a_message(args, message, bundle, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    onnx = str(bundle("onnx")) if "{onnx}" in args else ""
    args = [a.replace("{empty}", str(empty)).replace("{onnx}", onnx) for a in args]
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_end_to_end_needs_the_runtime_in_this_process(bundle):
    with pytest.raises(EdgekitError, match="Lite toolchain's own interpreter"):
        api.bench(bundle("x86-lite"), end_to_end=True, **QUICK)


def test_parse_batches():
    assert parse_batches("1,4,8") == (1, 4, 8) and parse_batches(" 2 ") == (2,) and parse_batches([1, 8]) == (1, 8)
    for bad in ("", "1,,x", "-1", "1.5", "2000"):
        with pytest.raises(EdgekitError):
            parse_batches(bad)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None or shutil.which("trtexec") is not None,
                    reason="this machine has a GPU or TensorRT")
def test_gpu_path_without_gpu_says_what_is_missing():
    result = runner.invoke(app, ["bench", "ResNet50", "--gpu", "t4"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "an NVIDIA GPU (nvidia-smi is not on PATH)" in text and "TensorRT (no `trtexec` on PATH" in text
    assert "nvcr.io/nvidia/tensorrt" in text and "--reference-only" in text


# ---------------------------------------------------------------- statistics and the timing loop

def test_latency_stats_match_numpy():
    rng = np.random.default_rng(0)
    samples = rng.gamma(4.0, 2.0, size=1000)
    s = LatencyStats.from_ms(samples)
    assert s.count == 1000 and s.median_ms == pytest.approx(np.median(samples))
    assert s.p90_ms == pytest.approx(np.percentile(samples, 90)) and s.p99_ms == pytest.approx(np.percentile(samples, 99))
    assert s.cv == pytest.approx(samples.std() / samples.mean()) and s.unstable  # gamma(4): cv 0.5
    steady = LatencyStats.from_ns([10_000_000, 10_100_000, 9_900_000])
    assert steady.median_ms == pytest.approx(10.0) and not steady.unstable


def test_timed_loop_honours_iterations_and_duration_and_costs_little():
    assert len(timed_loop(lambda: None, 7, 0.0)) == 7
    samples = timed_loop(lambda: None, 1, 0.05)
    assert sum(samples) > 0 and len(samples) > 100
    # The clock around an empty call: what the harness adds to each sample.
    assert np.median(samples) < 2_000  # ns


# ---------------------------------------------------------------- seed reference tables

def test_reference_tables_cover_every_zoo_model_and_keep_missing_cells_missing():
    from edgekit.zoo import list_models
    from edgekit.zoo.cards import get_card

    report = api.bench(reference_only=True)
    assert report.kind == "reference" and not report.records
    assert len(report.reference) == 3 * len(list_models())
    for row in report.reference:
        table = {"v100": {"fp32": "v100_trt_fp32"}, "t4": {"fp16": "t4_trt_fp16", "fp32": "t4_trt_fp32"}}
        cells = get_card(row["model"]).latency_ms.get(table[row["gpu"]][row["precision"]], {})
        for b in (1, 4, 8):
            assert row[f"batch{b}_ms"] == cells.get(b)  # None where the seed page has no figure, never 0
            assert row[f"batch{b}_ms"] is None or row[f"batch{b}_ms"] > 0
    assert any(row[f"batch{b}_ms"] is None for row in report.reference for b in (1, 4, 8))


def test_reference_only_cli_prints_the_seed_table():
    result = runner.invoke(app, ["bench", "ResNet50", "EfficientNetB6", "--gpu", "t4", "--reference-only"])
    assert result.exit_code == 0, result.output
    resnet = next(line for line in result.stdout.splitlines() if "ResNet50" in line and "fp16" in line)
    assert "2.638" in resnet and "4.638" in resnet and "7.024" in resnet  # the seed's T4 FP16 row
    effnet = next(line for line in result.stdout.splitlines() if "EfficientNetB6" in line and "fp16" in line)
    assert "30.059" in effnet and effnet.count("—") == 2  # batch 4 and 8 are not published
    as_json = json.loads(runner.invoke(app, ["bench", "ResNet50", "--gpu", "v100", "--reference-only",
                                             "--json"]).stdout)
    assert as_json["reference"] == [{"model": "ResNet50", "gpu": "v100", "precision": "fp32",
                                     "profile": "v100_trt_fp32", "crop_size": 224, "batch1_ms": 2.54,
                                     "batch4_ms": 4.79, "batch8_ms": 7.4}]


# ---------------------------------------------------------------- TensorRT: commands and trtexec's output

def test_trtexec_commands_follow_the_seed_method():
    from edgekit.bench.tensorrt_trtexec import trtexec_build_command, trtexec_run_command

    build = trtexec_build_command("trtexec", Path("m.onnx"), Path("m.engine"), "x", (3, 224, 224), (1, 4, 8), "fp16")
    assert build == ["trtexec", "--onnx=m.onnx", "--minShapes=x:1x3x224x224", "--optShapes=x:8x3x224x224",
                     "--maxShapes=x:8x3x224x224", "--saveEngine=m.engine", "--skipInference", "--fp16"]
    fp32 = trtexec_build_command("trtexec", Path("m.onnx"), Path("m.engine"), "x", (3, 224, 224), (1, 4, 8), "fp32")
    assert "--fp16" not in fp32 and "--noTF32" in fp32  # fp32 is fp32 on Ampere+ too
    run = trtexec_run_command("trtexec", Path("m.engine"), "x", (3, 224, 224), 4, 500, 3.0, 10)
    assert run == ["trtexec", "--loadEngine=m.engine", "--shapes=x:4x3x224x224", "--warmUp=500", "--duration=3",
                   "--iterations=10", "--useCudaGraph", "--useSpinWait"]
    assert trtexec_run_command("trtexec", Path("m.engine"), "x", (3, 224, 224), 1, 500, 3.0, 10,
                               data_transfers=False)[-1] == "--noDataTransfers"


# Written from trtexec's documented log format (TensorRT 8.6 / 10.x "Performance summary").
TRTEXEC_LOG = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v8603] # trtexec --loadEngine=m.engine --shapes=x:1x3x224x224
[03/28/2024-07:10:11] [I] === Device Information ===
[03/28/2024-07:10:12] [I] Selected Device: Tesla T4
[03/28/2024-07:10:12] [I] Compute Capability: 7.5
[03/28/2024-07:10:12] [I] TensorRT version: 8.6.3
[03/28/2024-07:10:19] [I] === Trace details ===
[03/28/2024-07:10:19] [I] Average on 10 runs - GPU latency: 2.6012 ms - Host latency: 2.7021 ms (enqueue 0.4110 ms)
[03/28/2024-07:10:22] [I] === Performance summary ===
[03/28/2024-07:10:22] [I] Throughput: 372.184 qps
[03/28/2024-07:10:22] [I] Latency: min = 2.62891 ms, max = 3.48242 ms, mean = 2.68507 ms, median = 2.67969 ms, percentile(90%) = 2.70312 ms, percentile(95%) = 2.71094 ms, percentile(99%) = 2.80859 ms
[03/28/2024-07:10:22] [I] Enqueue Time: min = 0.0214844 ms, max = 0.112549 ms, mean = 0.0261328 ms, median = 0.0253906 ms, percentile(90%) = 0.0292969 ms, percentile(95%) = 0.03125 ms, percentile(99%) = 0.0410156 ms
[03/28/2024-07:10:22] [I] H2D Latency: min = 0.0524902 ms, max = 0.0820312 ms, mean = 0.0550771 ms, median = 0.0546875 ms, percentile(90%) = 0.0566406 ms, percentile(95%) = 0.0576172 ms, percentile(99%) = 0.0629883 ms
[03/28/2024-07:10:22] [I] GPU Compute Time: min = 2.56714 ms, max = 3.41772 ms, mean = 2.62375 ms, median = 2.61914 ms, percentile(90%) = 2.64062 ms, percentile(95%) = 2.64844 ms, percentile(99%) = 2.74219 ms
[03/28/2024-07:10:22] [I] D2H Latency: min = 0.00390625 ms, max = 0.0136719 ms, mean = 0.00624 ms, median = 0.00585938 ms, percentile(90%) = 0.00732422 ms, percentile(95%) = 0.0078125 ms, percentile(99%) = 0.0107422 ms
[03/28/2024-07:10:22] [I] Total Host Walltime: 3.00389 s
[03/28/2024-07:10:22] [I] Total GPU Compute Time: 2.93328 s
[03/28/2024-07:10:22] [I] Explanations of the performance metrics are printed in the verbose logs.
&&&& PASSED TensorRT.trtexec [TensorRT v8603] # trtexec --loadEngine=m.engine --shapes=x:1x3x224x224
"""


def test_parse_trtexec_performance_summary():
    from edgekit.bench.tensorrt_trtexec import parse_trtexec_output

    m = parse_trtexec_output(TRTEXEC_LOG)
    assert m.device == "Tesla T4" and m.tensorrt_version == "8.6.3"
    assert m.throughput_qps == 372.184 and m.total_host_walltime_s == pytest.approx(3.00389)
    assert (m.gpu_compute.median_ms, m.gpu_compute.p99_ms, m.gpu_compute.mean_ms) == (2.61914, 2.74219, 2.62375)
    assert (m.host_latency.median_ms, m.host_latency.p90_ms, m.host_latency.min_ms) == (2.67969, 2.70312, 2.62891)
    assert m.h2d.median_ms == 0.0546875 and m.d2h.max_ms == 0.0136719 and m.enqueue.p95_ms == 0.03125
    # Older trtexec prints "percentile(99%) 3.87 ms" without "=" and no p90/p95.
    old = "=== Performance summary ===\nThroughput: 10 qps\nLatency: min = 1 ms, max = 3 ms, mean = 2 ms, " \
          "median = 2 ms, percentile(99%) 2.9 ms\nGPU Compute Time: min = 0.9 ms, max = 2.9 ms, mean = 1.9 ms, " \
          "median = 1.8 ms, percentile(99%) 2.8 ms\n"
    m = parse_trtexec_output(old)
    assert m.gpu_compute.p99_ms == 2.8 and m.gpu_compute.p90_ms is None and m.device is None


def test_trtexec_failure_output_is_an_error_not_a_number():
    from edgekit.bench.tensorrt_trtexec import parse_trtexec_output

    with pytest.raises(EdgekitError, match="no '=== Performance summary ==='"):
        parse_trtexec_output("[E] Error[4]: [network.cpp::validate::2925] Error Code 4: Internal Error\n"
                             "&&&& FAILED TensorRT.trtexec")
    with pytest.raises(EdgekitError, match="lacks gpu_compute"):
        parse_trtexec_output("=== Performance summary ===\nThroughput: 1 qps\nLatency: min = 1 ms, max = 1 ms, "
                             "mean = 1 ms, median = 1 ms\n")


def test_gpu_record_sets_measured_beside_the_seed():
    from edgekit.bench.tensorrt import GpuRecord
    from edgekit.bench.tensorrt_trtexec import parse_trtexec_output
    from edgekit.bench.published import reference_ms

    m = parse_trtexec_output(TRTEXEC_LOG)
    ref = reference_ms("ResNet50", "t4", "fp16", 1)
    record = GpuRecord(model="ResNet50", onnx="m.onnx", gpu_profile="t4", gpu=m.device, precision="fp16", batch=1,
                       input_shape=[1, 3, 224, 224], tool="trtexec", tensorrt_version=m.tensorrt_version,
                       gpu_compute=m.gpu_compute, host_latency=m.host_latency, throughput_qps=m.throughput_qps,
                       reference_ms=ref)
    d = record.to_dict()
    assert ref == 2.63824 and d["ratio_to_reference"] == pytest.approx(2.61914 / 2.63824, rel=1e-3)
    assert d["gpu_compute_median_ms"] == 2.61914 and d["host_latency_p99_ms"] == 2.80859
    assert reference_ms("EfficientNetB6", "t4", "fp16", 8) is None  # missing stays missing


def test_gpu_report_views_render(tmp_path):
    """Tables, CSV and plot of a GPU report (its record parsed from the sample log above, not measured here)."""
    from rich.console import Console

    from edgekit.bench.records import BenchReport
    from edgekit.bench.published import reference_ms, reference_rows
    from edgekit.bench.tensorrt import GpuRecord
    from edgekit.bench.tensorrt_trtexec import parse_trtexec_output
    from edgekit.bench.views import tables, write_csv, write_plot

    m = parse_trtexec_output(TRTEXEC_LOG)
    records = [GpuRecord(model="ResNet50", onnx="m.onnx", gpu_profile="t4", gpu=m.device, precision="fp16", batch=b,
                         input_shape=[b, 3, 224, 224], tool="trtexec", tensorrt_version=m.tensorrt_version,
                         gpu_compute=m.gpu_compute, host_latency=m.host_latency, throughput_qps=m.throughput_qps,
                         reference_ms=reference_ms("ResNet50", "t4", "fp16", b)) for b in (1, 4)]
    report = BenchReport(kind="gpu", records=records, host={"gpus": ["Tesla T4"]},
                         config={"gpu": "t4", "tool": "trtexec"}, reference=reference_rows(["ResNet50"], "t4"))
    console = Console(record=True, width=200)
    for table in tables(report):
        console.print(table)
    text = console.export_text()
    assert "Tesla T4" in text and "2.619" in text and "0.99" in text  # measured, and measured/ref at batch 1
    rows = list(csv.DictReader(write_csv(report, tmp_path / "g.csv").open()))
    assert [r["batch"] for r in rows] == ["1", "4"] and rows[1]["reference_ms"] == "4.63802"
    assert write_plot(report, tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
