"""SENet154_vd: SE-ResNeXt-152 64x4d with the ResNet-D tweaks, as PaddleClas builds it.

"vd" means a three-conv 3x3 stem and projection shortcuts that average-pool
before a stride-1 1x1 conv (Bag of Tricks, He et al., 2019); every bottleneck
ends in a squeeze-and-excitation gate (Hu et al., 2018). Sublayer names
(``conv1_1``, ``bb_2_5.scale.squeeze`` ...) mirror the PaddleClas state dict.
"""

from __future__ import annotations

from functools import partial

from paddle import nn

from edgekit.zoo.layers import ConvBN
from edgekit.zoo.registry import register_model


# PaddleClas's SENet names its pair `_conv` / `_batch_norm`.
conv_bn = partial(ConvBN, names=("_conv", "_batch_norm"))


class SqueezeExcitation(nn.Layer):
    """Rescale each channel by a gate computed from the globally pooled features."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = channels // reduction
        self.squeeze = nn.Linear(channels, hidden)
        self.excitation = nn.Linear(hidden, channels)

    def forward(self, x):
        gate = x.mean(axis=[2, 3])
        gate = nn.functional.sigmoid(self.excitation(nn.functional.relu(self.squeeze(gate))))
        return x * gate.unsqueeze([2, 3])


class SEBottleneck(nn.Layer):
    """1x1 -> grouped 3x3 (carries the stride) -> 1x1 -> SE, plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, width: int, stride: int, cardinality: int, reduction: int,
                 project: bool, avg_down: bool):
        super().__init__()
        self.conv0 = conv_bn(in_channels, width, 1, act="relu")
        self.conv1 = conv_bn(width, width, 3, stride=stride, groups=cardinality, act="relu")
        self.conv2 = conv_bn(width, width, 1)
        self.scale = SqueezeExcitation(width, reduction)
        # The stride lives in the average pool, so the 1x1 projection sees every pixel.
        self.short = conv_bn(in_channels, width, 1, avg_down=avg_down) if project else None

    def forward(self, x):
        shortcut = x if self.short is None else self.short(x)
        y = self.scale(self.conv2(self.conv1(self.conv0(x))))
        return nn.functional.relu(y + shortcut)


class SENetVD(nn.Layer):
    def __init__(self, num_classes: int = 1000, depths: tuple[int, ...] = (3, 8, 36, 3),
                 cardinality: int = 64, widths: tuple[int, ...] = (256, 512, 1024, 2048),
                 reduction: int = 16):
        super().__init__()
        self.conv1_1 = conv_bn(3, 64, 3, stride=2, act="relu")
        self.conv1_2 = conv_bn(64, 64, 3, act="relu")
        self.conv1_3 = conv_bn(64, 128, 3, act="relu")
        self.pool2d_max = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.block_list = []
        channels = 128
        for stage, (depth, width) in enumerate(zip(depths, widths)):
            for index in range(depth):
                first = index == 0
                block = SEBottleneck(
                    channels, width, stride=2 if first and stage > 0 else 1, cardinality=cardinality,
                    reduction=reduction, project=first, avg_down=stage > 0)
                self.block_list.append(self.add_sublayer(f"bb_{stage}_{index}", block))
                channels = width
        self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
        self.out = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.pool2d_max(self.conv1_3(self.conv1_2(self.conv1_1(x))))
        for block in self.block_list:
            x = block(x)
        return self.out(self.pool2d_avg(x).flatten(start_axis=1))


register_model("SENet154_vd", family="SENet", builder=SENetVD)
