"""PaddleClas's own exports on Paddle 3, in every form, reach every target and keep their meaning.

The directories are written by PaddleClas 2.6.0's networks, wrapped and saved
the way its tools/export_model.py does (tests/peer/paddleclas_ref.py export):
legacy `.pdmodel`, PIR `.json`, and PIR with the default softmax head. Every
bundle is compared with Paddle Inference on the user's own directory, and
`predict()` scores with PaddleClas's own.
"""

import fcntl
import shutil

import numpy as np
import pytest

from edgekit import api
from edgekit.bundle import read_manifest, verify_files
from edgekit.errors import EdgekitError
from edgekit.export.inference_dir import read_inference_dir

from conftest import assert_arm_parity, run_peer

SIZE = 32
CLASSES = 10
# form -> (FLAGS_enable_pir_api, head)
FORMS = {"legacy": ("0", "none"), "pir": ("1", "none"), "pir-softmax": ("1", "softmax")}


@pytest.fixture(scope="session")
def paddleclas_export(paddleclas_peer, tmp_path_factory):
    """(model, form) -> directory holding infer/ (the export), input.npy and scores.npy (PaddleClas's output)."""
    root = tmp_path_factory.getbasetemp().parent / "edgekit-paddleclas-exports"
    root.mkdir(exist_ok=True)

    def make(model: str, form: str):
        out = root / f"{model}-{form}-{SIZE}"
        with open(root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (out / "scores.npy").is_file():
                shutil.rmtree(out, ignore_errors=True)
                (out / "infer").mkdir(parents=True)
                pir, head = FORMS[form]
                run_peer(paddleclas_peer, "export", str(out / "infer"), model, str(SIZE), "5", str(CLASSES), head,
                         env={"FLAGS_enable_pir_api": pir})
        return out

    return make


@pytest.fixture(scope="session")
def digits32(tmp_path_factory):
    from edgekit.data.digits import make_digits_dataset

    return make_digits_dataset(tmp_path_factory.mktemp("digits32"), size=SIZE)


def _scores_expected(export_dir, form):
    scores = np.load(export_dir / "scores.npy").astype(np.float64)
    if FORMS[form][1] == "softmax":
        return scores
    e = np.exp(scores - scores.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)  # what PaddleClas shows for a logits export (its Topk softmax)


@pytest.mark.parametrize("form", list(FORMS))
def test_each_form_is_read_from_its_program(paddleclas_export, form):
    source = read_inference_dir(paddleclas_export("ResNet50_vd", form) / "infer")
    assert source.form == ("legacy" if form == "legacy" else "pir")
    assert source.input_name == "x" and source.input_shape == (-1, 3, SIZE, SIZE)
    assert source.num_outputs == CLASSES
    assert source.head == ("softmax" if form == "pir-softmax" else None)


TARGETS = ("onnx", "openvino", "paddle", "x86-lite", "arm-lite")
# Every form on every target, less two kinds of repeat: a legacy export on onnx, openvino and paddle is the
# program every build from --weights converts (test_build), and arm-lite runs the same Lite conversion as
# x86-lite (which also measures parity), so it takes the PIR form once, with its softmax head.
CASES = [(model, form, target) for model in ("ResNet50_vd", "EfficientNetB0_small") for form in FORMS
         for target in TARGETS
         if not (form == "legacy" and target in ("onnx", "openvino", "paddle"))
         and not (form == "pir" and target == "arm-lite")]


@pytest.mark.heavy
@pytest.mark.parametrize("model,form,target", CASES)
def test_paddleclas_export_builds_and_keeps_its_scores(paddleclas_export, model, form, target, tmp_path):
    export = paddleclas_export(model, form)
    result = api.build(model, target, inference_model=export / "infer", out=tmp_path / "b")
    manifest = read_manifest(result.path)
    verify_files(result.path, manifest)
    assert manifest["model"]["num_classes"] == CLASSES  # read off the directory
    assert manifest["input"]["name"] == "x"
    assert manifest["output"]["kind"] == ("probabilities" if form == "pir-softmax" else "logits")
    if target == "arm-lite":
        assert_arm_parity(manifest["parity"])
        return
    parity = manifest["parity"]
    assert parity["reference"] == "Paddle Inference on inference." + ("pdmodel" if form == "legacy" else "json")
    assert parity["max_rel_diff"] <= 1e-4 and parity["top1_agreement"] == 1.0
    # predict() scores equal PaddleClas's own (softmax applied once, whatever the form).
    from edgekit.runtime import load

    classifier = load(result.path)
    probs = classifier.probabilities(np.load(export / "input.npy"))
    np.testing.assert_allclose(probs, _scores_expected(export, form), atol=1e-4)


# Each target's INT8 route once, the two networks shared out (the PIR-to-legacy re-export of both networks
# is covered for every target by the FP32 test above); EfficientNet's swish and SE blocks go to OpenVINO,
# which keeps them in float.
INT8_CASES = [("paddle", "ResNet50_vd"), ("arm-lite", "EfficientNetB0_small"), ("onnx", "ResNet50_vd"),
              ("openvino", "EfficientNetB0_small")]


@pytest.mark.heavy
@pytest.mark.parametrize("target,model", INT8_CASES)
def test_ptq_int8_from_a_pir_softmax_export(paddleclas_export, model, target, tmp_path, digits32):
    export = paddleclas_export(model, "pir-softmax")
    result = api.build(model, target, recipe="ptq-int8", inference_model=export / "infer",
                       out=tmp_path / "b", calib=digits32.train_list,
                       recipe_overrides={"ptq.max_drop": None, "ptq.calibration_images": 32,
                                         "ptq.holdout_images": 32},
                       # Random weights: near-tied outputs, whose top-1 agreement 7-bit weights (AVX2 hosts)
                       # move below the INT8 bound; this test is about the PIR export, so full 8 bits.
                       options={"int8_weights": "s8"} if target in ("onnx", "openvino") else None)
    manifest = read_manifest(result.path)
    quant = manifest["compression"]["quantization"]
    paddle_program = target in ("paddle", "arm-lite")
    assert quant["route"].startswith("Paddle PostTrainingQuantization" if paddle_program else "onnxruntime")
    assert manifest["output"]["kind"] == "probabilities"
    if target == "arm-lite":  # an INT8 .nb: about a quarter of the FP32 one
        nb = result.path / "model.nb"
        fp32 = api.build(model, target, inference_model=export / "infer", out=tmp_path / "fp32")
        assert nb.stat().st_size < 0.35 * (fp32.path / "model.nb").stat().st_size


def test_a_directory_of_another_network_names_what_does_not_fit(paddleclas_export, tmp_path):
    export = paddleclas_export("EfficientNetB0_small", "pir")
    with pytest.raises(EdgekitError, match=r"does not hold a ResNet50_vd with 10 classes.*parameters"):
        api.build("ResNet50_vd", "arm-lite", inference_model=export / "infer", out=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_num_classes_must_match_the_directory(paddleclas_export, tmp_path):
    export = paddleclas_export("ResNet50_vd", "pir")
    with pytest.raises(EdgekitError, match="outputs 10 classes but --num-classes is 1000"):
        api.build("ResNet50_vd", "onnx", inference_model=export / "infer", out=tmp_path / "b", num_classes=1000)


def test_paddleclas_label_list_drops_its_ids(paddleclas_peer):
    from edgekit.build.plan import _read_labels

    names = _read_labels(paddleclas_peer / "paddleclas" / "ppcls" / "utils" / "imagenet1k_label_list.txt")
    assert len(names) == 1000 and names[0].startswith("tench") and names[805] == "soccer ball"
    from edgekit.build.plan import strip_label_ids

    # Plain one-name-per-line lists stay as they are, names that start with a number included.
    assert strip_label_ids(["7 up", "cat"]) == ["7 up", "cat"]
    assert strip_label_ids(["0 cat", "1 dog"]) == ["cat", "dog"]
