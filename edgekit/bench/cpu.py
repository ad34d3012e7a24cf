"""The CPU harness: warm-up, interleaved rounds, records.

Several bundles are measured round by round: in each round every bundle runs
its share of iterations (or of the duration), in an order rotated each
round, so a machine that gets busier or hotter halfway through slows every
bundle alike instead of whichever happened to run last.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

from edgekit.bench.host import HostInfo, host_info, usable_cpus
from edgekit.bench.records import BenchReport, Chunk, CpuRecord
from edgekit.bench.stats import UNSTABLE_CV, LatencyStats, images_per_second
from edgekit.bench.subjects import Subject, open_subject
from edgekit.errors import EdgekitError

Progress = Callable[[str], None]

PRECISION_HINTS = ("f32", "bf16")
# trtexec's defaults: at least 10 iterations and at least 3 seconds per measurement.
DEFAULT_ITERATIONS = 10
DEFAULT_DURATION_S = 3.0


@dataclass(frozen=True)
class CpuBenchConfig:
    batches: tuple[int, ...] = (1,)
    threads: int | None = None  # None: every CPU of where it runs, passed explicitly to every runtime
    warmup: int = 5  # iterations per (bundle, batch), discarded
    iterations: int | None = None  # at least this many timed calls per (bundle, batch)
    duration_s: float | None = None  # and at least this much timed time per (bundle, batch)
    rounds: int = 5
    # Pause between two bundles' chunks: runtimes' worker threads keep spinning after a call
    # (Intel OpenMP in Paddle for 200 ms by default) and would steal cores from the next bundle.
    settle_s: float = 0.2
    # OpenVINO only, as given: None (not given) is the bundle's own (f32; bf16 bundles: bf16 on CPUs that
    # compute it natively), as everywhere edgekit runs a bundle; "default" leaves OpenVINO's own choice.
    precision_hint: str | None = None
    end_to_end: bool = False
    peak: bool = False
    device: str = "local"

    def resolved(self) -> "CpuBenchConfig":
        """Check every value; fill the defaults (10 iterations and 3 s when neither is given)."""
        if not self.batches:
            raise EdgekitError("--batch needs at least one batch size, e.g. --batch 1,4,8.")
        if self.threads is not None and self.threads < 1:
            raise EdgekitError(f"--threads {self.threads}: expected a positive number of threads.")
        if self.warmup < 0:
            raise EdgekitError(f"--warmup {self.warmup}: expected 0 or more warm-up iterations.")
        if self.iterations is not None and self.iterations < 1:
            raise EdgekitError(f"--iters {self.iterations}: expected 1 or more timed iterations.")
        if self.duration_s is not None and not self.duration_s > 0:
            raise EdgekitError(f"--duration {self.duration_s}: expected a positive number of seconds.")
        if self.settle_s < 0:
            raise EdgekitError(f"settle_s {self.settle_s}: expected 0 or more seconds.")
        if self.rounds < 1:
            raise EdgekitError(f"--rounds {self.rounds}: expected 1 or more rounds.")
        if self.precision_hint is not None and self.precision_hint not in (*PRECISION_HINTS, "default"):
            raise EdgekitError(f"--precision-hint {self.precision_hint!r}: expected one of "
                               f"{', '.join(PRECISION_HINTS)} (OpenVINO's INFERENCE_PRECISION_HINT), or default "
                               "(OpenVINO's own choice: bf16 on CPUs that have it).")
        iterations, duration = self.iterations, self.duration_s
        if iterations is None and duration is None:
            iterations, duration = DEFAULT_ITERATIONS, DEFAULT_DURATION_S
        iterations, duration = iterations or 0, duration or 0.0
        rounds = min(self.rounds, iterations) if iterations and not duration else self.rounds
        return CpuBenchConfig(batches=tuple(self.batches), threads=self.threads,
                              warmup=self.warmup, iterations=iterations, duration_s=duration, rounds=rounds,
                              settle_s=self.settle_s,
                              precision_hint=self.precision_hint, end_to_end=self.end_to_end, peak=self.peak,
                              device=self.device)

    def to_dict(self) -> dict:
        return {**asdict(self), "batches": list(self.batches),
                "openvino_precision_hint": self.precision_hint or "the bundle's own (artifact.precision_hint)"}


def parse_batches(text: str | Sequence[int]) -> tuple[int, ...]:
    """'1,4,8' -> (1, 4, 8); anything else is an EdgekitError naming the bad entry."""
    items = [s.strip() for s in text.split(",") if s.strip()] if isinstance(text, str) else list(text)
    batches = []
    for item in items:
        try:
            value = int(item)
        except (TypeError, ValueError):
            raise EdgekitError(f"--batch {text!r}: {item!r} is not a whole number; give batch sizes separated "
                               "by commas, e.g. --batch 1,4,8.") from None
        if not 1 <= value <= 1024:
            raise EdgekitError(f"--batch {text!r}: batch size {value} is out of range (1..1024).")
        if value in batches:
            raise EdgekitError(f"--batch {text!r}: batch size {value} is listed twice.")
        batches.append(value)
    if not batches:
        raise EdgekitError("--batch needs at least one batch size, e.g. --batch 1,4,8.")
    return tuple(batches)


def check_device(device: str) -> None:
    """local, or ssh:// / adb:// through edgekit.devices' transports."""
    if device == "local":
        return
    if device.startswith(("ssh://", "adb://")):
        import edgekit.devices

        if not hasattr(edgekit.devices, "open_device"):
            raise EdgekitError(f"--device {device}: this edgekit has no ssh/adb device transport; copy the bundle "
                               "to the device and run `edgekit bench BUNDLE` there, or use --device local.")
        return
    if device.startswith("emu://"):
        raise EdgekitError(f"--device {device}: an emulated ARM device computes the .nb's numbers but says nothing "
                           "about its speed (qemu-user is 10-100x slower than a board); bench on the board "
                           "(--device ssh://...) and use `edgekit validate --device emu://aarch64` for numbers.")
    raise EdgekitError(f"--device {device!r}: expected local, ssh://[user@]host[:port] or adb://SERIAL.")


def _rounds_plan(config: CpuBenchConfig) -> list[tuple[int, float]]:
    """(iterations, seconds) each round asks of each bundle: the totals split evenly."""
    n = config.rounds
    per_round = [config.iterations // n + (1 if r < config.iterations % n else 0) for r in range(n)]
    return [(iterations, config.duration_s / n) for iterations in per_round]


def measure(subjects: Sequence[Subject], config: CpuBenchConfig,
            progress: Progress | None = None) -> tuple[dict[tuple[str, int], list[int]], list[Chunk]]:
    """Interleaved timing of every subject at every batch: {(label, batch): per-call ns}, schedule."""
    samples: dict[tuple[str, int], list[int]] = {}
    schedule: list[Chunk] = []
    plan = _rounds_plan(config)
    settle = config.settle_s if len(subjects) > 1 else 0.0
    for batch in config.batches:
        for subject in subjects:
            if progress:
                progress(f"warm-up {subject.label} batch {batch}")
            subject.prepare(batch)
            if config.warmup:
                subject.run(config.warmup, 0.0)
            samples[(subject.label, batch)] = []
        for round_index, (iterations, seconds) in enumerate(plan):
            shift = round_index % len(subjects)
            for subject in list(subjects[shift:]) + list(subjects[:shift]):
                if progress:
                    progress(f"batch {batch} round {round_index + 1}/{len(plan)}: {subject.label}")
                time.sleep(settle)
                start = time.perf_counter()
                chunk = subject.run(iterations, seconds)
                schedule.append(Chunk(round_index, subject.label, batch, len(chunk), time.perf_counter() - start))
                samples[(subject.label, batch)].extend(chunk)
    return samples, schedule


def _labels(paths: Sequence[str], names: Sequence[str] | None) -> list[str]:
    from pathlib import Path

    labels = list(names) if names else [Path(p).name or str(p) for p in paths]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return unique


def run_cpu_bench(bundles: Sequence[str], config: CpuBenchConfig, labels: Sequence[str] | None = None,
                  progress: Progress | None = None, device_options: dict | None = None) -> BenchReport:
    """Bench bundle directories on this CPU or a device's; one record per (bundle, batch).

    `device_options` (python, work_dir, ssh_options) reach ssh:// and adb:// devices.
    """
    config = config.resolved()
    check_device(config.device)
    if not bundles:
        raise EdgekitError("Nothing to bench: give one or more bundle directories (or MODEL --target T).")
    session = None
    subjects: list[Subject] = []
    try:
        if config.device != "local":
            from edgekit.bench.on_device import DeviceSession

            if progress:
                progress(f"connecting to {config.device}")
            session = DeviceSession(config.device, **(device_options or {}))
        for path, label in zip(bundles, _labels(bundles, labels)):
            if progress:
                progress(f"loading {label}")
            if session:
                subjects.append(session.open_subject(path, label, threads=config.threads, warmup=config.warmup,
                                                     precision_hint=config.precision_hint,
                                                     end_to_end=config.end_to_end))
            else:
                subjects.append(open_subject(path, label, threads=config.threads or usable_cpus(),
                                             precision_hint=config.precision_hint, end_to_end=config.end_to_end))
        host = session.host_info() if session else host_info()
        config = replace(config, threads=config.threads or host.cpus_usable)
        flops = _flops(subjects, progress)
        peaks = _peaks(subjects, config, progress) if config.peak and not session else {}
        samples, schedule = measure(subjects, config, progress)
    finally:
        for subject in subjects:
            subject.close()
        if session:
            session.close()
    records = [_record(s, batch, samples[(s.label, batch)], config, host, flops[s.label], peaks)
               for batch in config.batches for s in subjects]
    physical = _physical_peak(peaks) if peaks else None
    return BenchReport(kind="cpu", records=records, host={**host.to_dict(), "device": config.device},
                       config=config.to_dict(),
                       ratios=_ratios(records, subjects, config.batches),
                       peaks=[p.to_dict() for p in peaks.values()], physical_peak=physical, schedule=schedule,
                       accuracy=_accuracy(subjects, records),
                       warnings=_warnings(records, subjects, config, host, physical))


def _flops(subjects: Sequence[Subject], progress: Progress | None) -> dict[str, tuple[float, str] | tuple[None, None]]:
    from edgekit.bench.flops import flops_per_image

    out = {}
    for s in subjects:
        if progress:
            progress(f"counting FLOPs of {s.model} at {s.input_size}x{s.input_size}")
        try:
            out[s.label] = flops_per_image(s.model, int(s.manifest["model"]["num_classes"]), s.input_size)
        except EdgekitError:  # a bundle of a model this edgekit's zoo does not know
            out[s.label] = (None, None)
    return out


def _peaks(subjects: Sequence[Subject], config: CpuBenchConfig, progress: Progress | None) -> dict:
    from edgekit.bench.peak import best_peak, peak_runtime

    peaks = {}
    for s in subjects:
        key = (peak_runtime(s.runtime), s.runtime_precision)
        if key not in peaks:
            if progress:
                progress(f"measuring the compute peak of {s.runtime} {s.runtime_precision}")
            peaks[key] = best_peak(s.runtime, s.runtime_precision, config.threads)
    return peaks


def _physical_peak(peaks: dict) -> dict:
    """This host's cores x clock x FLOP/cycle, and each measured float GEMM peak's share of it."""
    from edgekit.bench.limits import physical_peak

    physical = physical_peak().to_dict()
    if physical["gflops"]:
        for p in peaks.values():
            if p.gflops is not None and p.precision == "f32":  # bf16 dot products may pass it
                physical.setdefault("measured_fractions", {})[f"{p.runtime} {p.precision}"] = round(
                    p.gflops / physical["gflops"], 4)
    return physical


def _record(subject: Subject, batch: int, ns: list[int], config: CpuBenchConfig, host: HostInfo,
            flops: tuple, peaks: dict) -> CpuRecord:
    stats = LatencyStats.from_ns(ns)
    throughput = images_per_second(batch, stats.mean_ms)
    flops_g, flops_source = flops
    from edgekit.bench.peak import peak_runtime

    peak = peaks.get((peak_runtime(subject.runtime), subject.runtime_precision))
    # A GEMM that did not run in integer kernels is no INT8 ceiling (its note says so).
    ceiling = peak.gflops if peak and peak.integer_kernel is not False else None
    target = subject.manifest["target"]
    return CpuRecord(
        label=subject.label, bundle=str(subject.root), model=subject.model, target=target["name"],
        bundle_precision=target["precision"], runtime=subject.runtime, runtime_version=subject.runtime_version,
        runtime_precision=subject.runtime_precision, batch=batch,
        input_shape=[batch, 3, subject.input_size, subject.input_size], threads=subject.threads,
        cpu_model=host.cpu_model, device=config.device, end_to_end=config.end_to_end,
        warmup_iterations=config.warmup, rounds=config.rounds, latency=stats, throughput_ips=throughput,
        flops_g_per_image=None if flops_g is None else round(flops_g, 4), flops_source=flops_source,
        achieved_gflops=None if flops_g is None else flops_g * throughput,
        peak_gflops=ceiling, peak_source=peak.source if peak else None,
        notes=list(subject.notes))


def _ratios(records: list[CpuRecord], subjects: Sequence[Subject], batches: Sequence[int]) -> list[dict]:
    """Each bundle's median latency against the first bundle's, per batch."""
    if len(subjects) < 2:
        return []
    by_key = {(r.label, r.batch): r for r in records}
    baseline = subjects[0].label
    out = []
    for batch in batches:
        base = by_key[(baseline, batch)].latency.median_ms
        for s in subjects[1:]:
            median = by_key[(s.label, batch)].latency.median_ms
            out.append({"batch": batch, "label": s.label, "baseline": baseline,
                        "latency_ratio": round(median / base, 4), "speedup": round(base / median, 4)})
    return out


def _top1(entry: dict) -> float | None:
    """Top-1 of a validation record, wherever `edgekit validate` put it."""
    for source in (entry, entry.get("metrics") or {}, entry.get("accuracy") if isinstance(entry.get("accuracy"),
                                                                                         dict) else {}):
        for key in ("top1", "top1_accuracy", "top_1"):
            value = source.get(key)
            if isinstance(value, (int, float)):
                return float(value)
    return None


def _accuracy(subjects: Sequence[Subject], records: list[CpuRecord]) -> list[dict]:
    """Latest validated top-1 of each bundle beside its smallest-batch median latency (for the plot)."""
    out = []
    for s in subjects:
        validations = [v for v in s.manifest.get("validations") or [] if isinstance(v, dict) and _top1(v) is not None]
        if not validations:
            continue
        latest = validations[-1]
        mine = sorted((r for r in records if r.label == s.label), key=lambda r: r.batch)
        data = latest.get("data") if isinstance(latest.get("data"), dict) else {}
        device = latest.get("device")
        out.append({"label": s.label, "top1": _top1(latest), "dataset": latest.get("dataset") or data.get("source"),
                    "images": data.get("evaluated") or data.get("images"),
                    "device": device.get("address") or device.get("kind") if isinstance(device, dict) else device,
                    "batch": mine[0].batch,
                    "median_ms": round(mine[0].latency.median_ms, 4)})
    return out


def _warnings(records: list[CpuRecord], subjects: Sequence[Subject], config: CpuBenchConfig,
              host: HostInfo, physical: dict | None = None) -> list[str]:
    warnings = []
    over = [k for k, v in ((physical or {}).get("measured_fractions") or {}).items() if v > 1.0]
    if over:
        warnings.append(f"the measured {', '.join(over)} compute peak is above the physical FP32 peak "
                        f"({physical['formula']}): an assumption there is wrong (turbo above the stated clock, "
                        "more FMA pipes, or more cores than the topology shows).")
    if host.busy:
        warnings.append(f"machine busy: 1-minute load average {host.load_average_1m} on {host.cpus_usable} usable "
                        "CPUs; other processes are taking CPU time, so latencies are inflated and noisier.")
    if config.threads > host.cpus_usable:
        warnings.append(f"--threads {config.threads} is more than the {host.cpus_usable} usable CPUs; threads will "
                        "compete for cores.")
    if config.peak and config.device != "local":
        warnings.append("--peak measures a GEMM on this host, so it is skipped for a remote device.")
    for r in records:
        if r.unstable:
            warnings.append(f"{r.label} batch {r.batch}: unstable, coefficient of variation {r.latency.cv:.1%} "
                            f"(> {UNSTABLE_CV:.0%}); trust the median over the mean, and try a longer --duration "
                            "on a quieter machine.")
    from edgekit.targets import adapter_for

    hinted = [s for s in subjects if adapter_for(s.runtime).precision_hints]
    if config.precision_hint and not hinted:
        warnings.append(f"--precision-hint {config.precision_hint} applies to OpenVINO bundles only; none was given.")
    for s in hinted:
        if s.runtime_precision == "bf16" and config.precision_hint == "default":
            warnings.append(f"{s.label}: OpenVINO computed in bf16, its default on this CPU (faster, slightly "
                            "different numbers); pass --precision-hint f32 for true f32.")
        if s.runtime_precision == "bf16" and host.isa_flags and not host.has_bf16:
            warnings.append(f"{s.label}: bf16 was forced on a CPU without native bf16 ({host.cpu_model}); OpenVINO "
                            "emulates it, which is far slower than f32.")
        if s.manifest["target"]["precision"] == "bf16" and s.runtime_precision != "bf16":
            warnings.append(f"{s.label}: a bf16 bundle, computed in {s.runtime_precision} here: this CPU "
                            f"({host.cpu_model}) has no native bf16 (avx512_bf16 / amx_bf16), and emulated bf16 "
                            "is slower than f32. Its bf16 speed shows only on such a CPU.")
    return warnings
