"""Paddle's built-in PostTrainingQuantization (edgekit's paddle / arm-lite PTQ route) against the PaddleSlim
`quant_post_static` route it replaced: accuracy and PTQ time on digits-trained models. Not a timed test.

    .venv/bin/python benchmarks/ptq_builtin.py [--work DIR] [--repeats 3]

PaddleSlim is not an edgekit dependency any more; its column is measured only
where `paddleslim` is importable (it was, once, for the record in
benchmarks/results/ptq-builtin.json). Both routes get the same legacy
program, the same 200 calibration images and the same settings (minmax /
abs_max activations, per-channel weights, QDQ ops, BatchNorm folded); each
quantized program is evaluated with Paddle Inference on the digits val split
and converted to an ARM `.nb` to check it is INT8 (size about a quarter of FP32).
Runs alternate between the routes, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8 import RESULTS, SIZE, decoded, digits, trained_weights  # noqa: E402

PADDLESLIM_JOB = textwrap.dedent('''
    import json, sys
    import numpy as np
    import paddle
    paddle.enable_static()
    from paddleslim.quant import quant_post_static
    job = json.loads(sys.argv[1])
    calibration = np.load(job["calibration"])
    def batches():
        for start in range(0, len(calibration), job["batch_size"]):
            yield {job["input_name"]: calibration[start:start + job["batch_size"]]}
    quant_post_static(paddle.static.Executor(paddle.CPUPlace()), job["model_dir"], job["out_dir"],
                      data_loader=batches, model_filename="inference.pdmodel", params_filename="inference.pdiparams",
                      save_model_filename="inference.pdmodel", save_params_filename="inference.pdiparams",
                      batch_size=job["batch_size"], batch_nums=-(-len(calibration) // job["batch_size"]),
                      algo="abs_max", onnx_format=True, weight_quantize_type="channel_wise_abs_max",
                      optimize_model=True)
''')


def paddleslim_quantize(program: Path, calibration: np.ndarray, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    np.save(dst / "calibration.npy", calibration)
    job = {"model_dir": str(program.parent), "out_dir": str(dst), "calibration": str(dst / "calibration.npy"),
           "batch_size": 16, "input_name": "x"}
    proc = subprocess.run([sys.executable, "-c", PADDLESLIM_JOB, json.dumps(job)], capture_output=True, text=True,
                          env={**os.environ, "FLAGS_enable_pir_api": "0"})
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return dst / "inference.pdmodel"


def builtin_quantize(program: Path, calibration: np.ndarray, dst: Path) -> Path:
    from edgekit.compress.routes import PaddlePTQRoute
    from edgekit.targets.base import source_adapter

    route = PaddlePTQRoute(program, calibration, algorithm="minmax", per_channel=True, batch_size=16,
                           runtime=source_adapter(), work=dst / "work")
    return route.quantize([], dst / "out")


def top1(program: Path, images: np.ndarray, labels: np.ndarray) -> float:
    from edgekit.targets.base import source_adapter

    run = source_adapter().open(program)
    outputs = np.concatenate([run(images[i:i + 64]) for i in range(0, len(images), 64)])
    return float((outputs.argmax(1) == labels).mean())


def nb_bytes(program: Path, dst: Path) -> int:
    from edgekit.export.lite import paddle2lite

    return paddle2lite(program, program.with_suffix(".pdiparams"), dst).stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgekit-bench-int8"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["ResNet18_vd", "EfficientNetB0_small"])
    args = parser.parse_args()
    from edgekit.export.paddle import export_legacy_program

    routes = {"paddle PostTrainingQuantization (edgekit)": builtin_quantize}
    if importlib.util.find_spec("paddleslim"):
        routes["PaddleSlim quant_post_static (before)"] = paddleslim_quantize
    ds = digits(args.work)
    records = []
    for model in args.models:
        weights = trained_weights(model, args.work)
        program = export_legacy_program(model, 10, weights, args.work / f"{model}-program", SIZE)
        calibration, _ = decoded(ds.train_list, model, SIZE)
        calibration = calibration[::3][:200]
        val_images, val_labels = decoded(ds.val_list, model, SIZE)
        fp32_top1 = top1(program, val_images, val_labels)
        fp32_nb = nb_bytes(program, args.work / f"{model}-fp32.nb")
        seconds = {name: [] for name in routes}
        quantized = {}
        for repeat in range(args.repeats):
            for name, quantize in routes.items():
                start = time.perf_counter()
                quantized[name] = quantize(program, calibration, args.work / f"{model}-{len(seconds[name])}-{name[:6]}")
                seconds[name].append(round(time.perf_counter() - start, 2))
        for name, model_file in quantized.items():
            record = {"model": model, "route": name, "fp32_top1": fp32_top1,
                      "int8_top1": top1(model_file, val_images, val_labels), "val_images": len(val_labels),
                      "calibration_images": len(calibration), "ptq_seconds": seconds[name],
                      "ptq_seconds_median": float(np.median(seconds[name])),
                      "fp32_nb_bytes": fp32_nb, "int8_nb_bytes": nb_bytes(model_file, model_file.with_suffix(".nb"))}
            record["drop"] = round(record["fp32_top1"] - record["int8_top1"], 4)
            record["nb_size_ratio"] = round(record["int8_nb_bytes"] / fp32_nb, 3)
            records.append(record)
            print(json.dumps(record), flush=True)
    from edgekit.portable import cpu_model

    out = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
           "command": "benchmarks/ptq_builtin.py " + " ".join(sys.argv[1:]), "records": records}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ptq-builtin.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
