"""`edgekit build MODEL --target fastest`: real candidates built and benched in one interleaved run, the
fastest within the accuracy budget kept (byte for byte) with its selection table; bad input exits 2 before
any build starts."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgekit.bench.host import host_info
from edgekit.fastest import CandidateOutcome, choose
from edgekit.bundle import read_manifest, verify_files
from edgekit.cli import app
from test_quantize import MODEL, SIZE, digits_model  # noqa: F401  (the digits-trained model, trained once)

runner = CliRunner()


def _fastest(digits_model, out, *args):
    weights, _, calib = digits_model
    return runner.invoke(app, ["build", MODEL, "--target", "fastest", "--weights", str(weights), "--num-classes",
                               "10", "--input-size", str(SIZE), "--calib", str(calib), "--out", str(out),
                               *args])


def test_keeps_the_fastest_candidate_within_the_budget(digits_model, tmp_path):
    out = tmp_path / "fast"
    result = _fastest(digits_model, out, "--candidates", "paddle:fp32,onnx:fp32,onnx:int8")
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    verify_files(out, manifest)  # the winner's files, with the selection record added to its manifest
    selection = manifest["selection"]
    rows = {row["candidate"]: row for row in selection["candidates"]}
    assert list(rows) == ["paddle:fp32", "onnx:fp32", "onnx:int8"]
    assert all(row["status"] in ("chosen", "slower") and row["median_ms"] > 0 for row in rows.values()), rows
    fastest = min(rows.values(), key=lambda row: row["median_ms"])
    assert selection["chosen"] == fastest["candidate"] and fastest["status"] == "chosen"
    assert manifest["target"]["name"] == fastest["target"] and manifest["target"]["precision"] == fastest["precision"]
    assert rows["paddle:fp32"]["speedup_vs_baseline"] == 1.0
    for row in rows.values():  # every ratio is the baseline's latency over the candidate's
        assert row["speedup_vs_baseline"] == pytest.approx(rows["paddle:fp32"]["median_ms"] / row["median_ms"],
                                                           rel=1e-2)
    int8 = rows["onnx:int8"]
    assert int8["runtime_precision"] == "int8" and int8["top1_drop"] <= 0.01
    assert rows["onnx:fp32"]["accuracy"].startswith("matches the source")
    assert selection["cpu"] and selection["batch"] == 1
    assert "chosen" in result.output and "vs Paddle Inference" in result.output


def test_a_bf16_candidate_is_held_to_the_budget_on_the_calib_images(digits_model, tmp_path):
    """Named, bf16 builds on any CPU; where the CPU computes bf16 natively it runs in bf16, elsewhere in f32."""
    out = tmp_path / "fast"
    result = _fastest(digits_model, out, "--candidates", "paddle:fp32,openvino:fp32,openvino:bf16")
    assert result.exit_code == 0, result.output
    rows = {row["candidate"]: row for row in read_manifest(out)["selection"]["candidates"]}
    bf16 = rows["openvino:bf16"]
    assert bf16["status"] in ("chosen", "slower") and bf16["median_ms"] > 0
    assert bf16["runtime_precision"] == ("bf16" if host_info().has_bf16 else "f32")
    # Validated on the --calib images (400: all held out, nothing is calibrated) against the FP32 model.
    assert bf16["accuracy"].startswith("bf16 top-1 drop") and "on 400 --calib images" in bf16["accuracy"]
    # Against the seeds' route when it was built (Paddle Inference), not the slower dygraph source.
    assert "against paddle:fp32" in bf16["accuracy"]
    assert bf16["fp32_top1"] > 0.5 and bf16["top1_drop"] <= 0.01
    assert bf16["top1_drop"] == pytest.approx(bf16["fp32_top1"] - bf16["top1"], abs=1e-6)
    assert rows["openvino:fp32"]["top1_drop"] is None


def _outcome(name: str, ms: float | None, status: str = "measured") -> CandidateOutcome:
    target, precision = name.split(":")
    return CandidateOutcome(name, target, precision, status, median_ms=ms)


def test_choice_is_the_lowest_median_and_close_calls_say_so():
    outcomes = [_outcome("paddle:fp32", 90.0), _outcome("onnx:fp32", 70.0), _outcome("openvino:int8", 35.0),
                _outcome("onnx:int8", None, "rejected")]
    winner = choose(outcomes)
    assert winner.candidate == "openvino:int8" and winner.speedup_vs_baseline == pytest.approx(90 / 35, rel=1e-3)
    assert [o.status for o in outcomes] == ["slower", "slower", "chosen", "rejected"]
    assert "is within" not in winner.reason
    close = [_outcome("onnx:int8", 36.0), _outcome("openvino:int8", 35.0)]
    assert "onnx:int8 is within 5%" in choose(close).reason
    with pytest.raises(Exception, match="No candidate was measured"):
        choose([_outcome("onnx:int8", None, "rejected")])


@pytest.mark.parametrize("args,named", [
    (["--candidates", "arm-lite:fp32"], ["--candidates arm-lite:fp32", "runs here"]),
    (["--candidates", "onnx:int4"], ["--candidates onnx:int4", "int8"]),
    (["--candidates", "onnx:fp32", "--recipe", "fp16"], ["--recipe fp16", "INT8 recipe"]),
    (["--candidates", "paddle:fp32", "-o", "int8_weights=s8"], ["--option int8_weights", "paddle"]),
    (["--precision", "fp16"], ["--precision fp16", "--candidates"]),
    (["--bench-batch", "0"], ["--bench-batch 0"]),
])
def test_bad_input_exits_2_before_building(tmp_path, args, named):
    out = tmp_path / "out"
    result = runner.invoke(app, ["build", "SqueezeNet1_1", "--target", "fastest", "--input-size", "32",
                                 "--num-classes", "10", "--out", str(out), *args])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    for name in named:
        assert name in text, text
    assert not out.exists()


def test_int8_candidates_by_name_need_calib_and_bench_flags_need_fastest(tmp_path):
    named = runner.invoke(app, ["build", "SqueezeNet1_1", "--target", "fastest", "--candidates", "onnx:int8",
                                "--out", str(tmp_path / "a")])
    assert named.exit_code == 2 and "INT8 needs --calib" in " ".join(named.output.split()), named.output
    plain = runner.invoke(app, ["build", "SqueezeNet1_1", "--target", "onnx", "--bench-batch", "4",
                                "--out", str(tmp_path / "b")])
    assert plain.exit_code == 2 and "--target fastest only" in " ".join(plain.output.split()), plain.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_selection_record_is_json(digits_model, tmp_path):
    """--json prints the winner's manifest, selection included, for machines (FP32 candidates, no --calib)."""
    weights, _, _ = digits_model
    result = runner.invoke(app, ["build", MODEL, "--target", "fastest", "--weights", str(weights), "--num-classes",
                                 "10", "--input-size", str(SIZE), "--out", str(tmp_path / "j"), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout[result.stdout.index("{"):])
    rows = {row["candidate"]: row for row in manifest["selection"]["candidates"]}
    assert rows["onnx:int8"]["status"] == "skipped" and "--calib" in rows["onnx:int8"]["reason"]
    assert sum(row["status"] == "chosen" for row in rows.values()) == 1
    # bf16 is a default candidate only where this CPU computes it natively; the record says why not elsewhere.
    if host_info().has_bf16:
        assert rows["openvino:bf16"]["runtime_precision"] == "bf16"
        assert "within the bf16 tolerance" in rows["openvino:bf16"]["accuracy"]
    else:
        assert "openvino:bf16" not in rows
        assert any(n.startswith("openvino:bf16: this CPU has no native bf16")
                   for n in manifest["selection"]["not_candidates"])
