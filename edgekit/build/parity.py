"""Do two models compute the same function? The artifact against its Paddle source, on the same inputs."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import openers
from edgekit.build.steps import Steps
from edgekit.errors import EdgekitError
from edgekit.targets import RuntimeAdapter
from edgekit.targets.base import source_adapter
from edgekit.targets.spec import get_target


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
    """Failures of `metrics` against a target tolerance (every bound it lists), as readable strings."""
    failures = []
    if metrics["max_rel_diff"] > tolerance.max_rel_diff:
        failures.append(f"max diff {metrics['max_rel_diff']:.3g} (relative to max(1, |logit|)) "
                        f"> {tolerance.max_rel_diff:g}")
    if metrics["min_cosine"] < tolerance.min_cosine:
        failures.append(f"cosine {metrics['min_cosine']:.6f} < {tolerance.min_cosine:g}")
    if metrics["top1_agreement"] < tolerance.min_top1_agreement:
        failures.append(f"top-1 agreement {metrics['top1_agreement']:.2f} < {tolerance.min_top1_agreement:g}")
    return failures


def measure_parity(plan, adapter: RuntimeAdapter, model_file: Path, program: Path, source_model,
                   steps: Steps) -> dict[str, Any]:
    """The parity record of an FP32/FP16 build; raises EdgekitError when the artifact is outside the tolerance.

    The reference is the live Paddle model when the build has one (from weights),
    else Paddle Inference on the --inference-model program; the inputs are the
    sample photos, preprocessed as the model's card says (INT8: measure_int8_parity).
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
    names, batch = _sample_photos(plan)
    if runner is not None:  # emulation takes seconds per image: a handful is enough to prove the kernels
        count = EMULATED_IMAGES[plan.precision]
        names, batch = names[:count], batch[:count]
    reference, reference_name = _source_logits(source_model, program, batch)
    check_source_outputs(reference, plan)
    if runner is not None:
        try:
            candidate = runner(batch)
        finally:
            runner.close()
        runtime_precision, emulated = "as stored", {"emulated": True, "runner": runner.what}
    else:
        # As the bundle will open: a bf16 artifact computes in bf16 where this CPU has it natively, else in f32.
        built_with = {"artifact": {"precision_hint": adapter.precision_hint_for(plan.precision)}}
        runtime = adapter.open(model_file, precision_hint=openers.bundle_precision_hint(built_with))
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
    if plan.precision == "bf16" and runtime_precision != "bf16":
        record["note"] = (f"this build host computed the bf16 artifact in {runtime_precision} (no native bf16): "
                          "validate it on a CPU with AVX512_BF16 or AMX to check its bf16 numbers")
    if failures:
        raise EdgekitError(f"Parity check failed for {plan.model} -> {target.name} ({plan.precision}): "
                           f"{'; '.join(failures)} on {len(batch)} images ({', '.join(names)[:80]}). The exported "
                           "model does not compute what the Paddle model computes; nothing was written.")
    return record


def measure_int8_parity(plan, model_file: Path, program: Path, source_model, steps: Steps, outputs,
                        holdout_images: np.ndarray) -> dict[str, Any]:
    """The parity record of an INT8 build, from what accuracy control already computed.

    Two comparisons, each against its own tolerance: the FP32 model INT8 was made
    from, in the target's runtime, against the Paddle source on the sample photos
    (the FP32 tolerance); then the INT8 artifact against that FP32 model on every
    held-out --calib image (the INT8 tolerance), reusing the outputs accuracy
    control computed (`outputs`: edgekit.compress.quantize.HoldoutOutputs). Where
    Lite converts the evaluated program afterwards, the .nb itself is run (emulated
    ARM) on a few of those images, or the record says it was not measured.
    """
    target = plan.target
    steps.say("parity check")
    start = time.perf_counter()
    names, photos = _sample_photos(plan)
    emulated_eval = outputs.emulated
    if emulated_eval:  # the FP32 reference is itself an emulated .nb: seconds per photo
        names, photos = names[:EMULATED_IMAGES["fp32"]], photos[:EMULATED_IMAGES["fp32"]]
    source, source_name = _source_logits(source_model, program, photos)
    check_source_outputs(source, plan)
    fp32_name = f"FP32 {outputs.fp32_model.name} in {outputs.runtime}"
    # The FP32 tolerance of the runtime that ran the reference (arm-lite's is measured in Paddle Inference).
    reference_target = target if outputs.runtime == target.runtime or emulated_eval else \
        get_target(REFERENCE_TARGETS[outputs.runtime])
    reference_check = _comparison(source_name, fp32_name, names, source, outputs.run_fp32(photos),
                                  reference_target.parity["fp32"])
    tolerance = target.parity["int8"]
    record: dict[str, Any] = {"measured": True, "reference": fp32_name, "runtime": target.runtime,
                              "reference_check": reference_check}
    if outputs.int8_is_bundled:
        candidate, reference = outputs.int8, outputs.fp32
        record.update(runtime_precision="as stored", images=["held-out --calib images"])
    else:
        runner, why_not = _emulated(plan, model_file)
        if runner is None:
            record.update(measured=False, reason=f"{target.name} artifacts hold {plan.options.get('arch', 'ARM')} "
                          f"kernels and cannot run on this {platform.machine()} build host ({why_not}); "
                          "validate on the device (`edgekit validate --device ssh://...`, or `--device "
                          "emu://aarch64` for numbers).")
            _raise_if_failed(plan, reference_check, "FP32 reference vs the Paddle source")
            steps.add("parity check", time.perf_counter() - start, model_file)
            return record
        count = EMULATED_IMAGES["int8"]
        reference = outputs.fp32[:count]
        try:
            candidate = runner(np.ascontiguousarray(holdout_images[:count]))
        finally:
            runner.close()
        record.update(runtime_precision="as stored", emulated=True, runner=runner.what,
                      images=["held-out --calib images"])
    metrics = compare_logits(reference, candidate)
    failures = within(metrics, tolerance)
    record.update(compared=int(len(candidate)), **metrics, tolerance=tolerance.model_dump(), passed=not failures)
    steps.add("parity check", time.perf_counter() - start, model_file)
    _raise_if_failed(plan, reference_check, "FP32 reference vs the Paddle source")
    if failures:
        random_init = " With random-init weights the classes' logits are near ties, so top-1 agreement means " \
            "little: quantize trained weights (--weights)." if not plan.weights and not plan.source else ""
        raise EdgekitError(f"Parity check failed for {plan.model} -> {target.name} (int8): {'; '.join(failures)} "
                           f"against {fp32_name} on {len(candidate)} held-out --calib images. The quantized "
                           "model computes something else than the model it was quantized from; nothing was "
                           "written. Try another algorithm (--recipe-set ptq.algorithm=percentile), more "
                           f"calibration images, or the qat-int8 recipe.{random_init}")
    return record


# Runtime an INT8 route ran its FP32 reference in -> the target whose FP32 tolerance applies to it.
REFERENCE_TARGETS = {"paddle-inference": "paddle", "onnxruntime": "onnx", "openvino": "openvino"}


def _comparison(reference_name: str, candidate_name: str, names: list[str], reference: np.ndarray,
                candidate: np.ndarray, tolerance) -> dict[str, Any]:
    metrics = compare_logits(reference, candidate)
    failures = within(metrics, tolerance)
    return {"reference": reference_name, "candidate": candidate_name, "images": names,
            "compared": int(len(candidate)), **metrics, "tolerance": tolerance.model_dump(),
            "passed": not failures, "failures": failures}


def _raise_if_failed(plan, comparison: dict[str, Any], what: str) -> None:
    if comparison["passed"]:
        return
    raise EdgekitError(f"Parity check failed for {plan.model} -> {plan.target.name} (int8), {what}: "
                       f"{'; '.join(comparison['failures'])} on {comparison['compared']} images "
                       f"({', '.join(comparison['images'])[:80]}). The FP32 model INT8 was made from does not "
                       "compute what the Paddle model computes; nothing was written.")


def _source_logits(source_model, program: Path, batch: np.ndarray) -> tuple[np.ndarray, str]:
    """The Paddle source's outputs: the live model when the build has one, else Paddle Inference on `program`."""
    if source_model is not None:
        return _paddle_logits(source_model, batch), "paddle dygraph model (source weights)"
    return source_adapter().open(program)(batch), f"Paddle Inference on {program.name}"


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
