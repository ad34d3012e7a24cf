"""One small class per runtime: load a model file, run a float32 NCHW batch.

Each backend imports its runtime lazily, so an app needs only the runtime its
bundle uses (plus numpy and OpenCV).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError


def _require(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise EdgekitError(f"This bundle needs the {package} runtime, which is not installed here: "
                           f"`pip install {package}`.") from None


class OnnxRuntimeBackend:
    runtime = "onnxruntime"

    def __init__(self, model_path: Path, threads: int | None = None):
        ort = _require("onnxruntime", "onnxruntime")
        ort.set_default_logger_severity(3)  # unused-initializer warnings are noise for users
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.version = ort.__version__
        self.precision = "as stored"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


class OpenVINOBackend:
    runtime = "openvino"

    def __init__(self, model_path: Path, threads: int | None = None, precision_hint: str | None = "f32"):
        ov = _require("openvino", "openvino")
        config = {}
        # OpenVINO runs f32 models in bf16 on CPUs that have it; "f32" asks for true f32.
        if precision_hint:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        self.compiled = core.compile_model(str(model_path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.version = ov.get_version()
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.request.infer([batch])[self.compiled.output(0)].copy()


class PaddleInferenceBackend:
    runtime = "paddle-inference"

    def __init__(self, model_path: Path, threads: int | None = None):
        inference = _require("paddle.inference", "paddlepaddle")
        import paddle

        config = inference.Config(str(model_path), str(model_path.with_suffix(".pdiparams")))
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads or 2)
        config.disable_glog_info()
        self.predictor = inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])
        self.version = paddle.__version__
        self.precision = "f32"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.input.reshape(list(batch.shape))
        self.input.copy_from_cpu(np.ascontiguousarray(batch))
        self.predictor.run()
        return self.output.copy_to_cpu()


class PaddleLiteBackend:
    """Paddle Lite's light API where `paddlelite` imports (a device, Python <= 3.10);
    on a build host, x86 `.nb` files run through the managed toolchain instead."""

    runtime = "paddle-lite"

    def __init__(self, model_path: Path, threads: int | None = None):
        try:
            import paddlelite.lite as lite
        except ImportError:
            from edgekit.toolchains import paddle_lite

            toolchain = paddle_lite.find(install_missing=False)
            self._run = lambda batch: paddle_lite.run_nb(model_path, batch, toolchain=toolchain)
            self.version = toolchain.lite_version
            self.precision = "as stored"
            return
        config = lite.MobileConfig()
        config.set_model_from_file(str(model_path))
        if threads:
            config.set_threads(threads)
        predictor = lite.create_paddle_predictor(config)
        self._run = lambda batch: self._run_light_api(predictor, batch)
        self.version = getattr(lite, "__version__", "")
        self.precision = "as stored"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch)

    @staticmethod
    def _run_light_api(predictor, batch: np.ndarray) -> np.ndarray:
        tensor = predictor.get_input(0)
        tensor.from_numpy(np.ascontiguousarray(batch))
        predictor.run()
        return predictor.get_output(0).numpy()


BACKENDS = {cls.runtime: cls for cls in (OnnxRuntimeBackend, OpenVINOBackend, PaddleInferenceBackend,
                                          PaddleLiteBackend)}


def open_backend(runtime: str, model_path: Path, **options):
    try:
        backend = BACKENDS[runtime]
    except KeyError:
        raise EdgekitError(f"Unknown runtime {runtime!r}; known: {', '.join(BACKENDS)}.") from None
    return backend(model_path, **options)
