"""`edgekit matrix plan.yaml`: a models x targets x recipes x devices sweep, with records and a report."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from edgekit.cli.console import console, err_console, handle_errors, write_json


def register(app: typer.Typer) -> None:
    app.command("matrix")(matrix)


def _say(line: str) -> None:
    err_console.print(line, highlight=False, markup=False)


def _dry_run(plan, as_json: bool, out: str | None) -> None:
    if as_json:
        write_json(plan.to_dict())
        return
    table = Table(title=f"{plan.name}: {len(plan.cells)} cells ({len(plan.builds)} builds x {len(plan.devices)} "
                        f"device(s)), out {plan.out}")
    for col in ("cell", "model", "target", "recipe", "device", "runs"):
        table.add_column(col)
    for cell in plan.cells:
        if cell.build.skipped:
            runs = f"[yellow]skipped:[/] {escape(cell.build.skipped)}"
        else:
            parts = ["build"] + [f"{stage}" if not why else f"[dim]no {stage} ({escape(why)})[/]"
                                 for stage, why in (("validate", cell.validate_skipped), ("bench", cell.bench_skipped))]
            runs = ", ".join(parts)
        table.add_row(cell.id, cell.build.model, cell.build.target, cell.build.recipe, cell.device.name, runs)
    console.print(table)
    for warning in plan.warnings:
        err_console.print(f"[bold yellow]WARNING:[/] {escape(warning)}", highlight=False)
    console.print(f"next: edgekit matrix {plan.source}" + (f" --out {out}" if out else ""), style="dim", markup=False)


@handle_errors
def matrix(plan_file: str = typer.Argument(..., metavar="PLAN", help="The matrix file (plan.yaml)."),
           out: Optional[str] = typer.Option(None, help="Records, bundles and report [default: the plan's "
                                                        "`out:`, else <plan>-out beside it]."),
           ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS",
                                             help="Run cells as tasks on the Ray cluster at ADDRESS (HOST:PORT); "
                                                  "devices are its resources device:NAME. Needs edgekit[ray]."),
           jobs: Optional[int] = typer.Option(None, min=1, help="Local build processes [default: one per core]."),
           no_cache: bool = typer.Option(False, "--no-cache", help="Build every bundle afresh (the cache is "
                                                                  "neither read nor written)."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Print the cells (and why any are skipped); "
                                                                 "build nothing."),
           as_json: bool = typer.Option(False, "--json", help="Print the result (or, with --dry-run, the cells) "
                                                              "as JSON.")) -> None:
    """Build, validate and bench every model x target x recipe on every device of a plan file, then report."""
    from edgekit import api

    plan = api.matrix_plan(plan_file, out=out, use_cache=False if no_cache else None)
    if dry_run:
        _dry_run(plan, as_json, out)
        return
    for warning in plan.warnings:
        err_console.print(f"[bold yellow]WARNING:[/] {escape(warning)}", highlight=False)
    result = api.matrix(plan, ray=ray, jobs=jobs, progress=_say)
    if as_json:
        write_json(result.to_dict())
    else:
        table = Table(title=f"{plan.name}: {result.count('ok')} ok, {result.count('failed')} failed, "
                            f"{result.count('skipped')} skipped ({result.seconds:.0f} s)")
        for col in ("cell", "status", "top-1", "agree", "median ms", "build"):
            table.add_column(col, justify="right" if col in ("top-1", "agree", "median ms") else "left")
        for r in result.records:
            v = r.get("validation") or {}
            bench = ((r.get("bench") or {}).get("records") or [{}])[0]
            cache = (r.get("build") or {}).get("cache") or {}
            status = {"ok": "ok", "failed": "[red]failed[/]", "skipped": "[yellow]skipped[/]"}[r["status"]]
            table.add_row(r["id"], status, _f(v.get("top1")), _f((v.get("reference") or {}).get("agreement")),
                          _f(bench.get("median_ms"), 2), "cached" if cache.get("hit") else
                          ("" if r["status"] != "ok" else f"{r['build'].get('seconds', 0):.0f} s"))
        console.print(table)
        console.print(f"report: {result.report_md} and {result.report_html}")
    if result.failed:
        err_console.print(f"[bold red]{len(result.failed)} cell(s) failed[/] (reasons in {result.report_md}); fix "
                          f"the cause and re-run `edgekit matrix {plan_file}`: finished cells are kept, failed ones "
                          "run again.", highlight=False)
        raise typer.Exit(1)


def _f(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
