"""The Python example app of a bundle: `predict.py` beside copies of `edgekit/portable.py` and `openers.py`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edgekit import openers, portable


def write_python_app(app_dir: Path, runtime: str) -> None:
    """Write `predict.py`, `portable.py` and `openers.py` into `app_dir` for a bundle of `runtime` (an
    openers.RUNTIMES name)."""
    template = resources.files("edgekit.apps").joinpath("predict_py.tmpl").read_text()
    install = openers.RUNTIMES[runtime][1]
    (app_dir / "predict.py").write_text(template.format(runtime=runtime, install=install))
    for module in (portable, openers):
        (app_dir / Path(module.__file__).name).write_bytes(Path(module.__file__).read_bytes())
