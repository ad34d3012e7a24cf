"""`edgekit demo`: the whole edgekit story on real data, in a few minutes on a laptop CPU.

1. data      scikit-learn's handwritten digits as PNGs in PaddleClas list format
2. teacher   a larger zoo model trained on the digits with edgekit's trainer
3. student   a small zoo model distilled from the teacher
4. build     INT8 (post-training quantization with accuracy control) bundles for
             onnx, openvino and arm-lite; FP32 where INT8 is refused, with the reason
5. validate  accuracy of every bundle that runs here on the held-out digits
6. bench     latency of those bundles on this CPU
7. report    report.md + report.png + demo.json in the output directory

Every other edgekit component the demo drives is called from the
"integration points" section below, so switching one is a one-place change.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekit.errors import EdgekitError

Log = Callable[[str], None]

# Files whose presence marks a directory as an earlier demo's output (safe to replace with --force).
DEMO_MARKERS = ("demo.json", "report.md")


@dataclass(frozen=True)
class DemoConfig:
    """What the demo trains and builds; the defaults finish in a few minutes on 2 CPU cores."""

    teacher: str = "ResNet18"
    student: str = "SqueezeNet1_0"
    input_size: int = 32
    teacher_epochs: int = 1
    student_epochs: int = 4
    teacher_lr: float = 1e-3
    student_lr: float = 1e-3
    # T=2 beat T=4 for SqueezeNet students on the digits (benchmarks/distill_vs_alone.py).
    temperature: float = 2.0
    alpha: float = 0.9
    seed: int = 0
    recipe: str = "ptq-int8"
    targets: tuple[str, ...] = ("onnx", "openvino", "arm-lite")
    bench_iterations: int = 30


@dataclass
class DemoStep:
    name: str
    seconds: float
    detail: str


@dataclass
class BundleSummary:
    target: str
    precision: str
    path: Path
    size_bytes: int
    runs_here: bool
    val_top1: float | None = None
    val_top5: float | None = None
    # Top-1 agreement with the FP32 Paddle student on the same images.
    agreement_with_fp32: float | None = None
    median_ms: float | None = None
    throughput_ips: float | None = None
    runtime_precision: str | None = None
    note: str = ""


@dataclass
class DemoResult:
    out: Path
    config: DemoConfig
    steps: list[DemoStep]
    teacher: dict[str, Any]
    student: dict[str, Any]
    bundles: list[BundleSummary]
    report: Path
    plot: Path
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "config": asdict(self.config), "seconds": round(self.seconds, 1),
                "steps": [asdict(s) for s in self.steps], "teacher": self.teacher, "student": self.student,
                "bundles": [{**asdict(b), "path": str(b.path)} for b in self.bundles],
                "report": str(self.report), "plot": str(self.plot), "notes": self.notes}


# --------------------------------------------------------------------------- integration points
# The demo's only calls into other edgekit components (build + compression, validate, bench).


def build_bundle(model: str, target: str, recipe: str, *, weights: Path, calib: Path, labels: Path,
                 num_classes: int, input_size: int, out: Path) -> tuple[Any, str]:
    """`edgekit build --recipe RECIPE --calib DATA`; FP32 when the recipe is refused for this model/target."""
    from edgekit.build import plan_build, run_build

    common = dict(weights=weights, num_classes=num_classes, labels=labels, input_size=input_size, force=True)
    try:
        return run_build(plan_build(model, target, recipe=recipe, calib=calib, out=out, **common)), ""
    except EdgekitError as exc:
        note = f"{recipe} refused, built FP32 instead: {exc}"
    return run_build(plan_build(model, target, "fp32", out=out, **common)), note


def validate_bundle(bundle: Path, val_list: Path) -> dict[str, Any]:
    """`edgekit validate BUNDLE --data VAL`: accuracy here, agreement with the FP32 Paddle model."""
    from edgekit.validate import validate

    record = validate(bundle, val_list).record
    return {"top1": record["metrics"]["top1"], "top5": record["metrics"]["top5"],
            "agreement": (record.get("reference") or {}).get("top1_agreement")}


def bench_bundles(bundles: list[Path], iterations: int) -> dict[str, dict[str, Any]]:
    """`edgekit bench BUNDLE...` at batch 1: {bundle path: {median_ms, throughput_ips, runtime_precision}}."""
    from edgekit.bench import run

    report = run([str(b) for b in bundles], batch="1", iterations=iterations, rounds=3, warmup=5)
    return {str(Path(r.bundle)): {"median_ms": r.latency.median_ms, "throughput_ips": r.throughput_ips,
                                  "runtime_precision": r.runtime_precision} for r in report.records}


# --------------------------------------------------------------------------- the demo


def prepare_out_dir(out: Path, force: bool) -> None:
    """Create `out`; an existing non-empty one is replaced only with force, and only if an earlier demo wrote it."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise EdgekitError(f"Demo output directory {out} already exists; pass --force to replace it, or "
                               "choose another --out.")
        if not out.is_dir() or not any((out / marker).is_file() for marker in DEMO_MARKERS):
            raise EdgekitError(f"--out {out} exists and was not written by `edgekit demo` (no "
                               f"{' or '.join(DEMO_MARKERS)} in it); refusing to delete it even with --force. "
                               "Choose another --out.")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def run_demo(out: str | Path = "demo-out", *, force: bool = False, log: Log = print,
             config: DemoConfig = DemoConfig(), progress: bool = True) -> DemoResult:
    """Run the whole demo into `out`; returns a DemoResult (also written as out/demo.json)."""
    from edgekit.bundle import read_manifest
    from edgekit.data.digits import make_digits_dataset
    from edgekit.targets import get_target
    from edgekit.training.zoo_training import distill_zoo_model, train_zoo_model

    for target in config.targets:
        get_target(target)  # unknown targets fail before any work
    out = Path(out)
    prepare_out_dir(out, force)
    start = time.perf_counter()
    steps: list[DemoStep] = []
    notes: list[str] = []

    def step(name: str, began: float, detail: str) -> None:
        steps.append(DemoStep(name, round(time.perf_counter() - began, 2), detail))
        log(f"[{steps[-1].seconds:6.1f}s] {name}: {detail}")

    began = time.perf_counter()
    digits = make_digits_dataset(out / "data", size=config.input_size)
    step("data", began, f"{_count(digits.train_list)} train / {_count(digits.val_list)} val handwritten digits "
                        f"({config.input_size}x{config.input_size} PNG) in {digits.root}")

    began = time.perf_counter()
    teacher = train_zoo_model(config.teacher, digits.train_list, digits.val_list, out=out / "models" / "teacher.pdparams",
                        input_size=config.input_size, epochs=config.teacher_epochs, lr=config.teacher_lr,
                        seed=config.seed, checkpoint_dir=out / "work" / "teacher", progress=progress)
    step("train teacher", began, f"{config.teacher}, {config.teacher_epochs} epoch(s): val top-1 "
                                 f"{teacher.val['top1']:.3f}")

    began = time.perf_counter()
    student = distill_zoo_model(config.student, digits.train_list, digits.val_list, teacher=config.teacher,
                          teacher_weights=teacher.weights, out=out / "models" / "student.pdparams",
                          input_size=config.input_size, epochs=config.student_epochs, lr=config.student_lr,
                          temperature=config.temperature, alpha=config.alpha, seed=config.seed,
                          work_dir=out / "work" / "student", progress=progress)
    step("distill student", began, f"{config.student} from {config.teacher}, {config.student_epochs} epochs "
                                   f"(T={config.temperature}, alpha={config.alpha}): val top-1 "
                                   f"{student.val['top1']:.3f}")

    bundles: list[BundleSummary] = []
    for target in config.targets:
        began = time.perf_counter()
        result, note = build_bundle(config.student, target, config.recipe, weights=student.weights,
                                    calib=digits.train_list, labels=digits.labels, num_classes=student.num_classes,
                                    input_size=config.input_size, out=out / "bundles" / f"{config.student}-{target}")
        manifest = read_manifest(result.path)
        summary = BundleSummary(target=target, precision=manifest["target"]["precision"], path=Path(result.path),
                                size_bytes=sum(f["size"] for f in manifest["files"].values()),
                                runs_here=get_target(target).runs_on_host, note=note)
        if note:
            notes.append(f"{target}: {note}")
        if not summary.runs_here:
            summary.note = summary.note or (f"{get_target(target).format} for ARM: validate and bench on the device "
                                            "(edgekit validate/bench --device ssh://... or adb://...)")
        bundles.append(summary)
        step(f"build {target}", began, f"{summary.precision} bundle {summary.path} "
                                       f"({summary.size_bytes / 1e6:.2f} MB)" + (f" [{note}]" if note else ""))

    for summary in (b for b in bundles if b.runs_here):
        began = time.perf_counter()
        metrics = validate_bundle(summary.path, digits.val_list)
        summary.val_top1, summary.val_top5 = metrics["top1"], metrics["top5"]
        summary.agreement_with_fp32 = metrics["agreement"]
        agreement = f", top-1 agreement with FP32 {metrics['agreement']:.3f}" if metrics["agreement"] is not None \
            else ""
        step(f"validate {summary.target}", began, f"val top-1 {metrics['top1']:.3f}{agreement}")

    runnable = [b for b in bundles if b.runs_here]
    if runnable:
        began = time.perf_counter()
        timings = bench_bundles([b.path for b in runnable], config.bench_iterations)
        for summary in runnable:
            timing = timings.get(str(summary.path), {})
            summary.median_ms = timing.get("median_ms")
            summary.throughput_ips = timing.get("throughput_ips")
            summary.runtime_precision = timing.get("runtime_precision")
        step("bench", began, ", ".join(f"{b.target} {b.median_ms:.2f} ms" for b in runnable
                                       if b.median_ms is not None) + " (batch 1, median)")

    began = time.perf_counter()
    result = DemoResult(out=out, config=config, steps=steps, teacher=teacher.to_dict(), student=student.to_dict(),
                        bundles=bundles, report=out / "report.md", plot=out / "report.png",
                        seconds=time.perf_counter() - start, notes=notes)
    write_plot(result)
    step("report", began, f"{result.report} and {result.plot}")
    result.seconds = time.perf_counter() - start
    write_report(result)
    (out / "demo.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    # Training checkpoints served resumption only; the weights are in models/.
    shutil.rmtree(out / "work", ignore_errors=True)
    log(f"demo finished in {result.seconds:.0f}s: {result.report}")
    return result


def _count(list_file: Path) -> int:
    return sum(1 for line in list_file.read_text().splitlines() if line.strip())


# --------------------------------------------------------------------------- report


def write_plot(result: DemoResult) -> Path:
    """Validation top-1 per epoch (teacher, student) beside the bundles' accuracy and latency."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, (curves, bars) = plt.subplots(1, 2, figsize=(11, 4))
    for role, info in (("teacher", result.teacher), ("student", result.student)):
        history = info["train"]["history"]
        curves.plot([h["epoch"] for h in history], [h["val_top1"] for h in history], marker="o",
                    label=f"{role}: {info['model']}")
    curves.set(title="Validation top-1 while training", xlabel="epoch", ylabel="top-1", ylim=(0, 1.02))
    curves.xaxis.get_major_locator().set_params(integer=True)
    curves.legend(loc="lower right")
    measured = [b for b in result.bundles if b.val_top1 is not None]
    labels = [f"{b.target}\n{b.precision}" for b in measured]
    positions = range(len(measured))
    bars.bar(positions, [b.val_top1 for b in measured], color="tab:green", width=0.6)
    bars.set(title="Bundles on this CPU: val top-1 (bars), latency (dots)", ylabel="top-1", ylim=(0, 1.02))
    bars.set_xticks(list(positions), labels)
    latency = bars.twinx()
    latency.plot(list(positions), [b.median_ms or 0 for b in measured], "o", color="tab:red")
    latency.set_ylabel("median latency, batch 1 (ms)", color="tab:red")
    latency.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(result.plot, dpi=110)
    plt.close(fig)
    return result.plot


def _cpu_name() -> str:
    from edgekit.portable import cpu_model

    return cpu_model()


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def write_report(result: DemoResult) -> Path:
    teacher, student, config = result.teacher, result.student, result.config
    lines = [
        "# edgekit demo report", "",
        f"Host: {platform.system()} {platform.machine()}, {_cpu_name()}, {os.cpu_count()} logical CPUs; "
        f"whole demo {result.seconds:.0f} s.", "",
        "## Models (trained here on scikit-learn's handwritten digits)", "",
        "| role | model | epochs | val top-1 | val top-5 | weights |", "|---|---|---|---|---|---|",
        f"| teacher | {teacher['model']} | {len(teacher['train']['history'])} | {_fmt(teacher['val']['top1'])} | "
        f"{_fmt(teacher['val']['top5'])} | {teacher['weights']} |",
        f"| student (distilled) | {student['model']} | {len(student['train']['history'])} | "
        f"{_fmt(student['val']['top1'])} | {_fmt(student['val']['top5'])} | {student['weights']} |", "",
        f"Distillation: T = {config.temperature}, alpha = {config.alpha} (weight of the teacher's soft targets), "
        f"input {config.input_size}x{config.input_size}.", "",
        "## Bundles", "",
        "| target | precision | size (MB) | val top-1 | top-1 agreement with FP32 | median ms (batch 1) | "
        "images/s | runtime computes in | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in result.bundles:
        lines.append(f"| {b.target} | {b.precision} | {b.size_bytes / 1e6:.2f} | {_fmt(b.val_top1)} | "
                     f"{_fmt(b.agreement_with_fp32)} | {_fmt(b.median_ms, 2)} | {_fmt(b.throughput_ips, 0)} | "
                     f"{b.runtime_precision or '—'} | {b.note} |")
    lines += ["", "![training curves and bundles](report.png)", "", "## Steps", "",
              "| step | seconds | what |", "|---|---|---|"]
    lines += [f"| {s.name} | {s.seconds:.1f} | {s.detail} |" for s in result.steps]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    lines += ["", "Reproduce: `edgekit demo --out DIR`. Each bundle holds its model, `edgekit.json` and an "
                  "`app/` example."]
    result.report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return result.report
