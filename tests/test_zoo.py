"""The registry, the cards and the zoo CLI."""

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.errors import EdgekitError
from edgekit.zoo import create_model, get_entry, list_models
from edgekit.zoo.cards import card_names, get_card
from edgekit.zoo.counts import count_flops, count_trainable_params

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
runner = CliRunner()

# Forward passes at full crop size above this cost get the heavy marker.
HEAVY_GFLOPS = 20.0


def _forward_cases():
    for name in card_names():
        marks = [pytest.mark.heavy] if (get_card(name).flops_g or 0) > HEAVY_GFLOPS else []
        yield pytest.param(name, marks=marks, id=name)


def test_registry_holds_exactly_the_seed_models():
    assert sorted(list_models()) == sorted(card_names())
    assert len(list_models()) == 52


@pytest.mark.parametrize("name", _forward_cases())
def test_builds_and_classifies_at_crop_size(name):
    card = get_card(name)
    if (card.flops_g or 0) > HEAVY_GFLOPS:
        # Over 20 GFLOPs (up to 350 for Fix_ResNeXt101_32x48d_wsl at 320 px): the network is traced at its crop
        # size in a static program, which checks every shape without computing; its numbers are checked at
        # 64 px against PaddleClas's own network (test_zoo_fidelity).
        assert _static_output_shape(name, card.crop_size) == (1, 10)
        return
    with paddle.utils.unique_name.guard():
        model = create_model(name, num_classes=10)
    model.eval()
    with paddle.no_grad():
        out = model(paddle.rand([1, 3, card.crop_size, card.crop_size])).numpy()
    assert out.shape == (1, 10) and np.isfinite(out).all()


def _static_output_shape(name: str, size: int) -> tuple[int, ...]:
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup), paddle.utils.unique_name.guard():
            model = create_model(name, num_classes=10)
            model.eval()
            out = model(paddle.static.data("x", [1, 3, size, size], "float32"))
        return tuple(out.shape)
    finally:
        paddle.disable_static()


@pytest.mark.parametrize("name", list_models())
def test_card_computed_params_match_the_network(name):
    card = get_card(name)
    with paddle.utils.unique_name.guard(), paddle.LazyGuard():
        model = create_model(name)
    assert card.computed_params_m == pytest.approx(count_trainable_params(model) / 1e6, abs=1e-4)


@pytest.mark.parametrize("name", ["ResNet50", "EfficientNetB0_small", "AlexNet", "ResNeSt50_fast_1s1x64d"])
def test_card_computed_flops_match_the_network(name):
    card = get_card(name)
    with paddle.utils.unique_name.guard():
        model = create_model(name)
    assert card.computed_flops_g == pytest.approx(count_flops(model, card.crop_size) / 1e9, abs=1e-3)


def test_resnet50_flops_follow_the_seed_convention():
    # The seeds count ~2 FLOPs per multiply-add: ResNet50 is 8.19 G published.
    card = get_card("ResNet50")
    assert card.computed_flops_g == pytest.approx(card.flops_g, rel=0.01)
    assert not card.discrepancies


def test_discrepancies_are_flagged_with_the_computed_value():
    flagged = [get_card(n) for n in list_models() if get_card(n).discrepancies]
    assert flagged, "the seeds are known to disagree with PaddleClas on some rows"
    for card in flagged:
        for key, d in card.discrepancies.items():
            assert abs(d["computed"] / d["published"] - 1) > 0.01
            assert d["computed"] == getattr(card, f"computed_{key}")


def test_missing_cells_stay_missing():
    b6 = get_card("EfficientNetB6")
    assert b6.latency_ms["t4_trt_fp16"] == {1: pytest.approx(30.05911)}
    assert get_card("ResNeSt200").latency_ms["v100_trt_fp32"] == {}
    assert get_card("ResNet18_vd").ref_top1 is None


def test_variants_share_their_base_network():
    fix = get_entry("Fix_ResNet50_vd_ssld")
    base = get_entry("ResNet50_vd")
    assert fix.builder is base.builder and fix.kwargs == base.kwargs
    assert fix.paddleclas_name == "ResNet50_vd"
    assert get_card("Fix_ResNet50_vd_ssld").crop_size == 320


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seed pages not beside the repo")
def test_committed_cards_match_the_seed_pages():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_cards", Path(__file__).parents[1] / "scripts" / "make_cards.py")
    make_cards = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_cards)
    fresh = make_cards.parse_seeds(SEEDS)
    committed = json.loads((Path(__file__).parents[1] / "edgekit" / "zoo" / "cards.json").read_text())["models"]
    for name, card in fresh.items():
        assert {k: v for k, v in committed[name].items() if k != "computed"} == card, name


def test_unknown_model_suggests_close_names():
    with pytest.raises(EdgekitError, match="ResNet50_vd"):
        create_model("ResNet50vd")


def test_cli_unknown_model_exits_2():
    result = runner.invoke(app, ["zoo", "show", "ResNet50vd"])
    assert result.exit_code == 2
    assert "Did you mean" in result.output


def test_cli_zoo_list_json_has_every_seed_model_with_card_fields():
    result = runner.invoke(app, ["zoo", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert sorted(r["name"] for r in rows) == sorted(card_names())
    for row in rows:
        for field in ("top1", "top5", "ref_top1", "ref_top5", "flops_g", "params_m", "crop_size",
                      "resize_short", "latency_ms", "preprocessing", "computed", "discrepancies"):
            assert field in row
        assert set(row["latency_ms"]) == {"v100_trt_fp32", "t4_trt_fp16", "t4_trt_fp32"}


def test_cli_zoo_list_family_and_show():
    result = runner.invoke(app, ["zoo", "list", "--family", "efficientnet"])
    assert result.exit_code == 0 and "EfficientNetB0_small" in result.output and "ResNet50" not in result.output
    result = runner.invoke(app, ["zoo", "list", "--family", "nope"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["zoo", "show", "EfficientNetB3"])
    assert result.exit_code == 0 and "300" in result.output and "T4, TensorRT FP16" in result.output


def test_cli_version_and_doctor():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "edgekit" in result.output
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    names = {c["component"] for c in json.loads(result.output)}
    assert {"paddlepaddle", "onnxruntime", "openvino", "paddle2onnx"} <= names
