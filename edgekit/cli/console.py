"""Terminal output shared by every command: the two consoles, the one error handler, number formatting."""

from __future__ import annotations

import functools
import json
import sys

import typer
from rich.console import Console
from rich.markup import escape

from edgekit.errors import EdgekitError

# Piped output is not squeezed into 80 columns; a terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def handle_errors(command):
    """Turn an EdgekitError raised anywhere in `command` into a red `error:` paragraph and its exit code.

    Every command is wrapped in this, so bad input reads the same everywhere and never shows a traceback.
    Apply it under the Typer decorator (`@app.command()` first, `@handle_errors` next): functools.wraps keeps
    the signature Typer reads the options from.
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgekitError as exc:
            # The message is plain text: `pip install 'edgekit[ray]'` must not be read as rich markup.
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code)

    return run


def fmt(value, digits: int = 3) -> str:
    """A float to `digits` places, anything else as text, None as a dash."""
    return "—" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def pct(value) -> str:
    """A fraction as a percentage with two decimals, None as a dash."""
    return "—" if value is None else f"{100 * value:.2f}%"


def write_json(value, ensure_ascii: bool = True) -> None:
    """What --json prints: `value` as indented JSON on stdout, one trailing newline."""
    json.dump(value, sys.stdout, indent=1, ensure_ascii=ensure_ascii)
    sys.stdout.write("\n")
