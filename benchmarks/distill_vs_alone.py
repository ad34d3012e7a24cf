"""Does distillation help? A student distilled from a larger teacher vs the same student trained alone.

On scikit-learn's handwritten digits (train split for training, val split for
the figures), same student, epochs, learning rate and seed in every arm:

  full labels     alone: cross-entropy on every training label
                  distilled: the teacher's soft targets + the same labels
  few labels      alone: cross-entropy on K labeled images per class
                  alone-same-steps: the same, for as many optimizer steps as
                    the distilled arm takes (more epochs over the few images)
                  distilled: the same K labels + the teacher's soft targets on
                  every training image, the rest unlabeled (SSLD-style)

The teacher is trained here on all training labels (or given with
--teacher-weights). Not a timed test; records go to --out as JSON.

    .venv/bin/python benchmarks/distill_vs_alone.py --work /tmp/distill-bench
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from edgekit.compress.distill import DistillPass
from edgekit.data.datasets import LabeledImages, Sample, open_dataset
from edgekit.data.digits import make_digits_dataset
from edgekit.training import UNLABELED, evaluate, fit, subset
from edgekit.training.zoo_training import new_model, preprocessing_for, save_weights


def with_few_labels(train: LabeledImages, per_class: int, seed: int) -> LabeledImages:
    """Every training image; only `per_class` of each class keep their label."""
    keep = {s.path for s in subset(train, per_class, seed).samples}
    return LabeledImages(tuple(s if s.path in keep else Sample(s.path, UNLABELED) for s in train.samples),
                         f"{train.source} ({per_class} labels per class)", train.class_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="ResNet18")
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--teacher-weights", type=Path, help="Reuse a trained teacher (.pdparams).")
    parser.add_argument("--student", default="SqueezeNet1_0")
    parser.add_argument("--epochs", type=int, default=4, help="Student epochs, every arm.")
    parser.add_argument("--lr", type=float, default=1e-3, help="Student peak learning rate, every arm.")
    parser.add_argument("--warmup", type=float, default=0.25, help="Warm-up fraction of the steps, every arm.")
    parser.add_argument("--size", type=int, default=32, help="Input size (digits are 8x8 scans upscaled).")
    parser.add_argument("--labels-per-class", type=int, default=10, help="Labeled images per class, few-label arms.")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regimes", default="full,few", help="full, few or both (comma-separated).")
    parser.add_argument("--arms", default="alone,distilled", help="alone, distilled or both (comma-separated).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgekit-distill-bench"))
    parser.add_argument("--out", type=Path, help="JSON records [default: WORK/distill_vs_alone.json].")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    digits = make_digits_dataset(args.work / f"digits-{args.size}", size=args.size)
    train, val = open_dataset(digits.train_list), open_dataset(digits.val_list)
    pp = preprocessing_for(args.student, args.size)
    records: list[dict] = []

    teacher_weights = args.teacher_weights
    if teacher_weights is None:
        start = time.perf_counter()
        teacher = new_model(args.teacher, 10, args.seed)
        fit(teacher, train, preprocessing=preprocessing_for(args.teacher, args.size), epochs=args.teacher_epochs,
            seed=args.seed, warmup=args.warmup, progress=False)
        teacher_weights = save_weights(teacher, args.work / f"teacher-{args.teacher}-{args.size}.pdparams")
        records.append({"arm": "teacher", "model": args.teacher, "epochs": args.teacher_epochs,
                        **evaluate(teacher, val, pp), "seconds": round(time.perf_counter() - start, 1)})
        print(f"teacher {args.teacher}: val top-1 {records[-1]['top1']:.4f} ({records[-1]['seconds']} s)", flush=True)

    distill = DistillPass(teacher=args.teacher, teacher_weights=teacher_weights, epochs=args.epochs, lr=args.lr,
                          warmup=args.warmup,
                          temperature=args.temperature, alpha=args.alpha, seed=args.seed)
    regimes = {"full": (train, train), "few": (subset(train, args.labels_per_class, args.seed),
                                               with_few_labels(train, args.labels_per_class, args.seed))}
    for regime in args.regimes.split(","):
        labeled, mixed = regimes[regime]
        arms = args.arms.split(",")
        if regime == "few" and "alone" in arms:
            arms.insert(arms.index("alone") + 1, "alone-same-steps")
        for arm in arms:
            start = time.perf_counter()
            student = new_model(args.student, 10, args.seed)
            epochs = args.epochs
            if arm == "alone-same-steps":
                # As many optimizer steps as the distilled arm takes over every image: the
                # few-label baseline is not just under-trained.
                epochs = args.epochs * round(len(mixed) / len(labeled))
            if arm.startswith("alone"):
                result = fit(student, labeled, preprocessing=pp, epochs=epochs, lr=args.lr, seed=args.seed,
                             warmup=args.warmup, val=val, progress=False)
            else:
                result = distill.distill(student, mixed, val, preprocessing=pp, progress=False).train
            metrics = evaluate(student, val, pp)
            records.append({"arm": arm, "regime": regime, "model": args.student, "epochs": epochs,
                            "train_images": result.train_images,
                            "labeled_images": len(labeled), **metrics,
                            "val_top1_per_epoch": [round(r.val_top1, 4) for r in result.history],
                            "seconds": round(time.perf_counter() - start, 1)})
            curve = records[-1]["val_top1_per_epoch"]
            print(f"{regime:>4} labels, {arm:>16} ({epochs} epochs): val top-1 {metrics['top1']:.4f} top-5 "
                  f"{metrics['top5']:.4f}, last epochs {curve[-4:]} ({records[-1]['seconds']} s)", flush=True)

    out = args.out or args.work / "distill_vs_alone.json"
    out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                               "host": f"{platform.system()} {platform.machine()}", "records": records}, indent=1))
    for regime in args.regimes.split(","):
        by_arm = {r["arm"]: r for r in records if r.get("regime") == regime}
        if "distilled" not in by_arm:
            continue
        for arm in ("alone", "alone-same-steps"):
            if arm in by_arm:
                distilled, alone = by_arm["distilled"]["top1"], by_arm[arm]["top1"]
                verdict = "beats" if distilled > alone else "does NOT beat"
                print(f"{regime} labels: distilled {distilled:.4f} {verdict} {arm} {alone:.4f} "
                      f"({100 * (distilled - alone):+.1f} points)")
    print(f"records: {out}")


if __name__ == "__main__":
    main()
