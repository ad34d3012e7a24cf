"""SqueezeNet 1.0 / 1.1 (Iandola et al., 2016), as PaddleClas lays it out.

Both versions stack the same eight Fire modules (``_conv1`` .. ``_conv8``);
they differ only in the stem and in where the stride-2 max pools sit.
"""

from __future__ import annotations

import paddle
from paddle import nn

from edgekit.zoo.registry import register_model

# (squeeze, expand) channels of fire2 .. fire9; each expand is used twice
# (1x1 and 3x3 paths), so a Fire module outputs 2 * expand channels.
_FIRE_CHANNELS = [(16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256)]

# version -> (stem kernel, stem padding, stem channels, Fire indices followed by a max pool)
_VERSIONS = {
    "1.0": (7, 0, 96, (2, 6)),
    "1.1": (3, 1, 64, (1, 3)),
}


class ConvReLU(nn.Layer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0):
        super().__init__()
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size, padding=padding)

    def forward(self, x):
        return nn.functional.relu(self._conv(x))


class Fire(nn.Layer):
    """1x1 squeeze, then parallel 1x1 and 3x3 expands, concatenated on channels."""

    def __init__(self, in_channels: int, squeeze: int, expand: int):
        super().__init__()
        self._conv = ConvReLU(in_channels, squeeze, 1)
        self._conv_path1 = ConvReLU(squeeze, expand, 1)
        self._conv_path2 = ConvReLU(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = self._conv(x)
        return paddle.concat([self._conv_path1(x), self._conv_path2(x)], axis=1)


class SqueezeNet(nn.Layer):
    def __init__(self, version: str, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        kernel, padding, channels, self._pool_after = _VERSIONS[version]
        self._conv = nn.Conv2D(3, channels, kernel, stride=2, padding=padding)
        self._pool = nn.MaxPool2D(kernel_size=3, stride=2)
        self._fires = []
        for index, (squeeze, expand) in enumerate(_FIRE_CHANNELS):
            self._fires.append(self.add_sublayer(f"_conv{index + 1}", Fire(channels, squeeze, expand)))
            channels = 2 * expand
        # Eval-mode output is scaled by (1 - p), as the trained weights expect.
        self._drop = nn.Dropout(dropout, mode="downscale_in_infer")
        # The classifier is a 1x1 conv (conv10) followed by global average pooling.
        self._conv9 = nn.Conv2D(channels, num_classes, 1)
        self._avg_pool = nn.AdaptiveAvgPool2D(1)

    def forward(self, x):
        x = self._pool(nn.functional.relu(self._conv(x)))
        for index, fire in enumerate(self._fires):
            x = fire(x)
            if index in self._pool_after:
                x = self._pool(x)
        x = nn.functional.relu(self._conv9(self._drop(x)))
        return paddle.flatten(self._avg_pool(x), start_axis=1)


register_model("SqueezeNet1_0", family="SqueezeNet", builder=SqueezeNet, version="1.0")
register_model("SqueezeNet1_1", family="SqueezeNet", builder=SqueezeNet, version="1.1")
