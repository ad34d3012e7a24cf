"""`edgekit validate BUNDLE --data DATA [--device ssh://...|adb://...]`: accuracy where the bundle runs."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from edgekit.cli import options
from edgekit.cli.console import console, err_console, handle_errors, pct

FAILURES_SHOWN = 20


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def _progress_bar(console):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f} {task.fields.get('unit', 'img')}/s", style="cyan")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)


def _describe_device(record: dict) -> str:
    d = record["device"]
    where = "this host" if d.get("kind") == "local" else d.get("address", "?")
    model = f", {d['android_model']}" if d.get("android_model") else ""
    rt = record["runtime"]
    precision = f", {rt['precision']}" if rt.get("precision") else ""
    if d.get("emulated"):
        return (f"{d['address']} ({d.get('emulator')} on {d.get('host', '?')}) with {rt['name']} "
                f"{rt.get('version') or '?'}, {rt.get('runner', '')}")
    if rt.get("runner"):
        precision += f", {rt['runner']}"
    return (f"{where} ({d.get('hostname', '?')}{model}: {d.get('system', '?')} {d.get('machine', '?')}, "
            f"{d.get('cpu', '?')}, {d.get('cores', '?')} cores, Python {d.get('python', '?')}) "
            f"with {rt['name']} {rt.get('version') or '?'}{precision}")


def _print_report(console, report) -> None:
    from rich.markup import escape
    from rich.table import Table

    r = report.record
    b = r["bundle"]
    m = r["metrics"]
    ref = r["reference"]
    pub = r["published"]
    console.print(f"[bold]validated[/] {b['model']} {b['target']} {b['precision']}  ({escape(b['path'])})")
    if r["stand_in_for"]:
        s = r["stand_in_for"]
        console.print(f"[yellow]stand-in:[/] this x86-lite build was validated in place of {s['target']} bundle "
                      f"{escape(s['bundle'])}: {escape(s['why'])}")
    console.print(f"ran on: {escape(_describe_device(r))}")
    data = r["data"]
    console.print(f"data: {escape(data['source'])} — {data['selection']}; {data['evaluated']} classified, "
                  f"{data['failed']} failed to decode" + ("" if r["complete"] else
                                                          f", {data['images'] - data['processed']} not reached"))
    table = Table()
    table.add_column("")
    table.add_column("measured", justify="right")
    if ref.get("kind"):
        table.add_column("reference", justify="right")
    if pub:
        table.add_column("published", justify="right")
    for key, label in (("top1", "top-1"), ("top5", f"top-{m['top5_k']}")):
        row = [label, pct(m[key])]
        if ref.get("kind"):
            row.append(pct(ref[key]))
        if pub:
            row.append(pct(pub[key]))
        table.add_row(*row)
    console.print(table)
    if ref.get("kind"):
        console.print(f"reference: {escape(ref['name'])} on {ref['images']} images: top-1 agreement "
                      f"{pct(ref['top1_agreement'])}, logit cosine mean {ref['cosine_mean']:.6f} "
                      f"(min {ref['cosine_min']:.6f}), top-1 drop {100 * ref['top1_drop']:+.2f} points")
    else:
        console.print(f"reference: none ({escape(ref['reason'])})")
    if pub:
        console.print(f"published: {escape(pub['note'])}", style="dim")
    speed = m["images_per_s"]
    emulated = " [emulated: numbers, not speed]" if r["device"].get("emulated") else ""
    console.print(f"speed: {speed if speed is not None else '—'} images/s decode+inference "
                  f"({m['inference_images_per_s'] or '—'} images/s inference alone), batch {r['batch']}"
                  + escape(emulated))
    for note in r["notes"]:
        console.print(f"note: {escape(note)}", style="yellow")
    if r["failures"]:
        console.print(f"[bold red]{len(r['failures'])} images failed to decode[/] (not counted in accuracy):")
        for failure in r["failures"][:FAILURES_SHOWN]:
            console.print(f"  {escape(failure['path'])}: {escape(failure['reason'])}", highlight=False)
        if len(r["failures"]) > FAILURES_SHOWN:
            console.print(f"  ... and {len(r['failures']) - FAILURES_SHOWN} more (--report FILE lists all)")
    if not r["complete"]:
        console.print(f"[bold red]PARTIAL:[/] {escape(r['partial_reason'])}. The figures above cover the "
                      f"{data['processed']} images processed before that; they were recorded marked partial.")
    if r["passed"] is not None:
        verdict = "[green]PASS[/]" if r["passed"] else "[bold red]FAIL[/]"
        console.print(f"{verdict}: top-1 drop {100 * ref['top1_drop']:+.2f} points, allowed "
                      f"{100 * r['max_drop']:.2f} (--max-drop {r['max_drop']:g})")


@handle_errors
def validate(
        bundle: str = typer.Argument(..., help="Bundle directory (from `edgekit build`)."),
        data: str = typer.Option(..., "--data", help="PaddleClas list file (`path label` lines) or a folder of "
                                                     "class folders."),
        root: Optional[str] = typer.Option(None, help="Folder the list file's paths are relative to "
                                                      "(default: the list file's folder)."),
        limit: Optional[int] = typer.Option(None, help="Validate on N images only (list: the first N lines; "
                                                       "class folders: N spread over all classes)."),
        batch: int = typer.Option(32, help="Images per inference batch."),
        max_drop: Optional[float] = typer.Option(None, help="Exit 1 when top-1 falls more than this below the "
                                                            "reference's (a fraction: 0.01 = one point)."),
        reference: Optional[str] = typer.Option(None, help="Reference bundle (e.g. the FP32 build) "
                                                           "(default: the FP32 Paddle source model, when its "
                                                           "weights file is here)."),
        no_reference: bool = typer.Option(False, "--no-reference", help="Skip the reference comparison."),
        x86_lite: Optional[str] = typer.Option(None, "--x86-lite", help="For an arm-lite BUNDLE on an x86 host: "
                                                                        "validate this x86-lite build of the same "
                                                                        "weights instead, named as such."),
        device: str = options.device("local, ssh://USER@HOST:PORT (user and port optional), adb://SERIAL, or "
                                     "emu://aarch64 / emu://armv7 (a .nb under qemu-user: numbers, not speed; "
                                     "slow, so use --limit, e.g. 50)."),
        device_python: Optional[str] = options.device_python("The device's Python 3.8+ with numpy, OpenCV and "
                                                             "the bundle's runtime (default: python3)."),
        device_dir: Optional[str] = options.device_dir("Work dir on the device (ssh: ~/.cache/edgekit-device, "
                                                       "adb: /data/local/tmp/edgekit)."),
        ssh_option: list[str] = options.ssh_option("Extra ssh -o KEY=VALUE (e.g. IdentityFile=PATH); repeatable."),
        threads: Optional[int] = typer.Option(None, help="Runtime threads (default: the runtime's)."),
        workers: Optional[int] = typer.Option(None, help="Image decoding threads (default: min(4, cores))."),
        timeout: Optional[float] = typer.Option(None, help="Seconds the run may take; past it, what is done "
                                                           "is kept, marked partial."),
        as_json: bool = typer.Option(False, "--json", help="Print the full record as JSON."),
        report: Optional[str] = typer.Option(None, help="Also write the full record (every failed image) as JSON "
                                                        "to this file."),
        no_record: bool = typer.Option(False, "--no-record", help="Do not append the record to the bundle's "
                                                                  "edgekit.json."),
) -> None:
    """Top-1/top-5 of a bundle where it runs, against its reference and the published figures."""
    from rich.markup import escape

    from edgekit import api

    phases = {"hash": ("hashing images", "img"), "push": ("sending to the device (MB)", "MB"),
              "run": (f"classifying on {device}", "img"), "reference": ("reference on this host", "img")}
    ssh_options = options.parse_pairs(ssh_option, "--ssh-option")
    with _progress_bar(err_console) as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int, note: str | None = None) -> None:
            if note:
                bar.console.print(f"[yellow]{escape(note)}[/]", highlight=False)
            scale = 1e-6 if phase == "push" else 1
            if total == 0 and phase not in tasks:  # nothing to do in this phase (e.g. all files there)
                return
            if phase not in tasks:
                label, unit = phases.get(phase, (phase, "item"))
                tasks[phase] = bar.add_task(label, total=total * scale or None, unit=unit)
            bar.update(tasks[phase], completed=done * scale, total=total * scale or None)

        result = api.validate(bundle, data, root=root, limit=limit, batch=batch, device=device,
                              reference=reference, use_reference=not no_reference, x86_lite=x86_lite,
                              max_drop=max_drop, threads=threads, workers=workers, device_python=device_python,
                              device_dir=device_dir, ssh_options=ssh_options, timeout=timeout,
                              record=not no_record, report=report, progress=progress)
    if as_json:
        sys.stdout.write(result.to_json() + "\n")
    else:
        _print_report(console, result)
    if not result.ok:
        raise typer.Exit(1)
