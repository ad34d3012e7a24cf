"""The demo's report: the matrix report (edgekit.matrix.report) with the demo's own sections around it.

Before the device tables: the models trained on the digits (teacher, distilled student, top-1 per epoch) and
what the bundles are. After them: the demo's steps with their times. report.md, report.html and report.png
(the accuracy-vs-latency chart) all come from `edgekit.matrix.report.write_reports`.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.matrix.report import Section, write_reports


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _model_row(role: str, info: dict) -> list[str]:
    history = info["train"]["history"]
    return [role, info["model"], str(len(history)), _fmt(info["val"]["top1"]), _fmt(info["val"]["top5"]),
            ", ".join(f"{h['val_top1']:.3f}" for h in history), f"{info['train']['seconds']:.0f} s",
            Path(info["weights"]).name]


def models_section(result) -> Section:
    config = result.config
    teacher, student = result.teacher, result.student
    paragraphs = [
        f"The teacher {teacher['model']} is trained on the {teacher['train']['train_images']} training digits, "
        f"then the student {student['model']} is distilled from it (T = {config.temperature}, alpha = "
        f"{config.alpha}, the weight of the teacher's soft targets), input {config.input_size}x{config.input_size}; "
        f"both are scored on the {student['val']['n']} held-out digits.",
        f"The tables below are the student's bundles: each target ({', '.join(config.targets)}) at each recipe "
        f"({', '.join(config.recipes)}) side by side; the INT8 recipes calibrate on the training digits "
        "(`--calib`) and are refused at build time beyond their accuracy budget. Agreement is top-1 agreement "
        "with the FP32 Paddle student on the same images.",
        result.arm,
    ]
    return Section("Models trained here on scikit-learn's handwritten digits", paragraphs,
                   ("role", "model", "epochs", "val top-1", "val top-5", "val top-1 by epoch", "trained in",
                    "weights (models/)"),
                   [_model_row("teacher", teacher), _model_row("student (distilled)", student)])


def steps_section(result) -> Section:
    return Section("Demo steps", [f"{result.seconds:.0f} s up to the report. Reproduce: `edgekit demo --out DIR`; each "
                                  "bundle holds its model, `edgekit.json` and an `app/` example."],
                   ("step", "seconds", "what"), [[s.name, f"{s.seconds:.1f}", s.detail] for s in result.steps])


def write_demo_report(result, matrix_result) -> tuple[Path, Path, Path | None]:
    """report.md, report.html and report.png in the demo's output directory."""
    return write_reports(matrix_result, title=f"edgekit demo: {result.student['model']} distilled from "
                                              f"{result.teacher['model']}, on the digits",
                         before=[models_section(result)], after=[steps_section(result)])
