"""Open a model in its runtime, wherever a bundle runs: the runtime table, its openers, probing for them.

Like its sibling `portable.py` (the machine, images, batches, timing), which it imports, this file needs the
standard library, numpy and the runtime itself only, and never edgekit: it travels with the device agent and
into every Python bundle app.
"""

import os
import platform
import sys

if __package__:  # edgekit itself
    from edgekit import portable
else:  # a script beside its portable.py, on a device or in a bundle app
    import portable

# OpenVINO computes f32 models in bf16 on CPUs that have it; edgekit asks for true f32 unless told otherwise.
OPENVINO_PRECISION_HINT = "f32"


class Runtime:
    """An opened model: `runtime(batch) -> output 0` for a float32 NCHW batch."""

    def __init__(self, name, call, version, precision, threads_applied, input_name="", native=None):
        self.name, self._call, self.version, self.input_name = name, call, version, input_name
        # The runtime's own object (session, infer request, predictor): for measuring edgekit's overhead.
        self.native = native
        # What the runtime computes in ("as stored": the model file's own precision).
        self.precision = precision
        self.threads_applied = threads_applied

    def __call__(self, batch):
        return self._call(batch)


def _open_onnxruntime(model_path, threads, precision_hint):
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # unused-initializer warnings are noise for users
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return Runtime("onnxruntime", lambda batch: session.run(None, {name: batch})[0], ort.__version__,
                   "as stored", bool(threads), name, native=session)


class OpenVinoStreams:
    """Batches split into slices run at once on OpenVINO's throughput streams (PERFORMANCE_HINT=THROUGHPUT):
    many images (accuracy control, evaluation). Bundles open with one request per batch: at batch 8 on 2 cores
    two streams measured 1.10x on an AMX Xeon but 0.95-1.01x on a Zen 4 EPYC (benchmarks/runtime_options.py).
    """

    def __init__(self, model_path, config):
        import openvino as ov

        self.compiled = ov.Core().compile_model(str(model_path), "CPU", dict(config, PERFORMANCE_HINT="THROUGHPUT"))
        self.count = int(self.compiled.get_property("NUM_STREAMS"))
        self.queue = ov.AsyncInferQueue(self.compiled, self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.queue.set_callback(self._collect)

    @staticmethod
    def _collect(request, slot):
        results, index = slot
        results[index] = request.get_output_tensor(0).data.copy()

    def __call__(self, batch, slice_images=None):
        """Output 0 for `batch`, in slices of `slice_images` (default: one slice per stream)."""
        import numpy as np

        step = slice_images or -(-len(batch) // self.count)
        slices = [batch[i:i + step] for i in range(0, len(batch), step)]
        results = [None] * len(slices)
        for index, part in enumerate(slices):
            self.queue.start_async({0: np.ascontiguousarray(part)}, (results, index))
        self.queue.wait_all()
        return np.concatenate(results)


def _open_openvino(model_path, threads, precision_hint):
    import openvino as ov

    config = {}
    if precision_hint:  # None: OpenVINO's own default (bf16 on CPUs that have it)
        config["INFERENCE_PRECISION_HINT"] = precision_hint
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(model_path), "CPU", config)
    request = compiled.create_infer_request()
    output = compiled.output(0)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return Runtime("openvino", lambda batch: request.infer([batch])[output].copy(), ov.get_version(), precision,
                   bool(threads), compiled.input(0).get_any_name(), native=request)


def _open_paddle_inference(model_path, threads, precision_hint):
    import numpy as np
    import paddle
    from paddle import inference

    model_path = str(model_path)
    config = inference.Config(model_path, os.path.splitext(model_path)[0] + ".pdiparams")
    config.disable_gpu()
    if platform.machine().lower() in ("x86_64", "amd64"):
        config.enable_mkldnn()  # oneDNN kernels exist for x86 only
    # Like onnxruntime's and OpenVINO's defaults: every CPU this process may use.
    config.set_cpu_math_library_num_threads(threads or portable.usable_cpus())
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    x = predictor.get_input_handle(predictor.get_input_names()[0])
    y = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(batch):
        x.reshape(list(batch.shape))
        x.copy_from_cpu(np.ascontiguousarray(batch))
        predictor.run()
        return y.copy_to_cpu()

    return Runtime("paddle-inference", run, paddle.__version__, "f32", True, predictor.get_input_names()[0],
                   native=(predictor, x, y))


def _open_paddle_lite(model_path, threads, precision_hint):
    import numpy as np
    import paddlelite.lite as lite

    config = lite.MobileConfig()
    config.set_model_from_file(str(model_path))
    # Not every paddlelite build exposes thread control to Python (x86 2.13rc0 does not).
    threads_applied = bool(threads) and hasattr(config, "set_threads")
    if threads_applied:
        config.set_threads(threads)
    predictor = lite.create_paddle_predictor(config)

    def run(batch):
        predictor.get_input(0).from_numpy(np.ascontiguousarray(batch))
        predictor.run()
        return predictor.get_output(0).numpy()

    return Runtime("paddle-lite", run, runtime_version("paddle-lite"), "as stored", threads_applied,
                   native=predictor)


# runtime name -> (module to import, how to install it, opener)
RUNTIMES = {
    "onnxruntime": ("onnxruntime", "pip install onnxruntime", _open_onnxruntime),
    "openvino": ("openvino", "pip install openvino", _open_openvino),
    "paddle-inference": ("paddle.inference", "pip install paddlepaddle", _open_paddle_inference),
    "paddle-lite": ("paddlelite.lite", "pip install paddlelite==2.13rc0 (CPython 3.8-3.10)", _open_paddle_lite),
}


def open_runtime(runtime, model_path, threads=None, precision_hint=OPENVINO_PRECISION_HINT):
    """Open `model_path` with `runtime` (a RUNTIMES name) on this machine's CPU. `threads` None leaves the
    runtime's default; `precision_hint` is OpenVINO's ("f32", "bf16", None: OpenVINO's own choice)."""
    if runtime not in RUNTIMES:
        raise portable.PortableError("unknown runtime %r (known: %s)" % (runtime, ", ".join(RUNTIMES)))
    return RUNTIMES[runtime][2](model_path, threads, precision_hint)


def bundle_precision_hint(manifest, asked=None, flags=None):
    """The precision hint a bundle opens with: `asked` ("default": None, OpenVINO's own choice), else the one it
    was built with (artifact.precision_hint), bf16 only where the CPU (`flags`, default this one's) computes it
    natively: emulated bf16 is slower than f32."""
    if asked:
        return None if asked == "default" else asked
    hint = (manifest.get("artifact") or {}).get("precision_hint") or OPENVINO_PRECISION_HINT
    native = set(portable.BF16_FLAGS) & set(portable.cpu_flags() if flags is None else flags)
    return hint if hint != "bf16" or native else OPENVINO_PRECISION_HINT


def runtime_version(runtime):
    module = RUNTIMES.get(runtime, ("",))[0]
    try:
        if runtime == "openvino":
            return __import__("openvino").get_version()
        if runtime == "paddle-lite":
            from importlib.metadata import version

            return version("paddlelite")  # a paddlelite copied in without its dist-info has none
        return __import__(module.split(".")[0]).__version__
    except Exception:
        return ""


def missing_requirements(runtime, images=True):
    """What this Python lacks to run `runtime` (and, with `images`, to decode images), with how to install it."""
    import importlib

    needed = [("numpy", "pip install numpy")]
    if images:
        needed.append(("cv2", "pip install opencv-python-headless"))
    missing = []
    if sys.version_info < (3, 8):
        missing.append("Python 3.8 or newer (this is %s)" % platform.python_version())
    if runtime not in RUNTIMES:
        missing.append("runtime %r, which edgekit does not know (known: %s)" % (runtime, ", ".join(RUNTIMES)))
    else:
        module, install, _ = RUNTIMES[runtime]
        needed.append((module, install))
    for module, install in needed:
        try:
            importlib.import_module(module)
        except Exception as exc:  # ImportError, or a broken install raising something else
            missing.append("%s (%s): %s" % (module, install, exc))
    return missing


def probe(runtime, images=True):
    """This machine and whether it can run `runtime`, as one JSON-ready dict."""
    missing = missing_requirements(runtime, images)
    versions = {}
    if not missing:
        versions = {"numpy": __import__("numpy").__version__, runtime: runtime_version(runtime)}
        if images:
            versions["opencv"] = __import__("cv2").__version__
    return {"device": portable.device_info(), "runtime": runtime, "versions": versions, "missing": missing,
            "python_executable": sys.executable}
