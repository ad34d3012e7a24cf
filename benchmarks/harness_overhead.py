"""What edgekit bench adds to a bare runtime loop on the same model (a benchmark, not a test).

    .venv/bin/python benchmarks/harness_overhead.py [--models SqueezeNet1_1:64,ResNet18:224]
        [--targets onnx,openvino,paddle] [--seconds 20] [--threads 1] [--json out.json]

Target from the bench issue: the harness adds no more than 3%.

For each model and runtime, in one process, call by call in rotating order
so the machine's noise (this 2-core VM is shared) hits every variant alike:
  bare        <runtime call> written directly against the runtime's own API
              (onnxruntime / OpenVINO / Paddle Inference), on the very session
              the harness uses;
  edgekit     `subject.run(1)`: the object and timing loop `edgekit bench`
              measures with (its records are computed from exactly these
              samples), paying its per-loop setup on every call;
  bare again  the A/A control: how far two identical calls land apart here.
Reported, as medians of the ratios within each round: the latency edgekit
reports against the bare call's wall time; edgekit's wall time per call; and
process CPU time per call (what the harness costs, blind to preemption by
other processes). A sub-millisecond model (SqueezeNet1_1 at 64x64) is the
hard case: any fixed cost per call shows most there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgekit import api
from edgekit.bench.host import host_info
from edgekit.bench.subjects import input_batch, open_subject

LIMIT = 0.03


def bare_call(runtime: str, backend, batch: np.ndarray):
    """The runtime call an application would write, straight on the runtime's API, without edgekit in the way.

    It drives the very runtime object the harness drives (same session, same memory), so the two
    variants differ only by the harness.
    """
    if runtime == "onnxruntime":
        session = backend.native
        feed = {session.get_inputs()[0].name: batch}
        return lambda: session.run(None, feed)
    if runtime == "openvino":
        request = backend.native
        # Reading the logits is part of any application's call (onnxruntime's run returns them anyway).
        return lambda: request.infer([batch])[0]
    if runtime == "paddle-inference":
        predictor, handle, output = backend.native

        def call():
            handle.reshape(list(batch.shape))
            handle.copy_from_cpu(batch)
            predictor.run()
            return output.copy_to_cpu()

        return call
    raise ValueError(runtime)


def measure(bundle: Path, budget_s: float, threads: int) -> dict:
    """Rounds of single calls in rotating order: bare, edgekit, and bare again (the A/A control: how far two
    identical calls land apart here, the noise floor); medians of the ratios within each round."""
    manifest = json.loads((bundle / "edgekit.json").read_text())
    runtime = manifest["target"]["runtime"]
    # The object edgekit's harness times (measure() calls exactly subject.run).
    subject = open_subject(bundle, bundle.name, threads=threads, precision_hint="f32", end_to_end=False)
    subject.prepare(1)
    call = bare_call(runtime, subject.backend, input_batch(manifest, 1))
    wall, cpu = time.perf_counter_ns, time.process_time_ns

    def bare():
        w0, c0 = wall(), cpu()
        call()
        return wall() - w0, cpu() - c0, None

    def edgekit():
        # One iteration per harness call: its per-call setup counts against it too (conservative).
        w0, c0 = wall(), cpu()
        samples = subject.run(1, 0.0)
        return wall() - w0, cpu() - c0, samples[0]

    for _ in range(5):  # warm-up both
        bare()
        edgekit()
    start = time.perf_counter()
    for _ in range(5):
        bare()
    per_call = (time.perf_counter() - start) / 5
    rounds = max(30, min(1000, int(budget_s / (3 * per_call))))
    variants = {"bare": bare, "edgekit": edgekit, "bare again": bare}
    names = list(variants)
    results = {name: [] for name in names}
    for index in range(rounds):
        for name in names[index % 3:] + names[:index % 3]:  # rotate: no variant always runs first
            results[name].append(variants[name]())
    subject.close()

    def paired(a: str, b: str, field: int, base_field: int) -> float:
        return statistics.median(x[field] / y[base_field] - 1 for x, y in zip(results[a], results[b]))

    med = statistics.median
    return {"bundle": bundle.name, "runtime": runtime, "rounds": rounds,
            "bare_ms": round(med(r[0] for r in results["bare"]) / 1e6, 4),
            "reported_ms": round(med(r[2] for r in results["edgekit"]) / 1e6, 4),
            "overhead_reported": round(paired("edgekit", "bare", 2, 0), 4),
            "overhead_loop": round(paired("edgekit", "bare", 0, 0), 4),
            "overhead_cpu": round(paired("edgekit", "bare", 1, 1), 4),
            "noise_aa_wall": round(paired("bare again", "bare", 0, 0), 4),
            "noise_aa_cpu": round(paired("bare again", "bare", 1, 1), 4)}


def noop_cost_ns(n: int = 200_000) -> tuple[float, float]:
    """Per-iteration cost of a bare Python loop vs edgekit's timing loop around a call that does nothing."""
    from edgekit.portable import timed_loop

    def nothing():
        return None

    start = time.perf_counter_ns()
    for _ in range(n):
        nothing()
    bare = (time.perf_counter_ns() - start) / n
    start = time.perf_counter_ns()
    timed_loop(nothing, n, 0.0)
    harness = (time.perf_counter_ns() - start) / n
    return bare, harness


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="SqueezeNet1_1:64,ResNet18:224")
    parser.add_argument("--targets", default="onnx,openvino,paddle")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per bundle")
    # One thread by default: the per-call cost is independent of threads, and a single-threaded
    # runtime is not stalled by other processes taking one of its cores mid-call.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    console = Console(width=180)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models.split(","):
            model, _, size = spec.partition(":")
            for target in args.targets.split(","):
                with console.status(f"building {model} {target}"):
                    out = Path(tmp) / f"{model}-{size}-{target}"
                    api.build(model, target, out=out, input_size=int(size) if size else None)
                with console.status(f"measuring {out.name}"):
                    rows.append(measure(out, args.seconds, args.threads))
    bare_ns, harness_ns = noop_cost_ns()
    host = host_info()
    table = Table(title=f"edgekit bench overhead vs a bare runtime call: medians of within-round ratios, "
                        f"{args.threads} thread(s); A/A = bare vs bare (this machine's noise floor)")
    for col in ("bundle", "runtime", "rounds", "bare (ms)", "edgekit reported (ms)", "reported vs bare",
                "loop wall vs bare", "CPU time vs bare", "A/A wall", "A/A CPU", f"all <= {LIMIT:.0%}"):
        table.add_column(col, justify="left" if col in ("bundle", "runtime") else "right")
    for r in rows:
        ok = max(r["overhead_reported"], r["overhead_loop"], r["overhead_cpu"]) <= LIMIT
        table.add_row(r["bundle"], r["runtime"], str(r["rounds"]), f"{r['bare_ms']:.3f}",
                      f"{r['reported_ms']:.3f}", f"{r['overhead_reported']:+.2%}", f"{r['overhead_loop']:+.2%}",
                      f"{r['overhead_cpu']:+.2%}", f"{r['noise_aa_wall']:+.2%}", f"{r['noise_aa_cpu']:+.2%}",
                      "[green]yes[/]" if ok else "[red]no[/]")
    console.print(table)
    console.print(f"empty call: bare Python loop {bare_ns:.0f} ns/iteration, edgekit timing loop {harness_ns:.0f} "
                  f"ns/iteration (+{harness_ns - bare_ns:.0f} ns per timed call)")
    console.print(f"host: {host.cpu_model}, {host.cpus_usable} CPUs, 1-minute load {host.load_average_1m}", style="dim")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "noop_ns": {"bare": bare_ns, "edgekit": harness_ns},
                                         "host": host.to_dict()}, indent=1))


if __name__ == "__main__":
    main()
