"""What the runtimes' own settings give a classifier on a small CPU, against how edgekit opens it (a benchmark,
not a test).

    .venv/bin/python benchmarks/runtime_options.py [--model ResNet50] [--batches 1,8] [--seconds 2] [--rounds 5]
        [--work DIR] [--out benchmarks/results/runtime-options]

The bundles are ResNet50's at 224 from `benchmarks/speed_table.py` (the same build inputs, so the build cache
hands them over when that ran first): openvino fp32 / bf16 (where the CPU has native bf16) / int8, onnx fp32 /
int8. Each variant opens the same model file; every variant of every bundle is timed in each of --rounds
rounds, interleaved, on the same input (real photos through the bundle's preprocessing), and compared with the
way edgekit opens that bundle ("edgekit") in the same run.

- OpenVINO: PERFORMANCE_HINT=LATENCY; CPU pinning off (edgekit leaves OpenVINO's default); the output read in
  place rather than copied; for batch > 1, PERFORMANCE_HINT=THROUGHPUT with the batch split over the streams
  it picks, one request per stream, outputs gathered (openers.OpenVinoStreams, what evaluation uses).
- onnxruntime: intra-op spinning off; graph optimizations at EXTENDED instead of ALL; intra-op threads pinned
  to cores (session.intra_op_thread_affinities).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import int8 as int8_bench  # noqa: E402  (digits, and weights trained on them, cached)
import speed_table  # noqa: E402

from edgekit import api, openers, portable  # noqa: E402
from edgekit.bench.host import host_info  # noqa: E402
from edgekit.bench.subjects import input_batch  # noqa: E402
from edgekit.bundle import read_manifest  # noqa: E402
from edgekit.targets import adapter_of  # noqa: E402


def openvino_variants(model_file: Path, hint: str, threads: int, batch: int) -> dict:
    import openvino as ov

    def compiled(**config):
        base = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads}
        return ov.Core().compile_model(str(model_file), "CPU", {**base, **config})

    def sync(model):
        request, output = model.create_infer_request(), model.output(0)
        return lambda x: request.infer([x])[output].copy()

    in_place = compiled()
    request = in_place.create_infer_request()
    variants = {"PERFORMANCE_HINT=LATENCY": sync(compiled(PERFORMANCE_HINT="LATENCY")),
                "ENABLE_CPU_PINNING=False": sync(compiled(ENABLE_CPU_PINNING=False)),
                "output read in place": lambda x: request.infer([x], share_outputs=True)}
    if batch > 1:  # the batch split over THROUGHPUT streams, outputs gathered (what evaluation uses)
        streams = openers.OpenVinoStreams(model_file, {"INFERENCE_PRECISION_HINT": hint,
                                                       "INFERENCE_NUM_THREADS": threads})
        variants[f"PERFORMANCE_HINT=THROUGHPUT ({streams.count} streams)"] = streams
    return variants


def onnxruntime_variants(model_file: Path, threads: int, batch: int) -> dict:
    import onnxruntime as ort

    def session(configure):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        configure(options)
        opened = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        name = opened.get_inputs()[0].name
        return lambda x: opened.run(None, {name: x})[0]

    # One affinity per intra-op thread beyond the caller's own (1-based logical processors).
    pinned = ";".join(str(cpu + 1) for cpu in range(1, threads))
    return {"allow_spinning=0": session(lambda o: o.add_session_config_entry("session.intra_op.allow_spinning", "0")),
            "graph optimizations EXTENDED": session(lambda o: setattr(
                o, "graph_optimization_level", ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)),
            "threads pinned": session(lambda o: o.add_session_config_entry("session.intra_op_thread_affinities",
                                                                           pinned))}


def measure(calls: dict, x: np.ndarray, seconds: float, rounds: int) -> dict:
    """Per variant: the median of per-call times over all rounds (ms), the variants interleaved round by round."""
    for call in calls.values():
        for _ in range(3):
            call(x)
    samples = {label: [] for label in calls}
    for _ in range(rounds):
        for label, call in calls.items():
            samples[label] += portable.timed_loop(lambda: call(x), 3, seconds / rounds)
            time.sleep(0.2)  # runtimes' worker threads keep spinning after a call
    return {label: statistics.median(ns) / 1e6 for label, ns in samples.items()}


def bundles(model: str, work: Path) -> dict[str, Path]:
    int8_bench.DIGITS_MODELS.update(speed_table.EXTRA_DIGITS_MODELS)
    weights = int8_bench.trained_weights(model, work)
    from edgekit.data.digits import make_digits_dataset

    digits224 = make_digits_dataset(work / "digits224", 224)
    wanted = [("openvino", "fp32", {}), ("openvino", "int8", {"recipe": "ptq-int8"}), ("onnx", "fp32", {}),
              ("onnx", "int8", {"recipe": "ptq-int8"})]
    if host_info().has_bf16:
        wanted.insert(1, ("openvino", "bf16", {}))
    out = {}
    for target, precision, extra in wanted:
        if extra:
            extra = {**extra, "calib": digits224.train_list, "recipe_overrides": {"ptq.max_drop": None}}
        result = api.build(model, target, "fp32" if precision == "int8" else precision, weights=weights,
                           num_classes=10, out=work / "runtime-options" / f"{target}-{precision}", force=True,
                           cache=True, **extra)
        out[f"{target}:{precision}"] = result.path
    return out


def arguments(out: str, seconds: float, seconds_help: str) -> argparse.ArgumentParser:
    """The options of the benchmarks that measure these bundles (this one and layer_profile.py)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="ResNet50")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--seconds", type=float, default=seconds, help=seconds_help)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-speed-table")
    parser.add_argument("--out", type=Path, default=Path(out))
    return parser


def main() -> None:
    parser = arguments("benchmarks/results/runtime-options", 2.0, "timed seconds per variant, over all rounds")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    threads = portable.usable_cpus()
    records = []
    for label, path in bundles(args.model, args.work).items():
        manifest = read_manifest(path)
        model_file = path / manifest["artifact"]["model_file"]
        for batch in (int(b) for b in args.batches.split(",")):
            hint = openers.bundle_precision_hint(manifest)
            calls = {"edgekit": adapter_of(manifest).open(model_file, threads, hint)}
            if manifest["target"]["runtime"] == "openvino":
                calls.update(openvino_variants(model_file, hint, threads, batch))
            else:
                calls.update(onnxruntime_variants(model_file, threads, batch))
            print(f"{label} batch {batch}: {len(calls)} variants", flush=True)
            ms = measure(calls, input_batch(manifest, batch), args.seconds, args.rounds)
            for variant, median in ms.items():
                records.append({"bundle": label, "batch": batch, "variant": variant, "median_ms": round(median, 3),
                                "vs_edgekit": round(ms["edgekit"] / median, 3)})
    host = host_info()
    report = {"cpu": host.cpu_model, "isa_flags": list(host.isa_flags), "threads": threads, "model": args.model,
              "seconds": args.seconds, "rounds": args.rounds, "records": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"CPU: {host.cpu_model} ({', '.join(host.isa_flags)}), {threads} threads. {args.model} at 224; median "
             f"per-call latency, variants of one bundle interleaved in {args.rounds} rounds; speed-up over edgekit's "
             "own opener of that bundle in the same run (>1: faster).", "",
             "| bundle | batch | variant | median ms | speed-up vs edgekit |", "|---|---|---|---|---|"]
    lines += [f"| {r['bundle']} | {r['batch']} | {r['variant']} | {r['median_ms']:.2f} | {r['vs_edgekit']:.2f}x |"
              for r in records]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
