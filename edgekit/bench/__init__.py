"""edgekit bench: trustworthy latency of bundles on this CPU, and the seed pages' TensorRT method on a GPU.

    from edgekit.bench import run
    report = run(["dist/ResNet50-onnx-fp32", "dist/ResNet50-openvino-fp32"], batch="1,4,8")
    for record in report.records:
        print(record.label, record.batch, record.latency.median_ms, record.runtime_precision)

Every figure is a record (median, mean, p90, p99, min, max, CV, throughput,
the runtime and precision that actually ran); tables, JSON, CSV and plots
(`edgekit.bench.views`) are views of records.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Sequence

from edgekit.bench.cpu import CpuBenchConfig, check_device, parse_batches, run_cpu_bench
from edgekit.bench.records import BenchReport, CpuRecord
from edgekit.bench.stats import LatencyStats
from edgekit.errors import EdgekitError, suggest
from edgekit.scratch import scratch_dir, sweep_tmp

__all__ = ["run", "reference_report", "BenchReport", "CpuRecord", "CpuBenchConfig", "LatencyStats", "parse_batches"]


def _split(text: str | Sequence[str] | None) -> list[str]:
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    return [i.strip() for i in items if i.strip()]


def _is_model(name: str) -> bool:
    from edgekit.zoo import list_models

    return name in list_models()


def _classify(targets: Sequence[str]) -> tuple[list[str], list[str]]:
    """(bundle directories, zoo model names); anything else is an error naming it."""
    from edgekit.zoo import list_models

    bundles, models = [], []
    for t in targets:
        if Path(t).is_dir():
            bundles.append(t)
        elif _is_model(t):
            models.append(t)
        elif Path(t).exists():
            raise EdgekitError(f"{t} is a file, not a bundle: give the bundle directory written by `edgekit build` "
                               "(the one holding edgekit.json).")
        else:
            raise EdgekitError(f"{t!r} is neither a bundle directory nor a zoo model name.{suggest(t, list_models())} "
                               "Give bundle directories, or a model name with --target T to build and bench it.")
    return bundles, models


def reference_report(targets: Sequence[str] = (), gpu: str | None = None) -> BenchReport:
    """The seed pages' TensorRT tables for these models (or bundles' models; every zoo model when empty)."""
    from edgekit.bench.published import reference_rows
    from edgekit.bench.subjects import open_bundle

    bundles, models = _classify(targets)
    names = [open_bundle(b)[1]["model"]["name"] for b in bundles] + models
    return BenchReport(kind="reference", reference=reference_rows(list(dict.fromkeys(names)) or None, gpu),
                       config={"gpu": gpu})


def run(targets: Sequence[str] = (), *, target: str | Sequence[str] | None = None,
        precision: str | Sequence[str] | None = None, batch: str | Sequence[int] | None = None,
        threads: int | None = None, warmup: int = 5, iterations: int | None = None, duration: float | None = None,
        rounds: int = 5, device: str = "local", precision_hint: str | None = None, end_to_end: bool = False,
        peak: bool = False, gpu: str | None = None, reference_only: bool = False, input_size: int | None = None,
        weights: str | None = None, data_transfers: bool = True, device_python: str | None = None,
        device_dir: str | None = None, ssh_options: dict[str, str] | None = None,
        progress: Callable[[str], None] | None = None) -> BenchReport:
    """Bench bundles (or zoo models built for `target`) on this CPU, or a model with TensorRT on a GPU.

    - CPU (default): every bundle at every batch, interleaved round by round, on this machine or on
      `device` ("ssh://user@host", "adb://SERIAL"; `device_python`, `device_dir`, `ssh_options` as for
      validate). With `target`, zoo model names are built first (each target x precision, random-init
      weights: latency does not depend on weight values) into a temporary directory, removed afterwards.
    - `gpu="t4"|"v100"`: the seed pages' TensorRT method for one model or bundle, beside their table.
    - `reference_only`: the seed pages' table, nothing measured.
    Bad input raises EdgekitError before anything is built or timed.
    """
    sweep_tmp()  # what killed runs left in TMPDIR (only theirs: the owner is checked)
    if reference_only:
        return reference_report(targets, gpu)
    if gpu is not None:
        from edgekit.bench.tensorrt import run_gpu_bench

        if len(targets) != 1:
            raise EdgekitError(f"--gpu benches one model or bundle at a time; got {len(targets)}.")
        return run_gpu_bench(targets[0], gpu, _split(precision) or None,
                             parse_batches(batch) if batch is not None else (1, 4, 8),
                             duration_s=duration or 3.0, iterations=iterations or 10, data_transfers=data_transfers,
                             weights=weights, progress=progress)
    config = CpuBenchConfig(batches=parse_batches(batch if batch is not None else "1"), threads=threads,
                            warmup=warmup, iterations=iterations, duration_s=duration, rounds=rounds,
                            precision_hint=precision_hint, end_to_end=end_to_end, peak=peak, device=device)
    config.resolved()  # check the numbers and the device before building anything
    check_device(device)
    if not targets:
        raise EdgekitError("Nothing to bench: give one or more bundle directories, or MODEL --target T.")
    bundles, models = _classify(targets)
    target_names, precisions = _split(target), _split(precision) or ["fp32"]
    if models and not target_names:
        raise EdgekitError(f"{', '.join(models)} {'is a zoo model' if len(models) == 1 else 'are zoo models'}, not "
                           "a bundle: add --target T (e.g. --target onnx, or --target onnx,openvino) to build and "
                           "bench it, or give a bundle directory.")
    if target_names and not models:
        raise EdgekitError("--target builds zoo models before benching; give a model name (e.g. ResNet50 "
                           "--target onnx) or drop --target when benching bundle directories.")
    builds = [(m, t, p) for m in models for t in target_names for p in precisions]
    work = scratch_dir("edgekit-bench-build") if builds else None
    try:
        from edgekit.build import plan_build, run_build

        for m, t, p in builds:  # unknown targets or precisions fail before the first build starts
            plan_build(m, t, p, out=work / f"{m}-{t}-{p}", input_size=input_size, weights=weights)
        paths, labels = list(bundles), [Path(b).name for b in bundles]
        for m, t, p in builds:
            name = f"{m}-{t}-{p}"
            if progress:
                progress(f"building {name}")
            plan = plan_build(m, t, p, weights=weights, out=work / name, input_size=input_size)
            built = run_build(plan, progress=(lambda step, n=name: progress(f"building {n}: {step}"))
                              if progress else None)
            paths.append(str(built.path))
            labels.append(name)
        device_options = {"python": device_python, "work_dir": device_dir, "ssh_options": ssh_options}
        report = run_cpu_bench(paths, config, labels=labels, progress=progress,
                               device_options=device_options if device != "local" else None)
        if builds:
            report.warnings.append("bundles built from zoo names for this run (random-init weights, removed "
                                   "afterwards); `edgekit build` keeps one.")
        return report
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
