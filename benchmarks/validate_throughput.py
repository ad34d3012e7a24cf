"""How fast `edgekit validate` gets through a large image set (a benchmark, not a test).

    .venv/bin/python benchmarks/validate_throughput.py photos [--images 2000] [--workers 2]
    .venv/bin/python benchmarks/validate_throughput.py scale [--images 50000] [--ssh URL --device-python PY ...]
    .venv/bin/python benchmarks/validate_throughput.py reference [--images 200] [--model ResNet50] [--rounds 2]

`photos`: ImageNet-like JPEGs (~500x375, cut from scikit-image's photos) through a
ResNet18 at 224 (onnx, 1000 classes): end-to-end images/s against inference
alone and against decoding alone, i.e. whether decoding keeps up with the model.
`scale`: 50,000 list lines (digits PNGs, repeated) through a 1000-class
SqueezeNet1_1 at 32x32, locally and optionally over ssh: the bookkeeping
(hashing, job file, 50,000 x 1000 logits streamed back) at ImageNet-val size.
`reference`: the FP32 source reference of a `.pdparams` build, as validate runs it: Paddle Inference on
the weights' cached `paddle` build (that build timed once, cold: export and parity check) against the
dygraph model, interleaved over the same preprocessed photos, with how far their logits differ.
Weights are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgekit import api


def make_photos(root: Path, count: int) -> Path:
    """`count` JPEGs of ~500x375 cut (and flipped) from the sample photos; a list file with labels 0..999."""
    from edgekit.data.samples import sample_photos

    root.mkdir(parents=True, exist_ok=True)
    listing = root / "list.txt"
    if listing.is_file() and len(listing.read_text().splitlines()) == count:
        return listing
    photos = list(sample_photos().values())
    rng = np.random.default_rng(0)
    lines = []
    for i in range(count):
        photo = photos[i % len(photos)]
        scale = 500 / max(photo.shape[:2]) * rng.uniform(1.0, 1.6)
        big = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        top, left = rng.integers(0, big.shape[0] - min(375, big.shape[0]) + 1), rng.integers(0, big.shape[1] - 499)
        crop = big[top:top + 375, left:left + 500]
        if i % 2:
            crop = crop[:, ::-1]
        cv2.imwrite(str(root / f"{i:06d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        lines.append(f"{i:06d}.jpg {i % 1000}")
    listing.write_text("\n".join(lines) + "\n")
    return listing


def decode_only(listing: Path, pp, workers: int, batch: int) -> float:
    """images/s of decode + preprocess alone, through the same thread pool."""
    from edgekit import portable

    paths = [listing.parent / line.split()[0] for line in listing.read_text().splitlines()]
    pp_dict = pp.to_dict()
    start = time.perf_counter()
    portable.evaluate(len(paths), lambda i: portable.preprocess(portable.decode(paths[i]), pp_dict),
                      lambda b: np.zeros((len(b), 1)), batch, workers, lambda *args: None)
    return len(paths) / (time.perf_counter() - start)


def photos(args, work: Path) -> dict:
    from edgekit.zoo.cards import get_card

    listing = make_photos(work / "photos", args.images)
    bundle = work / "resnet18-224-onnx"
    if not bundle.is_dir():
        api.build("ResNet18", "onnx", out=bundle)
    report = api.validate(bundle, listing, batch=args.batch, workers=args.workers, use_reference=False,
                          record=False)
    m = report.record["metrics"]
    decode = decode_only(listing, get_card("ResNet18").preprocessing, args.workers or 2, args.batch)
    return {"images": args.images, "end_to_end_images_per_s": m["images_per_s"],
            "inference_images_per_s": m["inference_images_per_s"], "decode_only_images_per_s": round(decode, 1),
            "minutes_for_50000": round(50_000 / m["images_per_s"] / 60, 1)}


def scale(args, work: Path) -> dict:
    from edgekit.data.digits import make_digits_dataset

    digits = make_digits_dataset(work / "digits", size=32)
    lines = digits.val_list.read_text().splitlines()
    listing = work / "digits" / f"scale-{args.images}.txt"
    listing.write_text("".join(lines[i % len(lines)] + "\n" for i in range(args.images)))
    bundle = work / "squeezenet-32-1000-onnx"
    if not bundle.is_dir():
        api.build("SqueezeNet1_1", "onnx", out=bundle, input_size=32)
    results = {}
    runs = [("local", {})]
    if args.ssh:
        options = dict(pair.split("=", 1) for pair in args.ssh_option)
        runs.append(("ssh", {"device": args.ssh, "device_python": args.device_python, "ssh_options": options}))
    for name, kwargs in runs:
        start = time.perf_counter()
        report = api.validate(bundle, listing, batch=args.batch, use_reference=False, record=False, **kwargs)
        m = report.record["metrics"]
        results[name] = {"wall_s": round(time.perf_counter() - start, 1), "device_s": m["seconds"],
                         "images_per_s": m["images_per_s"], "logits_sha256": m["logits_sha256"][:16],
                         "complete": report.record["complete"]}
    return {"images": args.images, "classes": 1000, **results}


def reference(args, work: Path) -> dict:
    import os
    import shutil

    import paddle

    from edgekit import portable
    from edgekit.validate.reference import Reference, open_reference, paddle_build_program
    from edgekit.zoo import create_model
    from edgekit.zoo.cards import get_card

    listing = make_photos(work / "photos", args.images)
    weights = work / f"{args.model}-1000.pdparams"
    if not weights.is_file():
        with paddle.utils.unique_name.guard():
            paddle.save(create_model(args.model, num_classes=1000).state_dict(), str(weights))
    pp = get_card(args.model).preprocessing
    paths = [listing.parent / line.split()[0] for line in listing.read_text().splitlines()]
    images = np.stack([portable.preprocess(portable.decode(p), pp.to_dict()) for p in paths])
    batches = [images[i:i + args.batch] for i in range(0, len(images), args.batch)]
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["EDGEKIT_CACHE_DIR"] = str(cache)  # a cold export: nothing cached yet
    start = time.perf_counter()
    program = paddle_build_program(args.model, 1000, weights, pp.crop)
    export_s = time.perf_counter() - start
    refs = {"paddle-inference": Reference("paddle-source", "exported", program, pp, 1000, "paddle-inference"),
            "dygraph": Reference("paddle-source", "dygraph", weights, pp, 1000, "paddle")}
    seconds = {name: [] for name in refs}
    outputs = {}
    for _ in range(args.rounds):
        for name, ref in refs.items():  # interleaved: both see the same machine state
            start = time.perf_counter()
            infer, _ = open_reference(ref, args.model, None)
            outputs[name] = np.concatenate([np.asarray(infer(b)) for b in batches])
            seconds[name].append(round(time.perf_counter() - start, 2))
    a, b = outputs["paddle-inference"], outputs["dygraph"]
    return {"model": args.model, "size": pp.crop, "images": len(images), "batch": args.batch,
            "paddle_build_s_cold": round(export_s, 1), "seconds_open_and_run": seconds,
            "ms_per_image": {k: round(1000 * min(v) / len(images), 1) for k, v in seconds.items()},
            "max_abs_diff": float(np.abs(a - b).max()), "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["photos", "scale", "reference"])
    parser.add_argument("--images", type=int)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-validate-bench")
    parser.add_argument("--ssh", help="ssh://user@host[:port] for the scale mode")
    parser.add_argument("--device-python")
    parser.add_argument("--ssh-option", action="append", default=[])
    parser.add_argument("--model", default="ResNet50", help="reference mode's network (at its card's size)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    args.images = args.images or {"photos": 2000, "scale": 50_000, "reference": 200}[args.mode]
    args.work.mkdir(parents=True, exist_ok=True)
    result = {"photos": photos, "scale": scale, "reference": reference}[args.mode](args, args.work)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
