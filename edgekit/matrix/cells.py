"""What one build and one device stage do, the same under every executor (in-process, pool worker, Ray task).

Both return plain dicts (they cross process and node boundaries) and never raise for a cell's own
problems: a failed build or validation is a result with `status: failed` and the message, so one bad
cell never stops the others (and a Ray task is retried only when its process dies, not when its input is bad).
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.matrix.plan import BuildSpec, CellSpec
from edgekit.matrix.records import now


def _failure(exc: BaseException, stage: str) -> dict[str, Any]:
    if isinstance(exc, EdgekitError):
        return {"status": "failed", "stage": stage, "error": str(exc)}
    # Not an input problem: keep where it happened, for a bug report.
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])
    return {"status": "failed", "stage": stage, "error": f"{type(exc).__name__}: {exc}", "traceback": tail}


def _where() -> dict[str, Any]:
    return {"host": platform.node(), "pid": os.getpid()}


def build_stage(build: BuildSpec, out: str | None = None) -> dict[str, Any]:
    """Plan and run (or reuse from the cache) one build; `out` overrides where the bundle goes."""
    from edgekit.build import plan_build
    from edgekit.build.cache import cached_build

    start = time.perf_counter()
    try:
        kwargs = dict(build.kwargs, **({"out": out} if out else {}))
        result = cached_build(plan_build(build.model, build.target, **kwargs), use_cache=build.use_cache)
        return _built(result, start)
    except Exception as exc:
        return {**_failure(exc, "build"), "seconds": round(time.perf_counter() - start, 2), **_where()}


def _built(result, start: float) -> dict[str, Any]:
    manifest = result.manifest
    parity = manifest.get("parity") or {}
    quant = (manifest.get("compression") or {}).get("quantization")
    return {
        "status": "ok", "bundle": str(result.path), "seconds": round(time.perf_counter() - start, 2),
        "cache": result.cache.to_dict() if result.cache else None,
        "precision": manifest["target"]["precision"],
        "size_bytes": sum(f["size"] for f in manifest["files"].values()),
        "model_file": manifest["artifact"]["model_file"],
        "files_sha256": {k: v["sha256"] for k, v in manifest["files"].items()},
        "weights": manifest["weights"], "published": manifest["model"].get("published"),
        "num_classes": manifest["model"]["num_classes"],
        "parity": {k: parity.get(k) for k in ("measured", "passed", "max_abs_diff", "max_rel_diff", "min_cosine",
                                              "top1_agreement", "reason")},
        "quantization": None if not quant else {k: quant.get(k) for k in ("route", "fp32_top1", "int8_top1", "drop",
                                                                          "holdout_images", "float_layers")},
        **_where(),
    }


def _device_options(cell: CellSpec) -> dict[str, Any]:
    d = cell.device
    return {"device": d.address, "device_python": d.python, "device_dir": d.dir,
            "ssh_options": d.ssh_options or None}


def _validation(cell: CellSpec, bundle: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the cell's summary, the full record for the bundle's manifest)."""
    from edgekit.validate import validate

    report = validate(bundle, cell.data, limit=cell.validate.limit, batch=cell.validate.batch, record=False,
                      **_device_options(cell))
    record = report.record
    ref = record.get("reference") or {}
    metrics = record["metrics"]
    summary = {"top1": metrics["top1"], "top5": metrics["top5"], "images": record["data"]["evaluated"],
               "failed_images": record["data"]["failed"], "images_per_s": metrics["images_per_s"],
               "logits_sha256": metrics["logits_sha256"], "complete": record["complete"],
               "reference": ref.get("kind") and {"kind": ref["kind"], "name": ref.get("name"),
                                                 "top1": ref.get("top1"), "agreement": ref.get("top1_agreement"),
                                                 "cosine_min": ref.get("cosine_min"),
                                                 "top1_drop": ref.get("top1_drop")},
               "reference_reason": ref.get("reason"), "published": record.get("published"),
               "device": record.get("device"), "runtime": record.get("runtime")}
    return summary, report.manifest_record()


def _bench(cell: CellSpec, bundle: str) -> list[dict[str, Any]]:
    from edgekit.bench import run

    b = cell.bench
    report = run([bundle], batch=b.batch, iterations=b.iterations, duration=b.duration, warmup=b.warmup,
                 rounds=b.rounds, threads=b.threads, **_device_options(cell))
    keep = ("batch", "median_ms", "mean_ms", "p90_ms", "p99_ms", "cv", "unstable", "throughput_ips",
            "runtime", "runtime_version", "runtime_precision", "threads", "cpu_model", "device", "iterations")
    return [{k: r.to_dict().get(k) for k in keep} for r in report.records]


def device_stage(cell: CellSpec, bundle: str) -> dict[str, Any]:
    """Validate, then bench, one built bundle on the cell's device; each part may be skipped with a reason."""
    start = time.perf_counter()
    result: dict[str, Any] = {"status": "ok", **_where()}
    try:
        if cell.validate_skipped:
            result["validation"] = {"skipped": cell.validate_skipped}
        else:
            result["validation"], result["validation_record"] = _validation(cell, bundle)
        if cell.bench_skipped:
            result["bench"] = {"skipped": cell.bench_skipped}
        else:
            result["bench"] = {"records": _bench(cell, bundle)}
    except Exception as exc:
        stage = "bench" if "validation" in result else "validate"
        result.update(_failure(exc, stage))
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def cell_record(cell: CellSpec, build: dict[str, Any] | None, device: dict[str, Any] | None, *,
                executor: str, started: str | None = None) -> dict[str, Any]:
    """The JSON line records.jsonl keeps for a finished (or skipped, or failed) cell."""
    spec = cell.build
    record: dict[str, Any] = {
        "key": cell.key, "id": cell.id, "model": spec.model, "model_id": cell.model_id, "target": spec.target,
        "recipe": spec.recipe, "device": cell.device.name, "address": cell.device.address,
        "executor": executor, "started": started, "finished": now(),
    }
    if spec.skipped:
        return {**record, "status": "skipped", "reason": spec.skipped}
    build = build or {}
    if build.get("status") != "ok":
        return {**record, "status": "failed", "stage": "build", "error": build.get("error", "build did not run"),
                "traceback": build.get("traceback"), "build": build}
    device = device or {}
    record.update(status=device.get("status", "failed"), build={k: v for k, v in build.items()},
                  validation=device.get("validation"), bench=device.get("bench"),
                  device_host=device.get("host"), device_pid=device.get("pid"), device_seconds=device.get("seconds"))
    if device.get("status") != "ok":
        record.update(stage=device.get("stage"), error=device.get("error", "device stage did not run"),
                      traceback=device.get("traceback"))
    return record
