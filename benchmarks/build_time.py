"""Build time per step for ResNet50 and EfficientNetB0_small (a benchmark, not a test).

    .venv/bin/python benchmarks/build_time.py [--targets onnx,openvino,arm-lite] [--json out.json]
    .venv/bin/python benchmarks/build_time.py --int8 [--targets openvino] [--json out.json]

Target from the build issue: an fp32 ONNX or OpenVINO build of ResNet50 in
under a minute on 2 cores. With --int8: the ptq-int8 recipe (256 calibration +
500 held-out images) on digits upscaled to 224, ResNet50 only, timed with the
progress messages; random-init logits are near ties, so such a build may end
at the parity check's top-1 agreement, and the record says where it ended.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgekit import api

MODELS = ("ResNet50", "EfficientNetB0_small")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="onnx,openvino,paddle,arm-lite")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--int8", action="store_true", help="time ptq-int8 builds of ResNet50 instead")
    args = parser.parse_args()
    if args.int8:
        return int8_builds(args)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in MODELS:
            for target in args.targets.split(","):
                start = time.perf_counter()
                result = api.build(model, target, out=Path(tmp) / f"{model}-{target}")
                total = time.perf_counter() - start
                records.append({"model": model, "target": target, "total_s": round(total, 2),
                                "steps": [s.to_dict() for s in result.steps]})
    table = Table(title="edgekit build time (fp32, random-init weights)")
    for col in ("model", "target", "total (s)", "steps (s)"):
        table.add_column(col)
    for r in records:
        table.add_row(r["model"], r["target"], f"{r['total_s']:.1f}",
                      ", ".join(f"{s['name']} {s['seconds']:.1f}" for s in r["steps"]))
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


def int8_builds(args) -> None:
    from edgekit.data.digits import make_digits_dataset
    from edgekit.errors import EdgekitError

    records = []
    with tempfile.TemporaryDirectory() as tmp:
        digits = make_digits_dataset(Path(tmp) / "digits224", 224)
        for target in args.targets.split(","):
            start = time.perf_counter()
            marks = []

            def progress(message: str) -> None:
                marks.append((round(time.perf_counter() - start, 1), message))

            try:
                api.build("ResNet50", target, out=Path(tmp) / f"int8-{target}", recipe="ptq-int8",
                          calib=digits.train_list, num_classes=10, progress=progress,
                          recipe_overrides={"ptq.max_drop": None})
                ended = "bundle written"
            except EdgekitError as exc:
                ended = str(exc)[:200]
            total = round(time.perf_counter() - start, 1)
            records.append({"model": "ResNet50", "target": target, "recipe": "ptq-int8", "total_s": total,
                            "ended": ended, "progress": marks})
            print(f"ResNet50 {target} ptq-int8: {total} s ({ended[:80]})")
            for at, message in marks:
                print(f"  {at:7.1f} s  {message}")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
