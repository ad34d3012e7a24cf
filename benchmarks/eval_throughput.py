"""Running many images (accuracy control, parity): OpenVINO latency mode against its THROUGHPUT hint
(a benchmark, not a test).

    .venv/bin/python benchmarks/eval_throughput.py [--model ResNet50] [--images 64] [--rounds 4] [--json out.json]

One FP32 OpenVINO IR of the model at 224 (random init: speed does not depend on weight values), the
same images through every way of running them, interleaved round by round; ms per image, median over
rounds. `adapter` is what edgekit's INT8 builds use (`OpenVINOAdapter.open_for_many`); the others
are the alternatives it was chosen against.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def ways(model_xml: Path) -> dict:
    import openvino as ov

    from edgekit.targets import adapter_for

    core = ov.Core()

    def latency(batch: int):
        compiled = core.compile_model(str(model_xml), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                              "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        return lambda images: np.concatenate([request.infer([images[i:i + batch]])[0].copy()
                                              for i in range(0, len(images), batch)])

    adapter = adapter_for("openvino")
    return {"latency mode, batch 64 (before)": latency(64), "latency mode, batch 8": latency(8),
            "adapter: THROUGHPUT hint, batch 8 per request": adapter.open_for_many(model_xml)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="ResNet50")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import paddle

    from edgekit import portable
    from edgekit.export.onnx import paddle2onnx
    from edgekit.export.openvino import onnx2openvino
    from edgekit.export.paddle import export_legacy_program
    from edgekit.zoo import create_model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paddle.seed(0)
        weights = work / "random.pdparams"
        paddle.save(create_model(args.model, num_classes=1000).state_dict(), str(weights))
        program = export_legacy_program(args.model, 1000, weights, work / "paddle", 224)
        onnx_file = paddle2onnx(program, program.with_suffix(".pdiparams"), work / "model.onnx", 13)
        xml = onnx2openvino(onnx_file, work / "model.xml")
        images = np.random.default_rng(0).standard_normal((args.images, 3, 224, 224)).astype(np.float32)
        runs = ways(xml)
        reference = None
        for run in runs.values():  # warm-up, and every way computes the same outputs
            out = run(images[:16])
            reference = out if reference is None else reference
            np.testing.assert_allclose(out, reference, rtol=1e-3, atol=1e-3)
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                run(images)
                seconds[name].append(time.perf_counter() - start)
                time.sleep(0.2)
    base = statistics.median(seconds["latency mode, batch 64 (before)"])
    records = [{"way": name, "ms_per_image": round(1000 * statistics.median(s) / args.images, 2),
                "speedup": round(base / statistics.median(s), 3), "rounds_s": [round(x, 3) for x in s]}
               for name, s in seconds.items()]
    result = {"model": args.model, "images": args.images, "cpu": portable.cpu_model(),
              "cpus": portable.usable_cpus(), "records": records}
    for r in records:
        print(f"{r['way']:<50} {r['ms_per_image']:8.2f} ms/image  {r['speedup']:.3f}x")
    print(f"CPU: {result['cpu']}, {result['cpus']} usable CPUs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
