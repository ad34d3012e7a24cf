"""`edgekit demo [--out DIR] [--force]`: the end-to-end run on real digits, with a report."""

from __future__ import annotations

import typer
from rich.table import Table

from edgekit.cli.console import console, err_console, fmt, handle_errors, write_json


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@handle_errors
def demo(out: str = typer.Option("demo-out", help="Output directory: data, models, plan.yaml, bundles, report."),
         force: bool = typer.Option(False, help="Replace an earlier demo's output directory."),
         no_cache: bool = typer.Option(False, "--no-cache", help="Build every bundle afresh (the build cache is "
                                                                "neither read nor written)."),
         as_json: bool = typer.Option(False, "--json", help="Print the demo record as JSON at the end.")) -> None:
    """Train, distill, then build the student's FP32 and INT8 bundles (onnx, openvino, arm-lite) as a matrix,
    validate and bench them on real digits, and report."""
    from edgekit import api

    # The demo's step log goes to stderr verbatim: it is plain text, not rich markup.
    result = api.demo(out, force=force, use_cache=not no_cache,
                      log=lambda line: err_console.print(line, highlight=False, markup=False))
    if as_json:
        write_json(result.to_dict())
    else:
        _tables(result)
    if result.failed:
        err_console.print(f"[bold red]{len(result.failed)} cell(s) failed[/] (reasons in {result.report}); the "
                          f"others completed. Fix the cause and run `edgekit matrix {result.plan}` to re-run only "
                          "those.", highlight=False)
        raise typer.Exit(1)


def _tables(result) -> None:
    models = Table(title="models trained on the digits")
    for col in ("role", "model", "epochs", "val top-1"):
        models.add_column(col)
    for role, info in (("teacher", result.teacher), ("student (distilled)", result.student)):
        models.add_row(role, info["model"], str(len(info["train"]["history"])), f"{info['val']['top1']:.3f}")
    console.print(models)
    cells = Table(title=f"the student's bundles ({result.matrix['ok']} ok, {result.matrix['failed']} failed, "
                        f"{result.matrix['skipped']} skipped)")
    for col in ("target", "recipe", "device", "MB", "val top-1", "agree w/ FP32", "ms (b=1)", "vs FP32", "note"):
        cells.add_column(col, justify="right" if col in ("MB", "val top-1", "agree w/ FP32", "ms (b=1)", "vs FP32")
                         else "left")
    for c in result.cells:
        cells.add_row(c.target, c.recipe if c.precision in (None, c.recipe) else f"{c.recipe} ({c.precision})",
                      c.device, fmt(None if c.size_bytes is None else c.size_bytes / 1e6, 2), fmt(c.val_top1),
                      fmt(c.agreement_with_fp32), fmt(c.median_ms, 2),
                      "" if c.speedup_vs_fp32 is None else f"{c.speedup_vs_fp32:.2f}x", c.note, style=None
                      if c.status == "ok" else "yellow" if c.status == "skipped" else "red")
    console.print(cells)
    chart = f", chart {result.plot}" if result.plot else ""
    console.print(f"report: {result.report} ({result.html.name}{chart}); {result.seconds:.0f} s", markup=False)
    console.print(f"next: open {result.html}; bundles under {result.out / 'bundles'}; "
                  f"`edgekit matrix {result.plan}` re-runs or extends this matrix", style="dim", markup=False)
