"""The shared small trainer: determinism, resume after a real kill, data checks, evaluation.

Tiny on purpose (SqueezeNet1_1 at 32 px on a few hundred digits): the
trainer's contracts do not need a model that reaches high accuracy.
"""

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import paddle
import pytest

from edgekit.data.datasets import LabeledImages, Sample, open_dataset
from edgekit.data.digits import make_digits_dataset
from edgekit.errors import EdgekitError
from edgekit.training import UNLABELED, decode_images, evaluate, fit, subset
from edgekit.training.zoo_training import new_model, preprocessing_for

REPO = Path(__file__).resolve().parents[1]
MODEL = "SqueezeNet1_1"
SIZE = 32


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return make_digits_dataset(tmp_path_factory.mktemp("digits"), size=SIZE)


@pytest.fixture(scope="module")
def small(digits):
    """(train, val, preprocessing): 8 training and 4 val digits per class."""
    return (subset(open_dataset(digits.train_list), 8), subset(open_dataset(digits.val_list), 4),
            preprocessing_for(MODEL, SIZE))


def weights_of(model) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def train_small(small, epochs=2, seed=0, **kwargs):
    train, val, pp = small
    model = new_model(MODEL, 10, seed)
    result = fit(model, train, preprocessing=pp, epochs=epochs, batch_size=16, lr=3e-4, seed=seed, val=val,
                 progress=False, augment=True, **kwargs)
    return model, result


@pytest.fixture(scope="module")
def reference_run(small):
    """An uninterrupted 2-epoch run: the weights every other run is compared with."""
    model, result = train_small(small)
    return weights_of(model), result


def test_same_seed_gives_identical_weights_and_another_seed_does_not(small, reference_run):
    reference, result = reference_run
    model, again = train_small(small)
    assert same_weights(weights_of(model), reference)
    assert [r.loss for r in again.history] == [r.loss for r in result.history]
    other, _ = train_small(small, epochs=1, seed=1)
    assert not same_weights(weights_of(other), reference)


def test_history_records_every_epoch(reference_run):
    _, result = reference_run
    assert [r.epoch for r in result.history] == [1, 2]
    for record in result.history:
        assert np.isfinite(record.loss) and 0 <= record.train_top1 <= 1 and 0 <= record.val_top1 <= 1
    assert result.best_epoch in (1, 2) and result.best_val_top1 == max(r.val_top1 for r in result.history)
    assert result.train_images == 80 and result.skipped_images == 0 and result.resumed_from_epoch is None


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from edgekit.data.datasets import open_dataset
    from edgekit.training import fit, subset
    from edgekit.training.zoo_training import new_model, preprocessing_for

    train_list, val_list, checkpoints = sys.argv[1:4]
    train, val = subset(open_dataset(train_list), 8), subset(open_dataset(val_list), 4)

    def die_after_first_epoch(record):
        # A hard kill right after epoch 1's checkpoint: no cleanup, no exception handling.
        os.kill(os.getpid(), signal.SIGKILL)

    fit(new_model("SqueezeNet1_1", 10, 0), train, preprocessing=preprocessing_for("SqueezeNet1_1", 32), epochs=2,
        batch_size=16, lr=3e-4, seed=0, val=val, progress=False, augment=True, checkpoint_dir=Path(checkpoints),
        on_epoch_end=die_after_first_epoch)
""")


def test_killed_run_resumes_to_the_same_weights(small, reference_run, digits, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(digits.train_list), str(digits.val_list),
                           str(checkpoints)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.pdparams", "epoch-001"]
    # A checkpoint the kill interrupted half-way is ignored on resume.
    (checkpoints / ".epoch-002.tmp").mkdir()
    (checkpoints / ".epoch-002.tmp" / "model.pdparams").write_bytes(b"half")

    model, result = train_small(small, checkpoint_dir=checkpoints)
    assert result.resumed_from_epoch == 1
    assert [r.epoch for r in result.history] == [1, 2]
    reference, uninterrupted = reference_run
    assert same_weights(weights_of(model), reference)
    assert [r.val_top1 for r in result.history] == [r.val_top1 for r in uninterrupted.history]
    assert (checkpoints / "best.pdparams").is_file() and result.best_weights == checkpoints / "best.pdparams"

    # A finished run resumes to itself at once; other settings are refused, naming the directory.
    model, again = train_small(small, checkpoint_dir=checkpoints)
    assert again.resumed_from_epoch == 2 and same_weights(weights_of(model), reference)
    with pytest.raises(EdgekitError, match=r"(?s)checkpoints.*other settings.*lr"):
        fit(new_model(MODEL, 10, 0), small[0], preprocessing=small[2], epochs=2, batch_size=16, lr=1e-3, seed=0,
            checkpoint_dir=checkpoints, progress=False, augment=True)


def test_progress_bar_and_epoch_callback(small, capsys):
    train, _, pp = small
    seen = []
    fit(new_model(MODEL, 10, 0), train.limit(32), preprocessing=pp, epochs=1, batch_size=16, progress=True,
        on_epoch_end=seen.append)
    assert [r.epoch for r in seen] == [1]
    assert "epoch 1/1" in capsys.readouterr().err


def test_evaluate_reports_top1_top5_and_skips_broken_images(small, tmp_path):
    train, val, pp = small
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with_broken = LabeledImages(val.samples + (Sample(broken, 3), Sample(tmp_path / "missing.png", 1)), "val+broken")
    metrics = evaluate(new_model(MODEL, 10, 0), with_broken, pp)
    assert metrics["n"] == len(val) and metrics["skipped"] == 2
    assert 0 <= metrics["top1"] <= metrics["top5"] <= 1

    result = fit(new_model(MODEL, 10, 0), LabeledImages(train.samples[:20] + (Sample(broken, 0),), "train+broken"),
                 preprocessing=pp, epochs=1, batch_size=16, progress=False)
    assert result.skipped_images == 1 and result.train_images == 20


def test_bad_training_inputs_are_explained(small, tmp_path):
    train, _, pp = small
    model = new_model(MODEL, 10, 0)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"")
    with pytest.raises(EdgekitError, match=r"training data only-broken has 0 usable images \(1 could not be decoded"):
        fit(model, LabeledImages((Sample(broken, 0),), "only-broken"), preprocessing=pp, epochs=1, progress=False)
    with pytest.raises(EdgekitError, match="training data one has 1 usable images; at least 2"):
        fit(model, LabeledImages(train.samples[:1], "one"), preprocessing=pp, epochs=1, progress=False)
    out_of_range = LabeledImages(train.samples[:4] + (Sample(train.samples[0].path, 12),), "bad-labels")
    with pytest.raises(EdgekitError, match=r"bad-labels: 1 of 5 labels are outside 0\.\.9.*e\.g\. 12"):
        fit(model, out_of_range, preprocessing=pp, epochs=1, progress=False)
    unlabeled = LabeledImages(tuple(Sample(s.path, UNLABELED) for s in train.samples[:4]), "no-labels")
    with pytest.raises(EdgekitError, match="outside 0..9"):
        fit(model, unlabeled, preprocessing=pp, epochs=1, progress=False)
    with pytest.raises(EdgekitError, match="epochs must be at least 1"):
        fit(model, train, preprocessing=pp, epochs=0, progress=False)
    # SqueezeNet's feature map vanishes at 16 px: said before training, not as a NaN loss later.
    tiny = dataclasses.replace(pp, resize_short=16, crop=16)
    with pytest.raises(EdgekitError, match="non-finite logits on 16x16 inputs"):
        fit(model, train, preprocessing=tiny, epochs=1, progress=False)


def test_decoded_images_are_reused_without_decoding_again(small):
    train, _, pp = small
    decoded = decode_images(train, pp)
    assert decoded.images.shape == (80, 3, SIZE, SIZE) and decoded.images.dtype == np.float32
    assert decode_images(decoded, pp) is decoded
    per_class = np.bincount(decoded.labels, minlength=10)
    assert per_class.tolist() == [8] * 10


def test_api_train_saves_loadable_weights_that_classify(digits, tmp_path):
    from edgekit import api
    from edgekit.zoo import create_model
    from edgekit.zoo.weights import load_weights

    # ResNet18 (BatchNorm) learns digits in one short epoch; 16 px keeps it cheap.
    train, val = subset(open_dataset(digits.train_list), 30), subset(open_dataset(digits.val_list), 10)
    trained = api.train("ResNet18", train, val, out=tmp_path / "w.pdparams", input_size=16, epochs=1,
                        batch_size=32, progress=False)
    assert trained.num_classes == 10 and trained.weights.is_file()
    assert trained.preprocessing.crop == 16 and trained.val["n"] == 100
    assert trained.val["top1"] > 0.3, trained.val  # chance is 0.1
    with paddle.utils.unique_name.guard():
        fresh = create_model("ResNet18", num_classes=10)
    load_weights(fresh, trained.weights)
    assert evaluate(fresh, val, trained.preprocessing)["top1"] == trained.val["top1"]
