"""The seeds' deployment route against edgekit's best CPU artifact, in one interleaved run (a benchmark).

    .venv/bin/python benchmarks/paddle_vs_best_cpu.py [--models ResNet50,EfficientNetB0_small]
        [--batch 1,4] [--duration 6] [--precision-hint f32|bf16|default] [--json out.json] [--plot out.png]

The seeds' route is Paddle Inference, FP32, oneDNN (edgekit's `paddle` target
runs exactly that). edgekit's CPU artifacts are the onnx and openvino bundles
(FP32 builds; fp16 OpenVINO IR stores fp16 weights but computes in f32 or
bf16). Per model, every bundle is measured in one `edgekit bench` call,
interleaved round by round, and the best one (lowest median latency at each
batch) is set against Paddle Inference. OpenVINO computes in true f32, as
everywhere edgekit runs a bundle, unless --precision-hint bf16 or default
(OpenVINO's own: bf16 on CPUs that have it); the table says which ran.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgekit import api
from edgekit.bench.views import tables, write_plot

MODELS = ("ResNet50", "EfficientNetB0_small")
SEED_ROUTE = ("paddle", "fp32")
CANDIDATES = (("onnx", "fp32"), ("openvino", "fp32"), ("openvino", "fp16"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", default="1,4")
    parser.add_argument("--duration", type=float, default=6.0, help="timed seconds per bundle and batch")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--precision-hint", choices=["f32", "bf16", "default"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    console = Console(width=170)
    summary, reports = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            bundles = []
            for target, precision in (SEED_ROUTE, *CANDIDATES):
                out = Path(tmp) / f"{model}-{target}-{precision}"
                with console.status(f"building {out.name}"):
                    api.build(model, target, precision, out=out)
                bundles.append(out)
            with console.status(f"benchmarking {model}") as status:
                report = api.bench(bundles, batch=args.batch, duration=args.duration, rounds=args.rounds,
                                   threads=args.threads, precision_hint=args.precision_hint, peak=True,
                                   progress=lambda step: status.update(step))
            reports[model] = report
            for t in tables(report):
                console.print(t)
            for w in report.warnings:
                console.print(f"[yellow]warning:[/] {w}")
            seed_label = bundles[0].name
            for batch in sorted({r.batch for r in report.records}):
                at_batch = [r for r in report.records if r.batch == batch]
                seed = next(r for r in at_batch if r.label == seed_label)
                best = min((r for r in at_batch if r.label != seed_label), key=lambda r: r.latency.median_ms)
                summary.append({"model": model, "batch": batch, "seed_route": seed.label,
                                "seed_median_ms": round(seed.latency.median_ms, 3), "best": best.label,
                                "best_runtime": f"{best.runtime} {best.runtime_precision}",
                                "best_median_ms": round(best.latency.median_ms, 3),
                                "speedup": round(seed.latency.median_ms / best.latency.median_ms, 3),
                                "seed_cv": round(seed.latency.cv, 4), "best_cv": round(best.latency.cv, 4)})
    table = Table(title="Paddle Inference FP32 oneDNN (the seeds' route) vs edgekit's best CPU artifact "
                        "(median latency, interleaved in one run per model)")
    for col in ("model", "batch", "Paddle Inference (ms)", "best artifact", "runs as", "best (ms)",
                "speedup (Paddle / best)"):
        table.add_column(col, justify="left" if col in ("model", "best artifact", "runs as") else "right")
    for s in summary:
        table.add_row(s["model"], str(s["batch"]), f"{s['seed_median_ms']:.2f}", s["best"], s["best_runtime"],
                      f"{s['best_median_ms']:.2f}", f"{s['speedup']:.2f}x")
    console.print(table)
    host = next(iter(reports.values())).host
    console.print(f"host: {host['cpu_model']}, {host['cpus_usable']} CPUs, 1-minute load at the start "
                  f"{host['load_average_1m']}", style="dim")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "reports": {m: r.to_dict() for m, r in reports.items()}},
                                        indent=1))
    if args.plot:
        for model, report in reports.items():
            write_plot(report, args.plot.with_name(f"{args.plot.stem}-{model}{args.plot.suffix}"))


if __name__ == "__main__":
    main()
