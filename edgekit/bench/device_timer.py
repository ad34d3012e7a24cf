"""The timing loop, run next to a runtime that lives in another interpreter.

Two such places: the Paddle Lite toolchain's interpreter on this host (the
paddlelite wheel exists only for CPython <= 3.10) and a device's Python
reached over ssh or adb. edgekit starts this file there, so it uses the
standard library and numpy only (plus the runtime) and imports nothing from
edgekit. edgekit's own harness imports `timed_loop` from here, so every
place times the same way.

    python device_timer.py serve RUNTIME MODEL THREADS [PRECISION_HINT]
        stdin/stdout, one JSON object per line:
        <- {"ok": true, "runtime_version": ..., "precision": ..., "threads_applied": ...}
        -> {"op": "input", "path": "batch.npy"}       bind an input batch
        -> {"op": "time", "iterations": 10, "seconds": 0.5}
        <- {"ok": true, "ns": [...]}                  per-call nanoseconds
        -> {"op": "exit"}
    python device_timer.py once RUNTIME MODEL THREADS PRECISION_HINT INPUT WARMUP ITERATIONS SECONDS
        one chunk in a fresh process (for transports without a stdin stream, e.g. adb): prints
        the hello object with "ns" added.
    python device_timer.py probe RUNTIME
        {"device": {machine, cpu, cores, ...}, "missing": [what this Python lacks for RUNTIME]}
"""

import gc
import json
import os
import sys
import time


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


def open_runtime(runtime, model_path, threads, precision_hint=None):
    """(infer(batch) -> logits, info) configured as edgekit.runtime.backends configures it."""
    import numpy as np

    info = {"threads_applied": bool(threads)}
    if runtime == "onnxruntime":
        import onnxruntime as ort

        ort.set_default_logger_severity(3)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        info.update(runtime_version=ort.__version__, precision="as stored")
        return (lambda batch: session.run(None, {name: batch})[0]), info
    if runtime == "openvino":
        import openvino as ov

        config = {}
        if precision_hint:  # none: OpenVINO's default (bf16 on CPUs that have it)
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(model_path, "CPU", config)
        request = compiled.create_infer_request()
        output = compiled.output(0)
        info.update(runtime_version=ov.get_version(),
                    precision=compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
        return (lambda batch: request.infer([batch])[output].copy()), info
    if runtime == "paddle-lite":
        import paddlelite.lite as lite

        config = lite.MobileConfig()
        config.set_model_from_file(model_path)
        # Not every paddlelite build exposes thread control to Python (x86 2.13rc0 does not).
        info["threads_applied"] = bool(threads) and hasattr(config, "set_threads")
        if info["threads_applied"]:
            config.set_threads(threads)
        predictor = lite.create_paddle_predictor(config)
        try:
            from importlib.metadata import version

            info["runtime_version"] = version("paddlelite")
        except Exception:  # a paddlelite copied in without its dist-info
            info["runtime_version"] = ""
        info["precision"] = "as stored"

        def run_lite(batch):
            # What an app does per call (as edgekit.runtime's Lite backend): feed, run, fetch.
            predictor.get_input(0).from_numpy(batch)
            predictor.run()
            return predictor.get_output(0).numpy()

        return run_lite, info
    if runtime == "paddle-inference":
        import platform

        import paddle
        from paddle import inference

        config = inference.Config(model_path, os.path.splitext(model_path)[0] + ".pdiparams")
        config.disable_gpu()
        if platform.machine().lower() in ("x86_64", "amd64"):
            config.enable_mkldnn()  # oneDNN is x86 only
        config.set_cpu_math_library_num_threads(threads or 1)
        config.disable_glog_info()
        predictor = inference.create_predictor(config)
        x = predictor.get_input_handle(predictor.get_input_names()[0])
        y = predictor.get_output_handle(predictor.get_output_names()[0])
        info.update(runtime_version=paddle.__version__, precision="f32")

        def run_paddle(batch):
            x.reshape(list(batch.shape))
            x.copy_from_cpu(np.ascontiguousarray(batch))
            predictor.run()
            return y.copy_to_cpu()

        return run_paddle, info
    raise ValueError("unknown runtime %r" % runtime)


def _load(path):
    import numpy as np

    return np.ascontiguousarray(np.load(path))


def serve(runtime, model_path, threads, precision_hint):
    infer, info = open_runtime(runtime, model_path, threads, precision_hint)
    print(json.dumps(dict(info, ok=True)), flush=True)
    batch = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "input":
                batch = _load(request["path"])
                reply = {"ok": True}
            elif request["op"] == "time":
                reply = {"ok": True, "ns": timed_loop(lambda: infer(batch), request["iterations"],
                                                      request["seconds"])}
            elif request["op"] == "exit":
                return
            else:
                reply = {"ok": False, "error": "unknown op %r" % request["op"]}
        except Exception as exc:  # reported to edgekit, which raises a readable error
            reply = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
        print(json.dumps(reply), flush=True)


def once(runtime, model_path, threads, precision_hint, input_path, warmup, iterations, seconds):
    infer, info = open_runtime(runtime, model_path, threads, precision_hint)
    batch = _load(input_path)
    if warmup:
        timed_loop(lambda: infer(batch), warmup, 0.0)
    ns = timed_loop(lambda: infer(batch), iterations, seconds)
    print(json.dumps(dict(info, ok=True, ns=ns)), flush=True)


RUNTIME_MODULES = {"onnxruntime": ("onnxruntime", "pip install onnxruntime"),
                   "openvino": ("openvino", "pip install openvino"),
                   "paddle-inference": ("paddle.inference", "pip install paddlepaddle"),
                   "paddle-lite": ("paddlelite.lite", "pip install paddlelite==2.13rc0 (CPython 3.8-3.10)")}


def _cpu_model():
    import platform

    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("model name", "hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def probe(runtime):
    import importlib
    import platform

    missing = []
    module, install = RUNTIME_MODULES.get(runtime, (None, None))
    for name, how in (("numpy", "pip install numpy"), (module, install)):
        if name is None:
            missing.append("runtime %r, unknown to this timer" % runtime)
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or a broken install raising something else
            missing.append("%s (%s): %s" % (name, how, exc))
    print(json.dumps({"device": {"machine": platform.machine(), "cpu": _cpu_model(), "cores": os.cpu_count(),
                                 "system": platform.system(), "python": platform.python_version()},
                      "python_executable": sys.executable, "missing": missing}), flush=True)


def main(argv):
    if argv and argv[0] == "probe":
        return probe(argv[1])
    command, runtime, model_path, threads = argv[0], argv[1], argv[2], int(argv[3])
    hint = argv[4] if len(argv) > 4 and argv[4] not in ("", "-") else None
    if command == "serve":
        serve(runtime, model_path, threads, hint)
    elif command == "once":
        once(runtime, model_path, threads, hint, argv[5], int(argv[6]), int(argv[7]), float(argv[8]))
    else:
        raise SystemExit("usage: device_timer.py serve|once RUNTIME MODEL THREADS [PRECISION_HINT ...] | "
                         "probe RUNTIME")


if __name__ == "__main__":
    main(sys.argv[1:])
