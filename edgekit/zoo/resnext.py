"""ResNeXt and ResNeXt_vd (Xie et al. 2017; "vd" tweaks from He et al. 2019).

One class covers both: ``vd=True`` swaps the 7x7 stem for three 3x3 convs and
downsamples projection shortcuts with an average pool instead of a strided
1x1 conv. Sublayer names mirror PaddleClas so its state dicts load as-is.
"""

from __future__ import annotations

import math
from functools import partial

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from edgekit.zoo.layers import ConvBN
from edgekit.zoo.registry import register_model

# Bottleneck blocks per stage for each depth.
STAGE_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def stage_plan(depths, cardinality, width_per_group):
    """Yield (stage, index, in_channels, group_width, out_channels, stride) per block.

    Group width doubles per stage (cardinality x width_per_group at stage 0);
    block outputs are the usual 256, 512, 1024, 2048.
    """
    in_channels = 64
    for stage, depth in enumerate(depths):
        width = cardinality * width_per_group * 2**stage
        out_channels = 256 * 2**stage
        for index in range(depth):
            stride = 2 if index == 0 and stage > 0 else 1
            yield stage, index, in_channels, width, out_channels, stride
            in_channels = out_channels


# PaddleClas's ResNeXt names its pair `_conv` / `_batch_norm`.
conv_bn = partial(ConvBN, names=("_conv", "_batch_norm"))


class Bottleneck(nn.Layer):
    """1x1 reduce -> 3x3 grouped conv (carries the stride) -> 1x1 expand, plus shortcut."""

    def __init__(self, in_channels, width, out_channels, stride, cardinality, vd):
        super().__init__()
        self.conv0 = conv_bn(in_channels, width, 1, act="relu")
        self.conv1 = conv_bn(width, width, 3, stride=stride, groups=cardinality, act="relu")
        self.conv2 = conv_bn(width, out_channels, 1)
        self.short = None
        if in_channels != out_channels or stride != 1:
            # vd: average-pool then project, so no activations are skipped by a stride-2 1x1.
            pool = vd and stride != 1
            self.short = conv_bn(in_channels, out_channels, 1, stride=1 if pool else stride,
                                 avg_down=pool)

    def forward(self, x):
        shortcut = x if self.short is None else self.short(x)
        return F.relu(self.conv2(self.conv1(self.conv0(x))) + shortcut)


class ResNeXt(nn.Layer):
    """ResNeXt-{layers} ({cardinality}x{width_per_group}d); ``vd`` selects the ResNeXt_vd tweaks."""

    def __init__(self, num_classes=1000, layers=50, cardinality=32, width_per_group=4, vd=False):
        super().__init__()
        if layers not in STAGE_DEPTHS:
            raise ValueError(f"ResNeXt depth must be one of {sorted(STAGE_DEPTHS)}, got {layers}")
        if vd:
            self.conv1_1 = conv_bn(3, 32, 3, stride=2, act="relu")
            self.conv1_2 = conv_bn(32, 32, 3, act="relu")
            self.conv1_3 = conv_bn(32, 64, 3, act="relu")
            self.stem = [self.conv1_1, self.conv1_2, self.conv1_3]
        else:
            self.conv = conv_bn(3, 64, 7, stride=2, act="relu")
            self.stem = [self.conv]
        self.pool2d_max = nn.MaxPool2D(3, stride=2, padding=1)

        # PaddleClas registers blocks as flat "bb_<stage>_<index>" sublayers.
        self.blocks = []
        for stage, index, in_ch, width, out_ch, stride in stage_plan(
                STAGE_DEPTHS[layers], cardinality, width_per_group):
            block = Bottleneck(in_ch, width, out_ch, stride, cardinality, vd)
            self.blocks.append(self.add_sublayer(f"bb_{stage}_{index}", block))

        self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
        bound = 1.0 / math.sqrt(out_ch)
        self.out = nn.Linear(out_ch, num_classes, weight_attr=paddle.ParamAttr(
            initializer=nn.initializer.Uniform(-bound, bound)))

    def forward(self, x):
        for layer in self.stem:
            x = layer(x)
        x = self.pool2d_max(x)
        for block in self.blocks:
            x = block(x)
        return self.out(paddle.flatten(self.pool2d_avg(x), 1))


for _layers in STAGE_DEPTHS:
    for _cardinality in (32, 64):
        for _vd in (False, True):
            register_model(f"ResNeXt{_layers}{'_vd' if _vd else ''}_{_cardinality}x4d",
                           family="ResNeXt", builder=ResNeXt, layers=_layers,
                           cardinality=_cardinality, width_per_group=4, vd=_vd)
