"""DarkNet53 (Redmon & Farhadi, YOLOv3, 2018), as PaddleClas lays it out.

PaddleClas uses ReLU where the paper uses leaky ReLU; we follow PaddleClas,
whose weights we load. Sublayer names (``_basic_block_21``, ``_downsample_2``
...) mirror its state dict.
"""

from __future__ import annotations

from functools import partial

from paddle import nn

from edgekit.zoo.layers import ConvBN
from edgekit.zoo.registry import register_model


# PaddleClas's DarkNet names its pair `_conv` / `_bn`; every conv is followed by ReLU.
conv_bn_relu = partial(ConvBN, names=("_conv", "_bn"), act="relu")


class Residual(nn.Layer):
    """1x1 halves the channels, 3x3 restores them, plus identity."""

    def __init__(self, channels: int):
        super().__init__()
        self._conv1 = conv_bn_relu(channels, channels // 2, 1)
        self._conv2 = conv_bn_relu(channels // 2, channels, 3)

    def forward(self, x):
        return x + self._conv2(self._conv1(x))


class DarkNet(nn.Layer):
    def __init__(self, num_classes: int = 1000, depths: tuple[int, ...] = (1, 2, 8, 8, 4)):
        super().__init__()
        self._conv1 = conv_bn_relu(3, 32, 3)
        self._conv2 = conv_bn_relu(32, 64, 3, stride=2)
        # Stage s runs its residual blocks at 64 * 2**s channels, then (all but
        # the last stage) a stride-2 3x3 conv doubles the channels.
        self._trunk = []
        channels = 64
        for stage, depth in enumerate(depths):
            for block in range(depth):
                name = f"_basic_block_{stage}{block + 1}"
                self._trunk.append(self.add_sublayer(name, Residual(channels)))
            if stage < len(depths) - 1:
                downsample = conv_bn_relu(channels, 2 * channels, 3, stride=2)
                self._trunk.append(self.add_sublayer(f"_downsample_{stage}", downsample))
                channels *= 2
        self._pool = nn.AdaptiveAvgPool2D(1)
        self._out = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self._conv2(self._conv1(x))
        for layer in self._trunk:
            x = layer(x)
        return self._out(self._pool(x).flatten(start_axis=1))


register_model("DarkNet53", family="DarkNet", builder=DarkNet)
