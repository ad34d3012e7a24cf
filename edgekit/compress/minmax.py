"""MinMax activation ranges computed in OpenVINO, written as onnxruntime's calibration cache.

onnxruntime's own MinMax calibrator runs its augmented graph (a ReduceMin and a
ReduceMax on every calibrated tensor) with graph optimizations off. The ranges
are a plain reduction of FP32 activations, so edgekit computes the same ones
where they are cheapest: the same tensors onnxruntime would calibrate (every
float input and output of the nodes whose op types are quantized), each reduced
to its minimum and maximum inside an OpenVINO model of the same ONNX file, run
in f32 on OpenVINO's throughput streams, and merged over the batches as
onnxruntime merges them (global min and max). ResNet50 at 224, 256 images, 2-core
Zen 3 EPYC: onnxruntime's calibrator 26 s, the same reductions in onnxruntime with
its optimizations on 27.6 s (the reductions, not the missing fusions, cost), in
OpenVINO 21.6 s with reading and compiling (plain FP32 inference: about 16 s).
The result goes to `calibration_cache_path` in onnxruntime's own format, so
`quantize_static` only rewrites the graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _reducing_model(model_file: Path, tensors: list[str]):
    """The OpenVINO model of `model_file` whose outputs are each of `tensors`' minimum and maximum (in that
    order, as scalars); None when OpenVINO cannot reduce one of those tensors."""
    import openvino as ov
    from openvino import opset13

    model = ov.Core().read_model(str(model_file))
    by_name = {}
    for op in model.get_ordered_ops():
        for output in op.outputs():
            for name in output.get_names():
                by_name.setdefault(name, output)
    # A tensor OpenVINO's conversion renamed, or one of unknown rank, is left to onnxruntime's calibrator.
    if any(name not in by_name or by_name[name].get_partial_shape().rank.is_dynamic for name in tensors):
        return None
    results = []
    for name in tensors:
        output = by_name[name]
        axes = opset13.constant(np.arange(len(output.get_partial_shape()), dtype=np.int64))
        results += [opset13.result(opset13.reduce_min(output, axes, False)),
                    opset13.result(opset13.reduce_max(output, axes, False))]
    return ov.Model(results, model.get_parameters())


def minmax_ranges(model_file: Path, images: np.ndarray, *, batch_size: int,
                  op_types: Sequence[str] | None = None) -> dict[str, tuple[float, float]] | None:
    """Each calibrated tensor's (min, max) over `images`, computed by OpenVINO in f32 on its throughput
    streams; None where OpenVINO cannot compute one of them (quantize_static then calibrates itself)."""
    import openvino as ov
    from onnxruntime.quantization.calibrate import MinMaxCalibrater
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    # The tensors quantize_static calibrates, picked by its own calibrator's rule (every float input and output
    # of the nodes of the op types, all it can quantize when none is named); building one loads the model with
    # onnxruntime's shape inference and starts no session.
    calibrater = MinMaxCalibrater(Path(model_file), op_types or sorted({*QLinearOpsRegistry, *QDQRegistry}))
    tensors = sorted(calibrater.select_tensors_to_calibrate(calibrater.model)[0])
    reducing = _reducing_model(model_file, tensors)
    if reducing is None:
        return None
    # True f32: the ranges are those of the FP32 model, not of OpenVINO's bf16 default on CPUs that have it.
    compiled = ov.Core().compile_model(reducing, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                         "PERFORMANCE_HINT": "THROUGHPUT"})
    queue = ov.AsyncInferQueue(compiled)
    per_batch: list[np.ndarray] = []
    queue.set_callback(lambda request, _: per_batch.append(
        np.array([request.get_output_tensor(i).data for i in range(2 * len(tensors))], dtype=np.float32)))
    for start in range(0, len(images), batch_size):
        queue.start_async({0: np.ascontiguousarray(images[start:start + batch_size])})
    queue.wait_all()
    stacked = np.stack(per_batch)
    # nanmin/nanmax over the batches, as onnxruntime's calibrator merges them.
    lowest, highest = np.nanmin(stacked[:, 0::2], axis=0), np.nanmax(stacked[:, 1::2], axis=0)
    return {name: (float(lo), float(hi)) for name, lo, hi in zip(tensors, lowest, highest)}


def write_calibration_cache(ranges: dict[str, tuple[float, float]], path: Path) -> None:
    """`ranges` as onnxruntime's MinMax calibration cache (what `quantize_static(calibration_cache_path=)` reads),
    with the (1,)-shaped float32 arrays its own calibrator produces."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    data = {name: (np.array([lo], dtype=np.float32), np.array([hi], dtype=np.float32))
            for name, (lo, hi) in ranges.items()}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), path)
