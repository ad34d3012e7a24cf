"""Tests over the registries: every target, every shipped recipe, every compression pass.

One test per entry (parametrised), so a new target, recipe or pass is tested
the day it is added, and one broken entry does not hide the others.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_arm_parity
from edgekit import api
from edgekit.build import plan_build
from edgekit.bundle import read_manifest, verify_files
from edgekit.compress.passes import PASS_PARAMS
from edgekit.compress.recipes import list_recipes
from edgekit.errors import EdgekitError
from edgekit.targets import adapter_for, list_targets

TARGETS = {t.name: t for t in list_targets()}
RECIPES = {r.name: r for r in list_recipes()}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@pytest.fixture(scope="module")
def calib_list(tmp_path_factory) -> Path:
    from edgekit.data.digits import make_digits_dataset

    # All 450 validation digits: enough held-out images for the INT8 recipes' max_drop (checked at plan time).
    return make_digits_dataset(tmp_path_factory.mktemp("digits"), size=32).val_list


# ---------------------------------------------------------------- targets

@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_target_builds_a_tiny_model(name, tmp_path):
    target = TARGETS[name]
    adapter = adapter_for(target.runtime)  # every target's runtime has its adapter
    result = api.build("SqueezeNet1_1", name, out=tmp_path / name, num_classes=10, input_size=32)
    manifest = read_manifest(result.path)
    verify_files(result.path, manifest)
    assert manifest["target"]["name"] == name and manifest["target"]["runtime"] == adapter.runtime
    assert (result.path / manifest["artifact"]["model_file"]).stat().st_size > 0
    assert any(p.is_file() for p in (result.path / "app").iterdir())
    # Parity is measured on the artifact itself wherever the host runs it (ARM: under emulation, when an ARM
    # Lite runtime and qemu are here), and says why not elsewhere.
    if target.runs_on_host:
        assert manifest["parity"]["measured"] and manifest["parity"]["passed"]
        assert manifest["parity"]["top1_agreement"] == 1.0
    else:
        assert_arm_parity(manifest["parity"])


@pytest.mark.parametrize("name, precision", [(t, p) for t in sorted(TARGETS) for p in PRECISIONS
                                             if p not in TARGETS[t].precisions])
def test_every_target_refuses_what_it_does_not_support(name, precision, tmp_path):
    with pytest.raises(EdgekitError) as info:
        plan_build("SqueezeNet1_1", name, precision if precision != "int8" else "fp32", out=tmp_path / "x",
                   recipe="ptq-int8" if precision == "int8" else None)
    message = str(info.value)
    assert name in message and precision in message and ", ".join(TARGETS[name].precisions) in message
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_target_option_is_checked_before_work(name, tmp_path):
    with pytest.raises(EdgekitError, match=f"--option 'bogus': target {name!r} has no such option"):
        plan_build("SqueezeNet1_1", name, out=tmp_path / "x", options={"bogus": "1"})
    for key, spec in TARGETS[name].options.items():
        if spec.choices:
            with pytest.raises(EdgekitError, match=f"--option {key}='not-a-choice' is not valid for target"):
                plan_build("SqueezeNet1_1", name, out=tmp_path / "x", options={key: "not-a-choice"})


# ---------------------------------------------------------------- recipes

@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_loads_and_goes_into_a_manifest(name):
    recipe = RECIPES[name]
    assert recipe.source == f"recipes/{name}.yaml" and recipe.description
    assert recipe.precision in PRECISIONS
    json.dumps(recipe.to_manifest())
    assert all(p.kind in PASS_PARAMS for p in recipe.passes)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_is_planned_or_refused_with_its_reason(name, calib_list, tmp_path):
    recipe = RECIPES[name]
    out = tmp_path / "x"
    if not recipe.needs_data:  # bf16 is OpenVINO's alone
        target = next(t for t in ("onnx", "openvino") if recipe.precision in TARGETS[t].precisions)
        plan = plan_build("ResNet18", target, recipe=name, out=out, num_classes=10, input_size=32)
        assert plan.precision == recipe.precision and plan.compression is None
        return
    with pytest.raises(EdgekitError, match="needs labeled images.*--calib"):
        plan_build("ResNet18", "onnx", recipe=name, out=out, num_classes=10, input_size=32)
    if recipe.distillation is not None:  # a shipped distill recipe cannot know the user's teacher
        with pytest.raises(EdgekitError, match="teacher_weights"):
            plan_build("ResNet18", "onnx", recipe=name, calib=calib_list, out=out, num_classes=10, input_size=32)
        return
    plan = plan_build("ResNet18", "onnx", recipe=name, calib=calib_list, out=out, num_classes=10, input_size=32)
    assert plan.precision == recipe.precision and plan.compression is not None
    assert not out.exists()


# ---------------------------------------------------------------- passes

@pytest.mark.parametrize("kind", sorted(PASS_PARAMS))
def test_every_pass_field_is_typed_and_documented(kind):
    params = PASS_PARAMS[kind]
    assert params.kind == kind and params.__doc__
    for field_name, field in params.model_fields.items():
        assert field.description, f"{kind}.{field_name} has no description"
        assert field.annotation is not None


@pytest.mark.parametrize("kind", sorted(PASS_PARAMS))
def test_every_pass_refuses_unknown_keys(kind):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="no_such_key"):
        PASS_PARAMS[kind].model_validate({"no_such_key": 1})


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "paddle-inference"])
def test_a_runtime_that_does_not_import_is_a_clear_error(runtime, tmp_path):
    """In a fresh interpreter where the runtime's module cannot be imported (sys.modules entry None)."""
    import subprocess
    import sys

    from edgekit import openers

    module = openers.RUNTIMES[runtime][0]
    code = (f"import sys; sys.modules[{module.split('.')[0]!r}] = None\n"
            "from edgekit.errors import EdgekitError\nfrom edgekit.targets import adapter_for\n"
            f"try:\n    adapter_for({runtime!r}).open({str(tmp_path / 'model')!r})\n"
            "except EdgekitError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"needs the {runtime} runtime" in out.stdout and openers.RUNTIMES[runtime][1] in out.stdout
