"""INT8 builds on every target family, accuracy control, QAT, and bad calibration data.

One small ResNet18 trained briefly on real digits (32 px) is shared by every
test (trained once per session, across xdist workers, under a file lock).
"""

import fcntl
import json
import shutil

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from conftest import assert_arm_parity
from edgekit import api
from edgekit.bundle import read_manifest
from edgekit.cli import app
from edgekit.errors import EdgekitError

MODEL = "ResNet18"
SIZE = 32
runner = CliRunner()


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    """(weights, digits dataset, calibration list of 400 train images): trained once for all workers."""
    import paddle

    from edgekit.data.datasets import open_dataset
    from edgekit.data.digits import make_digits_dataset
    from edgekit.training import fit, subset
    from edgekit.zoo import create_model
    from edgekit.zoo.cards import get_card
    import dataclasses

    root = tmp_path_factory.getbasetemp().parent / "edgekit-int8-digits"
    root.mkdir(exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ds = make_digits_dataset(root / "digits", size=SIZE)
        # The name carries the training settings: a cache from other settings is never reused.
        weights = root / f"{MODEL}-{SIZE}px-30perclass-3epochs-b16.pdparams"
        calib = ds.root / "calib_list.txt"
        if not weights.is_file():
            pp = dataclasses.replace(get_card(MODEL).preprocessing, resize_short=SIZE, crop=SIZE)
            paddle.seed(0)
            with paddle.utils.unique_name.guard():
                model = create_model(MODEL, num_classes=10)
            fit(model, subset(open_dataset(ds.train_list), 30), preprocessing=pp, epochs=3, lr=2e-3,
                batch_size=16, progress=False)
            train_lines = ds.train_list.read_text().splitlines()
            calib.write_text("\n".join(train_lines[::3][:400]) + "\n")
            # Written aside and moved, so a worker never sees half a file.
            paddle.save(model.state_dict(), str(root / "w.tmp"))
            shutil.move(root / "w.tmp", weights)
    return weights, ds, calib


def build(digits_model, target, out, **kwargs):
    weights, _, calib = digits_model
    kwargs.setdefault("recipe", "ptq-int8")
    kwargs.setdefault("calib", calib)
    return api.build(MODEL, target, weights=weights, num_classes=10, input_size=SIZE, out=out, **kwargs)


def val_top1(bundle, ds):
    """Top-1 of a bundle on 200 digits val images (never used for calibration or held out)."""
    from edgekit.runtime import load

    classifier = load(bundle)
    lines = [line.rsplit(maxsplit=1) for line in ds.val_list.read_text().splitlines()[:200]]
    batch = classifier.prepare([ds.root / path for path, _ in lines])
    return float((classifier.run(batch).argmax(1) == np.array([int(label) for _, label in lines])).mean())


def paddle_val_top1(digits_model):
    """The same 200 images through the float Paddle model."""
    import dataclasses

    import paddle

    from edgekit.data.datasets import LabeledImages, open_dataset
    from edgekit.training import evaluate
    from edgekit.zoo import create_model
    from edgekit.zoo.cards import get_card
    from edgekit.zoo.weights import load_weights

    weights, ds, _ = digits_model
    with paddle.utils.unique_name.guard():
        model = create_model(MODEL, num_classes=10)
    load_weights(model, weights)
    val = open_dataset(ds.val_list)
    pp = dataclasses.replace(get_card(MODEL).preprocessing, resize_short=SIZE, crop=SIZE)
    return evaluate(model, LabeledImages(val.samples[:200], val.source), pp)["top1"]


# --- the product path, per runtime family -------------------------------------------------------------

@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_ptq_int8_bundle_is_int8_and_within_budget(digits_model, target, tmp_path):
    result = build(digits_model, target, tmp_path / "b", max_drop=0.02)
    manifest = read_manifest(result.path)
    assert manifest["target"]["precision"] == "int8"
    assert manifest["recipe"]["name"] == "ptq-int8" and manifest["recipe"]["passes"][0]["max_drop"] == 0.02
    quant = manifest["compression"]["quantization"]
    assert quant["route"].startswith("onnxruntime quantize_static")
    assert quant["drop"] <= 0.02 and quant["holdout_images"] == 200 and quant["fp32_top1"] > 0.8
    assert manifest["compression"]["data"]["calibration_images"] == 200
    parity = manifest["parity"]
    assert parity["passed"] and parity["top1_agreement"] >= 0.9
    # INT8 is compared with the FP32 model it was made from on every held-out image (the outputs accuracy
    # control computed), and that FP32 model with the Paddle source on the photos, at the FP32 tolerance.
    assert parity["compared"] == 200 and parity["reference"].startswith("FP32 ")
    check = parity["reference_check"]
    assert check["passed"] and check["reference"].startswith("paddle dygraph") and check["compared"] >= 4
    assert check["tolerance"] == manifest_tolerance(target, "fp32") and check["max_rel_diff"] < 1e-3
    if target == "onnx":
        ops = {node.op_type for node in onnx.load(str(result.path / "model.onnx")).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    else:
        assert (result.path / "model.bin").stat().st_size < 0.35 * 11.2e6 * 4  # int8 weights, not f32
    # On images neither calibration nor the held-out split saw: still close to FP32.
    assert val_top1(result.path, digits_model[1]) >= paddle_val_top1(digits_model) - 0.03


def manifest_tolerance(target: str, precision: str) -> dict:
    from edgekit.targets.spec import get_target

    return get_target(target).parity[precision].model_dump()


def test_arm_lite_int8_from_paddle_ptq_program(digits_model, tmp_path):
    result = build(digits_model, "arm-lite", tmp_path / "b", max_drop=None,
                   recipe_overrides={"ptq.max_drop": None, "ptq.holdout_images": 100, "ptq.calibration_images": 64})
    manifest = read_manifest(result.path)
    quant = manifest["compression"]["quantization"]
    assert quant["route"].startswith("Paddle PostTrainingQuantization") and "Paddle Lite" in quant["evaluated_on"]
    assert abs(quant["drop"]) < 0.05
    assert_arm_parity(manifest["parity"])
    # The FP32 reference (the Paddle program, in Paddle Inference) was checked against the source.
    check = manifest["parity"]["reference_check"]
    assert check["passed"] and check["candidate"].endswith("in paddle-inference")
    assert check["tolerance"] == manifest_tolerance("paddle", "fp32")
    nb = result.path / "model.nb"
    assert nb.read_bytes()[2:10] == b"v2.13-rc" and nb.stat().st_size < 0.4 * 11.2e6 * 4


def test_paddle_int8_rejected_for_x86_lite(digits_model, tmp_path):
    with pytest.raises(EdgekitError, match="does not support precision 'int8'"):
        build(digits_model, "x86-lite", tmp_path / "b")


# --- accuracy control ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_route(digits_model, tmp_path_factory):
    """The ONNX route calibrated on a deliberately poor set: 16 dimmed images of one digit."""
    from edgekit.compress.routes import OnnxQDQRoute
    from edgekit.data.datasets import open_dataset
    from edgekit.export.onnx import paddle2onnx
    from edgekit.export.paddle import export_legacy_program
    from edgekit.training.decoded import decode_images
    from edgekit.zoo.cards import get_card
    import dataclasses

    from edgekit.targets import adapter_for

    weights, ds, _ = digits_model
    work = tmp_path_factory.mktemp("route")
    program = export_legacy_program(MODEL, 10, weights, work / "paddle", SIZE)
    fp32 = paddle2onnx(program, program.with_suffix(".pdiparams"), work / "fp32.onnx")
    pp = dataclasses.replace(get_card(MODEL).preprocessing, resize_short=SIZE, crop=SIZE)
    val = decode_images(open_dataset(ds.val_list), pp)
    ones = val.images[val.labels == 1][:16]
    poor = ones * 0.3 + (ones.min() * 0.7)
    route = OnnxQDQRoute(fp32, poor, algorithm="minmax", per_channel=False, batch_size=16,
                         runtime=adapter_for("onnxruntime"), work=work / "int8")
    return route, fp32, val, work


def test_accuracy_control_returns_measured_sensitive_layers_to_float(onnx_route):
    from edgekit.compress.quantize import accuracy_controlled_quantization, top1

    route, fp32, val, work = onnx_route
    holdout_x, holdout_y = val.images[:200], val.labels[:200]
    report = accuracy_controlled_quantization(route, fp32, holdout_x, holdout_y,
                                              max_drop=0.005, max_float_layers=None, work=work / "ac",
                                              algorithm="minmax")
    assert report.attempts[0]["int8_top1"] < report.fp32_top1 - 0.005  # the poor calibration did hurt
    assert report.float_layers and report.drop <= 0.005
    assert len(report.sensitivity) == len(route.layers())
    recovered = [s.error_recovered for s in report.sensitivity]
    assert recovered == sorted(recovered, reverse=True)
    assert report.float_layers == [s.layer for s in report.sensitivity[:len(report.float_layers)]]
    # Weighted layers kept in float keep float weights (a float initializer, not a DequantizeLinear output).
    graph = onnx.load(str(report.model_file)).graph
    float_weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    nodes = {n.name: n for n in graph.node}
    kept_weighted = [name for name in report.float_layers if nodes[name].op_type in ("Conv", "Gemm", "MatMul")]
    assert all(nodes[name].input[1] in float_weights for name in kept_weighted)
    assert all(n.input[1] not in float_weights for n in graph.node
               if n.op_type == "Conv" and n.name not in report.float_layers)
    record = report.to_manifest()
    assert json.dumps(record) and record["float_layers"] == report.float_layers
    # The outputs the parity record reuses are those of the FP32 model and of the chosen INT8 model.
    outputs = report.outputs
    assert outputs.fp32.shape == outputs.int8.shape == (200, 10) and "outputs" not in record
    np.testing.assert_array_equal(outputs.int8, route.run(report.model_file, holdout_x))
    assert abs(top1(outputs.fp32, holdout_y) - report.fp32_top1) < 1e-12


@pytest.mark.parametrize("target", ["onnx", "openvino", "paddle", "arm-lite"])
def test_int8_tolerance_fails_a_badly_calibrated_model(onnx_route, target):
    """The INT8 bounds pass a well calibrated model and fail one calibrated on dimmed images of one digit."""
    from edgekit.build.parity import compare_logits, within
    from edgekit.compress.routes import OnnxQDQRoute
    from edgekit.targets import adapter_for
    from edgekit.targets.spec import get_target

    poor_route, fp32, val, work = onnx_route
    good_route = OnnxQDQRoute(fp32, val.images[300:364], algorithm="minmax", per_channel=True, batch_size=16,
                              runtime=adapter_for("onnxruntime"), work=work / "good")
    tolerance = get_target(target).parity["int8"]
    reference = poor_route.run(fp32, val.images[:200])
    good = good_route.run(good_route.quantize([], work / "good" / "int8"), val.images[:200])
    poor = poor_route.run(poor_route.quantize([], work / f"poor-{target}"), val.images[:200])
    assert within(compare_logits(reference, good), tolerance) == []
    assert within(compare_logits(reference, poor), tolerance), compare_logits(reference, poor)


@pytest.mark.parametrize("algorithm", ["percentile", "entropy"])
def test_histogram_estimators_calibrate_a_set_batches_do_not_divide(onnx_route, algorithm):
    """onnxruntime's histogram collector needs equal batches: 60 images at batch 16 must still calibrate."""
    from edgekit.compress.routes import OnnxQDQRoute, uniform_batch_size
    from edgekit.targets import adapter_for

    _, fp32, val, work = onnx_route
    route = OnnxQDQRoute(fp32, val.images[300:360], algorithm=algorithm, per_channel=True, batch_size=16,
                         runtime=adapter_for("onnxruntime"), work=work / algorithm)
    model_file = route.quantize([], work / algorithm / "int8")
    reference, int8 = route.run(fp32, val.images[:100]), route.run(model_file, val.images[:100])
    assert (reference.argmax(1) == int8.argmax(1)).mean() >= 0.9
    assert [uniform_batch_size(n, 16) for n in (60, 256, 17, 5)] == [15, 16, 1, 5]


@pytest.mark.parametrize("op_types", [None, ("Conv", "Gemm")])
def test_minmax_ranges_are_onnxruntimes_own(onnx_route, op_types):
    """edgekit's MinMax pass (in OpenVINO) finds the tensors and ranges onnxruntime's calibrator finds."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import load_tensors_data

    from edgekit.compress.minmax import minmax_ranges
    from edgekit.compress.routes import OnnxQDQRoute
    from edgekit.targets import adapter_for

    _, fp32, val, work = onnx_route
    out = work / f"minmax-{len(op_types or ())}"
    images = val.images[300:340]  # 40 images at batch 16: a short last batch too
    route = OnnxQDQRoute(fp32, images, algorithm="minmax", per_channel=True, batch_size=16,
                         runtime=adapter_for("onnxruntime"), work=out, op_types=op_types)
    ours = minmax_ranges(route.model, images, batch_size=16, op_types=op_types)
    # onnxruntime's calibrator on the same batches: the route's own reader of its calibration images.
    quantize_static(str(route.model), str(out / "ort.onnx"), route._reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=list(op_types) if op_types else None,
                    calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(out / "ort.json"))
    theirs = load_tensors_data(out / "ort.json").data
    assert sorted(ours) == sorted(theirs) and len(ours) > 20
    for name, (lowest, highest) in ours.items():
        expected = theirs[name].range_value
        np.testing.assert_allclose([lowest, highest], [float(expected[0][0]), float(expected[1][0])],
                                   rtol=1e-4, atol=1e-5, err_msg=name)
    # The route writes them as onnxruntime's cache, which quantize_static then reads instead of calibrating:
    # the same scales (the sums behind the ranges differ only in float rounding), the same predictions.
    int8 = route.quantize([], out / "int8")
    assert (out / "calibration-ranges.json").is_file()
    scales = [{i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(f)).graph.initializer
               if i.name.endswith("_scale")} for f in (int8, out / "ort.onnx")]
    assert sorted(scales[0]) == sorted(scales[1]) and scales[0]
    for name, scale in scales[0].items():
        np.testing.assert_allclose(scale, scales[1][name], rtol=1e-4, err_msg=name)
    ours, theirs = route.run(int8, val.images[:100]), route.run(out / "ort.onnx", val.images[:100])
    assert (ours.argmax(1) == theirs.argmax(1)).mean() >= 0.97


def test_unreachable_budget_fails_loudly(onnx_route):
    from edgekit.compress.quantize import accuracy_controlled_quantization

    route, fp32, val, work = onnx_route
    with pytest.raises(EdgekitError, match="INT8 accuracy budget not met.*max_drop 0.005.*returning 0 of"):
        accuracy_controlled_quantization(route, fp32, val.images[:200], val.labels[:200],
                                         max_drop=0.005, max_float_layers=0, work=work / "fail", algorithm="minmax")


# --- QAT ----------------------------------------------------------------------------------------------

def test_qat_int8_paddle_bundle(digits_model, tmp_path):
    result = build(digits_model, "paddle", tmp_path / "b", recipe="qat-int8",
                   recipe_overrides={"qat.epochs": 1, "qat.train_images": 128, "qat.holdout_images": 60,
                                     "qat.max_drop": 0.05})
    manifest = read_manifest(result.path)
    assert manifest["recipe"]["name"] == "qat-int8"
    assert manifest["compression"]["qat"]["epochs"] == 1 and manifest["compression"]["qat"]["train_images"] == 128
    quant = manifest["compression"]["quantization"]
    assert quant["route"].startswith("Paddle QAT") and quant["drop"] <= 0.05
    from edgekit.export.lite import is_quantized, read_program

    assert is_quantized(read_program(result.path / "model.pdmodel"))
    assert val_top1(result.path, digits_model[1]) > 0.5


# --- bad calibration data: clear message, exit 2, nothing written ------------------------------------

def test_undecodable_images_are_counted_and_skipped(digits_model, tmp_path):
    import dataclasses

    from edgekit.compress.calibration import load_compression_data, open_calibration_set, plan_split
    from edgekit.zoo.cards import get_card

    _, ds, calib = digits_model
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    listing = tmp_path / "with_broken.txt"
    lines = [line.rsplit(maxsplit=1) for line in calib.read_text().splitlines()[:120]]
    listing.write_text("\n".join([f"{broken} 3", f"{tmp_path / 'missing.png'} 4"]
                                 + [f"{ds.root / path} {label}" for path, label in lines]) + "\n")
    data = open_calibration_set(listing)
    split = plan_split(data, holdout_images=500, calibration_images=256, max_drop=0.05)
    assert (split.total, split.holdout, split.calibration) == (122, 61, 61)
    pp = dataclasses.replace(get_card(MODEL).preprocessing, resize_short=SIZE, crop=SIZE)
    decoded = load_compression_data(data, split, pp, 10)
    assert decoded.skipped == 2 and decoded.to_manifest()["undecodable_images_skipped"] == 2
    assert len(decoded.holdout_images) + len(decoded.train_images) == 120
    assert decoded.calibration.shape[1:] == (3, SIZE, SIZE)


def test_a_split_that_does_not_train_decodes_only_its_images_and_replaces_broken_ones(digits_model, tmp_path):
    import dataclasses

    from edgekit.compress.calibration import load_compression_data, open_calibration_set, plan_split
    from edgekit.zoo.cards import get_card

    _, ds, calib = digits_model
    lines = [f"{ds.root / path} {label}" for path, label in
             (line.rsplit(maxsplit=1) for line in calib.read_text().splitlines()[:120])]
    # The seeded shuffle (seed 0) of 121 lines puts list index order[0] first: make that one undecodable.
    order = np.random.default_rng(0).permutation(121)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    lines.insert(int(order[0]), f"{tmp_path / 'broken.png'} 3")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    data = open_calibration_set(listing)
    pp = dataclasses.replace(get_card(MODEL).preprocessing, resize_short=SIZE, crop=SIZE)
    plans = {trains: plan_split(data, holdout_images=30, calibration_images=20, max_drop=None, trains=trains)
             for trains in (True, False)}
    full, ptq = (load_compression_data(data, plans[trains], pp, 10) for trains in (True, False))
    assert full.skipped == ptq.skipped == 1
    # PTQ decoded 51 images (50 and the next one in place of the broken one), and they are the ones the full
    # decode puts in the held-out and calibration parts.
    assert len(ptq.holdout_images) == len(full.holdout_images) == 30 and len(ptq.calibration) == 20
    assert len(ptq.train_images) == 20 and len(full.train_images) == 90
    assert np.array_equal(ptq.holdout_images, full.holdout_images) and np.array_equal(ptq.holdout_labels,
                                                                                       full.holdout_labels)
    assert np.array_equal(ptq.calibration, full.calibration)


def test_calibration_set_that_does_not_decode_exits_2_and_writes_nothing(digits_model, tmp_path):
    weights, _, _ = digits_model
    folder = tmp_path / "classes"
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True)
        for i in range(4):
            (folder / str(digit) / f"{i}.png").write_bytes(b"garbage")
    r = runner.invoke(app, ["build", MODEL, "--target", "onnx", "--weights", str(weights), "--num-classes", "10",
                            "--input-size", str(SIZE), "--recipe", "ptq-int8", "--calib", str(folder),
                            "--max-drop", "0.1", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "0 usable images (40 could not be decoded" in r.output.replace("\n", "")
    assert not (tmp_path / "out").exists()
