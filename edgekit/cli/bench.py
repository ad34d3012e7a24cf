"""`edgekit bench`: latency of bundles here or on a device, or TensorRT on a GPU beside the seed's table."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli import options
from edgekit.cli.console import console, err_console, handle_errors


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


@handle_errors
def bench(
    targets: Optional[List[str]] = typer.Argument(
        None, help="Bundle directories; or zoo model names with --target (build, then bench), --gpu or "
                   "--reference-only."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Build MODEL for these targets first, "
                                                                       "e.g. onnx or onnx,openvino,paddle."),
    batch: Optional[str] = typer.Option(None, "--batch", "-b", help="Batch sizes, e.g. 1,4,8 "
                                                                     "[default: 1; with --gpu: 1,4,8]."),
    threads: Optional[int] = typer.Option(None, help="Threads for every runtime [default: all usable CPUs]."),
    warmup: int = typer.Option(5, help="Warm-up iterations per bundle and batch (not timed)."),
    iters: Optional[int] = typer.Option(None, "--iters", help="At least this many timed iterations per bundle and "
                                                              "batch [default: 10, with 3 s]."),
    duration: Optional[float] = typer.Option(None, help="At least this many timed seconds per bundle and batch."),
    rounds: int = typer.Option(5, help="Interleaved rounds: each bundle runs its share once per round."),
    device: str = options.device("Where to run: local, ssh://[user@]host[:port] or adb://SERIAL."),
    device_python: Optional[str] = options.device_python("The device's Python 3.8+ with numpy and the bundle's "
                                                         "runtime [default: python3]."),
    device_dir: Optional[str] = options.device_dir("Work dir on the device [as edgekit validate]."),
    ssh_option: List[str] = options.ssh_option("Extra ssh -o KEY=VALUE (repeatable)."),
    precision_hint: Optional[str] = typer.Option(None, help="OpenVINO compute precision: f32, bf16, or default "
                                                            "(OpenVINO's own: bf16 on CPUs that have it). Not given: "
                                                            "the bundle's own, as in build, validate and apps (f32; "
                                                            "bf16 bundles: bf16 where the CPU has it natively)."),
    end_to_end: bool = typer.Option(False, help="Time decode + preprocess + inference + top-k per call."),
    peak: bool = typer.Option(False, help="Also measure this machine's compute peak (the faster of a MatMul and a "
                                          "convolution chain) in each runtime and precision."),
    gpu: Optional[str] = typer.Option(None, help="TensorRT on the GPU against the seed's table: t4 or v100."),
    precision: Optional[str] = typer.Option(None, help="Build precisions with --target (default fp32); TensorRT "
                                                       "precisions with --gpu (default: the profile's)."),
    reference_only: bool = typer.Option(False, help="Print the seed pages' TensorRT table; measure nothing."),
    input_size: Optional[int] = typer.Option(None, help="Input size when building with --target."),
    weights: Optional[str] = typer.Option(None, help=".pdparams for builds (latency does not depend on them)."),
    no_data_transfers: bool = typer.Option(False, help="TensorRT: leave H2D/D2H copies out of host latency."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the records to this CSV file."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG: latency against batch (and accuracy "
                                                             "against latency when validations exist)."),
) -> None:
    """Latency you can trust: bundles on this CPU (interleaved), or TensorRT on a T4/V100 beside the seed."""
    from edgekit import api
    from edgekit.bench.views import host_line, tables, write_csv, write_plot
    from edgekit.userfiles import check_creatable

    ssh_options = options.parse_pairs(ssh_option, "--ssh-option")
    for path, flag in ((csv, "--csv"), (plot, "--plot")):
        if path:  # before the measurement, not after it
            check_creatable(path.parent, flag, named=path)
    with err_console.status("starting") as status:
        report = api.bench(targets or [], target=target, batch=batch, threads=threads, warmup=warmup,
                           iterations=iters, duration=duration, rounds=rounds, device=device,
                           precision_hint=precision_hint, end_to_end=end_to_end, peak=peak, gpu=gpu,
                           precision=precision, reference_only=reference_only, input_size=input_size,
                           weights=weights, data_transfers=not no_data_transfers, device_python=device_python,
                           device_dir=device_dir, ssh_options=ssh_options or None,
                           progress=lambda step: status.update(f"[bold]{step}[/] ..."))
    if csv:
        write_csv(report, csv)
    if plot:
        write_plot(report, plot)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n")
    else:
        for table in tables(report):
            console.print(table)
        line = host_line(report)
        if line:
            console.print(line, style="dim", highlight=False)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    for path, what in ((csv, "CSV"), (plot, "plot")):
        if path:
            err_console.print(f"{what} written to {path}", style="dim")
