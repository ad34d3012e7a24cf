"""`edgekit build MODEL --target T` (a zoo model to a bundle) and `edgekit targets` (what T can be)."""

from __future__ import annotations

import shlex
from typing import Optional

import typer
from rich.table import Table

from edgekit.cli.console import console, err_console, handle_errors, write_json
from edgekit.cli.options import parse_pairs


def register(app: typer.Typer) -> None:
    app.command("build")(build)
    app.command("targets")(list_targets_cmd)


@handle_errors
def build(model: str = typer.Argument(..., help="Zoo model name, e.g. EfficientNetB0_small."),
          target: str = typer.Option(..., "--target", "-t", help="Target name (see `edgekit targets`)."),
          weights: Optional[str] = typer.Option(None, help="PaddleClas .pdparams weights."),
          inference_model: Optional[str] = typer.Option(None, help="PaddleClas inference model directory."),
          precision: str = typer.Option("fp32", help="fp32, fp16 or bf16 (where the target supports it; bf16: "
                                                  "openvino, native on AVX512_BF16 / AMX CPUs)."),
          out: Optional[str] = typer.Option(None, help="Bundle directory [default: dist/<model>-<target>-<precision>]."),
          force: bool = typer.Option(False, help="Replace an existing output directory."),
          num_classes: Optional[int] = typer.Option(None, help="Classes of the checkpoint [default: labels or 1000]."),
          labels: Optional[str] = typer.Option(None, help="Class names, one per line; copied into the bundle."),
          option: list[str] = typer.Option([], "--option", "-o", help="Target option KEY=VALUE."),
          input_size: Optional[int] = typer.Option(None, help="Square input size for models trained on small images "
                                                              "(sets resize and crop) [default: the model card's]."),
          recipe: Optional[str] = typer.Option(None, help="Compression recipe name or YAML file "
                                                          "(see `edgekit recipes`)."),
          calib: Optional[str] = typer.Option(None, help="Labeled images for the recipe: list file or class folders."),
          calib_limit: Optional[int] = typer.Option(None, help="At most this many calibration images "
                                                               "(default: the recipe's)."),
          max_drop: Optional[float] = typer.Option(None, help="Largest INT8 top-1 drop, e.g. 0.01 "
                                                              "(default: the recipe's)."),
          recipe_set: list[str] = typer.Option([], "--recipe-set", help="Recipe parameter PASS.KEY=VALUE."),
          no_cache: bool = typer.Option(False, "--no-cache", help="Build afresh: neither reuse an earlier bundle "
                                                                  "of the same inputs nor keep this one "
                                                                  "(`edgekit cache ls`)."),
          candidates: Optional[str] = typer.Option(None, help="With --target fastest: TARGET:PRECISION items to "
                                                               "choose from [default: paddle, onnx, openvino fp32; "
                                                               "onnx, openvino int8 with --calib]."),
          bench_batch: int = typer.Option(1, help="With --target fastest: the batch size latency is compared at."),
          device: str = typer.Option("local", help="With --target fastest: where the candidates are benched "
                                                   "(local, ssh://user@host, adb://SERIAL)."),
          as_json: bool = typer.Option(False, "--json", help="Print the bundle manifest as JSON.")) -> None:
    """Export a zoo model to an app-embeddable bundle for one target runtime (or, with --target fastest,
    the fastest of several for this CPU within the recipe's accuracy budget)."""
    from edgekit import api
    from edgekit.fastest import FASTEST
    from edgekit.errors import EdgekitError

    # The warning comes first, even when an option below turns out malformed.
    if not weights and not inference_model:
        err_console.print(f"[bold yellow]WARNING: no --weights or --inference-model given: building {model} with "
                          "RANDOM INITIALISATION. The bundle is marked weights: random-init and classifies "
                          "nothing meaningful.[/]")
    options, recipe_overrides = parse_pairs(option, "--option"), parse_pairs(recipe_set, "--recipe-set")
    if target == FASTEST:
        with console.status("starting") as status:
            result = api.build_fastest(model, precision=precision, candidates=candidates, batch=bench_batch, device=device,
                                       weights=weights, inference_model=inference_model, out=out, force=force,
                                       num_classes=num_classes, labels=labels, options=options,
                                       input_size=input_size, recipe=recipe, calib=calib, calib_limit=calib_limit,
                                       max_drop=max_drop, recipe_overrides=recipe_overrides, cache=not no_cache,
                                       progress=lambda step: status.update(f"[bold]{step}[/] ..."))
        if as_json:
            write_json(result.manifest)
        else:
            _print_selection(result)
        return
    unused = [flag for flag, given in (("--candidates", candidates is not None), ("--bench-batch", bench_batch != 1),
                                       ("--device", device != "local")) if given]
    if unused:
        raise EdgekitError(f"{', '.join(unused)} apply to --target {FASTEST} only; --target {target} builds one "
                           "bundle (bench it with `edgekit bench`).")
    with console.status("starting") as status:
        result = api.build(model, target, precision, weights=weights, inference_model=inference_model, out=out,
                           force=force, num_classes=num_classes, labels=labels, options=options,
                           input_size=input_size, recipe=recipe, calib=calib, calib_limit=calib_limit,
                           max_drop=max_drop, recipe_overrides=recipe_overrides, cache=not no_cache,
                           progress=lambda step: status.update(f"[bold]{step}[/] ..."))
    manifest = result.manifest
    data = (manifest.get("compression") or {}).get("data") or {}
    if data.get("undecodable_images_skipped"):
        names = data.get("undecodable_images", [])
        more = data["undecodable_images_skipped"] - min(len(names), 5)
        err_console.print(f"WARNING: {data['undecodable_images_skipped']} --calib images could not be decoded and "
                          f"were skipped: {', '.join(names[:5])}{f' and {more} more' if more else ''} (listed in "
                          "edgekit.json under compression.data).", style="yellow", highlight=False, markup=False)
    if as_json:
        write_json(manifest)
        return
    cache = getattr(result, "cache", None)
    if cache is not None and cache.hit:
        console.print(f"reused cached build {cache.key[:12]} (first built {cache.first_built} in "
                      f"{cache.build_seconds:.1f} s): {result.path} restored in {cache.seconds:.2f} s; --no-cache "
                      "rebuilds", highlight=False, markup=False)
    else:
        table = Table(title=f"built {result.path}")
        for col in ("step", "seconds", "output", "size (MB)"):
            table.add_column(col, justify="left" if col in ("step", "output") else "right")
        for s in result.steps:
            table.add_row(s.name, f"{s.seconds:.2f}", s.output, f"{s.size / 1e6:.1f}")
        console.print(table)
    parity = manifest["parity"]
    if "reference_check" in parity:  # INT8: the FP32 reference was itself checked against the source first
        console.print(_comparison_line(parity["reference_check"]["candidate"], parity["reference_check"]))
    if parity["measured"]:
        console.print(_comparison_line("parity", parity) + f" ({parity['runtime']}, {parity['runtime_precision']})")
    else:
        console.print(f"[yellow]parity not measured on this host:[/] {parity['reason']}")
    quant = (manifest.get("compression") or {}).get("quantization")
    if quant:
        kept = f", {len(quant['float_layers'])} layer(s) kept in float" if quant["float_layers"] else ""
        console.print(f"int8 ({quant['route']}): top-1 {quant['int8_top1']:.4f} vs fp32 {quant['fp32_top1']:.4f} on "
                      f"{quant['holdout_images']} held-out images, drop {quant['drop']:.4f}{kept}")
    console.print(f"next: python {shlex.quote(str(result.path / 'app' / 'predict.py'))} IMAGE", style="dim",
                  highlight=False, markup=False)


@handle_errors
def list_targets_cmd(as_json: bool = typer.Option(False, "--json", help="Print targets as JSON.")) -> None:
    """List build targets: format, runtime, precisions and options."""
    from edgekit import api

    targets = api.targets()
    if as_json:
        write_json([t.model_dump() for t in targets])
        return
    table = Table(title="edgekit targets")
    for col in ("target", "format", "runtime", "precisions", "options", "runs here"):
        table.add_column(col)
    for t in targets:
        opts = ", ".join(f"{k}={v.default}" + (f" ({'|'.join(map(str, v.choices))})" if v.choices else "")
                         for k, v in t.options.items())
        table.add_row(t.name, t.format, t.runtime, ", ".join(t.precisions), opts or "—",
                      "yes" if t.runs_on_host else "no (device)")
    console.print(table)


def _comparison_line(what: str, record: dict) -> str:
    compared = record.get("compared", len(record["images"]))
    inputs = record["images"][0] if len(record["images"]) == 1 and compared > 1 else "photos"
    return (f"{what} vs {record['reference']} on {compared} {inputs}: max |diff| {record['max_abs_diff']:.2e} "
            f"(relative {record['max_rel_diff']:.2e}), cosine {record['min_cosine']:.6f}, top-1 agreement "
            f"{record['top1_agreement']:.0%}")


def _print_selection(result) -> None:
    selection = result.manifest["selection"]
    table = Table(title=f"{result.path}: the fastest at batch {selection['batch']} on {selection['cpu'] or 'this CPU'}")
    for col in ("candidate", "computes in", "median ms", "vs Paddle Inference", "top-1", "outcome"):
        table.add_column(col, justify="right" if col in ("median ms", "vs Paddle Inference") else "left")
    for o in result.outcomes:
        style = "bold green" if o.status == "chosen" else ("red" if o.status in ("rejected", "skipped") else None)
        if o.top1_drop is not None:
            top1 = f"{-100 * o.top1_drop:+.2f} pt vs fp32"
        else:
            top1 = "= source" if o.accuracy.startswith("matches") else "—"
        outcome = o.status if o.status in ("chosen", "slower") else f"{o.status}: {o.reason}"
        table.add_row(o.candidate, f"{o.runtime_precision} ({o.runtime})" if o.runtime else "—",
                      f"{o.median_ms:.2f}" if o.median_ms is not None else "—",
                      f"{o.speedup_vs_baseline:.2f}x" if o.speedup_vs_baseline is not None else "—",
                      top1, outcome, style=style)
    console.print(table)
    chosen = result.chosen
    console.print(f"chosen: {chosen.candidate} ({chosen.reason}); {chosen.accuracy}", highlight=False, markup=False)
    for warning in selection["warnings"]:
        err_console.print(f"WARNING: {warning}", style="yellow", highlight=False, markup=False)
    console.print(f"next: python {shlex.quote(str(result.path / 'app' / 'predict.py'))} IMAGE  (the table is "
                  f"`selection` in {result.path / 'edgekit.json'})", style="dim", highlight=False, markup=False)
