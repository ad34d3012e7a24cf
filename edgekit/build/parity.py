"""Do two models compute the same function? The artifact against its Paddle source, on the same inputs."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.build.steps import Steps
from edgekit.errors import EdgekitError
from edgekit.targets import RuntimeAdapter
from edgekit.targets.base import source_adapter


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    reference = reference.astype(np.float64)
    candidate = candidate.astype(np.float64)
    diff = np.abs(reference - candidate)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosine = (reference * candidate).sum(axis=1) / np.maximum(norms, 1e-30)
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "min_cosine": float(cosine.min()),
        "top1_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean()),
        "reference_max_abs_logit": float(np.abs(reference).max()),
        # Scale-free: random-init networks can have logits in the hundreds.
        "max_rel_diff": float(diff.max() / max(1.0, np.abs(reference).max())),
    }


def within(metrics: dict[str, float], tolerance: Any) -> list[str]:
    """Failures of `metrics` against a target tolerance, as readable strings."""
    failures = []
    if metrics["max_rel_diff"] > tolerance.max_abs_diff:
        failures.append(f"max diff {metrics['max_rel_diff']:.3g} (relative to max(1, |logit|)) "
                        f"> {tolerance.max_abs_diff:g}")
    if metrics["min_cosine"] < tolerance.min_cosine:
        failures.append(f"cosine {metrics['min_cosine']:.6f} < {tolerance.min_cosine:g}")
    if metrics["top1_agreement"] < tolerance.min_top1_agreement:
        failures.append(f"top-1 agreement {metrics['top1_agreement']:.2f} < {tolerance.min_top1_agreement:g}")
    return failures


def measure_parity(plan, adapter: RuntimeAdapter, model_file: Path, program: Path, source_model, steps: Steps,
                   images: tuple[list[str], np.ndarray] | None = None) -> dict[str, Any]:
    """The parity record of the manifest; raises EdgekitError when the artifact is outside the tolerance.

    The reference is the live Paddle model when the build has one (from weights),
    else Paddle Inference on the --inference-model program. `images` default to
    the sample photos, preprocessed as the model's card says.
    """
    target = plan.target
    runner = None
    if not target.runs_on_host:
        runner, why_not = _emulated(plan, model_file)
        if runner is None:
            return {"measured": False,
                    "reason": f"{target.name} artifacts hold {plan.options.get('arch', 'ARM')} kernels and cannot "
                              f"run on this {platform.machine()} build host ({why_not}); validate on the device "
                              "(`edgekit validate --device ssh://...`, or `--device emu://aarch64` for numbers)."}
    steps.say("parity check" + (" (emulated ARM: a few photos, slow)" if runner else ""))
    start = time.perf_counter()
    names, batch = images or _sample_photos(plan)
    if runner is not None:  # emulation takes seconds per image: a handful is enough to prove the kernels
        count = EMULATED_IMAGES[plan.precision]
        names, batch = names[:count], batch[:count]
    if source_model is not None:
        reference = _paddle_logits(source_model, batch)
        reference_name = "paddle dygraph model (source weights)"
    else:
        reference = source_adapter().open(program)(batch)
        reference_name = f"Paddle Inference on {program.name}"
    check_source_outputs(reference, plan)
    if runner is not None:
        try:
            candidate = runner(batch)
        finally:
            runner.close()
        runtime_precision, emulated = "as stored", {"emulated": True, "runner": runner.what}
    else:
        runtime = adapter.open(model_file)
        candidate = runtime(batch)
        runtime_precision, emulated = runtime.precision, {}
    metrics = compare_logits(reference, candidate)
    tolerance = target.parity[plan.precision]
    failures = within(metrics, tolerance)
    steps.add("parity check", time.perf_counter() - start, model_file)
    record = {"measured": True, "reference": reference_name, "runtime": target.runtime,
              "runtime_precision": runtime_precision, **emulated, "images": names, "compared": int(len(batch)),
              **metrics,
              "tolerance": tolerance.model_dump(), "passed": not failures}
    if failures:
        raise EdgekitError(f"Parity check failed for {plan.model} -> {target.name} ({plan.precision}): "
                           f"{'; '.join(failures)} on {len(batch)} images ({', '.join(names)[:80]}). The exported "
                           "model does not compute what the Paddle model computes; nothing was written.")
    return record


def check_source_outputs(reference: np.ndarray, plan) -> None:
    """The source model's own outputs must be usable before an artifact is blamed for differing from them.

    A network fed images smaller than its downsampling allows (SqueezeNet at 16 px) outputs NaN, or the
    same numbers for every image; that is the input size's fault, not the converter's.
    """
    size = plan.preprocessing.crop
    if not np.isfinite(reference).all():
        bad = int((~np.isfinite(reference)).any(axis=1).sum())
        problem = f"outputs NaN or infinity for {bad} of {len(reference)} images"
    elif len(reference) > 1 and np.ptp(reference, axis=0).max() == 0.0:
        problem = f"outputs exactly the same numbers for all {len(reference)} different images"
    else:
        return
    raise EdgekitError(f"The Paddle source model {plan.model} itself {problem} at {size}x{size} input, so there "
                       "is nothing to check the export against: the network cannot take images this small (or its "
                       f"weights are broken). Build with a larger --input-size (the model card's is "
                       f"{plan.card.preprocessing.crop}), or check --weights / --inference-model.")


# Photos at the model's size (ResNet18 at 224: ~25 s each under qemu); INT8 compares held-out --calib images,
# which are small and need more of them for an agreement rate.
EMULATED_IMAGES = {"fp32": 2, "int8": 16}


def _emulated(plan, model_file: Path):
    """(native runner under qemu-user, None) for an ARM .nb where an ARM Lite runtime is registered,
    else (None, why not)."""
    from edgekit.native.runner import emulated_runner

    arch = plan.options.get("arch", "armv8")
    try:
        runner, _ = emulated_runner(model_file, "aarch64" if arch == "armv8" else "armv7")
    except EdgekitError as exc:
        return None, str(exc).split(":", 1)[0]
    return runner, None


def _sample_photos(plan) -> tuple[list[str], np.ndarray]:
    from edgekit.data.preprocess import preprocess_batch
    from edgekit.data.samples import sample_photos

    photos = sample_photos()
    return list(photos), preprocess_batch(list(photos.values()), plan.preprocessing)


def _paddle_logits(model, batch: np.ndarray) -> np.ndarray:
    import paddle

    with paddle.no_grad():
        return model(paddle.to_tensor(batch)).numpy()
