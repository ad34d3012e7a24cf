"""Recipes as validated data: shipped ones load, bad ones are refused before any work, naming file and key."""

import json
from pathlib import Path

import paddle
import pytest
from typer.testing import CliRunner

from edgekit.build import plan_build
from edgekit.cli import app
from edgekit.compress.recipes import get_recipe, list_recipes, with_overrides
from edgekit.errors import EdgekitError

runner = CliRunner()
REQUIRED = {"fp32", "fp16", "bf16", "ptq-int8", "qat-int8", "distill", "distill+ptq-int8"}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def calib_list(tmp_path_factory):
    """A list file of 40 real digit images (labels 0-9), enough for plan-time checks."""
    from edgekit.data.digits import make_digits_dataset

    ds = make_digits_dataset(tmp_path_factory.mktemp("digits"), size=32)
    lines = ds.val_list.read_text().splitlines()[:40]
    return write(ds.root / "small_list.txt", "\n".join(lines) + "\n")


def test_shipped_recipes_validate_and_cover_the_required_set():
    recipes = {r.name: r for r in list_recipes()}
    assert REQUIRED <= set(recipes)
    assert recipes["ptq-int8"].precision == "int8" and recipes["ptq-int8"].quantization.kind == "ptq"
    assert [p.kind for p in recipes["distill+ptq-int8"].passes] == ["distill", "ptq"]
    assert recipes["fp32"].passes == [] and not recipes["fp16"].needs_data
    # Per-recipe and per-pass checks (source, manifest, documented fields): tests/test_registries.py.


@pytest.mark.parametrize("body, expected", [
    ("name: x\nprecision: int8\npasses:\n  - pass: ptq\n    algoritm: minmax\n",
     ["unknown key `passes[0](ptq).algoritm`", "algorithm"]),
    ("name: x\nprecision: int8\npasses:\n  - pass: ptq\n    calibration_images: many\n",
     ["`passes[0](ptq).calibration_images`", "integer", "'many'"]),
    ("name: x\nprecision: int8\npasses:\n  - pass: ptqq\n", ["`passes[0].pass`", "ptq"]),
    ("name: x\nprecision: fp32\npasses:\n  - pass: ptq\n", ["quantization pass", "precision: int8"]),
    ("name: x\nprecision: int8\npasses: []\n", ["exactly one quantization pass"]),
    ("name: x\nprecision: int4\npasses: []\n", ["`precision`", "'int4'"]),
    ("name: x\nprecison: int8\n", ["unknown key `precison`", "precision"]),
    ("name: x\nprecision: int8\npasses:\n  - pass: ptq\n    max_drop: -1\n", ["max_drop", "greater than or equal"]),
    ("name: x\nprecision: fp32\npasses:\n  - pass: distill\n    teacher: ResNet5O\n",
     ["`passes[0](distill)`", "ResNet50"]),
    ("name: [x\n", ["not valid YAML"]),
])
def test_bad_recipe_files_name_the_file_and_the_key(tmp_path, body, expected):
    path = write(tmp_path / "mine.yaml", body)
    with pytest.raises(EdgekitError) as info:
        get_recipe(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_unknown_recipe_name_suggests():
    with pytest.raises(EdgekitError, match="ptq-int8"):
        get_recipe("ptq-int9")


def test_overrides_are_validated_like_the_file():
    recipe = with_overrides(get_recipe("ptq-int8"), {"ptq.max_drop": "0.005", "ptq.algorithm": "entropy"})
    assert recipe.quantization.max_drop == 0.005 and recipe.quantization.algorithm == "entropy"
    with pytest.raises(EdgekitError, match="algorithm"):
        with_overrides(get_recipe("ptq-int8"), {"ptq.algorithm": "median"})
    with pytest.raises(EdgekitError, match="PASS.KEY"):
        with_overrides(get_recipe("ptq-int8"), {"qat.epochs": 3})


def test_recipe_file_by_path_with_a_relative_teacher_path(tmp_path):
    path = write(tmp_path / "d.yaml", "name: mine\nprecision: fp32\npasses:\n  - pass: distill\n"
                                      "    teacher: ResNet50_vd\n    teacher_weights: t.pdparams\n")
    assert get_recipe(path).distillation.teacher_weights == tmp_path / "t.pdparams"


# --- plan time: everything checked before any work -------------------------------------------------

def test_int8_needs_calibration_data(tmp_path):
    with pytest.raises(EdgekitError, match="--calib"):
        plan_build("ResNet18", "onnx", recipe="ptq-int8", num_classes=10, out=tmp_path / "o")


def test_max_drop_and_calib_limit_flags_override_the_recipe(tmp_path, calib_list):
    plan = plan_build("ResNet18", "onnx", recipe="ptq-int8", calib=calib_list, max_drop=0.1, calib_limit=20,
                      num_classes=10, out=tmp_path / "o")
    assert plan.precision == "int8" and plan.out == tmp_path / "o"
    quant = plan.recipe.quantization
    assert quant.max_drop == 0.1 and quant.calibration_images == 20
    assert plan.compression.split.holdout == 20 and plan.compression.split.calibration == 20
    assert plan.recipe.to_manifest()["passes"][0]["max_drop"] == 0.1


def test_default_out_dir_names_the_recipe(calib_list, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    plan = plan_build("ResNet18", "paddle", recipe="ptq-int8", calib=calib_list, max_drop=0.1, num_classes=10)
    assert plan.out == Path("dist/ResNet18-paddle-ptq-int8")


def test_too_small_calibration_set(tmp_path, calib_list):
    # Beside the images, since list paths are relative to the list file.
    tiny = write(calib_list.parent / "tiny.txt", "\n".join(calib_list.read_text().splitlines()[:10]) + "\n")
    with pytest.raises(EdgekitError, match="tiny.txt has 10 images: too few"):
        plan_build("ResNet18", "onnx", recipe="ptq-int8", calib=tiny, num_classes=10, out=tmp_path / "o")


def test_budget_finer_than_the_held_out_set_can_measure(tmp_path, calib_list):
    with pytest.raises(EdgekitError, match="max_drop 0.005 needs at least 200 held-out images"):
        plan_build("ResNet18", "onnx", recipe="ptq-int8", calib=calib_list, max_drop=0.005, num_classes=10,
                   out=tmp_path / "o")


def test_labels_out_of_range(tmp_path, calib_list):
    with pytest.raises(EdgekitError, match="outside 0..4"):
        plan_build("ResNet18", "onnx", recipe="ptq-int8", calib=calib_list, max_drop=0.1, num_classes=5,
                   out=tmp_path / "o")


def test_empty_and_missing_calibration_sets(tmp_path):
    empty = write(tmp_path / "empty.txt", "\n")
    with pytest.raises(EdgekitError, match="empty.txt has no samples"):
        plan_build("ResNet18", "onnx", recipe="ptq-int8", calib=empty, num_classes=10, out=tmp_path / "o")
    with pytest.raises(EdgekitError, match="--calib.*nope.txt does not exist"):
        plan_build("ResNet18", "onnx", recipe="ptq-int8", calib=tmp_path / "nope.txt", num_classes=10,
                   out=tmp_path / "o")


def test_target_without_int8_and_contradicting_precision(tmp_path, calib_list):
    with pytest.raises(EdgekitError, match="x86-lite.*does not support precision 'int8'"):
        plan_build("ResNet18", "x86-lite", recipe="ptq-int8", calib=calib_list, num_classes=10, out=tmp_path / "o")
    with pytest.raises(EdgekitError, match="--precision fp16 contradicts recipe 'ptq-int8'"):
        plan_build("ResNet18", "onnx", "fp16", recipe="ptq-int8", calib=calib_list, num_classes=10,
                   out=tmp_path / "o")
    with pytest.raises(EdgekitError, match="--calib is used by recipes with compression passes"):
        plan_build("ResNet18", "onnx", calib=calib_list, num_classes=10, out=tmp_path / "o")


def test_teacher_with_another_class_count_is_refused(tmp_path, calib_list):
    from edgekit.zoo import create_model

    with paddle.utils.unique_name.guard():
        teacher = create_model("ResNet18", num_classes=100)
    weights = tmp_path / "teacher.pdparams"
    paddle.save(teacher.state_dict(), str(weights))
    recipe = write(tmp_path / "d.yaml", "name: d\nprecision: fp32\npasses:\n  - pass: distill\n"
                                        "    teacher: ResNet18\n    teacher_weights: teacher.pdparams\n")
    with pytest.raises(EdgekitError) as info:
        plan_build("SqueezeNet1_1", "onnx", recipe=recipe, calib=calib_list, num_classes=10, out=tmp_path / "o")
    message = str(info.value)
    assert str(recipe) in message and "`distill.teacher_weights`" in message
    assert "predicts 100 classes" in message and "student predicts 10" in message
    with pytest.raises(EdgekitError, match="teacher_weights` is required"):
        plan_build("SqueezeNet1_1", "onnx", recipe="distill", calib=calib_list, num_classes=10, out=tmp_path / "o")


# --- CLI -------------------------------------------------------------------------------------------

def test_recipes_command_lists_and_shows():
    r = runner.invoke(app, ["recipes", "--json"])
    assert r.exit_code == 0
    assert REQUIRED <= {x["name"] for x in json.loads(r.output)}
    r = runner.invoke(app, ["recipes", "ptq-int8"])
    assert r.exit_code == 0 and "max_drop=0.01" in r.output.replace("\n", "")


def test_bad_recipe_from_the_cli_exits_2_and_writes_nothing(tmp_path):
    bad = write(tmp_path / "bad.yaml", "name: b\nprecision: int8\npasses:\n  - pass: ptq\n    per_chanel: true\n")
    r = runner.invoke(app, ["build", "ResNet18", "--target", "onnx", "--recipe", str(bad), "--out",
                            str(tmp_path / "out")])
    assert r.exit_code == 2 and "per_chanel" in r.output and "bad.yaml" in r.output
    assert not (tmp_path / "out").exists()
    r = runner.invoke(app, ["build", "ResNet18", "--target", "onnx", "--recipe", "ptq-int8", "--recipe-set",
                            "oops", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "PASS.KEY" not in r.output and "KEY=VALUE" in r.output


def test_precision_int8_without_a_recipe_points_to_the_recipes(tmp_path):
    with pytest.raises(EdgekitError, match="--recipe ptq-int8"):
        plan_build("ResNet18", "onnx", "int8", num_classes=10, out=tmp_path / "o")
