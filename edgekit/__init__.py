"""edgekit: from a trained PaddleClas classifier to a validated, benchmarked edge artifact."""

__version__ = "0.1.0"

from edgekit.errors import EdgekitError  # noqa: E402

__all__ = ["EdgekitError", "__version__"]
