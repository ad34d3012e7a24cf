"""One matrix run: resume from the records, hand the remaining cells to an executor, append, report."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekit.errors import EdgekitError
from edgekit.matrix.cells import cell_record
from edgekit.matrix.plan import CellSpec, MatrixPlan
from edgekit.matrix.records import RecordLog, now

Progress = Callable[[str], None]


@dataclass
class MatrixResult:
    plan: MatrixPlan
    records: list[dict[str, Any]]  # the latest record of every cell of the plan, in plan order
    resumed: int  # cells found finished in records.jsonl and not run again
    ran: int
    seconds: float
    report_md: Path | None = None
    report_html: Path | None = None
    chart: Path | None = None
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.get("status") == status for r in self.records)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {"plan": str(self.plan.source), "out": str(self.plan.out), "seconds": round(self.seconds, 1),
                "cells": len(self.plan.cells), "resumed": self.resumed, "ran": self.ran,
                "ok": self.count("ok"), "failed": self.count("failed"), "skipped": self.count("skipped"),
                "report": str(self.report_md) if self.report_md else None,
                "html": str(self.report_html) if self.report_html else None,
                "notes": self.notes, "records": self.records}


def make_executor(ray: str | None, jobs: int | None, out: Path):
    if ray:
        from edgekit.matrix.ray_executor import RayExecutor, import_ray

        import_ray()  # a missing extra is said before anything else happens
        return RayExecutor(ray, out=out)
    from edgekit.matrix.executors import LocalExecutor

    return LocalExecutor(jobs)


def run_matrix(plan: MatrixPlan, *, ray: str | None = None, jobs: int | None = None, report: bool = True,
               progress: Progress | None = None, executor=None) -> MatrixResult:
    """Run every cell of `plan` that has no finished record yet; returns the latest record of every cell."""
    from edgekit.userfiles import prepare_dir

    say = progress or (lambda message: None)
    start = time.perf_counter()
    executor = executor or make_executor(ray, jobs, plan.out)
    prepare_dir(plan.out, option="matrix out")
    (plan.out / "plan.json").write_text(json.dumps(plan.to_dict(), indent=1) + "\n")
    log = RecordLog(plan.out)
    done = log.done(c.key for c in plan.cells)
    pending = [c for c in plan.cells if c.key not in done]
    notes = list(plan.warnings)
    if log.dropped_torn_line:
        notes.append("records.jsonl ended in a torn line (a killed run); it was dropped and that cell runs again")
    if done:
        say(f"resuming: {len(done)} of {len(plan.cells)} cells already finished in {log.path}; "
            f"running the other {len(pending)}")
    lock = threading.Lock()
    finished = [len(done)]

    def sink(cell: CellSpec, build: dict | None, device: dict | None) -> None:
        record = cell_record(cell, build, device, executor=executor.name)
        with lock:
            log.append(record)
            if device and device.get("validation_record") and build and build.get("bundle"):
                _keep_validation(Path(build["bundle"]), device["validation_record"])
            finished[0] += 1
            say(f"[cell {finished[0]}/{len(plan.cells)}] {describe_cell(record)}")

    if pending:
        executor.run(pending, sink, say)
    latest = log.latest(c.key for c in plan.cells)
    records = [latest[c.key] for c in plan.cells if c.key in latest]
    result = MatrixResult(plan=plan, records=records, resumed=len(done), ran=len(pending),
                          seconds=time.perf_counter() - start, notes=notes)
    if report:
        from edgekit.matrix.report import write_reports

        result.report_md, result.report_html, result.chart = write_reports(result)
    return result


def _keep_validation(bundle: Path, record: dict[str, Any]) -> None:
    """The validation joins the bundle's manifest, as `edgekit validate` would append it."""
    from edgekit.validate.report import append_validation

    record = {**record, "bundle": {**record.get("bundle", {}), "path": str(bundle)}, "matrix": now()}
    try:
        append_validation(bundle, record)
    except (EdgekitError, OSError):  # the JSONL record is what counts; a bundle moved away is no cell failure
        pass


def describe_cell(record: dict[str, Any]) -> str:
    status = record.get("status")
    if status == "skipped":
        return f"{record['id']}: skipped ({record.get('reason')})"
    if status == "failed":
        return f"{record['id']}: FAILED in {record.get('stage')}: {record.get('error')}"
    parts = []
    validation = record.get("validation") or {}
    if "top1" in validation:
        parts.append(f"top-1 {validation['top1']:.3f}")
        agreement = (validation.get("reference") or {}).get("agreement")
        if agreement is not None:
            parts.append(f"agreement {agreement:.3f}")
    bench = record.get("bench") or {}
    for b in bench.get("records", []):
        parts.append(f"{b['median_ms']:.2f} ms (batch {b['batch']})")
    for stage in ("validation", "bench"):
        skipped = (record.get(stage) or {}).get("skipped")
        if skipped:
            parts.append(f"no {stage}: {skipped}")
    return f"{record['id']}: " + (", ".join(parts) or "built")
