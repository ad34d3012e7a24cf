"""Building blocks shared by the zoo families.

PaddleClas gives the same conv + BatchNorm pair different attribute names in
different modules (``conv``/``bn``, ``_conv``/``_batch_norm``, ``_conv``/``_bn``,
and ``_conv._conv``/``_bn`` where the conv sits inside a holder). Those names are
the state-dict keys its ``.pdparams`` use, so `ConvBN` takes them as an argument
instead of each family keeping its own copy of the layer.
"""

from __future__ import annotations

import paddle.nn as nn
import paddle.nn.functional as F

_ACTIVATIONS = {None: None, "relu": F.relu, "swish": F.swish}


class Nested(nn.Layer):
    """Runs `layer`, held one level down under `name`.

    PaddleClas wraps some layers in single-child holders; the holder only adds
    a level to the parameter names, so mirroring it keeps checkpoints loadable.
    """

    def __init__(self, layer: nn.Layer, name: str = "_conv"):
        super().__init__()
        self.add_sublayer(name, layer)
        self._inner_name = name

    def forward(self, x):
        # Looked up by name, so a pass that swaps the sublayer (quantization) is honoured.
        return getattr(self, self._inner_name)(x)


class ConvBN(nn.Layer):
    """Bias-free conv -> BatchNorm (-> activation), optionally after a 2x2 average pool.

    names: the (conv, norm) attribute names PaddleClas uses in this family; a
        dotted conv name ("_conv._conv") nests the conv in `Nested` holders.
    padding: defaults to (kernel_size - 1) // 2, i.e. 'same' for odd kernels at
        stride 1; pass an int or a [top, bottom, left, right] list to override.
    act: None, "relu" or "swish", applied after the BatchNorm.
    avg_down: a 2x2/2 average pool (ceil mode, so odd maps keep their last
        row/column) before the conv, as the ResNet-D projection shortcut does.
    bn_momentum, bn_epsilon: paddle's defaults unless a family's checkpoints
        were trained with other values.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *,
                 names: tuple[str, str], padding=None, groups: int = 1, act: str | None = None,
                 avg_down: bool = False, bn_momentum: float = 0.9, bn_epsilon: float = 1e-5):
        super().__init__()
        if act not in _ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(a for a in _ACTIVATIONS if a)} or None, got {act!r}")
        conv_name, norm_name = names
        self._avg_down = nn.AvgPool2D(2, stride=2, ceil_mode=True) if avg_down else None
        if padding is None:
            padding = (kernel_size - 1) // 2
        conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         groups=groups, bias_attr=False)  # the BatchNorm carries the shift
        *holders, conv_leaf = conv_name.split(".")
        for holder in reversed(holders):
            conv, conv_leaf = Nested(conv, conv_leaf), holder
        self.add_sublayer(conv_leaf, conv)
        self.add_sublayer(norm_name, nn.BatchNorm2D(out_channels, momentum=bn_momentum, epsilon=bn_epsilon))
        self._conv_name, self._norm_name = conv_leaf, norm_name
        self._activation = _ACTIVATIONS[act]

    def forward(self, x):
        if self._avg_down is not None:
            x = self._avg_down(x)
        x = getattr(self, self._norm_name)(getattr(self, self._conv_name)(x))
        return x if self._activation is None else self._activation(x)
