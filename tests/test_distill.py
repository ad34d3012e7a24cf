"""Knowledge distillation: the loss, the teacher checks, a short real run (label-free, resumable)."""

import numpy as np
import paddle
import pytest

from edgekit.compress.distill import DistillPass
from edgekit.data.datasets import open_dataset
from edgekit.data.digits import make_digits_dataset
from edgekit.errors import EdgekitError
from edgekit.training import UNLABELED, fit, subset
from edgekit.training.distillation import DistillationLoss
from edgekit.training.zoo_training import new_model, preprocessing_for, save_weights

SIZE = 32
TEACHER, STUDENT = "SqueezeNet1_0", "SqueezeNet1_1"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return make_digits_dataset(tmp_path_factory.mktemp("digits"), size=SIZE)


@pytest.fixture(scope="module")
def data(digits):
    return (subset(open_dataset(digits.train_list), 6), subset(open_dataset(digits.val_list), 3),
            preprocessing_for(STUDENT, SIZE))


@pytest.fixture(scope="module")
def teacher_weights(data, tmp_path_factory):
    """A briefly trained 10-class teacher (the checks and the run need real weights, not accuracy)."""
    train, _, pp = data
    teacher = new_model(TEACHER, 10, 0)
    fit(teacher, train, preprocessing=pp, epochs=1, batch_size=20, progress=False)
    return save_weights(teacher, tmp_path_factory.mktemp("teacher") / "teacher.pdparams")


class FixedLogits(paddle.nn.Layer):
    """A 'teacher' returning given logits, to check the loss against numpy."""

    def __init__(self, logits):
        super().__init__()
        self.logits = paddle.to_tensor(logits)

    def forward(self, images):
        return self.logits


def _log_softmax(x):
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def test_loss_is_t_squared_kl_plus_weighted_cross_entropy():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(4, 10)).astype(np.float32), rng.normal(size=(4, 10)).astype(np.float32)
    labels = np.array([1, UNLABELED, 7, 3])
    images = paddle.zeros([4, 3, 8, 8])
    t, alpha = 4.0, 0.7
    loss = DistillationLoss(FixedLogits(teacher), t, alpha)
    got = float(loss(paddle.to_tensor(student), paddle.to_tensor(labels), images))
    p = np.exp(_log_softmax(teacher / t))
    kl = (p * (np.log(p) - _log_softmax(student / t))).sum(1).mean()
    known = labels != UNLABELED
    ce = -_log_softmax(student)[known, labels[known]].mean()
    assert got == pytest.approx(alpha * t * t * kl + (1 - alpha) * ce, rel=1e-5)
    # A student that already matches the teacher has nothing left to learn from it.
    only_soft = DistillationLoss(FixedLogits(teacher), t, 1.0)
    assert float(only_soft(paddle.to_tensor(teacher), paddle.to_tensor(labels), images)) == pytest.approx(0, abs=1e-5)


def test_teacher_logits_are_computed_once_for_unaugmented_images():
    calls = []

    class Counting(paddle.nn.Layer):
        def forward(self, images):
            calls.append(images.shape[0])
            return paddle.zeros([images.shape[0], 10])

    images = np.random.default_rng(0).normal(size=(6, 3, 8, 8)).astype(np.float32)
    loss = DistillationLoss(Counting(), 2.0, 1.0)
    loss.precompute(images)
    loss.teacher_logits(paddle.to_tensor(images[[4, 1, 2]]))
    assert calls == [6]
    loss.teacher_logits(paddle.to_tensor(images[:2] + 1))  # shifted pixels: the teacher runs on them
    assert calls == [6, 2]


def test_teacher_problems_are_refused_before_any_training(data, teacher_weights, tmp_path):
    train, val, pp = data
    student = new_model(STUDENT, 10, 0)
    before = {k: v.numpy().copy() for k, v in student.state_dict().items()}
    with pytest.raises(EdgekitError, match="teacher SqueezeNet1_0 has no weights"):
        DistillPass(teacher=TEACHER).run(student, train, preprocessing=pp)
    with pytest.raises(EdgekitError, match="teacher_weights .*nope.pdparams does not exist"):
        DistillPass(teacher=TEACHER, teacher_weights=tmp_path / "nope.pdparams").run(student, train, preprocessing=pp)
    five_classes = save_weights(new_model(TEACHER, 5, 0), tmp_path / "five.pdparams")
    with pytest.raises(EdgekitError, match="predicts 5 classes but the student predicts 10"):
        DistillPass(teacher=TEACHER, teacher_weights=five_classes).run(student, train, preprocessing=pp)
    with pytest.raises(EdgekitError, match="Unknown model 'ResNet19'"):
        DistillPass(teacher="ResNet19", teacher_weights=teacher_weights)
    after = {k: v.numpy() for k, v in student.state_dict().items()}
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_api_distill_settings_are_checked(data, teacher_weights, tmp_path):
    from edgekit import api

    train, _, _ = data
    with pytest.raises(EdgekitError, match="temperature: Input should be greater than 0"):
        api.distill(STUDENT, train, teacher=TEACHER, teacher_weights=teacher_weights, temperature=0,
                    out=tmp_path / "s.pdparams", input_size=SIZE)
    with pytest.raises(EdgekitError, match="alpha"):
        api.distill(STUDENT, train, teacher=TEACHER, teacher_weights=teacher_weights, alpha=1.5,
                    out=tmp_path / "s.pdparams", input_size=SIZE)


def test_label_free_distillation_runs_and_resumes(data, teacher_weights, tmp_path):
    train, val, pp = data
    step = DistillPass(teacher=TEACHER, teacher_weights=teacher_weights, epochs=2, batch_size=20, lr=3e-4,
                       use_labels=False)

    class Stop(Exception):
        pass

    def stop_after_first(record):
        raise Stop

    interrupted = new_model(STUDENT, 10, 0)
    result = step.distill(interrupted, train, val, preprocessing=pp, work_dir=tmp_path, progress=False)
    assert result.teacher_val_top1 is not None and [r.epoch for r in result.train.history] == [1, 2]
    # Labels were ignored: no train accuracy can be measured.
    assert all(r.train_top1 is None and np.isfinite(r.loss) for r in result.train.history)

    # Same settings, another work dir, stopped by an exception after epoch 1, then resumed: same weights.
    resumed_dir = tmp_path / "again"
    with pytest.raises(Stop):
        step.run(new_model(STUDENT, 10, 0), train, val, preprocessing=pp, work_dir=resumed_dir, progress=False,
                 on_epoch_end=stop_after_first)
    student = step.run(new_model(STUDENT, 10, 0), train, val, preprocessing=pp, work_dir=resumed_dir,
                       progress=False)
    a, b = interrupted.state_dict(), student.state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
