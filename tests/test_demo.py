"""`edgekit demo`: the whole pipeline end to end, and its output-directory safety."""

import json

import pytest
from typer.testing import CliRunner

from edgekit.bundle import read_manifest
from edgekit.cli import app

runner = CliRunner()


@pytest.mark.heavy
def test_demo_trains_distills_quantizes_builds_validates_benches_and_reports(tmp_path):
    out = tmp_path / "demo-out"
    result = runner.invoke(app, ["demo", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout[result.stdout.index("{"):])
    assert record["teacher"]["val"]["top1"] > 0.8 and record["student"]["val"]["top1"] > 0.5
    targets = {b["target"]: b for b in record["bundles"]}
    assert set(targets) == {"onnx", "openvino", "arm-lite"}
    for target, bundle in targets.items():
        manifest = read_manifest(bundle["path"])
        assert manifest["target"]["name"] == target and manifest["weights"]["random_init"] is False
        assert manifest["model"]["name"] == record["student"]["model"]
        if target == "arm-lite":
            assert bundle["val_top1"] is None and "device" in bundle["note"]
        else:
            # Validated on the held-out digits and timed on this CPU.
            assert bundle["val_top1"] > 0.5 and bundle["median_ms"] > 0
            assert manifest["validations"], "validate appends its record to the manifest"
    report = (out / "report.md").read_text()
    assert "| teacher | ResNet18 |" in report and "![training curves and bundles](report.png)" in report
    assert (out / "report.png").stat().st_size > 10_000
    assert json.loads((out / "demo.json").read_text())["bundles"]
    assert not (out / "work").exists(), "training checkpoints are cleaned up once the weights are saved"


def test_demo_refuses_to_overwrite_without_force_and_never_deletes_foreign_dirs(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "thesis.tex").write_text("precious")
    result = runner.invoke(app, ["demo", "--out", str(taken)])
    assert result.exit_code == 2 and "already exists; pass --force" in result.output
    result = runner.invoke(app, ["demo", "--out", str(taken), "--force"])
    assert result.exit_code == 2 and "was not written by `edgekit demo`" in result.output
    assert (taken / "thesis.tex").read_text() == "precious"
