"""The matrix report: report.md and a self-contained report.html (inline CSS and SVG, nothing fetched).

A table per device (FP32, FP16 and INT8 of each model and target side by side: size, top-1, agreement
with the FP32 Paddle model, latency, speed-up over FP32), the accuracy-vs-latency chart with its Pareto
front, the published PaddleClas figures beside the measured ones for zoo models with real ImageNet
weights, and every skipped or failed cell with its reason. A caller with more to say (the demo: the models it
trained, its steps) passes `Section`s to go before the device tables or after them, in both pages.
"""

from __future__ import annotations

import html
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgekit.matrix.chart import pareto_front, points_of, write_chart



@dataclass(frozen=True)
class Section:
    """A part of the report a caller adds: a heading, paragraphs (Markdown `code` allowed), then a table."""

    title: str
    paragraphs: Sequence[str] = ()
    columns: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = field(default_factory=list)

    def markdown(self) -> list[str]:
        lines = [f"## {self.title}", ""]
        for paragraph in self.paragraphs:
            lines += [paragraph, ""]
        if self.columns:
            lines += _md_table(self.columns, self.rows) + [""]
        return lines

    def html(self) -> str:
        parts = [f"<h2>{html.escape(self.title)}</h2>"]
        parts += [f"<p>{html.escape(p.replace('`', ''))}</p>" for p in self.paragraphs]
        if self.columns:
            parts.append(_html_table(self.columns, self.rows))
        return "\n".join(parts)


PRECISION_ORDER = {"fp32": 0, "fp16": 1, "bf16": 2, "int8": 3}
COLUMNS = ("model", "target", "recipe", "precision", "size MB", "top-1", "top-5", "agree w/ FP32", "median ms",
           "p90 ms", "images/s", "vs FP32", "computes in", "build", "note")


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _first_bench(record: dict[str, Any]) -> dict[str, Any]:
    records = (record.get("bench") or {}).get("records") or []
    return records[0] if records else {}


def _precision(record: dict[str, Any]) -> str:
    return (record.get("build") or {}).get("precision") or record.get("recipe", "")


def _note(record: dict[str, Any]) -> str:
    skipped = {stage: why for stage in ("validation", "bench") if (why := (record.get(stage) or {}).get("skipped"))}
    if len(skipped) == 2 and len(set(skipped.values())) == 1:  # one reason for both: say it once
        skipped = {"validation and bench": skipped["validation"]}
    notes = [f"{stage}: {why}" for stage, why in skipped.items()]
    if (record.get("build") or {}).get("weights", {}).get("random_init"):
        notes.append("random-init weights")
    return "; ".join(notes)


def device_rows(records: list[dict[str, Any]], device: str) -> list[list[str]]:
    """One row per built cell of `device`, FP32 first within each model and target."""
    mine = [r for r in records if r.get("device") == device and r.get("status") == "ok"]
    mine.sort(key=lambda r: (r["model_id"], r["target"], PRECISION_ORDER.get(_precision(r), 9), r["recipe"]))
    front = {p.cell for p in pareto_front([p for p in points_of(mine)])}
    fp32_ms = {(r["model_id"], r["target"]): _first_bench(r).get("median_ms") for r in mine
               if _precision(r) == "fp32"}
    rows = []
    for r in mine:
        build, validation, bench = r.get("build") or {}, r.get("validation") or {}, _first_bench(r)
        base = fp32_ms.get((r["model_id"], r["target"]))
        speedup = f"{base / bench['median_ms']:.2f}x" if base and bench.get("median_ms") and \
            _precision(r) != "fp32" else ""
        cache = build.get("cache") or {}
        built = "cached" if cache.get("hit") else f"{build.get('seconds', 0):.0f} s"
        rows.append([("★ " if r["id"] in front else "") + r["model_id"], r["target"], r["recipe"], _precision(r),
                     _fmt(build.get("size_bytes", 0) / 1e6, 2), _fmt(validation.get("top1")),
                     _fmt(validation.get("top5")), _fmt((validation.get("reference") or {}).get("agreement")),
                     _fmt(bench.get("median_ms"), 2), _fmt(bench.get("p90_ms"), 2),
                     _fmt(bench.get("throughput_ips"), 0), speedup, bench.get("runtime_precision") or "—", built,
                     _note(r)])
    return rows


def published_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """Measured beside published, for zoo models with real ImageNet weights (the only ones the seed covers)."""
    from edgekit.bench.published import reference_ms

    rows = []
    for r in records:
        validation = r.get("validation") or {}
        published = validation.get("published")
        if r.get("status") != "ok" or not published:
            continue
        bench = _first_bench(r)
        batch = bench.get("batch", 1)
        t4 = reference_ms(r["model"], "t4", "fp32", batch)
        v100 = reference_ms(r["model"], "v100", "fp32", batch)
        rows.append([r["model"], r["target"], _precision(r), r["device"], _fmt(published.get("top1")),
                     f"{_fmt(validation.get('top1'))} ({validation.get('images')} images)",
                     _fmt(bench.get("median_ms"), 2), str(batch), _fmt(t4, 2), _fmt(v100, 2)])
    return rows


PUBLISHED_COLUMNS = ("model", "target", "precision", "device", "published top-1", "measured top-1",
                     "measured median ms", "batch", "published T4 TRT fp32 ms", "published V100 TRT fp32 ms")


def problem_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in records:
        if r.get("status") == "skipped":
            rows.append([r["id"], "skipped", r.get("reason", "")])
        elif r.get("status") == "failed":
            rows.append([r["id"], f"failed ({r.get('stage')})", r.get("error", "")])
    return rows


def _summary(result) -> list[str]:
    from edgekit.portable import cpu_model

    plan = result.plan
    return [f"Plan `{plan.source}`: {len(plan.cells)} cells ({len(plan.builds)} builds x {len(plan.devices)} "
            f"device(s)): {result.count('ok')} ok, {result.count('failed')} failed, {result.count('skipped')} "
            f"skipped. This run: {result.ran} cell(s) run, {result.resumed} already finished (records.jsonl), "
            f"{result.seconds:.0f} s.",
            f"Host: {platform.system()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} logical CPUs."]


def _md_table(columns, rows) -> list[str]:
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + \
        ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def _title(result, title: str | None) -> str:
    return title or f"edgekit matrix: {result.plan.name}"


def markdown(result, chart_name: str | None, *, title: str | None = None, before: Sequence[Section] = (),
             after: Sequence[Section] = ()) -> str:
    records, plan = result.records, result.plan
    lines = [f"# {_title(result, title)}", "", *_summary(result), ""]
    for section in before:
        lines += section.markdown()
    for device in plan.devices:
        rows = device_rows(records, device.name)
        lines += [f"## Device {device.name} ({device.address})", ""]
        lines += _md_table(COLUMNS, rows) if rows else ["No cell finished on this device."]
        lines += [""]
    lines += ["★ on the Pareto front of its device: no other cell there is both at least as fast and at least as "
              "accurate. Latency is the median at the first bench batch; `computes in` is what the runtime "
              "actually ran (OpenVINO may run f32 models in bf16 where the CPU has it).", ""]
    if chart_name:
        lines += [f"![accuracy vs latency, Pareto front]({chart_name})", ""]
    published = published_rows(records)
    lines += ["## Published figures beside the measured ones", ""]
    lines += _md_table(PUBLISHED_COLUMNS, published) if published else [
        "No cell validated a zoo model with real ImageNet weights, so there are no published PaddleClas figures "
        "to set beside these (the seed pages cover ImageNet-1k only)."]
    problems = problem_rows(records)
    if problems:
        lines += ["", "## Skipped and failed cells", ""] + _md_table(("cell", "status", "why"), problems)
    for section in after:
        lines += [""] + section.markdown()[:-1]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    lines += ["", f"Records: `{plan.out / 'records.jsonl'}` (one JSON line per finished cell); bundles under "
                  f"`{plan.out / 'bundles'}`. Re-running `edgekit matrix {plan.source}` runs only cells without a "
                  "finished record."]
    return "\n".join(lines) + "\n"


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.front td{background:#fff6e0}
.failed{color:#a00}svg{max-width:100%;height:auto}"""


def _html_table(columns, rows, numeric=()) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cls = ' class="front"' if str(row[0]).startswith("★") else ""
        cells = "".join(f'<td{" class=num" if i in numeric else ""}>{html.escape(str(c))}</td>'
                        for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def html_page(result, svg: str | None, *, title: str | None = None, before: Sequence[Section] = (),
              after: Sequence[Section] = ()) -> str:
    records, plan = result.records, result.plan
    heading = html.escape(_title(result, title))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{heading}"
             f"</title><style>{CSS}</style></head><body>", f"<h1>{heading}</h1>"]
    parts += [f"<p>{html.escape(s.replace('`', ''))}</p>" for s in _summary(result)]
    parts += [section.html() for section in before]
    if svg:
        parts.append(f"<h2>Accuracy vs latency</h2><figure>{svg}<figcaption>Pareto front per device: dashed line, "
                     "red rings.</figcaption></figure>")
    for device in plan.devices:
        rows = device_rows(records, device.name)
        parts.append(f"<h2>Device {html.escape(device.name)} ({html.escape(device.address)})</h2>")
        parts.append(_html_table(COLUMNS, rows, numeric=range(4, 12)) if rows else "<p>No cell finished here.</p>")
    published = published_rows(records)
    parts.append("<h2>Published figures beside the measured ones</h2>")
    parts.append(_html_table(PUBLISHED_COLUMNS, published, numeric=range(4, 10)) if published else
                 "<p>No cell validated a zoo model with real ImageNet weights: no published figures apply.</p>")
    problems = problem_rows(records)
    if problems:
        parts.append("<h2>Skipped and failed cells</h2>" + _html_table(("cell", "status", "why"), problems))
    parts += [section.html() for section in after]
    if result.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_reports(result, *, title: str | None = None, before: Sequence[Section] = (),
                  after: Sequence[Section] = ()) -> tuple[Path, Path, Path | None]:
    """report.md, report.html and report.png under the plan's out; `title` replaces "edgekit matrix: NAME",
    `before` / `after` sections go before the device tables / after the skipped and failed cells."""
    out = result.plan.out
    chart = write_chart(result.records, out / "report.png", f"{result.plan.name}: accuracy vs latency")
    png, svg = chart if chart else (None, None)
    extra = dict(title=title, before=before, after=after)
    md = out / "report.md"
    md.write_text(markdown(result, png.name if png else None, **extra), encoding="utf-8")
    page = out / "report.html"
    page.write_text(html_page(result, svg, **extra), encoding="utf-8")
    return md, page, png
