"""`edgekit demo [--out DIR] [--force]`: the end-to-end run on real digits, with a report."""

from __future__ import annotations


import typer
from rich.table import Table

from edgekit.cli.console import console, err_console, fmt, handle_errors, write_json


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@handle_errors
def demo(out: str = typer.Option("demo-out", help="Output directory: data, models, bundles, report.md."),
         force: bool = typer.Option(False, help="Replace an earlier demo's output directory."),
         as_json: bool = typer.Option(False, "--json", help="Print the demo record as JSON at the end.")) -> None:
    """Train, distill, quantize, build (onnx, openvino, arm-lite), validate and bench on real digits, with a report."""
    from edgekit import api

    # The demo's step log goes to stderr verbatim: it is plain text, not rich markup.
    result = api.demo(out, force=force, log=lambda line: err_console.print(line, highlight=False, markup=False))
    if as_json:
        write_json(result.to_dict())
        return
    models = Table(title="models trained on the digits")
    for col in ("role", "model", "epochs", "val top-1"):
        models.add_column(col)
    for role, info in (("teacher", result.teacher), ("student (distilled)", result.student)):
        models.add_row(role, info["model"], str(len(info["train"]["history"])), f"{info['val']['top1']:.3f}")
    console.print(models)
    bundles = Table(title="bundles")
    for col in ("target", "precision", "MB", "val top-1", "agree w/ FP32", "ms (b=1)", "path / note"):
        bundles.add_column(col)
    for b in result.bundles:
        bundles.add_row(b.target, b.precision, f"{b.size_bytes / 1e6:.2f}", fmt(b.val_top1),
                        fmt(b.agreement_with_fp32), fmt(b.median_ms, 2),
                        f"{b.path}" + (f"\n{b.note}" if b.note else ""))
    console.print(bundles)
    console.print(f"report: {result.report}  ({result.seconds:.0f} s)")
