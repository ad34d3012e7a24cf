"""Precise BatchNorm: running statistics recomputed with the final weights (edgekit.training.batchnorm)."""

import numpy as np
import paddle
import pytest

from edgekit.data.datasets import open_dataset
from edgekit.data.digits import make_digits_dataset
from edgekit.preprocessing import Preprocessing
from edgekit.training import evaluate, fit
from edgekit.training.batchnorm import batchnorm_layers, refresh_batchnorm


def _net(momentum: float) -> paddle.nn.Layer:
    paddle.seed(0)
    return paddle.nn.Sequential(
        paddle.nn.Conv2D(3, 16, 3, padding=1), paddle.nn.BatchNorm2D(16, momentum=momentum), paddle.nn.ReLU(),
        paddle.nn.Conv2D(16, 32, 3, stride=2, padding=1), paddle.nn.BatchNorm2D(32, momentum=momentum),
        paddle.nn.ReLU(), paddle.nn.AdaptiveAvgPool2D(1), paddle.nn.Flatten(), paddle.nn.Linear(32, 10))


def test_running_statistics_become_the_average_over_the_batches():
    net = _net(0.99)
    images = np.random.default_rng(0).normal(3.0, 2.0, (40, 3, 8, 8)).astype(np.float32)
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    assert refresh_batchnorm(net, images, batch_size=16, max_images=32) == 2
    first = batchnorm_layers(net)[0]
    assert first._momentum == 0.99, "each layer's own momentum comes back"
    # The first layer's input is the conv of the chosen images; its running mean is the mean of the two
    # batch means (equal-sized batches: the mean over all 32 images).
    chosen = np.sort(np.random.default_rng([0, 0xB4]).permutation(40)[:32])
    with paddle.no_grad():
        conv = net[0](paddle.to_tensor(images[chosen])).numpy()
    assert np.allclose(first._mean.numpy(), conv.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-4)
    after = {k: v.numpy() for k, v in net.state_dict().items()}
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed and all(k.endswith(("_mean", "_variance")) for k in changed), changed


def test_nothing_to_refresh_without_batchnorm_or_images():
    plain = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(3 * 8 * 8, 10))
    assert refresh_batchnorm(plain, np.zeros((8, 3, 8, 8), np.float32), 4) == 0
    assert refresh_batchnorm(_net(0.9), np.zeros((1, 3, 8, 8), np.float32), 4) == 0  # one image: no batch


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return make_digits_dataset(tmp_path_factory.mktemp("digits"), size=8)


def test_a_short_fine_tune_with_slow_running_averages_validates_right_only_with_it(digits):
    """Momentum 0.99 (EfficientNet's) over one short epoch: the running averages still hold mostly their
    initial values, so eval mode classifies badly; recomputed, it matches what training reached."""
    pp = Preprocessing(resize_short=8, crop=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    train, val = open_dataset(digits.train_list), open_dataset(digits.val_list)
    top1 = {}
    for images in (0, 512):
        net = _net(0.99)
        result = fit(net, train, preprocessing=pp, epochs=1, batch_size=32, lr=1e-2, val=val, progress=False,
                     precise_bn_images=images)
        top1[images] = evaluate(net, val, pp)["top1"]
        assert result.last.val_top1 == pytest.approx(top1[images])
    assert top1[512] > 0.6 and top1[512] > top1[0] + 0.2, top1
