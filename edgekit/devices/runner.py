#!/usr/bin/env python3
"""edgekit's device runner: classify a labeled image set with a bundle, on the machine it runs on.

edgekit copies this one file to a device (over ssh or adb) and starts it with
the device's own Python (3.8+). It needs numpy, OpenCV and the bundle's
runtime (onnxruntime, openvino, paddlelite's light API or Paddle Inference),
nothing else; it never imports edgekit. On the host, edgekit imports the same
file, so the batch loop and its failure accounting are one implementation.

    python runner.py probe RUNTIME          what this device has, as JSON
    python runner.py have STORE [WANTED]    which of WANTED's [sha256, size] pairs STORE lacks
    python runner.py unpack STORE [TAR]     store files from a tar stream, checking each sha256
    python runner.py run JOB [--start N]    classify; one '@edgekit {json}' line per batch on stdout

Content-addressed: every file (model file or image) is stored as STORE/<sha256>,
written under a temporary name and renamed only once its checksum matches, so
a file that is present is correct and is never sent twice.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

PROTOCOL = 1
EVENT_PREFIX = "@edgekit "
SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")

# Failure reasons, worded the same wherever an image is decoded (host or device).
MISSING_FILE = "file does not exist"
NOT_DECODABLE = "cannot be decoded (empty, truncated or not an image)"

# runtime name -> (module to import, what to install)
RUNTIMES = {
    "onnxruntime": ("onnxruntime", "pip install onnxruntime"),
    "openvino": ("openvino", "pip install openvino"),
    "paddle-lite": ("paddlelite.lite", "pip install paddlelite==2.13rc0 (CPython 3.8-3.10)"),
    "paddle-inference": ("paddle.inference", "pip install paddlepaddle"),
}
# Paddle Lite `arch` option -> machine names whose CPUs run those kernels.
LITE_ARCH_MACHINES = {
    "armv8": ("aarch64", "arm64", "armv8l", "armv8b"),
    "armv7": ("aarch64", "arm64", "armv7l", "armv8l", "armv7"),
    "x86": ("x86_64", "amd64", "i686", "i386"),
}


class RunnerError(Exception):
    """Something the device lacks or a job it cannot run; the message says which."""


# ------------------------------------------------------------------ device

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as stream:
            text = stream.read()
    except OSError:
        return platform.processor() or "unknown"
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        match = re.search(r"^%s\s*:\s*(.+)$" % key, text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or "unknown"


def _android_model() -> str | None:
    getprop = shutil.which("getprop")
    if not getprop:
        return None
    import subprocess

    try:
        out = subprocess.run([getprop, "ro.product.model"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip() or None


def device_info() -> dict:
    """Where this runs: OS, CPU architecture and model, cores, Python."""
    info = {"hostname": platform.node(), "system": platform.system(), "release": platform.release(),
            "machine": platform.machine(), "cpu": _cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version()}
    android = _android_model()
    if android:
        info["android_model"] = android
    return info


def missing_requirements(runtime: str) -> list:
    """What this Python lacks to run `runtime`, each with how to install it."""
    import importlib

    missing = []
    if sys.version_info < (3, 8):
        missing.append("Python 3.8 or newer (this is %s)" % platform.python_version())
    for module, install in (("numpy", "pip install numpy"), ("cv2", "pip install opencv-python-headless")):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing.append("%s (%s): %s" % (module, install, exc))
    if runtime not in RUNTIMES:
        missing.append("runtime %r, which this runner does not know (known: %s)" % (runtime, ", ".join(RUNTIMES)))
    else:
        module, install = RUNTIMES[runtime]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing.append("%s for the %s runtime (%s): %s" % (module, runtime, install, exc))
    return missing


def probe(runtime: str) -> dict:
    missing = missing_requirements(runtime)
    versions = {}
    if not missing:
        versions = {"numpy": __import__("numpy").__version__, "opencv": __import__("cv2").__version__,
                    runtime: runtime_version(runtime)}
    return {"protocol": PROTOCOL, "device": device_info(), "runtime": runtime, "versions": versions,
            "missing": missing, "python_executable": sys.executable}


# ------------------------------------------------------------------ images

def decode(path):
    """An image file as RGB uint8 HxWx3; raises ValueError with a reason a report can show."""
    import cv2
    import numpy as np

    if path is None or not os.path.isfile(path):
        raise ValueError(MISSING_FILE)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(NOT_DECODABLE)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def preprocess(image_rgb, pp: dict):
    """PaddleClas eval transforms; must stay identical to edgekit.data.preprocess.preprocess."""
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


# ------------------------------------------------------------------ the batch loop

def evaluate(count: int, prepare, infer, batch_size: int, workers: int, on_batch, start: int = 0) -> dict:
    """Classify items start..count-1 in fixed batches [k*B, (k+1)*B), decoding ahead in a thread pool.

    `prepare(position)` returns one CHW float32 array or raises (ValueError: a
    per-image failure with its reason; anything else too, reported with its
    type). Batches keep their boundaries whatever fails in them, so a resumed
    run forms exactly the batches an uninterrupted one would have.
    `on_batch(positions, logits, failures, done, stats)` gets each batch in
    order; `stats` (seconds, infer_seconds, images so far) is the return value.
    """
    import numpy as np

    def load(first: int, stop: int):
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
        raise RunnerError("start position %d is not on a batch boundary (batch %d)" % (start, batch_size))
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


# ------------------------------------------------------------------ runtimes

def runtime_version(runtime: str) -> str:
    if runtime == "onnxruntime":
        return __import__("onnxruntime").__version__
    if runtime == "openvino":
        import openvino

        return openvino.get_version()
    if runtime == "paddle-lite":
        try:
            from importlib.metadata import version

            return version("paddlelite")
        except Exception:
            return ""
    if runtime == "paddle-inference":
        return __import__("paddle").__version__
    return ""


def open_runtime(runtime: str, model_path: str, threads=None):
    """(infer, precision) for a model file; configured as edgekit.runtime.backends configures it."""
    import numpy as np

    if runtime == "onnxruntime":
        import onnxruntime as ort

        ort.set_default_logger_severity(3)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return (lambda batch: session.run(None, {name: batch})[0]), "as stored"
    if runtime == "openvino":
        import openvino as ov

        # OpenVINO runs f32 models in bf16 on CPUs that have it; ask for true f32, as the host does.
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(model_path, "CPU", config)
        request = compiled.create_infer_request()
        output = compiled.output(0)
        precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        return (lambda batch: request.infer([batch])[output].copy()), precision
    if runtime == "paddle-lite":
        import paddlelite.lite as lite

        config = lite.MobileConfig()
        config.set_model_from_file(model_path)
        if threads:
            config.set_threads(threads)
        predictor = lite.create_paddle_predictor(config)

        def run_lite(batch):
            predictor.get_input(0).from_numpy(np.ascontiguousarray(batch))
            predictor.run()
            return predictor.get_output(0).numpy()

        return run_lite, "as stored"
    if runtime == "paddle-inference":
        from paddle import inference

        config = inference.Config(model_path, os.path.splitext(model_path)[0] + ".pdiparams")
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads or 2)
        config.disable_glog_info()
        predictor = inference.create_predictor(config)
        x = predictor.get_input_handle(predictor.get_input_names()[0])
        y = predictor.get_output_handle(predictor.get_output_names()[0])

        def run_paddle(batch):
            x.reshape(list(batch.shape))
            x.copy_from_cpu(np.ascontiguousarray(batch))
            predictor.run()
            return y.copy_to_cpu()

        return run_paddle, "f32"
    raise RunnerError("unknown runtime %r (known: %s)" % (runtime, ", ".join(RUNTIMES)))


# ------------------------------------------------------------------ the content-addressed store

def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def have(store: str, wanted: list) -> list:
    """The [sha256, size] pairs of `wanted` that the store lacks."""
    missing = []
    for sha, size in wanted:
        path = os.path.join(store, sha)
        if not (os.path.isfile(path) and os.path.getsize(path) == size):
            missing.append(sha)
    return missing


def unpack(store: str, stream) -> dict:
    """Store every tar member named by its sha256; a member whose content does not match is dropped."""
    os.makedirs(store, exist_ok=True)
    stored, corrupt = 0, []
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            name = os.path.basename(member.name)
            if not member.isfile() or not SHA256_NAME.match(name):
                continue
            source = archive.extractfile(member)
            temp = os.path.join(store, ".incoming-%s-%d" % (name, os.getpid()))
            digest = hashlib.sha256()
            with open(temp, "wb") as out:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() == name:
                os.replace(temp, os.path.join(store, name))
                stored += 1
            else:
                os.remove(temp)
                corrupt.append(name)
    return {"stored": stored, "corrupt": corrupt}


# ------------------------------------------------------------------ running a job

def emit(event: dict) -> None:
    sys.stdout.write(EVENT_PREFIX + json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _materialize(job: dict, run_dir: str, store: str) -> str:
    """Link (or copy) the bundle's files out of the store under their names; check each checksum."""
    for rel, sha in sorted(job["model_files"].items()):
        source = os.path.join(store, sha)
        if not os.path.isfile(source):
            raise RunnerError("bundle file %s (sha256 %s) is not in the device store %s" % (rel, sha, store))
        if sha256_file(source) != sha:
            raise RunnerError("bundle file %s no longer matches its sha256 on the device (%s); "
                              "it was corrupted after it was copied" % (rel, source))
        target = os.path.join(run_dir, "bundle", rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.exists(target):
            os.remove(target)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    return os.path.join(run_dir, "bundle", job["model_file"])


def run_job(job_path: str, start: int = 0) -> int:
    import numpy as np

    with open(job_path) as stream:
        job = json.load(stream)
    if job.get("protocol") != PROTOCOL:
        raise RunnerError("job protocol %r, this runner speaks %d" % (job.get("protocol"), PROTOCOL))
    run_dir = os.path.dirname(os.path.abspath(job_path))
    store = job["store"]
    missing = missing_requirements(job["runtime"])
    if missing:
        raise RunnerError("this device lacks: " + "; ".join(missing))
    machines = LITE_ARCH_MACHINES.get(job.get("lite_arch") or "")
    if machines and platform.machine().lower() not in machines:
        raise RunnerError("the bundle holds Paddle Lite %s kernels, which do not run on this %s CPU"
                          % (job["lite_arch"], platform.machine()))
    model_path = _materialize(job, run_dir, store)
    load_start = time.perf_counter()
    infer, precision = open_runtime(job["runtime"], model_path, job.get("threads"))
    load_seconds = time.perf_counter() - load_start
    images = [os.path.join(store, sha) if sha else None for sha in job["images"]]
    pp = job["preprocessing"]
    emit({"event": "start", "device": device_info(), "runtime": job["runtime"],
          "version": runtime_version(job["runtime"]), "precision": precision, "total": len(images),
          "start": start, "load_seconds": load_seconds})
    logits_digest = hashlib.sha256()
    failed = []

    def on_batch(positions, logits, failures, done, stats):
        failed.extend(failures)
        event = {"event": "batch", "positions": positions, "failed": failures, "done": done,
                 "seconds": stats["seconds"], "infer_seconds": stats["infer_seconds"]}
        if logits is not None:
            raw = np.ascontiguousarray(logits, dtype="<f4").tobytes()
            logits_digest.update(raw)
            event.update(shape=list(logits.shape), logits=base64.b64encode(raw).decode("ascii"))
        emit(event)

    stats = evaluate(len(images), lambda i: preprocess(decode(images[i]), pp), infer, job["batch"],
                     job.get("workers") or min(4, os.cpu_count() or 1), on_batch, start)
    result = {"event": "end", "start": start, "images": stats["images"], "failed": len(failed),
              "seconds": stats["seconds"], "infer_seconds": stats["infer_seconds"],
              "logits_sha256": logits_digest.hexdigest(), "device": device_info(), "runtime": job["runtime"],
              "version": runtime_version(job["runtime"]), "precision": precision}
    # The result also lands on disk: the host pulls it and checks it against what it streamed.
    with open(os.path.join(run_dir, "result-%d.json" % start), "w") as stream:
        json.dump(result, stream)
    emit(result)
    return 0


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="runner.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("probe").add_argument("runtime")
    have_parser = sub.add_parser("have")
    have_parser.add_argument("store")
    have_parser.add_argument("wanted", nargs="?")
    unpack_parser = sub.add_parser("unpack")
    unpack_parser.add_argument("store")
    unpack_parser.add_argument("tar", nargs="?")
    run_parser = sub.add_parser("run")
    run_parser.add_argument("job")
    run_parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "probe":
            print(json.dumps(probe(args.runtime)))
        elif args.command == "have":
            if args.wanted:
                with open(args.wanted) as stream:
                    print(json.dumps(have(args.store, json.load(stream))))
            else:
                print(json.dumps(have(args.store, json.load(sys.stdin))))
        elif args.command == "unpack":
            if args.tar:
                with open(args.tar, "rb") as stream:
                    print(json.dumps(unpack(args.store, stream)))
            else:
                print(json.dumps(unpack(args.store, sys.stdin.buffer)))
        else:
            return run_job(args.job, args.start)
    except RunnerError as exc:
        emit({"event": "error", "message": str(exc)})
        return 3
    except BrokenPipeError:
        return 1  # the host went away; nothing left to tell it
    except Exception as exc:  # reported to the host instead of a bare traceback
        import traceback

        emit({"event": "error", "message": "%s: %s" % (type(exc).__name__, exc),
              "traceback": traceback.format_exc()[-3000:]})
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
