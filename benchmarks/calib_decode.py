"""How long decoding `--calib` takes an INT8 build, and how much memory it holds (a benchmark, not a test).

    .venv/bin/python benchmarks/calib_decode.py [--size 224] [--rounds 3] [--work DIR]

The digits, upscaled to --size (1,347 training images), as a ResNet50 ptq-int8 build splits them (500 held
out, 256 calibration): a PTQ split decodes those 756 only, a split whose passes train (QAT, distillation)
decodes all of them; each on edgekit's decoding threads and on one. Peak memory is numpy's, traced.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from edgekit.compress.calibration import load_compression_data, open_calibration_set, plan_split
from edgekit.data.digits import make_digits_dataset
from edgekit.training import decoded
from edgekit.zoo.cards import get_card


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-calib-decode")
    args = parser.parse_args()
    digits = make_digits_dataset(args.work / f"digits{args.size}", args.size)
    data = open_calibration_set(digits.train_list)
    preprocessing = get_card("ResNet50").preprocessing
    threads = decoded.DECODE_THREADS
    cases = [(trains, n) for trains in (False, True) for n in (threads, 1)]
    results = {case: {"seconds": [], "peak_mb": 0.0, "decoded": 0} for case in cases}
    for _ in range(args.rounds):
        for trains, n in cases:  # interleaved
            decoded.DECODE_THREADS = n
            split = plan_split(data, holdout_images=500, calibration_images=256, max_drop=None, trains=trains)
            tracemalloc.start()
            start = time.perf_counter()
            loaded = load_compression_data(data, split, preprocessing, 10)
            seconds = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            record = results[(trains, n)]
            record["seconds"].append(round(seconds, 2))
            record["peak_mb"] = round(max(record["peak_mb"], peak), 1)
            record["decoded"] = len(loaded.holdout_images) + len(loaded.train_images)
            del loaded
    print(json.dumps({"images_in_list": len(data), "size": args.size,
                      "cases": [{"split": "trains" if trains else "ptq", "threads": n, **results[(trains, n)]}
                                for trains, n in cases]}, indent=1))


if __name__ == "__main__":
    main()
