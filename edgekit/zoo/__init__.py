"""The model zoo: every PaddleClas model named in the seed pages, by exact name."""

from edgekit.zoo.registry import create_model, get_entry, list_families, list_models

__all__ = ["create_model", "get_entry", "list_families", "list_models"]
