"""`edgekit demo`: the whole edgekit story on real data, in a few minutes on a laptop CPU.

1. data      scikit-learn's handwritten digits as PNGs in PaddleClas list format
2. teacher   a larger zoo model trained on the digits with edgekit's trainer
3. student   a small zoo model distilled from the teacher
4. matrix    the student x (onnx, openvino, arm-lite) x (fp32, ptq-int8 with accuracy control, calibrated on
             the training digits) on this host (arm-lite on the emulated ARM device when an ARM Lite runtime
             is registered), written as <out>/plan.yaml and run by edgekit.matrix: build (through the build
             cache), validate on the held-out digits, bench; one record per cell in <out>/records.jsonl
5. report    the matrix report (report.md, report.html, report.png: FP32 and INT8 per target side by side,
             the accuracy-vs-latency chart) with the demo's models and steps, and demo.json

The plan and its summary live in edgekit.demo_matrix, the report's extra sections in edgekit.demo_report.
"""

from __future__ import annotations

import json
import os
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
    targets: tuple[str, ...] = ("onnx", "openvino", "arm-lite")
    recipes: tuple[str, ...] = ("fp32", "ptq-int8")
    bench_iterations: int = 30
    cache: bool = True  # reuse bundles whose build inputs match an earlier build (edgekit cache ls)
    # Build processes [default: one per core from 3 cores; in this process on 1-2 cores, where the pool's
    # start-up (a fresh Paddle import per process) costs more than it gains: six builds took 54 s in a pool of
    # 2 and 41 s in-process on a 2-core EPYC].
    jobs: int | None = None


@dataclass
class DemoStep:
    name: str
    seconds: float
    detail: str


@dataclass
class DemoResult:
    out: Path
    config: DemoConfig
    steps: list[DemoStep]
    teacher: dict[str, Any]
    student: dict[str, Any]
    cells: list[Any]  # edgekit.demo_matrix.CellSummary, one per matrix cell
    plan: Path
    arm: str  # where arm-lite was validated, or why it was not
    seconds: float
    report: Path | None = None
    html: Path | None = None
    plot: Path | None = None
    matrix: dict[str, Any] = field(default_factory=dict)  # counts and where the records are
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Any]:
        return [c for c in self.cells if c.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        def path(p: Path | None) -> str | None:
            return None if p is None else str(p)

        return {"out": str(self.out), "config": asdict(self.config), "seconds": round(self.seconds, 1),
                "steps": [asdict(s) for s in self.steps], "teacher": self.teacher, "student": self.student,
                "cells": [c.to_dict() for c in self.cells], "plan": str(self.plan), "arm": self.arm,
                "matrix": self.matrix, "report": path(self.report), "html": path(self.html),
                "plot": path(self.plot), "notes": self.notes}


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
    from edgekit.compress.recipes import get_recipe
    from edgekit.data.digits import make_digits_dataset
    from edgekit.demo_matrix import arm_emulator, load_demo_plan, run_plan, summarise, write_plan
    from edgekit.demo_report import write_demo_report
    from edgekit.targets import get_target
    from edgekit.training.zoo_training import distill_zoo_model, train_zoo_model

    for target in config.targets:
        get_target(target)  # unknown targets and recipes fail before any work
    for recipe in config.recipes:
        get_recipe(recipe)
    out = Path(out)
    prepare_out_dir(out, force)
    start = time.perf_counter()
    steps: list[DemoStep] = []

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
    # Training checkpoints served resumption only; the weights are in models/.
    shutil.rmtree(out / "work", ignore_errors=True)

    began = time.perf_counter()
    emulator, arm = arm_emulator()
    plan_file = write_plan(out, config, weights=student.weights, labels=digits.labels, calib=digits.train_list,
                           data=digits.val_list, num_classes=student.num_classes, emulator=emulator)
    plan = load_demo_plan(plan_file, out)
    log(f"{'':10}matrix {plan_file}: {len(plan.cells)} cells ({len(plan.builds)} builds: {config.student} x "
        f"{', '.join(config.targets)} x {', '.join(config.recipes)}) on {', '.join(d.address for d in plan.devices)}")
    log(f"{'':10}{arm}")
    jobs = config.jobs or (1 if (os.cpu_count() or 1) <= 2 else None)
    matrix = run_plan(plan, jobs=jobs, progress=lambda line: log(f"{'':10}{line}"))
    cells = summarise(matrix.records)
    counts = {k: matrix.count(k) for k in ("ok", "failed", "skipped")}
    validated = [c for c in cells if c.val_top1 is not None]
    step("matrix", began, f"{len(cells)} cells: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} "
                          f"skipped; {len(validated)} validated, {sum(c.median_ms is not None for c in cells)} "
                          "benched (batch 1, median)")

    began = time.perf_counter()
    result = DemoResult(out=out, config=config, steps=steps, teacher=teacher.to_dict(), student=student.to_dict(),
                        cells=cells, plan=plan_file, arm=arm, seconds=time.perf_counter() - start,
                        matrix={"plan": str(plan_file), "records": str(out / "records.jsonl"), **counts,
                                "cells": len(cells), "executor": "local", "build_jobs": jobs or os.cpu_count(),
                                "seconds": round(matrix.seconds, 1)},
                        notes=[*matrix.notes, *([] if emulator else [arm])])
    result.report, result.html, result.plot = write_demo_report(result, matrix)
    step("report", began, f"{result.report}, {result.html.name} and the accuracy-vs-latency chart "
                          f"{result.plot.name if result.plot else '(none: no cell was both validated and benched)'}")
    result.seconds = time.perf_counter() - start
    (out / "demo.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    log(f"demo finished in {result.seconds:.0f}s: {result.report}")
    return result


def _count(list_file: Path) -> int:
    return sum(1 for line in list_file.read_text().splitlines() if line.strip())
