"""Where an OpenVINO bundle's time goes, layer kind by layer kind, against the compute peak (a benchmark, not
a test): why a whole network stays below the `--peak` that `edgekit bench` divides by.

    .venv/bin/python benchmarks/layer_profile.py [--model ResNet50] [--batches 1,8] [--seconds 3]
        [--work DIR] [--out benchmarks/results/layer-profile]

The bundles are benchmarks/runtime_options.py's (openvino fp32 / bf16 where the CPU has it / int8, ResNet50 at
224, from the build cache when that or speed_table.py ran first). Each is opened the way edgekit opens it, with
OpenVINO's per-layer performance counters on, and run for --seconds; every executed layer's time is summed by
kind (3x3 convolution at stride 1, 1x1 convolution, other convolutions, fully connected, everything else:
pooling, reorders, eltwise, quantization), and each convolution's multiply-adds (from the IR's shapes) give its
achieved GFLOP/s (GOP/s for int8) beside the peak `edgekit bench --peak` measures in the same process.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runtime_options  # noqa: E402

from edgekit import openers, portable  # noqa: E402
from edgekit.bench.host import host_info  # noqa: E402
from edgekit.bench.peak import best_peak  # noqa: E402
from edgekit.bench.subjects import input_batch  # noqa: E402
from edgekit.bundle import read_manifest  # noqa: E402

KINDS = ("conv 3x3 stride 1", "conv 1x1", "other conv", "fully connected", "everything else")


def operations(model_file: Path, batch: int) -> dict[str, tuple[str, float]]:
    """Layer name -> (kind, 2 x multiply-adds) for convolutions and MatMuls, from the IR's static shapes."""
    import openvino as ov

    model = ov.Core().read_model(str(model_file))
    model.reshape({model.input(0).get_any_name(): [batch, *model.input(0).get_partial_shape()[1:].to_shape()]})
    found = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Convolution", "GroupConvolution"):
            weights = list(op.input(1).get_partial_shape().to_shape())
            out = list(op.output(0).get_partial_shape().to_shape())
            if kind == "GroupConvolution":  # [groups, out/groups, in/groups, kh, kw]
                weights = [weights[0] * weights[1], *weights[2:]]
            macs = int(np.prod(out)) * int(np.prod(weights[1:]))
            kh, kw = weights[2], weights[3]
            strides = list(op.get_attributes().get("strides", [1, 1]))
            label = ("conv 3x3 stride 1" if (kh, kw) == (3, 3) and strides == [1, 1] and kind == "Convolution"
                     else "conv 1x1" if (kh, kw) == (1, 1) else "other conv")
            found[op.get_friendly_name()] = (label, 2.0 * macs)
        elif kind == "MatMul":
            a = list(op.input(0).get_partial_shape().to_shape())
            b = list(op.input(1).get_partial_shape().to_shape())
            outputs = b[0] if op.get_attributes().get("transpose_b") else b[-1]
            found[op.get_friendly_name()] = ("fully connected", 2.0 * int(np.prod(a)) * outputs)
    return found


def profile(model_file: Path, hint: str, batch: int, x: np.ndarray, seconds: float) -> dict:
    import openvino as ov

    threads = portable.usable_cpus()
    config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERF_COUNT": True}
    compiled = ov.Core().compile_model(str(model_file), "CPU", config)
    request = compiled.create_infer_request()
    for _ in range(3):
        request.infer([x])
    ns = portable.timed_loop(lambda: request.infer([x]), 5, seconds)
    ops = operations(model_file, batch)
    per_kind = {kind: {"us": 0.0, "flops": 0.0, "layers": 0} for kind in KINDS}
    kernels = defaultdict(float)
    for info in request.get_profiling_info():
        if info.status != info.Status.EXECUTED:
            continue
        us = info.real_time.total_seconds() * 1e6
        kind, flops = ops.get(info.node_name, ("everything else", 0.0))
        per_kind[kind]["us"] += us
        per_kind[kind]["flops"] += flops
        per_kind[kind]["layers"] += 1
        kernels[f"{info.node_type}/{info.exec_type}"] += us
    total = sum(k["us"] for k in per_kind.values())
    return {"median_ms": float(np.median(ns)) / 1e6, "profiled_ms": total / 1e3, "kinds": per_kind,
            "top_kernels": sorted(kernels.items(), key=lambda kv: -kv[1])[:8]}


def main() -> None:
    args = runtime_options.arguments("benchmarks/results/layer-profile", 3.0, "timed seconds per bundle and batch"
                                      ).parse_args()
    threads = portable.usable_cpus()
    records, lines = [], []
    for label, path in runtime_options.bundles(args.model, args.work).items():
        manifest = read_manifest(path)
        if manifest["target"]["runtime"] != "openvino":
            continue
        precision = manifest["target"]["precision"]
        hint = openers.bundle_precision_hint(manifest)
        peak = best_peak("openvino", {"fp32": "f32"}.get(precision, precision), threads)
        model_file = path / manifest["artifact"]["model_file"]
        for batch in (int(b) for b in args.batches.split(",")):
            result = profile(model_file, hint, batch, input_batch(manifest, batch), args.seconds)
            record = {"bundle": label, "batch": batch, "peak": peak.to_dict(), **result}
            records.append(record)
            print(f"{label} batch {batch}: {result['median_ms']:.2f} ms", flush=True)
            for kind, k in result["kinds"].items():
                rate = k["flops"] / (k["us"] * 1e3) if k["us"] and k["flops"] else None
                share = f"{rate / peak.gflops:.0%}" if rate and peak.gflops else "—"
                lines.append(f"| {label} | {batch} | {kind} | {k['layers']} | {k['us'] / 1e3:.2f} | "
                             f"{k['us'] / 1e3 / result['profiled_ms']:.0%} | "
                             f"{f'{rate:.0f}' if rate else '—'} | {share} |")
    host = host_info()
    report = {"cpu": host.cpu_model, "isa_flags": list(host.isa_flags), "threads": threads, "model": args.model,
              "records": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    peaks = "; ".join(sorted({f"{r['bundle']}: {r['peak']['gflops']} {r['peak']['unit']} ({r['peak']['workload']})"
                              for r in records}))
    head = [f"CPU: {host.cpu_model} ({', '.join(host.isa_flags)}), {threads} threads. {args.model} at 224, OpenVINO "
            f"per-layer counters summed by layer kind; rate = the kind's operations / its time, share = rate / "
            f"the runtime's measured peak ({peaks}).", "",
            "| bundle | batch | layer kind | layers | ms | share of time | G(FL)OP/s | share of peak |",
            "|---|---|---|---|---|---|---|---|"]
    args.out.with_suffix(".md").write_text("\n".join(head + lines) + "\n")
    print("\n".join(head + lines))


if __name__ == "__main__":
    main()
