"""Targets: what each runtime needs, as data (targets/*.yaml) plus one adapter per runtime.

    from edgekit.targets import get_target, adapter_of
    target = get_target("arm-lite")          # options, precisions, parity tolerances
    adapter = adapter_of(manifest)           # how edgekit converts, quantizes, runs and ships for that runtime
"""

from edgekit.targets.base import RuntimeAdapter, adapter_for, adapter_of, source_adapter
from edgekit.targets.spec import OptionSpec, Target, Tolerance, get_target, list_targets

__all__ = ["Target", "OptionSpec", "Tolerance", "get_target", "list_targets", "RuntimeAdapter", "adapter_for",
           "adapter_of", "source_adapter"]
