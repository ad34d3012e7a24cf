"""The `edgekit` command: parse, call one edgekit.api function, print."""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from edgekit import __version__
from edgekit.errors import EdgekitError

# Import-time noise from paddle's extension utilities and setuptools, not actionable for users.
warnings.filterwarnings("ignore", message="No ccache found")
warnings.filterwarnings("ignore", message="Setuptools is replacing distutils")
os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's executor INFO lines

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="edgekit: PaddleClas classifiers to edge artifacts, validated and benchmarked.")
zoo_app = typer.Typer(no_args_is_help=True, help="The model zoo: every PaddleClas model of the seed pages.")
app.add_typer(zoo_app, name="zoo")
toolchain_app = typer.Typer(no_args_is_help=True, help="External toolchains edgekit provisions (Paddle Lite).")
app.add_typer(toolchain_app, name="toolchain")

# Piped output is not squeezed into 80 columns; a terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _fail(exc: EdgekitError) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Optional[bool] = typer.Option(None, "--version", callback=_version_callback,
                                                 is_eager=True, help="Print the version and exit.")) -> None:
    pass


@zoo_app.command("list")
def zoo_list(family: Optional[str] = typer.Option(None, help="Only this family (e.g. ResNet, EfficientNet)."),
             as_json: bool = typer.Option(False, "--json", help="Print every card as JSON.")) -> None:
    """List zoo models with their published accuracy, size and cost."""
    from edgekit import api

    try:
        cards = api.zoo_cards(family)
    except EdgekitError as exc:
        _fail(exc)
    if as_json:
        json.dump([c.to_dict() for c in cards], sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    table = Table(title=f"edgekit zoo ({len(cards)} models)")
    table.add_column("model", no_wrap=True)
    for col in ("family", "top-1", "top-5", "crop", "params (M)", "FLOPs (G)", "flag"):
        table.add_column(col, justify="left" if col in ("family", "flag") else "right")
    for c in cards:
        flag = ("⚠ " + "/".join("params" if k == "params_m" else "FLOPs" for k in c.discrepancies)
                if c.discrepancies else "")
        table.add_row(c.name, c.family, _fmt(c.top1), _fmt(c.top5), str(c.crop_size),
                      _fmt(c.params_m, 2), _fmt(c.flops_g, 2), flag)
    console.print(table)
    console.print("Details: edgekit zoo show NAME", style="dim")


@zoo_app.command("show")
def zoo_show(name: str = typer.Argument(..., help="Exact zoo model name, e.g. ResNet50_vd."),
             as_json: bool = typer.Option(False, "--json", help="Print the card as JSON.")) -> None:
    """Show one model card: accuracy, size, cost, preprocessing, TensorRT latency."""
    from edgekit import api

    try:
        card = api.get_card(name)
    except EdgekitError as exc:
        _fail(exc)
    if as_json:
        console.print_json(json.dumps(card.to_dict(), ensure_ascii=False))
        return
    d = card.to_dict()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("model", f"{card.name}  (family {card.family}, seed page {card.seed_page})")
    head.add_row("top-1 / top-5", f"{_fmt(card.top1)} / {_fmt(card.top5)}")
    head.add_row("reference top-1 / top-5", f"{_fmt(card.ref_top1)} / {_fmt(card.ref_top5)}")
    for key, label, unit in (("params_m", "params", "M"), ("flops_g", "FLOPs", "G")):
        published, computed = d[key], d["computed"][key]
        text = f"{_fmt(published, 3)} {unit} published, {_fmt(computed, 3)} {unit} computed"
        if key in card.discrepancies:
            text += f"  [yellow]⚠ differs by {100 * (card.discrepancies[key]['ratio'] - 1):+.1f}%[/]"
        head.add_row(label, text)
    head.add_row("conventions", f"params: {d['computed']['params_convention']}; "
                                f"FLOPs: {d['computed']['flops_convention']}")
    p = card.preprocessing
    head.add_row("preprocessing", f"decode {p.channel_order}, resize short side to {p.resize_short} "
                                  f"({p.interpolation}), center crop {p.crop}, x{p.scale:.6g}, "
                                  f"mean {list(p.mean)}, std {list(p.std)}, {p.layout}")
    for note in card.notes:
        head.add_row("note", note)
    console.print(head)
    from edgekit.zoo.cards import LATENCY_PROFILES

    lat = Table(title="Published TensorRT latency (ms)")
    lat.add_column("profile")
    for b in (1, 4, 8):
        lat.add_column(f"batch {b}", justify="right")
    for profile, label in LATENCY_PROFILES.items():
        cells = card.latency_ms.get(profile, {})
        lat.add_row(label, *(_fmt(cells.get(b), 2) for b in (1, 4, 8)))
    console.print(lat)


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON.")) -> None:
    """Which runtimes, converters and toolchains are usable here, with versions."""
    from edgekit import api

    checks = api.doctor()
    if as_json:
        json.dump([c.to_dict() for c in checks], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        table = Table(title="edgekit doctor")
        for col in ("component", "role", "status", "version", "detail"):
            table.add_column(col)
        for c in checks:
            table.add_row(c.component, c.role, "[green]ok[/]" if c.ok else "[red]missing[/]", c.version, c.detail)
        console.print(table)
    # The Lite toolchain is optional until an arm-lite build needs it.
    if not all(c.ok for c in checks if c.component != "paddle-lite"):
        raise typer.Exit(1)


def _parse_options(pairs: list[str], flag: str = "--option") -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            example = "ptq.max_drop=0.005" if flag == "--recipe-set" else "arch=armv7"
            _fail(EdgekitError(f"{flag} {pair!r} is not KEY=VALUE (for example {flag} {example})."))
        options[key] = value
    return options


@app.command()
def build(model: str = typer.Argument(..., help="Zoo model name, e.g. EfficientNetB0_small."),
          target: str = typer.Option(..., "--target", "-t", help="Target name (see `edgekit targets`)."),
          weights: Optional[str] = typer.Option(None, help="PaddleClas .pdparams weights."),
          inference_model: Optional[str] = typer.Option(None, help="PaddleClas inference model directory."),
          precision: str = typer.Option("fp32", help="fp32 or fp16 (where the target supports it)."),
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
          as_json: bool = typer.Option(False, "--json", help="Print the bundle manifest as JSON.")) -> None:
    """Export a zoo model to an app-embeddable bundle for one target runtime."""
    from edgekit import api

    if not weights and not inference_model:
        err_console.print(f"[bold yellow]WARNING: no --weights or --inference-model given: building {model} with "
                          "RANDOM INITIALISATION. The bundle is marked weights: random-init and classifies "
                          "nothing meaningful.[/]")
    try:
        with console.status("starting") as status:
            result = api.build(model, target, precision, weights=weights, inference_model=inference_model, out=out,
                               force=force, num_classes=num_classes, labels=labels, options=_parse_options(option),
                               input_size=input_size, recipe=recipe, calib=calib, calib_limit=calib_limit,
                               max_drop=max_drop, recipe_overrides=_parse_options(recipe_set, "--recipe-set"),
                               progress=lambda step: status.update(f"[bold]{step}[/] ..."))
    except EdgekitError as exc:
        _fail(exc)
    manifest = result.manifest
    if as_json:
        json.dump(manifest, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    table = Table(title=f"built {result.path}")
    for col in ("step", "seconds", "output", "size (MB)"):
        table.add_column(col, justify="left" if col in ("step", "output") else "right")
    for s in result.steps:
        table.add_row(s.name, f"{s.seconds:.2f}", s.output, f"{s.size / 1e6:.1f}")
    console.print(table)
    parity = manifest["parity"]
    if parity["measured"]:
        console.print(f"parity vs {parity['reference']} on {len(parity['images'])} photos: max |diff| "
                      f"{parity['max_abs_diff']:.2e}, cosine {parity['min_cosine']:.6f}, top-1 agreement "
                      f"{parity['top1_agreement']:.0%} ({parity['runtime']}, {parity['runtime_precision']})")
    else:
        console.print(f"[yellow]parity not measured on this host:[/] {parity['reason']}")
    quant = (manifest.get("compression") or {}).get("quantization")
    if quant:
        kept = f", {len(quant['float_layers'])} layer(s) kept in float" if quant["float_layers"] else ""
        console.print(f"int8 ({quant['route']}): top-1 {quant['int8_top1']:.4f} vs fp32 {quant['fp32_top1']:.4f} on "
                      f"{quant['holdout_images']} held-out images, drop {quant['drop']:.4f}{kept}")
    console.print(f"next: python {result.path}/app/predict.py IMAGE", style="dim")


@app.command("targets")
def list_targets_cmd(as_json: bool = typer.Option(False, "--json", help="Print targets as JSON.")) -> None:
    """List build targets: format, runtime, precisions and options."""
    from edgekit import api

    targets = api.targets()
    if as_json:
        json.dump([t.model_dump() for t in targets], sys.stdout, indent=1)
        sys.stdout.write("\n")
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


@toolchain_app.command("install")
def toolchain_install(name: str = typer.Argument(..., help="Toolchain name: paddle-lite."),
                      force: bool = typer.Option(False, help="Re-provision even if cached.")) -> None:
    """Download, verify and cache a toolchain (reusable offline afterwards)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgekit import api

    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=err_console) as bar:
            task = bar.add_task(f"installing {name}", total=None)

            def report(step: str, done: int, total: int) -> None:
                bar.update(task, description=step, completed=done, total=total or None)

            info = api.install_toolchain(name, force=force, progress=report)
    except EdgekitError as exc:
        _fail(exc)
    console.print(f"{name} {info.lite_version} ready: {info.root or info.python} ({info.source})")


def _register_command_groups() -> None:
    # Each command group lives in its own module under edgekit/commands/.
    from edgekit.commands import bench, compress, demo, validate

    for module in (validate, bench, compress, demo):
        module.register(app)


_register_command_groups()
