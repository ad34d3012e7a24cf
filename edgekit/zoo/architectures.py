"""Imports every architecture module so their models register themselves."""

from edgekit.zoo import (  # noqa: F401
    alexnet,
    darknet,
    efficientnet,
    resnest,
    resnet,
    resnext,
    resnext_wsl,
    senet,
    squeezenet,
)
