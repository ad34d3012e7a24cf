"""INT8 measurements: which route per runtime, accuracy drop, latency, PTQ time. Not a timed test.

    .venv/bin/python benchmarks/int8.py routes        # route comparison on digits-trained models
    .venv/bin/python benchmarks/int8.py builds        # `edgekit build --recipe ptq-int8` per target, drop + budget
    .venv/bin/python benchmarks/int8.py resnet50      # OpenVINO INT8 vs true f32 at batch 8; PTQ time, 256 images
    .venv/bin/python benchmarks/int8.py all

Digits models (scikit-learn's handwritten digits, 32x32) are trained briefly
with edgekit's trainer and cached under --work. Records go to
benchmarks/results/int8-*.json and are printed as tables. The NNCF route is
measured only where `nncf` is installed (it is not an edgekit dependency).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# model -> trainer settings. EfficientNet at 32 px stayed at chance (eval mode) until the trainer recomputed
# BatchNorm statistics (precise BN): val top-1 0.93 with these settings.
DIGITS_MODELS = {"ResNet18_vd": dict(epochs=4, lr=2e-3),
                 "EfficientNetB0_small": dict(epochs=4, lr=1e-3, batch_size=32, warmup=0.2)}
SIZE = 32


def _preprocessing(name: str, size: int):
    from edgekit.zoo.cards import get_card

    return dataclasses.replace(get_card(name).preprocessing, resize_short=size, crop=size)


def digits(work: Path):
    from edgekit.data.digits import make_digits_dataset

    return make_digits_dataset(work / f"digits{SIZE}", SIZE)


def trained_weights(name: str, work: Path) -> Path:
    """Weights trained on the digits train split (cached)."""
    import paddle

    from edgekit.data.datasets import open_dataset
    from edgekit.training import fit
    from edgekit.zoo import create_model

    from edgekit.training.batchnorm import PRECISE_BN_IMAGES

    settings = "-".join(f"{k}{v}" for k, v in DIGITS_MODELS[name].items())
    # Weights trained before BatchNorm statistics were recomputed (precise BN) are not reused.
    out = work / f"{name}-digits{SIZE}-{settings}-pbn{PRECISE_BN_IMAGES}.pdparams"
    if out.is_file():
        return out
    ds = digits(work)
    paddle.seed(0)
    model = create_model(name, num_classes=10)
    result = fit(model, open_dataset(ds.train_list), preprocessing=_preprocessing(name, SIZE),
                 val=open_dataset(ds.val_list), progress=False, **DIGITS_MODELS[name])
    print(f"trained {name}: val top-1 {result.last.val_top1:.4f} in {result.seconds:.0f}s", flush=True)
    paddle.save(model.state_dict(), str(out))
    return out


def decoded(list_file: Path, name: str, size: int):
    from edgekit.data.datasets import open_dataset
    from edgekit.training.decoded import decode_images

    d = decode_images(open_dataset(list_file), _preprocessing(name, size))
    return d.images, d.labels


def latency_ms(run, batch: np.ndarray, warmup: int = 5, runs: int = 30) -> dict:
    for _ in range(warmup):
        run(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"median_ms": round(statistics.median(times), 3), "p90_ms": round(times[int(0.9 * (len(times) - 1))], 3),
            "runs": runs, "batch": len(batch)}


def _cpu_seconds(children: bool = True) -> float:
    import resource

    who = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) if children else (resource.RUSAGE_SELF,)
    usage = [resource.getrusage(w) for w in who]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def artifact_size(model_file: Path) -> int:
    companion = {".xml": ".bin", ".pdmodel": ".pdiparams"}.get(model_file.suffix)
    return model_file.stat().st_size + (model_file.with_suffix(companion).stat().st_size if companion else 0)


def _openvino(model_file: Path, hint: str | None):
    from edgekit.targets import adapter_for

    return adapter_for("openvino").open(model_file, precision_hint=hint)


def compare_latency(models: dict[str, Path], batch: np.ndarray, rounds: int = 5) -> tuple[dict, dict]:
    """OpenVINO (true f32 hint) latency of each model at `batch`, interleaved round by round.

    Returns (median wall ms with default threads, median CPU ms per batch with one thread). On a
    shared machine wall time swings with other processes; CPU time of a single-threaded run barely
    does, so the speed-up ratio is read off the CPU times.
    """
    from edgekit.targets import adapter_for

    openvino = adapter_for("openvino")
    wall_backends = {k: openvino.open(v, precision_hint="f32") for k, v in models.items()}
    one_thread = {k: openvino.open(v, threads=1, precision_hint="f32") for k, v in models.items()}
    wall = {k: [] for k in models}
    cpu = {k: [] for k in models}
    for backend in [*wall_backends.values(), *one_thread.values()]:
        backend(batch)
        backend(batch)
    for _ in range(rounds):
        for k in models:
            wall[k].append(latency_ms(wall_backends[k], batch, warmup=1, runs=3)["median_ms"])
            start = _cpu_seconds(children=False)
            for _ in range(3):
                one_thread[k](batch)
            cpu[k].append((_cpu_seconds(children=False) - start) / 3 * 1e3)
    return ({k: round(statistics.median(v), 2) for k, v in wall.items()},
            {k: round(statistics.median(v), 2) for k, v in cpu.items()})


def compare_routes(work: Path) -> list[dict]:
    """Each INT8 route on each digits model: val top-1 drop vs FP32, OpenVINO latency at batch 8."""
    from edgekit.compress.routes import Calibration, NNCFRoute, PaddleSlimRoute
    from edgekit.export.onnx import paddle2onnx
    from edgekit.export.openvino import onnx2openvino
    from edgekit.export.paddle import export_legacy_program
    from edgekit.targets import adapter_for, source_adapter

    ds = digits(work)
    records = []
    for name in DIGITS_MODELS:
        weights = trained_weights(name, work)
        root = work / f"routes-{name}"
        program = export_legacy_program(name, 10, weights, root / "paddle", SIZE)
        fp32_onnx = paddle2onnx(program, program.with_suffix(".pdiparams"), root / "fp32.onnx", 13)
        fp32_xml = onnx2openvino(fp32_onnx, root / "fp32.xml")
        train_x, _ = decoded(ds.train_list, name, SIZE)
        calibration = train_x[np.random.default_rng(0).permutation(len(train_x))[:256]]
        val_x, val_y = decoded(ds.val_list, name, SIZE)
        batch8 = val_x[:8]
        fp32_top1 = float((adapter_for("onnxruntime").open(fp32_onnx)(val_x).argmax(1) == val_y).mean())
        calib = Calibration(calibration, "minmax", True, 16)
        routes = [("onnxruntime QDQ -> onnxruntime",
                   lambda w: adapter_for("onnxruntime").qdq_route(fp32_onnx, calib, w)),
                  ("onnxruntime QDQ -> openvino", lambda w: adapter_for("openvino").qdq_route(fp32_onnx, calib, w)),
                  ("PaddleSlim -> paddle inference", lambda w: PaddleSlimRoute(
                      program, calibration, algorithm="minmax", per_channel=True, batch_size=16,
                      runtime=source_adapter(), work=w))]
        if importlib.util.find_spec("nncf"):
            routes.append(("NNCF -> openvino", lambda w: NNCFRoute(
                fp32_xml, calibration, algorithm="minmax", per_channel=True, batch_size=16,
                runtime=adapter_for("openvino"), work=w)))
        else:
            print("nncf not installed: NNCF route not measured", flush=True)
        for label, make in routes:
            shutil.rmtree(root / label.replace(" ", "_").replace(">", ""), ignore_errors=True)
            start = time.perf_counter()
            route = make(root / label.replace(" ", "_").replace(">", ""))
            model_file = route.quantize([], root / label.replace(" ", "_").replace(">", "") / "q")
            seconds = time.perf_counter() - start
            logits = route.run(model_file, val_x)
            record = {"model": name, "route": label, "fp32_top1": fp32_top1,
                      "int8_top1": float((logits.argmax(1) == val_y).mean()), "quantize_seconds": round(seconds, 1),
                      "val_images": int(len(val_y)), "calibration_images": int(len(calibration)),
                      "size_bytes": artifact_size(model_file)}
            record["drop_points"] = round(100 * (record["fp32_top1"] - record["int8_top1"]), 2)
            if model_file.suffix == ".xml":
                wall, cpu = compare_latency({"f32": fp32_xml, "int8": model_file}, batch8)
                record["openvino_b8_wall_ms"] = wall
                record["openvino_b8_cpu_ms_1thread"] = cpu
                record["cpu_speedup_vs_f32"] = round(cpu["f32"] / cpu["int8"], 2)
            elif model_file.suffix == ".onnx":
                record["onnxruntime_int8_b8"] = latency_ms(adapter_for("onnxruntime").open(model_file), batch8)
                record["onnxruntime_fp32_b8"] = latency_ms(adapter_for("onnxruntime").open(fp32_onnx), batch8)
            records.append(record)
            print(json.dumps(record), flush=True)
    return records


def paddle_top1(name: str, weights: Path, images: np.ndarray, labels: np.ndarray) -> float:
    import paddle

    from edgekit.training import predict_logits
    from edgekit.zoo import create_model
    from edgekit.zoo.weights import load_weights

    with paddle.utils.unique_name.guard():
        model = create_model(name, num_classes=10)
    load_weights(model, weights)
    return float((predict_logits(model, images).argmax(1) == labels).mean())


def builds(work: Path) -> list[dict]:
    """The product path: `edgekit build --recipe ptq-int8 --calib train --max-drop D`, per target; drop on val."""
    from edgekit import api
    from edgekit.runtime import load

    ds = digits(work)
    records = []
    for name in DIGITS_MODELS:
        weights = trained_weights(name, work)
        val_x, val_y = decoded(ds.val_list, name, SIZE)
        fp32_top1 = paddle_top1(name, weights, val_x, val_y)
        for target in ("onnx", "openvino", "paddle"):
            # The paddle route's accuracy control re-runs PaddleSlim once per layer: default budget only.
            for max_drop in ((None, 0.005) if target != "paddle" else (None,)):
                start = time.perf_counter()
                out = work / "bundles" / f"{name}-{target}-int8-{max_drop}"
                try:
                    result = api.build(name, target, weights=weights, num_classes=10, input_size=SIZE, force=True,
                                       recipe="ptq-int8", calib=ds.train_list, max_drop=max_drop, out=out)
                except Exception as exc:  # a budget that cannot be met is a result too
                    records.append({"model": name, "target": target, "max_drop": max_drop, "error": str(exc)})
                    print(json.dumps(records[-1]), flush=True)
                    continue
                quant = result.manifest["compression"]["quantization"]
                int8_top1 = float((load(result.path).run(val_x).argmax(1) == val_y).mean())
                records.append({"model": name, "target": target, "max_drop": max_drop, "route": quant["route"],
                                "val_fp32_top1": fp32_top1, "val_int8_top1": int8_top1,
                                "val_drop_points": round(100 * (fp32_top1 - int8_top1), 2),
                                "holdout_drop_points": round(100 * quant["drop"], 2),
                                "float_layers": quant["float_layers"], "build_seconds": round(
                                    time.perf_counter() - start, 1)})
                print(json.dumps(records[-1]), flush=True)
    return records


def resnet50(work: Path) -> list[dict]:
    """ResNet50 at 224: time to quantize with 256 calibration images, and OpenVINO latency at batch 8 of
    each INT8 route against OpenVINO true f32 (INFERENCE_PRECISION_HINT=f32), interleaved in the same run."""
    import paddle

    from edgekit.compress.routes import Calibration, NNCFRoute
    from edgekit.data.datasets import LabeledImages, open_dataset
    from edgekit.targets import adapter_for
    from edgekit.export.onnx import paddle2onnx
    from edgekit.export.openvino import onnx2openvino
    from edgekit.export.paddle import export_legacy_program
    from edgekit.training.decoded import decode_images
    from edgekit.zoo import create_model
    from edgekit.zoo.cards import get_card

    root = work / "resnet50"
    root.mkdir(exist_ok=True)
    weights = root / "random.pdparams"  # latency and quantization time do not depend on trained weights
    if not weights.is_file():
        paddle.seed(0)
        paddle.save(create_model("ResNet50", num_classes=1000).state_dict(), str(weights))
    program = export_legacy_program("ResNet50", 1000, weights, root / "paddle", 224)
    fp32_onnx = paddle2onnx(program, program.with_suffix(".pdiparams"), root / "fp32.onnx", 13)
    fp32_xml = onnx2openvino(fp32_onnx, root / "fp32.xml")
    train = open_dataset(digits(work).train_list)
    calibration = decode_images(LabeledImages(train.samples[:256], train.source),
                                get_card("ResNet50").preprocessing).images
    openvino = adapter_for("openvino")
    routes = {"onnxruntime QDQ -> openvino": lambda w: openvino.qdq_route(
        fp32_onnx, Calibration(calibration, "minmax", True, 16), w)}
    if importlib.util.find_spec("nncf"):
        routes["NNCF -> openvino"] = lambda w: NNCFRoute(fp32_xml, calibration, algorithm="minmax",
                                                          per_channel=True, batch_size=16, runtime=openvino, work=w)
    else:
        print("nncf not installed: NNCF route not measured", flush=True)
    models, seconds, cpu_seconds = {"f32": fp32_xml}, {}, {}
    for label, make in routes.items():
        directory = root / label.replace(" ", "_").replace(">", "")
        shutil.rmtree(directory, ignore_errors=True)  # a cached calibration would skip what is timed
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        models[label] = make(directory).quantize([], directory / "q")
        seconds[label] = round(time.perf_counter() - start, 1)
        # On a shared, busy machine wall time overstates; CPU time / cores is the idle-machine floor.
        cpu_seconds[label] = round(_cpu_seconds() - cpu_start, 1)
        print(f"{label}: quantized in {seconds[label]}s ({cpu_seconds[label]} CPU-s)", flush=True)
    batch = np.random.default_rng(0).normal(size=(8, 3, 224, 224)).astype(np.float32)
    wall, cpu = compare_latency(models, batch)
    records = []
    for label in routes:
        records.append({"model": "ResNet50", "input": 224, "batch": 8, "route": label,
                        "openvino_f32_ms": wall["f32"], "openvino_int8_ms": wall[label],
                        "speedup_vs_f32": round(wall["f32"] / wall[label], 2),
                        "openvino_f32_cpu_ms_1thread": cpu["f32"], "openvino_int8_cpu_ms_1thread": cpu[label],
                        "cpu_speedup_vs_f32": round(cpu["f32"] / cpu[label], 2),
                        "f32_runtime_precision": "f32 (INFERENCE_PRECISION_HINT=f32)", "quantize_seconds": seconds[label],
                        "quantize_cpu_seconds": cpu_seconds[label], "load_average": os.getloadavg()[0],
                        "calibration_images": int(len(calibration)), "cores": os.cpu_count()})
        print(json.dumps(records[-1]), flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["routes", "builds", "resnet50", "all"])
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edgekit-int8-bench")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    jobs = {"routes": compare_routes, "builds": builds, "resnet50": resnet50}
    for what in (jobs if args.what == "all" else [args.what]):
        records = jobs[what](args.work)
        meta = {"host": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
                "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
        (RESULTS / f"int8-{what}.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
