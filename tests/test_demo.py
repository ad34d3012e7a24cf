"""`edgekit demo`: the whole pipeline end to end through the matrix machinery, and its output-directory safety."""

import json

import pytest
from typer.testing import CliRunner

from edgekit import api
from edgekit.bundle import read_manifest
from edgekit.cli import app
from edgekit.demo import DemoConfig
from edgekit.demo_matrix import arm_emulator, load_demo_plan, write_plan

runner = CliRunner()


@pytest.mark.heavy
def test_demo_trains_distills_then_runs_its_bundles_as_a_matrix_and_reports(tmp_path):
    out = tmp_path / "demo-out"
    # --no-cache: every bundle is really built here (a warm build cache would restore them).
    result = runner.invoke(app, ["demo", "--out", str(out), "--json", "--no-cache"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout[result.stdout.index("{"):])
    assert record["teacher"]["val"]["top1"] > 0.8 and record["student"]["val"]["top1"] > 0.5
    emulator, _ = arm_emulator()
    cells = {(c["target"], c["recipe"]): c for c in record["cells"]}
    assert set(cells) == {(t, r) for t in ("onnx", "openvino", "arm-lite") for r in ("fp32", "ptq-int8")}
    assert record["matrix"]["ok"] == 6 and record["matrix"]["failed"] == 0
    for (target, recipe), cell in cells.items():
        manifest = read_manifest(cell["bundle"])
        assert manifest["target"]["name"] == target and manifest["weights"]["random_init"] is False
        assert manifest["model"]["name"] == record["student"]["model"]
        assert cell["precision"] == manifest["target"]["precision"] == ("fp32" if recipe == "fp32" else "int8")
        if target == "arm-lite" and not emulator:
            assert cell["device"] == "local" and cell["val_top1"] is None and "do not run on this host" in cell["note"]
            continue
        # Validated on the held-out digits (and, on this host, timed); agreement is with the FP32 Paddle student.
        assert cell["val_top1"] > 0.5 and manifest["validations"], cell
        assert cell["agreement_with_fp32"] >= (0.99 if recipe == "fp32" else 0.9), cell
        if target != "arm-lite":
            assert cell["device"] == "local" and cell["median_ms"] > 0
    for target in ("onnx", "openvino", "arm-lite"):
        fp32, int8 = cells[(target, "fp32")], cells[(target, "ptq-int8")]
        assert int8["size_bytes"] < 0.5 * fp32["size_bytes"], target  # INT8 weights: a quarter of the bytes
        if target != "arm-lite":
            assert int8["speedup_vs_fp32"] == pytest.approx(fp32["median_ms"] / int8["median_ms"], abs=0.01)
    if not emulator:
        assert "register-lite-runtime" in record["arm"] and record["arm"] in record["notes"]

    # The report is the matrix report, with the demo's sections around it.
    report = (out / "report.md").read_text()
    assert report.startswith("# edgekit demo: SqueezeNet1_0 distilled from ResNet18")
    assert "| teacher | ResNet18 | 1 |" in report and "## Device local (local)" in report
    assert "![accuracy vs latency, Pareto front](report.png)" in report and "## Demo steps" in report
    rows = [line for line in report.splitlines() if line.startswith(("| SqueezeNet1_0 |", "| ★ SqueezeNet1_0 |"))]
    assert len(rows) == 6  # each cell once: in local's table, or arm-lite's in emu://'s where it runs there
    assert ("(emu://aarch64)" in report) == bool(emulator)
    page = (out / "report.html").read_text()
    assert "<svg" in page and "Models trained here" in page
    assert (out / "report.png").stat().st_size > 20_000
    assert json.loads((out / "demo.json").read_text())["cells"] == record["cells"]
    assert len((out / "records.jsonl").read_text().splitlines()) == 6
    assert not (out / "work").exists(), "training checkpoints are cleaned up once the weights are saved"

    # plan.yaml is an ordinary matrix file whose out is the demo's directory: running it again (as its header
    # says, with no --out) finds every cell finished there and runs none.
    again = api.matrix(out / "plan.yaml")
    assert again.plan.out.resolve() == out.resolve()
    assert again.ran == 0 and again.resumed == 6 and again.count("ok") == 6


def test_demo_plan_keeps_each_target_on_the_devices_that_run_it(tmp_path):
    """With an emulated ARM device in the plan, arm-lite goes there and onnx / openvino stay on this host."""
    import paddle

    from edgekit.data.digits import make_digits_dataset
    from edgekit.zoo import create_model

    digits = make_digits_dataset(tmp_path / "data", size=32)
    weights = tmp_path / "models" / "student.pdparams"
    weights.parent.mkdir()
    paddle.save(create_model("SqueezeNet1_0", num_classes=10).state_dict(), str(weights))
    config = DemoConfig()
    plan_file = write_plan(tmp_path, config, weights=weights, labels=digits.labels, calib=digits.train_list,
                           data=digits.val_list, num_classes=10, emulator="emu://aarch64")
    assert "weights: models/student.pdparams" in plan_file.read_text(), "paths are relative to the plan"
    plan = load_demo_plan(plan_file, tmp_path)
    runtime = arm_emulator()[0] == "emu://aarch64"
    placed = {(c.build.target, c.build.recipe, c.device.address) for c in plan.cells}
    # The .nb goes to the emulator; without a registered aarch64 runtime no device can run it, so it is also
    # listed on this host, each cell saying why.
    arm_devices = ("emu://aarch64",) if runtime else ("local", "emu://aarch64")
    assert placed == {(t, r, d) for t in config.targets for r in config.recipes
                      for d in (arm_devices if t == "arm-lite" else ("local",))}
    for cell in plan.cells:
        assert cell.bench_skipped if cell.build.target == "arm-lite" else not cell.bench_skipped
    on_emulator = next(c for c in plan.cells if c.device.address.startswith("emu://"))
    assert (on_emulator.validate_skipped is None) if runtime else \
        "register-lite-runtime" in on_emulator.validate_skipped


def test_demo_refuses_to_overwrite_without_force_and_never_deletes_foreign_dirs(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "thesis.tex").write_text("precious")
    result = runner.invoke(app, ["demo", "--out", str(taken)])
    assert result.exit_code == 2 and "already exists; pass --force" in result.output
    result = runner.invoke(app, ["demo", "--out", str(taken), "--force"])
    assert result.exit_code == 2 and "was not written by `edgekit demo`" in result.output
    assert (taken / "thesis.tex").read_text() == "precious"
