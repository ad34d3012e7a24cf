"""ResNet (He et al. 2015) with PaddleClas's "vb", "vc" and "vd" refinements.

vb: stride on the 3x3 convolution of a bottleneck (ResNet-B).
vc: vb plus a deep stem of three 3x3 convolutions (ResNet-C).
vd: vc plus a 2x2 average pool before each downsampling shortcut (ResNet-D,
    Bag of Tricks, https://arxiv.org/abs/1812.01187).

Parameter names mirror PaddleClas 2.6.0 so its `.pdparams` load unchanged.
ResNet50_vc comes from an older PaddleClas module with a different naming
(`conv1_1`, `bb_0_0`, `_conv`, `_batch_norm`, `out`), so it has its own small
network class; both networks share the residual blocks.
"""

from __future__ import annotations

import math
from functools import partial

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from edgekit.zoo.layers import ConvBN
from edgekit.zoo.registry import register_model

# depth -> (block kind, blocks per stage)
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 12, 48, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)
STEM_WIDTH = 64


# The two PaddleClas modules name the same conv/BN pair differently.
conv_bn = partial(ConvBN, names=("conv", "bn"))
legacy_conv_bn = partial(ConvBN, names=("_conv", "_batch_norm"))  # ResNet_vc's model_zoo module


class _ResidualBlock(nn.Layer):
    """Shared shortcut handling: identity, or a 1x1 projection `short`.

    With `avg_down` (ResNet-D) the projection sees a 2x2 average pool instead of
    striding, so it no longer skips three quarters of its input.
    """

    def _make_shortcut(self, conv_bn, in_ch: int, out_ch: int, stride: int, project: bool, avg_down: bool):
        self.pool = self.short = None
        if not project:
            return
        if avg_down:
            # PaddleClas pools with "SAME" padding and ceil mode, which only
            # matters for odd feature-map sizes.
            self.pool = nn.AvgPool2D(2, stride=stride, padding="SAME", ceil_mode=True)
            stride = 1
        self.short = conv_bn(in_ch, out_ch, 1, stride)

    def _shortcut(self, x):
        if self.short is None:
            return x
        return self.short(x if self.pool is None else self.pool(x))


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions (ResNet18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int, project: bool, avg_down: bool = False,
                 conv_bn=conv_bn):
        super().__init__()
        self.conv0 = conv_bn(in_ch, width, 3, stride, act="relu")
        self.conv1 = conv_bn(width, width, 3)
        self._make_shortcut(conv_bn, in_ch, width, stride, project, avg_down)

    def forward(self, x):
        return F.relu(self.conv1(self.conv0(x)) + self._shortcut(x))


class BottleneckBlock(_ResidualBlock):
    """1x1 reduce, 3x3 (strided, ResNet-B), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, project: bool, avg_down: bool = False,
                 conv_bn=conv_bn):
        super().__init__()
        self.conv0 = conv_bn(in_ch, width, 1, act="relu")
        self.conv1 = conv_bn(width, width, 3, stride, act="relu")
        self.conv2 = conv_bn(width, width * 4, 1)
        self._make_shortcut(conv_bn, in_ch, width * 4, stride, project, avg_down)

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(self.conv0(x))) + self._shortcut(x))


_BLOCKS = {"basic": BasicBlock, "bottleneck": BottleneckBlock}


def _block_plan(depth: int):
    """Yield (stage, index, block class, in channels, width, stride) per block.

    The first block of every stage projects its shortcut, stage 0 included
    (PaddleClas does so even for ResNet18/34, where channels already match).
    """
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
    kind, counts = DEPTHS[depth]
    block = _BLOCKS[kind]
    in_ch = STEM_WIDTH
    for stage, (count, width) in enumerate(zip(counts, STAGE_WIDTHS)):
        for index in range(count):
            # Stage 0 follows the stem's max pool, so it keeps resolution.
            stride = 2 if index == 0 and stage > 0 else 1
            yield stage, index, block, in_ch, width, stride
            in_ch = width * block.expansion


def _classifier(in_features: int, num_classes: int) -> nn.Linear:
    bound = 1.0 / math.sqrt(in_features)  # PaddleClas's initialisation, for fine-tuning parity
    return nn.Linear(in_features, num_classes,
                     weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound)))


class ResNet(nn.Layer):
    """PaddleClas's ResNet and ResNet_vd (`variant` "vb" or "vd")."""

    def __init__(self, num_classes: int = 1000, depth: int = 50, variant: str = "vb"):
        super().__init__()
        if variant not in ("vb", "vd"):
            raise ValueError(f"ResNet variant must be 'vb' or 'vd', got {variant!r}")
        if variant == "vd":
            self.stem = nn.Sequential(
                conv_bn(3, 32, 3, 2, act="relu"),
                conv_bn(32, 32, 3, 1, act="relu"),
                conv_bn(32, STEM_WIDTH, 3, 1, act="relu"),
            )
        else:
            self.stem = nn.Sequential(conv_bn(3, STEM_WIDTH, 7, 2, act="relu"))
        self.max_pool = nn.MaxPool2D(3, stride=2, padding=1)
        blocks = []
        for stage, index, block, in_ch, width, stride in _block_plan(depth):
            blocks.append(block(in_ch, width, stride, project=index == 0,
                                avg_down=variant == "vd" and stride > 1))
        self.blocks = nn.Sequential(*blocks)
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.fc = _classifier(STAGE_WIDTHS[-1] * block.expansion, num_classes)

    def forward(self, x):
        x = self.blocks(self.max_pool(self.stem(x)))
        return self.fc(paddle.flatten(self.avg_pool(x), 1))


class ResNetVC(nn.Layer):
    """PaddleClas's ResNet_vc: deep stem, plain strided shortcuts, legacy names."""

    def __init__(self, num_classes: int = 1000, depth: int = 50):
        super().__init__()
        self.conv1_1 = legacy_conv_bn(3, 32, 3, 2, act="relu")
        self.conv1_2 = legacy_conv_bn(32, 32, 3, 1, act="relu")
        self.conv1_3 = legacy_conv_bn(32, STEM_WIDTH, 3, 1, act="relu")
        self.max_pool = nn.MaxPool2D(3, stride=2, padding=1)
        self.block_list = []
        for stage, index, block, in_ch, width, stride in _block_plan(depth):
            layer = block(in_ch, width, stride, project=index == 0, conv_bn=legacy_conv_bn)
            # The checkpoint names blocks `bb_<stage>_<index>` at the top level.
            self.block_list.append(self.add_sublayer(f"bb_{stage}_{index}", layer))
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.out = _classifier(STAGE_WIDTHS[-1] * block.expansion, num_classes)

    def forward(self, x):
        x = self.max_pool(self.conv1_3(self.conv1_2(self.conv1_1(x))))
        for layer in self.block_list:
            x = layer(x)
        return self.out(paddle.flatten(self.avg_pool(x), 1))


def _resnet(name: str, depth: int, variant: str, weights_of: str | None = None) -> None:
    register_model(name, family="ResNet", builder=ResNet, paddleclas_name=weights_of,
                   depth=depth, variant=variant)


# _ssld (distilled) and Fix_ (fine-tuned at 320px) checkpoints reuse their base network.
_resnet("ResNet18", 18, "vb")
_resnet("ResNet18_vd", 18, "vd")
_resnet("ResNet34", 34, "vb")
_resnet("ResNet34_vd", 34, "vd")
_resnet("ResNet34_vd_ssld", 34, "vd", weights_of="ResNet34_vd")
_resnet("ResNet50", 50, "vb")
register_model("ResNet50_vc", family="ResNet", builder=ResNetVC, depth=50)
_resnet("ResNet50_vd", 50, "vd")
_resnet("ResNet101", 101, "vb")
_resnet("ResNet101_vd", 101, "vd")
_resnet("ResNet152", 152, "vb")
_resnet("ResNet152_vd", 152, "vd")
_resnet("ResNet200_vd", 200, "vd")
_resnet("ResNet50_vd_ssld", 50, "vd", weights_of="ResNet50_vd")
_resnet("Fix_ResNet50_vd_ssld", 50, "vd", weights_of="ResNet50_vd")
_resnet("ResNet101_vd_ssld", 101, "vd", weights_of="ResNet101_vd")
