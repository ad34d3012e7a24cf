"""bf16 bundles (OpenVINO): f32 weights computed in bf16 wherever the CPU does bf16 natively (AVX512_BF16,
AMX) and in f32 elsewhere, the same way in every place a bundle opens: the build's parity check,
`edgekit.runtime`, validate (local and over a real sshd), bench and the bundle's own app.

The bf16 numbers themselves can only be checked on such a CPU; those tests skip elsewhere, saying why."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgekit import api
from edgekit.bench.host import host_info
from edgekit.bundle import read_manifest, verify_files
from edgekit.openers import bundle_precision_hint
from edgekit.runtime import load
from edgekit.targets import get_target
from test_validate import (SIZE, built_once, copy_bundle, device_python, digits, openvino_bundle,  # noqa: F401
                           shared, ssh_kwargs, sshd, summary, trained_weights)

NATIVE_BF16 = host_info().has_bf16
needs_native_bf16 = pytest.mark.skipif(not NATIVE_BF16, reason=(
    "this CPU has no native bf16 (avx512_bf16 / amx_bf16): OpenVINO computes bf16 bundles in f32 here, so "
    "there are no bf16 numbers to check"))


@pytest.fixture(scope="session")
def bf16_bundle(shared, trained_weights, digits):  # noqa: F811
    with built_once(shared, "resnet18-openvino-bf16") as (path, build):
        if build:
            api.build("ResNet18", "openvino", "bf16", weights=trained_weights, out=path, force=True,
                      num_classes=10, labels=digits.labels, input_size=SIZE)
        return path


def test_the_hint_follows_the_bundle_then_the_cpu():
    bf16 = {"artifact": {"model_file": "model.xml", "precision_hint": "bf16"}}
    assert bundle_precision_hint(bf16, flags=["avx2", "avx512_bf16"]) == "bf16"
    assert bundle_precision_hint(bf16, flags=["avx2", "amx_bf16"]) == "bf16"
    # Without native bf16 OpenVINO would emulate it, slower than f32: such a CPU opens the bundle in f32.
    assert bundle_precision_hint(bf16, flags=["avx2", "avx512f", "avx512_vnni"]) == "f32"
    assert bundle_precision_hint(bf16, flags=["asimd", "asimddp"]) == "f32"
    # Bundles written before artifact.precision_hint existed, and every fp32 one: true f32.
    assert bundle_precision_hint({"artifact": {"model_file": "model.xml"}}, flags=["amx_bf16"]) == "f32"
    # What a user asks for wins; "default" leaves OpenVINO's own choice.
    assert bundle_precision_hint(bf16, "f32", flags=["amx_bf16"]) == "f32"
    assert bundle_precision_hint(bf16, "default") is None


def test_a_bf16_build_records_its_hint_and_is_checked_at_the_bf16_tolerance(bf16_bundle, openvino_bundle):  # noqa: F811
    manifest = read_manifest(bf16_bundle)
    verify_files(bf16_bundle, manifest)
    assert manifest["target"]["precision"] == "bf16" and manifest["artifact"]["precision_hint"] == "bf16"
    assert read_manifest(openvino_bundle)["artifact"]["precision_hint"] == "f32"
    parity = manifest["parity"]
    assert parity["passed"] and parity["tolerance"] == get_target("openvino").parity["bf16"].model_dump()
    assert parity["runtime_precision"] == ("bf16" if NATIVE_BF16 else "f32")
    # Where the build host computed it in f32, the record says its bf16 numbers are still unchecked.
    assert ("note" in parity) == (not NATIVE_BF16)
    # The weights stay f32 (the CPU plugin converts them when it compiles): the same IR as the fp32 bundle.
    assert manifest["files"]["model.bin"] == read_manifest(openvino_bundle)["files"]["model.bin"]


def test_non_openvino_targets_refuse_bf16_and_name_the_one_that_builds_it(tmp_path):
    from edgekit.build import plan_build
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match=r"does not support precision 'bf16'.*bf16 is built for: openvino"):
        plan_build("ResNet18", "onnx", "bf16", out=tmp_path / "x", num_classes=10, input_size=SIZE)
    assert not (tmp_path / "x").exists()


@needs_native_bf16
def test_bf16_validates_within_its_tolerance_of_f32_everywhere_it_opens(bf16_bundle, openvino_bundle, digits,  # noqa: F811
                                                                        sshd, device_python, tmp_path):  # noqa: F811
    bundle = copy_bundle(bf16_bundle, tmp_path)
    local = api.validate(bundle, digits.val_list, batch=16)
    record = local.record
    assert local.ok and record["runtime"]["name"] == "openvino" and record["runtime"]["precision"] == "bf16"
    assert not [note for note in record["notes"] if "bf16" in note], record["notes"]
    reference = record["reference"]  # the Paddle source in f32, on all 450 held-out digits
    assert reference["kind"] == "paddle-source" and reference["images"] == 450
    # This least-squares head is ill-conditioned: one digit's near-zero logits lose their direction in bf16
    # (min cosine 0.46 measured), while the mean stays close and top-1 agrees on all but a few images.
    assert reference["top1_agreement"] >= 0.99 and reference["cosine_mean"] > 0.99
    f32 = api.validate(openvino_bundle, digits.val_list, batch=16, use_reference=False, record=False)
    assert f32.record["runtime"]["precision"] == "f32"
    assert abs(record["metrics"]["top1"] - f32.record["metrics"]["top1"]) <= 0.01
    # It really computed in bf16: other logits than true f32.
    assert record["metrics"]["logits_sha256"] != f32.record["metrics"]["logits_sha256"]
    # The device resolves the hint for its own CPU (the same one here): the same numbers over ssh.
    remote = api.validate(bundle, digits.val_list, batch=16, use_reference=False, record=False,
                          **ssh_kwargs(sshd, device_python))
    assert summary(remote) == summary(local) and remote.record["runtime"]["precision"] == "bf16"


@pytest.mark.skipif(NATIVE_BF16, reason="this CPU computes bf16 natively; the f32 fallback is for CPUs without it")
def test_without_native_bf16_it_runs_in_f32_and_every_report_says_so(bf16_bundle, openvino_bundle, digits,  # noqa: F811
                                                                     tmp_path):
    bundle = copy_bundle(bf16_bundle, tmp_path)
    record = api.validate(bundle, digits.val_list, batch=16, limit=40, use_reference=False, record=False).record
    assert record["runtime"]["precision"] == "f32"
    assert any("a bf16 bundle, computed in f32 here" in note for note in record["notes"]), record["notes"]
    f32 = api.validate(openvino_bundle, digits.val_list, batch=16, limit=40, use_reference=False, record=False)
    assert record["metrics"]["logits_sha256"] == f32.record["metrics"]["logits_sha256"]  # the same f32 model
    report = api.bench([bundle], iterations=4, rounds=2, warmup=1)
    assert report.records[0].runtime_precision == "f32"
    assert any("a bf16 bundle, computed in f32" in w for w in report.warnings), report.warnings


@needs_native_bf16
def test_the_library_the_app_and_bench_open_it_in_bf16(bf16_bundle, openvino_bundle, tmp_path):  # noqa: F811
    from skimage import data
    import cv2

    classifier = load(bf16_bundle)
    assert classifier.backend.precision == "bf16"
    assert load(bf16_bundle, precision_hint="f32").backend.precision == "f32"  # asked for: f32
    photo = tmp_path / "coffee.png"
    cv2.imwrite(str(photo), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    saved = tmp_path / "out.npy"
    subprocess.run([sys.executable, str(bf16_bundle / "app" / "predict.py"), str(photo), "--save-output",
                    str(saved)], check=True, capture_output=True)
    # The app is the library's opener and preprocessing: bit for bit the library's bf16 output.
    assert np.array_equal(np.load(saved), classifier.run(classifier.prepare([photo])))
    report = api.bench([openvino_bundle, bf16_bundle], iterations=4, rounds=2, warmup=1)
    precisions = {r.label: r.runtime_precision for r in report.records}
    assert sorted(precisions.values()) == ["bf16", "f32"], precisions
    assert not [w for w in report.warnings if "native bf16" in w], report.warnings
