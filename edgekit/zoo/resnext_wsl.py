"""ResNeXt101 WSL: Facebook's weakly-supervised (Instagram) ResNeXt101 at 8d-48d widths.

The network is a plain ResNeXt101 (same block plan as `resnext`), but
PaddleClas ported it from torchvision, so its sublayers carry different
names (``_conv_stem``, ``_conv<stage>_<index>``, ``_bn``, ``_short``); they are
mirrored here so its state dicts load as-is.
"""

from __future__ import annotations

from functools import partial

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from edgekit.zoo.layers import ConvBN
from edgekit.zoo.registry import register_model
from edgekit.zoo.resnext import STAGE_DEPTHS, stage_plan


# The torchvision port names its pair `_conv` / `_bn`.
conv_bn = partial(ConvBN, names=("_conv", "_bn"))


class Shortcut(nn.Layer):
    """Identity, or a strided 1x1 projection when the block changes shape."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self._conv = None
        if in_channels != out_channels or stride != 1:
            self._conv = conv_bn(in_channels, out_channels, 1, stride=stride)

    def forward(self, x):
        return x if self._conv is None else self._conv(x)


class Bottleneck(nn.Layer):
    def __init__(self, in_channels, width, out_channels, stride, cardinality):
        super().__init__()
        self._conv0 = conv_bn(in_channels, width, 1, act="relu")
        self._conv1 = conv_bn(width, width, 3, stride=stride, groups=cardinality, act="relu")
        self._conv2 = conv_bn(width, out_channels, 1)
        self._short = Shortcut(in_channels, out_channels, stride)

    def forward(self, x):
        return F.relu(self._conv2(self._conv1(self._conv0(x))) + self._short(x))


class ResNeXt101WSL(nn.Layer):
    """ResNeXt101 {cardinality}x{width_per_group}d."""

    def __init__(self, num_classes=1000, cardinality=32, width_per_group=8):
        super().__init__()
        self._conv_stem = conv_bn(3, 64, 7, stride=2, act="relu")
        self._pool = nn.MaxPool2D(3, stride=2, padding=1)
        # Blocks are named "_conv<stage>_<index>" with stages counted from 1.
        self.blocks = []
        for stage, index, in_ch, width, out_ch, stride in stage_plan(
                STAGE_DEPTHS[101], cardinality, width_per_group):
            block = Bottleneck(in_ch, width, out_ch, stride, cardinality)
            self.blocks.append(self.add_sublayer(f"_conv{stage + 1}_{index}", block))
        self._avg_pool = nn.AdaptiveAvgPool2D(1)
        self._out = nn.Linear(out_ch, num_classes)

    def forward(self, x):
        x = self._pool(self._conv_stem(x))
        for block in self.blocks:
            x = block(x)
        return self._out(paddle.flatten(self._avg_pool(x), 1))


for _width in (8, 16, 32, 48):
    register_model(f"ResNeXt101_32x{_width}d_wsl", family="ResNeXt101_wsl",
                   builder=ResNeXt101WSL, cardinality=32, width_per_group=_width)

# FixRes fine-tune of the 32x48d network: same network, own weights, run at 320x320.
register_model("Fix_ResNeXt101_32x48d_wsl", family="ResNeXt101_wsl", builder=ResNeXt101WSL,
               paddleclas_name="ResNeXt101_32x48d_wsl", cardinality=32, width_per_group=48)
