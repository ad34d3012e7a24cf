"""Views of a BenchReport: rich tables, CSV, and a matplotlib plot (Agg backend, files only)."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.table import Table

from edgekit.bench.records import BenchReport
from edgekit.bench.published import REFERENCE_BATCHES
from edgekit.userfiles import prepare_parent


def _ms(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def tables(report: BenchReport) -> list[Table]:
    if report.kind == "cpu":
        return _cpu_tables(report)
    if report.kind == "gpu":
        return [_gpu_table(report), _reference_table(report.reference, "Seed reference (TensorRT, ms)")]
    return [_reference_table(report.reference, "Published TensorRT latency from the seed pages (ms; — = not published)")]


def host_line(report: BenchReport) -> str:
    h = report.host
    if report.kind == "cpu":
        c = report.config
        minimums = " and ".join(m for m in (f">= {c['iterations']} iterations" if c["iterations"] else "",
                                             f">= {c['duration_s']:g} s" if c["duration_s"] else "") if m)
        timing = (f"{c['warmup']} warm-up, then {minimums} per bundle and batch in {c['rounds']} "
                  + ("interleaved rounds" if c["rounds"] > 1 else "round"))
        facts = [f"{h['cpus_usable']} usable CPUs", ", ".join(h["isa_flags"]),
                 "" if h["load_average_1m"] is None else f"load {h['load_average_1m']}"]
        where = "" if h.get("device", "local") == "local" else f" on {h['device']}"
        return (f"CPU{where}: {h['cpu_model']} ({'; '.join(f for f in facts if f)}); {timing}; "
                + ("end-to-end (decode + preprocess + infer + top-k)" if c["end_to_end"] else
                   "inference only (input prepared once)"))
    if report.kind == "gpu":
        return f"GPU present: {', '.join(h.get('gpus', []))}; tool: {report.config.get('tool')}"
    return ""


def _cpu_tables(report: BenchReport) -> list[Table]:
    records = report.records
    table = Table(title="edgekit bench (latency in ms)")
    for col in ("bundle", "runtime", "precision", "batch", "threads", "median", "mean", "p90", "p99", "min", "max",
                "CV", "images/s", "GOP/s", "of peak"):
        table.add_column(col, justify="left" if col in ("bundle", "runtime", "precision") else "right",
                         no_wrap=col == "bundle")
    for r in records:
        s = r.latency
        cv = f"{s.cv:.1%}" + (" ⚠" if r.unstable else "")
        fraction = r.fraction_of_peak
        version = r.runtime_version.split("-")[0]  # OpenVINO appends its build hash
        table.add_row(r.label, f"{r.runtime} {version}", r.runtime_precision, str(r.batch),
                      "default" if r.threads is None else str(r.threads), _ms(s.median_ms), _ms(s.mean_ms),
                      _ms(s.p90_ms), _ms(s.p99_ms), _ms(s.min_ms), _ms(s.max_ms), cv, f"{r.throughput_ips:.1f}",
                      _ms(r.achieved_gflops, 1), "—" if fraction is None else f"{fraction:.0%}")
    if report.peaks:
        table.caption = ("GOP/s: 2 x multiply-adds per second (FLOPs in f32/bf16, integer ops in int8: one count, "
                         "so they compare); of peak: of the compute peak of the same runtime and precision")
    out = [table]
    if report.ratios:
        ratios = Table(title=f"against {report.ratios[0]['baseline']} (median latency)")
        for col in ("batch", "bundle", "latency ratio", "speed"):
            ratios.add_column(col, justify="right" if col != "bundle" else "left")
        for r in report.ratios:
            speed = f"{r['speedup']:.2f}x faster" if r["speedup"] >= 1 else f"{1 / r['speedup']:.2f}x slower"
            ratios.add_row(str(r["batch"]), r["label"], f"{r['latency_ratio']:.3f}", speed)
        out.append(ratios)
    if report.peaks:
        out.append(_peaks_table(report))
    return out


def _peaks_table(report: BenchReport) -> Table:
    physical = report.physical_peak or {}
    fractions = physical.get("measured_fractions") or {}
    peaks = Table(title="measured compute peak (same runtime and precision; the faster of a MatMul and a "
                        "convolution chain)")
    for col in ("runtime", "precision", "workload", "threads", "peak", "of physical FP32", "kernel", "note"):
        peaks.add_column(col, justify="right" if col in ("threads", "peak", "of physical FP32") else "left")
    for p in report.peaks:
        share = fractions.get(f"{p['runtime']} {p['precision']}")
        workload = f"{p['gemm']} {p.get('workload', 'MatMul')}" if p["gemm"] else "—"
        peaks.add_row(p["runtime"], p["precision"], workload, str(p["threads"]),
                      "—" if p["gflops"] is None else f"{p['gflops']:.1f} {p['unit']}",
                      "—" if share is None else f"{share:.0%}", p.get("kernel") or "", p["note"])
    if physical:  # beside the measured rows: the ceiling no runtime passes unless an assumption is wrong
        unit = (f"{physical['isa']}: {physical['vector_bits']}-bit ops, {physical['datapath_bits']}-bit pipes x "
                f"{physical['fma_pipes']}") if physical.get("isa") else "unknown"
        peaks.add_row("physical FP32", "f32", "—", f"{physical['cores']} cores",
                      "—" if physical["gflops"] is None else f"{physical['gflops']:.1f} GFLOP/s", "100%"
                      if physical["gflops"] else "—", unit, physical["formula"])
        peaks.caption = "; ".join([f"physical peak of {physical['cpu']}", f"cores: {physical['cores_source']}",
                                   f"clock: {physical['frequency_source']}", *physical["assumptions"]])
        peaks.caption_justify = "left"
    return peaks


def _gpu_table(report: BenchReport) -> Table:
    table = Table(title="TensorRT (ms): GPU compute time and host latency, beside the seed's figure")
    for col in ("model", "GPU", "precision", "batch", "compute median", "compute p99", "host median", "host p99",
                "images/s", "seed ref", "measured/ref"):
        table.add_column(col, justify="left" if col in ("model", "GPU", "precision") else "right")
    for r in report.records:
        ratio = r.ratio_to_reference
        table.add_row(r.model, r.gpu, r.precision, str(r.batch), _ms(r.gpu_compute.median_ms, 3),
                      _ms(r.gpu_compute.p99_ms, 3), _ms(r.host_latency.median_ms, 3), _ms(r.host_latency.p99_ms, 3),
                      f"{r.images_per_s:.1f}", _ms(r.reference_ms, 3), "—" if ratio is None else f"{ratio:.2f}")
    return table


def _reference_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("model", "GPU", "precision", "crop", *(f"batch {b}" for b in REFERENCE_BATCHES)):
        table.add_column(col, justify="left" if col in ("model", "GPU", "precision") else "right", no_wrap=True)
    for row in rows:
        table.add_row(row["model"], row["gpu"].upper(), row["precision"], str(row["crop_size"]),
                      *(_ms(row[f"batch{b}_ms"], 3) for b in REFERENCE_BATCHES))
    return table


# ---------------------------------------------------------------- CSV

def csv_rows(report: BenchReport) -> list[dict]:
    rows = [r.to_dict() for r in report.records] if report.kind != "reference" else list(report.reference)
    flat = []
    for row in rows:
        flat.append({k: ("; ".join(map(str, v)) if k == "notes" else "x".join(map(str, v))) if isinstance(v, list)
                     else v for k, v in row.items()})
    return flat


def write_csv(report: BenchReport, path: str | Path) -> Path:
    path = Path(path)
    rows = csv_rows(report)
    prepare_parent(path, "--csv")
    with path.open("w", newline="", encoding="utf-8") as stream:
        if rows:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


# ---------------------------------------------------------------- plot

def write_plot(report: BenchReport, path: str | Path) -> Path:
    """Latency against batch (and accuracy against latency where validations or cards give accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = prepare_parent(Path(path), "--plot")
    with_accuracy = bool(report.accuracy) or report.kind == "reference"
    fig, axes = plt.subplots(1, 2 if with_accuracy else 1, figsize=(12 if with_accuracy else 7, 5), squeeze=False)
    latency_ax = axes[0][0]
    if report.kind == "cpu":
        for label in dict.fromkeys(r.label for r in report.records):
            mine = sorted((r for r in report.records if r.label == label), key=lambda r: r.batch)
            medians = [r.latency.median_ms for r in mine]
            spread = [[m - r.latency.min_ms for m, r in zip(medians, mine)],
                      [r.latency.p90_ms - m for m, r in zip(medians, mine)]]
            latency_ax.errorbar([r.batch for r in mine], medians, yerr=spread, marker="o", capsize=3,
                                label=f"{label} ({mine[0].runtime} {mine[0].runtime_precision})")
        latency_ax.set_xticks(sorted({r.batch for r in report.records}))
        latency_ax.set_title(f"CPU latency ({report.host.get('cpu_model', '')}), median; bars min..p90", fontsize=9)
    elif report.kind == "gpu":
        for precision in dict.fromkeys(r.precision for r in report.records):
            mine = sorted((r for r in report.records if r.precision == precision), key=lambda r: r.batch)
            line = latency_ax.plot([r.batch for r in mine], [r.gpu_compute.median_ms for r in mine], marker="o",
                                   label=f"measured {precision} ({mine[0].gpu})")[0]
            ref = [(r.batch, r.reference_ms) for r in mine if r.reference_ms is not None]
            if ref:
                latency_ax.plot(*zip(*ref), linestyle="--", marker="x", color=line.get_color(),
                                label=f"seed {report.config['gpu'].upper()} {precision}")
        latency_ax.set_xticks(sorted({r.batch for r in report.records}))
        latency_ax.set_title("TensorRT GPU compute time (median) vs the seed pages", fontsize=9)
    else:
        for row in report.reference[:12]:  # beyond a dozen lines the panel is unreadable; the table has all
            cells = [(b, row[f"batch{b}_ms"]) for b in REFERENCE_BATCHES if row[f"batch{b}_ms"] is not None]
            if cells:
                latency_ax.plot(*zip(*cells), marker="o", label=f"{row['model']} {row['gpu'].upper()} {row['precision']}")
        shown = min(12, len(report.reference))
        latency_ax.set_xticks(list(REFERENCE_BATCHES))
        latency_ax.set_title("Published TensorRT latency (seed pages)"
                             + (f", first {shown} of {len(report.reference)} rows" if shown < len(report.reference)
                                else ""), fontsize=9)
    latency_ax.set_xlabel("batch size")
    latency_ax.set_ylabel("latency (ms)")
    latency_ax.grid(alpha=0.3)
    latency_ax.legend(fontsize=7)
    if with_accuracy:
        _accuracy_panel(axes[0][1], report)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _accuracy_panel(ax, report: BenchReport) -> None:
    if report.kind == "reference":
        # The seed pages' chart: top-1 against batch-1 latency, one point per model.
        from edgekit.zoo.cards import get_card

        for (gpu, precision) in dict.fromkeys((r["gpu"], r["precision"]) for r in report.reference):
            points = [(r["batch1_ms"], get_card(r["model"]).top1, r["model"]) for r in report.reference
                      if r["gpu"] == gpu and r["precision"] == precision and r["batch1_ms"] is not None
                      and get_card(r["model"]).top1 is not None]
            if points:
                xs, ys, names = zip(*points)
                ax.scatter(xs, ys, s=14, label=f"{gpu.upper()} {precision}")
                if len(points) <= 12:
                    for x, y, name in points:
                        ax.annotate(name, (x, y), fontsize=6)
        ax.set_xlabel("batch-1 latency (ms)")
        ax.set_title("Top-1 (published) against TensorRT latency", fontsize=9)
    else:
        for a in report.accuracy:
            ax.scatter([a["median_ms"]], [a["top1"]], s=30)
            ax.annotate(a["label"], (a["median_ms"], a["top1"]), fontsize=7)
        ax.set_xlabel("median latency (ms) at the smallest batch")
        ax.set_title("Validated top-1 against measured latency", fontsize=9)
    ax.set_ylabel("top-1")
    ax.grid(alpha=0.3)
    if report.kind == "reference":
        ax.legend(fontsize=7)
