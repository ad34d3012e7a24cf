"""`edgekit recipes [NAME]`: list compression recipes, or show one."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from edgekit.cli.console import console, handle_errors, write_json


def register(app: typer.Typer) -> None:
    app.command("recipes")(recipes_cmd)


@handle_errors
def recipes_cmd(name: Optional[str] = typer.Argument(None, help="Show one recipe (name or YAML path)."),
                as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List compression recipes (for `edgekit build --recipe`), or show one with its parameters."""
    from edgekit import api

    recipes = [api.recipe(name)] if name else api.recipes()
    if as_json:
        write_json([r.to_manifest() | {"description": r.description} for r in recipes])
        return
    table = Table(title="edgekit recipes" if not name else f"recipe {recipes[0].name} ({recipes[0].source})")
    for col in ("recipe", "precision", "passes", "needs", "description"):
        table.add_column(col, no_wrap=col == "recipe")
    for r in recipes:
        passes = "; ".join(p.kind + (f"({', '.join(f'{k}={v}' for k, v in p.model_dump(mode='json').items())})"
                                     if name else "") for p in r.passes) or "—"
        table.add_row(r.name, r.precision, passes, "--calib" if r.needs_data else "—", r.description)
    console.print(table)
    if not name:
        console.print("Use: edgekit build MODEL --target T --recipe NAME [--calib DATA]; details: "
                      "edgekit recipes NAME", style="dim")
