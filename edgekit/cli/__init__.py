"""The `edgekit` command: each command parses, calls one edgekit.api function, prints.

One module per command group; each has `register(app)`. Shared pieces: `console` (the consoles, the one
EdgekitError handler, formatting) and `options` (KEY=VALUE parsing, the device flags).
"""

from __future__ import annotations

import os
import warnings
from typing import Optional

import typer

from edgekit import __version__

# Import-time noise from paddle's extension utilities and setuptools, not actionable for users.
warnings.filterwarnings("ignore", message="No ccache found")
warnings.filterwarnings("ignore", message="Setuptools is replacing distutils")
os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's executor INFO lines

from edgekit.cli import bench, build, cache, demo, matrix, recipes, toolchain, validate, zoo  # noqa: E402
from edgekit.cli.console import console  # noqa: E402

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="edgekit: PaddleClas classifiers to edge artifacts, validated and benchmarked.")


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Optional[bool] = typer.Option(None, "--version", callback=_version_callback,
                                                 is_eager=True, help="Print the version and exit.")) -> None:
    pass


# `edgekit --help` lists commands in registration order, then groups (zoo, toolchain, cache) in theirs.
for _module in (zoo, toolchain, build, validate, bench, matrix, recipes, demo, cache):
    _module.register(app)
del _module
