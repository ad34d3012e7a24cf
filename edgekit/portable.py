"""What runs wherever a bundle runs: the machine, decoding and preprocessing images, batching, timing.

Standard library and numpy only (OpenCV is imported when used), and no edgekit imports, because this file
and its sibling `openers.py` (the runtimes) are used in four places: in-process by `edgekit.runtime`, beside
the device agent on ssh/adb devices, inside the Paddle Lite toolchain's own interpreter, and copied into every
Python bundle app (Python 3.8+).
"""

import collections
import gc
import os
import platform
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

# Failure reasons, worded the same wherever an image is decoded (host or device).
MISSING_FILE = "file does not exist"
NOT_DECODABLE = "cannot be decoded (empty, truncated or not an image)"

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
