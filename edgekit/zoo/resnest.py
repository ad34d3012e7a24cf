"""ResNeSt (Zhang et al., 2020, arXiv:2004.08955): split-attention ResNet.

A ResNet-D style network (deep 3-conv stem, average-pool downsampling in
the shortcut and in the main path) whose bottleneck 3x3 conv is replaced by a
split-attention conv. Sublayer names follow PaddleClas 2.6.0 so that its
checkpoints load unchanged.
"""

from __future__ import annotations

from functools import partial

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from edgekit.zoo.layers import ConvBN
from edgekit.zoo.registry import register_model


# PaddleClas's ResNeSt names its pair `_conv` / `_batch_norm`.
conv_bn = partial(ConvBN, names=("_conv", "_batch_norm"))


class SplitAttentionConv(nn.Layer):
    """3x3 conv producing `radix` feature splits, fused by channel attention.

    The attention weights come from the pooled sum of the splits; with radix 1
    this degenerates to an SE-like sigmoid gate.
    """

    def __init__(self, channels: int, radix: int, cardinality: int, reduction: int = 4):
        super().__init__()
        self.radix, self.cardinality = radix, cardinality
        inter_channels = max(channels * radix // reduction, 32)
        self.conv1 = conv_bn(channels, channels * radix, 3, groups=cardinality * radix, act="relu")
        self.conv2 = conv_bn(channels, inter_channels, 1, groups=cardinality, act="relu")
        self.conv3 = nn.Conv2D(inter_channels, channels * radix, 1, groups=cardinality)

    def forward(self, x):
        x = self.conv1(x)
        splits = paddle.split(x, self.radix, axis=1) if self.radix > 1 else [x]
        gap = paddle.add_n(splits) if self.radix > 1 else x
        attention = self.conv3(self.conv2(F.adaptive_avg_pool2d(gap, 1)))
        if self.radix == 1:
            return x * F.sigmoid(attention)
        # conv3 groups its outputs by cardinality; softmax runs across the
        # radix splits within each group, then the result is laid out radix-major
        # to line up with `splits`. Shape 0 = keep the (possibly dynamic) batch.
        attention = attention.reshape([0, self.cardinality, self.radix, -1])
        attention = F.softmax(attention.transpose([0, 2, 1, 3]), axis=1).reshape([0, -1, 1, 1])
        weights = paddle.split(attention, self.radix, axis=1)
        return paddle.add_n([s * w for s, w in zip(splits, weights)])


class Bottleneck(nn.Layer):
    """1x1 -> split-attention 3x3 -> 1x1, with avg-pool ("avd") downsampling.

    A strided block downsamples by a 3x3 average pool placed before
    (`avd_first`) or after the split-attention conv, so every conv runs at
    stride 1; the projection shortcut likewise pools before its 1x1 conv.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, radix: int,
                 cardinality: int, bottleneck_width: int, avd_first: bool):
        super().__init__()
        width = int(planes * bottleneck_width / 64) * cardinality
        out_channels = planes * self.expansion
        self.avd_first = avd_first
        self.conv1 = conv_bn(in_channels, width, 1, act="relu")
        self.conv2 = SplitAttentionConv(width, radix, cardinality)
        self.conv3 = conv_bn(width, out_channels, 1)
        self.avd = nn.AvgPool2D(3, stride, padding=1) if stride > 1 else nn.Identity()
        self.has_projection = stride != 1 or in_channels != out_channels
        if self.has_projection:
            self.shortcut_pool = nn.AvgPool2D(stride, stride) if stride > 1 else nn.Identity()
            # PaddleClas keeps this projection's conv and BN on the block itself.
            self.conv4 = nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)
            self._batch_norm = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        shortcut = x
        y = self.conv1(x)
        if self.avd_first:
            y = self.conv2(self.avd(y))
        else:
            y = self.avd(self.conv2(y))
        y = self.conv3(y)
        if self.has_projection:
            shortcut = self._batch_norm(self.conv4(self.shortcut_pool(x)))
        return F.relu(y + shortcut)


class ResNeSt(nn.Layer):
    def __init__(self, depths: tuple[int, ...], radix: int = 2, stem_width: int = 64,
                 avd_first: bool = False, cardinality: int = 1, bottleneck_width: int = 64,
                 num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(
            ("conv1", conv_bn(3, stem_width, 3, stride=2, act="relu")),
            ("conv2", conv_bn(stem_width, stem_width, 3, act="relu")),
            ("conv3", conv_bn(stem_width, stem_width * 2, 3, act="relu")),
        )
        self.max_pool2d = nn.MaxPool2D(3, 2, padding=1)
        in_channels = stem_width * 2
        for index, depth in enumerate(depths):
            stage = f"layer{index + 1}"
            planes = 64 * 2 ** index
            blocks = []
            for b in range(depth):
                stride = 2 if index > 0 and b == 0 else 1
                blocks.append((f"{stage}_bottleneck_{b}", Bottleneck(
                    in_channels, planes, stride, radix, cardinality, bottleneck_width, avd_first)))
                in_channels = planes * Bottleneck.expansion
            # PaddleClas names each block "<stage>_bottleneck_<i>" inside its stage.
            setattr(self, stage, nn.Sequential(*blocks))
        self.stages = [getattr(self, f"layer{i + 1}") for i in range(len(depths))]
        self.out = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        x = self.max_pool2d(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.out(paddle.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# Every published variant uses cardinality 1 and bottleneck width 64.
_VARIANTS = {
    "ResNeSt50_fast_1s1x64d": dict(depths=(3, 4, 6, 3), radix=1, stem_width=32, avd_first=True),
    "ResNeSt50": dict(depths=(3, 4, 6, 3), radix=2, stem_width=32),
    "ResNeSt101": dict(depths=(3, 4, 23, 3), radix=2, stem_width=64),
    "ResNeSt200": dict(depths=(3, 24, 36, 3), radix=2, stem_width=64),
    "ResNeSt269": dict(depths=(3, 30, 48, 8), radix=2, stem_width=64),
}

for _name, _config in _VARIANTS.items():
    register_model(_name, family="ResNeSt", builder=ResNeSt, **_config)
