"""The demo's bundles as a matrix: the distilled student x targets x recipes on this host (and on the emulated
ARM device when an ARM Paddle Lite runtime is registered), written as `<out>/plan.yaml` and run by edgekit.matrix.

The plan is an ordinary matrix file (paths relative to it), so `edgekit matrix <out>/plan.yaml` re-runs or
extends what the demo did. The matrix puts each target on the devices that run it: onnx / openvino on this
host, the ARM `.nb` on the emulator when there is one (on this host otherwise, built, with validate and bench
skipped and the reason said).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PLAN_NAME = "edgekit demo"
EMULATOR_DEVICE = "emu-{name}"


def arm_emulator() -> tuple[str | None, str]:
    """(emu://NAME to validate arm-lite bundles on, or None; a sentence saying which, or why there is none)."""
    from edgekit.native.runner import EMULATORS
    from edgekit.toolchains import lite_runtime

    runtimes = lite_runtime.registered()
    missing = []
    for name, (arch, qemu, sysroot) in EMULATORS.items():
        if runtimes.get(arch) is None:
            missing.append(arch)
            continue
        if shutil.which(qemu) is None or not Path(sysroot).is_dir():
            return None, (f"An {arch} Paddle Lite runtime is registered, but emu://{name} needs {qemu} and the "
                          f"{sysroot} sysroot (apt-get install qemu-user and the cross compiler; README, ARM "
                          "runtimes)")
        return f"emu://{name}", (f"The arm-lite bundles are validated under emu://{name} (qemu-user running the "
                                 f"registered {arch} Lite runtime; numbers, not speed: emulation is not benched).")
    return None, (f"No ARM Paddle Lite runtime is registered ({' or '.join(missing)}), so the arm-lite bundles are "
                  "built but not validated or benched here: `edgekit toolchain build-lite-runtime` (or "
                  "register-lite-runtime DIR), then `edgekit demo --force` validates them under emu:// (README, "
                  "ARM runtimes).")


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base)


def write_plan(out: Path, config, *, weights: Path, labels: Path, calib: Path, data: Path, num_classes: int,
               emulator: str | None) -> Path:
    """<out>/plan.yaml for the student's bundles; returns its path."""
    import yaml

    devices: list[Any] = ["local"]
    if emulator:
        devices.append({"name": EMULATOR_DEVICE.format(name=emulator.split("://", 1)[1]), "address": emulator})
    plan = {
        "name": PLAN_NAME,
        "out": ".",  # records, bundles and report stay in the demo's directory when `edgekit matrix` re-runs it
        "models": [{"name": config.student, "weights": _rel(weights, out), "num_classes": num_classes,
                    "labels": _rel(labels, out), "input_size": config.input_size}],
        "targets": list(config.targets),
        "recipes": list(config.recipes),
        "calib": _rel(calib, out),
        "data": _rel(data, out),
        "devices": devices,
        "bench": {"batch": "1", "iterations": config.bench_iterations, "warmup": 5, "rounds": 3},
        "cache": config.cache,
    }
    path = out / "plan.yaml"
    header = ("# Written by `edgekit demo`: the distilled student's bundles as a matrix. Re-run (finished cells "
              "are kept)\n# or extend it with `edgekit matrix " + str(path) + "` (report.md then becomes a plain "
              "matrix report).\n")
    path.write_text(header + yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return path


def load_demo_plan(path: Path, out: Path):
    """The checked plan (the matrix puts each target on the devices that run it, as `edgekit matrix` does)."""
    from edgekit.matrix.plan import load_plan

    return load_plan(path, out=out)


# --------------------------------------------------------------------------- the records, summarised


@dataclass
class CellSummary:
    """One matrix cell of the demo, flat: what the tables and `--json` show."""

    id: str
    target: str
    recipe: str
    device: str
    status: str  # ok | failed | skipped
    precision: str | None = None
    bundle: str | None = None
    size_bytes: int | None = None
    build: str | None = None  # "built in 5 s", "reused from the cache"
    val_top1: float | None = None
    val_top5: float | None = None
    # Top-1 agreement with the FP32 Paddle student on the same images.
    agreement_with_fp32: float | None = None
    median_ms: float | None = None
    throughput_ips: float | None = None
    speedup_vs_fp32: float | None = None
    runtime_precision: str | None = None
    note: str = ""

    @property
    def runs_here(self) -> bool:
        return self.median_ms is not None or self.val_top1 is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def summarise(records: list[dict[str, Any]]) -> list[CellSummary]:
    out = []
    for r in records:
        s = CellSummary(id=r["id"], target=r["target"], recipe=r["recipe"], device=r["device"], status=r["status"])
        if r["status"] == "skipped":
            s.note = r.get("reason", "")
        build = r.get("build") or {}
        if build.get("status") == "ok":
            s.precision, s.bundle, s.size_bytes = build["precision"], build["bundle"], build["size_bytes"]
            cache = build.get("cache") or {}
            s.build = "reused from the cache" if cache.get("hit") else f"built in {build['seconds']:.0f} s"
        if r["status"] == "failed":
            s.note = f"failed in {r.get('stage')}: {r.get('error')}"
        validation = r.get("validation") or {}
        if "top1" in validation:
            s.val_top1, s.val_top5 = validation["top1"], validation["top5"]
            s.agreement_with_fp32 = (validation.get("reference") or {}).get("agreement")
        bench = ((r.get("bench") or {}).get("records") or [{}])[0]
        s.median_ms, s.throughput_ips = bench.get("median_ms"), bench.get("throughput_ips")
        s.runtime_precision = bench.get("runtime_precision")
        skipped = {stage: why for stage, key in (("validate", "validation"), ("bench", "bench"))
                   if (why := (r.get(key) or {}).get("skipped"))}
        if skipped and r["status"] == "ok":
            whys = set(skipped.values())
            s.note = (f"no {' or '.join(skipped)}: {whys.pop()}" if len(whys) == 1 else
                      "; ".join(f"no {stage}: {why}" for stage, why in skipped.items()))
        out.append(s)
    fp32 = {(s.target, s.device): s.median_ms for s in out if s.precision == "fp32"}
    for s in out:
        base = fp32.get((s.target, s.device))
        if s.precision not in (None, "fp32") and base and s.median_ms:
            s.speedup_vs_fp32 = round(base / s.median_ms, 2)
    return out


def run_plan(plan, *, jobs: int | None, progress: Callable[[str], None]):
    """Run the plan with the local executor (no report: the demo writes it with its own sections)."""
    from edgekit.matrix.run import run_matrix

    return run_matrix(plan, jobs=jobs, report=False, progress=progress)
