"""`edgekit cache ls` and `edgekit cache prune`: the build cache (bundles reused by build and matrix)."""

from __future__ import annotations

import re
from typing import Optional

import typer
from rich.table import Table

from edgekit.cli.console import console, handle_errors, write_json
from edgekit.errors import EdgekitError

cache_app = typer.Typer(no_args_is_help=True, help="The build cache: bundles `edgekit build` and `edgekit matrix` "
                                                   "reuse when every input matches.")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")


def _size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", text.upper())
    if not match:
        raise EdgekitError(f"--max-size {text!r}: expected a size such as 500M, 2G or 1.5T.")
    return int(float(match[1]) * 1024 ** " KMGT".index(match[2] or " "))


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f}"


@cache_app.command("ls")
@handle_errors
def cache_ls(as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON.")) -> None:
    """List cached builds, most recently used first."""
    from edgekit import api

    entries = api.cache_entries()
    if as_json:
        write_json([e.to_dict() for e in entries])
        return
    table = Table(title=f"build cache {api.cache_location()}: {len(entries)} entries, "
                        f"{_mb(sum(e.size for e in entries))} MB")
    for col in ("key", "model", "target", "recipe", "MB", "built", "build s", "last used"):
        table.add_column(col, justify="right" if col in ("MB", "build s") else "left")
    for e in entries:
        d = e.to_dict()
        table.add_row(e.key[:12], e.model, e.target, e.recipe, _mb(e.size), e.created or "—",
                      f"{e.build_seconds:.1f}", d["last_used"])
    console.print(table)
    if entries:
        console.print("next: edgekit cache prune --older-than 30 (or --max-size 5G, --all)", style="dim")


@cache_app.command("prune")
@handle_errors
def cache_prune(older_than: Optional[float] = typer.Option(None, min=0, metavar="DAYS",
                                                           help="Remove entries unused for this many days."),
                max_size: Optional[str] = typer.Option(None, help="Keep at most this much (e.g. 5G), the most "
                                                                  "recently used first."),
                everything: bool = typer.Option(False, "--all", help="Remove every entry."),
                dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; remove nothing."),
                as_json: bool = typer.Option(False, "--json", help="Print what was removed as JSON.")) -> None:
    """Remove cached builds by age, by total size, or all (interrupted entries always go)."""
    from edgekit import api

    if older_than is None and max_size is None and not everything:
        raise EdgekitError("Say what to prune: --older-than DAYS, --max-size SIZE (e.g. 5G) or --all "
                           "(`edgekit cache ls` shows the entries).")
    result = api.prune_cache(older_than_days=older_than, max_size=_size(max_size) if max_size else None,
                             everything=everything, dry_run=dry_run)
    if as_json:
        write_json({**result.to_dict(), "dry_run": dry_run})
        return
    verb = "would remove" if dry_run else "removed"
    for e in result.removed:
        console.print(f"{verb} {e.key[:12]} {e.model} {e.target} {e.recipe} ({_mb(e.size)} MB)", highlight=False)
    console.print(f"{verb} {len(result.removed)} entries ({_mb(result.freed)} MB); {len(result.kept)} kept"
                  + (f"; {result.partial_removed} interrupted entries cleaned" if result.partial_removed else ""))
