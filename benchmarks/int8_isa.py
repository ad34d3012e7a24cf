"""onnxruntime INT8 per CPU class: which weight format keeps accuracy on this CPU (a benchmark, not a test).

    .venv/bin/python benchmarks/int8_isa.py [--work DIR] [--json benchmarks/results/int8-isa.json]

On CPUs without VNNI, onnxruntime's u8 x s8 kernels multiply-add pairs into
int16 (vpmaddubsw), which saturates when both products are large; onnxruntime's
documentation recommends 7-bit weights (reduce_range) or U8U8 there. This
measures, on the CPU at hand, the three weight formats of
`edgekit.compress.routes.WEIGHT_FORMATS` in onnxruntime, beside OpenVINO running
the s8 and 7-bit models (OpenVINO converts the same QDQ ONNX):
- ResNet50 at 224 (random init; calibrated on 64 digits images upscaled to 224):
  logit error against the FP32 ONNX model on 64 held-out images, and batch-1
  latency (median of rounds interleaved across the models);
- ResNet18_vd trained on digits at 32 px (benchmarks/int8.py's cached weights):
  top-1 on the 450-image val split, FP32 vs each INT8 model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import int8 as int8_bench  # noqa: E402  (the digits models and their cached weights)

from edgekit.compress.routes import WEIGHT_FORMATS, OnnxQDQRoute  # noqa: E402
from edgekit.targets import adapter_for  # noqa: E402


def fp32_onnx(model: str, weights: Path | None, size: int, num_classes: int, work: Path) -> Path:
    from edgekit.export.onnx import paddle2onnx
    from edgekit.export.paddle import export_legacy_program

    if weights is None:  # random init, seeded
        import paddle

        from edgekit.zoo import create_model

        paddle.seed(0)
        weights = work / f"{model}-random.pdparams"
        paddle.save(create_model(model, num_classes=num_classes).state_dict(), str(weights))
    program = export_legacy_program(model, num_classes, weights, work / f"{model}-paddle", size)
    return paddle2onnx(program, program.with_suffix(".pdiparams"), work / f"{model}.onnx", 13)


def quantized(fp32: Path, calibration: np.ndarray, work: Path) -> dict[str, Path]:
    """One QDQ model per weight format, from one calibration (the ranges are cached by the route)."""
    route = OnnxQDQRoute(fp32, calibration, algorithm="minmax", per_channel=True, batch_size=16,
                         runtime=adapter_for("onnxruntime"), work=work / "route")
    models = {}
    for weights in WEIGHT_FORMATS:
        route.weights = weights
        models[weights] = route.quantize([], work / weights)
    return models


def error(reference: np.ndarray, candidate: np.ndarray) -> dict:
    from edgekit.build.parity import compare_logits

    metrics = compare_logits(reference, candidate)
    return {k: round(metrics[k], 5) for k in ("mean_abs_diff", "max_rel_diff", "min_cosine", "top1_agreement")}


def interleaved_latency(runs: dict[str, object], batch: np.ndarray, rounds: int = 7, per_round: int = 5) -> dict:
    for run in runs.values():
        run(batch)
        run(batch)
    samples = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(per_round):
                run(batch)
            samples[name].append((time.perf_counter() - start) / per_round * 1e3)
    return {name: round(statistics.median(v), 2) for name, v in samples.items()}


def resnet50(work: Path) -> dict:
    from edgekit.data.digits import make_digits_dataset

    ds = make_digits_dataset(work / "digits224", 224)
    images, _ = int8_bench.decoded(ds.train_list, "ResNet50", 224)
    calibration, holdout = images[:64], images[64:128]
    fp32 = fp32_onnx("ResNet50", None, 224, 1000, work)
    models = quantized(fp32, calibration, work / "resnet50")
    ort, ov = adapter_for("onnxruntime"), adapter_for("openvino")
    runs = {"fp32 onnxruntime": ort.open(fp32), **{f"{w} onnxruntime": ort.open(m) for w, m in models.items()},
            "s8 openvino": ov.open(models["s8"]), "s8-7bit openvino": ov.open(models["s8-7bit"])}
    reference = np.concatenate([runs["fp32 onnxruntime"](holdout[i:i + 16]) for i in range(0, 64, 16)])
    record = {"model": "ResNet50", "input": 224, "weights": "random-init", "rows": []}
    latency = interleaved_latency(runs, holdout[:1])
    for name, run in runs.items():
        outputs = np.concatenate([run(holdout[i:i + 16]) for i in range(0, 64, 16)])
        record["rows"].append({"model": name, **error(reference, outputs), "batch1_ms": latency[name]})
    return record


def digits_resnet18(work: Path) -> dict:
    name, size = "ResNet18_vd", int8_bench.SIZE
    weights = int8_bench.trained_weights(name, work)
    ds = int8_bench.digits(work)
    train, _ = int8_bench.decoded(ds.train_list, name, size)
    val, labels = int8_bench.decoded(ds.val_list, name, size)
    fp32 = fp32_onnx(name, weights, size, 10, work)
    models = quantized(fp32, train[:256], work / "digits")
    ort, ov = adapter_for("onnxruntime"), adapter_for("openvino")
    runs = {"fp32 onnxruntime": ort.open(fp32), **{f"{w} onnxruntime": ort.open(m) for w, m in models.items()},
            "s8 openvino": ov.open(models["s8"]), "s8-7bit openvino": ov.open(models["s8-7bit"])}
    reference = runs["fp32 onnxruntime"](val)
    rows = []
    for model, run in runs.items():
        outputs = run(val)
        rows.append({"model": model, "val_top1": round(float((outputs.argmax(1) == labels).mean()), 4),
                     **error(reference, outputs)})
    return {"model": name, "input": size, "weights": "digits-trained", "val_images": int(len(labels)), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edgekit-int8-bench")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    from edgekit.bench.host import host_info
    from edgekit.compress.isa import cpu_class

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        records = {"host": host_info().to_dict(), "cpu_class": cpu_class().to_dict(),
                   "resnet50": resnet50(Path(tmp)), "digits": digits_resnet18(args.work)}
    for key in ("resnet50", "digits"):
        print(f"\n{records[key]['model']} ({records[key]['weights']}), {records['cpu_class']['name']}:")
        for row in records[key]["rows"]:
            print("  " + ", ".join(f"{k} {v}" for k, v in row.items()))
    if args.json:
        args.json.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
