"""The Python example app of a bundle: `predict.py` beside a copy of `edgekit/portable.py`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edgekit import portable


def write_python_app(app_dir: Path, runtime: str) -> None:
    """Write `predict.py` and `portable.py` into `app_dir` for a bundle of `runtime` (a portable.RUNTIMES name)."""
    template = resources.files("edgekit.apps").joinpath("predict_py.tmpl").read_text()
    install = portable.RUNTIMES[runtime][1]
    (app_dir / "predict.py").write_text(template.format(runtime=runtime, install=install))
    (app_dir / "portable.py").write_bytes(Path(portable.__file__).read_bytes())
