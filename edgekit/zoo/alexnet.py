"""AlexNet (Krizhevsky et al., 2012), as PaddleClas lays it out.

Sublayer names (``_conv1._conv``, ``_fc6`` ...) follow PaddleClas so its
``.pdparams`` load unchanged.
"""

from __future__ import annotations

import paddle
from paddle import nn

from edgekit.zoo.registry import register_model


class ConvReLUPool(nn.Layer):
    """Conv -> ReLU -> 3x3/2 max pool: the three pooled stages of AlexNet."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self._pool = nn.MaxPool2D(kernel_size=3, stride=2)

    def forward(self, x):
        return self._pool(nn.functional.relu(self._conv(x)))


class AlexNet(nn.Layer):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self._conv1 = ConvReLUPool(3, 64, 11, stride=4, padding=2)
        self._conv2 = ConvReLUPool(64, 192, 5, stride=1, padding=2)
        self._conv3 = nn.Conv2D(192, 384, 3, padding=1)
        self._conv4 = nn.Conv2D(384, 256, 3, padding=1)
        self._conv5 = ConvReLUPool(256, 256, 3, stride=1, padding=1)
        # "downscale_in_infer": the trained weights expect activations scaled
        # by (1 - p) at inference, so eval-mode dropout is not the identity.
        self._drop1 = nn.Dropout(dropout, mode="downscale_in_infer")
        self._fc6 = nn.Linear(256 * 6 * 6, 4096)
        self._drop2 = nn.Dropout(dropout, mode="downscale_in_infer")
        self._fc7 = nn.Linear(4096, 4096)
        self._fc8 = nn.Linear(4096, num_classes)

    def forward(self, x):
        relu = nn.functional.relu
        x = self._conv2(self._conv1(x))
        x = self._conv5(relu(self._conv4(relu(self._conv3(x)))))
        # No adaptive pool: the classifier is tied to a 224x224 input (6x6 maps).
        x = paddle.flatten(x, start_axis=1)
        x = relu(self._fc6(self._drop1(x)))
        x = relu(self._fc7(self._drop2(x)))
        return self._fc8(x)


register_model("AlexNet", family="AlexNet", builder=AlexNet)
