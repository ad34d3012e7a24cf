"""Parameter and FLOP counts of a built network.

Convention (stated in every card): FLOPs = 2 x multiply-accumulates of the
convolution and fully-connected layers for one image at the card's crop size;
BatchNorm, activations, pooling and element-wise ops are not counted. This
matches how the PaddleClas seed pages count (about two FLOPs per MAC).
Parameters are the trainable ones: BatchNorm running statistics are excluded.
"""

from __future__ import annotations

import math

FLOPS_CONVENTION = "2 x MACs of conv + linear layers, batch 1, at the card's crop size"
PARAMS_CONVENTION = "trainable parameters (BatchNorm running statistics excluded)"


def count_trainable_params(model) -> int:
    return sum(int(math.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


def count_flops(model, input_size: int) -> int:
    """Run one forward pass at `input_size` and sum 2 x MACs of conv/linear layers."""
    import paddle
    from paddle import nn

    macs = 0

    def conv_hook(layer, inputs, output):
        nonlocal macs
        kh, kw = layer.weight.shape[2:]
        in_per_group = layer.weight.shape[1]
        macs += int(math.prod(output.shape)) * in_per_group * kh * kw

    def linear_hook(layer, inputs, output):
        nonlocal macs
        macs += int(math.prod(output.shape)) * layer.weight.shape[0]

    handles = []
    for layer in model.sublayers():
        if isinstance(layer, nn.Conv2D):
            handles.append(layer.register_forward_post_hook(conv_hook))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_post_hook(linear_hook))
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros([1, 3, input_size, input_size], dtype="float32"))
    finally:
        for handle in handles:
            handle.remove()
    return 2 * macs


def measure(name: str, input_size: int) -> dict:
    """Params (M) and FLOPs (G) of zoo model `name` as built by edgekit."""
    import paddle

    from edgekit.zoo.registry import create_model

    with paddle.utils.unique_name.guard():
        model = create_model(name)
    return {
        "params_m": round(count_trainable_params(model) / 1e6, 4),
        "flops_g": round(count_flops(model, input_size) / 1e9, 4),
        "input_size": input_size,
    }
