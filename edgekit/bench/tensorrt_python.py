"""The TensorRT Python API path (with cuda-python), for machines without trtexec: build and time an engine
the way trtexec does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from edgekit.bench.tensorrt_timing import TimingSummary, TrtMeasurement
from edgekit.bench.tensorrt_tools import import_cudart
from edgekit.errors import EdgekitError


def _cuda_checker(cudart):
    """cuda-python returns (error, *values): a function that raises on an error and returns the values."""
    success = cudart.cudaError_t.cudaSuccess

    def check(result):
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != success:
            raise EdgekitError(f"CUDA call failed: {err}")
        return values[0] if len(values) == 1 else values

    return check


def python_api_engine(onnx: Path, input_name: str, chw: Sequence[int], batches: Sequence[int], precision: str):
    """Build an engine as NVIDIA's Python samples do: ONNX parser, one optimization profile."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit_batch = 0 if int(trt.__version__.split(".")[0]) >= 10 else \
        1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(explicit_batch)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgekitError(f"TensorRT could not parse {onnx}: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, (min(batches), *chw), (max(batches), *chw), (max(batches), *chw))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgekitError(f"TensorRT could not build a {precision} engine from {onnx}.")
    return trt.Runtime(logger).deserialize_cuda_engine(serialized)


def python_api_measure(engine, input_name: str, chw: Sequence[int], batch: int, warmup_ms: int,
                        duration_s: float, iterations: int, data_transfers: bool = True) -> TrtMeasurement:
    """trtexec's two numbers with the Python API: CUDA events around the enqueue (GPU compute time),
    a host clock around copy-in, enqueue, copy-out and synchronize (host latency)."""
    import tensorrt as trt

    cudart = import_cudart()
    check = _cuda_checker(cudart)
    context = engine.create_execution_context()
    context.set_input_shape(input_name, (batch, *chw))
    stream = check(cudart.cudaStreamCreate())
    buffers = []  # (name, host array, device pointer, is_input)
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        host = np.ascontiguousarray(np.random.default_rng(i).standard_normal(tuple(context.get_tensor_shape(name)))
                                    .astype(trt.nptype(engine.get_tensor_dtype(name))))
        device = check(cudart.cudaMalloc(host.nbytes))
        context.set_tensor_address(name, device)
        buffers.append((name, host, device, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT))
    start_event, end_event = check(cudart.cudaEventCreate()), check(cudart.cudaEventCreate())
    h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost

    def infer() -> tuple[float, float]:
        t0 = time.perf_counter()
        for _, host, device, is_input in buffers:
            if is_input and data_transfers:
                check(cudart.cudaMemcpyAsync(device, host.ctypes.data, host.nbytes, h2d, stream))
        check(cudart.cudaEventRecord(start_event, stream))
        context.execute_async_v3(stream)
        check(cudart.cudaEventRecord(end_event, stream))
        for _, host, device, is_input in buffers:
            if not is_input and data_transfers:
                check(cudart.cudaMemcpyAsync(host.ctypes.data, device, host.nbytes, d2h, stream))
        check(cudart.cudaStreamSynchronize(stream))
        host_ms = (time.perf_counter() - t0) * 1e3
        return host_ms, check(cudart.cudaEventElapsedTime(start_event, end_event))

    try:
        deadline = time.perf_counter() + warmup_ms / 1e3
        while time.perf_counter() < deadline:
            infer()
        host_ms, gpu_ms = [], []
        start = time.perf_counter()
        while len(gpu_ms) < iterations or time.perf_counter() - start < duration_s:
            h, g = infer()
            host_ms.append(h)
            gpu_ms.append(g)
        walltime = time.perf_counter() - start
    finally:
        for _, _, device, _ in buffers:
            cudart.cudaFree(device)
        cudart.cudaEventDestroy(start_event)
        cudart.cudaEventDestroy(end_event)
        cudart.cudaStreamDestroy(stream)
    return TrtMeasurement(throughput_qps=len(gpu_ms) / walltime, host_latency=TimingSummary.from_samples(host_ms),
                          gpu_compute=TimingSummary.from_samples(gpu_ms), total_host_walltime_s=walltime,
                          tensorrt_version=trt.__version__)
