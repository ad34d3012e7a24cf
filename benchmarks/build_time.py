"""Build time per step for ResNet50 and EfficientNetB0_small (a benchmark, not a test).

    .venv/bin/python benchmarks/build_time.py [--targets onnx,openvino,arm-lite] [--json out.json]

Target from the build issue: an fp32 ONNX or OpenVINO build of ResNet50 in
under a minute on 2 cores.
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
