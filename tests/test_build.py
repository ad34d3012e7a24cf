"""edgekit build: every family to ONNX and OpenVINO, checked against the Paddle source."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
from typer.testing import CliRunner

from conftest import arm_emulation_available, assert_arm_parity
from edgekit import api
from edgekit.bundle import read_manifest
from edgekit.cli import app
from edgekit.data.preprocess import preprocess_batch
from edgekit.data.samples import sample_photos
from edgekit.errors import EdgekitError
from edgekit.zoo import create_model, get_entry, list_families
from edgekit.zoo.cards import get_card

runner = CliRunner()

# One model per family (both code paths where a family has two).
FAMILY_MODELS = [
    "ResNet18", "ResNet50_vc", "ResNeXt50_vd_32x4d", "ResNeSt50_fast_1s1x64d", "EfficientNetB0_small",
    "EfficientNetB0", "AlexNet", "SqueezeNet1_1", "DarkNet53",
    pytest.param("ResNeXt101_32x8d_wsl", marks=pytest.mark.heavy),
    pytest.param("SENet154_vd", marks=pytest.mark.heavy),
]


HEAVY_BUILDS = ("ResNeXt101_32x8d_wsl", "SENet154_vd")
HEAVY_BUILD_SIZE = 64


def _names(params):
    return [p if isinstance(p, str) else p.values[0] for p in params]


def test_family_models_cover_every_family():
    assert {get_entry(n).family for n in _names(FAMILY_MODELS)} == set(list_families())


def save_weights(name: str, path: Path, num_classes: int = 10, seed: int = 3) -> Path:
    """Random weights with random BatchNorm statistics: logits far from zero, so parity means something."""
    from peer.paddleclas_ref import randomize

    with paddle.utils.unique_name.guard():
        model = create_model(name, num_classes=num_classes)
    randomize(model, seed)
    paddle.save(model.state_dict(), str(path))
    return path


def paddle_logits(name: str, weights: Path, batch: np.ndarray, num_classes: int = 10) -> np.ndarray:
    from edgekit.zoo.weights import load_weights

    with paddle.utils.unique_name.guard():
        model = create_model(name, num_classes=num_classes)
    load_weights(model, weights)
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(batch)).numpy()


@pytest.mark.parametrize("target", ["onnx", "openvino"])
@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_build_matches_paddle_source(name, target, tmp_path):
    weights = save_weights(name, tmp_path / "w.pdparams")
    # The heavy networks convert the same graph at any size; at 64 px their parity costs a tenth.
    size = HEAVY_BUILD_SIZE if name in HEAVY_BUILDS else None
    result = api.build(name, target, weights=weights, out=tmp_path / "bundle", num_classes=10, input_size=size)
    manifest = read_manifest(result.path)
    parity = manifest["parity"]
    assert parity["measured"] and parity["passed"] and parity["top1_agreement"] == 1.0
    assert parity["min_cosine"] > 0.99999 and parity["reference_max_abs_logit"] > 0.1
    # Independently of the build's own check: the runtime on a real photo.
    from edgekit.runtime import load

    photos = sample_photos(3)
    preprocessing = get_card(name).preprocessing
    if size:
        preprocessing = dataclasses.replace(preprocessing, resize_short=size, crop=size)
    batch = preprocess_batch(list(photos.values()), preprocessing)
    ours = load(result.path).run(batch)
    theirs = paddle_logits(name, weights, batch)
    np.testing.assert_allclose(ours, theirs, atol=1e-3 * max(1.0, np.abs(theirs).max()))
    assert manifest["weights"]["sha256"] and not manifest["weights"]["random_init"]
    assert manifest["preprocessing"]["crop"] == (size or get_card(name).crop_size)


@pytest.fixture(scope="module")
def resnet18_onnx(tmp_path_factory):
    root = tmp_path_factory.mktemp("r18")
    weights = save_weights("ResNet18", root / "w.pdparams")
    labels = root / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(10)))
    result = api.build("ResNet18", "onnx", weights=weights, out=root / "bundle", labels=labels)
    return result.path, weights


def test_runtime_in_a_fresh_process_classifies_a_photo_like_paddle(resnet18_onnx, tmp_path):
    bundle, weights = resnet18_onnx
    from skimage import data
    import cv2

    photo = tmp_path / "chelsea.png"
    cv2.imwrite(str(photo), cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR))
    code = ("import json, sys; from edgekit.runtime import load; "
            "p = load(sys.argv[1]).predict([sys.argv[2]])[0][0]; print(json.dumps([p.class_id, p.label]))")
    out = subprocess.run([sys.executable, "-c", code, str(bundle), str(photo)], capture_output=True, text=True,
                         check=True).stdout
    class_id, label = json.loads(out.strip().splitlines()[-1])
    batch = preprocess_batch([data.chelsea()], get_card("ResNet18").preprocessing)
    assert class_id == int(paddle_logits("ResNet18", weights, batch).argmax())
    assert label == f"class {class_id}"


def test_bundle_app_runs(resnet18_onnx, tmp_path):
    bundle, _ = resnet18_onnx
    from skimage import data
    import cv2

    photo = tmp_path / "coffee.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    out = subprocess.run([sys.executable, str(bundle / "app" / "predict.py"), str(photo)], capture_output=True,
                         text=True, check=True).stdout
    assert "coffee.jpg" in out and "class " in out


def test_manifest_lists_every_file_with_checksums(resnet18_onnx):
    bundle, _ = resnet18_onnx
    manifest = read_manifest(bundle)
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {"edgekit.json"}
    assert set(manifest["files"]) == on_disk
    assert {"model.onnx", "labels.txt", "app/predict.py"} <= on_disk
    for key in ("schema", "model", "weights", "target", "recipe", "input", "preprocessing", "parity", "tools",
                "build", "validations"):
        assert key in manifest
    assert manifest["tools"]["paddle2onnx"] and manifest["target"]["runtime"] == "onnxruntime"


def test_tampered_bundle_is_refused(resnet18_onnx, tmp_path):
    import shutil

    from edgekit.runtime import load

    copy = tmp_path / "copy"
    shutil.copytree(resnet18_onnx[0], copy)
    with open(copy / "model.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(EdgekitError, match="model.onnx \\(checksum mismatch\\)"):
        load(copy)


def test_arm_lite_build_writes_a_verified_nb_and_measures_parity_only_under_emulation(tmp_path):
    from edgekit.bundle import verify_files

    weights = save_weights("EfficientNetB0_small", tmp_path / "w.pdparams")
    result = api.build("EfficientNetB0_small", "arm-lite", weights=weights, out=tmp_path / "b", num_classes=10)
    manifest = read_manifest(result.path)
    verify_files(result.path, manifest)
    nb = result.path / "model.nb"
    assert nb.stat().st_size > 1_000_000 and nb.read_bytes()[2:10] == b"v2.13-rc"
    assert_arm_parity(manifest["parity"])
    assert {"app/main.cc", "app/CMakeLists.txt", "app/preprocess.txt"} <= set(manifest["files"])
    checked = ["parity check"] if arm_emulation_available() else []
    assert [s["name"] for s in manifest["build"]["steps"]] == ["export paddle program", "paddle2lite", *checked]


@pytest.mark.parametrize("name", ["ResNet18", "EfficientNetB0"])
def test_x86_lite_build_runs_here_and_matches_paddle(name, tmp_path):
    weights = save_weights(name, tmp_path / "w.pdparams")
    result = api.build(name, "x86-lite", weights=weights, out=tmp_path / "b", num_classes=10)
    parity = result.manifest["parity"]
    assert parity["measured"] and parity["passed"] and parity["top1_agreement"] == 1.0
    assert parity["reference_max_abs_logit"] > 0.1  # the comparison is not between two near-zero vectors


def test_missing_lite_toolchain_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_LITE_PYTHON", str(tmp_path / "no-such-python"))
    r = _cli("build", "ResNet18", "--target", "arm-lite", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "no-such-python" in r.output
    assert not (tmp_path / "o").exists()


def test_random_init_build_is_marked(tmp_path):
    result = api.build("SqueezeNet1_1", "paddle", out=tmp_path / "b", num_classes=10)
    assert result.manifest["weights"] == {"source": "random-init", "sha256": None, "random_init": True}
    assert result.manifest["parity"]["passed"]


def test_fp16_onnx_build_within_fp16_tolerance(tmp_path):
    weights = save_weights("SqueezeNet1_1", tmp_path / "w.pdparams")
    result = api.build("SqueezeNet1_1", "onnx", "fp16", weights=weights, out=tmp_path / "b", num_classes=10)
    parity = result.manifest["parity"]
    assert parity["passed"] and parity["min_cosine"] > 0.999
    assert (tmp_path / "b" / "model.onnx").stat().st_size < 0.6 * 1.24e6 * 4 + 200_000


def test_build_from_inference_model_dir(tmp_path):
    from edgekit.export.paddle import export_legacy_program

    weights = save_weights("ResNet18", tmp_path / "w.pdparams")
    export_legacy_program("ResNet18", 10, weights, tmp_path / "infer", 224)
    result = api.build("ResNet18", "openvino", inference_model=tmp_path / "infer", out=tmp_path / "b",
                       num_classes=10)
    assert result.manifest["parity"]["reference"].startswith("Paddle Inference")
    assert result.manifest["parity"]["top1_agreement"] == 1.0


# --- bad input: exit 2, one clear paragraph, nothing half-written ---------------------------------

def _cli(*args):
    return runner.invoke(app, list(args))


def test_unknown_model_and_target_exit_2_with_suggestions(tmp_path):
    r = _cli("build", "ResNet5O", "--target", "onnx", "--out", str(tmp_path / "x"))
    assert r.exit_code == 2 and "ResNet50" in r.output
    r = _cli("build", "ResNet50", "--target", "onyx", "--out", str(tmp_path / "x"))
    assert r.exit_code == 2 and "onnx" in r.output
    r = _cli("build", "ResNet50", "--target", "arm-lite", "-o", "arch=mips", "--out", str(tmp_path / "x"))
    assert r.exit_code == 2 and "armv8" in r.output
    assert not (tmp_path / "x").exists()


def test_weights_that_do_not_fit_name_parameters_and_leave_nothing(tmp_path):
    weights = save_weights("ResNet18", tmp_path / "w.pdparams", num_classes=10)
    r = _cli("build", "ResNet34", "--target", "onnx", "--weights", str(weights), "--num-classes", "10",
             "--out", str(tmp_path / "out"))
    assert r.exit_code == 2 and "missing" in r.output and "blocks." in r.output
    assert list(tmp_path.iterdir()) == [weights]


def test_corrupt_weights_and_existing_out_dir(tmp_path):
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(b"not a pickle at all")
    r = _cli("build", "ResNet18", "--target", "onnx", "--weights", str(bad), "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "bad.pdparams" in r.output
    (tmp_path / "exists").mkdir()
    r = _cli("build", "ResNet18", "--target", "onnx", "--out", str(tmp_path / "exists"))
    assert r.exit_code == 2 and "--force" in r.output


def test_inference_model_dir_without_model_files(tmp_path):
    (tmp_path / "infer").mkdir()
    r = _cli("build", "ResNet18", "--target", "onnx", "--inference-model", str(tmp_path / "infer"))
    assert r.exit_code == 2 and "inference.pdmodel" in r.output


def test_labels_must_match_class_count(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    r = _cli("build", "ResNet18", "--target", "onnx", "--labels", str(labels), "--num-classes", "10",
             "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "2 names" in r.output


def test_targets_command_lists_every_target():
    r = _cli("targets", "--json")
    assert r.exit_code == 0
    names = {t["name"] for t in json.loads(r.output)}
    assert {"onnx", "openvino", "paddle", "arm-lite"} <= names
