"""INT8 with one meaning on every target, and accuracy control.

The recipe's calibration images, range estimator (`algorithm`) and `max_drop`
mean the same whatever the target; underneath, each runtime gets the route
that measured best for it (benchmarks/int8.py; figures and the decision in
benchmarks/results/int8.md), chosen by the runtime's adapter
(`RuntimeAdapter.int8_route` in edgekit.targets):

- `onnx` and `openvino`: onnxruntime's `quantize_static` on the FP32 ONNX
  model (QDQ, weights per channel, activations per tensor). OpenVINO reads
  the QDQ ONNX and runs it in INT8 (`edgekit.compress.routes.OnnxQDQRoute`).
- `paddle` and `arm-lite`: Paddle's own `PostTrainingQuantization` on the
  legacy Paddle program, in a child process (`edgekit.compress.routes.PaddlePTQRoute`);
  Paddle Lite's optimizer turns that program into an INT8 `.nb`.

Accuracy control (`accuracy_controlled_quantization`) is route-agnostic: it
measures FP32 and INT8 top-1 on held-out images with the target's runtime;
while the drop exceeds `max_drop` it measures, layer by layer, how much of
the INT8 error disappears when that one layer stays in float, and returns
the most sensitive layers to float until the budget holds, or fails.

The FP32 model runs once, on the held-out images: its outputs give FP32 top-1,
the reference of the sensitivity loop and (`HoldoutOutputs`) the INT8 parity
record, so no image goes through the FP32 model twice.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from edgekit.errors import EdgekitError

Progress = Callable[[str], None]

# Sensitivity is measured on at most this many held-out images (logit error needs no labels, and their
# FP32 outputs are already computed). Each layer costs a re-quantization and a run on them: at 128 images a
# ResNet50 at 224 took about 10 s per layer, over 10 minutes for its ~70 layers. The ranking only orders the
# greedy search, which re-checks top-1 on every held-out image after each layer it returns to float, so a
# layer ranked wrongly on fewer images costs a step, never accuracy.
SENSITIVITY_IMAGES = 32


class Int8Route(Protocol):
    """One way of making an INT8 artifact for a runtime, with layers that can stay in float."""

    name: str

    def layers(self) -> list[str]:
        """Quantizable layers, in graph order, by the names `quantize(float_layers=...)` takes."""

    def quantize(self, float_layers: Sequence[str], dst: Path) -> Path:
        """Write the INT8 artifact at `dst` (all layers INT8 except `float_layers`); returns the model file."""

    def run(self, model_file: Path, images: np.ndarray) -> np.ndarray:
        """Logits of `model_file` on `images`, computed the way the target runtime computes them."""


@dataclass
class LayerSensitivity:
    layer: str
    # Fraction of the fully-INT8 model's logit error (MSE vs FP32) that goes away when this layer stays float.
    error_recovered: float


@dataclass
class QuantizationReport:
    route: str
    algorithm: str
    model_file: Path
    fp32_top1: float
    int8_top1: float
    holdout_images: int
    max_drop: float | None
    float_layers: list[str] = field(default_factory=list)
    quantized_layers: int = 0
    # The route's choices (weight format, the CPU class they were made for), where it records any.
    settings: dict = field(default_factory=dict)
    sensitivity: list[LayerSensitivity] = field(default_factory=list)
    attempts: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    # The FP32 and chosen INT8 models' outputs on the held-out images (not in the manifest; the parity
    # record is computed from them).
    outputs: "HoldoutOutputs | None" = field(default=None, repr=False, compare=False)

    @property
    def drop(self) -> float:
        return self.fp32_top1 - self.int8_top1

    def to_manifest(self) -> dict:
        record = asdict(replace(self, outputs=None))  # the arrays stay out of the record
        del record["outputs"]
        record["model_file"] = self.model_file.name
        record["drop"] = round(self.drop, 6)
        record["sensitivity"] = [asdict(s) for s in self.sensitivity[:20]]
        record["seconds"] = round(self.seconds, 2)
        return record


@dataclass(frozen=True)
class HoldoutOutputs:
    """What the FP32 model and the chosen INT8 model computed on the same held-out images, in the route's
    runtime; `run_fp32` runs that FP32 model on other images (the parity record checks it against the source)."""

    fp32_model: Path
    runtime: str
    fp32: np.ndarray
    int8: np.ndarray
    run_fp32: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    # Is the INT8 model that made `int8` the artifact the bundle ships (False: Lite converts it afterwards)?
    int8_is_bundled: bool = True
    # Did the runtime run them under emulation (an ARM .nb under qemu-user: seconds per image)?
    emulated: bool = False


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean()) if len(labels) else float("nan")


def _logit_error(candidate: np.ndarray, reference: np.ndarray) -> float:
    return float(np.mean((candidate.astype(np.float64) - reference) ** 2))


def accuracy_controlled_quantization(route: Int8Route, fp32_model: Path,
                                     holdout_images: np.ndarray, holdout_labels: np.ndarray, *,
                                     max_drop: float | None, max_float_layers: int | None, work: Path,
                                     algorithm: str, progress: Progress | None = None) -> QuantizationReport:
    """Quantize with `route`; while top-1 drops more than `max_drop` on the held-out images,
    return the most sensitive layers (measured) to float. Raises EdgekitError if the budget cannot be met."""
    start = time.perf_counter()
    say = progress or (lambda message: None)
    work.mkdir(parents=True, exist_ok=True)
    say(f"int8 ({route.name}): FP32 outputs on {len(holdout_labels)} held-out images")
    reference = route.run(fp32_model, holdout_images)
    fp32_top1 = top1(reference, holdout_labels)
    say(f"int8 ({route.name}): quantizing")
    attempt = 0

    def quantize(float_layers: list[str]) -> tuple[Path, np.ndarray]:
        nonlocal attempt
        attempt += 1
        model_file = route.quantize(float_layers, work / f"attempt-{attempt}")
        return model_file, route.run(model_file, holdout_images)

    def finished(model_file: Path, logits: np.ndarray) -> QuantizationReport:
        report.model_file, report.int8_top1 = model_file, top1(logits, holdout_labels)
        runtime = getattr(route.runtime, "runtime", type(route.runtime).__name__)
        report.outputs = HoldoutOutputs(fp32_model, runtime, reference, logits,
                                        run_fp32=lambda images: route.run(fp32_model, images),
                                        emulated=bool(getattr(route.runtime, "emulated", False)))
        report.seconds = time.perf_counter() - start
        return report

    layers = route.layers()
    model_file, logits = quantize([])
    report = QuantizationReport(route=route.name, algorithm=algorithm, model_file=model_file, fp32_top1=fp32_top1,
                                int8_top1=top1(logits, holdout_labels), holdout_images=len(holdout_labels),
                                max_drop=max_drop, quantized_layers=len(layers),
                                settings=dict(getattr(route, "settings", {})))
    report.attempts.append({"float_layers": 0, "int8_top1": report.int8_top1})
    if max_drop is None or report.drop <= max_drop:
        return finished(model_file, logits)

    limit = len(layers) if max_float_layers is None else min(max_float_layers, len(layers))
    if limit == 0:
        _budget_not_met(report, route, [], layers)
    # Sensitivity, measured: the INT8 error each layer accounts for, against the FP32 outputs already computed.
    say(f"int8: top-1 drop {report.drop:.4f} > max_drop {max_drop:g}; measuring sensitivity of {len(layers)} layers")
    probe = holdout_images[:SENSITIVITY_IMAGES]
    probe_reference = reference[:SENSITIVITY_IMAGES].astype(np.float64)
    base_error = _logit_error(logits[:SENSITIVITY_IMAGES], probe_reference)
    sensitivity = []
    loop_start = time.perf_counter()
    for index, layer in enumerate(layers):
        left = ""
        if index:
            remaining = (time.perf_counter() - loop_start) / index * (len(layers) - index)
            left = f", about {remaining / 60:.0f} min left" if remaining >= 90 else f", about {remaining:.0f} s left"
        say(f"int8: sensitivity of layer {index + 1}/{len(layers)}{left}")
        single = route.quantize([layer], work / f"sensitivity-{index}")
        error = _logit_error(route.run(single, probe), probe_reference)
        sensitivity.append(LayerSensitivity(layer, (base_error - error) / base_error if base_error > 0 else 0.0))
    sensitivity.sort(key=lambda s: -s.error_recovered)
    report.sensitivity = sensitivity

    float_layers: list[str] = []
    for candidate in sensitivity[:limit]:
        float_layers.append(candidate.layer)
        say(f"int8: {len(float_layers)} layer(s) in float")
        model_file, logits = quantize(float_layers)
        int8_top1 = top1(logits, holdout_labels)
        report.attempts.append({"float_layers": len(float_layers), "int8_top1": int8_top1})
        if fp32_top1 - int8_top1 <= max_drop:
            report.float_layers = list(float_layers)
            report.quantized_layers = len(layers) - len(float_layers)
            return finished(model_file, logits)
    _budget_not_met(report, route, float_layers, layers)


def _budget_not_met(report: QuantizationReport, route: Int8Route, float_layers: list[str], layers: list[str]):
    raise EdgekitError(
        f"INT8 accuracy budget not met: FP32 top-1 {report.fp32_top1:.4f}, best INT8 top-1 "
        f"{max(a['int8_top1'] for a in report.attempts):.4f} on {report.holdout_images} held-out images, "
        f"max_drop {report.max_drop:g}, after returning {len(float_layers)} of {len(layers)} layers to float "
        f"({route.name}). Nothing was written. Raise max_drop (--max-drop), allow more float layers "
        "(max_float_layers), give more or more representative --calib images, try another algorithm, or use "
        "the qat-int8 recipe.")
