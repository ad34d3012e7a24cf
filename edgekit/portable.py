"""What runs wherever a bundle runs: open a runtime, decode and preprocess images, batch, time, probe.

Standard library and numpy only (OpenCV and the runtimes are imported when
used), and no edgekit imports, because this one file is used in four places:
in-process by `edgekit.runtime`, beside the device agent on ssh/adb devices, inside the Paddle
Lite toolchain's own interpreter, and copied into every Python bundle app (Python 3.8+).
"""

import collections
import gc
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

# Failure reasons, worded the same wherever an image is decoded (host or device).
MISSING_FILE = "file does not exist"
NOT_DECODABLE = "cannot be decoded (empty, truncated or not an image)"

# OpenVINO computes f32 models in bf16 on CPUs that have it; edgekit asks for true f32 unless told otherwise.
OPENVINO_PRECISION_HINT = "f32"
# Paddle Lite `arch` option -> machine names whose CPUs run those kernels.
LITE_ARCH_MACHINES = {
    "armv8": ("aarch64", "arm64", "armv8l", "armv8b"),
    "armv7": ("aarch64", "arm64", "armv7l", "armv8l", "armv7"),
    "x86": ("x86_64", "amd64", "i686", "i386"),
}
# CPU flags that decide which INT8 / BF16 kernels runtimes pick (reported with every device).
ISA_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
             "asimd", "fphp", "asimddp", "i8mm", "sve")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # native bf16 dot products


class PortableError(Exception):
    """Something this machine lacks or cannot do; the message says which."""


# ------------------------------------------------------------------ the runtimes

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
    config.set_cpu_math_library_num_threads(threads or usable_cpus())
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
        raise PortableError("unknown runtime %r (known: %s)" % (runtime, ", ".join(RUNTIMES)))
    return RUNTIMES[runtime][2](model_path, threads, precision_hint)


def bundle_precision_hint(manifest, asked=None, flags=None):
    """The precision hint a bundle opens with: `asked` ("default": None, OpenVINO's own choice), else the one it
    was built with (artifact.precision_hint), bf16 only where the CPU (`flags`, default this one's) computes it
    natively: emulated bf16 is slower than f32."""
    if asked:
        return None if asked == "default" else asked
    hint = (manifest.get("artifact") or {}).get("precision_hint") or OPENVINO_PRECISION_HINT
    native = set(BF16_FLAGS) & set(cpu_flags() if flags is None else flags)
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


# ------------------------------------------------------------------ the machine

def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model():
    try:
        with open("/proc/cpuinfo") as stream:
            text = stream.read()
    except OSError:
        return platform.processor() or platform.machine() or "unknown"
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        match = re.search(r"^%s\s*:\s*(.+)$" % key, text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine() or "unknown"


def _android_model():
    getprop = shutil.which("getprop")
    if not getprop:  # not Android
        return None
    try:
        out = subprocess.run([getprop, "ro.product.model"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip() or None


def cpu_flags():
    """The CPU's feature flags (x86 `flags`, ARM `Features`), as a set; empty where /proc/cpuinfo is absent."""
    try:
        with open("/proc/cpuinfo") as stream:
            text = stream.read()
    except OSError:
        return set()
    match = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def device_info():
    """Where this runs: OS, CPU architecture, model and ISA flags, cores, Python."""
    info = {"hostname": platform.node(), "system": platform.system(), "release": platform.release(),
            "machine": platform.machine(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "isa_flags": sorted(f for f in cpu_flags() if f in ISA_FLAGS), "python": platform.python_version()}
    if (android := _android_model()):
        info["android_model"] = android
    return info


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
    return {"device": device_info(), "runtime": runtime, "versions": versions, "missing": missing,
            "python_executable": sys.executable}


# ------------------------------------------------------------------ images

def decode(path):
    """An image file as RGB uint8 HxWx3; raises ValueError with a reason a report can show."""
    import cv2
    import numpy as np

    if path is None or not os.path.isfile(str(path)):
        raise ValueError(MISSING_FILE)
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(NOT_DECODABLE)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def preprocess(image_rgb, pp):
    """PaddleClas eval transforms from a manifest's `preprocessing` dict -> CHW float32: resize the short side
    (PaddleClas rounds the new sides), center crop, channel order, scale, normalise."""
    import cv2
    import numpy as np

    interpolation = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
                     "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA}[pp.get("interpolation", "bilinear")]
    h, w = image_rgb.shape[:2]
    ratio = pp["resize_short"] / min(h, w)
    image = cv2.resize(image_rgb, (int(round(w * ratio)), int(round(h * ratio))), interpolation=interpolation)
    h, w = image.shape[:2]
    crop = pp["crop"]
    top, left = (h - crop) // 2, (w - crop) // 2
    image = image[top:top + crop, left:left + crop]
    if pp.get("channel_order", "RGB") == "BGR":
        image = image[:, :, ::-1]
    mean = np.asarray(pp["mean"], np.float32)
    std = np.asarray(pp["std"], np.float32)
    out = (image.astype(np.float32) * np.float32(pp.get("scale", 1.0 / 255.0)) - mean) / std
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def preprocess_batch(images, pp):
    return __import__("numpy").stack([preprocess(image, pp) for image in images])


def softmax(logits):
    e = __import__("numpy").exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def probabilities(output, kind="logits"):
    """Class scores: the softmax of logits; a PaddleClas softmax head's output as it is (manifest output.kind)."""
    output = output.astype("float64")
    return output if kind == "probabilities" else softmax(output)


# ------------------------------------------------------------------ batches and timing

def evaluate(count, prepare, infer, batch_size, workers, on_batch, start=0):
    """Classify items start..count-1 in fixed batches [k*B, (k+1)*B), decoding ahead in a thread pool.

    `prepare(position)` returns one CHW float32 array or raises (ValueError: a
    per-image failure with its reason; anything else too, reported with its
    type). Batches keep their boundaries whatever fails in them, so a resumed
    run forms exactly the batches an uninterrupted one would have.
    `on_batch(positions, logits, failures, done, stats)` gets each batch in
    order; `stats` (seconds, infer_seconds, images so far) is the return value.
    """
    import numpy as np

    def load(first, stop):
        arrays, positions, failures = [], [], []
        for position in range(first, stop):
            try:
                arrays.append(prepare(position))
                positions.append(position)
            except ValueError as exc:
                failures.append((position, str(exc)))
            except Exception as exc:  # a bad image must never end the run
                failures.append((position, "%s: %s" % (type(exc).__name__, exc)))
        return (np.stack(arrays) if arrays else None), positions, failures, stop

    if start % batch_size:
        raise PortableError("start position %d is not on a batch boundary (batch %d)" % (start, batch_size))
    ranges = collections.deque((first, min(first + batch_size, count))
                               for first in range(start, count, batch_size))
    begin = time.perf_counter()
    stats = {"seconds": 0.0, "infer_seconds": 0.0, "images": 0}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = collections.deque()
        # Enough batches in flight to keep every decoding thread busy while the model runs.
        while ranges and len(pending) < 2 * max(1, workers):
            pending.append(pool.submit(load, *ranges.popleft()))
        while pending:
            batch, positions, failures, stop = pending.popleft().result()
            if ranges:
                pending.append(pool.submit(load, *ranges.popleft()))
            logits = None
            if batch is not None:
                tick = time.perf_counter()
                logits = np.asarray(infer(batch), dtype=np.float32)
                stats["infer_seconds"] += time.perf_counter() - tick
                stats["images"] += len(positions)
            stats["seconds"] = time.perf_counter() - begin
            on_batch(positions, logits, failures, stop, stats)
    return stats


def default_workers():  # decoding threads
    return min(4, os.cpu_count() or 1)


def timed_loop(call, iterations, seconds):
    """At least `iterations` calls and at least `seconds` of measured time; per-call nanoseconds.

    Only the call sits between the two clock reads; GC is off so a collection never lands in a sample.
    """
    clock = time.perf_counter_ns
    deadline = int(seconds * 1e9)
    samples = []
    append = samples.append
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        while True:
            t0 = clock()
            call()
            t1 = clock()
            append(t1 - t0)
            if len(samples) >= iterations and t1 - start >= deadline:
                return samples
    finally:
        if gc_was_enabled:
            gc.enable()
