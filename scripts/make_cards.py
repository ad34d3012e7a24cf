"""Regenerate edgekit/zoo/cards.json from the PaddleClas model-zoo seed pages.

    python scripts/make_cards.py --seeds ../shared/seeds            # published figures
    python scripts/make_cards.py --seeds ../shared/seeds --compute  # + params/FLOPs of our networks

The seed pages are Markdown; one (ResNeXt.md) has its tables flattened to
whitespace-separated rows, parsed by position. Missing cells stay null.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

CARDS = Path(__file__).resolve().parents[1] / "edgekit" / "zoo" / "cards.json"
NAME = re.compile(r"^(Fix_)?[A-Z][A-Za-z]{3,}[A-Za-z0-9_]*$")


def _number(cell: str) -> float | None:
    cell = cell.strip()
    if cell in ("", "-"):
        return None
    return float(cell)


def _blank_card(page: str) -> dict:
    return {"seed_page": page, "top1": None, "top5": None, "ref_top1": None, "ref_top5": None,
            "flops_g": None, "params_m": None, "crop_size": None, "resize_short": None,
            "latency_ms": {"v100_trt_fp32": {}, "t4_trt_fp16": {}, "t4_trt_fp32": {}}}


def _batches(values):
    return {str(b): v for b, v in zip((1, 4, 8), values) if v is not None}


def _apply_metrics(card, nums):
    top1, top5, ref1, ref5, flops, params = nums
    card.update(top1=top1, top5=top5, ref_top1=ref1, ref_top5=ref5, flops_g=flops, params_m=params)


def parse_markdown_tables(text: str, page: str, cards: dict) -> None:
    kind = None
    for line in text.splitlines():
        if not line.startswith("|"):
            kind = None if not line.strip() else kind
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        header = " ".join(cells)
        if cells[0] == "Models":
            if "Top1" in header:
                kind = "metrics"
            elif "FP16" in header:
                kind = "t4"
            else:
                kind = "v100"
            has_resize = "Resize Short Size" in header
            continue
        name = cells[0].replace("<br>", "").replace(" ", "")
        if kind is None or not NAME.match(name):
            continue
        card = cards.setdefault(name, _blank_card(page))
        if kind == "metrics":
            _apply_metrics(card, [_number(c) for c in cells[1:7]])
            continue
        card["crop_size"] = int(cells[1])
        rest = cells[2:]
        if has_resize:
            card["resize_short"] = int(rest[0])
            rest = rest[1:]
        nums = [_number(c) for c in rest]
        if kind == "v100":
            card["latency_ms"]["v100_trt_fp32"] = _batches(nums[:3])
        else:
            card["latency_ms"]["t4_trt_fp16"] = _batches(nums[:3])
            card["latency_ms"]["t4_trt_fp32"] = _batches(nums[3:6])


def parse_flattened_rows(text: str, page: str, cards: dict) -> None:
    """ResNeXt.md: rows are 'Name n1 n2 ...' with section headings in between."""
    section = None
    for line in text.splitlines():
        if "模型指标" in line:
            section = "metrics"
        elif "V100" in line and line.startswith("1.3.1"):
            section = "v100"
        elif "T4" in line and line.startswith("1.3.2"):
            section = "t4"
        elif line.startswith("2."):
            section = None
        parts = line.split()
        if section is None or len(parts) < 2 or not NAME.match(parts[0]):
            continue
        if not re.fullmatch(r"[0-9.]+", parts[1]):
            continue
        name, nums = parts[0], [float(p) for p in parts[1:]]
        card = cards.setdefault(name, _blank_card(page))
        if section == "metrics":
            # 4 numbers: top1 top5 flops params; 5 numbers: a reference top-1 is
            # present (the page gives no reference top-5 for any ResNeXt row).
            if len(nums) == 4:
                _apply_metrics(card, [nums[0], nums[1], None, None, nums[2], nums[3]])
            elif len(nums) == 5:
                _apply_metrics(card, [nums[0], nums[1], nums[2], None, nums[3], nums[4]])
            else:
                raise ValueError(f"{page}: unexpected metrics row {line!r}")
        elif section == "v100":
            card["crop_size"] = int(nums[0])
            card["latency_ms"]["v100_trt_fp32"] = _batches(nums[1:4])
        elif section == "t4":
            card["crop_size"] = int(nums[0])
            card["latency_ms"]["t4_trt_fp16"] = _batches(nums[1:4])
            card["latency_ms"]["t4_trt_fp32"] = _batches(nums[4:7])


def fill_preprocessing(name: str, card: dict) -> None:
    """PaddleClas eval preprocessing: decode RGB, resize short side, center crop, normalise."""
    if card["crop_size"] is None:
        card["crop_size"] = 320 if name.startswith("Fix_") else 224
        card["crop_size_source"] = "not on the seed page; Fix_ models are fine-tuned at 320, others use 224"
    if card["resize_short"] is None:
        if name.startswith("Fix_"):
            card["resize_short"] = card["crop_size"]
            card["resize_short_source"] = "not on the seed page; Fix_ models resize to the crop size"
        else:
            card["resize_short"] = int(card["crop_size"] / 0.875)
            card["resize_short_source"] = "not on the seed page; PaddleClas convention crop/0.875"
    card["preprocessing"] = {
        "decode": "RGB",
        "resize_short": card["resize_short"],
        "interpolation": "bilinear",
        "crop": card["crop_size"],
        "scale": 1.0 / 255.0,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "layout": "NCHW",
        "channel_order": "RGB",
    }


def parse_seeds(seeds: Path) -> dict:
    cards: dict = {}
    for page in sorted(seeds.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        if "| Models" in text:
            parse_markdown_tables(text, page.name, cards)
        else:
            parse_flattened_rows(text, page.name, cards)
    for name, card in cards.items():
        fill_preprocessing(name, card)
    return cards


def compute_stats(cards: dict) -> None:
    sys.path.insert(0, str(CARDS.parents[2]))
    from edgekit.zoo.counts import measure

    for i, name in enumerate(cards, 1):
        stats = measure(name, cards[name]["crop_size"])
        cards[name]["computed"] = stats
        print(f"[{i}/{len(cards)}] {name}: {stats['params_m']:.3f} M params, {stats['flops_g']:.3f} GFLOPs",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, required=True)
    parser.add_argument("--compute", action="store_true", help="also count params/FLOPs of each network")
    args = parser.parse_args()
    cards = parse_seeds(args.seeds)
    if args.compute:
        compute_stats(cards)
    elif CARDS.exists():  # keep computed figures from an earlier --compute run
        old = json.loads(CARDS.read_text())["models"]
        for name, card in cards.items():
            if "computed" in old.get(name, {}):
                card["computed"] = old[name]["computed"]
    doc = {"schema": 1, "source": "PaddleClas model-zoo pages (shared/seeds)", "models": cards}
    CARDS.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(cards)} cards to {CARDS}")


if __name__ == "__main__":
    main()
