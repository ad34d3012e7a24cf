"""`edgekit validate`: accuracy of a bundle where it runs, against its reference and the published figures.

`plan_validation` checks every input before any work starts (EdgekitError,
exit code 2); `run_validation` classifies the images on the device, runs the
reference on the host over the same images, computes the metrics from the
logits, and appends the record to the bundle's manifest.
"""

from __future__ import annotations

import datetime as dt
import platform
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import __version__, portable
from edgekit.bundle import read_manifest, verify_files
from edgekit.data.datasets import LabeledImages, open_dataset
from edgekit.devices import open_device
from edgekit.devices.base import BatchCollector, DeviceJob, DeviceRun, Progress, no_progress
from edgekit.errors import EdgekitError
from edgekit.validate import metrics
from edgekit.validate.reference import Reference, open_reference, output_kind, reference_bundle, source_reference
from edgekit.validate.report import ValidationReport, append_validation, write_report
from edgekit.userfiles import read_lines
from edgekit.scratch import sweep_tmp

IMAGENET_CLASSES = 1000
IMAGENET_VAL_IMAGES = 50_000


@dataclass
class ValidationPlan:
    bundle: Path  # what runs (for an arm-lite bundle validated through --x86-lite: the x86 build)
    manifest: dict[str, Any]
    images: tuple[Path, ...]
    labels: np.ndarray
    data: dict[str, Any]  # source, root, selection, images: what the report says about the data
    device: Any
    batch: int
    threads: int | None
    workers: int | None
    reference: Reference | None
    reference_reason: str
    max_drop: float | None
    record: bool
    report_path: Path | None
    stand_in_for: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _positive(value, option: str, kind=int):
    if value is not None and (not isinstance(value, (int, float)) or value < (0 if kind is float else 1)):
        raise EdgekitError(f"{option} {value!r} must be {'>= 0' if kind is float else 'a positive integer'}.")
    return value


def _open_bundle(path: str | Path, option: str) -> tuple[Path, dict]:
    root = Path(path)
    if not root.is_dir():
        raise EdgekitError(f"{option} {root} is not a bundle directory (build one with `edgekit build`).")
    manifest = read_manifest(root)
    verify_files(root, manifest)
    return root, manifest


def _lite_arch(manifest: dict) -> str | None:
    from edgekit.targets import adapter_of

    return adapter_of(manifest).kernel_arch(manifest)


def _resolve_stand_in(root: Path, manifest: dict, x86_lite, local: bool):
    """An arm-lite bundle cannot run on an x86 host; an x86-lite build of the same weights can, named as such."""
    arch = _lite_arch(manifest)
    machine = platform.machine()
    from edgekit.targets import adapter_of

    host_runs_it = adapter_of(manifest).why_not_on(manifest) is None
    if x86_lite is not None and (host_runs_it or not local):
        raise EdgekitError(f"--x86-lite stands in for an arm-lite bundle validated on this {machine} host; "
                           f"{root} {'runs here itself' if host_runs_it else 'is validated on the device'}, so "
                           "drop --x86-lite.")
    if not local or host_runs_it:
        return root, manifest, None
    model = manifest["model"]["name"]
    if x86_lite is None:
        raise EdgekitError(
            f"{root} is a {manifest['target']['name']} bundle: its model.nb holds Paddle Lite {arch} kernels, "
            f"which cannot run on this {machine} host (Paddle Lite's x86 library does not refuse them, it "
            f"computes garbage), so validating it here would prove nothing. Validate it where it runs: "
            f"--device ssh://user@host or --device adb://SERIAL. Or build the same weights for x86 "
            f"(`edgekit build {model} --target x86-lite --weights ...`) and pass that bundle with "
            f"--x86-lite BUNDLE: the report then names the x86-lite build as what was validated.")
    x86_root, x86_manifest = _open_bundle(x86_lite, "--x86-lite")
    if _lite_arch(x86_manifest) != "x86":
        raise EdgekitError(f"--x86-lite {x86_root} is built for target {x86_manifest['target']['name']}, "
                           "not x86-lite.")
    mismatches = []
    for label, key in (("model", ("model", "name")), ("classes", ("model", "num_classes")),
                       ("weights sha256", ("weights", "sha256")), ("precision", ("target", "precision"))):
        ours, theirs = manifest[key[0]].get(key[1]), x86_manifest[key[0]].get(key[1])
        if ours != theirs or ours is None:
            mismatches.append(f"{label} {theirs!r} vs {ours!r}")
    if x86_manifest["preprocessing"] != manifest["preprocessing"]:
        mismatches.append("preprocessing differs")
    if mismatches:
        raise EdgekitError(f"--x86-lite {x86_root} is not an x86 build of the same model as {root}: "
                           f"{'; '.join(mismatches)}. Build it from the same weights with --target x86-lite.")
    stand_in = {"bundle": str(root), "target": manifest["target"]["name"], "arch": arch,
                "why": f"{arch} kernels cannot run on this {machine} host; the x86-lite build of the same weights "
                       "was validated instead (same converter, x86 kernels; ARM kernels not exercised)"}
    return x86_root, x86_manifest, stand_in


def _select(dataset: LabeledImages, limit: int | None) -> tuple[list, str]:
    total = len(dataset)
    if limit is None or limit >= total:
        return list(dataset.samples), f"all {total} images"
    if dataset.class_names is not None:
        # Class folders are sorted by class: the first N would be one class; spread the N over all of them.
        picks = [dataset.samples[i * total // limit] for i in range(limit)]
        return picks, f"{limit} evenly spaced of {total} images"
    return list(dataset.samples[:limit]), f"first {limit} of {total} list lines"


def _label_names(bundle: Path) -> list[str] | None:
    path = bundle / "labels.txt"
    return read_lines(path, "one class name per line", "Bundle labels") if path.is_file() else None


def plan_validation(bundle: str | Path, data: str | Path, *, root: str | Path | None = None,
                    limit: int | None = None, batch: int = 32, device: str = "local",
                    reference: str | Path | None = None, use_reference: bool = True,
                    x86_lite: str | Path | None = None, max_drop: float | None = None,
                    threads: int | None = None, workers: int | None = None, device_python: str | None = None,
                    device_dir: str | None = None, ssh_options: dict[str, str] | None = None,
                    timeout: float | None = None, stall_timeout: float = 600.0, record: bool = True,
                    report: str | Path | None = None) -> ValidationPlan:
    """Resolve and check every input; raises EdgekitError before any work starts."""
    _positive(limit, "--limit")
    _positive(batch, "--batch")
    _positive(threads, "--threads")
    _positive(workers, "--workers")
    _positive(max_drop, "--max-drop", float)
    if max_drop is not None and max_drop >= 1:
        raise EdgekitError(f"--max-drop {max_drop:g} is a fraction of top-1 (0.01 = one point), so it must be "
                           "below 1.")
    if reference is not None and not use_reference:
        raise EdgekitError("Give either --reference BUNDLE or --no-reference, not both.")
    dev = open_device(device, python=device_python, work_dir=device_dir, ssh_options=ssh_options,
                      timeout=timeout, stall_timeout=stall_timeout)
    local = device in (None, "", "local")
    root_dir, manifest = _open_bundle(bundle, "BUNDLE")
    run_root, run_manifest, stand_in = _resolve_stand_in(root_dir, manifest, x86_lite, local)

    data_path = Path(data)
    if root is not None and data_path.is_dir():
        raise EdgekitError(f"--root applies to list files; --data {data_path} is a folder of class folders.")
    if root is not None and not Path(root).is_dir():
        raise EdgekitError(f"--root {root} is not a directory (the folder list-file paths are relative to).")
    dataset = open_dataset(data_path, root, option="--data")
    num_classes = run_manifest["model"]["num_classes"]
    notes = []
    if dataset.class_names is not None:
        names = _label_names(run_root)
        if names and set(dataset.class_names) <= set(names) and list(dataset.class_names) != names[:len(
                dataset.class_names)]:
            # Folder names that are the bundle's label names: map by name, not by sorted position.
            index = {name: i for i, name in enumerate(names)}
            dataset = LabeledImages(tuple(type(s)(s.path, index[dataset.class_names[s.label]])
                                          for s in dataset.samples), dataset.source, dataset.class_names)
            notes.append("class folders mapped to the bundle's labels.txt by name")
    dataset.check_labels(num_classes)
    samples, selection = _select(dataset, limit)

    ref, ref_reason = None, ""
    if reference is not None:
        ref = reference_bundle(reference, run_manifest)
    elif use_reference:
        ref, ref_reason = source_reference(run_manifest, images=len(samples))
    else:
        ref_reason = "skipped with --no-reference"
    if max_drop is not None and ref is None:
        raise EdgekitError(f"--max-drop needs a reference to measure the drop from, and there is none: "
                           f"{ref_reason}. Pass --reference BUNDLE (e.g. the FP32 build).")
    report_path = Path(report) if report is not None else None
    if report_path is not None and not report_path.parent.is_dir():
        raise EdgekitError(f"--report {report_path}: folder {report_path.parent} does not exist.")
    data_info = {"source": str(dataset.source), "root": str(root) if root else None, "selection": selection,
                 "images": len(samples)}
    return ValidationPlan(bundle=run_root, manifest=run_manifest, images=tuple(s.path for s in samples),
                          labels=np.array([s.label for s in samples], dtype=np.int64), data=data_info, device=dev,
                          batch=batch, threads=threads, workers=workers, reference=ref, reference_reason=ref_reason,
                          max_drop=max_drop, record=record, report_path=report_path, stand_in_for=stand_in,
                          notes=notes)


def _run_reference(plan: ValidationPlan, run: DeviceRun, progress: Progress) -> dict[str, Any]:
    """Reference logits on the images the device classified; metrics on the images both classified."""
    from edgekit.devices.local import run_pipeline

    infer, ref = open_reference(plan.reference, plan.manifest["model"]["name"], plan.threads,
                                note=lambda message: progress("reference", 0, len(run.positions), message))
    images = [plan.images[p] for p in run.positions]
    collector = BatchCollector()
    _, stopped = run_pipeline(images, ref.preprocessing, infer, plan.batch, plan.workers, collector, progress,
                              phase="reference")
    subset, ref_logits = collector.arrays(ref.num_classes)
    candidate = run.logits[subset]
    kind = output_kind(plan.manifest)
    if kind != ref.output_kind:  # logits against PaddleClas's softmax head: compare probabilities
        candidate = portable.probabilities(candidate, kind)
        ref_logits = portable.probabilities(ref_logits, ref.output_kind)
    labels = plan.labels[run.positions[subset]]
    ours, theirs = metrics.accuracy(candidate, labels), metrics.accuracy(ref_logits, labels)
    result = {"kind": ref.kind, "name": ref.name, "runtime": ref.runtime, "images": len(subset),
              "top1": theirs["top1"], "top5": theirs["top5"], "candidate_top1": ours["top1"],
              "candidate_top5": ours["top5"], **metrics.agreement(candidate, ref_logits),
              "top1_drop": None if ours["top1"] is None else theirs["top1"] - ours["top1"]}
    if stopped:
        result["partial_reason"] = stopped
    if collector.failures:
        result["failed_here"] = len(collector.failures)  # decoded on the device, not on the host
    return result


def _published(manifest: dict, evaluated: int) -> dict[str, Any] | None:
    published = manifest["model"].get("published") or {}
    if (manifest["model"]["num_classes"] != IMAGENET_CLASSES or manifest["weights"].get("random_init")
            or published.get("top1") is None):
        return None
    note = "PaddleClas model zoo, ImageNet-1k val (50,000 images)"
    if evaluated != IMAGENET_VAL_IMAGES:
        note += f"; measured here on {evaluated} images, so expect sampling differences"
    return {"top1": published["top1"], "top5": published.get("top5"), "note": note}


def run_validation(plan: ValidationPlan, progress: Progress | None = None) -> ValidationReport:
    sweep_tmp()  # what killed runs left in TMPDIR (only theirs: the owner is checked)
    progress = progress or no_progress
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    job = DeviceJob(plan.bundle, plan.manifest, plan.images, plan.batch, plan.threads, plan.workers)
    run = plan.device.run(job, progress)
    labels = plan.labels[run.positions]
    measured = metrics.accuracy(run.logits, labels)
    reference: dict[str, Any]
    if plan.reference is not None and len(run.positions):
        reference = _run_reference(plan, run, progress)
    else:
        reference = {"kind": None, "reason": plan.reference_reason or "no image was classified"}
    passed = None
    if plan.max_drop is not None and reference.get("top1_drop") is not None:
        passed = reference["top1_drop"] <= plan.max_drop + 1e-12  # drops are differences of fractions
    target = plan.manifest["target"]
    record = {
        "id": uuid.uuid4().hex[:12],
        "created": created,
        "edgekit": __version__,
        "bundle": {"path": str(plan.bundle), "model": plan.manifest["model"]["name"], "target": target["name"],
                   "precision": target["precision"], "weights_sha256": plan.manifest["weights"].get("sha256")},
        "stand_in_for": plan.stand_in_for,
        "data": {**plan.data, "evaluated": int(len(run.positions)), "failed": len(run.failures),
                 "processed": run.done},
        "failures": [{"path": str(plan.images[p]), "reason": reason} for p, reason in run.failures],
        "device": run.device,
        "runtime": run.runtime,
        "batch": plan.batch,
        "threads": plan.threads,
        "metrics": {"top1": measured["top1"], "top5": measured["top5"], "top5_k": measured["top5_k"],
                    "seconds": round(run.seconds, 4),
                    "images_per_s": round(len(run.positions) / run.seconds, 2) if run.seconds else None,
                    "inference_images_per_s": (round(len(run.positions) / run.infer_seconds, 2)
                                               if run.infer_seconds else None),
                    "logits_sha256": metrics.logits_sha256(run.logits)},
        "reference": reference,
        "published": _published(plan.manifest, len(run.positions)),
        "max_drop": plan.max_drop,
        "passed": passed,
        "complete": not run.partial,
        "partial_reason": run.partial_reason,
        "notes": plan.notes + run.notes + _cpu_class_notes(plan.manifest, run.device)
        + _bf16_notes(plan.manifest, run.runtime),
    }
    report = ValidationReport(record, plan.bundle)
    if plan.record:
        append_validation(plan.bundle, report.manifest_record())
    if plan.report_path is not None:
        write_report(plan.report_path, report)
    return report


def _cpu_class_notes(manifest: dict, device: dict) -> list[str]:
    """INT8 made for one CPU class and validated on another says so: its kernels, and accuracy, can differ."""
    from edgekit.compress.isa import cpu_class

    settings = ((manifest.get("compression") or {}).get("quantization") or {}).get("settings") or {}
    built = (settings.get("cpu_class") or {}).get("name")
    if not built or "isa_flags" not in (device or {}):
        return []
    here = cpu_class(device.get("machine", ""), set(device["isa_flags"]), device.get("cpu")).name
    if here == built:
        return []
    return [f"INT8 made for CPU class {built} (weights {settings.get('weights')}; {settings.get('chosen_by')}), "
            f"validated on class {here}: INT8 kernels differ between the two, so accuracy here can differ from "
            "the build's. For onnx bundles, build with -o int8_weights=... for this class if it matters."]


def _bf16_notes(manifest: dict, runtime: dict) -> list[str]:
    """A bf16 bundle that ran in f32 (no native bf16 on that CPU) says so: these are not its bf16 numbers."""
    if manifest["target"]["precision"] != "bf16" or (runtime or {}).get("precision") in (None, "bf16"):
        return []
    return [f"a bf16 bundle, computed in {runtime['precision']} here: this CPU has no native bf16 (avx512_bf16 / "
            "amx_bf16), so these are its f32 numbers; validate on such a CPU for its bf16 ones."]
