"""`edgekit zoo list` and `edgekit zoo show NAME`: the model cards."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.table import Table

from edgekit.cli.console import console, fmt, handle_errors, write_json

zoo_app = typer.Typer(no_args_is_help=True, help="The model zoo: every PaddleClas model of the seed pages.")


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")


@zoo_app.command("list")
@handle_errors
def zoo_list(family: Optional[str] = typer.Option(None, help="Only this family (e.g. ResNet, EfficientNet)."),
             as_json: bool = typer.Option(False, "--json", help="Print every card as JSON.")) -> None:
    """List zoo models with their published accuracy, size and cost."""
    from edgekit import api

    cards = api.zoo_cards(family)
    if as_json:
        write_json([c.to_dict() for c in cards], ensure_ascii=False)
        return
    table = Table(title=f"edgekit zoo ({len(cards)} models)")
    table.add_column("model", no_wrap=True)
    for col in ("family", "top-1", "top-5", "crop", "params (M)", "FLOPs (G)", "flag"):
        table.add_column(col, justify="left" if col in ("family", "flag") else "right")
    for c in cards:
        flag = ("⚠ " + "/".join("params" if k == "params_m" else "FLOPs" for k in c.discrepancies)
                if c.discrepancies else "")
        table.add_row(c.name, c.family, fmt(c.top1), fmt(c.top5), str(c.crop_size),
                      fmt(c.params_m, 2), fmt(c.flops_g, 2), flag)
    console.print(table)
    console.print("Details: edgekit zoo show NAME", style="dim")


@zoo_app.command("show")
@handle_errors
def zoo_show(name: str = typer.Argument(..., help="Exact zoo model name, e.g. ResNet50_vd."),
             as_json: bool = typer.Option(False, "--json", help="Print the card as JSON.")) -> None:
    """Show one model card: accuracy, size, cost, preprocessing, TensorRT latency."""
    from edgekit import api
    from edgekit.zoo.cards import LATENCY_PROFILES

    card = api.get_card(name)
    if as_json:
        console.print_json(json.dumps(card.to_dict(), ensure_ascii=False))
        return
    d = card.to_dict()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("model", f"{card.name}  (family {card.family}, seed page {card.seed_page})")
    head.add_row("top-1 / top-5", f"{fmt(card.top1)} / {fmt(card.top5)}")
    head.add_row("reference top-1 / top-5", f"{fmt(card.ref_top1)} / {fmt(card.ref_top5)}")
    for key, label, unit in (("params_m", "params", "M"), ("flops_g", "FLOPs", "G")):
        published, computed = d[key], d["computed"][key]
        text = f"{fmt(published, 3)} {unit} published, {fmt(computed, 3)} {unit} computed"
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

    lat = Table(title="Published TensorRT latency (ms)")
    lat.add_column("profile")
    for b in (1, 4, 8):
        lat.add_column(f"batch {b}", justify="right")
    for profile, label in LATENCY_PROFILES.items():
        cells = card.latency_ms.get(profile, {})
        lat.add_row(label, *(fmt(cells.get(b), 2) for b in (1, 4, 8)))
    console.print(lat)
