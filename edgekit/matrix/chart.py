"""The accuracy-vs-latency scatter (the seed pages' chart, for your own models) with the Pareto front.

One panel per device: x is the median latency at the plan's first bench batch, y the validation top-1;
colour is the target, marker the precision, each point labelled with its model (with its target and precision
when the chart has one model, which the title then names). The Pareto front (no
other cell on that device is both at least as fast and at least as accurate) is joined by a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKERS = {"fp32": "o", "fp16": "s", "bf16": "v", "int8": "^"}


@dataclass(frozen=True)
class Point:
    cell: str
    device: str
    model: str
    target: str
    precision: str
    latency_ms: float
    top1: float


def pareto_front(points: list[Point]) -> list[Point]:
    """The points no other point beats on both axes (lower latency, higher top-1), fastest first."""
    front: list[Point] = []
    best = float("-inf")
    for point in sorted(points, key=lambda p: (p.latency_ms, -p.top1)):
        if point.top1 > best:
            front.append(point)
            best = point.top1
    return front


def points_of(records: list[dict[str, Any]]) -> list[Point]:
    """Cells with both a top-1 and a latency (the first bench batch)."""
    points = []
    for r in records:
        top1 = (r.get("validation") or {}).get("top1")
        bench = (r.get("bench") or {}).get("records") or []
        if r.get("status") != "ok" or top1 is None or not bench:
            continue
        points.append(Point(cell=r["id"], device=r["device"], model=r["model_id"], target=r["target"],
                            precision=(r.get("build") or {}).get("precision", r["recipe"]),
                            latency_ms=bench[0]["median_ms"], top1=top1))
    return points


def write_chart(records: list[dict[str, Any]], png: Path, title: str) -> tuple[Path, str] | None:
    """Writes `png`; returns it with the same chart as SVG text (for the self-contained HTML), or None when
    no cell has both an accuracy and a latency."""
    import io

    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    points = points_of(records)
    if not points:
        return None
    devices = list(dict.fromkeys(p.device for p in points))
    targets = list(dict.fromkeys(p.target for p in points))
    colours = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(targets)}
    models = list(dict.fromkeys(p.model for p in points))
    if len(models) == 1:  # the title names the model; each point says which bundle it is
        title = f"{title} ({models[0]})"

    def label(p: Point) -> str:
        return p.model if len(models) > 1 else f"{p.target} {p.precision}"

    fig, axes = plt.subplots(1, len(devices), figsize=(6.4 * len(devices), 5.0), squeeze=False)
    for ax, device in zip(axes[0], devices):
        mine = [p for p in points if p.device == device]
        for i, p in enumerate(sorted(mine, key=lambda q: (q.latency_ms, q.top1))):
            ax.scatter(p.latency_ms, p.top1, s=70, marker=MARKERS.get(p.precision, "D"), color=colours[p.target],
                       edgecolor="black", linewidth=0.6, zorder=3)
            # Alternate above / below so neighbours at one accuracy do not print over each other.
            ax.annotate(label(p), (p.latency_ms, p.top1), textcoords="offset points", fontsize=8,
                        xytext=(6, 6 if i % 2 == 0 else -12))
        front = pareto_front(mine)
        ax.plot([p.latency_ms for p in front], [p.top1 for p in front], "--", color="gray", linewidth=1.2,
                zorder=2, label="Pareto front")
        ax.scatter([p.latency_ms for p in front], [p.top1 for p in front], s=190, facecolors="none",
                   edgecolors="crimson", linewidth=1.4, zorder=4, label="on the front")
        lows = [p.top1 for p in mine]
        span = max(lows) - min(lows)
        ax.set_ylim(max(0.0, min(lows) - max(0.05, span * 0.3)), min(1.02, max(lows) + max(0.03, span * 0.2)))
        ax.set_xlim(left=0, right=max(p.latency_ms for p in mine) * 1.25)
        ax.set(title=f"device {device}", xlabel="median latency, batch "
               f"{_batch(records, device)} (ms)", ylabel="validation top-1")
        ax.grid(alpha=0.3)
        unplotted = _unplotted(records, device, {p.cell for p in mine}, several_models=len(models) > 1)
        if unplotted:  # built here but not both validated and benched: say so rather than leave them out silently
            ax.text(0.98, 0.03, "not on the chart (no accuracy or no latency here):\n" + unplotted,
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, color="dimgray",
                    bbox=dict(boxstyle="round", facecolor="white", edgecolor="lightgray", alpha=0.9))
    handles = [plt.Line2D([], [], linestyle="", marker="o", color=colours[t], markeredgecolor="black", label=t)
               for t in targets]
    precisions = list(dict.fromkeys(p.precision for p in points))
    handles += [plt.Line2D([], [], linestyle="", marker=MARKERS.get(pr, "D"), color="lightgray",
                           markeredgecolor="black", label=pr) for pr in precisions]
    handles += axes[0][0].get_legend_handles_labels()[0]
    columns = min(len(handles), 4 * len(devices))
    rows = -(-len(handles) // columns)
    fig.legend(handles=handles, loc="lower center", ncol=columns, frameon=False, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06 * rows + 0.02, 1, 1))
    fig.savefig(png, dpi=110)
    svg = io.StringIO()
    fig.savefig(svg, format="svg")
    plt.close(fig)
    text = svg.getvalue()
    return png, text[text.index("<svg"):]  # drop the XML prolog: the SVG goes inline into the HTML


def _unplotted(records: list[dict[str, Any]], device: str, plotted: set[str], *, several_models: bool) -> str:
    names = [f"{r['model_id']} " * several_models + f"{r['target']} {(r.get('build') or {}).get('precision', r['recipe'])}"
             for r in records if r.get("device") == device and r.get("status") == "ok" and r["id"] not in plotted]
    shown = ", ".join(names[:6])
    return shown + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _batch(records: list[dict[str, Any]], device: str) -> int | str:
    for r in records:
        bench = (r.get("bench") or {}).get("records") or []
        if r.get("device") == device and bench:
            return bench[0]["batch"]
    return "?"
