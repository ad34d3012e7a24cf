"""FLOPs per image of a bundle's network at the bundle's own input size (edgekit's count, not the card's)."""

from __future__ import annotations

from functools import lru_cache

from edgekit.zoo.counts import FLOPS_CONVENTION


@lru_cache(maxsize=32)
def flops_per_image(model: str, num_classes: int, input_size: int) -> tuple[float, str]:
    """(GFLOPs per image, where the figure comes from).

    The card's computed figure is exact for 1000 classes at the crop size; any
    other size or head is counted on edgekit's network (a second or so).
    """
    from edgekit.zoo.cards import get_card

    card = get_card(model)
    where = f"computed by edgekit at {input_size}x{input_size}, {num_classes} classes ({FLOPS_CONVENTION.split(',')[0]})"
    if input_size == card.crop_size and num_classes == 1000 and card.computed_flops_g:
        return card.computed_flops_g, where + "; model card"
    import paddle

    from edgekit.zoo import create_model
    from edgekit.zoo.counts import count_flops

    with paddle.utils.unique_name.guard():
        network = create_model(model, num_classes=num_classes)
    return count_flops(network, input_size) / 1e9, where
