#!/usr/bin/env python3
"""edgekit's device agent: what runs beside a bundle on the machine it runs on.

edgekit copies this file, `openers.py` (the runtime openers) and `portable.py`
(image decoding and preprocessing, the batch loop and the timing loop) into one
directory on a device (over ssh or adb) and starts it with the device's own
Python (3.8+). It needs numpy, OpenCV and the bundle's runtime (onnxruntime,
openvino, paddlelite's light API or Paddle Inference), nothing else; it never
imports edgekit. On the build host the Paddle Lite toolchain's interpreter
runs it the same way, and edgekit imports it for the protocol constants.

    python agent.py probe RUNTIME [--no-images]   what this device has, as JSON
    python agent.py have STORE [WANTED]           which of WANTED's [sha256, size] pairs STORE lacks
    python agent.py unpack STORE [TAR]            store files from a tar stream, checking each sha256
    python agent.py run JOB [--start N]           classify; one '@edgekit {json}' line per batch on stdout
    python agent.py serve RUNTIME MODEL THREADS [HINT]
        time a model, one JSON object per line on stdin/stdout:
        <- {"ok": true, "runtime_version": ..., "precision": ..., "threads_applied": ...}
        -> {"op": "input", "path": "batch.npy"}       bind an input batch
        -> {"op": "time", "iterations": 10, "seconds": 0.5}
        <- {"ok": true, "ns": [...]}                  per-call nanoseconds
        -> {"op": "exit"}
    python agent.py once RUNTIME MODEL THREADS HINT INPUT WARMUP ITERATIONS SECONDS
        one timing chunk in a fresh process (transports without a stdin stream, e.g. adb)
    python agent.py infer RUNTIME MODEL INPUT.npy OUTPUT.npy   one batch through the model

Content-addressed: every file (model file or image) is stored as STORE/<sha256>,
written under a temporary name and renamed only once its checksum matches, so
a file that is present is correct and is never sent twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tarfile
import time

if __package__:  # imported by edgekit on the host
    from edgekit import openers, portable
else:  # a script beside its portable.py and openers.py, on a device or in a foreign interpreter
    import openers
    import portable

PROTOCOL = 2
EVENT_PREFIX = "@edgekit "
SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")


def probe(runtime: str, images: bool = True) -> dict:
    return dict(openers.probe(runtime, images), protocol=PROTOCOL)


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
            raise portable.PortableError("bundle file %s (sha256 %s) is not in the device store %s" % (rel, sha, store))
        if sha256_file(source) != sha:
            raise portable.PortableError("bundle file %s no longer matches its sha256 on the device (%s); "
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
        raise portable.PortableError("job protocol %r, this agent speaks %d" % (job.get("protocol"), PROTOCOL))
    run_dir = os.path.dirname(os.path.abspath(job_path))
    store = job["store"]
    missing = openers.missing_requirements(job["runtime"])
    if missing:
        raise portable.PortableError("this device lacks: " + "; ".join(missing))
    machines = portable.LITE_ARCH_MACHINES.get(job.get("lite_arch") or "")
    if machines and platform.machine().lower() not in machines:
        raise portable.PortableError("the bundle holds Paddle Lite %s kernels, which do not run on this %s CPU"
                          % (job["lite_arch"], platform.machine()))
    model_path = _materialize(job, run_dir, store)
    load_start = time.perf_counter()
    # The bundle's own hint, resolved here: bf16 only where this device's CPU computes it natively.
    hint = openers.bundle_precision_hint({"artifact": {"precision_hint": job.get("precision_hint")}})
    runtime = openers.open_runtime(job["runtime"], model_path, job.get("threads"), hint)
    load_seconds = time.perf_counter() - load_start
    images = [os.path.join(store, sha) if sha else None for sha in job["images"]]
    pp = job["preprocessing"]
    device = portable.device_info()
    emit({"event": "start", "device": device, "runtime": job["runtime"], "version": runtime.version,
          "precision": runtime.precision, "total": len(images), "start": start, "load_seconds": load_seconds})
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

    stats = portable.evaluate(len(images), lambda i: portable.preprocess(portable.decode(images[i]), pp), runtime,
                              job["batch"], job.get("workers") or portable.default_workers(), on_batch, start)
    result = {"event": "end", "start": start, "images": stats["images"], "failed": len(failed),
              "seconds": stats["seconds"], "infer_seconds": stats["infer_seconds"],
              "logits_sha256": logits_digest.hexdigest(), "device": device, "runtime": job["runtime"],
              "version": runtime.version, "precision": runtime.precision}
    # The result also lands on disk: the host pulls it and checks it against what it streamed.
    with open(os.path.join(run_dir, "result-%d.json" % start), "w") as stream:
        json.dump(result, stream)
    emit(result)
    return 0


# ------------------------------------------------------------------ timing and single batches

def _load_array(path: str):
    import numpy as np

    return np.ascontiguousarray(np.load(path))


def _open_for_timing(runtime: str, model_path: str, threads: int, hint: str | None):
    opened = openers.open_runtime(runtime, model_path, threads or None, hint)
    hello = {"ok": True, "runtime_version": opened.version, "precision": opened.precision,
             "threads_applied": opened.threads_applied}
    return opened, hello


def serve(runtime: str, model_path: str, threads: int, hint: str | None) -> None:
    opened, hello = _open_for_timing(runtime, model_path, threads, hint)
    print(json.dumps(hello), flush=True)
    batch = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "input":
                batch = _load_array(request["path"])
                reply = {"ok": True}
            elif request["op"] == "time":
                reply = {"ok": True, "ns": portable.timed_loop(lambda: opened(batch), request["iterations"],
                                                               request["seconds"])}
            elif request["op"] == "exit":
                return
            else:
                reply = {"ok": False, "error": "unknown op %r" % request["op"]}
        except Exception as exc:  # reported to edgekit, which raises a readable error
            reply = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
        print(json.dumps(reply), flush=True)


def once(runtime: str, model_path: str, threads: int, hint: str | None, input_path: str, warmup: int,
         iterations: int, seconds: float) -> None:
    opened, hello = _open_for_timing(runtime, model_path, threads, hint)
    batch = _load_array(input_path)
    if warmup:
        portable.timed_loop(lambda: opened(batch), warmup, 0.0)
    hello["ns"] = portable.timed_loop(lambda: opened(batch), iterations, seconds)
    print(json.dumps(hello), flush=True)


def infer(runtime: str, model_path: str, input_path: str, output_path: str) -> None:
    import numpy as np

    np.save(output_path, openers.open_runtime(runtime, model_path)(_load_array(input_path)))


def _hint(text: str) -> str | None:
    return None if text in ("", "-") else text


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="agent.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    probe_parser = sub.add_parser("probe")
    probe_parser.add_argument("runtime")
    probe_parser.add_argument("--no-images", action="store_true")
    for name in ("have", "unpack"):
        store_parser = sub.add_parser(name)
        store_parser.add_argument("store")
        store_parser.add_argument("source", nargs="?")
    run_parser = sub.add_parser("run")
    run_parser.add_argument("job")
    run_parser.add_argument("--start", type=int, default=0)
    serve_parser = sub.add_parser("serve")
    once_parser = sub.add_parser("once")
    for timing in (serve_parser, once_parser):
        timing.add_argument("runtime")
        timing.add_argument("model")
        timing.add_argument("threads", type=int)
        timing.add_argument("hint", nargs="?" if timing is serve_parser else None, default="-")
    once_parser.add_argument("input")
    once_parser.add_argument("warmup", type=int)
    once_parser.add_argument("iterations", type=int)
    once_parser.add_argument("seconds", type=float)
    infer_parser = sub.add_parser("infer")
    for name in ("runtime", "model", "input", "output"):
        infer_parser.add_argument(name)
    args = parser.parse_args(argv)
    try:
        if args.command == "probe":
            print(json.dumps(probe(args.runtime, images=not args.no_images)))
        elif args.command == "have":
            if args.source:
                with open(args.source) as stream:
                    print(json.dumps(have(args.store, json.load(stream))))
            else:
                print(json.dumps(have(args.store, json.load(sys.stdin))))
        elif args.command == "unpack":
            if args.source:
                with open(args.source, "rb") as stream:
                    print(json.dumps(unpack(args.store, stream)))
            else:
                print(json.dumps(unpack(args.store, sys.stdin.buffer)))
        elif args.command == "run":
            return run_job(args.job, args.start)
        elif args.command == "serve":
            serve(args.runtime, args.model, args.threads, _hint(args.hint))
        elif args.command == "once":
            once(args.runtime, args.model, args.threads, _hint(args.hint), args.input, args.warmup,
                 args.iterations, args.seconds)
        else:
            infer(args.runtime, args.model, args.input, args.output)
    except portable.PortableError as exc:
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
