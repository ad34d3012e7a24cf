"""Accuracy of a bundle where it runs: top-1/top-5, speed, agreement with a reference, published figures.

    from edgekit.validate import validate
    report = validate("dist/ResNet50_vd-onnx-fp32", "ILSVRC2012/val_list.txt", device="ssh://pi@board")
    print(report.record["metrics"]["top1"])
"""

from __future__ import annotations

from edgekit.validate.core import ValidationPlan, plan_validation, run_validation
from edgekit.validate.report import ValidationReport


def validate(bundle, data, *, progress=None, **options) -> ValidationReport:
    """Check every input, run the validation, append it to the bundle's manifest; see plan_validation."""
    return run_validation(plan_validation(bundle, data, **options), progress)


__all__ = ["validate", "plan_validation", "run_validation", "ValidationPlan", "ValidationReport"]
