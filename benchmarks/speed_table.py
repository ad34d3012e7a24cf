"""The seeds' route against every CPU artifact edgekit builds, INT8 included (a benchmark, not a test).

    .venv/bin/python benchmarks/speed_table.py [--models EfficientNetB0_small,ResNet50,ResNet50_vd]
        [--batches 1,8] [--kinds latency,accuracy] [--duration 4] [--work DIR] [--out benchmarks/results/speed-table]

Everything goes through the product: per model, `edgekit build MODEL --target fastest` (edgekit.fastest)
builds paddle / onnx / openvino FP32, onnx / openvino INT8 and, on CPUs with native bf16 (AVX512_BF16, AMX),
openvino bf16, and benches them in one interleaved run with `--peak`, once per batch size (the builds come
from the build cache after the first).

- Latency, at the model card's input (224): weights trained on digits at 32 px (cached under --work; latency
  does not depend on weight values, but INT8 parity needs logits that are not near ties, which random weights
  give), INT8 calibrated on 256 and checked on 500 held-out digits upscaled to 224 (ptq-int8's defaults),
  max_drop off: a 32-px model's top-1 on 224-px digits says nothing.
- Accuracy: the same weights at the 32 px they were trained at, ptq-int8 with max_drop 0.005 (the issue's
  "0.5 point"), top-1 of FP32 and INT8 (bf16) on the held-out images (bf16: the --calib images, none
  calibrated on).

Writes OUT.json (every selection record) and OUT.md (the table), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import int8 as int8_bench  # noqa: E402  (digits, and weights trained on them, cached)

from edgekit import api  # noqa: E402

MODELS = ("EfficientNetB0_small", "ResNet50", "ResNet50_vd")
# Training settings for the models benchmarks/int8.py does not train already (32 px digits).
EXTRA_DIGITS_MODELS = {"ResNet50": dict(epochs=4, lr=2e-3), "ResNet50_vd": dict(epochs=4, lr=2e-3)}


def fastest(model: str, weights: Path, out: Path, **kwargs) -> dict:
    result = api.build_fastest(model, weights=weights, num_classes=10, out=out, force=True, peak=True,
                               progress=lambda step: print(f"  {model}: {step}", flush=True), **kwargs)
    return result.manifest["selection"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--kinds", default="latency,accuracy", help="latency (224 px), accuracy (32 px), or both")
    parser.add_argument("--duration", type=float, default=4.0, help="timed seconds per candidate and round")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-speed-table")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speed-table"))
    args = parser.parse_args()
    from edgekit.data.digits import make_digits_dataset

    args.work.mkdir(parents=True, exist_ok=True)
    int8_bench.DIGITS_MODELS.update(EXTRA_DIGITS_MODELS)
    digits32 = int8_bench.digits(args.work)
    digits224 = make_digits_dataset(args.work / "digits224", 224)
    records = []
    kinds = set(args.kinds.split(","))
    if not kinds <= {"latency", "accuracy"}:
        parser.error(f"--kinds {args.kinds}: expected latency, accuracy or latency,accuracy")
    batches = [int(b) for b in args.batches.split(",")] if "latency" in kinds else []
    for model in args.models.split(","):
        weights = int8_bench.trained_weights(model, args.work)
        for batch in batches:
            print(f"{model}: latency at 224, batch {batch}", flush=True)
            selection = fastest(model, weights, args.work / "bundles" / f"{model}-224", calib=digits224.train_list,
                                recipe_overrides={"ptq.max_drop": None}, batch=batch, duration=args.duration)
            records.append({"model": model, "kind": "latency", "input": 224, **selection})
        if "accuracy" in kinds:
            print(f"{model}: accuracy at 32 px", flush=True)
            selection = fastest(model, weights, args.work / "bundles" / f"{model}-32", input_size=int8_bench.SIZE,
                                calib=digits32.train_list, max_drop=0.005, batch=1, duration=1.0)
            records.append({"model": model, "kind": "accuracy", "input": int8_bench.SIZE, **selection})
        write(records, args.out)  # after every model: a run stopped later keeps what it measured
    print(markdown(records))


def write(records: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(records, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(records))


def markdown(records: list[dict]) -> str:
    first = records[0]
    peaks = first.get("physical_peak") or {}
    lines = [f"CPU: {first['cpu']} ({', '.join(first['isa_flags'])}); physical FP32 peak "
             f"{peaks.get('gflops', '—')} GFLOP/s. Median latency, one interleaved `edgekit build --target fastest` "
             "run per model and batch; share of the runtime's measured compute peak at that precision (the faster of "
             "a MatMul and a convolution chain; FP32/bf16: GFLOP/s, INT8: GOP/s).", "",
             "| model | batch | candidate | median ms | vs Paddle Inference | share of peak | chosen |",
             "|---|---|---|---|---|---|---|"]
    for record in (r for r in records if r["kind"] == "latency"):
        for row in record["candidates"]:
            share = f"{row['fraction_of_peak']:.0%}" if row.get("fraction_of_peak") is not None else "—"
            ms = f"{row['median_ms']:.1f}" if row.get("median_ms") is not None else f"— ({row['reason'][:80]})"
            ratio = f"{row['speedup_vs_baseline']:.2f}x" if row.get("speedup_vs_baseline") is not None else "—"
            lines.append(f"| {record['model']} | {record['batch']} | {row['candidate']} | {ms} | {ratio} | {share} | "
                         f"{'yes' if row['status'] == 'chosen' else ''} |")
    lines += ["", "Accuracy: digits-trained weights at 32 px, ptq-int8 with max_drop 0.005, top-1 on the held-out "
                  "--calib images.", "", "| model | candidate | FP32 top-1 | its top-1 | drop (points) | outcome |",
              "|---|---|---|---|---|---|"]
    for record in (r for r in records if r["kind"] == "accuracy"):
        for row in record["candidates"]:
            if row["precision"] == "fp32":
                continue
            if row.get("top1") is None:
                lines.append(f"| {record['model']} | {row['candidate']} | — | — | — | {row['status']}: "
                             f"{row['reason'][:120]} |")
                continue
            lines.append(f"| {record['model']} | {row['candidate']} | {row['fp32_top1']:.4f} | {row['top1']:.4f} "
                         f"| {100 * row['top1_drop']:.2f} | {row['status']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
