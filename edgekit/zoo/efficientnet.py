"""EfficientNet B0-B7 (Tan & Le, 2019, arXiv:1905.11946), as PaddleClas lays it out.

A stack of MBConv blocks (1x1 expand, depthwise conv, squeeze-excitation,
1x1 project) scaled in width and depth per variant. Sublayer names follow
PaddleClas 2.6.0 so that its checkpoints load unchanged; that is why each
conv sits a few `_conv` levels deep.
"""

from __future__ import annotations

import math
from functools import partial

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from edgekit.zoo.layers import ConvBN, Nested
from edgekit.zoo.registry import register_model

# One row per stage of the B0 baseline:
# (repeats, kernel, stride, expand ratio, in channels, out channels).
_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_SE_RATIO = 0.25  # of a block's input channels, not of its expanded width
_BN_MOMENTUM, _BN_EPSILON = 0.99, 1e-3  # TensorFlow's values, kept by the checkpoints


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale by `width`, round to a multiple of `divisor`, never losing over 10%."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def conv_padding(kernel: int, stride: int, mode: str, input_size: int):
    """Padding for a conv; `input_size` is its input at the design resolution.

    "same" is TensorFlow's SAME, fixed at build time for that resolution (as
    PaddleClas does). When SAME needs one pixel more at the bottom/right,
    PaddleClas pads `before + stride` on every side and crops the first output
    row and column; padding [before, before + stride] per axis gives the
    identical result at any input size, without the crop.
    "dynamic" is the symmetric padding PaddleClas uses for B0_small.
    """
    if mode == "dynamic":
        return (stride - 1 + kernel - 1) // 2
    remainder = input_size % stride
    total = max(kernel - (remainder or stride), 0)
    before, after = total // 2, total - total // 2
    if before == after:
        return before
    return [before, before + stride, before, before + stride]


# PaddleClas's ConvBNLayer holds its conv in a wrapper (`_conv._conv`) next to `_bn`.
conv_bn = partial(ConvBN, names=("_conv._conv", "_bn"), bn_momentum=_BN_MOMENTUM, bn_epsilon=_BN_EPSILON)


class SqueezeExcitation(nn.Layer):
    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        # Biased 1x1 convs, in PaddleClas's one-level holder (`_conv1._conv.weight`).
        self._conv1 = Nested(nn.Conv2D(channels, squeezed, 1))
        self._conv2 = Nested(nn.Conv2D(squeezed, channels, 1))

    def forward(self, x):
        gate = F.swish(self._conv1(F.adaptive_avg_pool2d(x, 1)))
        return x * F.sigmoid(self._conv2(gate))


class MBConv(nn.Layer):
    """Inverted residual: expand, depthwise, (SE), project, (+ input)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int,
                 padding: str, input_size: int, use_se: bool, drop_connect: float):
        super().__init__()
        hidden = in_channels * expand
        if expand != 1:
            self._ecn = Nested(conv_bn(in_channels, hidden, 1, act="swish"))
        depthwise_padding = conv_padding(kernel, stride, padding, input_size)
        self._dcn = Nested(conv_bn(hidden, hidden, kernel, stride, padding=depthwise_padding,
                                   groups=hidden, act="swish"))
        if use_se:
            self._se = SqueezeExcitation(hidden, max(1, int(in_channels * _SE_RATIO)))
        self._pcn = Nested(conv_bn(hidden, out_channels, 1))
        # PaddleClas adds the shortcut only to a stage's repeated blocks; the
        # first block of every stage changes the channel count anyway.
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_connect = drop_connect

    def forward(self, x):
        out = self._ecn(x) if hasattr(self, "_ecn") else x
        out = self._dcn(out)
        if hasattr(self, "_se"):
            out = self._se(out)
        out = self._pcn(out)
        if not self.residual:
            return out
        if self.training and self.drop_connect:
            # Stochastic depth: drop the whole branch per sample.
            keep = 1.0 - self.drop_connect
            mask = paddle.floor(keep + paddle.rand([out.shape[0], 1, 1, 1], dtype=out.dtype))
            out = out * mask / keep
        return out + x


class Features(nn.Layer):
    """Stem and MBConv stages (PaddleClas' `_ef`)."""

    def __init__(self, width: float, depth: float, image_size: int, padding: str, use_se: bool,
                 drop_connect_rate: float):
        super().__init__()
        stem_channels = round_channels(32, width)
        stem_padding = conv_padding(3, 2, padding, image_size)
        self._conv_stem = Nested(conv_bn(3, stem_channels, 3, 2, padding=stem_padding, act="swish"))
        size = math.ceil(image_size / 2)

        stages = [(math.ceil(depth * repeats), kernel, stride, expand,
                   round_channels(cin, width), round_channels(cout, width))
                  for repeats, kernel, stride, expand, cin, cout in _STAGES]
        total_blocks = sum(stage[0] for stage in stages)
        self.blocks = []
        for repeats, kernel, stride, expand, cin, cout in stages:
            for repeat in range(repeats):
                index = len(self.blocks)
                first = repeat == 0
                block = MBConv(cin if first else cout, cout, kernel, stride if first else 1, expand,
                               padding, size, use_se, drop_connect_rate * index / total_blocks)
                # PaddleClas' generated names: a stage's first block vs its repeats.
                name = f"_blocks.{index}." if first else f"block.{index}."
                self.blocks.append(self.add_sublayer(name, block))
            size = math.ceil(size / stride)
        self.out_channels = stages[-1][-1]

    def forward(self, x):
        x = self._conv_stem(x)
        for block in self.blocks:
            x = block(x)
        return x


class EfficientNet(nn.Layer):
    """`image_size` is the design resolution that fixes the static SAME padding."""

    def __init__(self, width: float, depth: float, image_size: int, dropout: float,
                 padding: str = "same", use_se: bool = True, drop_connect_rate: float = 0.2,
                 num_classes: int = 1000):
        super().__init__()
        self._ef = Features(width, depth, image_size, padding, use_se, drop_connect_rate)
        head_channels = round_channels(1280, width)
        self._conv = conv_bn(self._ef.out_channels, head_channels, 1, act="swish")
        self._pool = nn.AdaptiveAvgPool2D(1)
        self._drop = nn.Dropout(dropout)
        self._fc = nn.Linear(head_channels, num_classes)

    def forward(self, x):
        x = self._pool(self._conv(self._ef(x)))
        return self._fc(self._drop(paddle.flatten(x, start_axis=1)))


# name -> (width, depth, design resolution, dropout)
_VARIANTS = {
    "EfficientNetB0": (1.0, 1.0, 224, 0.2),
    "EfficientNetB1": (1.0, 1.1, 240, 0.2),
    "EfficientNetB2": (1.1, 1.2, 260, 0.3),
    "EfficientNetB3": (1.2, 1.4, 300, 0.3),
    "EfficientNetB4": (1.4, 1.8, 380, 0.4),
    "EfficientNetB5": (1.6, 2.2, 456, 0.4),
    "EfficientNetB6": (1.8, 2.6, 528, 0.5),
    "EfficientNetB7": (2.0, 3.1, 600, 0.5),
}
for _name, (_width, _depth, _size, _dropout) in _VARIANTS.items():
    register_model(_name, family="EfficientNet", builder=EfficientNet,
                   width=_width, depth=_depth, image_size=_size, dropout=_dropout)
# B0 without squeeze-excitation, with symmetric padding (faster on devices).
register_model("EfficientNetB0_small", family="EfficientNet", builder=EfficientNet,
               width=1.0, depth=1.0, image_size=224, dropout=0.2, padding="dynamic", use_se=False)
